//! Every numeric bound of the MCP catalog's inputs either equals the integrity rule (or advert
//! cap) it feeds — so a value the schema lets through never fails at commit, and one it refuses is
//! never one a rule allows — or is the sidecar's own limit, named here with why. A bound added to
//! the catalog without a line here fails the test.
use std::collections::BTreeMap;

use serde_json::{json, Value};

use agent_registry_types as registry;
use artifact_index_types as artifacts;
use memory_shards_types as shards;
use policy_store_integrity as policy;
use resource_mesh_types as resources;

const BOUNDS: &[&str] = &["minimum", "maximum", "minLength", "maxLength", "maxItems"];

/// `(where, keyword) -> value` for every bound in `definitions` and in the tools' `inputs`.
/// `where` is `def/capabilities/memory/vector_shards` or `holochain.query_peers/limit`, with
/// `[]` for array items.
fn catalog_bounds() -> BTreeMap<(String, String), Value> {
    fn walk(schema: &Value, at: &str, out: &mut BTreeMap<(String, String), Value>) {
        for keyword in BOUNDS {
            if let Some(value) = schema.get(*keyword) {
                out.insert((at.to_string(), keyword.to_string()), value.clone());
            }
        }
        for (field, sub) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
            walk(sub, &format!("{at}/{field}"), out);
        }
        for key in ["items", "additionalProperties"] {
            if let Some(sub @ Value::Object(_)) = schema.get(key) {
                walk(sub, &format!("{at}[]"), out);
            }
        }
    }
    let catalog: Value = serde_json::from_str(super::CATALOG).unwrap();
    let mut out = BTreeMap::new();
    for (name, schema) in catalog["definitions"].as_object().unwrap() {
        walk(schema, &format!("def/{name}"), &mut out);
    }
    for tool in catalog["tools"].as_array().unwrap() {
        let name = tool["name"].as_str().unwrap();
        for (field, schema) in tool["inputs"].as_object().into_iter().flatten() {
            walk(schema, &format!("{name}/{field}"), &mut out);
        }
    }
    out
}

/// Bounds that feed a rule: the rule's constant.
fn from_rules() -> Vec<(&'static str, &'static str, Value)> {
    use registry::*;
    let vram_total = GPUS_MAX as u64 * u64::from(VRAM_GB_MAX);
    // An offer's storage is local SSD plus S3 (`resources::offer_from_advert`), each capped.
    let storage_total = 2 * STORAGE_GB_MAX;
    vec![
        // agent_registry AR1 (the advert).
        ("def/capabilities/storage/s3_available_gb", "maximum", json!(STORAGE_GB_MAX)),
        ("def/capabilities/inference/max_batch_size", "maximum", json!(MAX_BATCH_SIZE_MAX)),
        ("def/capabilities/inference/tokens_per_second", "maximum", json!(TOKENS_PER_SECOND_MAX)),
        ("def/capabilities/memory/vector_shards", "maximum", json!(VECTOR_SHARDS_MAX)),
        ("def/capabilities/memory/redis_memory_gb", "maximum", json!(RAM_GB_MAX)),
        ("def/capabilities/network/bandwidth_mbps", "maximum", json!(BANDWIDTH_MBPS_MAX)),
        // Discovery filters: the advert field's cap (a larger filter could only match nothing).
        ("holochain.query_peers/gpu_vendor", "maxLength", json!(LABEL_MAX)),
        ("holochain.query_peers/cpu_arch", "maxLength", json!(LABEL_MAX)),
        ("holochain.query_peers/region", "maxLength", json!(LABEL_MAX)),
        ("holochain.query_peers/model", "maxLength", json!(MODEL_NAME_MAX)),
        ("holochain.query_peers/min_vram_gb", "maximum", json!(VRAM_GB_MAX)),
        ("holochain.query_peers/min_cpu_cores", "maximum", json!(CPU_CORES_MAX)),
        ("holochain.query_peers/min_ram_gb", "maximum", json!(RAM_GB_MAX)),
        ("holochain.query_peers/min_storage_gb", "maximum", json!(STORAGE_GB_MAX)),
        // resource_mesh: offers are derived from adverts, requests ask within them.
        ("def/capacity/cpu_cores", "maximum", json!(CPU_CORES_MAX)),
        ("def/capacity/memory_gb", "maximum", json!(RAM_GB_MAX)),
        ("def/capacity/gpu_slots", "maximum", json!(GPUS_MAX)),
        ("def/capacity/vram_gb", "maximum", json!(vram_total)),
        ("def/capacity/storage_gb", "maximum", json!(storage_total)),
        ("def/capacity/model_slots", "maximum", json!(MODELS_MAX)),
        ("def/requirements/cpu_cores", "maximum", json!(CPU_CORES_MAX)),
        ("def/requirements/memory_gb", "maximum", json!(RAM_GB_MAX)),
        ("def/requirements/gpu_vram_gb", "maximum", json!(vram_total)),
        ("def/requirements/storage_gb", "maximum", json!(storage_total)),
        ("def/requirements/model_name", "maxLength", json!(resources::MODEL_NAME_MAX)),
        ("def/model_name", "maxLength", json!(resources::MODEL_NAME_MAX)),
        ("resources.query_available/model_name", "maxLength", json!(resources::MODEL_NAME_MAX)),
        ("resources.schedule_task/model_name", "maxLength", json!(resources::MODEL_NAME_MAX)),
        ("resources.allocate/duration_seconds", "maximum", json!(resources::MAX_DURATION_SECS)),
        ("resources.schedule_task/duration_seconds", "maximum", json!(resources::MAX_DURATION_SECS)),
        // artifact_index AF3.
        ("artifacts.publish/name", "maxLength", json!(artifacts::NAME_MAX)),
        ("artifacts.publish/media_type", "maxLength", json!(artifacts::MEDIA_TYPE_MAX)),
        ("artifacts.publish/labels", "maxItems", json!(artifacts::LABELS_MAX)),
        ("artifacts.publish/labels[]", "maxLength", json!(artifacts::LABEL_MAX)),
        // AF1/RC1 `is_cid` (no constant; the pattern test below checks it at 127-129 characters).
        ("def/cid", "maxLength", json!(128)),
        // policy_store.
        ("policy.evaluate/package", "maxLength", json!(policy::PACKAGE_MAX)),
        ("policy.publish/rego", "maxLength", json!(policy::REGO_MAX)),
        ("policy.publish/description", "maxLength", json!(policy::DESCRIPTION_MAX)),
        ("policy.audit/subject", "maxLength", json!(policy::SUBJECT_MAX)),
        ("policy.decisions/hours", "maximum", json!(policy_store_types::MAX_HOURS)),
        ("policy.audit/hours", "maximum", json!(policy_store_types::MAX_HOURS)),
        // memory_shards SM1 / CP2.
        ("memory.checkpoint/shard", "maximum", json!(shards::SHARD_COUNT_MAX - 1)),
        ("memory.checkpoint/vector_count", "maximum", json!(shards::VECTOR_COUNT_MAX)),
    ]
}

/// The sidecar's own upper limits, each with why: no rule stands behind them. Lower bounds
/// (`minimum`, `minLength`) are all the sidecar's own: an amount is never negative, a name or
/// path never empty, a batch never 0.
const OWN: &[(&str, &str)] = &[
    ("def/requirements/vector_dimensions", "the widest embedding the shard router accepts"),
    ("def/prompt", "a prompt larger than 256 KiB is refused before it reaches LocalAI"),
    ("def/max_tokens", "the longest completion the bridge asks for"),
    ("def/temperature", "OpenAI's range"),
    ("holochain.query_peers/limit", "one answer's rows"),
    ("holochain.install_dna/path", "PATH_MAX on Linux"),
    ("artifacts.publish/path", "PATH_MAX on Linux"),
    ("artifacts.get/output_path", "PATH_MAX on Linux"),
    ("artifacts.verify/path", "PATH_MAX on Linux"),
    ("memory.route/key", "shard keys are hashed; their length is only bounded"),
    ("holochain.install_dna/network_seed", "a seed is a label, not data"),
    ("resources.allocate/workload_class", "a name in the workload classes file"),
    ("resources.schedule_task/workload_class", "a name in the workload classes file"),
    ("inference.moe_query/policy_override", "a name in the MoE policy file"),
    ("inference.single_query/timeout_ms", "ten minutes: longer belongs to a job, not a call"),
    ("inference.load_model/model", "a model name or a download URL for LocalAI"),
];

fn is_own(at: &str, keyword: &str) -> bool {
    matches!(keyword, "minimum" | "minLength") || OWN.iter().any(|(own, _)| *own == at)
}

#[test]
fn every_catalog_bound_is_its_rule_or_named_as_our_own() {
    let found = catalog_bounds();
    let expected = from_rules();
    for (at, keyword, value) in &expected {
        let got = found.get(&(at.to_string(), keyword.to_string()));
        assert_eq!(got, Some(value), "{at} {keyword}: the catalog must say what the rule says");
    }
    let unaccounted: Vec<String> = found
        .keys()
        .filter(|(at, keyword)| !expected.iter().any(|(a, k, _)| a == at && k == keyword))
        .filter(|(at, keyword)| !is_own(at, keyword))
        .map(|(at, keyword)| format!("{at} {keyword}"))
        .collect();
    assert!(unaccounted.is_empty(), "bounds with neither a rule nor a reason here: {unaccounted:?}");
}

/// Patterns that stand for an integrity predicate accept exactly what the predicate accepts, at
/// the edges that matter (lengths, alphabets).
#[test]
fn catalog_patterns_accept_what_the_rules_accept() {
    let catalog: Value = serde_json::from_str(super::CATALOG).unwrap();
    let pattern = |pointer: &str| regex::Regex::new(catalog.pointer(pointer).and_then(Value::as_str).unwrap()).unwrap();
    let agrees = |name: &str, re: &regex::Regex, rule: &dyn Fn(&str) -> bool, samples: &[String]| {
        for s in samples {
            assert_eq!(re.is_match(s), rule(s), "{name}: {s:?} (pattern {re})");
        }
    };
    let lengths = |prefix: &str, alphabet: &str| -> Vec<String> {
        [0usize, 1, 7, 8, 9, 31, 32, 33, 44, 45, 63, 64, 65, 126, 127, 128]
            .iter()
            .flat_map(|n| {
                let body: String = alphabet.chars().cycle().take(*n).collect();
                [
                    format!("{prefix}{body}"),
                    format!("{prefix}{body}A"),
                    format!("{prefix}{body}0"),
                    format!("{prefix}{body} "),
                ]
            })
            .collect()
    };
    let mut cids = lengths("b", "abcdefghijklmnopqrstuvwxyz234567");
    cids.extend(lengths("z", "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"));
    cids.extend(lengths("Qm", "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"));
    cids.extend(lengths("b", "l0O")); // 0, O and l are in no CID alphabet we accept
    agrees("cid", &pattern("/definitions/cid/pattern"), &artifacts::is_cid, &cids);
    agrees("cid (shards)", &pattern("/definitions/cid/pattern"), &shards::is_cid, &cids);

    let names = lengths("", "az09._-");
    agrees("collection", &pattern("/definitions/collection/pattern"), &shards::is_collection, &names);
    let agent_name = |s: &str| {
        (1..=registry::AGENT_NAME_MAX).contains(&s.len())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    agrees("agent_name", &pattern("/definitions/agent_name/pattern"), &agent_name, &lengths("", "aZ09._-"));
    let region = |s: &str| {
        s.len() <= registry::LABEL_MAX
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c))
    };
    let region_pattern = pattern("/definitions/capabilities/properties/network/properties/region/pattern");
    agrees("region", &region_pattern, &region, &lengths("", "az09_-"));

    let tools = catalog["tools"].as_array().unwrap();
    let input = |tool: &str, field: &str| {
        let spec = tools.iter().find(|t| t["name"] == json!(tool)).unwrap();
        spec["inputs"][field].clone()
    };
    let label = regex::Regex::new(input("artifacts.publish", "labels")["items"]["pattern"].as_str().unwrap()).unwrap();
    let label_max = input("artifacts.publish", "labels")["items"]["maxLength"].as_u64().unwrap() as usize;
    let label_schema = |s: &str| label.is_match(s) && s.chars().count() <= label_max;
    for s in lengths("", "az09._:=-") {
        assert_eq!(label_schema(&s), artifacts::is_label(&s), "label {s:?}");
    }
    let package = regex::Regex::new(input("policy.evaluate", "package")["pattern"].as_str().unwrap()).unwrap();
    for s in lengths("a", "b.c_9").into_iter().chain(["a..b".into(), "9a".into(), "a.9".into()]) {
        let schema = package.is_match(&s) && s.len() <= policy::PACKAGE_MAX;
        assert_eq!(schema, policy::is_dotted_name(&s, usize::MAX, policy::PACKAGE_MAX), "package {s:?}");
    }
}
