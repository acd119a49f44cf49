//! The `ripple` command line: arguments, resolution against `ripple.toml`, and output (tables for
//! people, `--json` for scripts). Exit codes: 0 ok, 1 failure, 2 bad input, 3 no node running,
//! 130 interrupted while starting.
mod artifacts;
mod inference;
mod network;
mod node;
mod policy;
mod resources;
mod shards;
mod start;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use agent_registry_types::DiscoveryQuery;

use self::{artifacts::*, inference::*, network::*, node::*, policy::*, resources::*, shards::*, start::*};
use crate::api::PeerRow;
use crate::compiled_zomes::{bundle_zomes, ZomeCache};
use crate::config::{self, ConfigError, ConfigFile, CONFIG_FILE, DEFAULT_API_LISTEN};
use crate::manifests::Manifests;
use crate::mcp::ToolNames;
use crate::node::probe::ProbeSources;
use crate::node::view::ViewSettings;
use crate::node::{AdvertRefresh, NodeSettings, NodeState};
use crate::resources::scheduler::Plan;
use crate::resources::{AllocateRequest, Allocation, AllocationRow, Available};
use crate::runfile::{RunFile, RunFileError};
use crate::runtime::services::StatusReport;
use crate::runtime::settings::{ConductorChoice, PeerListen, UpError, UpSettings};
use crate::runtime::signals::Signals;
use crate::up::{self, McpHttp, Ready};
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
    /// Join this bootstrap+relay server (ripple-local: the URL the first node printed). Needed on
    /// the first start only: later starts rejoin what the data dir joined (<data>/joined.json).
    #[arg(long, value_name = "URL")]
    pub bootstrap: Option<String>,
    /// Where the first ripple-local node serves bootstrap+relay [default: the address it served
    /// before, else 127.0.0.1:0, any free port, kept for later starts].
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
    /// Seconds between heartbeats [default: the network's heartbeat bucket less 10 minutes, at
    /// least half of it: 3000 on the pinned networks].
    #[arg(long)]
    pub heartbeat_secs: Option<u32>,
    /// Seconds between the mesh view's reads of what changed on the registry (other nodes'
    /// heartbeats arrive only this way; advert changes also come by signal) [default: 5].
    #[arg(long, value_name = "SECS")]
    pub view_catch_up_secs: Option<u32>,
    /// Ignore registry signals: the mesh view learns only from its reads (to measure or rule out
    /// the signal path; any other use only makes the view staler).
    #[arg(long)]
    pub no_view_signals: bool,
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
    /// Heartbeat bucket in seconds [default: the bundle's, 3600]: a node is online while it beat in
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
            let runtime = crate::runtime::Runtime::new(settings, crate::api::ROUTERS);
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

/// A snake_case enum value by its name.
fn parse_name<T: serde::de::DeserializeOwned>(what: &str, value: &str) -> Result<T, ConfigError> {
    serde_json::from_value(serde_json::Value::String(value.into()))
        .map_err(|_| ConfigError::Setting(format!("{what} `{value}` is not known")))
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
