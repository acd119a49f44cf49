//! AR1 and the derived values of `NodeAdvert`.
use crate::node_advert::*;
use crate::rules::Rule;

pub fn gpu_box() -> NodeAdvert {
    NodeAdvert {
        agent_name: "gpu-box-01".into(),
        hardware_class: HardwareClass::EdgeServer,
        compute: Compute {
            cpu_cores: 16,
            cpu_arch: "x86_64".into(),
            ram_gb: 64,
            gpus: vec![Gpu { vendor: "nvidia".into(), model: "RTX 4090".into(), vram_gb: 24 }],
        },
        storage: Storage { local_ssd_gb: 2000, ipfs_pinned_gb: 500, s3_available_gb: 0 },
        inference: Inference {
            models_loaded: vec!["gemma-3n-E2B".into(), "qwen3-4b".into()],
            max_batch_size: 32,
            tokens_per_second: 150,
            endpoint: Some("http://127.0.0.1:8080".into()),
        },
        memory: Memory { vector_shards: 4, redis_memory_gb: 16 },
        network: Network { bandwidth_mbps: 1000, region: "us-west".into() },
        availability: Availability::Online,
    }
}

fn rejects(mutate: impl FnOnce(&mut NodeAdvert), needle: &str) {
    let mut advert = gpu_box();
    mutate(&mut advert);
    let err = advert.check().expect_err("advert should break AR1");
    assert_eq!(err.rule, Rule::AR1);
    assert!(err.to_string().contains(needle), "{err} should mention {needle}");
}

#[test]
fn spec_example_is_valid() {
    gpu_box().check().unwrap();
}

#[test]
fn bounds_are_enforced() {
    rejects(|a| a.agent_name = String::new(), "agent_name");
    rejects(|a| a.agent_name = "x".repeat(65), "agent_name");
    rejects(|a| a.agent_name = "bad name".into(), "agent_name");
    rejects(|a| a.compute.cpu_cores = 0, "cpu_cores");
    rejects(|a| a.compute.cpu_cores = 5000, "cpu_cores");
    rejects(|a| a.compute.cpu_arch = "X86".into(), "cpu_arch");
    rejects(|a| a.compute.ram_gb = RAM_GB_MAX + 1, "ram_gb");
    rejects(|a| a.compute.gpus = vec![a.compute.gpus[0].clone(); 17], "GPUs");
    rejects(|a| a.compute.gpus[0].vendor = "NVIDIA".into(), "vendor");
    rejects(|a| a.compute.gpus[0].vram_gb = 2048, "vram_gb");
    rejects(|a| a.storage.s3_available_gb = STORAGE_GB_MAX + 1, "s3_available_gb");
    rejects(|a| a.inference.models_loaded.push("QWEN3-4B".into()), "twice");
    rejects(|a| a.inference.models_loaded = vec!["m".into(); 65], "loaded models");
    rejects(|a| a.inference.models_loaded[0] = "a b".into(), "models_loaded[0]");
    rejects(|a| a.inference.endpoint = Some("ftp://x".into()), "endpoint");
    rejects(|a| a.inference.endpoint = Some(format!("http://{}", "a".repeat(300))), "endpoint");
    rejects(|a| a.network.region = "US West".into(), "region");
}

/// The numeric caps hold exactly at their constant (the MCP catalog copies these constants), and
/// the message names the cap a caller broke.
#[test]
fn caps_are_their_constants() {
    fn at_cap_and_over(set: impl Fn(&mut NodeAdvert, u32), cap: u32, field: &str) {
        let mut advert = gpu_box();
        set(&mut advert, cap);
        advert.check().unwrap_or_else(|e| panic!("{field} = {cap} is allowed: {e}"));
        rejects(|a| set(a, cap + 1), &format!("{field} must be at most {cap}"));
    }
    at_cap_and_over(|a, v| a.inference.max_batch_size = v, MAX_BATCH_SIZE_MAX, "max_batch_size");
    at_cap_and_over(|a, v| a.inference.tokens_per_second = v, TOKENS_PER_SECOND_MAX, "tokens_per_second");
    at_cap_and_over(|a, v| a.memory.vector_shards = v, VECTOR_SHARDS_MAX, "vector_shards");
    at_cap_and_over(|a, v| a.memory.redis_memory_gb = v, RAM_GB_MAX, "redis_memory_gb");
    at_cap_and_over(|a, v| a.network.bandwidth_mbps = v, BANDWIDTH_MBPS_MAX, "bandwidth_mbps");
    at_cap_and_over(|a, v| a.compute.ram_gb = v, RAM_GB_MAX, "ram_gb");
    at_cap_and_over(|a, v| a.compute.gpus[0].vram_gb = v, VRAM_GB_MAX, "vram_gb");
}

#[test]
fn derived_values() {
    let mut advert = gpu_box();
    advert.compute.gpus.push(Gpu { vendor: "amd".into(), model: "MI300X".into(), vram_gb: 192 });
    assert_eq!(advert.max_vram_gb(), Some(192));
    assert_eq!(advert.storage_gb(), 2500);
    advert.compute.gpus.clear();
    assert_eq!(advert.max_vram_gb(), None);
    advert.network.region.clear();
    advert.check().unwrap();
}
