//! The `ripple` command line: arguments, resolution against `ripple.toml`, and output (tables for
//! people, `--json` for scripts). Exit codes: 0 ok, 1 failure, 2 bad input, 3 no node running,
//! 130 interrupted while starting.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use agent_registry_types::DiscoveryQuery;

use crate::api::{PeerRow, StatusReport};
use crate::compiled_zomes::{bundle_zomes, ZomeCache};
use crate::config::{self, ConfigError, ConfigFile, CONFIG_FILE, DEFAULT_API_LISTEN, DEFAULT_BOOTSTRAP_LISTEN};
use crate::manifests::Manifests;
use crate::mcp::ToolNames;
use crate::node::probe::ProbeSources;
use crate::node::{AdvertRefresh, NodeSettings, NodeState};
use crate::resources::scheduler::Plan;
use crate::resources::{AllocateRequest, Allocation, AllocationRow, Available};
use crate::runfile::{RunFile, RunFileError};
use crate::up::{self, ConductorChoice, McpHttp, Ready, UpError, UpSettings};
use resource_mesh_types::{describe_capacity, Capacity, ResourceType, UsageSummary};

/// Ripple mesh node: joins a Ripple network through a Holochain conductor, publishes this
/// machine's capabilities and heartbeats, and finds other nodes.
#[derive(Debug, Parser)]
#[command(name = "ripple", version, propagate_version = true)]
pub struct Cli {
    /// Data directory (conductor databases, keystore, ripple.toml).
    #[arg(long, global = true, env = "RIPPLE_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Config file [default: <data>/ripple.toml].
    #[arg(long, global = true, env = "RIPPLE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The manifests directory (networks, DNA pins, conductor template).
    #[arg(long, global = true, env = "RIPPLE_MANIFESTS", value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// This machine's compiled-zome cache, shared by its nodes [default: <user cache dir>/ripple/compiled-zomes].
    #[arg(long, global = true, env = "RIPPLE_ZOME_CACHE", value_name = "DIR")]
    pub zome_cache: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a ripple.toml with every setting and its default, commented.
    Init(InitArgs),
    /// A network's bootstrap and relay server on its own, for an operator who hosts it on a public
    /// machine (no conductor, no data dir).
    #[command(subcommand)]
    Bootstrap(BootstrapCommand),
    /// Networks you run: create one with this node as its admin, invite nodes into it, show the
    /// network this data dir belongs to.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Start the node: conductor, network, advert, heartbeats and the HTTP API. Stops on Ctrl-C/SIGTERM.
    Up(UpArgs),
    /// Serve the MCP tools (holochain.*) over stdio for an AI agent or IDE. The node starts when a
    /// tool needs it (holochain.init_conductor, holochain.join_mesh, or any other tool, which joins
    /// the configured network) and goes offline when the client closes stdin. Takes `up`'s flags.
    Mcp(UpArgs),
    /// Compile the hApp's zomes to native code into this machine's compiled-zome cache, so that a
    /// node's first start here skips the conductor's compile (about 50 s of CPU on 2 cores, and
    /// ~1 GB of compiler heap the node would keep). `up` runs this by itself, in a child process,
    /// when the cache lacks a zome; run it ahead to prepare a machine or an image.
    CompileZomes(CompileZomesArgs),
    /// The running node's agent, cells, peers and mesh status (holochain.join_mesh's outputs).
    Status,
    /// Nodes on the mesh, filtered by capability.
    Peers(PeersArgs),
    /// This node's advert.
    #[command(subcommand)]
    Advert(AdvertCommand),
    /// Allocate resources from the mesh (resources.allocate): schedule with locality_aware_binpack,
    /// ask the best provider, print its grant. --dry-run prints the plan instead: every candidate's
    /// score and why the others were filtered out.
    Allocate(AllocateArgs),
    /// End an allocation early (this node's, as requester or provider).
    Release {
        /// The allocation id `ripple allocate` printed.
        allocation_id: String,
    },
    /// This node's allocations, as requester and as provider, with their receipts.
    Allocations {
        /// At most this many per side, newest first.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Providers on the mesh with what they offer, hold and have free.
    Available,
    /// Resource-seconds this node provided and used, from usage receipts.
    Usage,
    /// Content-addressed artifacts: bytes in IPFS, what they are and who made them on the mesh.
    #[command(subcommand)]
    Artifact(ArtifactCommand),
    /// Rego policies that gate every mutating command and tool, their decisions and the audit log.
    /// Without a subcommand: the network's admins and the package versions in force on this node.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Vector-memory shards: collections' shard maps, who holds which replica, where a key goes,
    /// and replica checkpoints. Nodes with `vector_shards` > 0 claim the shards placed on them.
    #[command(subcommand)]
    Shards(ShardsCommand),
    /// Ask the mesh: one model on the best node serving it (--model; the next node if that one
    /// fails), or every model of the inference policy at once with a weighted consensus (--moe).
    Infer(InferArgs),
    /// Models served on the mesh and the nodes serving each, in routing order; `load` and `unload`
    /// manage this node's LocalAI models (policy-gated; the advert follows).
    Models {
        #[command(subcommand)]
        action: Option<ModelsCommand>,
    },
}

#[derive(Debug, clap::Args)]
pub struct InferArgs {
    /// The prompt; `-` reads it from stdin.
    pub prompt: String,
    /// The model to ask [default: the mesh's only model].
    #[arg(long, conflicts_with = "moe")]
    pub model: Option<String>,
    /// Fan out to the inference policy's models (manifests/distributed/inference_policy.yaml) and
    /// merge their answers by weighted consensus.
    #[arg(long)]
    pub moe: bool,
    /// --moe: code_generation, reasoning, general or review.
    #[arg(long, default_value = "general", requires = "moe")]
    pub task: String,
    /// --moe: a named policy from inference_policy.yaml instead of the default.
    #[arg(long, requires = "moe")]
    pub policy: Option<String>,
    /// --moe: answer with the heaviest group even below the policy's min_agreement.
    #[arg(long, requires = "moe")]
    pub no_consensus_required: bool,
    #[arg(long, default_value_t = 4096)]
    pub max_tokens: u32,
    /// Sampling temperature (0-2) [default: each server's].
    #[arg(long)]
    pub temperature: Option<f64>,
    /// --model: deadline for the whole query, failovers included.
    #[arg(long, conflicts_with = "moe")]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Install a model on this node's LocalAI (gallery id such as localai@phi-2, or a model config
    /// URL) and republish the advert. Not supported by servers without LocalAI's model management.
    Load {
        model: String,
        /// Serve it under this name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Stop and remove a model from this node's LocalAI and republish the advert.
    Unload { model: String },
}

#[derive(Debug, Subcommand)]
pub enum ShardsCommand {
    /// Create a collection's shard map (this node is its owner). Defaults come from
    /// manifests/distributed/memory_policy.yaml (16 shards, replication factor 2).
    Create {
        /// The collection's name: 1-64 characters of [a-z0-9._-].
        collection: String,
        /// Shards (1-1024).
        #[arg(long)]
        shards: Option<u32>,
        /// Replicas of each shard (1-16).
        #[arg(long)]
        replicas: Option<u32>,
    },
    /// Every collection on the mesh.
    List,
    /// A collection's map: per shard, the nodes it is placed on, its live holders (primary first)
    /// and the winning checkpoint. COLLECTION may be left out when the mesh has only one.
    Map { collection: Option<String> },
    /// Where KEY goes: its shard and that shard's live holders, primary first. Every node answers
    /// the same from the same DHT state.
    Route {
        /// The key to route (a document id, a memory key, …).
        key: String,
        /// The collection [default: the mesh's only one].
        #[arg(long)]
        collection: Option<String>,
    },
    /// Every claim on a collection's shards that has not been released, with whether its holder
    /// is live (online with vector capacity).
    Claims { collection: Option<String> },
    /// Record how far this node's replica of SHARD has synced.
    Checkpoint {
        #[arg(long)]
        shard: u32,
        /// Vectors in the replica.
        #[arg(long)]
        vectors: u64,
        /// The IPFS CID of the replica's snapshot (stored by the vector store itself).
        #[arg(long, conflicts_with = "snapshot_file")]
        snapshot: Option<String>,
        /// A file holding the replica's snapshot: stored in this node's IPFS and offered to the
        /// other replicas through this node's peer route (`shards snapshot` fetches it); the
        /// snapshot this replica offered before is released.
        #[arg(long, value_name = "FILE")]
        snapshot_file: Option<PathBuf>,
        /// The replica's write sequence [default: one after its last checkpoint].
        #[arg(long)]
        sequence: Option<u64>,
        /// The collection [default: the mesh's only one].
        #[arg(long)]
        collection: Option<String>,
    },
    /// Fetch the snapshot of SHARD's winning checkpoint (what a replica behind it syncs from),
    /// from this node's IPFS or through its holder's peer route; its CID is checked.
    Snapshot {
        #[arg(long)]
        shard: u32,
        /// The collection [default: the mesh's only one].
        #[arg(long)]
        collection: Option<String>,
        /// Where to write the bytes (`-`: standard output) [default: shard-SHARD.snapshot, or
        /// COLLECTION.shard-SHARD.snapshot with --collection, in the current directory].
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// The network's policy admins and the version of each package in force on this node.
    Show,
    /// Publish FILE (Rego v1; its `package` line names the package) as the package's next version.
    /// Admins only. The Rego is compiled first: a syntax error is reported with line and column and
    /// nothing is written.
    Publish {
        file: PathBuf,
        /// JSON object file: the package's `data`. (Not `--data`: that is the node's data dir.)
        #[arg(long, value_name = "FILE")]
        data_json: Option<PathBuf>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Evaluate PACKAGE for INPUT (a JSON document, or @FILE) with the version in force here,
    /// recording nothing. Exits 1 when the input is denied.
    Eval { package: String, input: String },
    /// Decisions recorded by the mesh's nodes, newest first.
    Decisions {
        /// The last this many hours (1-168).
        #[arg(long, default_value_t = 24)]
        hours: u32,
        /// Only this node's decisions (agent key).
        #[arg(long)]
        node: Option<String>,
    },
    /// Audit events (policy publishes, denials, …), newest first.
    Audit {
        /// The last this many hours (1-168).
        #[arg(long, default_value_t = 24)]
        hours: u32,
        /// Every event about this subject (a tool name, a package, a CID, …) instead.
        #[arg(long)]
        subject: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Publish a file: add it to this node's IPFS (pinned), register its CID, sha256, size, name
    /// and labels on the mesh, attach a provenance statement signed by this node, and claim this
    /// node's replica. Prints progress for large files.
    Add(ArtifactAddArgs),
    /// Fetch an artifact's bytes (from this node's IPFS, else from a live replica), checking them
    /// against the registered sha256 as they are written.
    Get {
        cid: String,
        /// Where to write [default: the registered name, in the current directory]; `-` for stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check an artifact: the bytes have this CID and the registered sha256 and size, and every
    /// provenance statement is signed by its builder, names these bytes and sits on a valid chain.
    /// Exits 1 when any check fails.
    Verify {
        cid: String,
        /// Check this local copy instead of fetching the bytes.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// The nodes holding an artifact and their leases, against the storage policy's min_providers.
    Replicas { cid: String },
    /// Registrations found by name, label or sha256 (give exactly one).
    Find {
        #[arg(long, conflicts_with_all = ["label", "sha256"], required_unless_present_any = ["label", "sha256"])]
        name: Option<String>,
        #[arg(long, conflicts_with = "sha256")]
        label: Option<String>,
        #[arg(long)]
        sha256: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ArtifactAddArgs {
    pub file: PathBuf,
    /// The artifact's name [default: the file name].
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, default_value = "application/octet-stream")]
    pub media_type: String,
    /// A search label ([a-z0-9._:=-]); repeat for several.
    #[arg(long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
    /// An in-toto Statement v1 (JSON) whose subjects include this file, or a SLSA Provenance v1
    /// predicate to wrap into one. Default: a statement by this node naming the --material CIDs.
    #[arg(long, value_name = "FILE")]
    pub provenance: Option<PathBuf>,
    /// The CID of an input the artifact was made from; repeat for several.
    #[arg(long = "material", value_name = "CID")]
    pub materials: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AllocateArgs {
    /// compute, inference, storage or memory.
    #[arg(value_parser = ["compute", "inference", "storage", "memory"])]
    pub resource_type: String,
    #[arg(long, value_name = "N")]
    pub cpu: Option<u32>,
    #[arg(long, value_name = "GB")]
    pub memory_gb: Option<u32>,
    #[arg(long, value_name = "N")]
    pub gpus: Option<u32>,
    #[arg(long, value_name = "GB")]
    pub vram_gb: Option<u32>,
    #[arg(long, value_name = "GB")]
    pub storage_gb: Option<u32>,
    /// The model to serve (inference; asks for one model slot unless amounts are given).
    #[arg(long)]
    pub model: Option<String>,
    /// nearest, cheapest, fastest or any.
    #[arg(long, default_value = "nearest", value_parser = ["nearest", "cheapest", "fastest", "any"])]
    pub locality: String,
    /// Seconds to hold it [default: the workload class's timeout, else 3600].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u32>,
    /// Workload class of manifests/distributed/compute_policy.yaml [default: by resource type].
    /// With no amounts given, its resource_request applies.
    #[arg(long)]
    pub class: Option<String>,
    /// Print the scheduling plan; allocate nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Network to write into the config.
    #[arg(long, default_value = "local")]
    pub network: String,
    /// Node name [default: the host name].
    #[arg(long)]
    pub agent_name: Option<String>,
    /// Overwrite an existing config.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CompileZomesArgs {
    /// The hApp bundle [default: workdir/ripple.happ].
    #[arg(long, env = "RIPPLE_HAPP", value_name = "FILE")]
    pub happ: Option<PathBuf>,
}

/// What `ripple compile-zomes` did.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct CompileZomesReport {
    pub cache_dir: PathBuf,
    pub happ: PathBuf,
    pub zomes: Vec<CompiledZome>,
    pub seconds: f64,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct CompiledZome {
    /// `dna/zome`.
    pub name: String,
    pub wasm_hash: String,
    /// Compiled by this run; false when the cache already held it.
    pub compiled_now: bool,
}

#[derive(Debug, Args, Default)]
pub struct UpArgs {
    /// Network from networks.json (local, testnet or mainnet), or a network file from `ripple
    /// network create` (a path: contains `/` or ends in .json) [default: the network this data dir
    /// belongs to, else local].
    #[arg(long, env = "RIPPLE_NETWORK")]
    pub network: Option<String>,
    /// The invitation (`ripple network invite` on an admin's node) that admits this node to a
    /// network file's network. Needed once, on the first start.
    #[arg(long, value_name = "FILE")]
    pub invite: Option<PathBuf>,
    /// Attach to a running conductor's admin websocket (e.g. from `hc sandbox`) instead of embedding one.
    #[arg(long, value_name = "ws://127.0.0.1:PORT")]
    pub admin_url: Option<String>,
    /// Join this bootstrap+relay server (ripple-local: the URL the first node printed).
    #[arg(long, value_name = "URL")]
    pub bootstrap: Option<String>,
    /// Where the first ripple-local node serves bootstrap+relay [default: 127.0.0.1:0, any free port].
    #[arg(long, value_name = "ADDR")]
    pub bootstrap_listen: Option<SocketAddr>,
    /// ripple-local: the agent key of the node that created the network, its policy admin (the first
    /// node prints it next to its bootstrap URL). Needed the first time a node joins with --bootstrap.
    #[arg(long, value_name = "uhCAk…")]
    pub policy_admin: Option<String>,
    /// Keystore passphrase file [default: $RIPPLE_PASSPHRASE, else <data>/passphrase, created on first start].
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// The hApp bundle [default: workdir/ripple.happ].
    #[arg(long, env = "RIPPLE_HAPP", value_name = "FILE")]
    pub happ: Option<PathBuf>,
    /// Loopback address of the HTTP API [default: 127.0.0.1:7780 for `up`, a free port for `mcp`;
    /// port 0 picks one].
    #[arg(long, value_name = "ADDR")]
    pub api: Option<SocketAddr>,
    /// Node name in the advert [default: the host name].
    #[arg(long)]
    pub agent_name: Option<String>,
    /// Latency region in the advert, e.g. us-west.
    #[arg(long)]
    pub region: Option<String>,
    /// Seconds between heartbeats [default: half the network's heartbeat bucket].
    #[arg(long)]
    pub heartbeat_secs: Option<u32>,
    /// OpenAI-compatible (LocalAI) base URL whose /v1/models go into the advert.
    #[arg(long, value_name = "URL")]
    pub localai_url: Option<String>,
    /// Kubo RPC API base URL whose repo size goes into the advert.
    #[arg(long, value_name = "URL")]
    pub ipfs_api_url: Option<String>,
    /// Vector-memory shard replicas this node can hold (advertised as memory.vector_shards; the
    /// shard loop claims up to this many). 0 holds none [default: 0].
    #[arg(long, value_name = "N")]
    pub vector_shards: Option<u32>,
    /// Serve the peer routes other machines' nodes call (artifact bytes; signed by members, decided
    /// by the `peer.request` policy) on ADDR, e.g. 10.0.0.2:7781. Without it, only nodes on this
    /// machine can fetch from this one.
    #[arg(long, value_name = "ADDR")]
    pub peer_listen: Option<SocketAddr>,
    /// The URL other nodes reach --peer-listen at [default: http://ADDR, when ADDR is not 0.0.0.0/::].
    #[arg(long, value_name = "URL")]
    pub peer_url: Option<String>,
    /// Also serve the MCP tools over streamable HTTP at http://ADDR/mcp (loopback only).
    #[arg(long, value_name = "ADDR")]
    pub mcp_http: Option<SocketAddr>,
    /// MCP tool names: `dotted` as the spec writes them (holochain.join_mesh), or `underscore`
    /// (holochain_join_mesh) for clients that accept only [a-zA-Z0-9_-].
    #[arg(long, value_enum, default_value_t = ToolNames::Dotted)]
    pub tool_names: ToolNames,
    /// Do not lend this node's resources: publish no resource offer and answer no allocation
    /// requests (this node can still allocate from others).
    #[arg(long)]
    pub no_provide: bool,
}

#[derive(Debug, Args)]
pub struct PeersArgs {
    /// GPU vendor, e.g. nvidia.
    #[arg(long)]
    pub gpu_vendor: Option<String>,
    /// At least one GPU with this many GB of VRAM.
    #[arg(long, value_name = "GB")]
    pub min_vram: Option<u32>,
    /// A loaded model.
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long)]
    pub cpu_arch: Option<String>,
    #[arg(long, value_name = "N")]
    pub min_cpu_cores: Option<u32>,
    #[arg(long, value_name = "GB")]
    pub min_ram: Option<u32>,
    /// Total storage (local + IPFS + S3).
    #[arg(long, value_name = "GB")]
    pub min_storage: Option<u64>,
    /// Only nodes online now.
    #[arg(long)]
    pub online: bool,
    #[arg(long)]
    pub limit: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network with this node as its admin and policy admin: a random network seed,
    /// admission by invitation, and bootstrap+relay served by this node (--listen) or by an existing
    /// server (--bootstrap). Writes the network file others join with; `ripple up` then runs the
    /// node. Nothing is installed until then.
    Create(NetworkCreateArgs),
    /// Invite a node (admins only; the node must be running): sign an invitation for its agent key,
    /// which it prints when it first starts with the network file. Writes the invitation file.
    Invite(NetworkInviteArgs),
    /// The network this data dir belongs to (no node needed); --out writes its network file again.
    Show {
        /// Write the network file for others here.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// The network's name: 1-32 characters of [a-z0-9-].
    pub name: String,
    /// Serve the network's bootstrap+relay on this address when the node runs, e.g. 10.0.0.1:7790
    /// or 0.0.0.0:7790 (with --advertise). A fixed port: the network file keeps the URL.
    #[arg(long, value_name = "ADDR", required_unless_present = "bootstrap", conflicts_with = "bootstrap")]
    pub listen: Option<SocketAddr>,
    /// The URL other nodes reach --listen at [default: http://ADDR, when ADDR is not 0.0.0.0/::].
    #[arg(long, value_name = "URL", requires = "listen")]
    pub advertise: Option<String>,
    /// Use an existing kitsune2 bootstrap server (e.g. `ripple bootstrap serve` on a public machine).
    #[arg(long, value_name = "URL")]
    pub bootstrap: Option<String>,
    /// Its relay, when it is not the bootstrap server's URL.
    #[arg(long, value_name = "URL", requires = "bootstrap")]
    pub relay: Option<String>,
    /// Heartbeat bucket in seconds [default: the bundle's, 300]: a node is online while it beat in
    /// the current or previous bucket. Part of the DNA hash, fixed with the network.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u32).range(2..=86_400))]
    pub heartbeat_bucket: Option<u32>,
    /// Where to write the network file [default: NAME.network.json in the current directory].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// The hApp bundle [default: workdir/ripple.happ].
    #[arg(long, env = "RIPPLE_HAPP", value_name = "FILE")]
    pub happ: Option<PathBuf>,
    /// Keystore passphrase file [default: $RIPPLE_PASSPHRASE, else <data>/passphrase, created here].
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NetworkInviteArgs {
    /// The invitee's agent key (uhCAk…), as its node printed it.
    pub agent_key: String,
    /// Where to write the invitation [default: invitation-<first 12 characters of the key>.json].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BootstrapCommand {
    /// Serve kitsune2 bootstrap and the iroh relay on ADDR until Ctrl-C/SIGTERM; nodes join with
    /// `--bootstrap http://HOST:PORT` (https with --tls-cert/--tls-key).
    Serve(BootstrapServeArgs),
}

#[derive(Debug, Args)]
pub struct BootstrapServeArgs {
    /// Where to listen, e.g. 0.0.0.0:7790 for every interface (port 0 picks a free one). The relay's
    /// QUIC address discovery listens on a free UDP port of the same address.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// PEM certificate chain: serve https (give --tls-key too).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// What `ripple bootstrap serve` prints once it listens.
#[derive(Debug, serde::Serialize)]
pub struct BootstrapServing {
    pub listen: SocketAddr,
    /// The URL to join with, when the listen address is one others can use as it is.
    pub bootstrap_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdvertCommand {
    /// The advert as published, and the probe it came from.
    Show,
    /// Probe the hardware again and republish the advert if anything changed.
    Refresh,
}

/// Bad input (exit code 2) as opposed to a failure while running (1).
fn is_bad_input(e: &anyhow::Error) -> bool {
    if e.downcast_ref::<ConfigError>().is_some() || e.downcast_ref::<crate::manifests::ManifestError>().is_some() {
        return true;
    }
    if let Some(e) = e.downcast_ref::<crate::networks::NetworkError>() {
        return e.is_bad_input();
    }
    if let Some(UpError::Network(e)) = e.downcast_ref::<UpError>() {
        return e.is_bad_input();
    }
    matches!(
        e.downcast_ref::<UpError>(),
        Some(
            UpError::Manifest(_)
                | UpError::Setting(_)
                | UpError::BootstrapUnreachable { .. }
                | UpError::ApiBind { .. }
                | UpError::McpBind { .. }
                | UpError::PeerBind { .. }
                | UpError::BootstrapBind { .. }
                | UpError::RunFile(RunFileError::AlreadyRunning { .. })
                | UpError::Conductor(crate::conductor::ConductorError::Passphrase(_))
                | UpError::Node(crate::node::NodeError::HeartbeatPeriod { .. })
                | UpError::Mesh(crate::mesh::MeshError::NotInvited { .. })
        )
    )
}

pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    if matches!(e.downcast_ref::<UpError>(), Some(UpError::Interrupted)) {
        return ExitCode::from(130);
    }
    if matches!(e.downcast_ref::<RunFileError>(), Some(RunFileError::NotRunning(_))) {
        ExitCode::from(3)
    } else if is_bad_input(e) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// Stack size of the runtime's threads: the embedded conductor runs zome calls, validation
/// included, on them, and Holochain's call paths can outgrow the 2 MiB default.
const THREAD_STACK: usize = 8 * 1024 * 1024;

/// The `ripple` binary: parse the command line, set up logging, the allocator and the async
/// runtime, run the command and map its error to an exit code. It lives here, not in `main.rs`,
/// so its generic code (the tracing subscriber, the runtime) compiles once, in this crate.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Holochain and kitsune2 warn about routine network churn; RUST_LOG brings their logs back.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,ripple=info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
    crate::allocator::tune();
    let runtime = match tokio::runtime::Builder::new_multi_thread().thread_stack_size(THREAD_STACK).enable_all().build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_code(&e)
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let data_dir = cli.data.clone().unwrap_or_else(config::default_data_dir);
    let config_path = cli.config.clone().unwrap_or_else(|| data_dir.join(CONFIG_FILE));
    match cli.command {
        Command::Init(ref args) => init(&cli, args, &config_path),
        Command::Bootstrap(BootstrapCommand::Serve(ref args)) => bootstrap_serve(cli.json, args).await,
        Command::Network(ref command) => network(&cli, command, &data_dir, &config_path).await,
        Command::Up(ref args) => {
            let file = ConfigFile::load(&config_path, cli.config.is_some())?;
            let settings =
                resolve_up(args, &file, &data_dir, manifests_dir(cli.manifests.as_deref()), cli.zome_cache.clone())?;
            run_up(settings, mcp_http(args)?, cli.json).await
        }
        Command::Mcp(ref args) => {
            let file = ConfigFile::load(&config_path, cli.config.is_some())?;
            let mut settings =
                resolve_up(args, &file, &data_dir, manifests_dir(cli.manifests.as_deref()), cli.zome_cache.clone())?;
            if args.api.is_none() && file.api_listen.is_none() {
                // Agents start MCP servers freely; don't collide with a `ripple up` on the default port.
                settings.api_listen = SocketAddr::from(([127, 0, 0, 1], 0));
            }
            let runtime = crate::runtime::Runtime::new(settings);
            if let Some(http) = mcp_http(args)? {
                let listener = tokio::net::TcpListener::bind(http.listen)
                    .await
                    .map_err(|source| UpError::McpBind { addr: http.listen, source })?;
                let (url, _stop) = crate::mcp::serve_http(runtime.clone(), http.names, listener)?;
                eprintln!("==> MCP over streamable HTTP at {url}");
            }
            crate::mcp::serve_stdio(runtime, args.tool_names).await
        }
        Command::CompileZomes(ref args) => {
            let file = ConfigFile::load(&config_path, cli.config.is_some())?;
            let happ = args.happ.clone().or(file.happ.clone()).unwrap_or_else(default_happ);
            let report = compile_zomes(happ, ZomeCache::new(cli.zome_cache.clone())).await?;
            print(cli.json, &report, render_compile_zomes)
        }
        Command::Status => {
            let status: StatusReport = api(&data_dir, "status", false).await?;
            print(cli.json, &status, render_status)
        }
        Command::Peers(ref args) => {
            let query = DiscoveryQuery {
                gpu_vendor: args.gpu_vendor.clone(),
                min_vram_gb: args.min_vram,
                model: args.model.clone(),
                region: args.region.clone(),
                cpu_arch: args.cpu_arch.clone(),
                min_cpu_cores: args.min_cpu_cores,
                min_ram_gb: args.min_ram,
                min_storage_gb: args.min_storage,
                online_only: args.online,
                limit: args.limit,
            };
            let query_string = serde_urlencoded(&query);
            let peers: Vec<PeerRow> = api(&data_dir, &format!("peers?{query_string}"), false).await?;
            print(cli.json, &peers, render_peers)
        }
        Command::Advert(AdvertCommand::Show) => {
            let state: NodeState = api(&data_dir, "advert", false).await?;
            print(cli.json, &state, render_advert)
        }
        Command::Allocate(ref args) => {
            let request = allocate_request(args)?;
            if args.dry_run {
                let plan: Plan = api_json(&data_dir, "resources/plan", &request).await?;
                print(cli.json, &plan, render_plan)
            } else {
                eprintln!("==> scheduling and asking the best provider");
                let allocation: Allocation = api_json(&data_dir, "resources/allocate", &request).await?;
                print(cli.json, &allocation, render_allocation)
            }
        }
        Command::Release { ref allocation_id } => {
            let body = crate::api::ReleaseBody { allocation_id: allocation_id.clone() };
            let released: serde_json::Value = api_json(&data_dir, "resources/release", &body).await?;
            print(cli.json, &released, |r| {
                format!("released {} ({})\n", allocation_id, r["release_id"].as_str().unwrap_or(""))
            })
        }
        Command::Allocations { limit } => {
            let rows: Vec<AllocationRow> =
                api(&data_dir, &format!("resources/allocations?limit={limit}"), false).await?;
            print(cli.json, &rows, render_allocations)
        }
        Command::Available => {
            let rows: Vec<Available> = api(&data_dir, "resources/available", false).await?;
            print(cli.json, &rows, render_available)
        }
        Command::Usage => {
            let usage: UsageSummary = api(&data_dir, "resources/usage", false).await?;
            print(cli.json, &usage, render_usage)
        }
        Command::Artifact(ref command) => artifact(command, &data_dir, cli.json).await,
        Command::Policy(ref command) => policy(command, &data_dir, cli.json).await,
        Command::Shards(ref command) => shards(command, &data_dir, cli.json).await,
        Command::Infer(ref args) => infer(args, &data_dir, cli.json).await,
        Command::Models { ref action } => models(action.as_ref(), &data_dir, cli.json).await,
        Command::Advert(AdvertCommand::Refresh) => {
            let refreshed: AdvertRefresh = api(&data_dir, "advert/refresh", true).await?;
            print(cli.json, &refreshed, |r| {
                let what =
                    if r.changed { "published a new advert version" } else { "advert unchanged, nothing written" };
                format!("{what}: {}\n", r.advert.version)
            })
        }
    }
}

async fn network(cli: &Cli, command: &NetworkCommand, data_dir: &Path, config_path: &Path) -> anyhow::Result<()> {
    use crate::networks::{self, Hosting, NetworkRecord};
    match command {
        NetworkCommand::Create(args) => {
            let file = ConfigFile::load(config_path, cli.config.is_some())?;
            let hosting = match (&args.listen, &args.bootstrap) {
                (Some(listen), _) => {
                    let url = advertised_url(("--listen", *listen), ("--advertise", args.advertise.as_deref()))?;
                    Hosting::Serve { listen: *listen, url }
                }
                (None, Some(bootstrap)) => {
                    let bootstrap = config::parse_url("--bootstrap", bootstrap, &["http", "https"])?;
                    let relay = match &args.relay {
                        Some(relay) => config::parse_url("--relay", relay, &["http", "https"])?,
                        None => bootstrap.clone(),
                    };
                    Hosting::Existing { bootstrap, relay }
                }
                (None, None) => unreachable!("clap requires --listen or --bootstrap"),
            };
            let request = networks::CreateRequest {
                name: args.name.clone(),
                data_dir: data_dir.into(),
                manifests: Manifests::new(manifests_dir(cli.manifests.as_deref())),
                happ: args.happ.clone().or(file.happ.clone()).unwrap_or_else(default_happ),
                zome_cache: ZomeCache::new(cli.zome_cache.clone()),
                passphrase_file: args.passphrase_file.clone().or(file.passphrase_file.clone()),
                hosting,
                heartbeat_bucket_secs: args.heartbeat_bucket,
                out: args.out.clone().unwrap_or_else(|| PathBuf::from(format!("{}.network.json", args.name))),
                force: args.force,
            };
            let created = networks::create(request, &|line| eprintln!("==> {line}")).await?;
            print(cli.json, &created, render_created)
        }
        NetworkCommand::Invite(args) => {
            let key = config::parse_agent_key("AGENT_KEY", &args.agent_key)?;
            let out = args.out.clone().unwrap_or_else(|| {
                PathBuf::from(format!(
                    "invitation-{}.json",
                    key.to_string().chars().skip(5).take(12).collect::<String>()
                ))
            });
            let body = crate::api::InviteBody { invitee: key.to_string() };
            let invitation: networks::InvitationFile = api_json(data_dir, "network/invitations", &body).await?;
            networks::write_json(&out, &invitation)?;
            let report =
                serde_json::json!({ "invitation": out, "network": invitation.network, "invitee": invitation.invitee });
            print(cli.json, &report, |_| {
                format!(
                    "wrote {}: it admits {} to network `{}`.\nOn that node: ripple up --network NETWORK_FILE --invite {}\n",
                    out.display(),
                    invitation.invitee,
                    invitation.network,
                    out.display()
                )
            })
        }
        NetworkCommand::Show { out } => {
            let record = NetworkRecord::load(data_dir)?.ok_or_else(|| {
                ConfigError::Setting(format!(
                    "{} belongs to no created network (no {}): it runs a network from networks.json, or none yet",
                    data_dir.display(),
                    networks::RECORD_FILE
                ))
            })?;
            if let Some(out) = out {
                networks::write_json(out, &record.network_file())?;
                eprintln!("==> wrote {}", out.display());
            }
            print(cli.json, &record, render_record)
        }
    }
}

fn render_created(c: &crate::networks::Created) -> String {
    let serving = match c.serving_bootstrap {
        Some(addr) => format!("this node serves its bootstrap+relay on {addr} ({}) while it runs", c.bootstrap_url),
        None => format!("bootstrap {} relay {}", c.bootstrap_url, c.relay_url),
    };
    format!(
        "created network `{}` (seed {})\n  admin: {} (this node)\n  {serving}\n  network file: {}\n\n\
         Next: `ripple up` runs this node. Another node joins with `ripple up --network {}`, which prints its key;\n\
         invite it here with `ripple network invite KEY` and start it again with `--invite FILE`.\n",
        c.network,
        c.network_seed,
        c.admin,
        c.network_file.display(),
        c.network_file.display()
    )
}

fn render_record(r: &crate::networks::NetworkRecord) -> String {
    let mut out = format!("network `{}` (seed {})\n", r.name, r.network.network_seed);
    let admission = if r.network.admins.is_empty() { "open".to_string() } else { r.network.admins.join(", ") };
    out += &format!("  admins: {admission}\n");
    out += &format!("  bootstrap: {}\n", r.network.bootstrap_url.as_deref().unwrap_or("-"));
    if let Some(addr) = r.serve_bootstrap {
        out += &format!("  served by this node on {addr}\n");
    }
    out += &format!("  this node: {}\n", r.agent_key.as_deref().unwrap_or("no key yet (start it once)"));
    let invited = match (&r.invitation, &r.agent_key) {
        (Some(i), _) => format!("invited by {}", i.admin),
        (None, Some(key)) if r.network.admins.contains(key) => "an admin".into(),
        _ => "not invited yet".into(),
    };
    out += &format!("  admission: {invited}\n");
    out
}

fn init(cli: &Cli, args: &InitArgs, path: &Path) -> anyhow::Result<()> {
    let manifests = Manifests::new(manifests_dir(cli.manifests.as_deref()));
    manifests.network(&args.network)?;
    let name = args.agent_name.clone().unwrap_or_else(config::default_agent_name);
    config::check_agent_name(&name)?;
    config::write_init(path, &config::init_template(&args.network, &name), args.force)?;
    print(cli.json, &serde_json::json!({ "config": path }), |_| format!("wrote {}\n", path.display()))
}

/// Resolves `ripple up`'s settings: flag, then environment (clap), then ripple.toml, then default.
pub fn resolve_up(
    args: &UpArgs,
    file: &ConfigFile,
    data_dir: &Path,
    manifests: PathBuf,
    zome_cache: Option<PathBuf>,
) -> Result<UpSettings, anyhow::Error> {
    let manifests = Manifests::new(manifests);
    let (network, record) = resolve_network(args.network.clone().or(file.network.clone()), data_dir, &manifests)?;
    if args.invite.is_some() && record.is_none() {
        return Err(ConfigError::Setting(
            "--invite admits this node to a created network: pass its network file with --network FILE".into(),
        )
        .into());
    }

    let admin_url = args.admin_url.clone().or(file.admin_url.clone());
    let conductor = match admin_url {
        Some(url) => {
            let url = config::parse_url("--admin-url", &url, &["ws"])?;
            let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
            if !loopback {
                return Err(ConfigError::Setting(format!(
                    "--admin-url {url}: the admin websocket is unauthenticated, so ripple only attaches to one on loopback"
                ))
                .into());
            }
            ConductorChoice::Attach { admin_url: url }
        }
        None => ConductorChoice::Embedded {
            passphrase_file: args.passphrase_file.clone().or(file.passphrase_file.clone()),
            passphrase_env: std::env::var(crate::conductor::PASSPHRASE_ENV).ok(),
        },
    };
    let bootstrap = args
        .bootstrap
        .clone()
        .or(file.bootstrap.clone())
        .map(|u| config::parse_url("--bootstrap", &u, &["http", "https"]))
        .transpose()?;
    let policy_admin = args
        .policy_admin
        .clone()
        .or(file.policy_admin.clone())
        .map(|key| config::parse_agent_key("--policy-admin", &key))
        .transpose()?;
    let api_listen = args.api.or(file.api_listen).unwrap_or_else(|| parse_addr(DEFAULT_API_LISTEN));
    if !api_listen.ip().is_loopback() {
        return Err(ConfigError::Setting(format!("--api {api_listen}: the HTTP API serves on loopback only")).into());
    }

    let node = &file.node;
    let agent_name = args.agent_name.clone().or(node.agent_name.clone()).unwrap_or_else(config::default_agent_name);
    config::check_agent_name(&agent_name)?;
    let optional_url =
        |flag: &str, value: Option<String>| value.map(|v| config::parse_url(flag, &v, &["http", "https"])).transpose();
    let sources = ProbeSources {
        localai_url: optional_url("localai_url", args.localai_url.clone().or(node.localai_url.clone()))?,
        ipfs_api_url: optional_url("ipfs_api_url", args.ipfs_api_url.clone().or(node.ipfs_api_url.clone()))?,
    };
    let region = args.region.clone().or(node.region.clone()).unwrap_or_default();
    let region_ok = region.is_empty()
        || (region.len() <= agent_registry_types::LABEL_MAX
            && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c)));
    if !region_ok {
        return Err(ConfigError::Setting(format!("region `{region}` must be up to 32 characters of [a-z0-9_-]")).into());
    }
    let advert_refresh_secs = node.advert_refresh_secs.unwrap_or(60);
    if advert_refresh_secs == 0 {
        return Err(ConfigError::Setting("advert_refresh_secs must be at least 1".into()).into());
    }

    Ok(UpSettings {
        data_dir: data_dir.into(),
        network,
        conductor,
        bootstrap,
        policy_admin,
        bootstrap_listen: args
            .bootstrap_listen
            .or(file.bootstrap_listen)
            .unwrap_or_else(|| parse_addr(DEFAULT_BOOTSTRAP_LISTEN)),
        happ: args.happ.clone().or(file.happ.clone()).unwrap_or_else(default_happ),
        zome_cache: ZomeCache::new(zome_cache),
        api_listen,
        provide: !args.no_provide && file.node.provide.unwrap_or(true),
        record,
        invite: args.invite.clone(),
        peer: peer_listen(args.peer_listen.or(file.peer_listen), args.peer_url.clone().or(file.peer_url.clone()))?,
        node: NodeSettings {
            data_dir: data_dir.into(),
            agent_name,
            hardware_class: node.hardware_class,
            region,
            bandwidth_mbps: node.bandwidth_mbps.unwrap_or(1000),
            heartbeat_secs: args.heartbeat_secs.or(node.heartbeat_secs),
            advert_refresh: Duration::from_secs(advert_refresh_secs.into()),
            sources,
            peer_endpoint: None,
            max_batch_size: node.max_batch_size.unwrap_or(1),
            tokens_per_second: node.tokens_per_second.unwrap_or(0),
            vector_shards: args.vector_shards.or(node.vector_shards).unwrap_or(0),
            redis_memory_gb: node.redis_memory_gb.unwrap_or(0),
            s3_available_gb: node.s3_available_gb.unwrap_or(0),
        },
        manifests,
    })
}

/// `--peer-listen` and the URL it is reached at.
fn peer_listen(listen: Option<SocketAddr>, url: Option<String>) -> Result<Option<crate::up::PeerListen>, ConfigError> {
    let Some(listen) = listen else {
        return match url {
            Some(_) => Err(ConfigError::Setting("--peer-url is where --peer-listen is reached: give both".into())),
            None => Ok(None),
        };
    };
    let url = advertised_url(("--peer-listen", listen), ("--peer-url", url.as_deref()))?;
    Ok(Some(crate::up::PeerListen { listen, url }))
}

/// The URL other nodes reach a listener at: `url` if given, else `http://LISTEN`, which needs a
/// concrete address. Either way a fixed port, since other nodes keep the URL.
fn advertised_url(
    (listen_flag, listen): (&str, SocketAddr),
    (url_flag, url): (&str, Option<&str>),
) -> Result<url::Url, ConfigError> {
    if listen.port() == 0 {
        return Err(ConfigError::Setting(format!(
            "{listen_flag} needs a fixed port: other nodes keep the URL it is reached at ({listen})"
        )));
    }
    match url {
        Some(url) => config::parse_url(url_flag, url, &["http", "https"]),
        None if listen.ip().is_unspecified() => Err(ConfigError::Setting(format!(
            "{listen_flag} {listen} is every interface: say which URL other nodes use with {url_flag} http://HOST:{}",
            listen.port()
        ))),
        None => config::parse_url(listen_flag, &format!("http://{listen}"), &["http"]),
    }
}

/// The network `up` runs: the data dir's created network if it has one (a `--network` that names
/// another is refused: one network per data dir), a network file, or an entry of networks.json.
fn resolve_network(
    wanted: Option<String>,
    data_dir: &Path,
    manifests: &Manifests,
) -> anyhow::Result<(crate::manifests::Network, Option<crate::networks::NetworkRecord>)> {
    use crate::networks::{is_file_argument, NetworkError, NetworkFile, NetworkRecord};
    let record = NetworkRecord::load(data_dir)?;
    let from_file = |value: &str| NetworkFile::load(Path::new(value));
    match (wanted, record) {
        (None, Some(record)) => Ok((record.network(), Some(record))),
        (Some(wanted), Some(record)) => {
            let same = if is_file_argument(&wanted) {
                from_file(&wanted)?.network.network_seed == record.network.network_seed
            } else {
                wanted == record.name
            };
            if !same {
                let path = NetworkRecord::path(data_dir);
                return Err(NetworkError::OtherNetwork { have: record.name, want: wanted, record: path }.into());
            }
            Ok((record.network(), Some(record)))
        }
        (Some(wanted), None) if is_file_argument(&wanted) => {
            let file = from_file(&wanted)?;
            let record = NetworkRecord {
                name: file.name.clone(),
                network: file.network.clone(),
                agent_key: None,
                invitation: None,
                serve_bootstrap: None,
            };
            Ok((file.network(), Some(record)))
        }
        (wanted, None) => Ok((manifests.network(wanted.as_deref().unwrap_or("local"))?, None)),
    }
}

fn mcp_http(args: &UpArgs) -> Result<Option<McpHttp>, ConfigError> {
    let Some(listen) = args.mcp_http else { return Ok(None) };
    if !listen.ip().is_loopback() {
        return Err(ConfigError::Setting(format!(
            "--mcp-http {listen}: the MCP tools control this node and are unauthenticated, so they serve on loopback only"
        )));
    }
    Ok(Some(McpHttp { listen, names: args.tool_names }))
}

fn parse_addr(text: &str) -> SocketAddr {
    text.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// `./manifests` when run from a checkout, else the checkout this binary was built from.
fn manifests_dir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf).unwrap_or_else(|| from_checkout("manifests", "manifests/holochain/networks.json"))
}

fn default_happ() -> PathBuf {
    from_checkout("workdir/ripple.happ", "workdir/ripple.happ")
}

fn from_checkout(relative: &str, marker: &str) -> PathBuf {
    if Path::new(marker).exists() {
        return PathBuf::from(relative);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

async fn run_up(settings: UpSettings, mcp: Option<McpHttp>, json: bool) -> anyhow::Result<()> {
    let progress = |line: &str| eprintln!("==> {line}");
    let ready = |r: &Ready| {
        if json {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        } else {
            if let Some(note) = &r.passphrase_note {
                eprintln!("==> {note}");
            }
            print!("{}", render_status(&r.status));
            println!("api          {}", r.api_url);
            if let Some(url) = &r.mcp_url {
                println!("mcp          {url}");
            }
            if r.status.diagnostics.serving_bootstrap {
                if let Some(url) = &r.status.diagnostics.bootstrap_url {
                    let admin =
                        r.status.policy_admin.as_ref().map(|k| format!(" --policy-admin {k}")).unwrap_or_default();
                    println!("join with    ripple up --network {} --bootstrap {url}{admin}", r.status.network);
                }
            }
            println!("ready; Ctrl-C stops the node");
        }
    };
    up::run(settings, mcp, &progress, &ready).await?;
    eprintln!("==> stopped");
    Ok(())
}

async fn compile_zomes(happ: PathBuf, cache: ZomeCache) -> anyhow::Result<CompileZomesReport> {
    let started = std::time::Instant::now();
    let bytes =
        std::fs::read(&happ).map_err(|e| ConfigError::Setting(format!("cannot read {}: {e}", happ.display())))?;
    let zomes = bundle_zomes(&bytes).await?;
    let worker = cache.clone();
    let zomes_to_compile = zomes.clone();
    let compiled = tokio::task::spawn_blocking(move || {
        worker.compile_missing(&zomes_to_compile, &|line: &str| eprintln!("==> {line}"))
    })
    .await??;
    Ok(CompileZomesReport {
        cache_dir: cache.dir().to_path_buf(),
        happ,
        zomes: zomes
            .iter()
            .map(|z| CompiledZome {
                name: z.name.clone(),
                wasm_hash: z.hash.to_string(),
                compiled_now: compiled.contains(&z.name),
            })
            .collect(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn render_compile_zomes(r: &CompileZomesReport) -> String {
    let compiled = r.zomes.iter().filter(|z| z.compiled_now).count();
    format!(
        "compiled {compiled} zomes and found {} already compiled in {} ({:.1} s)\n",
        r.zomes.len() - compiled,
        r.cache_dir.display(),
        r.seconds
    )
}

async fn bootstrap_serve(json: bool, args: &BootstrapServeArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut signals = up::Signals::register()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            for (flag, file) in [("--tls-cert", cert), ("--tls-key", key)] {
                if !file.is_file() {
                    return Err(ConfigError::Setting(format!("{flag} {}: no such file", file.display())).into());
                }
            }
            Some(crate::bootstrap::Tls { cert: cert.clone(), key: key.clone() })
        }
        _ => None,
    };
    let server = crate::bootstrap::LocalBootstrap::start_public(args.listen, tls)
        .await
        .with_context(|| format!("cannot serve bootstrap+relay on {}", args.listen))?;
    let listen = SocketAddr::new(args.listen.ip(), server.url.port().unwrap_or_default());
    let serving = BootstrapServing {
        listen,
        bootstrap_url: (!args.listen.ip().is_unspecified())
            .then(|| server.url.to_string().trim_end_matches('/').to_string()),
    };
    if json {
        println!("{}", serde_json::to_string(&serving)?);
    } else {
        let scheme = server.url.scheme();
        let join = serving
            .bootstrap_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://<an address of this machine>:{}", listen.port()));
        println!("serving bootstrap+relay on {listen}; nodes join with  --bootstrap {join}\n(Ctrl-C stops it)");
    }
    signals.recv().await;
    drop(server);
    if !json {
        println!("stopped");
    }
    Ok(())
}

fn print<T: serde::Serialize>(json: bool, value: &T, human: impl Fn(&T) -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", human(value));
    }
    Ok(())
}

/// POSTs `body` as JSON to the running node's HTTP API.
async fn api_json<B: serde::Serialize, T: serde::de::DeserializeOwned>(
    data_dir: &Path,
    path: &str,
    body: &B,
) -> anyhow::Result<T> {
    api_json_within(data_dir, path, body, HTTP_TIMEOUT).await
}

/// `api_json` for requests that may take longer than most (inference, model downloads).
async fn api_json_within<B: serde::Serialize, T: serde::de::DeserializeOwned>(
    data_dir: &Path,
    path: &str,
    body: &B,
    timeout: Duration,
) -> anyhow::Result<T> {
    let run = RunFile::read(data_dir)?;
    decode(http()?.post(format!("{}/{path}", run.api_url)).timeout(timeout).json(body).send().await?).await
}

async fn policy(command: &PolicyCommand, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    use crate::policy::service::{AuditView, DecisionView};
    use crate::policy::service::{PublishRequest, Published};
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| ConfigError::Setting(format!("cannot read {}: {e}", path.display())))
    };
    match command {
        PolicyCommand::Show => {
            let shown: serde_json::Value = api(data_dir, "policy", false).await?;
            print(json, &shown, |v| {
                let mut out = String::new();
                let admins: Vec<&str> =
                    v["admins"].as_array().into_iter().flatten().filter_map(|a| a.as_str()).collect();
                out.push_str(&format!(
                    "admins       {}\n",
                    if admins.is_empty() { "none".into() } else { admins.join(", ") }
                ));
                for p in v["in_force"].as_array().into_iter().flatten() {
                    let version = p["version"].as_u64().unwrap_or(0);
                    let from = if version == 0 { "built-in default".to_string() } else { format!("version {version}") };
                    out.push_str(&format!("{:<24} {from}\n", p["package"].as_str().unwrap_or("")));
                }
                out
            })
        }
        PolicyCommand::Publish { file, data_json, description } => {
            let rego = read(file)?;
            let data = match data_json {
                Some(path) => Some(
                    serde_json::from_str(&read(path)?)
                        .map_err(|e| ConfigError::Setting(format!("{} is not JSON: {e}", path.display())))?,
                ),
                None => None,
            };
            let request = PublishRequest { rego, data, description: description.clone() };
            let published: Published = api_json(data_dir, "policy/publish", &request).await?;
            print(json, &published, |p| {
                let what = if p.new_version { "published" } else { "unchanged, already current:" };
                format!("{what} {} version {} ({})\n  sha256 {}\n", p.package, p.version, p.bundle_id, p.policy_sha256)
            })
        }
        PolicyCommand::Eval { package, input } => {
            let text = match input.strip_prefix('@') {
                Some(path) => read(Path::new(path))?,
                None => input.clone(),
            };
            let input: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| ConfigError::Setting(format!("INPUT is not JSON: {e}")))?;
            let body = crate::api::EvalBody { package: package.clone(), input };
            let verdict: crate::policy::Verdict = api_json(data_dir, "policy/eval", &body).await?;
            print(json, &verdict, |v| {
                let outcome =
                    if v.allowed { "allowed".to_string() } else { format!("denied: {}", v.reasons.join("; ")) };
                format!("{} version {}: {outcome}\n", v.package, v.version)
            })?;
            if !verdict.allowed {
                std::process::exit(1);
            }
            Ok(())
        }
        PolicyCommand::Decisions { hours, node } => {
            let node = node.as_ref().map(|n| format!("&node={n}")).unwrap_or_default();
            let rows: Vec<DecisionView> =
                api(data_dir, &format!("policy/decisions?hours={hours}{node}"), false).await?;
            print(json, &rows, |rows| {
                rows.iter()
                    .map(|d| {
                        let outcome = if d.verdict.allowed {
                            "allowed".to_string()
                        } else {
                            format!("DENIED: {}", d.verdict.reasons.join("; "))
                        };
                        format!(
                            "{}  {}  policy {} version {}  {outcome}  (node {}, decision {})\n",
                            d.decided_at,
                            d.action,
                            d.verdict.package,
                            d.verdict.version,
                            short(&d.decider),
                            d.decision_id
                        )
                    })
                    .collect()
            })
        }
        PolicyCommand::Audit { hours, subject } => {
            let query = match subject {
                Some(subject) => format!("subject={subject}"),
                None => format!("hours={hours}"),
            };
            let rows: Vec<AuditView> = api(data_dir, &format!("policy/audit?{query}"), false).await?;
            print(json, &rows, |rows| {
                rows.iter()
                    .map(|e| {
                        format!(
                            "{}  {}  {}  {}  {}  (node {}; {})\n",
                            e.at,
                            e.category,
                            e.subject,
                            e.outcome,
                            e.detail,
                            short(&e.author),
                            e.references.join(" ")
                        )
                    })
                    .collect()
            })
        }
    }
}

async fn shards(command: &ShardsCommand, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    use crate::shards::{CheckpointRequest, CheckpointView, ClaimView, HolderView, MapReport, MapView, RouteView};
    let query = |collection: &Option<String>| {
        collection.as_ref().map(|c| format!("collection={}", encode_query(c))).unwrap_or_default()
    };
    let holders = |hs: &[HolderView]| -> String {
        if hs.is_empty() {
            return "nobody".into();
        }
        hs.iter().map(|h| format!("{} ({}, r{})", h.name, short(&h.agent), h.replica)).collect::<Vec<_>>().join(", ")
    };
    let describe = |m: &MapView| {
        format!(
            "{}: {} shards x {} replicas, {} epoch {} (owner {}, map {})\n",
            m.collection,
            m.shard_count,
            m.replication_factor,
            m.hash_function,
            m.epoch,
            short(&m.owner),
            m.map_id
        )
    };
    match command {
        ShardsCommand::Create { collection, shards, replicas } => {
            let body = crate::api::CreateShardsBody {
                collection: collection.clone(),
                shard_count: *shards,
                replication_factor: *replicas,
            };
            let map: MapView = api_json(data_dir, "shards", &body).await?;
            print(json, &map, |m| format!("created {}", describe(m)))
        }
        ShardsCommand::List => {
            let maps: Vec<MapView> = api(data_dir, "shards", false).await?;
            print(json, &maps, |maps| {
                if maps.is_empty() {
                    return "no collections yet: create one with `ripple shards create NAME`\n".into();
                }
                maps.iter().map(describe).collect()
            })
        }
        ShardsCommand::Map { collection } => {
            let report: MapReport = api(data_dir, &format!("shards/map?{}", query(collection)), false).await?;
            print(json, &report, |r| {
                let mut out = describe(&r.map);
                out.push_str(&format!(
                    "{} eligible nodes, {} live replicas, {} under-replicated shards\n",
                    r.eligible_nodes, r.live_replicas, r.under_replicated_shards
                ));
                for s in &r.shards {
                    let checkpoint = s
                        .checkpoint
                        .as_ref()
                        .map(|c| format!("  seq {} ({} vectors, {})", c.sequence, c.vector_count, short(&c.holder)))
                        .unwrap_or_default();
                    let flag = if s.under_replicated { "  UNDER-REPLICATED" } else { "" };
                    out.push_str(&format!("shard {:>4}  {}{checkpoint}{flag}\n", s.shard, holders(&s.holders)));
                }
                out
            })
        }
        ShardsCommand::Route { key, collection } => {
            let mut path = format!("shards/route?key={}", encode_query(key));
            if let Some(c) = collection {
                path.push_str(&format!("&collection={}", encode_query(c)));
            }
            let route: RouteView = api(data_dir, &path, false).await?;
            print(json, &route, |r| {
                format!("{} -> shard {} of {}: {}\n", r.key, r.shard, r.collection, holders(&r.holders))
            })
        }
        ShardsCommand::Claims { collection } => {
            let claims: Vec<ClaimView> = api(data_dir, &format!("shards/claims?{}", query(collection)), false).await?;
            print(json, &claims, |claims| {
                claims
                    .iter()
                    .map(|c| {
                        format!(
                            "shard {:>4} r{}  {} ({})  {}  since {}\n",
                            c.shard,
                            c.replica,
                            c.name,
                            short(&c.holder),
                            if c.live { "live" } else { "not live" },
                            c.claimed_at
                        )
                    })
                    .collect()
            })
        }
        ShardsCommand::Checkpoint { shard, vectors, snapshot, snapshot_file, sequence, collection } => {
            let request = CheckpointRequest {
                collection: collection.clone(),
                shard: *shard,
                vector_count: *vectors,
                snapshot_cid: snapshot.clone(),
                sequence: *sequence,
            };
            let written: CheckpointView = match snapshot_file {
                None => api_json(data_dir, "shards/checkpoints", &request).await?,
                Some(path) => {
                    let upload = post_file(data_dir, "shards/checkpoints/snapshot", path).await?;
                    decode(upload.query(&request).header(crate::api::VIA_HEADER, "cli").send().await?).await?
                }
            };
            print(json, &written, |c| {
                let snapshot = c.snapshot_cid.as_ref().map(|cid| format!(", snapshot {cid}")).unwrap_or_default();
                format!(
                    "checkpoint of shard {} replica {}: sequence {}, {} vectors{snapshot} ({})\n",
                    c.shard, c.replica, c.sequence, c.vector_count, c.checkpoint_id
                )
            })
        }
        ShardsCommand::Snapshot { shard, collection, output } => {
            let mut query = vec![("shard", shard.to_string())];
            query.extend(collection.iter().map(|c| ("collection", c.clone())));
            let response = get_bytes(data_dir, "shards/snapshot", &query).await?;
            let source = header(&response, crate::api::SOURCE_HEADER);
            let checkpoint: CheckpointView = serde_json::from_str(&header(&response, crate::api::CHECKPOINT_HEADER))
                .map_err(|e| anyhow::anyhow!("the node's answer names no checkpoint: {e}"))?;
            let to_stdout = output.as_deref() == Some(Path::new("-"));
            let named = collection.as_ref().map(|c| format!("{c}.")).unwrap_or_default();
            let target = output
                .clone()
                .unwrap_or_else(|| PathBuf::from(safe_file_name(&format!("{named}shard-{shard}.snapshot"))));
            let (sha256, size) = write_checked(response, if to_stdout { None } else { Some(&target) }).await?;
            if to_stdout {
                return Ok(()); // the bytes are the output
            }
            let report = serde_json::json!({ "checkpoint": checkpoint, "sha256": sha256, "size": size,
                "source": source, "written_to": target.display().to_string() });
            print(json, &report, |_| {
                format!(
                    "wrote {} ({}, snapshot {} of shard {} at sequence {} by {}) from {source}\n",
                    target.display(),
                    human_bytes(size),
                    checkpoint.snapshot_cid.as_deref().unwrap_or_default(),
                    checkpoint.shard,
                    checkpoint.sequence,
                    short(&checkpoint.holder)
                )
            })
        }
    }
}

/// Longer than any deadline a query may have (`timeout_ms` ≤ 600000).
const INFER_TIMEOUT: Duration = Duration::from_secs(660);

async fn infer(args: &InferArgs, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    use crate::inference::{MeshModel, MoeAnswer, MoeQuery, SingleAnswer, SingleQuery};
    let prompt = if args.prompt == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        text
    } else {
        args.prompt.clone()
    };
    if args.moe {
        let query = MoeQuery {
            prompt,
            task_type: parse_name("task type", &args.task)?,
            policy_override: args.policy.clone(),
            require_consensus: !args.no_consensus_required,
            max_tokens: args.max_tokens,
            temperature: args.temperature,
        };
        // The tiers' deadlines bound the query; the policy allows up to 10 minutes.
        let answer: MoeAnswer = api_json_within(data_dir, "inference/moe", &query, INFER_TIMEOUT).await?;
        return print(json, &answer, |a| {
            let mut out = format!("{}\n\n", a.response.trim_end());
            out.push_str(&format!(
                "consensus {:.0}% ({}) over {} answer group(s), policy {}, trace {}, {} ms\n",
                a.consensus_score * 100.0,
                if a.consensus_reached { "reached" } else { "NOT reached" },
                a.answer_groups,
                a.policy,
                a.trace_id,
                a.wall_ms
            ));
            for v in &a.model_votes {
                out.push_str(&format!(
                    "  {} {:<32} weight {:<4} {:>6} ms  {}  {}\n",
                    if v.agrees { "+" } else { "-" },
                    v.model,
                    v.weight,
                    v.latency_ms,
                    &v.response_hash[..12],
                    v.node.as_deref().unwrap_or(&v.tier)
                ));
            }
            for u in &a.unanswered {
                out.push_str(&format!("  ? {:<32} {}\n", u.model, u.reason));
            }
            for w in &a.warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
            out
        });
    }
    let model = match &args.model {
        Some(m) => m.clone(),
        None => {
            let models: Vec<MeshModel> = api(data_dir, "inference/models", false).await?;
            match models.as_slice() {
                [only] => only.model.clone(),
                [] => anyhow::bail!("no online node serves a model (nodes advertise what their localai_url serves)"),
                many => anyhow::bail!(
                    "the mesh serves {}: choose one with --model, or ask them all with --moe",
                    many.iter().map(|m| m.model.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    };
    let query = SingleQuery {
        model,
        prompt,
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        timeout_ms: args.timeout_ms,
    };
    let answer: SingleAnswer = api_json_within(data_dir, "inference/query", &query, INFER_TIMEOUT).await?;
    print(json, &answer, |a| {
        let mut out = format!("{}\n\n", a.response.trim_end());
        out.push_str(&format!(
            "{} on {} ({}) in {} ms, trace {}\n",
            a.model,
            a.answered_by.node,
            short(&a.answered_by.agent),
            a.latency_ms,
            a.trace_id
        ));
        for f in &a.failed_attempts {
            out.push_str(&format!("  failed first: {} ({}): {}\n", f.node, f.endpoint, f.error));
        }
        out
    })
}

async fn models(action: Option<&ModelsCommand>, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    use crate::inference::{LoadModel, MeshModel, ModelChange, UnloadModel};
    let changed = |c: &ModelChange| {
        format!(
            "{} {} (decision {}); this node now serves: {}\n",
            c.action,
            c.model,
            c.decision_id,
            if c.models_loaded.is_empty() { "nothing".into() } else { c.models_loaded.join(", ") }
        )
    };
    match action {
        None => {
            let models: Vec<MeshModel> = api(data_dir, "inference/models", false).await?;
            print(json, &models, |models| {
                if models.is_empty() {
                    return "no online node serves a model (nodes advertise what their localai_url serves)\n".into();
                }
                models
                    .iter()
                    .map(|m| {
                        let servers: Vec<String> = m
                            .servers
                            .iter()
                            .map(|s| {
                                let load = s.load_percent.map_or("?".into(), |l| format!("{l}%"));
                                format!("{} ({}, load {load})", s.name, short(&s.agent))
                            })
                            .collect();
                        format!("{:<32} {}\n", m.model, servers.join(", "))
                    })
                    .collect()
            })
        }
        Some(ModelsCommand::Load { model, name }) => {
            let request = LoadModel { model: model.clone(), name: name.clone() };
            // Installing downloads the model: allow it far longer than other commands.
            let change: ModelChange =
                api_json_within(data_dir, "inference/load", &request, Duration::from_secs(3600)).await?;
            print(json, &change, changed)
        }
        Some(ModelsCommand::Unload { model }) => {
            let change: ModelChange =
                api_json(data_dir, "inference/unload", &UnloadModel { model: model.clone() }).await?;
            print(json, &change, changed)
        }
    }
}

/// A snake_case enum value by its name.
fn parse_name<T: serde::de::DeserializeOwned>(what: &str, value: &str) -> Result<T, ConfigError> {
    serde_json::from_value(serde_json::Value::String(value.into()))
        .map_err(|_| ConfigError::Setting(format!("{what} `{value}` is not known")))
}

fn allocate_request(args: &AllocateArgs) -> Result<AllocateRequest, ConfigError> {
    let resource_type: ResourceType = parse_name("resource type", &args.resource_type)?;
    let amounts = Capacity {
        cpu_cores: args.cpu.unwrap_or(0),
        memory_gb: args.memory_gb.unwrap_or(0),
        gpu_slots: args.gpus.unwrap_or(0),
        vram_gb: args.vram_gb.unwrap_or(0),
        storage_gb: args.storage_gb.map_or(0, u64::from),
        model_slots: 0,
    };
    let requirements = crate::resources::requirements(amounts, resource_type, args.model.as_deref());
    Ok(AllocateRequest {
        resource_type,
        requirements,
        model_name: args.model.clone(),
        locality_preference: parse_name("locality", &args.locality)?,
        duration_secs: args.duration,
        workload_class: args.class.clone(),
    })
}

/// Calls the running node's HTTP API (`GET`, or `POST` when `post`).
async fn api<T: serde::de::DeserializeOwned>(data_dir: &Path, path: &str, post: bool) -> anyhow::Result<T> {
    let run = RunFile::read(data_dir)?;
    let url = format!("{}/{path}", run.api_url);
    let request = if post { http()?.post(url) } else { http()?.get(url) };
    decode(request.send().await?).await
}

/// How long a command waits for the node, unless it says otherwise.
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);

fn http() -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(crate::api::VIA_HEADER, reqwest::header::HeaderValue::from_static("cli"));
    Ok(reqwest::Client::builder().default_headers(headers).timeout(HTTP_TIMEOUT).build()?)
}

async fn decode<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> anyhow::Result<T> {
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        anyhow::bail!("the node answered {status}: {message}");
    }
    Ok(serde_json::from_slice(&body)?)
}

/// `a=1&b=x` from the set fields of a query struct.
fn serde_urlencoded(query: &DiscoveryQuery) -> String {
    let value = serde_json::to_value(query).unwrap_or_default();
    let mut url = url::Url::parse("http://q/").expect("static URL");
    if let Some(map) = value.as_object() {
        let mut pairs = url.query_pairs_mut();
        for (key, v) in map {
            match v {
                serde_json::Value::Null | serde_json::Value::Bool(false) => {}
                serde_json::Value::String(s) => {
                    pairs.append_pair(key, s);
                }
                other => {
                    pairs.append_pair(key, &other.to_string());
                }
            }
        }
    }
    url.query().unwrap_or_default().to_string()
}

fn ago(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => format!("{} s ago", ((crate::mesh::unix_ms() - ms) / 1000).max(0)),
        None => "never".into(),
    }
}

pub fn render_status(s: &StatusReport) -> String {
    let d = &s.diagnostics;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<12} {v}\n"));
    line("network", format!("{} ({})", s.network, s.network_seed));
    line("agent", s.agent_pubkey.clone());
    if let Some(admin) = &s.policy_admin {
        let who = if *admin == s.agent_pubkey { " (this node)" } else { "" };
        line("policy admin", format!("{admin}{who}"));
    }
    line("mesh", format!("{} with {} peer(s)", serde_plain(&s.mesh_status), s.peer_count));
    for cell in &s.cell_ids {
        line("cell", format!("{} {}", cell.role, cell.dna_hash));
    }
    line("conductor", format!("{} at {}", d.conductor, d.admin_url));
    if let Some(url) = &d.bootstrap_url {
        let reach = match (d.bootstrap_reachable, &d.bootstrap_error) {
            (Some(true), _) => "reachable".to_string(),
            (_, Some(e)) => format!("UNREACHABLE: {e}"),
            _ => "unknown".into(),
        };
        let served = if d.serving_bootstrap { ", served by this node" } else { "" };
        line("bootstrap", format!("{url} ({reach}{served})"));
    }
    if let Some(relay) = &d.relay_url {
        line("relay", relay.clone());
    }
    line(
        "gossip",
        format!(
            "last {}, {} rounds, {} ops pending",
            ago(d.last_gossip_ms),
            d.completed_gossip_rounds,
            d.pending_fetch_ops
        ),
    );
    let n = &s.node;
    line(
        "heartbeat",
        format!(
            "every {} s (bucket {} s), last {}, {} sent, {} failed",
            n.heartbeat_period_secs,
            n.heartbeat_bucket_secs,
            ago(n.last_heartbeat_ms),
            n.heartbeats_sent,
            n.heartbeat_failures
        ),
    );
    if let Some(advert) = &n.advert {
        let a = &advert.advert;
        line(
            "advert",
            format!(
                "{} ({}), {} cores {}, {} GB RAM, {} GPU(s), {}",
                a.agent_name,
                serde_plain(&a.hardware_class),
                a.compute.cpu_cores,
                a.compute.cpu_arch,
                a.compute.ram_gb,
                a.compute.gpus.len(),
                serde_plain(&a.availability)
            ),
        );
    }
    if let Some(e) = &n.last_error {
        line("last error", e.clone());
    }
    for w in n.probe.iter().flat_map(|p| &p.warnings) {
        line("warning", w.clone());
    }
    out
}

/// Left-aligned columns, two spaces apart; the first row is the header.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn render_plan(plan: &Plan) -> String {
    let mut out = format!(
        "{} for a {} task ({}), locality {}\n",
        plan.algorithm,
        plan.task.workload_class,
        describe_capacity(&plan.task.requirements),
        serde_plain(&plan.task.locality_preference)
    );
    let mut rows = vec![["RANK", "NODE", "SCORE", "LOCALITY", "PACKING", "POOL", "CHEAP", "SPEED", "FREE AFTER"]
        .map(String::from)
        .to_vec()];
    for (i, c) in plan.candidates.iter().enumerate() {
        rows.push(vec![
            (i + 1).to_string(),
            format!("{} {}", c.name, short(&c.agent)),
            format!("{:.3}", c.score),
            format!("{:.1}", c.locality),
            format!("{:.3}", c.packing),
            if c.preferred_pool { "preferred" } else { "fallback" }.into(),
            format!("{:.1}", c.cheapness),
            format!("{:.2}", c.speed),
            describe_capacity(&c.free_after),
        ]);
    }
    out.push_str(&table(&rows));
    for f in &plan.filtered {
        out.push_str(&format!("filtered  {} {}: {}\n", f.name, short(&f.agent), f.reason));
    }
    out
}

fn render_allocation(a: &Allocation) -> String {
    let mut out = format!(
        "allocation {}\nnode       {} ({})\namounts    {}\nendpoint   {}\nexpires    {}\n",
        a.allocation_id,
        a.node_name,
        a.node_id,
        describe_capacity(&a.amounts),
        if a.endpoint.is_empty() { "-" } else { &a.endpoint },
        a.expires_at
    );
    for attempt in a.attempts.iter().filter(|t| t.outcome != "granted") {
        out.push_str(&format!("tried      {}: {}\n", attempt.node_name, attempt.outcome));
    }
    out
}

fn render_allocations(rows: &Vec<AllocationRow>) -> String {
    let mut table_rows =
        vec![["SIDE", "STATUS", "TYPE", "AMOUNTS", "PROVIDER", "REQUESTER", "ALLOCATION", "EXPIRES", "BILLED"]
            .map(String::from)
            .to_vec()];
    for r in rows {
        table_rows.push(vec![
            r.side.clone(),
            r.reason.as_ref().map_or(r.status.clone(), |reason| format!("{} ({reason})", r.status)),
            serde_plain(&r.resource_type),
            describe_capacity(&r.requirements),
            short(&r.provider),
            short(&r.requester),
            r.allocation_id.clone().unwrap_or_else(|| "-".into()),
            r.expires_at.clone().unwrap_or_else(|| "-".into()),
            r.receipt
                .as_ref()
                .map_or("-".into(), |rc| format!("{} s{}", rc.held_secs, if rc.acknowledged { ", acked" } else { "" })),
        ]);
    }
    format!("{}{} allocation(s)\n", table(&table_rows), rows.len())
}

fn render_available(rows: &Vec<Available>) -> String {
    let mut table_rows =
        vec![["NODE", "STATE", "REGION", "FREE", "OFFERED", "ACTIVE", "MODELS"].map(String::from).to_vec()];
    for r in rows {
        table_rows.push(vec![
            format!("{}{} {}", r.node_name, if r.is_self { " (self)" } else { "" }, short(&r.node_id)),
            r.state.clone(),
            if r.region.is_empty() { "-".into() } else { r.region.clone() },
            describe_capacity(&r.free),
            describe_capacity(&r.offered),
            r.active_allocations.to_string(),
            if r.models.is_empty() { "-".into() } else { r.models.join(", ") },
        ]);
    }
    format!("{}{} provider(s)\n", table(&table_rows), rows.len())
}

fn render_usage(u: &UsageSummary) -> String {
    let line = |s: &resource_mesh_types::ResourceSeconds| {
        format!(
            "cpu core-s {}, memory GB-s {}, GPU slot-s {}, VRAM GB-s {}, storage GB-s {}, model slot-s {}",
            s.cpu_core_seconds,
            s.memory_gb_seconds,
            s.gpu_slot_seconds,
            s.vram_gb_seconds,
            s.storage_gb_seconds,
            s.model_slot_seconds
        )
    };
    format!(
        "provided  {} receipt(s), {} acknowledged: {}\nused      {} receipt(s): {}\n",
        u.provided_receipts,
        u.provided_acknowledged,
        line(&u.provided),
        u.used_receipts,
        line(&u.used)
    )
}

fn render_peers(peers: &Vec<PeerRow>) -> String {
    let mut rows = vec![["NAME", "STATE", "AGENT", "CLASS", "CPU", "RAM", "GPUS", "MODELS", "REGION", "LAST BEAT"]
        .map(String::from)
        .to_vec()];
    for p in peers {
        let a = &p.advert;
        let gpus =
            a.compute.gpus.iter().map(|g| format!("{} {} {}G", g.vendor, g.model, g.vram_gb)).collect::<Vec<_>>();
        rows.push(vec![
            format!("{}{}", a.agent_name, if p.is_self { " (self)" } else { "" }),
            p.state.clone(),
            short(&p.agent_pubkey),
            serde_plain(&a.hardware_class),
            format!("{}x {}", a.compute.cpu_cores, a.compute.cpu_arch),
            format!("{} GB", a.compute.ram_gb),
            if gpus.is_empty() { "-".into() } else { gpus.join(", ") },
            if a.inference.models_loaded.is_empty() { "-".into() } else { a.inference.models_loaded.join(", ") },
            if a.network.region.is_empty() { "-".into() } else { a.network.region.clone() },
            ago(p.last_heartbeat_ms),
        ]);
    }
    format!("{}{} node(s)\n", table(&rows), peers.len())
}

fn render_advert(state: &NodeState) -> String {
    let mut out = match &state.advert {
        Some(record) => format!(
            "version {}\n{}\n",
            record.version,
            serde_json::to_string_pretty(&record.advert).unwrap_or_default()
        ),
        None => "no advert published\n".into(),
    };
    if let Some(probe) = &state.probe {
        out.push_str(&format!(
            "probe: {} ({} cores), {} GB free disk\n",
            probe.cpu_model, probe.cpu_cores, probe.disk_free_gb
        ));
        for w in &probe.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
    }
    out
}

fn short(key: &str) -> String {
    if key.len() > 14 {
        format!("{}…{}", &key[..8], &key[key.len() - 4..])
    } else {
        key.into()
    }
}

/// An enum's serde name (`connected`, `edge_server`, …).
fn serde_plain<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

async fn artifact(command: &ArtifactCommand, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    use crate::artifacts::{ArtifactInfo, Published, ReplicaReport, VerifyReport};
    match command {
        ArtifactCommand::Add(args) => {
            let meta = publish_meta(args)?;
            // Checked by the node first: a refusal mid-upload would reach us as a broken connection.
            let _: serde_json::Value = api_json(data_dir, "artifacts/check", &meta).await?;
            let file = tokio::fs::File::open(&args.file)
                .await
                .map_err(|e| ConfigError::Setting(format!("cannot read {}: {e}", args.file.display())))?;
            let total = file.metadata().await?.len();
            let meta = crate::artifacts::PublishMeta { size_bytes: Some(total), ..meta };
            eprintln!(
                "==> adding {} ({}) to IPFS and registering it on the mesh",
                args.file.display(),
                human_bytes(total)
            );
            let progress = Progress::new(total);
            let stream =
                futures::StreamExt::inspect(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20), move |chunk| {
                    if let Ok(chunk) = chunk {
                        progress.advance(chunk.len() as u64);
                    }
                });
            use base64::Engine;
            let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&meta)?);
            let run = RunFile::read(data_dir)?;
            let response = reqwest::Client::new()
                .post(format!("{}/artifacts", run.api_url))
                .header(crate::api::VIA_HEADER, "cli")
                .header(crate::api::PUBLISH_META_HEADER, header)
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await?;
            let published: Published = decode(response).await?;
            eprintln!();
            print(json, &published, |p| {
                format!(
                    "published {}\n  sha256      {}\n  size        {}\n  artifact    {}\n  provenance  {}\n  replica     held here until {}\n  took        {:.2} s\n",
                    p.cid, p.sha256, human_bytes(p.size), p.artifact_id, p.provenance_id, p.replica_until, p.seconds
                )
            })
        }
        ArtifactCommand::Get { cid, output } => {
            let info: ArtifactInfo = api(data_dir, &format!("artifacts/{cid}"), false).await?;
            let registered = info.registrations.first().ok_or_else(|| anyhow::anyhow!("{cid} has no registration"))?;
            let response = get_bytes(data_dir, &format!("artifacts/{cid}/content"), &[]).await?;
            let source = header(&response, crate::api::SOURCE_HEADER);
            let to_stdout = output.as_deref() == Some(Path::new("-"));
            let target = output.clone().unwrap_or_else(|| PathBuf::from(safe_file_name(&registered.name)));
            let (sha256, size) = write_checked(response, if to_stdout { None } else { Some(&target) }).await?;
            if sha256 != registered.sha256 || size != registered.size {
                anyhow::bail!(
                    "the bytes received for {cid} hash to sha256 {sha256} ({size} bytes) but it is registered as {} ({} bytes): refused, nothing written",
                    registered.sha256, registered.size
                );
            }
            let report = serde_json::json!({ "cid": cid, "sha256": sha256, "size": size, "source": source,
                "written_to": if to_stdout { "-".to_string() } else { target.display().to_string() } });
            if to_stdout {
                return Ok(()); // the bytes are the output
            }
            print(json, &report, |_| {
                format!(
                    "wrote {} ({}, sha256 {sha256} as registered) from {source}\n",
                    target.display(),
                    human_bytes(size)
                )
            })
        }
        ArtifactCommand::Verify { cid, file } => {
            let report: VerifyReport = match file {
                None => api(data_dir, &format!("artifacts/{cid}/verify"), false).await?,
                Some(path) => {
                    decode(post_file(data_dir, &format!("artifacts/{cid}/verify"), path).await?.send().await?).await?
                }
            };
            print(json, &report, render_verify)?;
            if !report.ok {
                anyhow::bail!(
                    "{cid} failed verification: {}",
                    report.checks.iter().filter(|c| !c.ok).map(|c| c.detail.as_str()).collect::<Vec<_>>().join("; ")
                );
            }
            Ok(())
        }
        ArtifactCommand::Find { name, label, sha256 } => {
            let (key, value) = match (name, label, sha256) {
                (Some(v), _, _) => ("name", v),
                (_, Some(v), _) => ("label", v),
                (_, _, Some(v)) => ("sha256", v),
                _ => return Err(ConfigError::Setting("give --name, --label or --sha256".into()).into()),
            };
            let url = url::form_urlencoded::Serializer::new(String::new()).append_pair(key, value).finish();
            let found: Vec<crate::artifacts::Registration> = api(data_dir, &format!("artifacts?{url}"), false).await?;
            print(json, &found, |rows| {
                let mut table_rows =
                    vec![["CID", "NAME", "SIZE", "LABELS", "REGISTRANT", "AT"].map(String::from).to_vec()];
                for r in rows {
                    table_rows.push(vec![
                        r.cid.clone(),
                        r.name.clone(),
                        human_bytes(r.size),
                        r.labels.join(","),
                        r.registrant.clone(),
                        r.registered_at.clone(),
                    ]);
                }
                if rows.is_empty() {
                    format!("no artifact with {key} {value}\n")
                } else {
                    table(&table_rows)
                }
            })
        }
        ArtifactCommand::Replicas { cid } => {
            let report: ReplicaReport = api(data_dir, &format!("artifacts/{cid}/replicas"), false).await?;
            print(json, &report, |r| {
                let mut rows = vec![["HOLDER", "LIVE", "UNTIL", "ENDPOINT"].map(String::from).to_vec()];
                for row in &r.replicas {
                    let holder = if row.is_self { format!("{} (this node)", row.holder) } else { row.holder.clone() };
                    rows.push(vec![
                        holder,
                        if row.live { "yes" } else { "no" }.into(),
                        row.until.clone(),
                        row.endpoint.clone().unwrap_or_default(),
                    ]);
                }
                let verdict = if r.under_replicated { "under-replicated" } else { "replicated" };
                format!("{}: {} live of {} wanted ({verdict})\n{}", r.cid, r.live, r.min_providers, table(&rows))
            })
        }
    }
}

fn publish_meta(args: &ArtifactAddArgs) -> Result<crate::artifacts::PublishMeta, ConfigError> {
    let name =
        match &args.name {
            Some(n) => n.clone(),
            None => args.file.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or_else(|| {
                ConfigError::Setting(format!("{} has no file name; pass --name", args.file.display()))
            })?,
        };
    let provenance = match &args.provenance {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Setting(format!("cannot read {}: {e}", path.display())))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| ConfigError::Setting(format!("{} is not JSON: {e}", path.display())))?,
            )
        }
        None => None,
    };
    for label in &args.labels {
        if !artifact_index_types::is_label(label) {
            return Err(ConfigError::Setting(format!("--label `{label}` must be 1-64 characters of [a-z0-9._:=-]")));
        }
    }
    for cid in &args.materials {
        if !artifact_index_types::is_cid(cid) {
            return Err(ConfigError::Setting(format!("--material `{cid}` is not a CID")));
        }
    }
    Ok(crate::artifacts::PublishMeta {
        name,
        media_type: Some(args.media_type.clone()),
        labels: args.labels.clone(),
        provenance,
        materials: args.materials.clone(),
        size_bytes: None, // set from the file when it is opened
    })
}

/// A POST to the running node's `route` whose body streams `file`'s bytes.
async fn post_file(data_dir: &Path, route: &str, file: &Path) -> anyhow::Result<reqwest::RequestBuilder> {
    let f = tokio::fs::File::open(file)
        .await
        .map_err(|e| ConfigError::Setting(format!("cannot read {}: {e}", file.display())))?;
    let run = RunFile::read(data_dir)?;
    Ok(reqwest::Client::new()
        .post(format!("{}/{route}", run.api_url))
        .body(reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f))))
}

/// A GET of the running node's `route` whose body is bytes: the response, or the node's error.
async fn get_bytes(data_dir: &Path, route: &str, query: &[(&str, String)]) -> anyhow::Result<reqwest::Response> {
    let run = RunFile::read(data_dir)?;
    let response = reqwest::Client::new().get(format!("{}/{route}", run.api_url)).query(query).send().await?;
    if !response.status().is_success() {
        let _: serde_json::Value = decode(response).await?;
        unreachable!("decode fails on an error status");
    }
    Ok(response)
}

/// A response header as text ("" when absent).
fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

/// Streams `response` into `target` (through a temporary file renamed at the end, so a crash never
/// leaves a partial file under the name) or stdout, returning the sha256 and size written.
async fn write_checked(response: reqwest::Response, target: Option<&Path>) -> anyhow::Result<(String, u64)> {
    use sha2::Digest;
    use tokio::io::AsyncWriteExt;
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    let tmp = target.map(|t| t.with_extension("ripple-partial"));
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match &tmp {
        Some(path) => Box::new(tokio::fs::File::create(path).await?),
        None => Box::new(tokio::io::stdout()),
    };
    let mut stream = response.bytes_stream();
    let copied: anyhow::Result<()> = async {
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            let chunk = chunk?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            out.write_all(&chunk).await?;
        }
        Ok(out.flush().await?)
    }
    .await;
    drop(out);
    if let Err(e) = copied {
        if let Some(tmp) = &tmp {
            let _ = std::fs::remove_file(tmp); // nothing half-written is left behind
        }
        return Err(e);
    }
    let sha256 = crate::artifacts::kubo::hex(&hasher.finalize());
    if let (Some(tmp), Some(target)) = (tmp, target) {
        std::fs::rename(&tmp, target)?;
    }
    Ok((sha256, size))
}

/// A registered name as a file name in the current directory (no directories, no dot files).
fn safe_file_name(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name).trim_start_matches('.');
    if base.is_empty() {
        "artifact".into()
    } else {
        base.into()
    }
}

fn render_verify(r: &crate::artifacts::VerifyReport) -> String {
    let mut out = format!(
        "{} {} ({} bytes, sha256 {}) from {}\n",
        if r.ok { "VERIFIED" } else { "FAILED" },
        r.cid,
        r.size,
        r.sha256,
        r.source
    );
    for c in &r.checks {
        out.push_str(&format!("  [{}] {}: {}\n", if c.ok { "ok" } else { "FAIL" }, c.check, c.detail));
    }
    out
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// Upload progress on stderr: a bar redrawn in place on a terminal, a line per 10 % otherwise.
struct Progress {
    total: u64,
    sent: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
    tty: bool,
}

impl Progress {
    fn new(total: u64) -> std::sync::Arc<Self> {
        use std::io::IsTerminal;
        std::sync::Arc::new(Self {
            total,
            sent: 0.into(),
            started: std::time::Instant::now(),
            tty: std::io::stderr().is_terminal(),
        })
    }

    fn advance(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let before = self.sent.fetch_add(n, Ordering::Relaxed);
        let now = before + n;
        let pct = |b: u64| (b * 100).checked_div(self.total).unwrap_or(100);
        let rate = now as f64 / self.started.elapsed().as_secs_f64().max(0.001) / f64::from(1u32 << 20);
        if self.tty {
            let filled = (pct(now) / 5) as usize;
            eprint!(
                "\r  [{}{}] {:>3}% {} {:.1} MiB/s",
                "#".repeat(filled),
                " ".repeat(20 - filled.min(20)),
                pct(now),
                human_bytes(now),
                rate
            );
        } else if pct(now) / 10 != pct(before) / 10 || before == 0 {
            eprintln!("  {:>3}% {} of {} ({rate:.1} MiB/s)", pct(now), human_bytes(now), human_bytes(self.total));
        }
    }
}

/// `s` as a query-string value.
fn encode_query(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
