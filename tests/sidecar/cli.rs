//! `ripple init` and the config it writes, without a conductor.
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
    assert!(text.contains("# heartbeat_secs = 150"), "defaults are written out, commented");
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
