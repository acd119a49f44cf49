//! Networks operators create: `ripple network create` makes one (a random seed, this node as its
//! admin, the bootstrap+relay it is reached through) and writes the network file others join
//! with; `ripple network invite` signs the invitation that admits one agent
//! (docs/integrity/membrane.md); and a data dir keeps a record of the network it belongs to, so a
//! restart needs no flags.
//!
//! Everything here runs before the hApp is installed, and every file is written whole (temporary
//! file, fsync, rename): a crash leaves the old file or the new one.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use holochain_client::AgentPubKey;
use serde::{Deserialize, Serialize};

use crate::manifests::{Network, NetworkSpec, POLICY_ROLE};

/// The record of the network a data dir belongs to (created or joined from a network file).
pub const RECORD_FILE: &str = "network.json";
/// How a data dir joined a network from networks.json (`JoinedRecord`).
pub const JOINED_FILE: &str = "joined.json";
/// The format version of network and invitation files.
const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a ripple {what} file: {reason}")]
    Invalid { path: PathBuf, what: &'static str, reason: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Setting(String),
    #[error(
        "this data dir belongs to network `{have}` ({record}); one network per data dir: use another --data for `{want}`"
    )]
    OtherNetwork { have: String, want: String, record: PathBuf },
    #[error(
        "{given} contradicts what this data dir joined: it {joined} (saved in {record}). One mesh per data dir: \
         start without the flag to rejoin it, use another --data for another mesh, or, if that server has moved \
         for good, remove {record} and start with the new one"
    )]
    Contradicts { given: String, joined: String, record: PathBuf },
    #[error("invitation {path}: {reason}")]
    BadInvitation { path: PathBuf, reason: String },
    #[error("cannot serve the network's bootstrap+relay on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Manifest(#[from] crate::manifests::ManifestError),
    #[error(transparent)]
    Conductor(#[from] crate::conductor::ConductorError),
    #[error(transparent)]
    Mesh(#[from] crate::mesh::MeshError),
}

impl NetworkError {
    /// Bad input (the operator can fix it) as opposed to a failure while running.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Write { .. } | Self::Mesh(_) => false,
            Self::Conductor(e) => matches!(e, crate::conductor::ConductorError::Passphrase(_)),
            _ => true,
        }
    }
}

/// What `ripple network create` writes for others: everything a node needs to join the network,
/// pins included. It holds no secret; share it as you like.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkFile {
    pub ripple_network_file: u32,
    pub name: String,
    pub network: NetworkSpec,
}

impl NetworkFile {
    pub fn load(path: &Path) -> Result<Self, NetworkError> {
        let file: Self = read_json(path, "network")?;
        if file.ripple_network_file != FORMAT {
            return Err(invalid(
                path,
                "network",
                format!("format {} (this ripple reads {FORMAT})", file.ripple_network_file),
            ));
        }
        check_name(&file.name).map_err(|reason| invalid(path, "network", reason))?;
        if file.network.dnas.is_empty() {
            return Err(invalid(path, "network", "it pins no DNA hashes (`network.dnas`)".into()));
        }
        file.network.liveness.check().map_err(|reason| invalid(path, "network", reason))?;
        Ok(file)
    }

    pub fn network(&self) -> Network {
        Network { name: self.name.clone(), spec: self.network.clone() }
    }
}

/// `<data>/network.json`: the network this data dir belongs to, the agent key it joins with and
/// the invitation that admits it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkRecord {
    pub name: String,
    pub network: NetworkSpec,
    /// The key this node joins with, generated before the install so it can be invited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation: Option<InvitationFile>,
    /// The creator serves the network's bootstrap+relay here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve_bootstrap: Option<SocketAddr>,
}

impl NetworkRecord {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(RECORD_FILE)
    }

    /// The record, if this data dir has one.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, NetworkError> {
        read_json_if_present(&Self::path(data_dir), "network record")
    }

    pub fn save(&self, data_dir: &Path) -> Result<(), NetworkError> {
        write_json(&Self::path(data_dir), self)
    }

    pub fn network(&self) -> Network {
        Network { name: self.name.clone(), spec: self.network.clone() }
    }

    pub fn agent_key(&self) -> Result<Option<AgentPubKey>, NetworkError> {
        self.agent_key
            .as_deref()
            .map(|key| {
                AgentPubKey::try_from(key)
                    .map_err(|e| NetworkError::Setting(format!("{}: agent_key `{key}`: {e}", RECORD_FILE)))
            })
            .transpose()
    }

    /// Whether `agent` may join without an invitation (an open network, or one of its admins).
    pub fn needs_invitation(&self, agent: &AgentPubKey) -> bool {
        !self.network.admins.is_empty() && !self.network.admins.contains(&agent.to_string())
    }
}

/// `<data>/joined.json`: how this data dir joined a network from networks.json (ripple-local,
/// testnet, mainnet), so that a plain `ripple up` rejoins the same mesh. A created network keeps
/// the same facts in its `NetworkRecord`; the policy admin is kept by the install itself (a
/// different `--policy-admin` is refused by `Mesh::join`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JoinedRecord {
    pub network: String,
    /// The bootstrap+relay server this node joined through (`--bootstrap`); none when it uses the
    /// network's own (networks.json) or serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,
    /// Where this node serves ripple-local's bootstrap+relay: the address the other nodes joined,
    /// chosen on the first start and kept, so a restart does not move it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serves_bootstrap: Option<SocketAddr>,
}

impl JoinedRecord {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(JOINED_FILE)
    }

    /// The record, if this data dir has joined a network from networks.json.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, NetworkError> {
        read_json_if_present(&Self::path(data_dir), "joined-network record")
    }

    pub fn save(&self, data_dir: &Path) -> Result<(), NetworkError> {
        write_json(&Self::path(data_dir), self)
    }

    /// Fills what a start left unsaid from the record, and refuses what contradicts it: another
    /// network, another bootstrap server, or another address for the one this node serves.
    pub fn apply(&self, start: &mut JoinChoice, data_dir: &Path) -> Result<(), NetworkError> {
        let contradiction =
            |given: String, joined: String| NetworkError::Contradicts { given, joined, record: Self::path(data_dir) };
        if start.network != self.network {
            let (have, want, record) = (self.network.clone(), start.network.clone(), Self::path(data_dir));
            return Err(NetworkError::OtherNetwork { have, want, record });
        }
        let joined = match (&self.bootstrap, self.serves_bootstrap) {
            (Some(url), _) => format!("joined through bootstrap {url}"),
            (None, Some(addr)) => format!("serves its own bootstrap+relay on {addr}"),
            (None, None) => format!("joined through network `{}`'s own bootstrap server", self.network),
        };
        let saved = self
            .bootstrap
            .as_deref()
            .map(|url| {
                url::Url::parse(url).map_err(|e| invalid(&Self::path(data_dir), "joined-network record", e.to_string()))
            })
            .transpose()?;
        match (&start.bootstrap, saved) {
            (Some(given), Some(url)) if *given != url => {
                return Err(contradiction(format!("--bootstrap {given}"), joined));
            }
            (Some(given), None) => return Err(contradiction(format!("--bootstrap {given}"), joined)),
            (None, Some(url)) => start.bootstrap = Some(url),
            _ => {}
        }
        if let Some(addr) = self.serves_bootstrap {
            match start.bootstrap_listen {
                Some(given) if given != addr => {
                    return Err(contradiction(format!("--bootstrap-listen {given}"), joined));
                }
                _ => start.bootstrap_listen = Some(addr),
            }
        }
        Ok(())
    }
}

/// What a start asks for, before `JoinedRecord::apply` fills it from what the data dir joined.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinChoice {
    pub network: String,
    pub bootstrap: Option<url::Url>,
    pub bootstrap_listen: Option<SocketAddr>,
}

/// What `ripple network invite` writes: the membrane proof for one agent on one network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InvitationFile {
    pub ripple_invitation: u32,
    pub network: String,
    pub network_seed: String,
    /// The only agent this invitation admits.
    pub invitee: String,
    /// The network admin who signed it.
    pub admin: String,
    /// The signed invitation, msgpack as the DNAs decode it, in base64: the membrane proof.
    pub proof: String,
}

impl InvitationFile {
    pub fn new(
        network: &str,
        network_seed: &str,
        signed: &agent_registry_types::SignedInvitation,
    ) -> Result<Self, String> {
        let bytes = holochain_serialized_bytes::SerializedBytes::try_from(signed.clone())
            .map_err(|e| format!("cannot encode the invitation: {e:?}"))?;
        Ok(Self {
            ripple_invitation: FORMAT,
            network: network.into(),
            network_seed: network_seed.into(),
            invitee: signed.invitation.invitee.to_string(),
            admin: signed.admin.to_string(),
            proof: base64::engine::general_purpose::STANDARD.encode(bytes.bytes()),
        })
    }

    /// Reads an invitation and checks that it is for `agent` on `network`, signed by one of its
    /// admins. The signature itself is checked by every DNA at genesis (MP2).
    pub fn load_for(path: &Path, network: &Network, agent: &AgentPubKey) -> Result<Self, NetworkError> {
        let file: Self = read_json(path, "invitation")?;
        let bad = |reason: String| NetworkError::BadInvitation { path: path.into(), reason };
        if file.ripple_invitation != FORMAT {
            return Err(bad(format!("format {} (this ripple reads {FORMAT})", file.ripple_invitation)));
        }
        if file.network_seed != network.spec.network_seed {
            return Err(bad(format!("it is for network `{}`, not for `{}`", file.network, network.name)));
        }
        if file.invitee != agent.to_string() {
            return Err(bad(format!(
                "it invites {}, not this node ({agent}); ask a network admin for `ripple network invite {agent}`",
                file.invitee
            )));
        }
        if !network.spec.admins.contains(&file.admin) {
            return Err(bad(format!(
                "it is signed by {}, who is not an admin of network `{}`",
                file.admin, network.name
            )));
        }
        let signed = file.signed().map_err(bad)?;
        let invited: Vec<String> = signed.invitation.dnas.iter().map(|d| d.to_string()).collect();
        let missing: Vec<&String> = network.spec.dnas.values().filter(|d| !invited.contains(d)).collect();
        if !missing.is_empty() {
            return Err(bad(format!("it does not name this network's DNAs {missing:?}")));
        }
        Ok(file)
    }

    pub fn signed(&self) -> Result<agent_registry_types::SignedInvitation, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.proof)
            .map_err(|e| format!("`proof` is not base64: {e}"))?;
        agent_registry_types::SignedInvitation::try_from(holochain_serialized_bytes::SerializedBytes::from(
            holochain_serialized_bytes::UnsafeBytes::from(bytes),
        ))
        .map_err(|e| format!("`proof` is not a signed invitation: {e:?}"))
    }

    /// The membrane proof every role installs with.
    pub fn membrane_proof(&self) -> Result<holochain_types::prelude::MembraneProof, String> {
        let signed = self.signed()?;
        let bytes = holochain_serialized_bytes::SerializedBytes::try_from(signed).map_err(|e| format!("{e:?}"))?;
        Ok(std::sync::Arc::new(bytes))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error("network `{0}` is open (it names no admins): anyone who reaches it may join, no invitation needed")]
    OpenNetwork(String),
    #[error("this node ({agent}) is not an admin of network `{network}`; its admins are {admins:?}")]
    NotAdmin { agent: String, network: String, admins: Vec<String> },
    #[error(transparent)]
    Mesh(#[from] crate::mesh::MeshError),
}

/// Signs an invitation for `invitee` to every DNA of this node's network: the capabilities
/// zome's `sign_invitation`, which itself refuses a node that is not a network admin.
pub async fn invite(
    mesh: &crate::mesh::Mesh,
    network: &str,
    network_seed: &str,
    admins: &[String],
    invitee: AgentPubKey,
) -> Result<InvitationFile, InviteError> {
    if admins.is_empty() {
        return Err(InviteError::OpenNetwork(network.into()));
    }
    if !admins.contains(&mesh.agent.to_string()) {
        let (agent, network, admins) = (mesh.agent.to_string(), network.into(), admins.to_vec());
        return Err(InviteError::NotAdmin { agent, network, admins });
    }
    let invitation = agent_registry_types::Invitation {
        invitee,
        dnas: mesh.cells.values().map(|cell| cell.dna_hash().clone()).collect(),
    };
    let signed: agent_registry_types::SignedInvitation =
        mesh.call(crate::mesh::PRIMARY_ROLE, "capabilities", "sign_invitation", &invitation).await?;
    InvitationFile::new(network, network_seed, &signed)
        .map_err(|reason| crate::mesh::MeshError::ZomeCall {
            zome: "capabilities".into(),
            function: "sign_invitation".into(),
            reason,
        })
        .map_err(Into::into)
}

/// A network name: what people type and read, also part of the seed.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if !ok {
        return Err(format!("network name `{name}` must be 1-32 characters of [a-z0-9-], not starting with -"));
    }
    Ok(())
}

/// Whether `--network VALUE` names a network file rather than an entry of networks.json.
pub fn is_file_argument(value: &str) -> bool {
    value.contains('/') || value.ends_with(".json")
}

/// The spec of a network `admin` creates: a fresh random seed, `admin` as network and policy
/// admin in every role's properties (over the bundle's own `base` properties, which an override
/// replaces), and agent_registry's heartbeat bucket if given.
pub fn created_spec(
    name: &str,
    admin: &AgentPubKey,
    urls: (&url::Url, &url::Url),
    base: &BTreeMap<String, serde_json::Value>,
    heartbeat_bucket_secs: Option<u32>,
) -> Result<NetworkSpec, String> {
    let mut seed = [0u8; 16];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness for the network seed: {e}"))?;
    let seed: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let admins = vec![admin.to_string()];
    let mut dna_properties = BTreeMap::new();
    for (role, properties) in base {
        let mut properties = match properties {
            serde_json::Value::Object(map) => map.clone(),
            serde_json::Value::Null => serde_json::Map::new(),
            other => return Err(format!("role `{role}`'s DNA properties are not a map: {other}")),
        };
        properties.insert("network_admins".into(), serde_json::json!(admins));
        if role == POLICY_ROLE {
            properties.insert("admins".into(), serde_json::json!(admins));
        }
        if let (Some(secs), "agent_registry") = (heartbeat_bucket_secs, role.as_str()) {
            properties.insert("heartbeat_bucket_secs".into(), secs.into());
            properties.insert("heartbeat_min_interval_secs".into(), (secs / 10).max(1).into());
        }
        dna_properties.insert(role.clone(), serde_json::Value::Object(properties));
    }
    Ok(NetworkSpec {
        network_seed: format!("ripple-{name}-{seed}"),
        description: format!("Created with `ripple network create` by {admin}. Admission by invitation."),
        bootstrap_url: Some(urls.0.to_string()),
        relay_url: Some(urls.1.to_string()),
        dna_properties,
        admins,
        ..NetworkSpec::default()
    })
}

fn invalid(path: &Path, what: &'static str, reason: String) -> NetworkError {
    NetworkError::Invalid { path: path.into(), what, reason }
}

/// A data dir's record file, or none when the data dir has not written it.
fn read_json_if_present<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<Option<T>, NetworkError> {
    if !path.exists() {
        return Ok(None);
    }
    read_json(path, what).map(Some)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &'static str) -> Result<T, NetworkError> {
    let text = std::fs::read_to_string(path).map_err(|source| NetworkError::Read { path: path.into(), source })?;
    serde_json::from_str(&text).map_err(|e| invalid(path, what, e.to_string()))
}

/// Writes `value` to `path` whole: a crash leaves the previous file or this one.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), NetworkError> {
    use std::io::Write;
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(serde_json::to_string_pretty(value).map_err(std::io::Error::other)?.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|source| NetworkError::Write { path: path.into(), source })
}

/// Where a created network's nodes find each other.
#[derive(Debug, Clone)]
pub enum Hosting {
    /// This node serves bootstrap+relay on `listen`; others reach it at `url`.
    Serve { listen: SocketAddr, url: url::Url },
    /// A kitsune2 bootstrap+relay someone already runs (`ripple bootstrap serve`).
    Existing { bootstrap: url::Url, relay: url::Url },
}

/// `ripple network create`'s inputs, checked by the CLI.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub name: String,
    pub data_dir: PathBuf,
    pub manifests: crate::manifests::Manifests,
    pub happ: PathBuf,
    pub zome_cache: crate::compiled_zomes::ZomeCache,
    pub passphrase_file: Option<PathBuf>,
    pub hosting: Hosting,
    pub heartbeat_bucket_secs: Option<u32>,
    /// Where to write the network file for others.
    pub out: PathBuf,
    pub force: bool,
}

/// What `ripple network create` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Created {
    pub network: String,
    pub network_seed: String,
    /// The network file to give the nodes that join.
    pub network_file: PathBuf,
    /// This data dir's record of the network.
    pub record: PathBuf,
    /// This node's agent key: the network's admin and policy admin.
    pub admin: String,
    pub bootstrap_url: String,
    pub relay_url: String,
    /// Where this node will serve bootstrap+relay (`ripple up` starts it).
    pub serving_bootstrap: Option<SocketAddr>,
    pub dnas: BTreeMap<String, String>,
}

/// Creates a network with this data dir's node as its admin: generates the node's agent key (in
/// the conductor's keystore, started just for that), writes the network's spec with that key as
/// admin into the data dir's record and the network file. Nothing is installed yet: `ripple up`
/// runs the node, serving bootstrap+relay when this node hosts it.
pub async fn create(request: CreateRequest, progress: &(dyn Fn(&str) + Sync)) -> Result<Created, NetworkError> {
    let CreateRequest { name, data_dir, .. } = &request;
    check_name(name).map_err(NetworkError::Setting)?;
    if let Some(record) = NetworkRecord::load(data_dir)? {
        let record_path = NetworkRecord::path(data_dir);
        return Err(NetworkError::OtherNetwork { have: record.name, want: name.clone(), record: record_path });
    }
    if data_dir.join("holochain").exists() {
        return Err(NetworkError::Setting(format!(
            "{} already holds a conductor (a node of another network): create the network with another --data",
            data_dir.display()
        )));
    }
    if request.out.exists() && !request.force {
        return Err(NetworkError::Setting(format!(
            "{} already exists (use --force to overwrite it)",
            request.out.display()
        )));
    }
    let bytes = match std::fs::read(&request.happ) {
        Ok(bytes) => bytes::Bytes::from(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(crate::manifests::ManifestError::MissingBundle { path: request.happ.clone() }.into())
        }
        Err(source) => return Err(NetworkError::Read { path: request.happ.clone(), source }),
    };
    let bad_bundle = |reason: String| crate::manifests::ManifestError::BadBundle { path: request.happ.clone(), reason };
    let base = crate::manifests::bundle_role_properties(&bytes).await.map_err(bad_bundle)?;
    let (urls, serve) = match &request.hosting {
        Hosting::Serve { listen, url } => {
            // Bound and let go: a busy or foreign address is bad input now, not at the first `up`.
            std::net::TcpListener::bind(listen).map_err(|source| NetworkError::Listen { addr: *listen, source })?;
            ((url.clone(), url.clone()), Some(*listen))
        }
        Hosting::Existing { bootstrap, relay } => ((bootstrap.clone(), relay.clone()), None),
    };

    let (passphrase, _) = crate::conductor::load_passphrase(
        request.passphrase_file.as_deref(),
        std::env::var(crate::conductor::PASSPHRASE_ENV).ok(),
        data_dir,
    )?;
    progress("starting this node's conductor to generate its agent key, the network's admin");
    let conductor = crate::conductor::EmbeddedConductor::start(
        data_dir,
        &request.manifests.conductor_template_path(),
        &crate::conductor::NetworkUrls { bootstrap: urls.0.clone(), relay: urls.1.clone() },
        passphrase,
        &[],
        &request.zome_cache,
    )
    .await?;
    let admin = crate::mesh::generate_agent_key(conductor.admin_port).await;
    conductor.shutdown().await;
    let admin = admin?;

    let mut spec =
        created_spec(name, &admin, (&urls.0, &urls.1), &base, request.heartbeat_bucket_secs).map_err(&bad_bundle)?;
    let network = Network { name: name.clone(), spec: spec.clone() };
    spec.dnas = crate::manifests::role_hashes(&bytes, &network, None).await.map_err(bad_bundle)?;
    let record = NetworkRecord {
        name: name.clone(),
        network: spec.clone(),
        agent_key: Some(admin.to_string()),
        invitation: None,
        serve_bootstrap: serve,
    };
    record.save(data_dir)?;
    let file = NetworkFile { ripple_network_file: FORMAT, name: name.clone(), network: spec.clone() };
    write_json(&request.out, &file)?;
    Ok(Created {
        network: name.clone(),
        network_seed: spec.network_seed,
        network_file: request.out.clone(),
        record: NetworkRecord::path(data_dir),
        admin: admin.to_string(),
        bootstrap_url: urls.0.to_string(),
        relay_url: urls.1.to_string(),
        serving_bootstrap: serve,
        dnas: spec.dnas,
    })
}

impl NetworkRecord {
    /// The network file for others, from this record (`ripple network show --out`).
    pub fn network_file(&self) -> NetworkFile {
        NetworkFile { ripple_network_file: FORMAT, name: self.name.clone(), network: self.network.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> AgentPubKey {
        AgentPubKey::from_raw_32(vec![n; 32])
    }

    fn choice(network: &str, bootstrap: Option<&str>, listen: Option<&str>) -> JoinChoice {
        JoinChoice {
            network: network.into(),
            bootstrap: bootstrap.map(|u| url::Url::parse(u).unwrap()),
            bootstrap_listen: listen.map(|a| a.parse().unwrap()),
        }
    }

    #[test]
    fn a_plain_restart_rejoins_what_the_data_dir_joined_and_a_contradiction_is_refused() {
        let dir = Path::new("/data");
        let joiner = JoinedRecord {
            network: "local".into(),
            bootstrap: Some("http://127.0.0.1:4100/".into()),
            serves_bootstrap: None,
        };
        // Nothing said: the saved bootstrap. The same one said again (without the slash): fine.
        for given in [None, Some("http://127.0.0.1:4100")] {
            let mut start = choice("local", given, None);
            joiner.apply(&mut start, dir).unwrap();
            assert_eq!(start, choice("local", Some("http://127.0.0.1:4100/"), None));
        }
        let refused = joiner.apply(&mut choice("local", Some("http://127.0.0.1:4200"), None), dir).unwrap_err();
        let text = refused.to_string();
        assert!(
            text.contains("--bootstrap http://127.0.0.1:4200/ contradicts what this data dir joined")
                && text.contains("joined through bootstrap http://127.0.0.1:4100/")
                && text.contains("/data/joined.json"),
            "{text}"
        );
        assert!(refused.is_bad_input());
        let other = joiner.apply(&mut choice("testnet", None, None), dir).unwrap_err();
        assert!(matches!(other, NetworkError::OtherNetwork { .. }), "{other}");

        // The first node keeps the address it served on; it cannot join another server instead.
        let first = JoinedRecord {
            network: "local".into(),
            bootstrap: None,
            serves_bootstrap: Some(([127, 0, 0, 1], 4100).into()),
        };
        let mut start = choice("local", None, None);
        first.apply(&mut start, dir).unwrap();
        assert_eq!(start, choice("local", None, Some("127.0.0.1:4100")));
        let moved = first.apply(&mut choice("local", None, Some("127.0.0.1:4300")), dir).unwrap_err().to_string();
        assert!(
            moved.contains("--bootstrap-listen 127.0.0.1:4300 contradicts")
                && moved.contains("serves its own bootstrap+relay on 127.0.0.1:4100"),
            "{moved}"
        );
        let joins =
            first.apply(&mut choice("local", Some("http://127.0.0.1:4200"), None), dir).unwrap_err().to_string();
        assert!(joins.contains("--bootstrap http://127.0.0.1:4200/ contradicts"), "{joins}");

        // A node on a network's own bootstrap server (networks.json) keeps to it.
        let testnet = JoinedRecord { network: "testnet".into(), bootstrap: None, serves_bootstrap: None };
        let mut start = choice("testnet", None, Some("127.0.0.1:4300"));
        testnet.apply(&mut start, dir).unwrap();
        assert_eq!(
            start,
            choice("testnet", None, Some("127.0.0.1:4300")),
            "--bootstrap-listen is only for a server it runs"
        );
        let text =
            testnet.apply(&mut choice("testnet", Some("http://127.0.0.1:4200"), None), dir).unwrap_err().to_string();
        assert!(text.contains("joined through network `testnet`'s own bootstrap server"), "{text}");
    }

    #[test]
    fn the_joined_record_survives_a_save_and_load() {
        let dir = std::env::temp_dir().join(format!("ripple-joined-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(JoinedRecord::load(&dir).unwrap(), None);
        let record = JoinedRecord {
            network: "local".into(),
            bootstrap: None,
            serves_bootstrap: Some(([127, 0, 0, 1], 4100).into()),
        };
        record.save(&dir).unwrap();
        assert_eq!(JoinedRecord::load(&dir).unwrap(), Some(record));
        std::fs::write(JoinedRecord::path(&dir), "{\"network\": 3}").unwrap();
        let text = JoinedRecord::load(&dir).unwrap_err().to_string();
        assert!(text.contains("joined.json is not a ripple joined-network record file"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_created_spec_names_its_admin_in_every_role_over_the_base_properties() {
        let base: BTreeMap<String, serde_json::Value> = [
            (
                "agent_registry".to_string(),
                serde_json::json!({"heartbeat_bucket_secs": 300, "heartbeat_min_interval_secs": 30}),
            ),
            (POLICY_ROLE.to_string(), serde_json::Value::Null),
            ("artifact_index".to_string(), serde_json::Value::Null),
        ]
        .into();
        let url = url::Url::parse("http://10.0.0.1:30000").unwrap();
        let spec = created_spec("lab", &key(1), (&url, &url), &base, Some(6)).unwrap();
        let admin = key(1).to_string();
        assert!(spec.network_seed.starts_with("ripple-lab-") && spec.network_seed.len() == "ripple-lab-".len() + 32);
        assert_eq!(spec.admins, vec![admin.clone()]);
        assert_eq!(
            spec.dna_properties["agent_registry"],
            serde_json::json!({"heartbeat_bucket_secs": 6, "heartbeat_min_interval_secs": 1, "network_admins": [admin]})
        );
        assert_eq!(spec.dna_properties[POLICY_ROLE], serde_json::json!({"admins": [admin], "network_admins": [admin]}));
        assert_eq!(spec.dna_properties["artifact_index"], serde_json::json!({"network_admins": [admin]}));
        let other = created_spec("lab", &key(1), (&url, &url), &base, None).unwrap();
        assert_ne!(spec.network_seed, other.network_seed, "every created network has its own seed");
        assert_eq!(other.dna_properties["agent_registry"]["heartbeat_bucket_secs"], 300);
    }

    #[test]
    fn names_are_short_lowercase_words() {
        assert!(check_name("lab-2").is_ok());
        for bad in ["", "Lab", "a b", "-x", &"x".repeat(33)] {
            assert!(check_name(bad).unwrap_err().contains("[a-z0-9-]"), "{bad}");
        }
        assert!(is_file_argument("./lab.network.json") && is_file_argument("lab.json") && !is_file_argument("local"));
    }
}
