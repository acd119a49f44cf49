//! Artifacts over the mesh (artifact_index DNA; spec §6.3, §9.5, §10.6): bytes live in IPFS (the
//! Kubo RPC bridge), what they are and who made them from what lives on the DHT. This node
//! publishes (add + pin, register, attest, claim a replica), fetches (its own IPFS, else a live
//! replica's sidecar, checking the CID of what arrives), verifies (content address, sha256,
//! provenance signature and chain), renews its replica leases and repairs under-replicated
//! artifacts it is responsible for. The CLI, the HTTP API and the MCP `artifacts.*` tools all go
//! through `ArtifactService`.
pub mod replication;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use holochain_types::prelude::*;
use serde::{Deserialize, Serialize};

use agent_registry_types::Availability;
use artifact_index_types::*;

use crate::bridges::kubo::{self, AddMode, Kubo, KuboError};
use crate::mesh::{Mesh, MeshError};
use crate::node::view::MeshView;
use crate::node::NodeAgent;
use replication::{grace_windows, responsible, Candidate, RepairGate, StoragePolicy};

/// The hApp role of the artifact_index DNA.
pub const ROLE: &str = "artifact_index";
/// A pinned CID starts streaming at once; allow for a busy daemon.
const LOCAL_FIRST_BYTE: Duration = Duration::from_secs(30);
/// An unpinned CID may still be in the daemon's cache. Kubo says at once when it is not; js-ipfs
/// never answers for an absent block, so this bounds the wait (replicas are asked meanwhile).
const CACHE_PROBE: Duration = Duration::from_millis(500);
/// Why bytes are not served from this node's own IPFS.
const NOT_LOCAL: &str = "not in this node's IPFS";
/// Chunks a fetched artifact's cache copy may lag behind its reader.
const CACHE_LAG_CHUNKS: usize = 16;
const GB: u64 = 1_000_000_000;

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ArtifactError>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error(transparent)]
    Mesh(#[from] MeshError),
    #[error(transparent)]
    Kubo(#[from] KuboError),
    #[error("this node has no IPFS API: set `ipfs_api_url` under [node] in ripple.toml (or RIPPLE_IPFS_API_URL)")]
    NoIpfs,
    #[error("{0}")]
    BadInput(String),
    #[error("no artifact with CID {0} is registered on the mesh")]
    NotRegistered(String),
    #[error("the bytes of {cid} are not available: {}", if tried.is_empty() { "this node does not hold them and no live replica serves them".to_string() } else { tried.join("; ") })]
    Unavailable { cid: String, tried: Vec<String> },
    #[error("reading {what}: {reason}")]
    Io { what: String, reason: String },
    /// Boxed: a denial carries its whole verdict.
    #[error(transparent)]
    Gate(#[from] Box<crate::policy::GateError>),
}

/// What `publish` registers besides the bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PublishMeta {
    pub name: String,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    /// An in-toto Statement v1 (its subjects must include this file's sha256) or just a SLSA
    /// Provenance v1 predicate, which is wrapped into a statement about this file. Left out: a
    /// statement by this node naming `materials`.
    #[serde(default)]
    pub provenance: Option<serde_json::Value>,
    /// CIDs the artifact was made from.
    #[serde(default)]
    pub materials: Vec<String>,
    /// The size the client is about to send, which the `artifacts.publish` policy judges before a
    /// byte is stored; the bytes received must match it.
    #[serde(default)]
    pub size_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Published {
    pub cid: String,
    pub sha256: String,
    pub size: u64,
    pub artifact_id: String,
    pub provenance_id: String,
    /// This node's replica lease (RFC 3339).
    pub replica_until: String,
    pub seconds: f64,
}

/// One check of `verify`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Check {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerifyReport {
    pub cid: String,
    pub ok: bool,
    /// Where the bytes came from: a file, this node's IPFS, or a replica.
    pub source: String,
    pub sha256: String,
    pub size: u64,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplicaRow {
    pub holder: String,
    pub is_self: bool,
    pub live: bool,
    pub until: String,
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplicaReport {
    pub cid: String,
    pub min_providers: usize,
    pub live: usize,
    pub under_replicated: bool,
    pub replicas: Vec<ReplicaRow>,
}

/// `artifacts.get` without the bytes: the registrations and statements of a CID.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArtifactInfo {
    pub cid: String,
    pub registrations: Vec<Registration>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Registration {
    pub cid: String,
    pub artifact_id: String,
    pub registrant: String,
    pub registered_at: String,
    pub sha256: String,
    pub size: u64,
    pub name: String,
    pub media_type: String,
    pub labels: Vec<String>,
}

/// `find`: one of name, label or sha256.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FindQuery {
    pub name: Option<String>,
    pub label: Option<String>,
    pub sha256: Option<String>,
}

/// What `fetch` got.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub info: ArtifactInfo,
    pub sha256: String,
    pub size: u64,
    pub source: String,
    /// The bytes, when they were not written to a file.
    pub bytes: Option<Vec<u8>>,
}

/// What the replication loop has done, for `/status` and logs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReplicationState {
    pub held: usize,
    pub repairs: u64,
    /// This node restarted and has not heard its peers yet (`MeshView::has_heard_the_mesh`): it
    /// repairs nothing on a picture of who holds what that may be stale.
    #[serde(default)]
    pub waiting_for_mesh: bool,
    pub last_repair: Option<String>,
    pub last_error: Option<String>,
}

pub struct ArtifactService {
    mesh: Arc<Mesh>,
    /// Which nodes are online to hold replicas.
    view: Arc<MeshView>,
    kubo: Option<Kubo>,
    policy: StoragePolicy,
    /// Where peers fetch the bytes of this node's replicas (its peer routes' base URL).
    endpoint: String,
    /// Fetches replicas from other nodes, signed.
    peers: crate::peer::PeerClient,
    gate: Mutex<RepairGate>,
    state: Mutex<ReplicationState>,
    /// Serialises this node's artifact_index writes: concurrent calls would race for the chain head.
    chain: tokio::sync::Mutex<()>,
    /// Publishing passes the `artifacts.publish` gate first.
    policy_gate: Arc<crate::policy::PolicyService>,
}

impl ArtifactService {
    pub fn new(
        mesh: Arc<Mesh>,
        node: &NodeAgent,
        policy: StoragePolicy,
        endpoint: String,
        peers: crate::peer::PeerClient,
        policy_gate: Arc<crate::policy::PolicyService>,
        view: Arc<MeshView>,
    ) -> Arc<Self> {
        let kubo = node.settings().sources.ipfs_api_url.clone().map(Kubo::new);
        Arc::new(Self {
            mesh,
            view,
            kubo,
            policy,
            endpoint,
            peers,
            gate: Default::default(),
            state: Default::default(),
            chain: Default::default(),
            policy_gate,
        })
    }

    pub fn policy(&self) -> &StoragePolicy {
        &self.policy
    }

    pub fn state(&self) -> ReplicationState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn kubo(&self) -> Result<&Kubo, ArtifactError> {
        self.kubo.as_ref().ok_or(ArtifactError::NoIpfs)
    }

    /// What `publish` checks before the first byte is sent: this node has IPFS, and the name,
    /// media type, labels and provenance statement are valid (the statement for a placeholder
    /// digest; its subject is checked again against the real one). The CLI asks first, so a
    /// refusal arrives as a message rather than a broken upload.
    pub fn check_meta(&self, meta: &PublishMeta) -> Result<(), ArtifactError> {
        self.kubo()?;
        const PLACEHOLDER_CID: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
        let placeholder = "0".repeat(64);
        draft(meta, PLACEHOLDER_CID, &placeholder, 0).check().map_err(|v| ArtifactError::BadInput(v.detail))?;
        let me = &self.mesh.agent;
        let statement = statement(me, meta, &placeholder)?;
        Statement::parse_and_check(&statement, me).map_err(|v| ArtifactError::BadInput(format!("provenance: {v}")))?;
        Ok(())
    }

    /// Adds `content` to IPFS (pinned), registers it, attaches its provenance statement and claims
    /// this node's replica. The metadata and statement are checked, and the `artifacts.publish`
    /// gate passed (`via` mcp, cli or api), before any byte is sent.
    pub async fn publish<S>(
        &self,
        content: S,
        meta: PublishMeta,
        via: &str,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<Published, ArtifactError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        let started = Instant::now();
        self.check_meta(&meta)?;
        let args = serde_json::json!({
            "name": meta.name, "media_type": meta.media_type, "labels": meta.labels, "materials": meta.materials,
        });
        let size = meta.size_bytes.map(|n| ("size_bytes", serde_json::json!(n)));
        self.policy_gate.gate("artifacts.publish", via, &args, size.as_slice()).await.map_err(Box::new)?;
        let kubo = self.kubo()?;
        let me = self.mesh.agent.clone();
        let artifact_of = |added: &kubo::Added| draft(&meta, &added.cid, &added.sha256, added.size);
        let statement_of = |sha256: &str| statement(&me, &meta, sha256);

        let added = kubo.add(content, AddMode::Pin, progress).await?;
        if meta.size_bytes.is_some_and(|declared| declared != added.size) {
            let _ = kubo.pin_rm(&added.cid).await;
            return Err(ArtifactError::BadInput(format!(
                "the upload was announced as {} bytes but {} arrived; nothing was registered",
                meta.size_bytes.unwrap_or_default(),
                added.size
            )));
        }
        let artifact = artifact_of(&added);
        let statement = statement_of(&added.sha256)?;
        let parsed = Statement::parse_and_check(&statement, &me)
            .map_err(|v| ArtifactError::BadInput(format!("provenance: {v}")))?;
        if !parsed.names_digest(&added.sha256) {
            return Err(ArtifactError::BadInput(format!(
                "provenance: no subject of the statement has this file's sha256 {}",
                added.sha256
            )));
        }
        let _chain = self.chain.lock().await;
        let record: ArtifactRecord = self.mesh.call(ROLE, "artifacts", "register_artifact", &artifact).await?;
        let attest = AttestInput { artifact_id: record.artifact_id.clone(), statement };
        let provenance_id: ActionHash = self.mesh.call(ROLE, "provenance", "attest", &attest).await?;
        let replica = self.claim(&added.cid).await?;
        Ok(Published {
            cid: added.cid,
            sha256: added.sha256,
            size: added.size,
            artifact_id: record.artifact_id.to_string(),
            provenance_id: provenance_id.to_string(),
            replica_until: rfc3339(replica.claim.until),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The registrations of `cid`, oldest first; an error when there are none.
    pub async fn info(&self, cid: &str) -> Result<ArtifactInfo, ArtifactError> {
        check_cid(cid)?;
        let records: Vec<ArtifactRecord> = self.mesh.call(ROLE, "artifacts", "get_artifacts_for_cid", &cid).await?;
        if records.is_empty() {
            return Err(ArtifactError::NotRegistered(cid.into()));
        }
        Ok(ArtifactInfo { cid: cid.into(), registrations: records.iter().map(registration).collect() })
    }

    /// Registrations by name, label or sha256 (exactly one of them), oldest first.
    pub async fn find(&self, query: &FindQuery) -> Result<Vec<Registration>, ArtifactError> {
        let (function, key) = match (&query.name, &query.label, &query.sha256) {
            (Some(name), None, None) => ("get_artifacts_for_name", name.clone()),
            (None, Some(label), None) => ("get_artifacts_for_label", label.clone()),
            (None, None, Some(sha256)) if is_sha256_hex(&sha256.to_ascii_lowercase()) => {
                ("get_artifacts_for_sha256", sha256.to_ascii_lowercase())
            }
            (None, None, Some(sha256)) => {
                return Err(ArtifactError::BadInput(format!("sha256 `{sha256}` is not 64 hex digits")))
            }
            _ => return Err(ArtifactError::BadInput("give exactly one of name, label or sha256".into())),
        };
        let records: Vec<ArtifactRecord> = self.mesh.call(ROLE, "artifacts", function, &key).await?;
        Ok(records.iter().map(registration).collect())
    }

    /// The bytes of `cid` as this node's IPFS holds them, fetching them from a live replica first
    /// if it does not (checked against the CID on arrival). `local_only`: never fetch (what peers
    /// ask a replica for). Returns the stream and where it came from.
    pub async fn open(&self, cid: &str, local_only: bool) -> Result<(ByteStream, String), ArtifactError> {
        check_cid(cid)?;
        let kubo = self.kubo()?;
        if kubo.is_pinned(cid).await? {
            return Ok((boxed(kubo.cat(cid, LOCAL_FIRST_BYTE).await?), "this node's IPFS (pinned)".into()));
        }
        let cached = |stream| Ok((boxed(stream), "this node's IPFS (cache)".to_string()));
        let probe = kubo.cat(cid, CACHE_PROBE);
        if local_only {
            return match probe.await {
                Ok(stream) => cached(stream),
                Err(_) => Err(ArtifactError::Unavailable { cid: cid.into(), tried: vec![NOT_LOCAL.into()] }),
            };
        }
        // The cache probe and the replicas at once: a daemon that lacks the block may take the
        // whole probe window to say so (js-ipfs never does), and a cached block answers in ms.
        let remote = self.open_from_replicas(kubo, cid);
        tokio::pin!(probe, remote);
        tokio::select! {
            biased;
            probed = &mut probe => match probed {
                Ok(stream) => cached(stream),
                Err(_) => remote.await,
            },
            fetched = &mut remote => match fetched {
                Ok(opened) => Ok(opened),
                Err(e) => probe.await.map_or(Err(e), cached),
            },
        }
    }

    /// The bytes of `cid` from the first live replica on another node that serves them, cached
    /// here as they are read.
    async fn open_from_replicas(&self, kubo: &Kubo, cid: &str) -> Result<(ByteStream, String), ArtifactError> {
        let mut tried = vec![NOT_LOCAL.to_string()];
        for candidate in self.replica_urls(cid).await? {
            match self.ask_replica(&candidate).await {
                Ok(response) => {
                    let peer = Box::pin(response.bytes_stream().map_err(std::io::Error::other));
                    return Ok((Self::cache_while_reading(kubo.clone(), cid, peer), candidate.source()));
                }
                Err(why) => tried.push(why),
            }
        }
        Err(ArtifactError::Unavailable { cid: cid.into(), tried })
    }

    /// Passes a replica's bytes on as they arrive while adding them to this node's IPFS (a cache),
    /// at the pace of the slower of the two. The stream ends with an error when the bytes' content
    /// address is not `cid` (their reader also checks the registered sha256); failing to cache is
    /// only logged.
    fn cache_while_reading(
        kubo: Kubo,
        cid: &str,
        peer: impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
    ) -> ByteStream {
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(CACHE_LAG_CHUNKS);
        let copies = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
        let task = tokio::spawn(async move { kubo.add(copies, AddMode::Cache, |_| {}).await });
        let copy = CacheCopy { task: Some(task), tx: Some(tx) };
        Box::pin(futures::stream::unfold(Some((peer, copy, cid.to_string())), |state| async move {
            let (mut peer, mut copy, cid) = state?;
            match peer.next().await {
                Some(Ok(chunk)) => {
                    copy.send(Ok(chunk.clone())).await;
                    Some((Ok(chunk), Some((peer, copy, cid))))
                }
                Some(Err(e)) => {
                    let reason = format!("the replica's answer broke off: {e}");
                    copy.send(Err(std::io::Error::other(reason.clone()))).await;
                    Some((Err(ArtifactError::Io { what: format!("{cid} from a replica"), reason }), None))
                }
                None => {
                    let added = copy.finish().await?;
                    match added {
                        Ok(Ok(added)) if added.cid == cid => None,
                        // Unpinned, so nothing to undo: the daemon's GC drops the wrong blocks.
                        Ok(Ok(added)) => {
                            let reason = not_the_cid("the replica", &added, &cid);
                            Some((Err(ArtifactError::Io { what: format!("{cid} from a replica"), reason }), None))
                        }
                        Ok(Err(e)) => {
                            tracing::warn!("artifacts: {cid} was read from a replica but not cached here: {e}");
                            None
                        }
                        Err(e) => {
                            tracing::warn!("artifacts: caching {cid} stopped: {e}");
                            None
                        }
                    }
                }
            }
        }))
    }

    /// The peer routes of `cid`'s live replicas on other nodes, as the replicas list them.
    async fn replica_urls(&self, cid: &str) -> Result<Vec<ReplicaUrl>, ArtifactError> {
        let replicas: Vec<ReplicaRecord> = self.mesh.call(ROLE, "replication", "get_replicas_for_cid", &cid).await?;
        Ok(replicas
            .iter()
            .filter(|r| r.live && r.holder != self.mesh.agent)
            .filter_map(|r| {
                let endpoint = r.claim.endpoint.as_ref()?.trim_end_matches('/').to_string();
                let url = format!("{endpoint}/peer/v1/artifacts/{cid}");
                Some(ReplicaUrl { holder: r.holder.to_string(), endpoint, url })
            })
            .collect())
    }

    /// A signed GET of a replica's peer route, or why it did not serve the bytes.
    async fn ask_replica(&self, replica: &ReplicaUrl) -> Result<reqwest::Response, String> {
        let url = &replica.url;
        match self.peers.get(url).await {
            Ok(r) if r.status().is_success() => Ok(r),
            Ok(r) => {
                let status = r.status();
                // The holder says why (`{"error": …}`): a refusal by its policy, a missing pin.
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                let why = body["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
                Err(format!("{url} answered {status}{why}"))
            }
            Err(e) => Err(format!("{url}: {e}")),
        }
    }

    /// Copies `cid` from the first live replica that serves bytes with that content address into
    /// this node's IPFS (`mode`: cache or pin). Returns which replica it was.
    async fn fetch_from_replicas(&self, cid: &str, mode: AddMode) -> Result<String, ArtifactError> {
        let kubo = self.kubo()?;
        let mut tried = vec![];
        for replica in self.replica_urls(cid).await? {
            let response = match self.ask_replica(&replica).await {
                Ok(response) => response,
                Err(why) => {
                    tried.push(why);
                    continue;
                }
            };
            let stream = response.bytes_stream().map_err(std::io::Error::other);
            match kubo.add(stream, mode, |_| {}).await {
                Ok(added) if added.cid == cid => return Ok(replica.source()),
                Ok(added) => {
                    // Not what was asked for: drop it and say so.
                    let _ = kubo.pin_rm(&added.cid).await;
                    tried.push(format!("{}, ignored", not_the_cid(&replica.url, &added, cid)));
                }
                Err(e) => tried.push(format!("{}: {e}", replica.url)),
            }
        }
        Err(ArtifactError::Unavailable { cid: cid.into(), tried })
    }

    /// The bytes of `cid` checked against its first registration's sha256 and size: written to
    /// `path` (through a temporary file renamed at the end), or returned when no path is given and
    /// they fit in `max_inline` bytes.
    pub async fn fetch(
        &self,
        cid: &str,
        path: Option<&std::path::Path>,
        max_inline: u64,
    ) -> Result<Fetched, ArtifactError> {
        use sha2::Digest;
        use tokio::io::AsyncWriteExt;
        let info = self.info(cid).await?;
        let registered = info.registrations.first().cloned().ok_or_else(|| ArtifactError::NotRegistered(cid.into()))?;
        if path.is_none() && registered.size > max_inline {
            return Err(ArtifactError::BadInput(format!(
                "{cid} is {} bytes, more than {max_inline} returned inline: give a path to write it to",
                registered.size
            )));
        }
        let (mut stream, source) = self.open(cid, false).await?;
        let io = |e: std::io::Error, what: &str| ArtifactError::Io { what: what.into(), reason: e.to_string() };
        let tmp = path.map(|p| p.with_extension("ripple-partial"));
        let mut file = match &tmp {
            Some(t) => Some(tokio::fs::File::create(t).await.map_err(|e| io(e, &t.display().to_string()))?),
            None => None,
        };
        let (mut hasher, mut size, mut inline) = (sha2::Sha256::new(), 0u64, Vec::new());
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    if let Some(tmp) = &tmp {
                        let _ = std::fs::remove_file(tmp); // nothing half-written stays behind
                    }
                    return Err(e);
                }
            };
            hasher.update(&chunk);
            size += chunk.len() as u64;
            match &mut file {
                Some(f) => f.write_all(&chunk).await.map_err(|e| io(e, "the output file"))?,
                None => inline.extend_from_slice(&chunk),
            }
        }
        let sha256 = kubo::hex(&hasher.finalize());
        if let (Some(mut f), Some(tmp), Some(path)) = (file, &tmp, path) {
            f.flush().await.map_err(|e| io(e, "the output file"))?;
            drop(f);
            if sha256 != registered.sha256 || size != registered.size {
                let _ = std::fs::remove_file(tmp);
            } else {
                std::fs::rename(tmp, path).map_err(|e| io(e, &path.display().to_string()))?;
            }
        }
        if sha256 != registered.sha256 || size != registered.size {
            return Err(ArtifactError::BadInput(format!(
                "the bytes of {cid} hash to sha256 {sha256} ({size} bytes) but it is registered as {} ({} bytes): refused, nothing written",
                registered.sha256, registered.size
            )));
        }
        Ok(Fetched { info, sha256, size, source, bytes: path.is_none().then_some(inline) })
    }

    /// Checks that the bytes (from `file` if given, else as `open` finds them) have content
    /// address `cid` and the sha256 and size every registration names, and that each provenance
    /// statement is signed by its builder, unaltered, names these bytes, and sits on a valid chain.
    pub async fn verify(&self, cid: &str, file: Option<ByteStream>) -> Result<VerifyReport, ArtifactError> {
        let info: Vec<ArtifactRecord> = {
            check_cid(cid)?;
            let records: Vec<ArtifactRecord> = self.mesh.call(ROLE, "artifacts", "get_artifacts_for_cid", &cid).await?;
            if records.is_empty() {
                return Err(ArtifactError::NotRegistered(cid.into()));
            }
            records
        };
        let kubo = self.kubo()?;
        let (bytes, source) = match file {
            Some(stream) => (stream, "the given file".to_string()),
            None => self.open(cid, false).await?,
        };
        let added = kubo.add(bytes.map_err(std::io::Error::other), AddMode::OnlyHash, |_| {}).await?;
        let mut checks = vec![Check {
            check: "content address".into(),
            ok: added.cid == cid,
            detail: if added.cid == cid {
                format!("the bytes have CID {cid}")
            } else {
                format!("the bytes have CID {}, not {cid}: they were altered", added.cid)
            },
        }];
        for record in &info {
            let a = &record.artifact;
            let ok = a.sha256 == added.sha256 && a.size == added.size;
            checks.push(Check {
                check: format!("sha256 of registration {} by {}", record.artifact_id, record.registrant),
                ok,
                detail: if ok {
                    format!("sha256 {} and {} bytes, as registered", a.sha256, a.size)
                } else {
                    format!(
                        "the bytes hash to sha256 {} ({} bytes) but the registration says {} ({} bytes): the bytes were altered or the registration is false",
                        added.sha256, added.size, a.sha256, a.size
                    )
                },
            });
            let statements: Vec<ProvenanceRecord> =
                self.mesh.call(ROLE, "provenance", "get_provenance_for_artifact", &record.artifact_id).await?;
            if statements.is_empty() {
                checks.push(Check {
                    check: format!("provenance of {}", record.artifact_id),
                    ok: false,
                    detail: "no provenance statement is attached to this registration".into(),
                });
            }
            for p in &statements {
                checks.push(check_provenance(p, &added.sha256));
            }
        }
        let ok = checks.iter().all(|c| c.ok);
        Ok(VerifyReport { cid: cid.into(), ok, source, sha256: added.sha256, size: added.size, checks })
    }

    /// Every node's latest claim on `cid`, live ones first, against the policy's `min_providers`.
    pub async fn replicas(&self, cid: &str) -> Result<ReplicaReport, ArtifactError> {
        check_cid(cid)?;
        let replicas: Vec<ReplicaRecord> = self.mesh.call(ROLE, "replication", "get_replicas_for_cid", &cid).await?;
        let live = replicas.iter().filter(|r| r.live).count();
        Ok(ReplicaReport {
            cid: cid.into(),
            min_providers: self.policy.min_providers,
            live,
            under_replicated: live < self.policy.min_providers,
            replicas: replicas
                .iter()
                .map(|r| ReplicaRow {
                    holder: r.holder.to_string(),
                    is_self: r.holder == self.mesh.agent,
                    live: r.live,
                    until: rfc3339(r.claim.until),
                    endpoint: r.claim.endpoint.clone(),
                })
                .collect(),
        })
    }

    /// Stores `content` in this node's IPFS unpinned: bytes a caller may still decide not to keep
    /// (the daemon collects them) or to `offer`.
    pub async fn stage<S>(&self, content: S) -> Result<kubo::Added, ArtifactError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        Ok(self.kubo()?.add(content, AddMode::Cache, |_| {}).await?)
    }

    /// Pins `cid` (already in this node's IPFS) and claims this node's replica of it, so peers
    /// fetch it through this node's peer route like any artifact, without a registration (shard
    /// snapshots). The lease is renewed while the pin stays.
    pub async fn offer(&self, cid: &str) -> Result<ReplicaRecord, ArtifactError> {
        self.kubo()?.pin_add(cid).await?;
        let _chain = self.chain.lock().await;
        self.claim(cid).await
    }

    /// Undoes `offer` for bytes nobody registered: unpins them and drops this node's claim. A
    /// registered artifact stays held (its replication is the storage policy's).
    pub async fn withdraw(&self, cid: &str) -> Result<(), ArtifactError> {
        match self.info(cid).await {
            Err(ArtifactError::NotRegistered(_)) => {}
            Ok(_) => return Ok(()),
            Err(e) => return Err(e),
        }
        self.kubo()?.pin_rm(cid).await?;
        let _chain = self.chain.lock().await;
        let _: bool = self.mesh.call(ROLE, "replication", "drop_replica", &cid).await?;
        Ok(())
    }

    /// Creates or renews this node's lease on `cid`. The caller holds `chain`.
    async fn claim(&self, cid: &str) -> Result<ReplicaRecord, ArtifactError> {
        let input = ClaimReplicaInput {
            cid: cid.into(),
            lease_secs: self.policy.lease_secs,
            endpoint: Some(self.endpoint.clone()),
        };
        Ok(self.mesh.call(ROLE, "replication", "claim_replica", &input).await?)
    }

    /// The replication loops: renewing this node's leases while it still pins the data, and
    /// repairing the under-replicated artifacts it is responsible for. They run side by side, so
    /// a repair copying a large artifact never holds up a renewal until a lease runs out. Without
    /// IPFS there is nothing to do.
    pub async fn run(self: Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) {
        let Some(kubo) = &self.kubo else { return };
        match kubo.id().await {
            Ok(id) => tracing::info!("IPFS node {} ({}) at {}", id.id, id.agent_version, kubo.url()),
            Err(e) => tracing::warn!("IPFS API: {e}"),
        }
        tokio::join!(
            self.repeat("lease renewal", stop.clone(), || self.renew()),
            self.repeat("repair", stop, || self.repair()),
        );
    }

    /// Runs `pass` every scan interval until `stop`, recording its errors in the state.
    async fn repeat<F>(&self, what: &str, stop: tokio::sync::watch::Receiver<bool>, pass: impl Fn() -> F)
    where
        F: std::future::Future<Output = Result<(), ArtifactError>>,
    {
        let every = Duration::from_secs(u64::from(self.policy.scan_interval_secs));
        crate::periodic::every(every, stop, || async {
            if let Err(e) = pass().await {
                tracing::warn!("replication, {what}: {e}");
                self.update(|s| s.last_error = Some(format!("{what}: {e}")));
            }
        })
        .await
    }

    fn update(&self, change: impl FnOnce(&mut ReplicationState)) {
        if let Ok(mut s) = self.state.lock() {
            change(&mut s);
        }
    }

    /// Renews each lease past half its life if the CID is still pinned here; otherwise stops
    /// advertising it.
    async fn renew(&self) -> Result<(), ArtifactError> {
        let kubo = self.kubo()?;
        let mine: Vec<ReplicaRecord> = self.mesh.call(ROLE, "replication", "get_my_replicas", &()).await?;
        let now = Timestamp::now().as_micros();
        let half = i64::from(self.policy.lease_secs) * 500_000;
        let mut held = 0;
        for replica in mine {
            let pinned = kubo.is_pinned(&replica.claim.cid).await?;
            let _chain = self.chain.lock().await;
            if pinned {
                held += 1;
                if replica.claim.until.as_micros() - now < half {
                    self.claim(&replica.claim.cid).await?;
                }
            } else if replica.live {
                let _: bool = self.mesh.call(ROLE, "replication", "drop_replica", &replica.claim.cid).await?;
            }
        }
        self.update(|s| s.held = held);
        Ok(())
    }

    /// The nodes holding a live replica of `cid`.
    async fn live_holders(&self, cid: &str) -> Result<Vec<AgentPubKey>, ArtifactError> {
        let replicas: Vec<ReplicaRecord> = self.mesh.call(ROLE, "replication", "get_replicas_for_cid", &cid).await?;
        Ok(replicas.into_iter().filter(|r| r.live).map(|r| r.holder).collect())
    }

    /// Finds under-replicated artifacts and repairs those this node is responsible for.
    async fn repair(&self) -> Result<(), ArtifactError> {
        let me = self.mesh.agent.clone();
        // Every registered node: the online ones repair; the unseen ones (advert online, no recent
        // heartbeat in the view) may be repairing too, and are waited for (`grace_windows`).
        let (mut online, mut unseen) = (Vec::new(), Vec::new());
        for p in self.view.all().iter().filter(|p| p.advert.availability == Availability::Online) {
            let candidate = Candidate {
                agent: p.agent.clone(),
                free_bytes: p.advert.storage.local_ssd_gb.saturating_mul(GB),
                has_ipfs: p.advert.storage.ipfs_pinned_gb > 0,
            };
            if p.is_online() { &mut online } else { &mut unseen }.push(candidate);
        }
        if !online.iter().any(|c| c.agent == me) {
            return Ok(()); // only an online node takes on repairs
        }
        let waiting = !self.view.has_heard_the_mesh();
        self.update(|s| s.waiting_for_mesh = waiting);
        if waiting {
            return Ok(());
        }
        // Every artifact once, the most registered first (popular_first).
        let mut artifacts: BTreeMap<String, (u64, usize)> = BTreeMap::new();
        for shard in 0..SHARDS {
            let records: Vec<ArtifactRecord> =
                self.mesh.call(ROLE, "artifacts", "get_artifacts_in_shard", &shard).await?;
            for r in records {
                let entry = artifacts.entry(r.artifact.cid.clone()).or_insert((0, 0));
                entry.0 = entry.0.max(r.artifact.size);
                entry.1 += 1;
            }
        }
        let mut ordered: Vec<(String, u64, usize)> = artifacts.into_iter().map(|(c, (s, n))| (c, s, n)).collect();
        ordered.sort_by_key(|(_, _, n)| std::cmp::Reverse(*n));
        let grace = Duration::from_secs(self.policy.grace_secs.into());
        for (cid, size, _) in ordered {
            let holders = self.live_holders(&cid).await?;
            let under = holders.len() < self.policy.min_providers;
            let wait = grace * grace_windows(&cid, size, &me, &unseen, &holders);
            let due = self.gate.lock().map(|mut g| g.due(&cid, under, wait, Instant::now())).unwrap_or(false);
            if !due || !responsible(&cid, size, &online, &holders, self.policy.min_providers).contains(&me) {
                continue;
            }
            let allowed = self
                .gate
                .lock()
                .map(|mut g| g.take(self.policy.max_repairs_per_minute, Instant::now()))
                .unwrap_or(false);
            if !allowed {
                return Ok(()); // the budget is spent; the rest waits for the next pass
            }
            let kubo = self.kubo()?;
            let was_pinned = kubo.is_pinned(&cid).await?;
            let source = if was_pinned || kubo.cat(&cid, CACHE_PROBE).await.is_ok() {
                kubo.pin_add(&cid).await?;
                "this node's IPFS".to_string()
            } else {
                self.fetch_from_replicas(&cid, AddMode::Pin).await?
            };
            // The copy took a while: another node's repair may have landed meanwhile.
            if self.live_holders(&cid).await?.iter().filter(|h| **h != me).count() >= self.policy.min_providers {
                if !was_pinned {
                    kubo.pin_rm(&cid).await?;
                }
                tracing::info!("{cid} was repaired by another node while this one copied it; no claim made");
                if let Ok(mut g) = self.gate.lock() {
                    g.repaired(&cid);
                }
                continue;
            }
            {
                let _chain = self.chain.lock().await;
                self.claim(&cid).await?;
            }
            if let Ok(mut g) = self.gate.lock() {
                g.repaired(&cid);
            }
            tracing::info!(
                "repaired {cid} ({} live of {} wanted) from {source}",
                holders.len(),
                self.policy.min_providers
            );
            self.update(|s| {
                s.repairs += 1;
                s.last_repair = Some(format!("{cid} from {source}"));
                s.last_error = None;
            });
        }
        Ok(())
    }
}

/// The registration `publish` writes for bytes with this CID, digest and size.
fn draft(meta: &PublishMeta, cid: &str, sha256: &str, size: u64) -> Artifact {
    Artifact {
        cid: cid.into(),
        sha256: sha256.into(),
        size,
        name: meta.name.clone(),
        media_type: meta.media_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
        labels: meta.labels.clone(),
    }
}

/// The statement `publish` attaches: the caller's (a full statement, or a predicate to wrap), or
/// one by this node naming the materials. The builder is always this node's agent.
fn statement(me: &AgentPubKey, meta: &PublishMeta, sha256: &str) -> Result<String, ArtifactError> {
    let bad = |m: String| ArtifactError::BadInput(format!("provenance: {m}"));
    for cid in &meta.materials {
        check_cid(cid).map_err(|_| bad(format!("material `{cid}` is not a CID")))?;
    }
    let mut statement = match &meta.provenance {
        None => statement_for(me, &meta.name, sha256, &[], RIPPLE_BUILD_TYPE, Default::default()),
        Some(value) if value.get("_type").is_some() => {
            let mut s: Statement =
                serde_json::from_value(value.clone()).map_err(|e| bad(format!("not an in-toto Statement v1: {e}")))?;
            let builder = &mut s.predicate.run_details.builder.id;
            if builder.is_empty() {
                *builder = agent_uri(me);
            } else if *builder != agent_uri(me) {
                return Err(bad(format!(
                    "runDetails.builder.id is `{builder}`, but the statement is signed by this node, {}",
                    agent_uri(me)
                )));
            }
            s
        }
        Some(value) => {
            let predicate: SlsaProvenance = serde_json::from_value(value.clone())
                .map_err(|e| bad(format!("neither an in-toto Statement nor a SLSA Provenance v1 predicate: {e}")))?;
            let mut s = statement_for(me, &meta.name, sha256, &[], RIPPLE_BUILD_TYPE, Default::default());
            s.predicate = predicate;
            s.predicate.run_details.builder.id = agent_uri(me);
            s
        }
    };
    // A given statement names its own subjects; checking it against the placeholder digest only
    // tests its shape, so make the placeholder one of them.
    if sha256.bytes().all(|b| b == b'0') && !statement.names_digest(sha256) {
        statement.subject.push(ResourceDescriptor {
            name: Some(meta.name.clone()),
            uri: None,
            digest: std::iter::once(("sha256".to_string(), sha256.to_string())).collect(),
        });
    }
    statement.predicate.build_definition.resolved_dependencies.extend(
        meta.materials.iter().map(|cid| ResourceDescriptor {
            name: None,
            uri: Some(format!("ipfs://{cid}")),
            digest: Default::default(),
        }),
    );
    serde_json::to_string(&statement).map_err(|e| bad(e.to_string()))
}

/// The offline checks of one statement: the builder's signature over the action, the entry the
/// action commits to, the statement's rules and subject, and the builder's chain.
fn check_provenance(p: &ProvenanceRecord, sha256: &str) -> Check {
    let action = p.record.action();
    let mut problems = vec![];
    let signed_bytes = holochain_serialized_bytes::encode(action).unwrap_or_default();
    let key: Option<[u8; 32]> = p.builder.get_raw_32().try_into().ok();
    let signature_ok = key.is_some_and(|k| sodoken::sign::verify_detached(&p.record.signature().0, &signed_bytes, &k));
    if !signature_ok {
        problems.push("the builder's signature does not match the action".to_string());
    }
    if ActionHash::with_data_sync(action) != p.provenance_id || action.author() != &p.builder {
        problems.push("the action is not the one its hash names".into());
    }
    let entry_ok = match p.record.entry().as_option() {
        Some(entry) => action.entry_hash() == Some(&EntryHash::with_data_sync(entry)),
        None => false,
    };
    if !entry_ok {
        problems.push("the statement is not the entry the signed action commits to".into());
    }
    match Statement::parse_and_check(&p.provenance.statement, &p.builder) {
        Ok(s) if s.names_digest(sha256) => {}
        Ok(_) => problems.push(format!("no subject of the statement is sha256 {sha256}")),
        Err(v) => problems.push(v.to_string()),
    }
    let chain = &p.chain;
    if !chain.on_chain || chain.status != "valid" || chain.warrants > 0 {
        problems.push(format!(
            "the builder's chain does not check out (action {} at seq {}: {}, chain {}, {} warrant(s))",
            p.provenance_id,
            chain.seq,
            if chain.on_chain { "present" } else { "not reported by its authorities" },
            chain.status,
            chain.warrants
        ));
    }
    let ok = problems.is_empty();
    Check {
        check: format!("provenance {} by {}", p.provenance_id, p.builder),
        ok,
        detail: if ok {
            format!(
                "signed by its builder {}, seq {} of a valid chain with no warrants",
                agent_uri(&p.builder),
                chain.seq
            )
        } else {
            problems.join("; ")
        },
    }
}

fn registration(r: &ArtifactRecord) -> Registration {
    Registration {
        cid: r.artifact.cid.clone(),
        artifact_id: r.artifact_id.to_string(),
        registrant: r.registrant.to_string(),
        registered_at: rfc3339(r.registered_at),
        sha256: r.artifact.sha256.clone(),
        size: r.artifact.size,
        name: r.artifact.name.clone(),
        media_type: r.artifact.media_type.clone(),
        labels: r.artifact.labels.clone(),
    }
}

pub fn check_cid(cid: &str) -> Result<(), ArtifactError> {
    if is_cid(cid) {
        Ok(())
    } else {
        Err(ArtifactError::BadInput(format!("`{cid}` is not a CID (CIDv0 Qm… or CIDv1 b…/z…)")))
    }
}

/// The copy of a replica's bytes into this node's IPFS, fed as the reader reads. Dropped before
/// `finish` (the reader went away, or the read failed), the add is aborted, so no truncated file
/// ends up in IPFS.
struct CacheCopy {
    task: Option<tokio::task::JoinHandle<Result<kubo::Added, KuboError>>>,
    tx: Option<tokio::sync::mpsc::Sender<std::io::Result<Bytes>>>,
}

impl CacheCopy {
    /// Feeds the copy; a copy that already failed is left behind (reading goes on without it).
    async fn send(&mut self, chunk: std::io::Result<Bytes>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(chunk).await;
        }
    }

    /// Ends the input and waits for the add.
    async fn finish(mut self) -> Option<Result<Result<kubo::Added, KuboError>, tokio::task::JoinError>> {
        self.tx = None;
        Some(self.task.take()?.await)
    }
}

impl Drop for CacheCopy {
    fn drop(&mut self) {
        // Abort first: the sender, dropped after this, would otherwise end the input cleanly.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What a replica that served other bytes than `cid` is told it did.
fn not_the_cid(who: &str, added: &kubo::Added, cid: &str) -> String {
    format!("{who} served bytes whose CID is {} (sha256 {}), not {cid}: tampered or wrong", added.cid, added.sha256)
}

/// A live replica's peer route for one artifact.
struct ReplicaUrl {
    holder: String,
    endpoint: String,
    url: String,
}

impl ReplicaUrl {
    /// Where the bytes came from, as `get` reports it.
    fn source(&self) -> String {
        format!("replica of {} at {}", self.holder, self.endpoint)
    }
}

fn boxed<S>(stream: S) -> ByteStream
where
    S: Stream<Item = Result<Bytes, KuboError>> + Send + 'static,
{
    Box::pin(stream.map_err(ArtifactError::from))
}

fn rfc3339(t: Timestamp) -> String {
    t.to_string()
}
