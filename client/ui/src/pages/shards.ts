// Shard map: every memory collection's map (memory_shards `shards.list_maps`) with who holds each
// replica of each shard (`routing.get_claims`). A slot two nodes claim is shown with both.
import type { ActionHash, AgentPubKey } from "@holochain/client";

import type { Conductor } from "../conductor";
import { h, table, when } from "../dom";
import { nodeName, nodeNames } from "../registry";
import { snapshotPage } from "../snapshot";

interface MapRecord {
  map_id: ActionHash;
  owner: AgentPubKey;
  created_at: number;
  map: { collection: string; shard_count: number; replication_factor: number; hash_function: string; epoch: number };
}

interface ClaimRecord {
  claimed_at: number;
  claim: { shard: number; replica: number; holder: AgentPubKey };
}

export function shardsPage(conductor: Conductor, root: HTMLElement): Promise<() => void> {
  return snapshotPage(conductor, root, "Shard map", "memory_shards", async () => {
    const [maps, names] = await Promise.all([
      conductor.call<MapRecord[]>("memory_shards", "shards", "list_maps"),
      nodeNames(conductor),
    ]);
    if (!maps.length) return [h("p", { class: "muted" }, "No collections yet: `ripple shards create NAME` makes one.")];
    const claims = await Promise.all(maps.map((m) => conductor.call<ClaimRecord[]>("memory_shards", "routing", "get_claims", m.map_id)));
    return maps.flatMap((m, i) => {
      const { collection, shard_count, replication_factor, hash_function, epoch } = m.map;
      const holders = (shard: number, replica: number) =>
        claims[i]
          .filter((c) => c.claim.shard === shard && c.claim.replica === replica)
          .map((c) => nodeName(names, c.claim.holder))
          .join(" + ") || h("span", { class: "state offline" }, "unheld");
      const rows = Array.from({ length: shard_count }, (_, shard) => [
        shard,
        ...Array.from({ length: replication_factor }, (_, replica) => holders(shard, replica)),
      ]);
      return [
        h("h3", {}, collection),
        h(
          "p",
          { class: "muted" },
          `${shard_count} shards × ${replication_factor} replicas, ${hash_function}, epoch ${epoch}; created ${when(m.created_at)} by ${nodeName(names, m.owner)}; ${claims[i].length} claims`,
        ),
        table(["shard", ...Array.from({ length: replication_factor }, (_, r) => `replica ${r}`)], rows, `shards-${collection}`),
      ];
    });
  });
}
