//! The default policies (`manifests/policies/<package>.rego` with optional `<package>.json` data),
//! compiled into the binary. They are published as version 1 when a network is first created, and
//! decide as version 0 on a node that has no published version of a package yet.
use super::engine::PolicySource;

/// (package, Rego, data) of every default policy.
const DEFAULTS: &[(&str, &str, Option<&str>)] = &[
    (
        "tools.call",
        include_str!("../../../manifests/policies/tools.call.rego"),
        Some(include_str!("../../../manifests/policies/tools.call.json")),
    ),
    (
        "resources.allocate",
        include_str!("../../../manifests/policies/resources.allocate.rego"),
        Some(include_str!("../../../manifests/policies/resources.allocate.json")),
    ),
    (
        "artifacts.publish",
        include_str!("../../../manifests/policies/artifacts.publish.rego"),
        Some(include_str!("../../../manifests/policies/artifacts.publish.json")),
    ),
    (
        "inference.merge",
        include_str!("../../../manifests/policies/inference.merge.rego"),
        Some(include_str!("../../../manifests/policies/inference.merge.json")),
    ),
    (
        "peer.request",
        include_str!("../../../manifests/policies/peer.request.rego"),
        Some(include_str!("../../../manifests/policies/peer.request.json")),
    ),
];

/// The default policies as version 0 sources.
pub fn builtin() -> Vec<PolicySource> {
    DEFAULTS
        .iter()
        .map(|(package, rego, data)| PolicySource {
            package: (*package).into(),
            version: 0,
            bundle: None,
            rego: (*rego).into(),
            data: data.map(|d| d.trim().to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::engine::CompiledPolicy;
    use serde_json::json;

    fn compiled(package: &str) -> CompiledPolicy {
        let source = builtin().into_iter().find(|s| s.package == package).expect("a default for the package");
        CompiledPolicy::compile(source).expect("the default compiles")
    }

    #[test]
    fn every_file_in_manifests_policies_is_a_default_and_compiles() {
        // At run time: a shared target dir may hold a binary built in another checkout.
        let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
        let dir = std::path::Path::new(&crate_dir).join("../manifests/policies");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".rego").map(str::to_string))
            .collect();
        on_disk.sort();
        let mut built_in: Vec<String> = builtin().into_iter().map(|s| s.package).collect();
        built_in.sort();
        assert_eq!(on_disk, built_in, "manifests/policies and policy::defaults list the same packages");
        for package in built_in {
            compiled(&package);
        }
    }

    #[test]
    fn the_defaults_allow_ordinary_actions_and_deny_out_of_bounds_ones() {
        let tools = compiled("tools.call");
        assert!(tools.evaluate(&json!({"action": "artifacts.publish", "args": {}})).unwrap().allowed);

        let allocate = compiled("resources.allocate");
        let ok = json!({"action": "resources.allocate", "args": {"duration_seconds": 3600, "requirements": {"memory_gb": 4}}});
        assert!(allocate.evaluate(&ok).unwrap().allowed);
        let long = json!({"action": "resources.allocate", "args": {"duration_seconds": 90000, "requirements": {}}});
        let verdict = allocate.evaluate(&long).unwrap();
        assert!(!verdict.allowed);
        assert_eq!(
            verdict.reasons,
            vec!["duration_seconds 90000 is over the limit of 86400 (resources.allocate: data.max_duration_seconds)"]
        );

        let publish = compiled("artifacts.publish");
        assert!(publish.evaluate(&json!({"action": "artifacts.publish", "size_bytes": 1024})).unwrap().allowed);
        assert!(
            !publish
                .evaluate(&json!({"action": "artifacts.publish", "size_bytes": 200_000_000_000u64}))
                .unwrap()
                .allowed
        );

        let merge = compiled("inference.merge");
        assert!(merge.evaluate(&json!({"consensus_score": 0.75})).unwrap().allowed);
        let split = merge.evaluate(&json!({"consensus_score": 0.25})).unwrap();
        assert_eq!(
            split.reasons,
            vec!["consensus 0.25 is below the required agreement of 0.5 (inference.merge: data.min_agreement)"]
        );
    }

    #[test]
    fn data_can_disable_an_action_by_name() {
        let mut source = builtin().into_iter().find(|s| s.package == "tools.call").unwrap();
        source.data = Some(r#"{"disabled_actions": ["holochain.install_dna"]}"#.into());
        let tools = CompiledPolicy::compile(source).unwrap();
        let verdict = tools.evaluate(&json!({"action": "holochain.install_dna"})).unwrap();
        assert_eq!(
            verdict.reasons,
            vec!["holochain.install_dna is disabled on this network (tools.call: data.disabled_actions)"]
        );
        assert!(tools.evaluate(&json!({"action": "holochain.query_peers"})).unwrap().allowed);
    }
}
