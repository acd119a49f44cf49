// Policies: the packages in force on the network (policy_store `policies.get_current_bundles`), the
// decisions of the last day by every node, and this node's audit events.
import type { ActionHash, AgentPubKey } from "@holochain/client";

import type { Conductor } from "../conductor";
import { h, short, table, when } from "../dom";
import { nodeName, nodeNames } from "../registry";
import { snapshotPage } from "../snapshot";

const HOURS = 24;
const SHOWN = 100;

interface BundleRecord {
  bundle_id: ActionHash;
  author: AgentPubKey;
  published_at: number;
  bundle: { package: string; version: number; description: string; data: string | null };
}

interface DecisionRecord {
  decision_id: ActionHash;
  decided_at: number;
  decision: { decider: AgentPubKey; action: string; package: string; version: number; allowed: boolean; reasons: string[] };
}

interface AuditRecord {
  event_id: ActionHash;
  at: number;
  author: AgentPubKey;
  event: { category: string; subject: string; outcome: string; detail: string };
}

export function policiesPage(conductor: Conductor, root: HTMLElement): Promise<() => void> {
  return snapshotPage(conductor, root, "Policies and decisions", "policy_store", async () => {
    // Hour buckets as policy_store files them: whole hours since the epoch.
    const now = Math.floor(Date.now() / 3_600_000);
    const hours = { from: now - HOURS + 1, to: now };
    const [bundles, decisions, audit, names] = await Promise.all([
      conductor.call<BundleRecord[]>("policy_store", "policies", "get_current_bundles"),
      conductor.call<DecisionRecord[]>("policy_store", "decisions", "get_decisions_in_hours", hours),
      conductor.call<AuditRecord[]>("policy_store", "audit", "get_audit_in_hours", hours),
      nodeNames(conductor),
    ]);
    const newest = <T>(items: T[], at: (t: T) => number) => [...items].sort((a, b) => at(b) - at(a)).slice(0, SHOWN);
    return [
      h("h3", {}, "In force"),
      bundles.length
        ? table(
            ["package", "version", "description", "published", "by", "bundle"],
            bundles
              .sort((a, b) => a.bundle.package.localeCompare(b.bundle.package))
              .map((b) => [b.bundle.package, b.bundle.version, b.bundle.description, when(b.published_at), nodeName(names, b.author), short(b.bundle_id)]),
            "bundle-table",
          )
        : h("p", { class: "muted" }, "Nothing published: the built-in defaults decide."),
      h("h3", {}, `Decisions, last ${HOURS} h (${decisions.length})`),
      table(
        ["decided", "node", "action", "policy", "verdict", "reasons", "decision"],
        newest(decisions, (d) => d.decided_at).map((d) => [
          when(d.decided_at),
          nodeName(names, d.decision.decider),
          d.decision.action,
          `${d.decision.package} v${d.decision.version}`,
          h("span", { class: `state ${d.decision.allowed ? "online" : "offline"}` }, d.decision.allowed ? "allowed" : "denied"),
          d.decision.reasons.join("; "),
          short(d.decision_id),
        ]),
        "decision-table",
      ),
      h("h3", {}, `Audit, last ${HOURS} h (${audit.length})`),
      table(
        ["at", "node", "category", "subject", "outcome", "detail"],
        newest(audit, (e) => e.at).map((e) => [
          when(e.at),
          nodeName(names, e.author),
          e.event.category,
          e.event.subject,
          e.event.outcome,
          e.event.detail.length > 160 ? `${e.event.detail.slice(0, 160)}…` : e.event.detail,
        ]),
        "audit-table",
      ),
    ];
  });
}
