//! One node's lifecycle: start the conductor, join the mesh (node agent, HTTP API, run file),
//! shut down. `ripple up` runs it start to finish; the MCP tools `holochain.init_conductor` and
//! `holochain.join_mesh` drive the same steps on demand, so both paths check and order things
//! identically. Every check that can fail on bad input runs before anything is written.
pub mod services;
pub mod settings;
pub mod signals;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::artifacts::replication::StoragePolicy;
use crate::artifacts::ArtifactService;
use crate::bootstrap::{self, LocalBootstrap};
use crate::compiled_zomes;
use crate::conductor::{self, EmbeddedConductor, NetworkUrls, PassphraseSource};
use crate::config::DEFAULT_BOOTSTRAP_LISTEN;
use crate::inference::policy::InferencePolicies;
use crate::inference::InferenceService;
use crate::manifests::CheckedBundle;
use crate::mesh::{Admission, Mesh, MeshError, PolicyAdmin};
use crate::metrics::Metrics;
use crate::networks::{InvitationFile, JoinChoice, JoinedRecord, NetworkRecord};
use crate::node::declared::Declared;
use crate::node::liveness::{self, Liveness};
use crate::node::view::MeshView;
use crate::node::{NodeAgent, NodeSettings};
use crate::policy::journal::{AuditJournal, AUDIT_JOURNAL_DIR};
use crate::policy::PolicyService;
use crate::resources::policy::ComputePolicy;
use crate::resources::ResourceService;
use crate::runfile::RunFile;
use crate::shards::placement::MemoryPolicy;
use crate::shards::ShardService;
use holochain_client::AgentPubKey;
use services::{NodeInfo, Services};
use settings::{ConductorChoice, UpError, UpSettings};

const BOOTSTRAP_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a background loop gets to finish its turn on shutdown. One waiting on a network read
/// (a restarted node's reads go to peers until its arc fills) would hold the stop for the
/// conductor's 60 s timeout; its call is the conductor's to finish, so the loop is left.
const LOOP_STOP_GRACE: Duration = Duration::from_secs(5);

/// Which network to run on, over the node's configured one.
#[derive(Debug, Clone, Default)]
pub struct NetworkChoice {
    pub network: Option<String>,
    pub bootstrap: Option<url::Url>,
    /// The creator's key, joining a network whose creator is its policy admin (ripple-local).
    pub policy_admin: Option<AgentPubKey>,
}

/// What `holochain.init_conductor` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConductorReport {
    /// False when the conductor was already running and was left as it is.
    pub started_now: bool,
    pub embedded: bool,
    pub admin_url: String,
    pub data_dir: std::path::PathBuf,
    pub network: String,
    pub network_seed: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap_url: Option<String>,
    pub serving_bootstrap: bool,
    pub holochain_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passphrase_note: Option<String>,
}

/// A node on the mesh: what the API, the CLI and the MCP tools work with.
pub struct Joined {
    pub services: Arc<Services>,
    pub api_url: String,
}

/// A started conductor and what was checked before starting it.
struct Conductor {
    settings: UpSettings,
    bundle: CheckedBundle,
    embedded: Option<EmbeddedConductor>,
    local_bootstrap: Option<LocalBootstrap>,
    admin_port: u16,
    info: NodeInfo,
    api_listener: Option<tokio::net::TcpListener>,
    peer_listener: Option<tokio::net::TcpListener>,
    passphrase_note: Option<String>,
}

/// The tasks of a joined node, stopped by `shutdown`.
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    agent: tokio::task::JoinHandle<()>,
    provider: tokio::task::JoinHandle<()>,
    replication: tokio::task::JoinHandle<()>,
    policy_refresh: tokio::task::JoinHandle<()>,
    /// Commits the audit journal; on stop, what is pending first.
    audit_journal: tokio::task::JoinHandle<()>,
    shard_loop: tokio::task::JoinHandle<()>,
    /// Keeps the mesh view current.
    view_loop: tokio::task::JoinHandle<()>,
    liveness_loop: tokio::task::JoinHandle<()>,
    api: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The peer listener's server, with `--peer-listen`.
    peer_api: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    run_file: RunFile,
}

#[derive(Default)]
struct Stage {
    conductor: Option<Conductor>,
    running: Option<Running>,
}

/// The HTTP routers a joined node serves, handed in by the surface that starts it: the runtime
/// sits below the surfaces and does not know them.
#[derive(Clone, Copy)]
pub struct Routers {
    /// The loopback API (with the dashboard and the OpenAI API).
    pub api: fn(Arc<Services>) -> axum::Router,
    /// The routes other machines' nodes call (`--peer-listen`).
    pub peer: fn(Arc<Services>) -> axum::Router,
}

pub struct Runtime {
    base: UpSettings,
    routers: Routers,
    metrics: Arc<Metrics>,
    stage: tokio::sync::Mutex<Stage>,
    /// Read on every tool call and API request, so kept outside the stage lock.
    joined: RwLock<Option<Arc<Joined>>>,
    started: Instant,
}

impl Runtime {
    pub fn new(base: UpSettings, routers: Routers) -> Arc<Self> {
        Arc::new(Self {
            base,
            routers,
            metrics: Arc::new(Metrics::default()),
            stage: Default::default(),
            joined: RwLock::new(None),
            started: Instant::now(),
        })
    }

    /// The settings from flags, environment and `ripple.toml`.
    pub fn base(&self) -> &UpSettings {
        &self.base
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn joined(&self) -> Option<Arc<Joined>> {
        self.joined.read().ok()?.clone()
    }

    /// Starts (or reports) the conductor for `choice`. An embedded conductor started for another
    /// network is restarted, unless this node has already joined: one network per data dir.
    pub async fn start_conductor(
        &self,
        choice: &NetworkChoice,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<ConductorReport, UpError> {
        let mut stage = self.stage.lock().await;
        if let (Some(current), None, None) = (&stage.conductor, &choice.network, &choice.bootstrap) {
            return Ok(report(current, false));
        }
        let settings = self.resolve(choice)?;
        if let Some(current) = &stage.conductor {
            let same = current.settings.network.name == settings.network.name
                && (choice.bootstrap.is_none() || current.settings.bootstrap == settings.bootstrap);
            if same {
                return Ok(report(current, false));
            }
            if stage.running.is_some() || current.embedded.is_none() {
                return Err(UpError::Setting(format!(
                    "this node runs on network `{}`{}; one network per data dir: use another --data for `{}`",
                    current.settings.network.name,
                    current.info.bootstrap_url.as_ref().map(|u| format!(" via {u}")).unwrap_or_default(),
                    settings.network.name
                )));
            }
            progress(&format!("restarting the conductor for network `{}`", settings.network.name));
            if let Some(old) = stage.conductor.take() {
                stop_conductor(old).await;
            }
        }
        let conductor = self.start(settings, progress).await?;
        let report = report(&conductor, true);
        stage.conductor = Some(conductor);
        Ok(report)
    }

    /// Joins the mesh: starts the conductor if needed, installs or reuses the hApp, publishes the
    /// advert and first heartbeat, then serves the HTTP API and writes the run file. `configure`
    /// adjusts the node settings first (agent name, declared capabilities). Joining again on the
    /// same network only applies `configure` and republishes the advert if it changed.
    pub async fn join(
        &self,
        choice: &NetworkChoice,
        configure: &(dyn Fn(&mut NodeSettings) + Sync),
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Arc<Joined>, UpError> {
        if let Some(joined) = self.joined() {
            let info = &joined.services.info;
            let wanted = choice.network.as_deref().unwrap_or(&info.network);
            let other_bootstrap = choice.bootstrap.as_ref().is_some_and(|b| info.bootstrap_url.as_ref() != Some(b));
            if wanted != info.network || other_bootstrap {
                return Err(UpError::Setting(format!(
                    "this node has joined network `{}`{}; one network per data dir: use another --data for `{wanted}`{}",
                    info.network,
                    info.bootstrap_url.as_ref().map(|u| format!(" via {u}")).unwrap_or_default(),
                    choice.bootstrap.as_ref().map(|u| format!(" via {u}")).unwrap_or_default(),
                )));
            }
            joined.services.node.reconfigure(configure).await?;
            return Ok(joined);
        }
        self.start_conductor(choice, progress).await?;
        let mut stage = self.stage.lock().await;
        if let Some(joined) = self.joined() {
            return Ok(joined); // joined by a concurrent call while this one waited for the lock
        }
        let conductor = stage.conductor.as_mut().ok_or_else(|| UpError::Setting("the conductor stopped".into()))?;
        let mut node_settings = conductor.settings.node.clone();
        let declared = Declared::load(&conductor.settings.data_dir).map_err(UpError::Setting)?;
        if !declared.is_empty() {
            progress(&format!(
                "applying the name and capabilities declared over MCP ({})",
                Declared::path(&conductor.settings.data_dir).display()
            ));
            declared.apply(&mut node_settings);
        }
        configure(&mut node_settings);

        let policy_admin = match (&conductor.settings.policy_admin, &conductor.settings.bootstrap) {
            (Some(key), _) => PolicyAdmin::Join(key.clone()),
            (None, None) => PolicyAdmin::Create,
            (None, Some(_)) => PolicyAdmin::Unknown,
        };
        let admission = admission(conductor, progress).await?;
        let mesh = Mesh::join(
            conductor.admin_port,
            &conductor.bundle,
            &conductor.settings.network,
            &policy_admin,
            &admission,
            self.metrics.clone(),
            progress,
        )
        .await?;
        remember_join(conductor)?;
        let mesh = Arc::new(mesh);
        // Peers still hold the address this node had before a restart: hand them the new one
        // before anything here waits on them.
        match liveness::introduce_to_known_peers(&mesh).await {
            Ok(0) => {}
            Ok(n) => progress(&format!("introduced this node's address to the {n} peer(s) its conductor knows")),
            Err(e) => tracing::warn!("could not introduce this node to its known peers: {e}"),
        }
        // And take theirs as they are now: a peer may have restarted while this node was down.
        if let Some(bootstrap) = &conductor.info.bootstrap_url {
            if let Err(e) = mesh.refresh_peers_from(bootstrap).await {
                tracing::warn!("could not read the peers' addresses from the bootstrap server: {e}");
            }
        }
        let listener = conductor
            .api_listener
            .take()
            .ok_or_else(|| UpError::Setting("the HTTP API listener was already used".into()))?;
        let api_listen = conductor.settings.api_listen;
        let api_addr = listener.local_addr().map_err(|source| UpError::ApiBind { addr: api_listen, source })?;
        let api_url = format!("http://{api_addr}");
        // Where peers reach this node's peer routes (replicas, inference): its peer listener, else
        // (nodes on one machine) the loopback API, which serves the same signed routes.
        let endpoint = conductor.settings.peer.as_ref().map_or(api_url.clone(), |p| p.url.to_string());
        node_settings.peer_endpoint = Some(endpoint.trim_end_matches('/').to_string());

        progress("publishing this node's advert and first heartbeat");
        let view_settings = node_settings.view;
        let node = NodeAgent::start(mesh.clone(), node_settings).await?;
        // Beating from the first heartbeat on: the rest of the start can take a minute on a busy
        // machine, and a node that fell silent meanwhile would drop out of every view. Dropping
        // `stop` on an early return ends the loop.
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let agent = tokio::spawn(node.clone().run(stop_rx.clone()));
        progress("reading the mesh: every node's advert and heartbeat");
        let view = MeshView::start(mesh.clone(), view_settings).await?;
        let liveness = Liveness::start(
            mesh.clone(),
            view.clone(),
            node.clone(),
            conductor.settings.network.spec.liveness,
            conductor.info.bootstrap_url.clone(),
        )
        .await;
        let policy =
            ComputePolicy::load(&conductor.settings.manifests.root).map_err(|e| UpError::Setting(e.to_string()))?;
        let peers = crate::peer::PeerClient::new(mesh.clone(), conductor.info.network_seed.clone());
        let resources = ResourceService::new(
            mesh.clone(),
            node.clone(),
            view.clone(),
            peers.clone(),
            policy,
            conductor.settings.provide,
        );
        let storage_policy =
            StoragePolicy::load(&conductor.settings.manifests.root).map_err(|e| UpError::Setting(e.to_string()))?;
        let journal = AuditJournal::open(&conductor.settings.data_dir.join(AUDIT_JOURNAL_DIR))
            .map_err(|e| UpError::Setting(e.to_string()))?;
        let policy = PolicyService::new(mesh.clone(), conductor.settings.network.name.clone(), journal)
            .map_err(|e| UpError::Setting(format!("the built-in policies: {e}")))?;
        let artifacts = ArtifactService::new(
            mesh.clone(),
            &node,
            storage_policy,
            endpoint,
            peers.clone(),
            policy.clone(),
            view.clone(),
        );
        let memory_policy =
            MemoryPolicy::load(&conductor.settings.manifests.root).map_err(|e| UpError::Setting(e.to_string()))?;
        let shards = ShardService::new(
            mesh.clone(),
            node.clone(),
            memory_policy,
            policy.clone(),
            artifacts.clone(),
            view.clone(),
        );
        let inference_policies =
            InferencePolicies::load(&conductor.settings.manifests.root).map_err(|e| UpError::Setting(e.to_string()))?;
        let inference = InferenceService::new(node.clone(), inference_policies, policy.clone(), peers, view.clone());
        if mesh.installed_now {
            let admins = policy.admins().await?;
            if admins.contains(&mesh.agent) {
                policy
                    .publish_defaults(progress)
                    .await
                    .map_err(|e| UpError::Setting(format!("default policies: {e}")))?;
            }
        }
        // A restarted node starts from the versions it holds (its peers may not answer it yet);
        // the refresh loop reads the network's within `REFRESH_EVERY`.
        let refreshed = if mesh.installed_now { policy.refresh().await } else { policy.refresh_local().await };
        if let Err(e) = refreshed {
            progress(&format!(
                "the network's policies are not readable yet ({e}); the built-in defaults decide until they are"
            ));
        }
        let services = Arc::new(Services {
            mesh: mesh.clone(),
            node: node.clone(),
            metrics: self.metrics.clone(),
            info: conductor.info.clone(),
            view: view.clone(),
            liveness: liveness.clone(),
            resources: resources.clone(),
            artifacts: artifacts.clone(),
            policy: policy.clone(),
            shards: shards.clone(),
            inference,
            peer: crate::peer::Verifier::new(conductor.info.network_seed.clone()),
        });
        let mut api_stop = stop_rx.clone();
        let router = (self.routers.api)(services.clone());
        let api = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = api_stop.changed().await;
                })
                .await
        });
        let peer_api = conductor.peer_listener.take().map(|listener| {
            let (router, mut stop) = ((self.routers.peer)(services.clone()), stop_rx.clone());
            tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stop.changed().await;
                    })
                    .await
            })
        });
        let provider = tokio::spawn(resources.run(stop_rx.clone()));
        let replication = tokio::spawn(artifacts.run(stop_rx.clone()));
        let policy_refresh = tokio::spawn(policy.clone().run(stop_rx.clone()));
        let audit_journal = tokio::spawn(policy.run_journal(stop_rx.clone()));
        let shard_loop = tokio::spawn(shards.run(stop_rx.clone()));
        let liveness_loop = tokio::spawn(liveness.run(stop_rx.clone()));
        let view_loop = tokio::spawn(view.run(stop_rx));
        let run_file = RunFile::write(&conductor.settings.data_dir, &api_url, &conductor.settings.network.name)?;
        stage.running = Some(Running {
            stop,
            agent,
            provider,
            replication,
            policy_refresh,
            audit_journal,
            shard_loop,
            view_loop,
            liveness_loop,
            api,
            peer_api,
            run_file,
        });

        let joined = Arc::new(Joined { services, api_url });
        if let Ok(mut slot) = self.joined.write() {
            *slot = Some(joined.clone());
        }
        Ok(joined)
    }

    /// Where the keystore passphrase came from, once the conductor runs.
    pub async fn passphrase_note(&self) -> Option<String> {
        self.stage.lock().await.conductor.as_ref().and_then(|c| c.passphrase_note.clone())
    }

    /// Marks the node offline (bounded wait for validators), stops the API and the node agent,
    /// removes the run file and stops the conductor. Safe to call at any stage.
    pub async fn shutdown(&self, progress: &(dyn Fn(&str) + Sync)) {
        let joined = self.joined.write().ok().and_then(|mut slot| slot.take());
        let mut stage = self.stage.lock().await;
        if let Some(running) = stage.running.take() {
            progress("shutting down: marking this node offline");
            let _ = running.stop.send(true);
            let loops = [
                ("node agent", running.agent),
                ("provider", running.provider),
                ("replication", running.replication),
                ("policy refresh", running.policy_refresh),
                ("shard", running.shard_loop),
                ("mesh view", running.view_loop),
                ("liveness", running.liveness_loop),
            ];
            let audit = async {
                if running.audit_journal.await.is_err() {
                    tracing::warn!("the audit journal's committer failed; its events are committed on the next start");
                }
            };
            futures::future::join(audit, futures::future::join_all(loops.map(|(name, l)| stop_loop(name, l)))).await;
            if let Some(joined) = &joined {
                match tokio::time::timeout(STOP_TIMEOUT, joined.services.node.go_offline()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!("could not publish availability offline: {e}"),
                    Err(_) => tracing::warn!("publishing availability offline timed out"),
                }
            }
            let _ = running.api.await;
            if let Some(peer_api) = running.peer_api {
                let _ = peer_api.await;
            }
            running.run_file.remove();
        }
        if let Some(conductor) = stage.conductor.take() {
            if conductor.embedded.is_some() {
                progress("stopping the conductor");
            }
            stop_conductor(conductor).await;
        }
    }

    /// The base settings with `choice` applied.
    fn resolve(&self, choice: &NetworkChoice) -> Result<UpSettings, UpError> {
        let mut settings = self.base.clone();
        if let Some(name) = &choice.network {
            if *name != settings.network.name {
                if let Some(record) = &settings.record {
                    let (have, want) = (record.name.clone(), name.clone());
                    let record = NetworkRecord::path(&settings.data_dir);
                    return Err(crate::networks::NetworkError::OtherNetwork { have, want, record }.into());
                }
                settings.network = settings.manifests.network(name)?;
                // The configured bootstrap and policy admin belong to the configured network.
                settings.bootstrap = None;
                settings.policy_admin = None;
            }
        }
        if let Some(url) = &choice.bootstrap {
            settings.bootstrap = Some(url.clone());
        }
        if let Some(key) = &choice.policy_admin {
            settings.policy_admin = Some(key.clone());
        }
        Ok(settings)
    }

    async fn start(&self, mut settings: UpSettings, progress: &(dyn Fn(&str) + Sync)) -> Result<Conductor, UpError> {
        let listen_kept = rejoin(&mut settings)?;
        let network = &settings.network;
        // Checks that need no writes.
        if let Some(needs) = &network.spec.not_live {
            let network = network.name.clone();
            return Err(crate::manifests::ManifestError::NotLive { network, needs: needs.clone() }.into());
        }
        RunFile::ensure_not_running(&settings.data_dir)?;
        progress(&format!("checking {} against the pins of network `{}`", settings.happ.display(), network.name));
        let bundle = settings.manifests.check_bundle(&settings.happ, network).await?;
        let first_join = settings.bootstrap.is_some() && !settings.data_dir.join("holochain").exists();
        if network.spec.creator_is_policy_admin && first_join && settings.policy_admin.is_none() {
            return Err(UpError::Setting(MeshError::PolicyAdminUnknown { network: network.name.clone() }.to_string()));
        }
        let api_listener = tokio::net::TcpListener::bind(settings.api_listen)
            .await
            .map_err(|source| UpError::ApiBind { addr: settings.api_listen, source })?;
        let peer_listener = match settings.peer.as_ref().map(|p| p.listen) {
            Some(addr) => {
                Some(tokio::net::TcpListener::bind(addr).await.map_err(|source| UpError::PeerBind { addr, source })?)
            }
            None => None,
        };
        // The creator of a network serves its bootstrap+relay at the address it was created with.
        let serve_at = settings.record.as_ref().and_then(|r| r.serve_bootstrap);
        let created_bootstrap = match (serve_at, &settings.conductor) {
            (Some(addr), ConductorChoice::Embedded { .. }) => {
                let server = LocalBootstrap::start(addr).await.map_err(|source| UpError::BootstrapBind {
                    addr,
                    source,
                    note: String::new(),
                })?;
                progress(&format!("serving network `{}`'s bootstrap+relay on {addr}", network.name));
                Some(server)
            }
            _ => None,
        };
        let urls = network_urls(&settings).await?;
        if let ConductorChoice::Attach { admin_url } = &settings.conductor {
            if settings.bootstrap.is_some() {
                return Err(UpError::Setting(format!(
                    "--bootstrap sets the embedded conductor's network; the conductor at {admin_url} uses its own config"
                )));
            }
        }

        // Bootstrap (ripple-local's first node), then the conductor.
        let local_bootstrap = match (&settings.conductor, &urls) {
            (ConductorChoice::Embedded { .. }, None) => {
                let addr = settings.bootstrap_listen.unwrap_or_else(|| {
                    DEFAULT_BOOTSTRAP_LISTEN.parse().expect("DEFAULT_BOOTSTRAP_LISTEN is an address")
                });
                let server = LocalBootstrap::start(addr).await.map_err(|source| UpError::BootstrapBind {
                    addr,
                    source,
                    note: if listen_kept { kept_bootstrap_note(&settings.data_dir) } else { String::new() },
                })?;
                progress(&format!(
                    "serving ripple-local bootstrap+relay at {} (other nodes: --bootstrap {})",
                    server.url, server.url
                ));
                Some(server)
            }
            _ => None,
        };
        let urls = urls.or_else(|| {
            local_bootstrap.as_ref().map(|b| NetworkUrls { bootstrap: b.url.clone(), relay: b.url.clone() })
        });
        let local_bootstrap = local_bootstrap.or(created_bootstrap);

        let (embedded, admin_port, admin_url, passphrase_note) = match &settings.conductor {
            ConductorChoice::Embedded { passphrase_file, passphrase_env } => {
                let (passphrase, source) =
                    conductor::load_passphrase(passphrase_file.as_deref(), passphrase_env.clone(), &settings.data_dir)?;
                let urls = urls
                    .clone()
                    .ok_or_else(|| UpError::Setting("no bootstrap URL for the embedded conductor".into()))?;
                let zomes = compiled_zomes::bundle_zomes(&bundle.bytes).await?;
                let missing = settings.zome_cache.missing(&zomes).len();
                if missing > 0 {
                    progress(&format!(
                        "compiling {missing} of the hApp's {} zomes into {} (once per machine: every node here reuses them)",
                        zomes.len(),
                        settings.zome_cache.dir().display()
                    ));
                    if let Err(e) = compiled_zomes::compile_in_child(&settings.zome_cache, &settings.happ).await {
                        tracing::warn!("{e}");
                    }
                }
                progress("starting the embedded conductor");
                let embedded = EmbeddedConductor::start(
                    &settings.data_dir,
                    &settings.manifests.conductor_template_path(),
                    &urls,
                    passphrase,
                    &zomes,
                    &settings.zome_cache,
                )
                .await?;
                if embedded.seeded_zomes > 0 {
                    progress(&format!("seeded {} compiled zomes from this machine's cache", embedded.seeded_zomes));
                }
                let port = embedded.admin_port;
                (Some(embedded), port, format!("ws://127.0.0.1:{port}"), passphrase_note(&source))
            }
            ConductorChoice::Attach { admin_url } => {
                let port =
                    admin_url.port().ok_or_else(|| UpError::Setting(format!("--admin-url {admin_url} has no port")))?;
                (None, port, admin_url.to_string(), None)
            }
        };
        let info = NodeInfo {
            network: network.name.clone(),
            network_seed: network.spec.network_seed.clone(),
            embedded: embedded.is_some(),
            admin_url,
            bootstrap_url: urls.as_ref().map(|u| u.bootstrap.clone()),
            relay_url: urls.as_ref().map(|u| u.relay.clone()),
            serving_bootstrap: local_bootstrap.is_some(),
            admins: network.spec.admins.clone(),
            started: self.started,
        };
        Ok(Conductor {
            settings,
            bundle,
            embedded,
            local_bootstrap,
            admin_port,
            info,
            api_listener: Some(api_listener),
            peer_listener,
            passphrase_note,
        })
    }
}

fn report(c: &Conductor, started_now: bool) -> ConductorReport {
    ConductorReport {
        started_now,
        embedded: c.embedded.is_some(),
        admin_url: c.info.admin_url.clone(),
        data_dir: c.settings.data_dir.clone(),
        network: c.info.network.clone(),
        network_seed: c.info.network_seed.clone(),
        bootstrap_url: c.info.bootstrap_url.as_ref().map(|u| u.to_string()),
        serving_bootstrap: c.info.serving_bootstrap,
        holochain_version: holochain::HOLOCHAIN_VERSION.to_string(),
        passphrase_note: c.passphrase_note.clone(),
    }
}

async fn stop_conductor(c: Conductor) {
    if let Some(embedded) = c.embedded {
        if tokio::time::timeout(STOP_TIMEOUT, embedded.shutdown()).await.is_err() {
            tracing::warn!("the conductor did not stop within {STOP_TIMEOUT:?}");
        }
    }
    drop(c.local_bootstrap);
}

/// How this node is admitted to a created network: the key it joins with (generated now on its
/// first start, and kept in the data dir's network record before anything is installed) and its
/// invitation (`--invite`, checked and kept in the record). Shipped networks need neither.
async fn admission(conductor: &mut Conductor, progress: &(dyn Fn(&str) + Sync)) -> Result<Admission, UpError> {
    let settings = &mut conductor.settings;
    let Some(record) = settings.record.as_mut() else { return Ok(Admission::default()) };
    let agent = match record.agent_key()? {
        Some(key) => key,
        None => {
            let key = crate::mesh::generate_agent_key(conductor.admin_port).await?;
            progress(&format!("this node's agent key on network `{}` is {key}", record.name));
            record.agent_key = Some(key.to_string());
            record.save(&settings.data_dir)?;
            key
        }
    };
    if let Some(path) = settings.invite.take() {
        let invitation = InvitationFile::load_for(&path, &record.network(), &agent)?;
        progress(&format!("joining with the invitation signed by {}", invitation.admin));
        record.invitation = Some(invitation);
        record.save(&settings.data_dir)?;
    }
    let proof = record.invitation.as_ref().map(|i| i.membrane_proof()).transpose().map_err(|reason| {
        crate::networks::NetworkError::BadInvitation { path: NetworkRecord::path(&settings.data_dir), reason }
    })?;
    Ok(Admission { needs_invitation: record.needs_invitation(&agent), agent_key: Some(agent), proof })
}

/// A network from networks.json on an embedded conductor: what this data dir joined before
/// (`JoinedRecord`) fills what the start left unsaid (bootstrap, the address it serves bootstrap
/// on) and refuses what contradicts it, before anything is written. True when the bootstrap
/// address to serve on is the one kept from before.
fn rejoin(settings: &mut UpSettings) -> Result<bool, UpError> {
    if settings.record.is_some() || matches!(settings.conductor, ConductorChoice::Attach { .. }) {
        return Ok(false);
    }
    let Some(joined) = JoinedRecord::load(&settings.data_dir)? else { return Ok(false) };
    let mut choice = JoinChoice {
        network: settings.network.name.clone(),
        bootstrap: settings.bootstrap.take(),
        bootstrap_listen: settings.bootstrap_listen,
    };
    joined.apply(&mut choice, &settings.data_dir)?;
    settings.bootstrap = choice.bootstrap;
    settings.bootstrap_listen = choice.bootstrap_listen;
    Ok(joined.serves_bootstrap.is_some())
}

/// Once the mesh accepted this node, saves what it joined (`JoinedRecord`) so that a plain
/// restart rejoins the same mesh at the same addresses.
fn remember_join(conductor: &Conductor) -> Result<(), UpError> {
    let settings = &conductor.settings;
    if settings.record.is_some() || conductor.embedded.is_none() {
        return Ok(());
    }
    let record = JoinedRecord {
        network: settings.network.name.clone(),
        bootstrap: settings.bootstrap.as_ref().map(|url| url.to_string()),
        serves_bootstrap: conductor.local_bootstrap.as_ref().map(|b| b.addr),
    };
    if JoinedRecord::load(&settings.data_dir)?.as_ref() != Some(&record) {
        record.save(&settings.data_dir)?;
    }
    Ok(())
}

/// Why the kept bootstrap address matters when it cannot be bound again.
fn kept_bootstrap_note(data_dir: &std::path::Path) -> String {
    format!(
        ". It is the address this node served before and the other nodes joined (saved in {}): free the port, \
         or remove that file to serve on a new one and rejoin the other nodes with its URL",
        JoinedRecord::path(data_dir).display()
    )
}

/// Bootstrap and relay for the embedded conductor: `None` means "serve ripple-local's ourselves".
async fn network_urls(settings: &UpSettings) -> Result<Option<NetworkUrls>, UpError> {
    if matches!(settings.conductor, ConductorChoice::Attach { .. }) {
        return Ok(None);
    }
    let spec = &settings.network.spec;
    let bootstrap = match (&settings.bootstrap, &spec.bootstrap_url) {
        (Some(url), _) => url.clone(),
        (None, Some(url)) => crate::config::parse_url("networks.json bootstrap_url", url, &["http", "https"])
            .map_err(|e| UpError::Setting(e.to_string()))?,
        (None, None) => return Ok(None),
    };
    let relay = match (&settings.bootstrap, &spec.relay_url) {
        (None, Some(url)) => crate::config::parse_url("networks.json relay_url", url, &["http", "https"])
            .map_err(|e| UpError::Setting(e.to_string()))?,
        _ => bootstrap.clone(),
    };
    if let Err(reason) = bootstrap::probe(&bootstrap, BOOTSTRAP_PROBE_TIMEOUT).await {
        let hint = if spec.bootstrap_url.is_none() {
            "Start the first ripple-local node without --bootstrap; it prints the URL the others use.".to_string()
        } else {
            format!(
                "Network `{}` needs its bootstrap server; check the connection or pass --bootstrap URL.",
                settings.network.name
            )
        };
        return Err(UpError::BootstrapUnreachable { url: bootstrap.to_string(), reason, hint });
    }
    Ok(Some(NetworkUrls { bootstrap, relay }))
}

fn passphrase_note(source: &PassphraseSource) -> Option<String> {
    match source {
        PassphraseSource::Generated(path) => Some(format!(
            "created a random keystore passphrase in {} (mode 0600); back it up: the agent key cannot be unlocked without it",
            path.display()
        )),
        PassphraseSource::DataDir(path) => Some(format!("keystore passphrase from {}", path.display())),
        PassphraseSource::File(path) => Some(format!("keystore passphrase from {}", path.display())),
        PassphraseSource::Environment => Some(format!("keystore passphrase from ${}", conductor::PASSPHRASE_ENV)),
    }
}

/// Waits for a background loop to end after the stop signal, at most `LOOP_STOP_GRACE`; then
/// aborts it. Its zome call in flight goes on in the conductor: a write commits whole or not at all.
async fn stop_loop(name: &str, mut handle: tokio::task::JoinHandle<()>) {
    if tokio::time::timeout(LOOP_STOP_GRACE, &mut handle).await.is_err() {
        handle.abort();
        tracing::warn!(
            "the {name} loop was still in a zome call {} s after the stop; left to the conductor",
            LOOP_STOP_GRACE.as_secs()
        );
    }
}
