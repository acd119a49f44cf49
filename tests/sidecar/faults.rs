//! Faults on real `ripple up` processes: a partition between nodes, each on its own test host (a
//! network namespace with its own IP on a bridge this test owns, see `Lan`), that heals; and a
//! node killed in the middle of its writes.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use ripple::shards::MapView;

use super::harness::*;

const NAMES: [&str; 5] = ["node-a", "node-b", "node-c", "node-d", "node-e"];
/// The host whose link loses frames.
const LOSSY: usize = 4;
const LOSS: f64 = 0.2;
const LOSSY_FOR: Duration = Duration::from_secs(60);
/// The hosts cut off from the other three.
const ISLAND: [usize; 2] = [3, 4];
const PARTITION: Duration = Duration::from_secs(120);
/// The node killed at the end (not node-a: it serves the bootstrap).
const KILLED: usize = 2;

/// Slow (about eight minutes): five nodes start one after the other on their own test hosts, then
/// - one host's link drops 20 % of its frames each way for a minute: no node declares any node
///   offline (that host's included: it still answers, if late);
/// - the mesh is split 3 | 2 for two minutes with a write on each side, then healed: each side
///   keeps its own nodes online the whole time and declares the other side's offline; after the
///   heal every node sees both writes and all five nodes online;
/// - one node is killed (SIGKILL): every survivor declares it offline, and none changes its
///   mind about another survivor.
///
/// Needs root for the test hosts; skipped, saying so, without.
#[tokio::test(flavor = "multi_thread")]
async fn five_hosts_ride_out_packet_loss_a_partition_and_a_crash() {
    let lan = match Lan::new(NAMES.len()) {
        Ok(lan) => lan,
        Err(why) => {
            eprintln!("skipped: the partition needs five test hosts ({why})");
            return;
        }
    };
    let tmp = TempDir::new("partition");
    let manifests = test_manifests(&tmp.path().join("manifests")).await;
    let node = |i: usize| HostNode { data: tmp.path().join(NAMES[i]), host: Some(lan.hosts[i].name.clone()) };
    let launch = |i: usize, extra: &[&str]| Launch {
        host: node(i).host,
        ..Launch::node(tmp.path(), &manifests, "e2e", NAMES[i], extra)
    };

    // node-a serves bootstrap+relay on its host's address; the others join it.
    let listen = format!("{}:7790", lan.hosts[0].ip);
    let mut nodes = vec![Sidecar::start(launch(0, &["--bootstrap-listen", &listen]))];
    let join = nodes[0].join_args();
    let join: Vec<&str> = join.iter().map(String::as_str).collect();
    for i in 1..NAMES.len() {
        nodes.push(Sidecar::start(launch(i, &join)));
    }
    let agents: Vec<String> = nodes.iter().map(|n| n.agent().to_string()).collect();
    let name_of = |agent: &str| agents.iter().position(|a| a == agent).map(|i| NAMES[i]).unwrap_or("a stranger");
    // Who node `i` holds online, by name, read through its CLI on its own host.
    let online = |i: usize| -> Result<BTreeSet<&str>, String> {
        let rows = cli_json(&node(i), &manifests.root, &["peers", "--online"])?;
        let rows = rows.as_array().ok_or_else(|| format!("peers: {rows}"))?;
        Ok(rows.iter().filter_map(|r| r["agent_pubkey"].as_str()).map(name_of).collect())
    };
    let everyone: BTreeSet<&str> = NAMES.into_iter().collect();
    let all_see_everyone = || async {
        for (i, name) in NAMES.iter().enumerate() {
            let seen = online(i)?;
            if seen != everyone {
                return Err(format!("{name} sees {seen:?}"));
            }
        }
        Ok(())
    };
    eventually("every node to see all five online", Duration::from_secs(180), &all_see_everyone).await;

    // One host's link loses a fifth of its frames each way; every node keeps all five online.
    let link = lan.lossy(LOSSY, LOSS).expect("a lossy link");
    let lossy = Instant::now();
    let mut false_offline = vec![];
    while lossy.elapsed() < LOSSY_FOR {
        for (i, name) in NAMES.iter().enumerate() {
            let Ok(seen) = online(i) else { continue };
            let lost: Vec<_> = everyone.difference(&seen).collect();
            if !lost.is_empty() {
                false_offline.push(format!("{name} lost {lost:?} after {:?}", lossy.elapsed()));
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (passed, dropped, refused) = link.counts();
    drop(link);
    eprintln!(
        "{}'s link dropped {dropped} of {} frames ({:.0} %) over {LOSSY_FOR:?}; {refused} too large to relay",
        NAMES[LOSSY],
        passed + dropped + refused,
        100.0 * dropped as f64 / (passed + dropped + refused).max(1) as f64
    );
    assert!(dropped > 0, "the link dropped frames");
    assert!(false_offline.is_empty(), "no node declared offline under packet loss: {false_offline:?}");

    // Split 3 | 2 and write on each side while split.
    let side = |i: usize| ISLAND.contains(&i);
    lan.partition(&ISLAND).expect("partition the test hosts");
    let split = Instant::now();
    let writes = [(0, "left"), (ISLAND[0], "right")].map(|(i, collection)| {
        let (node, m) = (node(i), manifests.root.clone());
        std::thread::spawn(move || {
            cli_json(&node, &m, &["shards", "create", collection]).map(|_| (collection, split.elapsed()))
        })
    });
    let mut flaps = vec![];
    let mut cut_off: BTreeMap<(usize, usize), Duration> = BTreeMap::new();
    while split.elapsed() < PARTITION {
        for (i, name) in NAMES.iter().enumerate() {
            let Ok(seen) = online(i) else { continue }; // a read that timed out says nothing
            for (j, other) in NAMES.iter().enumerate() {
                let (same_side, is_online) = (side(i) == side(j), seen.contains(other));
                if same_side && !is_online {
                    flaps.push(format!("{name} lost {other} after {:?}", split.elapsed()));
                } else if !same_side && !is_online {
                    cut_off.entry((i, j)).or_insert_with(|| split.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for write in writes {
        let (collection, took) = write.join().expect("the writer thread").expect("a write on its own side");
        eprintln!("collection {collection} created during the partition in {took:?}");
    }
    assert!(flaps.is_empty(), "each side kept its own nodes online: {flaps:?}");
    let pairs = 2 * 3 * ISLAND.len();
    assert_eq!(cut_off.len(), pairs, "every node saw the other side go offline: {cut_off:?}");
    let slowest = cut_off.values().max().unwrap();
    eprintln!("the other side offline on every node within {slowest:?} of the split");

    // Heal: every node sees both writes and all five nodes online again, each side handed the
    // other's re-signed agent infos over the liveness channel.
    let introductions = || -> u64 {
        let received = |i: usize| {
            cli_json(&node(i), &manifests.root, &["status"]).ok()?["liveness"]["introductions_received"].as_u64()
        };
        (0..NAMES.len()).filter_map(received).sum()
    };
    let introduced_before = introductions();
    lan.heal().expect("heal the test hosts");
    let healed = Instant::now();
    let both: BTreeSet<String> = ["left", "right"].map(String::from).into();
    eventually("every node to see both sides' writes", Duration::from_secs(180), || async {
        for (i, name) in NAMES.iter().enumerate() {
            let maps: Vec<MapView> = serde_json::from_value(cli_json(&node(i), &manifests.root, &["shards", "list"])?)
                .map_err(|e| e.to_string())?;
            let have: BTreeSet<String> = maps.into_iter().map(|m| m.collection).collect();
            if !both.is_subset(&have) {
                return Err(format!("{name} has {have:?}; {}", sync_state(&node(i), &manifests.root)));
            }
        }
        Ok(())
    })
    .await;
    eprintln!("every write on every node {:?} after the heal", healed.elapsed());
    eventually("every node to see all five online again", Duration::from_secs(180), &all_see_everyone).await;
    eprintln!("all five online on every node {:?} after the heal", healed.elapsed());
    let introduced = introductions().saturating_sub(introduced_before);
    eprintln!("{introduced} introductions received since the heal");
    assert!(introduced > 0, "members that came back were handed agent infos");

    // Kill one: every survivor declares it offline; no survivor loses another.
    nodes.remove(KILLED).kill_hard();
    let killed = Instant::now();
    let survivors: Vec<usize> = (0..NAMES.len()).filter(|&i| i != KILLED).collect();
    let mut detected: BTreeMap<usize, Duration> = BTreeMap::new();
    let mut changed_mind = vec![];
    while detected.len() < survivors.len() && killed.elapsed() < Duration::from_secs(120) {
        for &i in &survivors {
            let Ok(seen) = online(i) else { continue };
            if !seen.contains(NAMES[KILLED]) {
                detected.entry(i).or_insert_with(|| killed.elapsed());
            }
            for &j in &survivors {
                if !seen.contains(NAMES[j]) {
                    changed_mind.push(format!("{} lost {} after {:?}", NAMES[i], NAMES[j], killed.elapsed()));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut times: Vec<Duration> = detected.values().copied().collect();
    times.sort();
    eprintln!("{} offline on the survivors after {times:?}", NAMES[KILLED]);
    assert_eq!(detected.len(), survivors.len(), "every survivor declared {} offline: {detected:?}", NAMES[KILLED]);
    assert!(changed_mind.is_empty(), "no survivor lost another: {changed_mind:?}");
}

/// What a node's status says about its sync with its peers, for a failing wait's message.
fn sync_state(node: &HostNode, manifests: &Path) -> String {
    match cli_json(node, manifests, &["status"]) {
        Ok(status) => {
            let d = &status["diagnostics"];
            let l = &status["liveness"];
            format!(
                "its status: {} with {} peers, {} gossip rounds, last {}, {} fetches pending, blocked {}; \
                 liveness {} alive {} dead, introductions {} sent {} received, {} bootstrap refreshes, last error {}",
                status["mesh_status"],
                status["peer_count"],
                d["completed_gossip_rounds"],
                d["last_gossip_ms"],
                d["pending_fetch_ops"],
                d["blocked_messages"],
                l["alive"],
                l["dead"],
                l["introductions_sent"],
                l["introductions_received"],
                l["bootstrap_refreshes"],
                l["last_error"]
            )
        }
        Err(e) => format!("its status: {e}"),
    }
}

/// `ripple --json ARGS` on node's host, decoded.
fn cli_json(node: &HostNode, manifests: &Path, args: &[&str]) -> Result<serde_json::Value, String> {
    let (code, out, err) = node.run(manifests, args);
    if code != 0 {
        return Err(format!("ripple {args:?} exited {code}: {err}"));
    }
    serde_json::from_str(&out).map_err(|e| format!("ripple {args:?}: {e}: {out}"))
}

/// A node killed (SIGKILL) in the middle of a stream of writes keeps, after a plain restart on
/// its data dir, every write it reported done: shard maps (memory_shards), policy versions
/// (policy_store, each with the Decision that allowed it), allocation grants (resource_mesh,
/// this node asking itself), artifacts with their replica claims (artifact_index, bytes in a
/// js-ipfs daemon) and advert updates (agent_registry, renames over MCP). It comes back under the
/// same agent key. About a minute.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_killed_mid_write_keeps_every_write_it_reported() {
    let tmp = TempDir::new("kill-mid-write");
    let manifests = test_manifests(&tmp.path().join("manifests")).await;
    let ipfs = Ipfs::start(tmp.path(), "node-k");
    let extra = ["--ipfs-api-url", ipfs.api_url.as_str(), "--mcp-http", "127.0.0.1:0"];
    let launch = || Launch::node(tmp.path(), &manifests, "e2e", "node-k", &extra);
    let node = Sidecar::start(launch());
    let agent = node.agent().to_string();
    let mcp = McpSession::open(&reqwest::Client::new(), node.ready.mcp_url.as_deref().expect("MCP over HTTP")).await;
    let data = HostNode { data: launch().data, host: None };
    let rego = tmp.path().join("tools.call.rego");
    std::fs::copy(crate::support::repo_root().join("manifests/policies/tools.call.rego"), &rego).unwrap();

    // Writes one after the other, each kind in turn, until the node is gone.
    let writer = {
        let (m, data, dir) =
            (manifests.root.clone(), HostNode { data: data.data.clone(), host: None }, tmp.path().to_path_buf());
        let rego = rego.to_str().unwrap().to_string();
        let runtime = tokio::runtime::Handle::current();
        std::thread::spawn(move || {
            let mut done: Vec<(&str, String)> = vec![];
            let mut failures = 0;
            for i in 0.. {
                let written = match i % 5 {
                    0 => cli_json(&data, &m, &["shards", "create", &format!("kill-{i}")])
                        .map(|_| ("map", format!("kill-{i}"))),
                    1 => {
                        let json = dir.join(format!("data-{i}.json"));
                        std::fs::write(&json, format!(r#"{{"disabled_actions": [], "round": {i}}}"#)).unwrap();
                        cli_json(&data, &m, &["policy", "publish", &rego, "--data-json", json.to_str().unwrap()])
                            .map(|p| ("policy", p["version"].to_string()))
                    }
                    2 => cli_json(&data, &m, &["allocate", "compute", "--cpu", "1", "--duration", "600"])
                        .map(|a| ("allocation", a["allocation_id"].as_str().unwrap_or_default().to_string())),
                    3 => {
                        let file = dir.join(format!("artifact-{i}.bin"));
                        std::fs::write(&file, format!("written before the kill, {i}")).unwrap();
                        cli_json(&data, &m, &["artifact", "add", file.to_str().unwrap()])
                            .map(|a| ("artifact", a["cid"].as_str().unwrap_or_default().to_string()))
                    }
                    _ => {
                        let name = format!("node-k-{i}");
                        runtime
                            .block_on(mcp.register_node(&name))
                            .map(|r| ("advert", format!("{name} {}", r["advert_version"].as_str().unwrap_or_default())))
                    }
                };
                match written {
                    Ok(w) => done.push(w),
                    // Allocations fail once the cores are taken; the node's death ends the stream.
                    Err(_) if failures < 40 => failures += 1,
                    Err(_) => break,
                }
                if done.len() >= 80 {
                    break;
                }
            }
            done
        })
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    node.kill_hard();
    let done = tokio::task::spawn_blocking(move || writer.join().expect("the writer thread")).await.unwrap();
    let count = |kind: &str| done.iter().filter(|(k, _)| *k == kind).count();
    let kinds = ["map", "policy", "allocation", "artifact", "advert"];
    eprintln!(
        "{} writes reported before the kill: {}",
        done.len(),
        kinds.iter().map(|&k| format!("{k}: {}", count(k))).collect::<Vec<_>>().join(", ")
    );
    assert!(kinds.iter().all(|&k| count(k) > 0), "every kind was written: {done:?}");

    let again = Sidecar::start(launch());
    assert_eq!(again.agent(), agent, "the same agent key after the kill");
    let m = &manifests.root;
    let maps = cli_json(&data, m, &["shards", "list"]).expect("shards list").to_string();
    let policy = cli_json(&data, m, &["policy", "show"]).expect("policy show");
    let in_force =
        policy["in_force"].as_array().expect("in_force").iter().find(|p| p["package"] == "tools.call").cloned();
    let version = in_force.and_then(|p| p["version"].as_u64()).unwrap_or(0);
    let allocations = cli_json(&data, m, &["allocations"]).expect("allocations").to_string();
    let decisions =
        cli_json(&data, m, &["policy", "decisions", "--node", &agent]).expect("policy decisions").to_string();
    for (kind, what) in &done {
        match *kind {
            "map" => assert!(maps.contains(&format!("\"{what}\"")), "map {what} survived: {maps}"),
            "policy" => assert!(what.parse::<u64>().unwrap() <= version, "policy version {what} survived: {policy}"),
            "allocation" => assert!(allocations.contains(what.as_str()), "allocation {what} survived: {allocations}"),
            "artifact" => {
                let replicas = cli_json(&data, m, &["artifact", "replicas", what.as_str()]).expect("artifact replicas");
                let rows = replicas["replicas"].as_array().expect("replica rows");
                assert!(
                    rows.iter().any(|r| r["holder"] == agent.as_str()),
                    "artifact {what} and its claim survived: {replicas}"
                );
            }
            _ => {}
        }
    }
    // The newest advert is the last rename reported, or one attempted after it (the kill may
    // fall between a commit and its report); if it is the last reported, it is that very version
    // (the restarted node found it on its chain and republished nothing).
    let renamed = |name: &str| name.strip_prefix("node-k-").and_then(|i| i.parse::<usize>().ok());
    let (last_name, last_version) = done
        .iter()
        .rev()
        .find(|(k, _)| *k == "advert")
        .map(|(_, w)| w)
        .and_then(|w| w.split_once(' '))
        .expect("an advert update");
    let advert = cli_json(&data, m, &["advert", "show"]).expect("advert show");
    let name = advert["advert"]["advert"]["agent_name"].as_str().unwrap_or_default();
    assert!(
        renamed(name) >= renamed(last_name),
        "the advert is {name}, older than the last update reported ({last_name}): {advert}"
    );
    if name == last_name {
        // `advert show` prints the hash as the conductor serializes it: its 39 bytes.
        let bytes: Vec<u8> = serde_json::from_value(advert["advert"]["version"].clone()).expect("version bytes");
        let version = holochain_types::prelude::ActionHash::try_from_raw_39(bytes).expect("an action hash");
        assert_eq!(version.to_string(), last_version, "the last advert update survived: {advert}");
    }
    assert!(decisions.contains("resources.allocate"), "the allocations' Decisions survived: {decisions}");
}
