// agent_registry's records as msgpack decodes them (field names as the Rust types serialise them).
import { encodeHashToBase64, type ActionHash, type AgentPubKey } from "@holochain/client";

import type { Conductor } from "./conductor";

export type Availability = "online" | "draining" | "maintenance" | "offline";

export interface Gpu {
  vendor: string;
  model: string;
  vram_gb: number;
}

export interface NodeAdvert {
  agent_name: string;
  hardware_class: string;
  compute: { cpu_cores: number; cpu_arch: string; ram_gb: number; gpus: Gpu[] };
  storage: { local_ssd_gb: number; ipfs_pinned_gb: number; s3_available_gb: number };
  inference: { models_loaded: string[]; max_batch_size: number; tokens_per_second: number; endpoint: string | null };
  memory: { vector_shards: number; redis_memory_gb: number };
  network: { bandwidth_mbps: number; region: string };
  availability: Availability;
}

export interface HeartbeatSample {
  seq: number;
  cpu_percent: number;
  gpu_percent: number | null;
  memory_percent: number;
  availability: Availability;
}

export interface HeartbeatSeen {
  agent: AgentPubKey;
  /** Microseconds since the epoch. */
  at: number;
  sample: HeartbeatSample;
}

export interface PeerRecord {
  agent: AgentPubKey;
  advert_version: ActionHash;
  advert: NodeAdvert;
  last_heartbeat: HeartbeatSeen | null;
  online: boolean;
}

export interface AdvertRecord {
  version: ActionHash;
  original: ActionHash;
  advert: NodeAdvert;
}

export interface RegistryProperties {
  heartbeat_bucket_secs: number;
  heartbeat_min_interval_secs: number;
}

/** The filters `ripple peers` takes, as discovery.query_peers reads them. */
export interface DiscoveryQuery {
  gpu_vendor?: string;
  min_vram_gb?: number;
  model?: string;
  cpu_arch?: string;
  region?: string;
  min_cpu_cores?: number;
  min_ram_gb?: number;
  min_storage_gb?: number;
  online_only: boolean;
  limit?: number;
}

/** What agent_registry signals: this node's beats, and advert changes (this node's, or a peer's relayed to it). */
export interface RegistrySignal {
  type: "heartbeat" | "advert";
  agent: AgentPubKey;
  at: number;
  sample?: HeartbeatSample;
  advert?: NodeAdvert;
}

/** A node's state at `nowMs` by the heartbeat rule alone: online only while its newest heartbeat
 * is in the current or previous bucket and its advert does not say otherwise. With hour buckets a
 * crashed node stays online for up to two hours, so this is only the fallback for a page no
 * sidecar serves (a launcher); see `sidecarVerdicts`. */
export function stateOf(p: PeerRecord, nowMs: number, bucketSecs: number): Availability {
  const bucket = (micros: number) => Math.floor(micros / (bucketSecs * 1_000_000));
  const beating = !!p.last_heartbeat && bucket(p.last_heartbeat.at) >= bucket(nowMs * 1000) - 1;
  return beating ? p.advert.availability : "offline";
}

/** How the serving sidecar judges a node: a row of its `/peers`. */
export interface Verdict {
  agent_pubkey: string;
  state: Availability;
  /** The liveness protocol's word (alive, suspect, dead, …); absent where it has none. */
  liveness?: string;
}

/** The serving sidecar's verdicts, by agent key (base64). Its liveness protocol notices a crashed
 * node within seconds, which the heartbeat rule takes up to two buckets to do. */
export async function sidecarVerdicts(): Promise<Map<string, Verdict>> {
  const response = await fetch("/peers");
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(`this node's /peers answered ${response.status}: ${body.error ?? "no reason given"}`);
  }
  const rows = (await response.json()) as Verdict[];
  return new Map(rows.map((row) => [row.agent_pubkey, row]));
}

/** The busier of CPU and GPU, the figure routing compares. */
export function load(sample: HeartbeatSample): number {
  return Math.max(sample.cpu_percent, sample.gpu_percent ?? 0);
}

export function gpus(advert: NodeAdvert): string {
  const list = advert.compute.gpus.map((g) => `${g.vendor} ${g.model} (${g.vram_gb} GB)`);
  return list.length ? list.join(", ") : "none";
}

/** Agent key (base64) → node name, for pages that show other DNAs' records by author. */
export async function nodeNames(conductor: Conductor): Promise<Map<string, string>> {
  const peers = await conductor.call<PeerRecord[]>("agent_registry", "discovery", "query_peers", { online_only: false });
  return new Map(peers.map((p) => [encodeHashToBase64(p.agent), p.advert.agent_name]));
}

/** The node's name when the registry knows it, else the start of its key. */
export function nodeName(names: Map<string, string>, agent: AgentPubKey): string {
  return names.get(encodeHashToBase64(agent)) ?? `${encodeHashToBase64(agent).slice(0, 12)}…`;
}
