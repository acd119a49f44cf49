//! Bad input never panics and never writes: each case exits 2 with a message naming the problem,
//! and the data dir is not created.
use super::harness::*;

struct Case {
    what: &'static str,
    args: Vec<String>,
    expect: Vec<&'static str>,
}

fn check(data: &std::path::Path, case: Case) {
    let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    let (code, _out, err) = ripple(&args);
    assert_eq!(code, 2, "{}: exit code {code}, stderr:\n{err}", case.what);
    assert!(!err.contains("panicked"), "{}: panicked:\n{err}", case.what);
    for needle in case.expect {
        assert!(err.contains(needle), "{}: stderr lacks {needle:?}:\n{err}", case.what);
    }
    assert!(!data.exists(), "{}: wrote {}", case.what, data.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_a_clear_error_that_writes_nothing() {
    let tmp = TempDir::new("bad-input");
    let manifests = test_manifests(&tmp.path().join("manifests")).await;
    let data = tmp.path().join("data");
    // A well-formed agent key (the bad-input cases never get as far as using it).
    let admin = holochain::prelude::AgentPubKey::from_raw_32(vec![7; 32]).to_string();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--data".into(),
            data.display().to_string(),
            "--manifests".into(),
            manifests.root.display().to_string(),
            "up".into(),
            "--api".into(),
            "127.0.0.1:0".into(),
            "--happ".into(),
            happ().display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    check(
        &data,
        Case {
            what: "unknown network",
            args: base(&["--network", "moonnet"]),
            expect: vec!["unknown network `moonnet`", "e2e, local, mainnet, testnet"],
        },
    );

    // Pins that do not match the bundle: the message names the role and how to fix it.
    let wrong = tmp.path().join("wrong-pins");
    let wrong_manifests = test_manifests(&wrong).await;
    let pins_path = wrong_manifests.pins_path();
    let mut pins: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&pins_path).unwrap()).unwrap();
    pins["networks"]["e2e"]["dnas"]["agent_registry"] = "uhC0kAAAAnotthehashAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into();
    std::fs::write(&pins_path, pins.to_string()).unwrap();
    let mut args = base(&["--network", "e2e"]);
    args[3] = wrong_manifests.root.display().to_string();
    check(
        &data,
        Case {
            what: "wrong hash pins",
            args,
            expect: vec![
                "does not match the DNA hashes pinned for network `e2e`",
                "role `agent_registry`",
                "cargo xtask build",
            ],
        },
    );

    check(
        &data,
        Case {
            what: "unreachable bootstrap",
            args: base(&["--network", "e2e", "--bootstrap", "http://127.0.0.1:9", "--policy-admin", &admin]),
            expect: vec!["bootstrap server http://127.0.0.1:9/ is unreachable"],
        },
    );
    check(
        &data,
        Case {
            what: "first join of a creator-administered network without its admin",
            args: base(&["--network", "e2e", "--bootstrap", "http://127.0.0.1:9"]),
            expect: vec!["network `e2e` is administered by the node that created it", "--policy-admin KEY"],
        },
    );
    check(
        &data,
        Case {
            what: "policy admin that is not an agent key",
            args: base(&["--network", "e2e", "--policy-admin", "uhCAkshort"]),
            expect: vec!["--policy-admin: `uhCAkshort` is not an agent key"],
        },
    );

    let mut args = base(&["--network", "e2e"]);
    args[8] = tmp.path().join("nowhere/ripple.happ").display().to_string();
    check(
        &data,
        Case { what: "missing bundle", args, expect: vec!["nowhere/ripple.happ not found", "cargo xtask build"] },
    );

    let config = tmp.path().join("broken.toml");
    std::fs::write(&config, "network = \"e2e\"\n[node\nagent_name = 3\n").unwrap();
    let mut args = vec!["--config".to_string(), config.display().to_string()];
    args.extend(base(&[]));
    check(&data, Case { what: "corrupt config", args, expect: vec!["broken.toml is not valid"] });

    std::fs::write(&config, "network = \"e2e\"\nheartbeat = 5\n").unwrap();
    let mut args = vec!["--config".to_string(), config.display().to_string()];
    args.extend(base(&[]));
    check(&data, Case { what: "unknown config key", args, expect: vec!["unknown field `heartbeat`"] });

    check(
        &data,
        Case {
            what: "remote admin websocket",
            args: base(&["--network", "e2e", "--admin-url", "ws://10.1.2.3:4444"]),
            expect: vec!["only attaches to one on loopback"],
        },
    );

    check(
        &data,
        Case {
            what: "invalid node name",
            args: base(&["--network", "e2e", "--agent-name", "no spaces please"]),
            expect: vec!["agent_name `no spaces please`"],
        },
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let mut args = base(&["--network", "e2e"]);
    args[6] = busy_addr.clone();
    check(&data, Case { what: "API port in use", args, expect: vec!["cannot serve the HTTP API on"] });

    let create = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> =
            vec!["--data".into(), data.display().to_string(), "network".into(), "create".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    for (what, args, expect) in [
        (
            "a shipped network that is not live",
            base(&["--network", "testnet"]),
            "network `testnet` cannot be run yet: its bootstrap and relay hosts",
        ),
        (
            "a network file that is not there",
            base(&["--network", "./nowhere/lab.json"]),
            "cannot read ./nowhere/lab.json",
        ),
        (
            "an invitation to a shipped network",
            base(&["--network", "e2e", "--invite", "invitation.json"]),
            "--invite admits this node to a created network",
        ),
        ("a network name with capitals", create(&["Lab", "--listen", "127.0.0.1:7790"]), "network name `Lab` must be"),
        ("every interface without a URL", create(&["lab", "--listen", "0.0.0.0:7790"]), "--advertise http://HOST:7790"),
        ("a random port", create(&["lab", "--listen", "127.0.0.1:0"]), "--listen needs a fixed port"),
    ] {
        check(&data, Case { what, args, expect: vec![expect] });
    }

    // A data dir that joined a mesh refuses a start that contradicts it, before writing anything.
    let joined_dir = tmp.path().join("joined");
    std::fs::create_dir_all(&joined_dir).unwrap();
    let joined_file = joined_dir.join("joined.json");
    let joined_text = r#"{"network":"e2e","bootstrap":"http://127.0.0.1:9/"}"#;
    std::fs::write(&joined_file, joined_text).unwrap();
    let on_joined = |extra: &[&str]| -> Vec<String> {
        let mut args = base(extra);
        args[1] = joined_dir.display().to_string();
        args
    };
    // The first node keeps the address it served on; one that is taken now is named as such.
    let served_dir = tmp.path().join("served");
    std::fs::create_dir_all(&served_dir).unwrap();
    std::fs::write(served_dir.join("joined.json"), format!(r#"{{"network":"e2e","serves_bootstrap":"{busy_addr}"}}"#))
        .unwrap();
    let mut on_served = base(&[]);
    on_served[1] = served_dir.display().to_string();
    for (what, args, expect) in [
        (
            "another bootstrap than the one joined",
            on_joined(&["--bootstrap", "http://127.0.0.1:10"]),
            vec![
                "--bootstrap http://127.0.0.1:10/ contradicts what this data dir joined",
                "joined through bootstrap http://127.0.0.1:9/",
                "joined.json",
            ],
        ),
        ("another network than the one joined", on_joined(&["--network", "local"]), vec!["belongs to network `e2e`"]),
        (
            "the kept bootstrap address is taken",
            on_served,
            vec!["cannot start ripple-local's bootstrap server on", "the address this node served before"],
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = ripple(&args);
        assert_eq!(code, 2, "{what}: exit code {code}, stderr:\n{err}");
        for needle in expect {
            assert!(err.contains(needle), "{what}: stderr lacks {needle:?}:\n{err}");
        }
    }
    for dir in [&joined_dir, &served_dir] {
        let left: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["joined.json"], "{} holds only its record", dir.display());
    }
    assert_eq!(std::fs::read_to_string(&joined_file).unwrap(), joined_text, "the record is unchanged");
    drop(busy);

    // No node running: status says so, with its own exit code.
    let (code, _, err) = ripple(&["--data", &data.display().to_string(), "status"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no node is running") && err.contains("ripple up"), "{err}");
    assert!(!data.exists());
}
