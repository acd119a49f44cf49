//! The runtime descriptions the sidecar reads from `manifests/`: which networks exist
//! (`holochain/networks.json`), which DNA hashes each network runs (`holochain/dnas/index.json`),
//! and the conductor config template (`holochain/conductor.yaml`). Also the check that a hApp bundle
//! is the one a network pins.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use holochain_types::prelude::{AppBundle, AppManifest, DnaBundle, DnaModifiersOpt, YamlProperties};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("unknown network `{name}`: {path} defines {known}")]
    UnknownNetwork { name: String, path: PathBuf, known: String },
    #[error("hApp bundle {path} not found. Build it with `cargo xtask build` or pass --happ FILE")]
    MissingBundle { path: PathBuf },
    #[error("hApp bundle {path} is not a valid bundle: {reason}")]
    BadBundle { path: PathBuf, reason: String },
    #[error(
        "the hApp bundle {bundle} does not match the DNA hashes pinned for network `{network}` in {pins}:\n  {}\n\
         If you changed an integrity zome on purpose, run `cargo xtask build && cargo xtask pin` and commit the pins; \
         otherwise rebuild the bundle from the pinned source with `cargo xtask build`.",
        differences.join("\n  ")
    )]
    PinMismatch { network: String, bundle: PathBuf, pins: PathBuf, differences: Vec<String> },
    #[error(
        "the hApp bundle {bundle} does not match the DNA hashes in network `{network}`'s file:\n  {}\n\
         The network was created with another build of the ripple hApp: build the one its creator runs.",
        differences.join("\n  ")
    )]
    FilePinMismatch { network: String, bundle: PathBuf, differences: Vec<String> },
    #[error("network `{network}` cannot be run yet: {needs}")]
    NotLive { network: String, needs: String },
}

/// The `manifests/` directory.
#[derive(Debug, Clone)]
pub struct Manifests {
    pub root: PathBuf,
}

/// One entry of `networks.json`, or the network of a network file (`ripple network create`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    pub network_seed: String,
    #[serde(default)]
    pub description: String,
    /// `None` for ripple-local: the sidecar serves bootstrap and relay itself.
    pub bootstrap_url: Option<String>,
    pub relay_url: Option<String>,
    /// DNA properties per role that differ from the bundle's (part of the DNA hash, so pinned).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dna_properties: BTreeMap<String, serde_json::Value>,
    /// The node that creates the network is its policy admin (ripple-local): it installs
    /// policy_store with `admins: [its key]` and nodes joining it name that key. The pin of that
    /// role is its hash without admins, which checks the wasm; the installed hash adds the admin.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creator_is_policy_admin: bool,
    /// The network's admins (agent keys), also written into every role's `dna_properties` as
    /// `network_admins`: a network with admins admits only invited agents (docs/integrity/membrane.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<String>,
    /// Role → DNA hash, for a network whose pins travel in its network file rather than in
    /// `dnas/index.json`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dnas: BTreeMap<String, String>,
    /// Set on a shipped network that cannot be run yet: what it still needs. The sidecar refuses
    /// it with this message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_live: Option<String>,
    /// The liveness protocol's timing; the defaults where absent.
    #[serde(default, skip_serializing_if = "LivenessSettings::is_default")]
    pub liveness: LivenessSettings,
}

/// The liveness protocol's timing (`node::swim`), per network (`liveness` in networks.json). The defaults detect a
/// crashed node in 5 to 8 s in a mesh of 5 to 50 (docs/reliability.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LivenessSettings {
    /// One probe per period.
    pub period_ms: u64,
    /// A direct probe unanswered this long is tried through other members.
    pub probe_timeout_ms: u64,
    /// How many members are asked to probe an unanswering one.
    pub indirect_probes: usize,
    /// The suspicion timeout is this many periods times log10 of the mesh size (at least one).
    pub suspicion_mult: u32,
    /// While only one node suspects a member, the suspicion stands this many times longer;
    /// independent accusers bring it down to the minimum (Lifeguard).
    pub suspicion_max_mult: u32,
    /// Each item of news is passed on this many times log10 of the mesh size (at least one).
    pub retransmit_mult: u32,
    /// Items of news carried by one message, at most.
    pub news_per_message: usize,
    /// Lifeguard's ceiling on the local health score; timeouts stretch by up to (1 + this).
    pub max_local_health: u32,
}

impl Default for LivenessSettings {
    fn default() -> Self {
        Self {
            period_ms: 1_000,
            probe_timeout_ms: 500,
            indirect_probes: 3,
            suspicion_mult: 4,
            suspicion_max_mult: 6,
            retransmit_mult: 4,
            news_per_message: 8,
            max_local_health: 8,
        }
    }
}

impl LivenessSettings {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    pub fn check(&self) -> Result<(), String> {
        if !(100..=60_000).contains(&self.period_ms) {
            return Err(format!("liveness.period_ms = {}: must be 100 to 60000", self.period_ms));
        }
        if self.probe_timeout_ms == 0 || self.probe_timeout_ms >= self.period_ms {
            return Err(format!(
                "liveness.probe_timeout_ms = {}: must be above 0 and below period_ms ({}), so an indirect probe fits in the period",
                self.probe_timeout_ms, self.period_ms
            ));
        }
        if [self.suspicion_mult, self.suspicion_max_mult, self.retransmit_mult].contains(&0)
            || self.news_per_message == 0
        {
            return Err(
                "liveness.suspicion_mult, suspicion_max_mult, retransmit_mult and news_per_message must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A named network.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Network {
    pub name: String,
    #[serde(flatten)]
    pub spec: NetworkSpec,
}

#[derive(Debug, Deserialize)]
struct Pins {
    networks: BTreeMap<String, NetworkPins>,
}

#[derive(Debug, Deserialize)]
struct NetworkPins {
    dnas: BTreeMap<String, String>,
}

/// A hApp bundle read into memory, with the DNA hash each role gets on a network.
pub struct CheckedBundle {
    pub bytes: bytes::Bytes,
    /// Role name → DNA hash (base64) on the network it was checked for.
    pub role_hashes: BTreeMap<String, String>,
}

impl Manifests {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn networks_path(&self) -> PathBuf {
        self.root.join("holochain/networks.json")
    }

    pub fn pins_path(&self) -> PathBuf {
        self.root.join("holochain/dnas/index.json")
    }

    pub fn conductor_template_path(&self) -> PathBuf {
        self.root.join("holochain/conductor.yaml")
    }

    pub fn networks(&self) -> Result<BTreeMap<String, NetworkSpec>, ManifestError> {
        let path = self.networks_path();
        let networks: BTreeMap<String, NetworkSpec> = serde_json::from_str(&read(&path)?)
            .map_err(|e| ManifestError::Invalid { path: path.clone(), reason: e.to_string() })?;
        for (name, spec) in &networks {
            spec.liveness.check().map_err(|reason| ManifestError::Invalid {
                path: path.clone(),
                reason: format!("network `{name}`: {reason}"),
            })?;
        }
        Ok(networks)
    }

    pub fn network(&self, name: &str) -> Result<Network, ManifestError> {
        let mut networks = self.networks()?;
        let known = networks.keys().cloned().collect::<Vec<_>>().join(", ");
        let spec = networks.remove(name).ok_or_else(|| ManifestError::UnknownNetwork {
            name: name.into(),
            path: self.networks_path(),
            known,
        })?;
        Ok(Network { name: name.into(), spec })
    }

    /// Reads the bundle and refuses it unless every role hashes to the pin of `network`.
    pub async fn check_bundle(&self, bundle: &Path, network: &Network) -> Result<CheckedBundle, ManifestError> {
        let bytes = match std::fs::read(bundle) {
            Ok(b) => bytes::Bytes::from(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ManifestError::MissingBundle { path: bundle.into() })
            }
            Err(source) => return Err(ManifestError::Read { path: bundle.into(), source }),
        };
        let role_hashes = role_hashes(&bytes, network, None)
            .await
            .map_err(|reason| ManifestError::BadBundle { path: bundle.into(), reason })?;

        let in_file = !network.spec.dnas.is_empty();
        let pins_path = self.pins_path();
        let pins = if in_file {
            Some(network.spec.dnas.clone())
        } else {
            let pins: Pins = serde_json::from_str(&read(&pins_path)?)
                .map_err(|e| ManifestError::Invalid { path: pins_path.clone(), reason: e.to_string() })?;
            pins.networks.get(&network.name).map(|p| p.dnas.clone())
        };
        let pinned = pins.as_ref();
        let mut differences = vec![];
        for (role, hash) in &role_hashes {
            match pinned.and_then(|p| p.get(role)) {
                Some(pin) if pin == hash => {}
                Some(pin) => differences.push(format!("role `{role}`: pinned {pin}, bundle has {hash}")),
                None => differences.push(format!("role `{role}`: no pin (bundle has {hash})")),
            }
        }
        for role in pinned.into_iter().flat_map(|p| p.keys()) {
            if !role_hashes.contains_key(role) {
                differences.push(format!("role `{role}`: pinned but missing from the bundle"));
            }
        }
        if !differences.is_empty() && in_file {
            return Err(ManifestError::FilePinMismatch {
                network: network.name.clone(),
                bundle: bundle.into(),
                differences,
            });
        }
        if !differences.is_empty() {
            return Err(ManifestError::PinMismatch {
                network: network.name.clone(),
                bundle: bundle.into(),
                pins: pins_path,
                differences,
            });
        }
        Ok(CheckedBundle { bytes, role_hashes })
    }
}

/// The role whose DNA holds policy, and whose properties name its admins.
pub const POLICY_ROLE: &str = "policy_store";

impl Network {
    /// Role modifiers a node installs with: the network's DNA properties, if it overrides any, and
    /// on a network whose creator is its policy admin, `admins: [policy_admin]` once it is known.
    pub fn role_modifiers(
        &self,
        policy_admin: Option<&str>,
    ) -> Result<HashMap<String, DnaModifiersOpt<YamlProperties>>, String> {
        let mut properties = self.spec.dna_properties.clone();
        if let (true, Some(admin)) = (self.spec.creator_is_policy_admin, policy_admin) {
            if properties.contains_key(POLICY_ROLE) {
                return Err(format!(
                    "network `{}` sets both creator_is_policy_admin and dna_properties.{POLICY_ROLE}",
                    self.name
                ));
            }
            properties.insert(POLICY_ROLE.into(), serde_json::json!({ "admins": [admin] }));
        }
        properties
            .iter()
            .map(|(role, props)| {
                let yaml = yaml_serde::to_value(props).map_err(|e| format!("dna_properties.{role}: {e}"))?;
                Ok((role.clone(), DnaModifiersOpt::none().with_properties(YamlProperties::new(yaml))))
            })
            .collect()
    }
}

/// The DNA hash of each role of a bundle as the conductor computes it at install time on `network`
/// (the same steps as `install_app_bundle`: network seed, then role overrides, then resolve).
/// Without `policy_admin`, a creator-admin network's policy role hashes as its pin does.
pub async fn role_hashes(
    bytes: &bytes::Bytes,
    network: &Network,
    policy_admin: Option<&str>,
) -> Result<BTreeMap<String, String>, String> {
    let bundle = AppBundle::unpack(bytes.as_ref()).map_err(|e| e.to_string())?;
    let overrides = network.role_modifiers(policy_admin)?;
    let roles: Vec<String> = bundle.manifest().app_roles().iter().map(|r| r.name.clone()).collect();
    let unknown: Vec<_> = overrides.keys().filter(|r| !roles.contains(r)).cloned().collect();
    if !unknown.is_empty() {
        return Err(format!("network `{}` sets dna_properties for unknown roles {unknown:?}", network.name));
    }
    resolve_role_hashes(bundle, Some(network.spec.network_seed.clone()), overrides).await
}

/// Each role's DNA properties as the bundle ships them (`null` when it sets none): what a network
/// that overrides a role's properties must carry over, since an override replaces them whole.
pub async fn bundle_role_properties(bytes: &bytes::Bytes) -> Result<BTreeMap<String, serde_json::Value>, String> {
    let bundle = AppBundle::unpack(bytes.as_ref()).map_err(|e| e.to_string())?;
    let resolution = bundle.resolve_cells(Default::default(), Default::default()).await.map_err(|e| e.to_string())?;
    let mut properties = BTreeMap::new();
    for (role, assignment) in &resolution.role_assignments {
        let Some(primary) = assignment.as_primary() else { continue };
        let dna = resolution
            .dnas_to_register
            .iter()
            .find(|(dna, _)| dna.dna_hash() == primary.dna_hash())
            .ok_or_else(|| format!("role `{role}`: its DNA is missing from the resolution"))?;
        let yaml = YamlProperties::try_from(dna.0.dna_def().modifiers.properties.clone())
            .map_err(|e| format!("role `{role}`: DNA properties are not YAML: {e:?}"))?
            .into_inner();
        let json = serde_json::to_value(yaml).map_err(|e| format!("role `{role}`: DNA properties: {e}"))?;
        properties.insert(role.clone(), json);
    }
    Ok(properties)
}

async fn resolve_role_hashes(
    bundle: AppBundle,
    network_seed: Option<String>,
    overrides: HashMap<String, DnaModifiersOpt<YamlProperties>>,
) -> Result<BTreeMap<String, String>, String> {
    let mut manifest: AppManifest = bundle.manifest().clone();
    if let Some(seed) = network_seed {
        manifest.set_network_seed(seed);
    }
    manifest.override_modifiers(overrides).map_err(|e| e.to_string())?;
    let bundle = AppBundle::from(bundle.into_inner().update_manifest(manifest).map_err(|e| e.to_string())?);
    let resolution = bundle.resolve_cells(Default::default(), Default::default()).await.map_err(|e| e.to_string())?;
    Ok(resolution
        .role_assignments
        .iter()
        .filter_map(|(role, assignment)| Some((role.clone(), assignment.as_primary()?.dna_hash().to_string())))
        .collect())
}

/// An extra bundle for `holochain.install_dna`: a hApp as it is, or a DNA wrapped into a
/// one-role hApp whose role is named after the DNA.
pub struct ExtraBundle {
    pub bytes: bytes::Bytes,
    /// The hApp's name (the default app id).
    pub name: String,
    /// Role → DNA hash as the conductor will compute it with `network_seed`.
    pub role_hashes: BTreeMap<String, String>,
}

pub async fn extra_bundle(path: &Path, network_seed: Option<String>) -> Result<ExtraBundle, String> {
    let raw = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let happ = match AppBundle::unpack(raw.as_slice()) {
        Ok(happ) => happ,
        Err(happ_error) => {
            let dna = DnaBundle::unpack(raw.as_slice()).map_err(|dna_error| {
                format!("{} is neither a hApp bundle ({happ_error}) nor a DNA bundle ({dna_error})", path.display())
            })?;
            let name = dna.manifest().name();
            let manifest: AppManifest = serde_json::from_value(serde_json::json!({
                "manifest_version": "0",
                "name": name,
                "roles": [{ "name": name, "provisioning": { "strategy": "create", "deferred": false },
                            "dna": { "path": format!("{name}.dna") } }]
            }))
            .map_err(|e| format!("cannot wrap DNA `{name}` into a hApp: {e}"))?;
            AppBundle::new(manifest, [(format!("{name}.dna"), dna)]).map_err(|e| e.to_string())?
        }
    };
    let name = happ.manifest().app_name().to_string();
    let bytes = happ.pack().map_err(|e| e.to_string())?;
    let role_hashes = resolve_role_hashes(happ, network_seed, HashMap::new()).await?;
    Ok(ExtraBundle { bytes, name, role_hashes })
}

fn read(path: &Path) -> Result<String, ManifestError> {
    std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.into(), source })
}
