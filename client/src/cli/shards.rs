//! `ripple shards …`: vector-memory collections, their maps, routes, claims and checkpoints.
use super::*;

pub(super) async fn shards(command: &ShardsCommand, data_dir: &Path, json: bool) -> anyhow::Result<()> {
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
