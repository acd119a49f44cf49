// Allocations: this node's resource requests and grants (resource_mesh `scheduling.list_allocations`)
// and what it provided and used (`accounting.get_usage`).
import type { ActionHash, AgentPubKey } from "@holochain/client";

import type { Conductor } from "../conductor";
import { h, short, table, when } from "../dom";
import { nodeName, nodeNames } from "../registry";
import { snapshotPage } from "../snapshot";

const SHOWN = 50;

interface Capacity {
  cpu_cores: number;
  memory_gb: number;
  gpu_slots: number;
  vram_gb: number;
  storage_gb: number;
  model_slots: number;
}

interface ResourceSeconds {
  cpu_core_seconds: number;
  memory_gb_seconds: number;
  gpu_slot_seconds: number;
  vram_gb_seconds: number;
  storage_gb_seconds: number;
  model_slot_seconds: number;
}

interface AllocationView {
  request: {
    request_id: ActionHash;
    requester: AgentPubKey;
    made_at: number;
    request: {
      provider: AgentPubKey;
      resource_type: string;
      requirements: Capacity;
      model_name: string | null;
      duration_secs: number;
    };
  };
  answer:
    | { status: "granted"; allocation_id: ActionHash; granted_at: number; expires_at: number; endpoint: string }
    | { status: "rejected"; reason: string }
    | null;
  released_at: number | null;
  receipt: { receipt: { held_secs: number; resource_seconds: ResourceSeconds }; acknowledged: boolean } | null;
}

interface UsageSummary {
  provided: ResourceSeconds;
  provided_receipts: number;
  provided_acknowledged: number;
  used: ResourceSeconds;
  used_receipts: number;
}

export function allocationsPage(conductor: Conductor, root: HTMLElement): Promise<() => void> {
  return snapshotPage(conductor, root, "Allocations", "resource_mesh", async () => {
    const [list, usage, names] = await Promise.all([
      conductor.call<{ as_requester: AllocationView[]; as_provider: AllocationView[] }>(
        "resource_mesh",
        "scheduling",
        "list_allocations",
        SHOWN,
      ),
      conductor.call<UsageSummary>("resource_mesh", "accounting", "get_usage"),
      nodeNames(conductor),
    ]);
    const rows = (views: AllocationView[], other: (v: AllocationView) => AgentPubKey) =>
      views.map((v) => {
        const r = v.request.request;
        return [
          short(v.request.request_id),
          nodeName(names, other(v)),
          r.resource_type + (r.model_name ? ` (${r.model_name})` : ""),
          amounts(r.requirements),
          `${r.duration_secs} s`,
          h("span", { class: `state ${state(v)}` }, state(v)),
          when(v.request.made_at),
          v.answer?.status === "granted" ? when(v.answer.expires_at) : v.answer?.status === "rejected" ? v.answer.reason : "-",
          v.receipt ? `${v.receipt.receipt.held_secs} s${v.receipt.acknowledged ? ", acknowledged" : ""}` : "-",
        ];
      });
    const headers = (who: string) => ["request", who, "type", "amounts", "for", "state", "asked", "expires / reason", "receipt"];
    return [
      h("h3", {}, "Usage"),
      table(
        ["", "receipts", "core-seconds", "GB-seconds (RAM)", "GPU-slot-seconds", "model-slot-seconds"],
        [
          ["provided", `${usage.provided_receipts} (${usage.provided_acknowledged} acknowledged)`, ...seconds(usage.provided)],
          ["used", `${usage.used_receipts}`, ...seconds(usage.used)],
        ],
        "usage-table",
      ),
      h("h3", {}, "Requested by this node"),
      list.as_requester.length
        ? table(headers("provider"), rows(list.as_requester, (v) => v.request.request.provider), "requested-table")
        : h("p", { class: "muted" }, "None yet: `ripple allocate` or the resources.allocate tool asks the mesh."),
      h("h3", {}, "Provided by this node"),
      list.as_provider.length
        ? table(headers("requester"), rows(list.as_provider, (v) => v.request.requester), "provided-table")
        : h("p", { class: "muted" }, "None yet."),
    ];
  });
}

function state(v: AllocationView): string {
  if (!v.answer) return "pending";
  if (v.answer.status === "rejected") return "rejected";
  if (v.released_at !== null) return "released";
  return v.answer.expires_at / 1000 < Date.now() ? "expired" : "granted";
}

function amounts(c: Capacity): string {
  const parts = [
    c.cpu_cores && `${c.cpu_cores} cores`,
    c.memory_gb && `${c.memory_gb} GB RAM`,
    c.gpu_slots && `${c.gpu_slots} GPU`,
    c.vram_gb && `${c.vram_gb} GB VRAM`,
    c.storage_gb && `${c.storage_gb} GB disk`,
    c.model_slots && `${c.model_slots} model slot(s)`,
  ].filter(Boolean);
  return parts.join(", ") || "-";
}

function seconds(s: ResourceSeconds): string[] {
  return [s.cpu_core_seconds, s.memory_gb_seconds, s.gpu_slot_seconds, s.model_slot_seconds].map(String);
}
