//! `ripple init` and `ripple bootstrap serve`, without a conductor.
use std::time::Duration;

use super::harness::*;

#[test]
fn init_writes_a_commented_config_that_up_reads_and_never_overwrites_it() {
    let tmp = TempDir::new("init");
    let data = tmp.path().join("data");
    let data_arg = data.display().to_string();
    let manifests = crate::support::repo_root().join("manifests").display().to_string();
    let base = ["--data", data_arg.as_str(), "--manifests", manifests.as_str()];

    let (code, out, err) =
        ripple(&[&base[..], &["init", "--network", "testnet", "--agent-name", "gpu-box-01"]].concat());
    assert_eq!(code, 0, "{err}");
    let config = data.join("ripple.toml");
    assert!(out.contains(&config.display().to_string()), "{out}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("network = \"testnet\"") && text.contains("agent_name = \"gpu-box-01\""), "{text}");
    assert!(text.contains("# heartbeat_secs = 3000"), "defaults are written out, commented");
    let parsed = ripple::config::ConfigFile::load(&config, true).expect("the template parses");
    assert_eq!(parsed.network.as_deref(), Some("testnet"));
    assert_eq!(parsed.node.agent_name.as_deref(), Some("gpu-box-01"));

    let (code, _, err) = ripple(&[&base[..], &["init"]].concat());
    assert_eq!(code, 2, "a second init refuses: {err}");
    assert!(err.contains("already exists") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text, "untouched");

    let (code, _, err) = ripple(&[&base[..], &["init", "--force", "--network", "nosuchnet"]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown network `nosuchnet`"), "{err}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text, "untouched");

    let (code, out, _) = ripple(&["--help"]);
    assert_eq!(code, 0);
    for command in ["init", "up", "status", "peers", "advert"] {
        assert!(out.contains(command), "--help lists {command}:\n{out}");
    }
}

/// `ripple bootstrap serve`: a network's bootstrap+relay on its own. It says where to join, a node
/// checking that URL finds it healthy, bad input is refused before anything listens, and SIGTERM
/// stops it cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_serve_listens_until_sigterm_and_refuses_bad_input() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let mut child = Command::new(ripple_bin())
        .args(["--json", "bootstrap", "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run ripple bootstrap serve");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let serving: serde_json::Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first:?}"));
    let url = serving["bootstrap_url"].as_str().expect("a loopback listen address is a URL to join with");
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "{serving}");
    let health = url::Url::parse(url).unwrap();
    ripple::bootstrap::probe(&health, Duration::from_secs(5)).await.expect("its /health answers");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success(), "SIGTERM stops it with status 0");
    ripple::bootstrap::probe(&health, Duration::from_secs(2)).await.expect_err("and it no longer answers");

    let (code, _, err) = ripple(&["bootstrap", "serve", "--listen", "not-an-address"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = ripple(&["bootstrap", "serve", "--listen", "127.0.0.1:0", "--tls-cert", "/nonexistent.pem"]);
    assert_eq!(code, 2, "--tls-cert needs --tls-key: {err}");
    let (code, _, err) = ripple(&[
        "bootstrap",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        "/no/cert.pem",
        "--tls-key",
        "/no/key.pem",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--tls-cert /no/cert.pem: no such file"), "{err}");
}
