// Artifacts: what the mesh's artifact index lists (artifact_index `artifacts.get_artifacts_in_shard`,
// all 16 shards), newest first, each with who holds a replica (`replication.get_replicas_for_cid`)
// and its provenance statements with what the builder's chain says (`provenance.*`).
import type { ActionHash, AgentPubKey } from "@holochain/client";

import type { Conductor } from "../conductor";
import { h, short, table, when } from "../dom";
import { nodeName, nodeNames } from "../registry";
import { snapshotPage } from "../snapshot";

const INDEX_SHARDS = 16;
const SHOWN = 50;

interface ArtifactRecord {
  artifact_id: ActionHash;
  registrant: AgentPubKey;
  registered_at: number;
  artifact: { cid: string; sha256: string; size: number; name: string; media_type: string; labels: string[] };
}

interface ReplicaRecord {
  holder: AgentPubKey;
  claim: { until: number };
  live: boolean;
}

interface ProvenanceRecord {
  builder: AgentPubKey;
  chain: { on_chain: boolean; warrants: number; status: string };
}

export function artifactsPage(conductor: Conductor, root: HTMLElement): Promise<() => void> {
  return snapshotPage(conductor, root, "Artifacts", "artifact_index", async () => {
    const shards = Array.from({ length: INDEX_SHARDS }, (_, shard) =>
      conductor.call<ArtifactRecord[]>("artifact_index", "artifacts", "get_artifacts_in_shard", shard),
    );
    const [names, ...lists] = await Promise.all([nodeNames(conductor), ...shards]);
    const all = lists.flat().sort((a, b) => b.registered_at - a.registered_at);
    const shown = all.slice(0, SHOWN);
    const details = await Promise.all(
      shown.map((a) =>
        Promise.all([
          conductor.call<ReplicaRecord[]>("artifact_index", "replication", "get_replicas_for_cid", a.artifact.cid),
          conductor.call<ProvenanceRecord[]>("artifact_index", "provenance", "get_provenance_for_artifact", a.artifact_id),
        ]),
      ),
    );
    if (!all.length) return [h("p", { class: "muted" }, "No artifacts yet: `ripple artifact add FILE` publishes one.")];
    return [
      h("p", { class: "muted" }, `${all.length} artifact(s)${all.length > SHOWN ? `, the newest ${SHOWN} shown` : ""}`),
      table(
        ["name", "CID", "size", "registered", "by", "replicas (live)", "provenance"],
        shown.map((a, i) => {
          const [replicas, provenance] = details[i];
          const live = replicas.filter((r) => r.live).map((r) => nodeName(names, r.holder));
          return [
            h("span", { title: a.artifact.media_type }, a.artifact.name),
            h("code", {}, a.artifact.cid),
            bytes(a.artifact.size),
            when(a.registered_at),
            nodeName(names, a.registrant),
            `${live.length}: ${live.join(", ") || "none"}`,
            provenance.length
              ? provenance
                  .map((p) => `${nodeName(names, p.builder)}: ${p.chain.status}${p.chain.warrants ? `, ${p.chain.warrants} warrant(s)` : ""}`)
                  .join("; ")
              : "none",
          ];
        }),
        "artifact-table",
      ),
      h("p", { class: "muted" }, "Artifact ids: ", shown.map((a) => short(a.artifact_id)).join(" ")),
    ];
  });
}

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
