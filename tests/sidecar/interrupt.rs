//! Ctrl-C while the first start installs the hApp: the node stops cleanly with exit code 130, and
//! the next start on the same data dir carries on; after a crash, it serves its bootstrap at the
//! same URL again.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_first_start_stops_cleanly_and_the_next_start_carries_on() {
    let tmp = TempDir::new("interrupt");
    let manifests = test_manifests(&tmp.path().join("manifests")).await;
    let data = tmp.path().join("data");
    let log = tmp.path().join("first.log");
    let mut child = Command::new(ripple_bin())
        .arg("--data")
        .arg(&data)
        .arg("--manifests")
        .arg(&manifests.root)
        .args(["up", "--network", "e2e", "--api", "127.0.0.1:0", "--happ"])
        .arg(happ())
        .env_remove("RIPPLE_PASSPHRASE")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn ripple");

    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("installing the ripple hApp") {
        assert!(
            Instant::now() < deadline,
            "never reached the install step:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "exited early:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted while starting") && stderr.contains("stopping the conductor"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!data.join("ripple.run.json").exists());

    let launch = |name: &str| Launch {
        name: name.into(),
        data: data.clone(),
        manifests: manifests.root.clone(),
        network: "e2e".into(),
        extra: vec![],
        env: vec![],
        host: None,
    };
    let node = Sidecar::start(launch("after-interrupt"));
    assert!(node.status().await.node.advert.is_some());
    // The first node serves ripple-local's bootstrap+relay on a port picked at its first start and
    // keeps it: after a crash, the next plain `ripple up` serves the URL the other nodes joined.
    let url = node.ready.status.diagnostics.bootstrap_url.clone().expect("the bootstrap URL it serves");
    let joined: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("joined.json")).unwrap()).unwrap();
    assert_eq!(format!("http://{}/", joined["serves_bootstrap"].as_str().unwrap()), url, "{joined}");
    node.kill_hard();
    let node = Sidecar::start(launch("after-crash"));
    assert_eq!(node.ready.status.diagnostics.bootstrap_url.as_deref(), Some(url.as_str()), "the same bootstrap URL");
    assert!(node.terminate().success());
}
