//! The committed manifests are what Holochain 0.7.1 accepts, and the pins hold for real installs.
use std::collections::BTreeMap;

use holochain::conductor::config::ConductorConfig;
use holochain::prelude::*;
use holochain::sweettest::*;

use crate::support::*;

#[test]
fn conductor_template_parses_as_a_holochain_0_7_config() {
    let template = std::fs::read_to_string(repo_root().join("manifests/holochain/conductor.yaml")).unwrap();
    let filled = template
        .replace("${RIPPLE_DATA}", "/var/lib/ripple")
        .replace("${RIPPLE_ADMIN_PORT}", "4444")
        .replace("${HOLOCHAIN_BOOTSTRAP_URL}", "http://127.0.0.1:30000")
        .replace("${HOLOCHAIN_RELAY_URL}", "http://127.0.0.1:30000");
    let unfilled: Vec<&str> =
        filled.lines().filter(|l| l.split('#').next().is_some_and(|yaml| yaml.contains("${"))).collect();
    assert!(unfilled.is_empty(), "template variables this test does not fill: {unfilled:?}");
    let config: ConductorConfig =
        yaml_serde::from_str(&filled).expect("Holochain 0.7.1 rejects manifests/holochain/conductor.yaml");
    assert_eq!(config.admin_interfaces.as_ref().map(Vec::len), Some(1));
    let network = config.network;
    assert_eq!(network.bootstrap_url.as_str(), "http://127.0.0.1:30000/");
    assert_eq!(network.relay_url.as_str(), "http://127.0.0.1:30000/");
}

#[tokio::test(flavor = "multi_thread")]
async fn installing_ripple_happ_on_ripple_local_gives_the_pinned_dna_hashes() {
    let pins: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("manifests/holochain/dnas/index.json")).unwrap(),
    )
    .unwrap();
    let pinned: BTreeMap<String, String> =
        serde_json::from_value(pins["networks"]["local"]["dnas"].clone()).expect("pins for ripple-local");
    assert_eq!(
        pinned.keys().map(String::as_str).collect::<Vec<_>>(),
        ["agent_registry", "artifact_index", "memory_shards", "policy_store", "resource_mesh"]
    );
    // Installed without a policy admin, policy_store hashes as its pin (the template the sidecar
    // checks the wasm against); with the creator's key it differs, which sidecar::mesh covers.

    let conductor = SweetConductor::standard().await;
    let app = conductor
        .raw_handle()
        .install_app_bundle(InstallAppPayload {
            source: AppBundleSource::Path(workdir().join("ripple.happ")),
            agent_key: None,
            installed_app_id: Some("ripple".into()),
            network_seed: Some("ripple-local".into()),
            roles_settings: None,
            ignore_genesis_failure: false,
            restore_from_dht: false,
        })
        .await
        .expect("install workdir/ripple.happ");
    let mut installed: Vec<String> = app.all_cells().map(|cell_id| cell_id.dna_hash().to_string()).collect();
    let mut expected: Vec<String> = pinned.into_values().collect();
    installed.sort();
    expected.sort();
    assert_eq!(installed, expected);
}
