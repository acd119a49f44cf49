//! Joining a Ripple network through a conductor's admin websocket, and talking to the cells
//! through its app websocket: install the hApp once, enable it, attach an app interface, authorise
//! signing credentials, then zome calls and the network view (`holochain.join_mesh`'s outputs).
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use holochain_client::{
    AdminWebsocket, AgentPubKey, AllowedOrigins, AppInfo, AppStatusFilter, AppWebsocket,
    AuthorizeSigningCredentialsPayload, CellId, CellInfo, ClientAgentSigner, ExternIO,
    IssueAppAuthenticationTokenPayload, WebsocketConfig, ZomeCallTarget,
};
use holochain_types::app::{AppBundleSource, InstallAppPayload, RoleSettings};
use holochain_types::prelude::{
    AppStatus, GrantConstraint, GrantZomeCallCapabilityGrant, GrantZomeCallCapabilityPayload, GrantedFunctions,
    MembraneProof, ZomeCallGrant, CAP_SECRET_BYTES,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::manifests::{CheckedBundle, Network, POLICY_ROLE};
use crate::metrics::Metrics;
use policy_store_types::PolicyProperties;

/// The installed app id of the ripple hApp on every conductor.
pub const APP_ID: &str = "ripple";
/// The role whose network the mesh status describes.
pub const PRIMARY_ROLE: &str = "agent_registry";
/// The role of the memory_shards DNA (collections' shard maps and claims).
pub const SHARDS_ROLE: &str = "memory_shards";
/// The role of the resource_mesh DNA (offers, requests, grants).
pub const RESOURCES_ROLE: &str = "resource_mesh";

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("cannot reach the conductor's admin websocket at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("conductor refused `{step}`: {reason}")]
    Conductor { step: &'static str, reason: String },
    #[error(
        "the conductor already has `{APP_ID}` installed with other DNAs than network `{network}` uses \
         ({differences}). This data dir or conductor belongs to another network or build: use another \
         --data dir, or --network that matches it"
    )]
    OtherNetwork { network: String, differences: String },
    #[error("zome call {zome}.{function} failed: {reason}")]
    ZomeCall { zome: String, function: String, reason: String },
    #[error(
        "network `{network}` is administered by the node that created it: pass --policy-admin KEY to join it \
         (the first node prints its key next to its bootstrap URL)"
    )]
    PolicyAdminUnknown { network: String },
    #[error(
        "this data dir joined network `{network}` with policy admin {installed}, not {given}: it belongs to \
         another ripple-local network; use another --data for this one"
    )]
    OtherPolicyAdmin { network: String, installed: String, given: String },
    #[error(
        "network `{network}` admits only invited agents. This node's agent key is {agent}: ask a network admin \
         to run `ripple network invite {agent}`, then start this node again with --invite FILE"
    )]
    NotInvited { network: String, agent: AgentPubKey },
}

/// How this node joins a network that admits by invitation (a created network).
#[derive(Debug, Clone, Default)]
pub struct Admission {
    /// The key to install with, generated before the install so that it could be invited.
    pub agent_key: Option<AgentPubKey>,
    /// The invitation's membrane proof, given to every role.
    pub proof: Option<MembraneProof>,
    /// The network admits only invited agents and this key is not one of its admins.
    pub needs_invitation: bool,
}

/// Who publishes policy on a network whose creator is its admin (`creator_is_policy_admin`).
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyAdmin {
    /// This node creates the network: its own agent key, generated before the install, is the admin.
    Create,
    /// This node joins the network that the node with this key created.
    Join(AgentPubKey),
    /// Joining without the key: fine when this data dir has joined before, refused otherwise.
    Unknown,
}

/// A joined node: admin and app websockets to the conductor, and the cells of the hApp.
pub struct Mesh {
    admin: AdminWebsocket,
    app: AppWebsocket,
    pub admin_port: u16,
    pub app_port: u16,
    pub agent: AgentPubKey,
    /// Role name → cell.
    pub cells: BTreeMap<String, CellId>,
    /// True when this start installed the hApp (the first start of a data dir).
    pub installed_now: bool,
    /// On a network whose creator is its policy admin: that creator.
    pub policy_admin: Option<AgentPubKey>,
    metrics: Arc<Metrics>,
}

/// This node's signed agent infos and the addresses they give (which change when the node
/// restarts; the infos themselves are re-signed every few minutes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnAgentInfos {
    pub signed: Vec<String>,
    pub urls: std::collections::BTreeSet<String>,
}

/// What a web page needs to call zomes on this node's conductor itself.
#[derive(Debug, Clone)]
pub struct AppSession {
    pub app_port: u16,
    pub token: Vec<u8>,
    pub cap_secret: Vec<u8>,
}

/// `holochain.join_mesh`'s cell_ids entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CellReport {
    pub role: String,
    pub dna_hash: String,
    pub agent_pubkey: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MeshStatus {
    /// Peers known and gossip has completed with at least one of them; nothing pending.
    Connected,
    /// Peers known, but no gossip round has completed yet or ops are still being fetched.
    Syncing,
    /// No other peer known.
    Isolated,
}

impl MeshStatus {
    /// From the peers known and the gossip figures; unknown figures (none completed, none
    /// pending) never make `connected`.
    fn of(peers: usize, completed_gossip_rounds: u64, pending_fetch_ops: usize) -> Self {
        match (peers, completed_gossip_rounds, pending_fetch_ops) {
            (0, _, _) => MeshStatus::Isolated,
            (_, 0, _) | (_, _, 1..) => MeshStatus::Syncing,
            _ => MeshStatus::Connected,
        }
    }
}

/// A peer the conductor knows in the primary role's space.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerSeen {
    pub agent_pubkey: String,
    pub url: Option<String>,
    /// When its signed agent info expires (unix ms); kitsune2 re-signs live agents before this.
    pub expires_at_ms: i64,
}

/// What the conductor's network layer says about the primary space.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkView {
    pub peer_count: usize,
    pub mesh_status: MeshStatus,
    pub peers_seen: Vec<PeerSeen>,
    pub last_gossip_ms: Option<i64>,
    pub completed_gossip_rounds: u64,
    pub pending_fetch_ops: usize,
    /// Why the gossip figures are unknown (the metrics call failed); `mesh_status` is then at
    /// most `syncing`, never `connected` unconfirmed.
    pub gossip_error: Option<String>,
    /// Messages the transport dropped because it knew no agent at the sender's (or receiver's)
    /// address, summed over peers and DNAs (`dump_network_stats`): a peer that restarted at an
    /// address this node has not learnt yet (docs/reliability.md). None when the call failed.
    pub blocked_messages: Option<BlockedMessages>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedMessages {
    pub incoming: u64,
    pub outgoing: u64,
}

impl Mesh {
    /// Connects to the admin websocket on loopback, installs the hApp if it is not installed yet
    /// (refusing an installed one with other DNA hashes), enables it and connects an app websocket.
    pub async fn join(
        admin_port: u16,
        bundle: &CheckedBundle,
        network: &Network,
        policy_admin: &PolicyAdmin,
        admission: &Admission,
        metrics: Arc<Metrics>,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Self, MeshError> {
        let admin = connect_admin(admin_port, SETUP_TIMEOUT).await?;

        let existing = admin.list_apps(None::<AppStatusFilter>).await.map_err(step("list_apps"))?;
        let (info, installed_now) = match existing.into_iter().find(|a| a.installed_app_id == APP_ID) {
            Some(info) => (info, false),
            None => {
                let (agent_key, admin_key) = match (network.spec.creator_is_policy_admin, policy_admin) {
                    (false, _) => (None, None),
                    (true, PolicyAdmin::Join(key)) => (None, Some(key.clone())),
                    (true, PolicyAdmin::Create) => {
                        let key = admin.generate_agent_pub_key().await.map_err(step("generate_agent_pub_key"))?;
                        progress(&format!(
                            "this node creates network `{}`: its key {key} is the policy admin",
                            network.name
                        ));
                        (Some(key.clone()), Some(key))
                    }
                    (true, PolicyAdmin::Unknown) => {
                        return Err(MeshError::PolicyAdminUnknown { network: network.name.clone() })
                    }
                };
                let agent_key = agent_key.or(admission.agent_key.clone());
                if let (true, None, Some(agent)) = (admission.needs_invitation, &admission.proof, &agent_key) {
                    return Err(MeshError::NotInvited { network: network.name.clone(), agent: agent.clone() });
                }
                progress("installing the ripple hApp (first start: genesis of each cell)");
                let roles = bundle.role_hashes.keys();
                let roles_settings = role_settings(network, admin_key.as_ref(), roles, admission.proof.as_ref())?;
                let info = still_waiting(
                    "install_app",
                    progress,
                    admin.install_app(InstallAppPayload {
                        source: AppBundleSource::Bytes(bundle.bytes.clone()),
                        agent_key,
                        installed_app_id: Some(APP_ID.into()),
                        network_seed: Some(network.spec.network_seed.clone()),
                        roles_settings,
                        ignore_genesis_failure: false,
                        restore_from_dht: false,
                    }),
                )
                .await
                .map_err(step("install_app"))?;
                (info, true)
            }
        };
        let installed_admin = installed_policy_admin(&admin, &info, network).await?;
        if let (PolicyAdmin::Join(given), Some(installed)) = (policy_admin, &installed_admin) {
            if given != installed {
                return Err(MeshError::OtherPolicyAdmin {
                    network: network.name.clone(),
                    installed: installed.to_string(),
                    given: given.to_string(),
                });
            }
        }
        check_installed_hashes(&info, bundle, network, installed_admin.as_ref()).await?;
        if !matches!(info.status, AppStatus::Enabled) {
            progress("enabling the ripple hApp (first start: init of each cell)");
            unless_busy("enable_app", progress, || admin.enable_app(APP_ID.into())).await?;
        }

        let interfaces = admin.list_app_interfaces().await.map_err(step("list_app_interfaces"))?;
        let app_port = match interfaces.iter().find(|i| {
            matches!(i.allowed_origins, AllowedOrigins::Any)
                && i.installed_app_id.as_deref().is_none_or(|id| id == APP_ID)
        }) {
            Some(interface) => interface.port,
            None => admin
                .attach_app_interface(0, None, AllowedOrigins::Any, Some(APP_ID.into()))
                .await
                .map_err(step("attach_app_interface"))?,
        };

        let cells = provisioned_cells(&info);
        let signer = ClientAgentSigner::default();
        for cell_id in cells.values() {
            let credentials = unless_busy("authorize_signing_credentials", progress, || {
                admin.authorize_signing_credentials(AuthorizeSigningCredentialsPayload {
                    cell_id: cell_id.clone(),
                    functions: None,
                })
            })
            .await?;
            signer.add_credentials(cell_id.clone(), credentials);
        }
        let token = admin
            .issue_app_auth_token(IssueAppAuthenticationTokenPayload::for_installed_app_id(APP_ID.into()))
            .await
            .map_err(step("issue_app_auth_token"))?
            .token;
        let app = AppWebsocket::connect(("127.0.0.1", app_port), token, signer.into(), None).await.map_err(|e| {
            MeshError::Connect { url: format!("ws://127.0.0.1:{app_port} (app)"), reason: e.to_string() }
        })?;

        Ok(Self {
            admin: connect_admin(admin_port, WebsocketConfig::CLIENT_DEFAULT.default_request_timeout).await?,
            app,
            admin_port,
            app_port,
            agent: info.agent_pub_key.clone(),
            cells,
            installed_now,
            policy_admin: installed_admin,
            metrics,
        })
    }

    /// Installs an extra app under this node's agent key and enables it, or reports the app
    /// already installed as `app_id` if its DNAs are `role_hashes`. Returns its cells and whether
    /// this call installed it.
    pub async fn install_extra(
        &self,
        app_id: &str,
        bytes: bytes::Bytes,
        network_seed: Option<String>,
        role_hashes: &BTreeMap<String, String>,
    ) -> Result<(Vec<CellReport>, bool), MeshError> {
        let setup = connect_admin(self.admin_port, SETUP_TIMEOUT).await?;
        let log = |line: &str| tracing::info!("{line}");
        let existing = setup.list_apps(None::<AppStatusFilter>).await.map_err(step("list_apps"))?;
        let (info, installed_now) = match existing.into_iter().find(|a| a.installed_app_id == app_id) {
            Some(info) => (info, false),
            None => {
                let payload = InstallAppPayload {
                    source: AppBundleSource::Bytes(bytes),
                    agent_key: Some(self.agent.clone()),
                    installed_app_id: Some(app_id.into()),
                    network_seed,
                    roles_settings: None,
                    ignore_genesis_failure: false,
                    restore_from_dht: false,
                };
                let installing = setup.install_app(payload);
                (still_waiting("install_app", &log, installing).await.map_err(step("install_app"))?, true)
            }
        };
        let installed: BTreeMap<String, String> =
            provisioned_cells(&info).iter().map(|(role, id)| (role.clone(), id.dna_hash().to_string())).collect();
        if &installed != role_hashes {
            return Err(MeshError::Conductor {
                step: "install_app",
                reason: format!(
                    "app `{app_id}` is installed with DNAs {installed:?}, not the bundle's {role_hashes:?}; \
                     choose another app_id"
                ),
            });
        }
        if !matches!(info.status, AppStatus::Enabled) {
            unless_busy("enable_app", &log, || setup.enable_app(app_id.into())).await?;
        }
        let cells = provisioned_cells(&info)
            .into_iter()
            .map(|(role, id)| CellReport {
                role,
                dna_hash: id.dna_hash().to_string(),
                agent_pubkey: id.agent_pubkey().to_string(),
            })
            .collect();
        Ok((cells, installed_now))
    }

    /// Calls `zome.function` in `role`'s cell, timing each attempt into the zome-call histogram.
    /// A call whose commit Holochain left incomplete is repeated (see [`INCOMPLETE_COMMIT_RETRY`]).
    pub async fn call<I, O>(&self, role: &str, zome: &str, function: &str, input: &I) -> Result<O, MeshError>
    where
        I: Serialize + std::fmt::Debug,
        O: DeserializeOwned + std::fmt::Debug,
    {
        let fail = |reason: String| MeshError::ZomeCall { zome: zome.into(), function: function.into(), reason };
        let first = Instant::now();
        let mut pause = INCOMPLETE_COMMIT_FIRST_PAUSE;
        loop {
            // Encoded for each attempt: the client takes the payload, and a repeat is rare.
            let payload = ExternIO::encode(input).map_err(|e| fail(e.to_string()))?;
            let started = Instant::now();
            let result =
                self.app.call_zome(ZomeCallTarget::RoleName(role.into()), zome.into(), function.into(), payload).await;
            self.metrics.observe_zome_call(zome, function, started.elapsed(), result.is_ok());
            match result {
                Ok(output) => return output.decode().map_err(|e| fail(e.to_string())),
                Err(e) if incomplete_commit(&e) && first.elapsed() + pause < INCOMPLETE_COMMIT_RETRY => {
                    tracing::debug!(zome, function, "commit incomplete, a record it names is not here yet; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(INCOMPLETE_COMMIT_MAX_PAUSE);
                }
                Err(e) => return Err(fail(zome_error_text(&e))),
            }
        }
    }

    /// Calls `handler` with each signal `role`'s cell emits to this node's app clients that
    /// decodes as `T` (other signals of that cell, and of other cells, pass it by).
    pub async fn on_signal<T, F>(&self, role: &str, handler: F)
    where
        T: DeserializeOwned + std::fmt::Debug,
        F: Fn(T) + Send + Sync + 'static,
    {
        let Some(cell) = self.cells.get(role).cloned() else { return };
        self.app
            .on_signal(move |signal| {
                if let holochain_types::signal::Signal::App { cell_id, signal, .. } = signal {
                    if cell_id == cell {
                        if let Ok(decoded) = signal.into_inner().decode::<T>() {
                            handler(decoded);
                        }
                    }
                }
            })
            .await;
    }

    pub fn cell_reports(&self) -> Vec<CellReport> {
        self.cells
            .iter()
            .map(|(role, id)| CellReport {
                role: role.clone(),
                dna_hash: id.dna_hash().to_string(),
                agent_pubkey: id.agent_pubkey().to_string(),
            })
            .collect()
    }

    /// A web page's access to the conductor's app websocket: a single-use app token (30 s), and on
    /// every cell a zome-call grant to `signing_key` for the functions `allowed` names (by role).
    pub async fn open_app_session(
        &self,
        signing_key: AgentPubKey,
        allowed: &BTreeMap<&str, Vec<(&str, &str)>>,
    ) -> Result<AppSession, MeshError> {
        let mut secret = [0u8; CAP_SECRET_BYTES];
        getrandom::fill(&mut secret).map_err(|e| MeshError::Conductor { step: "cap secret", reason: e.to_string() })?;
        for (role, cell_id) in &self.cells {
            let functions = allowed.get(role.as_str()).into_iter().flatten();
            let functions = functions.map(|(zome, function)| ((*zome).into(), (*function).into())).collect();
            let payload = GrantZomeCallCapabilityPayload {
                cell_id: cell_id.clone(),
                cap_grant: GrantZomeCallCapabilityGrant {
                    tag: "ripple dashboard".into(),
                    constraint: GrantConstraint::Assigned {
                        secret: secret.into(),
                        assignees: std::collections::BTreeSet::from([signing_key.clone()]),
                    },
                    grant: ZomeCallGrant { functions: GrantedFunctions::Listed(functions) },
                },
            };
            self.admin.grant_zome_call_capability(payload).await.map_err(step("grant_zome_call_capability"))?;
        }
        let token = self
            .admin
            .issue_app_auth_token(IssueAppAuthenticationTokenPayload::for_installed_app_id(APP_ID.into()))
            .await
            .map_err(step("issue_app_auth_token"))?
            .token;
        Ok(AppSession { app_port: self.app_port, token, cap_secret: secret.to_vec() })
    }

    /// Peers, gossip and fetch state of the primary role's space.
    /// This node's own signed agent infos, one per cell's DNA: what a peer needs to reach it
    /// (its current URL). Read from the conductor's peer store, which holds them from the start.
    pub async fn own_agent_infos(&self) -> Result<OwnAgentInfos, MeshError> {
        let dnas = self.cells.values().map(|c| c.dna_hash().clone()).collect();
        let infos = self.admin.agent_info(Some(dnas)).await.map_err(step("agent_info"))?;
        let signed: Vec<String> = infos.into_iter().filter(|signed| is_info_of(signed, &self.agent)).collect();
        let urls = signed.iter().filter_map(|s| decode_agent_info(s)?.url.map(|u| u.as_str().to_string())).collect();
        Ok(OwnAgentInfos { signed, urls })
    }

    /// Adds `agent`'s signed agent infos to the conductor's peer store (a node that restarted and
    /// handed them over itself). Infos of any other agent are dropped; the conductor checks each
    /// signature. Returns how many were added.
    pub async fn add_agent_infos_of(&self, agent: &AgentPubKey, infos: Vec<String>) -> Result<usize, MeshError> {
        let own: Vec<String> = infos.into_iter().filter(|signed| is_info_of(signed, agent)).collect();
        let count = own.len();
        if count > 0 {
            self.admin.add_agent_info(own).await.map_err(step("add_agent_info"))?;
        }
        Ok(count)
    }

    /// The transport's dropped-message counts, summed over peers and DNAs (see `NetworkView`).
    pub async fn blocked_messages(&self) -> Result<BlockedMessages, MeshError> {
        let stats = self.admin.dump_network_stats().await.map_err(step("dump_network_stats"))?;
        let counts = stats.blocked_message_counts.values().flat_map(|per_dna| per_dna.values());
        Ok(counts.fold(BlockedMessages::default(), |sum, c| BlockedMessages {
            incoming: sum.incoming + u64::from(c.incoming),
            outgoing: sum.outgoing + u64::from(c.outgoing),
        }))
    }

    /// Every other agent's info the bootstrap server holds for each of this node's spaces, added
    /// to the conductor's peer store now rather than at its next poll (up to a minute away): how
    /// a peer that restarted at a new address is reached again at once, in every DNA. Returns
    /// how many infos were added.
    pub async fn refresh_peers_from(&self, bootstrap: &url::Url) -> Result<usize, MeshError> {
        use base64::Engine;
        let fail = |reason: String| MeshError::Conductor { step: "read the bootstrap server", reason };
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(5)).build().map_err(|e| fail(e.to_string()))?;
        let mut infos = Vec::new();
        for cell in self.cells.values() {
            let space = base64::prelude::BASE64_URL_SAFE_NO_PAD.encode(cell.dna_hash().get_raw_32());
            let mut url = bootstrap.clone();
            url.set_path(&format!("bootstrap/{space}"));
            let response = client.get(url.clone()).send().await.map_err(|e| fail(format!("{url}: {e}")))?;
            let listed: Vec<serde_json::Value> = response
                .error_for_status()
                .map_err(|e| fail(format!("{url}: {e}")))?
                .json()
                .await
                .map_err(|e| fail(format!("{url}: {e}")))?;
            infos.extend(listed.iter().map(|v| v.to_string()).filter(|signed| !is_info_of(signed, &self.agent)));
        }
        let count = infos.len();
        if count > 0 {
            self.admin.add_agent_info(infos).await.map_err(step("add_agent_info"))?;
        }
        Ok(count)
    }

    /// The other agents the conductor's peer store holds a live agent info of, for the
    /// agent_registry space: the peers this node can reach.
    async fn peer_infos(&self) -> Result<Vec<(AgentPubKey, kitsune2_api::AgentInfo)>, MeshError> {
        let dna = self.cells.get(PRIMARY_ROLE).map(|c| c.dna_hash().clone());
        let infos = self.admin.agent_info(dna.map(|d| vec![d])).await.map_err(step("agent_info"))?;
        let now_ms = unix_ms();
        Ok(infos
            .iter()
            .filter_map(|signed| decode_agent_info(signed))
            .filter(|info| !info.is_tombstone && info.expires_at.as_micros() / 1000 > now_ms)
            .map(|info| (AgentPubKey::from_k2_agent(&info.agent), info))
            .filter(|(agent, _)| agent != &self.agent)
            .collect())
    }

    /// The agents of [`Self::peer_infos`].
    pub async fn known_peers(&self) -> Result<Vec<AgentPubKey>, MeshError> {
        Ok(self.peer_infos().await?.into_iter().map(|(agent, _)| agent).collect())
    }

    pub async fn network_view(&self) -> Result<NetworkView, MeshError> {
        let dna = self.cells.get(PRIMARY_ROLE).map(|c| c.dna_hash().clone());
        let mut peers_seen: Vec<PeerSeen> = self
            .peer_infos()
            .await?
            .into_iter()
            .map(|(agent, info)| PeerSeen {
                agent_pubkey: agent.to_string(),
                url: info.url.as_ref().map(|u| u.as_str().to_string()),
                expires_at_ms: info.expires_at.as_micros() / 1000,
            })
            .collect();
        peers_seen.sort_by(|a, b| a.agent_pubkey.cmp(&b.agent_pubkey));

        // The gossip figures are diagnostics: a conductor too busy to dump its metrics in time
        // still has a status, reported with the figures unknown and the reason.
        let metrics = self.admin.dump_network_metrics(dna.clone(), false).await.map_err(step("dump_network_metrics"));
        let gossip_error = metrics.as_ref().err().map(ToString::to_string);
        let space = metrics.as_ref().ok().zip(dna.as_ref()).and_then(|(metrics, d)| metrics.get(d));
        let (last_gossip_ms, completed_gossip_rounds, pending_fetch_ops) = match space {
            Some(m) => (
                m.gossip_state_summary
                    .peer_meta
                    .values()
                    .filter_map(|p| p.last_gossip_timestamp.map(|t| t.as_micros() / 1000))
                    .max(),
                m.gossip_state_summary.peer_meta.values().map(|p| u64::from(p.completed_rounds.unwrap_or(0))).sum(),
                m.fetch_state_summary.pending_requests.len(),
            ),
            None => (None, 0, 0),
        };
        let blocked_messages = self.blocked_messages().await.ok();
        Ok(NetworkView {
            blocked_messages,
            peer_count: peers_seen.len(),
            mesh_status: MeshStatus::of(peers_seen.len(), completed_gossip_rounds, pending_fetch_ops),
            peers_seen,
            last_gossip_ms,
            completed_gossip_rounds,
            pending_fetch_ops,
            gossip_error,
        })
    }
}

/// Installing an app runs genesis, and enabling one compiles every zome's wasm (40 s for the ripple
/// hApp on an idle 2-core VM; minutes on a Raspberry Pi or a machine busy with other conductors):
/// far past the client's default 60 s request timeout. The admin connection that installs and
/// enables waits this long instead, so a slow first start is never cut off. Cutting it off would
/// not stop the conductor, and a re-sent enable_app would race the one still running.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How often a long admin call says that it is still running.
const STILL_WAITING_EVERY: Duration = Duration::from_secs(30);

async fn connect_admin(port: u16, request_timeout: Duration) -> Result<AdminWebsocket, MeshError> {
    let mut config = WebsocketConfig::CLIENT_DEFAULT;
    config.default_request_timeout = request_timeout;
    AdminWebsocket::connect_with_config(("127.0.0.1", port), Arc::new(config), None)
        .await
        .map_err(|e| MeshError::Connect { url: format!("ws://127.0.0.1:{port}"), reason: e.to_string() })
}

/// Awaits a long admin call, printing a progress line every 30 s so a slow start shows it is alive.
async fn still_waiting<T>(
    what: &str,
    progress: &(dyn Fn(&str) + Sync),
    call: impl std::future::Future<Output = T>,
) -> T {
    still_waiting_every(STILL_WAITING_EVERY, what, progress, call).await
}

async fn still_waiting_every<T>(
    period: Duration,
    what: &str,
    progress: &(dyn Fn(&str) + Sync),
    call: impl std::future::Future<Output = T>,
) -> T {
    let started = Instant::now();
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(call);
    loop {
        tokio::select! {
            done = &mut call => return done,
            _ = every.tick() => progress(&format!("still waiting for the conductor's {what} ({} s)", started.elapsed().as_secs())),
        }
    }
}

/// How long a zome call is repeated while Holochain answers that its commit "could not be
/// completed but may be retried" (`IncompleteCommit`): validating it needs a record this node
/// could not fetch yet (`DepMissingFromDht`), as when a node that just started writes a policy
/// decision naming a bundle its peers hold. Nothing of the call was written, so repeating it is
/// safe (the one message a zome function sends before its commits are final, an advert's news
/// signal, is only sent again).
const INCOMPLETE_COMMIT_RETRY: Duration = Duration::from_secs(20);
const INCOMPLETE_COMMIT_FIRST_PAUSE: Duration = Duration::from_millis(250);
const INCOMPLETE_COMMIT_MAX_PAUSE: Duration = Duration::from_secs(4);

fn incomplete_commit(e: &holochain_client::ConductorApiError) -> bool {
    format!("{e:?}").contains("could not be completed but may be retried")
}

/// Admin calls that write (enabling an app writes the conductor's state, a signing grant commits
/// to the cell's chain) can be refused only because SQLite stayed locked past its busy timeout
/// ("database is locked"), on a machine loaded by other conductors' writes. The conductor has then
/// given up on the call, and both are safe to repeat, so it is retried after a pause rather than
/// failing the start.
const BUSY_ATTEMPTS: u32 = 3;

async fn unless_busy<T, F, Fut>(what: &'static str, progress: &(dyn Fn(&str) + Sync), call: F) -> Result<T, MeshError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, holochain_client::ConductorApiError>>,
{
    let mut attempt = 1;
    loop {
        match still_waiting(what, progress, call()).await {
            Ok(done) => return Ok(done),
            Err(e) if busy(&e) && attempt < BUSY_ATTEMPTS => {
                progress(&format!("the conductor is busy ({what}: {e}); retrying, {attempt} of {}", BUSY_ATTEMPTS - 1));
                tokio::time::sleep(Duration::from_secs(2 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(step(what)(e)),
        }
    }
}

fn busy(e: &holochain_client::ConductorApiError) -> bool {
    format!("{e:?}").contains("database is locked")
}

/// Maps a failed admin call to an error naming the step.
fn step(step: &'static str) -> impl Fn(holochain_client::ConductorApiError) -> MeshError {
    move |e| MeshError::Conductor { step, reason: format!("{e:?}") }
}

/// The hApp's provisioned cells by role.
fn provisioned_cells(info: &AppInfo) -> BTreeMap<String, CellId> {
    info.cell_info
        .iter()
        .flat_map(|(role, cells)| {
            cells.iter().filter_map(move |c| match c {
                CellInfo::Provisioned(p) => Some((role.clone(), p.cell_id.clone())),
                _ => None,
            })
        })
        .collect()
}

/// An installed hApp must run exactly the DNAs the network pins (with its policy admin, on a
/// network whose creator is its admin).
async fn check_installed_hashes(
    info: &AppInfo,
    bundle: &CheckedBundle,
    network: &Network,
    policy_admin: Option<&AgentPubKey>,
) -> Result<(), MeshError> {
    let wanted = match policy_admin {
        Some(admin) => crate::manifests::role_hashes(&bundle.bytes, network, Some(&admin.to_string()))
            .await
            .map_err(|reason| MeshError::Conductor { step: "install_app", reason })?,
        None => bundle.role_hashes.clone(),
    };
    let installed: BTreeMap<String, String> =
        provisioned_cells(info).into_iter().map(|(role, id)| (role, id.dna_hash().to_string())).collect();
    if installed == wanted {
        return Ok(());
    }
    let differences = wanted
        .iter()
        .filter(|(role, hash)| installed.get(*role) != Some(hash))
        .map(|(role, hash)| {
            format!("{role}: installed {}, network wants {hash}", installed.get(role).map_or("nothing", String::as_str))
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(MeshError::OtherNetwork { network: network.name.clone(), differences })
}

/// The admin written into the installed policy_store DNA's properties, on a network whose creator
/// is its admin (read back from the conductor, so a restart needs no flag).
async fn installed_policy_admin(
    admin: &AdminWebsocket,
    info: &AppInfo,
    network: &Network,
) -> Result<Option<AgentPubKey>, MeshError> {
    if !network.spec.creator_is_policy_admin {
        return Ok(None);
    }
    let Some(cell) = provisioned_cells(info).remove(POLICY_ROLE) else {
        return Ok(None); // check_installed_hashes names the missing role
    };
    let dna = admin.get_dna_definition(cell).await.map_err(step("get_dna_definition"))?;
    let bytes = dna.modifiers.properties;
    if matches!(bytes.bytes().as_slice(), [] | [0xc0]) {
        return Ok(None);
    }
    let properties = PolicyProperties::try_from(bytes).map_err(|e| MeshError::Conductor {
        step: "get_dna_definition",
        reason: format!("the installed {POLICY_ROLE} properties do not decode: {e:?}"),
    })?;
    Ok(properties.admins.first().cloned().map(AgentPubKey::from))
}

/// The install's per-role settings: the network's property overrides, and the membrane proof
/// (the same invitation, naming every DNA) for each of `roles`.
fn role_settings<'a>(
    network: &Network,
    policy_admin: Option<&AgentPubKey>,
    roles: impl Iterator<Item = &'a String>,
    proof: Option<&MembraneProof>,
) -> Result<Option<HashMap<String, RoleSettings>>, MeshError> {
    let admin = policy_admin.map(|key| key.to_string());
    let mut modifiers = network
        .role_modifiers(admin.as_deref())
        .map_err(|reason| MeshError::Conductor { step: "install_app", reason })?;
    let roles: Vec<String> = match proof {
        Some(_) => roles.cloned().collect(),
        None => modifiers.keys().cloned().collect(),
    };
    if roles.is_empty() {
        return Ok(None);
    }
    let settings = roles
        .into_iter()
        .map(|role| {
            let settings = RoleSettings::Provisioned {
                membrane_proof: proof.cloned(),
                modifiers: modifiers.remove(&role),
                init_properties: None,
            };
            (role, settings)
        })
        .collect::<Vec<_>>();
    Ok(Some(settings.into_iter().collect()))
}

/// A new agent key in the conductor's keystore, for a node that must be invited before it installs.
pub async fn generate_agent_key(admin_port: u16) -> Result<AgentPubKey, MeshError> {
    let admin = connect_admin(admin_port, WebsocketConfig::CLIENT_DEFAULT.default_request_timeout).await?;
    admin.generate_agent_pub_key().await.map_err(step("generate_agent_pub_key"))
}

fn is_info_of(signed: &str, agent: &AgentPubKey) -> bool {
    decode_agent_info(signed).is_some_and(|info| !info.is_tombstone && info.agent == agent.to_k2_agent())
}

fn decode_agent_info(signed: &str) -> Option<kitsune2_api::AgentInfo> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Signed {
        agent_info: String,
    }
    let outer: Signed = serde_json::from_str(signed).ok()?;
    serde_json::from_str(&outer.agent_info).ok()
}

/// Zome errors arrive wrapped in several layers of Debug; keep the guest's own message.
fn zome_error_text(e: &holochain_client::ConductorApiError) -> String {
    use holochain_client::ConductorApiError::WebsocketError;
    if let WebsocketError(holochain_websocket::WebsocketError::Timeout(_)) = e {
        return "the conductor did not answer within 60 s (busy, or the peers it asked did not reply); \
                try again"
            .into();
    }
    let text = format!("{e:?}");
    match text.find("Guest(\"") {
        Some(start) => {
            let rest = &text[start + 7..];
            rest.find("\")").map_or(text.clone(), |end| rest[..end].replace("\\\"", "\""))
        }
        None => text,
    }
}

pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use holochain_client::ConductorApiError;
    use holochain_conductor_api::ExternalApiWireError;

    use super::{busy, incomplete_commit, still_waiting_every, MeshStatus};

    #[test]
    fn connected_needs_peers_a_completed_round_and_nothing_pending() {
        assert_eq!(MeshStatus::of(0, 5, 0), MeshStatus::Isolated);
        assert_eq!(MeshStatus::of(2, 0, 0), MeshStatus::Syncing, "as when the gossip figures are unknown");
        assert_eq!(MeshStatus::of(2, 3, 1), MeshStatus::Syncing);
        assert_eq!(MeshStatus::of(2, 3, 0), MeshStatus::Connected);
    }

    #[tokio::test]
    async fn a_long_call_says_it_is_still_running_until_it_answers() {
        let lines = std::sync::Mutex::new(Vec::new());
        let record = |line: &str| lines.lock().unwrap().push(line.to_string());
        let period = std::time::Duration::from_millis(100);
        let started = std::time::Instant::now();
        still_waiting_every(period, "enable_app", &record, tokio::time::sleep(period * 5)).await;
        let periods = started.elapsed().as_millis() / period.as_millis();
        let lines = lines.into_inner().unwrap();
        // Four or so: at most one per period, however the machine schedules this test.
        assert!(!lines.is_empty() && lines.len() as u128 <= periods, "{lines:?} in {periods} periods");
        assert!(lines.iter().all(|l| l.starts_with("still waiting for the conductor's enable_app (")), "{lines:?}");
        let quick = still_waiting_every(period, "list_apps", &|line: &str| panic!("{line}"), async { 7 }).await;
        assert_eq!(quick, 7);
    }

    #[tokio::test]
    async fn a_locked_database_is_busy_a_timeout_or_a_refusal_is_not() {
        // As the conductor answered enable_app in CI when SQLite stayed locked.
        let locked = ConductorApiError::ExternalApiWireError(ExternalApiWireError::InternalError(
            "Conductor returned an error while using a ConductorApi: StateMutationError(Sqlx(Database(SqliteError \
             { code: 517, message: \"database is locked\" })))"
                .into(),
        ));
        assert!(busy(&locked));
        let elapsed = tokio::time::timeout(std::time::Duration::ZERO, std::future::pending::<()>()).await.unwrap_err();
        let timeout = ConductorApiError::WebsocketError(holochain_websocket::WebsocketError::Timeout(elapsed));
        assert!(!busy(&timeout), "the conductor may still be carrying the call out: never re-sent");
        assert!(!busy(&ConductorApiError::AppNotFound));
        let refused = ConductorApiError::ExternalApiWireError(ExternalApiWireError::InternalError(
            "AppNotInstalled(\"extra\")".into(),
        ));
        assert!(!busy(&refused));
    }

    #[test]
    fn only_a_commit_holochain_says_may_be_retried_is_repeated() {
        let wire = |text: &str| {
            ConductorApiError::ExternalApiWireError(ExternalApiWireError::InternalError(format!(
                "ExternalApiWireError(InternalError(\"Source chain error: {text}\"))"
            )))
        };
        // As a node 2 s after its start answered `decisions.record_decision` in CI.
        assert!(incomplete_commit(&wire(
            "The commit could not be completed but may be retried: DepMissingFromDht([AnyDhtHash(uhCkkgyJ_-FjGUvV)])"
        )));
        assert!(!incomplete_commit(&wire("InvalidCommit error: DC3 the bundle is not a policy bundle")));
        assert!(!incomplete_commit(&ConductorApiError::AppNotFound));
    }
}
