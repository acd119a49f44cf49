//! `--admin-url`: the sidecar joins through a conductor someone else started (here sweettest's,
//! as `hc sandbox` would), using only its admin websocket.
use holochain::sweettest::SweetConductor;

use super::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_sidecar_attaches_to_a_running_conductor_and_installs_once() {
    let tmp = TempDir::new("attach");
    let manifests = test_manifests(&tmp.path().join("manifests")).await;
    let conductor = SweetConductor::standard().await;
    let port = conductor.get_arbitrary_admin_websocket_port().expect("admin port");
    let launch = || Launch {
        name: "attached".into(),
        data: tmp.path().join("data"),
        manifests: manifests.root.clone(),
        network: "e2e".into(),
        extra: vec!["--admin-url".into(), format!("ws://127.0.0.1:{port}")],
        env: vec![],
        host: None,
    };

    let node = Sidecar::start(launch());
    let status = node.status().await;
    assert_eq!(status.diagnostics.conductor, "attached");
    assert_eq!(status.diagnostics.admin_url, format!("ws://127.0.0.1:{port}/"));
    assert!(!status.diagnostics.serving_bootstrap);
    assert!(node.ready.installed_now);
    assert!(status.node.advert.is_some(), "the advert was published through the attached conductor");
    assert_eq!(status.node.heartbeats_sent, 1);
    assert!(!tmp.path().join("data/holochain").exists(), "attached: no embedded conductor data");
    assert!(!tmp.path().join("data/passphrase").exists(), "attached: the conductor owns its keystore");

    // The conductor now runs the app, with the DNA hash the e2e network pins.
    let apps = conductor.raw_handle().list_apps(None).await.expect("list apps");
    let app = apps.iter().find(|a| a.installed_app_id == "ripple").expect("ripple installed");
    assert_eq!(app.agent_pub_key.to_string(), node.agent());
    let me = node.agent().to_string();
    let peers = node.peers("").await;
    assert!(peers.iter().any(|p| p.agent_pubkey == me && p.is_self && p.state == "online"), "{peers:?}");

    // Ctrl-C and attach again: same app, same agent, nothing reinstalled.
    assert!(node.stop_with(libc::SIGINT).success(), "SIGINT is a clean stop");
    let again = Sidecar::start(launch());
    assert_eq!(again.agent(), me);
    assert!(!again.ready.installed_now);
}
