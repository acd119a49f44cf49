//! Shared test plumbing: bundles, DNA properties, adverts, and waiting for the DHT.
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_registry_types::{Availability, HeartbeatSample, NodeAdvert, RegistryProperties};
use holochain::prelude::*;
use holochain::sweettest::*;
use ripple::compiled_zomes::{self, ZomeCache};

pub fn repo_root() -> PathBuf {
    // `cargo test` sets CARGO_MANIFEST_DIR at run time; the compile-time value may name another
    // checkout that shared the target dir.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("..")
}

pub fn workdir() -> PathBuf {
    repo_root().join("workdir")
}

/// Gives fresh conductors the compiled modules of `dnas`' zomes from the machine's cache (the one
/// `ripple compile-zomes` fills; what it lacks is compiled into it here, once per machine), so the
/// conductor loads native code instead of compiling every zome itself: about 2 s of cranelift per
/// zome per conductor on 2 cores. Call after the conductors start and before they install `dnas`.
pub async fn seed_compiled_zomes<'a>(conductors: impl IntoIterator<Item = &'a SweetConductor>, dnas: &[&DnaFile]) {
    let mut zomes = Vec::new();
    for dna in dnas {
        zomes.extend(compiled_zomes::dna_zomes(dna).expect("the zomes of a test DNA"));
    }
    zomes.sort_by(|a, b| a.hash.cmp(&b.hash));
    zomes.dedup_by(|a, b| a.hash == b.hash);
    let cache = ZomeCache::new(std::env::var_os(compiled_zomes::ZOME_CACHE_ENV).map(PathBuf::from));
    let (worker, to_compile) = (cache.clone(), zomes.clone());
    tokio::task::spawn_blocking(move || worker.compile_missing(&to_compile, &|line: &str| eprintln!("==> {line}")))
        .await
        .expect("the compile task")
        .unwrap_or_else(|e| panic!("{e}"));
    // Sweettest's conductors lock their databases with this passphrase (ConductorBuilder::test).
    for conductor in conductors {
        let passphrase = Arc::new(Mutex::new(sodoken::LockedArray::from(b"passphrase".to_vec())));
        compiled_zomes::seed_wasm_store(conductor.db_path(), passphrase, &cache, &zomes)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A fresh network for one test: agent_registry from `workdir/` with `props` and a unique seed.
/// `adversary` adds the test-only coordinator zome; the DNA hash stays the same.
pub async fn registry_dna(seed: &str, props: &RegistryProperties, adversary: bool) -> DnaFile {
    let path = if adversary {
        workdir().join("test/agent_registry_adversary.dna")
    } else {
        workdir().join("agent_registry.dna")
    };
    assert!(path.is_file(), "{} is missing: run `cargo xtask build` first", path.display());
    let modifiers = DnaModifiersOpt::none().with_network_seed(seed.to_string()).with_properties(props.clone());
    SweetDnaFile::from_bundle_with_overrides(&path, modifiers).await.expect("load agent_registry bundle")
}

/// A fresh resource_mesh network from `workdir/` with a unique seed; `adversary` adds the
/// test-only coordinator zome (same DNA hash).
pub async fn mesh_dna(seed: &str, adversary: bool) -> DnaFile {
    let path = if adversary {
        workdir().join("test/resource_mesh_adversary.dna")
    } else {
        workdir().join("resource_mesh.dna")
    };
    assert!(path.is_file(), "{} is missing: run `cargo xtask build` first", path.display());
    let modifiers = DnaModifiersOpt::<SerializedBytes>::none().with_network_seed(seed.to_string());
    SweetDnaFile::from_bundle_with_overrides(&path, modifiers).await.expect("load resource_mesh bundle")
}

pub const MESH_ROLE: &str = "resource_mesh";

/// A fresh artifact_index network from `workdir/` with a unique seed; `adversary` adds the
/// test-only coordinator zome (same DNA hash).
pub async fn artifact_dna(seed: &str, adversary: bool) -> DnaFile {
    let path = if adversary {
        workdir().join("test/artifact_index_adversary.dna")
    } else {
        workdir().join("artifact_index.dna")
    };
    assert!(path.is_file(), "{} is missing: run `cargo xtask build` first", path.display());
    let modifiers = DnaModifiersOpt::<SerializedBytes>::none().with_network_seed(seed.to_string());
    SweetDnaFile::from_bundle_with_overrides(&path, modifiers).await.expect("load artifact_index bundle")
}

/// A fresh policy_store network from `workdir/` with `props` (its admins) and a unique seed;
/// `adversary` adds the test-only coordinator zome (same DNA hash).
pub async fn policy_dna(seed: &str, props: &policy_store_types::PolicyProperties, adversary: bool) -> DnaFile {
    let path =
        if adversary { workdir().join("test/policy_store_adversary.dna") } else { workdir().join("policy_store.dna") };
    assert!(path.is_file(), "{} is missing: run `cargo xtask build` first", path.display());
    let modifiers = DnaModifiersOpt::none().with_network_seed(seed.to_string()).with_properties(props.clone());
    SweetDnaFile::from_bundle_with_overrides(&path, modifiers).await.expect("load policy_store bundle")
}

/// A fresh memory_shards network from `workdir/` with a unique seed; `adversary` adds the
/// test-only coordinator zome (same DNA hash).
pub async fn shards_dna(seed: &str, adversary: bool) -> DnaFile {
    let path = if adversary {
        workdir().join("test/memory_shards_adversary.dna")
    } else {
        workdir().join("memory_shards.dna")
    };
    assert!(path.is_file(), "{} is missing: run `cargo xtask build` first", path.display());
    let modifiers = DnaModifiersOpt::<SerializedBytes>::none().with_network_seed(seed.to_string());
    SweetDnaFile::from_bundle_with_overrides(&path, modifiers).await.expect("load memory_shards bundle")
}

pub fn shards_role(dna: &DnaFile) -> (String, DnaFile) {
    ("memory_shards".to_string(), dna.clone())
}

pub fn policy_role(dna: &DnaFile) -> (String, DnaFile) {
    ("policy_store".to_string(), dna.clone())
}

pub fn artifact_role(dna: &DnaFile) -> (String, DnaFile) {
    ("artifact_index".to_string(), dna.clone())
}

pub fn mesh_role(dna: &DnaFile) -> (String, DnaFile) {
    (MESH_ROLE.to_string(), dna.clone())
}

/// Short buckets so liveness changes within a test.
pub fn fast_props() -> RegistryProperties {
    RegistryProperties { heartbeat_bucket_secs: 6, heartbeat_min_interval_secs: 1, ..Default::default() }
}

pub fn unique_seed(name: &str) -> String {
    format!("ripple-test-{name}-{}", nanos())
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
}

pub const ROLE: &str = "agent_registry";

pub fn role(dna: &DnaFile) -> (String, DnaFile) {
    (ROLE.to_string(), dna.clone())
}

/// A small valid advert; tests change the fields they look for.
pub fn advert(name: &str) -> NodeAdvert {
    use agent_registry_types::*;
    NodeAdvert {
        agent_name: name.into(),
        hardware_class: HardwareClass::Desktop,
        compute: Compute { cpu_cores: 8, cpu_arch: "x86_64".into(), ram_gb: 16, gpus: vec![] },
        storage: Storage { local_ssd_gb: 500, ipfs_pinned_gb: 0, s3_available_gb: 0 },
        inference: Inference { models_loaded: vec![], max_batch_size: 1, tokens_per_second: 0, endpoint: None },
        memory: Memory { vector_shards: 0, redis_memory_gb: 0 },
        network: Network { bandwidth_mbps: 1000, region: String::new() },
        availability: Availability::Online,
    }
}

pub fn sample(seq: u64) -> HeartbeatSample {
    HeartbeatSample { seq, cpu_percent: 12, gpu_percent: None, memory_percent: 40, availability: Availability::Online }
}

/// Polls `check` every 250 ms until it returns `Some`, failing with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            // Shown with a failing test's output: where its time went.
            eprintln!("waited {:.1} s for {what}", start.elapsed().as_secs_f64());
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Reasons of the warrants `issuer`'s cell has issued against `warrantee`.
pub async fn warrant_reasons(issuer: &SweetCell, warrantee: &AgentPubKey) -> Vec<String> {
    let warrants =
        issuer.dht_store().as_read().warrants_by_author(issuer.agent_pubkey().clone()).await.expect("read warrants");
    warrants
        .into_iter()
        .filter(|w| &w.warrant().warrantee == warrantee)
        .map(|w| match &w.warrant().proof {
            WarrantProof::ChainIntegrity(ChainIntegrityWarrant::InvalidChainOp { reason, .. }) => reason.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Says that test setup was retried (a fresh conductor that never synced, say): on stderr, and
/// appended to `$RIPPLE_TEST_RETRY_LOG`, which `cargo xtask test` sets, counts and prints, since a
/// passing test's stderr is never shown.
pub fn log_retry(what: &str) {
    eprintln!("RETRY: {what}");
    if let Some(path) = std::env::var_os("RIPPLE_TEST_RETRY_LOG") {
        use std::io::Write;
        let line = format!("{}: {what}\n", std::thread::current().name().unwrap_or("test"));
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            eprintln!("could not append to {}: {e}", std::path::Path::new(&path).display());
        }
    }
}
