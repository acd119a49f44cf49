//! agent_registry across several conductors: registration, discovery with every filter, advert
//! updates, and liveness.
use std::time::Duration;

use agent_registry_types::{
    AdvertRecord, DiscoveryQuery, Gpu, HardwareClass, NodeAdvert, PeerRecord, RegistryProperties,
};
use holochain::prelude::*;
use holochain::sweettest::*;

use crate::support::*;

fn gpu_box() -> NodeAdvert {
    let mut a = advert("gpu-box-01");
    a.hardware_class = HardwareClass::EdgeServer;
    a.compute.cpu_cores = 16;
    a.compute.ram_gb = 64;
    a.compute.gpus = vec![Gpu { vendor: "nvidia".into(), model: "RTX 4090".into(), vram_gb: 24 }];
    a.storage.local_ssd_gb = 2000;
    a.inference.models_loaded = vec!["qwen3-4b".into(), "gemma-3n-E2B".into()];
    a.network.region = "us-west".into();
    a
}

fn big_iron() -> NodeAdvert {
    let mut a = advert("mi300-rack");
    a.hardware_class = HardwareClass::CloudVm;
    a.compute.cpu_cores = 96;
    a.compute.ram_gb = 1024;
    a.compute.gpus = vec![Gpu { vendor: "amd".into(), model: "MI300X".into(), vram_gb: 192 }; 2];
    a.storage.s3_available_gb = 10_000;
    a.inference.models_loaded = vec!["llama-3.3-70b".into()];
    a.network.region = "eu-central".into();
    a
}

fn raspberry() -> NodeAdvert {
    let mut a = advert("pi-kitchen");
    a.hardware_class = HardwareClass::IotArm;
    a.compute.cpu_cores = 4;
    a.compute.cpu_arch = "aarch64".into();
    a.compute.ram_gb = 8;
    a.storage.local_ssd_gb = 64;
    a.network.region = "us-west".into();
    a
}

async fn query(conductor: &SweetConductor, cell: &SweetCell, q: DiscoveryQuery) -> Vec<String> {
    let peers: Vec<PeerRecord> = conductor.call(&cell.zome("discovery"), "query_peers", q).await;
    let mut names: Vec<String> = peers.into_iter().map(|p| p.advert.agent_name).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_register_and_discover_each_other_with_every_filter() {
    // Default 5-minute buckets: every node stays online for the whole test.
    let dna = registry_dna(&unique_seed("discovery"), &RegistryProperties::default(), false).await;
    let mut conductors = SweetConductorBatch::standard(3).await;
    seed_compiled_zomes(conductors.iter(), &[&dna]).await;
    let apps = conductors.setup_app("ripple", [&role(&dna)]).await.unwrap();
    let cells: Vec<SweetCell> = apps.into_inner().into_iter().map(|app| app.into_cells().remove(0)).collect();

    for ((conductor, cell), advert) in conductors.iter().zip(&cells).zip([gpu_box(), big_iron(), raspberry()]) {
        let published: AdvertRecord =
            conductor.call(&cell.zome("capabilities"), "publish_node_advert", advert.clone()).await;
        assert_eq!(published.version, published.original, "the first publish creates the advert");
        let again: AdvertRecord = conductor.call(&cell.zome("capabilities"), "publish_node_advert", advert).await;
        assert_eq!(again, published, "publishing an unchanged advert writes nothing");
        let _: ActionHash = conductor.call(&cell.zome("heartbeat"), "heartbeat", sample(1)).await;
    }
    await_consistency_s(120, cells.iter()).await.unwrap();

    let all = ["gpu-box-01", "mi300-rack", "pi-kitchen"].map(String::from).to_vec();
    let cases: Vec<(DiscoveryQuery, Vec<&str>)> = vec![
        (DiscoveryQuery::default(), vec!["gpu-box-01", "mi300-rack", "pi-kitchen"]),
        (DiscoveryQuery { gpu_vendor: Some("NVIDIA".into()), ..Default::default() }, vec!["gpu-box-01"]),
        (DiscoveryQuery { min_vram_gb: Some(16), ..Default::default() }, vec!["gpu-box-01", "mi300-rack"]),
        (DiscoveryQuery { min_vram_gb: Some(25), ..Default::default() }, vec!["mi300-rack"]),
        (DiscoveryQuery { model: Some("Qwen3-4B".into()), ..Default::default() }, vec!["gpu-box-01"]),
        (DiscoveryQuery { model: Some("llama-3.3-70b".into()), ..Default::default() }, vec!["mi300-rack"]),
        (DiscoveryQuery { model: Some("phi-4-mini".into()), ..Default::default() }, vec![]),
        (DiscoveryQuery { cpu_arch: Some("aarch64".into()), ..Default::default() }, vec!["pi-kitchen"]),
        (DiscoveryQuery { region: Some("us-west".into()), ..Default::default() }, vec!["gpu-box-01", "pi-kitchen"]),
        (DiscoveryQuery { min_cpu_cores: Some(16), ..Default::default() }, vec!["gpu-box-01", "mi300-rack"]),
        (DiscoveryQuery { min_cpu_cores: Some(17), ..Default::default() }, vec!["mi300-rack"]),
        (DiscoveryQuery { min_ram_gb: Some(8), ..Default::default() }, vec!["gpu-box-01", "mi300-rack", "pi-kitchen"]),
        (DiscoveryQuery { min_ram_gb: Some(65), ..Default::default() }, vec!["mi300-rack"]),
        (DiscoveryQuery { min_storage_gb: Some(2000), ..Default::default() }, vec!["gpu-box-01", "mi300-rack"]),
        (
            DiscoveryQuery { region: Some("us-west".into()), min_cpu_cores: Some(8), ..Default::default() },
            vec!["gpu-box-01"],
        ),
        (DiscoveryQuery { online_only: true, ..Default::default() }, vec!["gpu-box-01", "mi300-rack", "pi-kitchen"]),
        (
            DiscoveryQuery { limit: Some(1), region: Some("eu-central".into()), ..Default::default() },
            vec!["mi300-rack"],
        ),
    ];
    for (conductor, cell) in conductors.iter().zip(&cells) {
        for (q, expected) in &cases {
            assert_eq!(query(conductor, cell, q.clone()).await, *expected, "query {q:?} from {}", cell.agent_pubkey());
        }
        let everyone: Vec<PeerRecord> =
            conductor.call(&cell.zome("discovery"), "query_peers", DiscoveryQuery::default()).await;
        assert_eq!(everyone.len(), all.len());
        for peer in &everyone {
            let beat = peer.last_heartbeat.as_ref().expect("each node heartbeated");
            assert!(peer.online && beat.agent == peer.agent && beat.sample == sample(1));
        }
    }

    // An update moves the node between index paths on every peer.
    let mut retooled = gpu_box();
    retooled.inference.models_loaded = vec!["phi-4-mini".into()];
    let updated: AdvertRecord =
        conductors[0].call(&cells[0].zome("capabilities"), "publish_node_advert", retooled.clone()).await;
    assert_ne!(updated.version, updated.original);
    await_consistency_s(120, cells.iter()).await.unwrap();
    for (conductor, cell) in conductors.iter().zip(&cells) {
        assert_eq!(
            query(conductor, cell, DiscoveryQuery { model: Some("qwen3-4b".into()), ..Default::default() }).await,
            Vec::<String>::new()
        );
        assert_eq!(
            query(conductor, cell, DiscoveryQuery { model: Some("phi-4-mini".into()), ..Default::default() }).await,
            vec!["gpu-box-01"]
        );
        let peer: Option<PeerRecord> =
            conductor.call(&cell.zome("discovery"), "get_peer", cells[0].agent_pubkey().clone()).await;
        let peer = peer.expect("node 0 is discoverable");
        assert_eq!((peer.advert, peer.advert_version), (retooled.clone(), updated.version.clone()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_stops_heartbeating_goes_offline_but_stays_discoverable() {
    // 6 s buckets (production: 300 s; the same two-bucket window): online = a beat in the last 6-12 s.
    let props = fast_props();
    let dna = registry_dna(&unique_seed("liveness"), &props, false).await;
    let mut conductors = SweetConductorBatch::standard(2).await;
    seed_compiled_zomes(conductors.iter(), &[&dna]).await;
    let apps = conductors.setup_app("ripple", [&role(&dna)]).await.unwrap();
    let cells: Vec<SweetCell> = apps.into_inner().into_iter().map(|app| app.into_cells().remove(0)).collect();
    let (watcher, quitter) = (&cells[0], &cells[1]);
    for ((conductor, cell), name) in conductors.iter().zip(&cells).zip(["watcher", "quitter"]) {
        let _: AdvertRecord = conductor.call(&cell.zome("capabilities"), "publish_node_advert", advert(name)).await;
    }
    await_consistency_s(120, cells.iter()).await.unwrap();

    let online = |q: DiscoveryQuery| {
        let (c, w) = (&conductors[0], watcher);
        async move { query(c, w, q).await }
    };
    let online_only = DiscoveryQuery { online_only: true, ..Default::default() };
    // The quitter's last beat is in this bucket or a later one.
    let quitter_beat_bucket_at_least = props.bucket_of(Timestamp::now());
    for (conductor, cell) in conductors.iter().zip(&cells) {
        let _: ActionHash = conductor.call(&cell.zome("heartbeat"), "heartbeat", sample(1)).await;
    }
    eventually("the watcher sees both nodes online", Duration::from_secs(10), || async {
        (online(online_only.clone()).await == ["quitter", "watcher"]).then_some(())
    })
    .await;

    // The quitter stops; the watcher keeps beating (above the 1 s minimum interval, HB4) until the
    // quitter ages out. Offline must never come before the quitter's beat has left the two-bucket
    // window; how soon after depends on the machine's load, so that is bounded only by a timeout.
    let mut seq = 2;
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let _: ActionHash = conductors[0].call(&watcher.zome("heartbeat"), "heartbeat", sample(seq)).await;
        seq += 1;
        let seen = online(online_only.clone()).await;
        let bucket_after_read = props.bucket_of(Timestamp::now());
        if seen == ["watcher"] {
            assert!(
                bucket_after_read >= quitter_beat_bucket_at_least + 2,
                "the quitter went offline in bucket {bucket_after_read}, inside the window of its last beat \
                 (bucket {quitter_beat_bucket_at_least} or later)"
            );
            break;
        }
        assert_eq!(seen, ["quitter", "watcher"], "only the quitter can change");
        assert!(started.elapsed() < Duration::from_secs(120), "the quitter never went offline");
    }

    let everyone: Vec<PeerRecord> =
        conductors[0].call(&watcher.zome("discovery"), "query_peers", DiscoveryQuery::default()).await;
    let gone =
        everyone.iter().find(|p| &p.agent == quitter.agent_pubkey()).expect("an offline node stays discoverable");
    assert!(!gone.online && gone.last_heartbeat.is_none());
    assert_eq!(everyone[0].agent, *watcher.agent_pubkey(), "online nodes sort first");
    let peer: Option<PeerRecord> =
        conductors[0].call(&watcher.zome("discovery"), "get_peer", quitter.agent_pubkey().clone()).await;
    assert!(!peer.expect("get_peer finds the offline node").online);
}
