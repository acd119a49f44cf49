// Mesh: every node discovery finds, with capabilities, online state and load over time. One
// discovery read when the page opens, when the filters change, and each time this node beats (its
// heartbeat signal): peers' beats are not pushed, so the page reads them once per beat interval
// however large the mesh. Advert signals (this node's and peers') apply at once. A node's state is
// the verdict of the sidecar serving the page (its liveness protocol, read every few seconds from
// this machine's `/peers`); only a page no sidecar serves judges by the heartbeat rule, on the
// page's clock.
import { encodeHashToBase64 } from "@holochain/client";

import { LoadChart } from "../chart";
import { coalesced } from "../coalesce";
import type { Conductor } from "../conductor";
import { ago, errorBox, h, table } from "../dom";
import {
  gpus,
  load,
  sidecarVerdicts,
  stateOf,
  type Availability,
  type DiscoveryQuery,
  type PeerRecord,
  type RegistryProperties,
  type RegistrySignal,
  type Verdict,
} from "../registry";

/** How often the page asks the serving sidecar for its verdicts (a local read of its memory). */
const VERDICTS_EVERY_MS = 2000;

const FILTERS: [keyof DiscoveryQuery, string, "text" | "number"][] = [
  ["gpu_vendor", "GPU vendor", "text"],
  ["min_vram_gb", "min VRAM GB", "number"],
  ["model", "model", "text"],
  ["region", "region", "text"],
  ["cpu_arch", "CPU arch", "text"],
  ["min_cpu_cores", "min cores", "number"],
  ["min_ram_gb", "min RAM GB", "number"],
];

export async function meshPage(conductor: Conductor, root: HTMLElement): Promise<() => void> {
  const settings = await conductor.call<RegistryProperties>("agent_registry", "heartbeat", "get_heartbeat_settings");
  // The chart spans at least three online windows (the current and previous heartbeat bucket).
  const onlineWindowMs = 2 * settings.heartbeat_bucket_secs * 1000;
  const chart = new LoadChart(Math.max(10 * 60_000, 3 * onlineWindowMs));
  const peers = new Map<string, PeerRecord>();
  let query: DiscoveryQuery = { online_only: false };

  const list = h("div", { "data-testid": "peers" });
  const status = h("p", { class: "muted" });
  const form = h(
    "form",
    {
      class: "filters",
      onsubmit: (e: Event) => {
        e.preventDefault();
        query = readFilters(form);
        void refresh();
      },
    },
    FILTERS.map(([key, label, type]) => h("label", {}, label, h("input", { name: key, type, min: "0" }))),
    h("label", {}, h("input", { name: "online_only", type: "checkbox" }), "online only"),
    h("button", { type: "submit" }, "Apply"),
  );
  root.replaceChildren(h("h2", {}, "Mesh"), form, status, list, h("h3", {}, "Load over time"), chart.element);

  let verdicts = new Map<string, Verdict>();
  let verdictError: string | null = null;
  /** The node's state, and what judged it: `liveness` (the sidecar's protocol), `sidecar` (its
   * view without a protocol verdict) or `heartbeat` (the rule, on this page's clock). */
  const judge = (p: PeerRecord, now: number): [Availability, string] => {
    const verdict = verdicts.get(encodeHashToBase64(p.agent));
    if (verdict) return [verdict.state, verdict.liveness ? "liveness" : "sidecar"];
    return [stateOf(p, now, settings.heartbeat_bucket_secs), "heartbeat"];
  };
  const online = (p: PeerRecord, now: number) => judge(p, now)[0] === "online";

  const render = () => {
    const now = Date.now();
    const rows = [...peers.values()]
      .filter((p) => !query.online_only || online(p, now))
      .sort((a, b) => Number(online(b, now)) - Number(online(a, now)) || a.advert.agent_name.localeCompare(b.advert.agent_name))
      .map((p) => {
        const [shown, judgedBy] = judge(p, now);
        const beat = p.last_heartbeat;
        return [
          h("span", { "data-node": p.advert.agent_name }, p.advert.agent_name, encodeHashToBase64(p.agent) === encodeHashToBase64(conductor.me) ? " (this node)" : ""),
          h(
            "span",
            { class: `state ${shown}`, "data-testid": `state-${p.advert.agent_name}`, "data-judged-by": judgedBy, title: `judged by ${judgedBy}` },
            shown,
          ),
          p.advert.hardware_class,
          `${p.advert.compute.cpu_cores} × ${p.advert.compute.cpu_arch}, ${p.advert.compute.ram_gb} GB`,
          h("span", { "data-testid": `gpus-${p.advert.agent_name}` }, gpus(p.advert)),
          h("span", { "data-testid": `models-${p.advert.agent_name}` }, p.advert.inference.models_loaded.join(", ") || "none"),
          p.advert.network.region || "-",
          beat ? `${load(beat.sample)}%` : "-",
          beat ? ago(beat.at, now) : "never",
        ];
      });
    list.replaceChildren(
      table(["node", "state", "class", "CPU / RAM", "GPUs", "models", "region", "load", "last beat"], rows, "peer-table"),
    );
    const judged = conductor.servedBySidecar
      ? verdictError
        ? `; this node's verdicts unavailable (${verdictError}), judged by heartbeats`
        : "; states are this node's liveness verdicts"
      : "; states judged by heartbeats";
    status.textContent = `${rows.length} node(s)${judged}; live from signals, last discovery read ${new Date().toLocaleTimeString()}`;
    chart.render(now);
  };

  const refresh = coalesced(async () => {
    try {
      const found = await conductor.call<PeerRecord[]>("agent_registry", "discovery", "query_peers", query);
      const known = new Map(peers);
      peers.clear();
      for (const p of found) {
        const key = encodeHashToBase64(p.agent);
        // A beat signalled here may be newer than what the read found (this node's own beat
        // is signalled before its link is committed).
        const seen = known.get(key)?.last_heartbeat;
        if (seen && (!p.last_heartbeat || seen.at > p.last_heartbeat.at)) p.last_heartbeat = seen;
        peers.set(key, p);
        if (p.last_heartbeat) chart.add(p.advert.agent_name, { t: p.last_heartbeat.at / 1000, v: load(p.last_heartbeat.sample) });
      }
      render();
    } catch (e) {
      list.replaceChildren(errorBox("discovery failed", e));
    }
  });

  const unsubscribe = conductor.onSignal(({ role, payload }) => {
    if (role !== "agent_registry") return;
    const signal = payload as RegistrySignal;
    const peer = peers.get(encodeHashToBase64(signal.agent));
    if (peer && signal.type === "heartbeat" && signal.sample) {
      peer.last_heartbeat = { agent: signal.agent, at: signal.at, sample: signal.sample };
      chart.add(peer.advert.agent_name, { t: signal.at / 1000, v: load(signal.sample) });
    } else if (peer && signal.type === "advert" && signal.advert) {
      peer.advert = signal.advert;
    }
    render();
    // This node's beat is the page's cue to read its peers' beats; a node the page has not read
    // yet (it joined after the last read) is read with its advert and last beat.
    if (!peer || signal.type === "heartbeat") void refresh();
  });
  const readVerdicts = coalesced(async () => {
    try {
      verdicts = await sidecarVerdicts();
      verdictError = null;
    } catch (e) {
      // Stale verdicts would hide a change; the heartbeat rule still judges.
      verdicts = new Map();
      verdictError = e instanceof Error ? e.message : String(e);
    }
    render();
  });
  if (conductor.servedBySidecar) await readVerdicts();
  await refresh();
  const poll = conductor.servedBySidecar ? window.setInterval(() => void readVerdicts(), VERDICTS_EVERY_MS) : undefined;
  // The clock, not the network: ages and the online window move on without new data.
  const clock = window.setInterval(render, 1000);
  return () => {
    unsubscribe();
    window.clearInterval(clock);
    window.clearInterval(poll);
  };
}

function readFilters(form: HTMLFormElement): DiscoveryQuery {
  const data = new FormData(form);
  const query: DiscoveryQuery = { online_only: data.get("online_only") === "on" };
  for (const [key, , type] of FILTERS) {
    const value = String(data.get(key) ?? "").trim();
    if (!value) continue;
    (query as unknown as Record<string, string | number>)[key] = type === "number" ? Number(value) : value;
  }
  return query;
}
