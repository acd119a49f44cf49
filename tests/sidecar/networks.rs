//! Networks operators create: `ripple network create` makes one with this node as admin,
//! `ripple network invite` admits a node by its key, and `ripple up --network FILE --invite FILE`
//! joins. A node without an invitation, or with someone else's, is refused before it installs.
//! Each node runs on its own test host (a network namespace with its own IP and loopback) where
//! this machine allows it, else all on this machine's loopback.
use std::time::Duration;

use super::harness::*;

/// A node's data dir and the host it runs on.
struct Node {
    data: std::path::PathBuf,
    host: Option<String>,
}

/// `ripple ARGS` for `node` with the test manifests: (exit code, stdout, stderr).
fn run(node: &Node, manifests: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut full = vec!["--data", node.data.to_str().unwrap(), "--manifests", manifests.to_str().unwrap(), "--json"];
    full.extend_from_slice(args);
    ripple_on(node.host.as_deref(), &full)
}

fn json(what: &str, (code, out, err): (i32, String, String)) -> serde_json::Value {
    assert_eq!(code, 0, "{what}: exit {code}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: {e}: {out}"))
}

/// The first start of a node on an invitation network without an invitation: refused (exit 2)
/// before it installs, with the key it must be invited by. Returns that key.
fn refused_first_start(data: &Node, manifests: &std::path::Path, file: &str) -> String {
    let happ = happ();
    let args = ["up", "--network", file, "--api", "127.0.0.1:0", "--happ", happ.to_str().unwrap()];
    let (code, _, err) = run(data, manifests, &args);
    assert_eq!(code, 2, "an uninvited node is bad input: {err}");
    assert!(err.contains("network `lab` admits only invited agents"), "{err}");
    let record = json("network show", run(data, manifests, &["network", "show"]));
    let key = record["agent_key"].as_str().expect("the key it was refused with is kept").to_string();
    assert!(err.contains(&format!("ripple network invite {key}")), "the refusal names the key to invite: {err}");
    assert!(record["invitation"].is_null());
    key
}

#[tokio::test(flavor = "multi_thread")]
async fn a_created_network_admits_only_the_nodes_its_admin_invites() {
    let tmp = TempDir::new("networks");
    let manifests = test_manifests(&tmp.path().join("manifests")).await;
    let m = manifests.root.clone();
    let file = tmp.path().join("lab.network.json");
    let file_arg = file.to_str().unwrap().to_string();
    let happ = happ();
    let lan = Lan::new(3).map_err(|why| eprintln!("no test hosts ({why}): every node runs on this machine's loopback"));
    let node = |i: usize, name: &str| Node {
        data: tmp.path().join(name),
        host: lan.as_ref().ok().map(|lan| lan.hosts[i].name.clone()),
    };
    let listen = match &lan {
        Ok(lan) => format!("{}:7790", lan.hosts[0].ip),
        Err(()) => format!("127.0.0.1:{}", free_port()),
    };

    // The admin creates the network: its key is generated, nothing is installed yet.
    let admin_data = node(0, "admin");
    let created = json(
        "network create",
        run(
            &admin_data,
            &m,
            &[
                "network",
                "create",
                "lab",
                "--listen",
                &listen,
                "--heartbeat-bucket",
                "6",
                "--out",
                &file_arg,
                "--happ",
                happ.to_str().unwrap(),
            ],
        ),
    );
    let admin_key = created["admin"].as_str().unwrap().to_string();
    let network: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(network["network"]["admins"], serde_json::json!([admin_key]));
    assert_eq!(network["network"]["bootstrap_url"], format!("http://{listen}/"));
    assert_eq!(network["network"]["dnas"].as_object().unwrap().len(), 5, "the file pins every role: {network}");
    for role in ["agent_registry", "resource_mesh", "policy_store", "artifact_index", "memory_shards"] {
        assert_eq!(network["network"]["dna_properties"][role]["network_admins"], serde_json::json!([admin_key]));
    }
    let again = run(&admin_data, &m, &["network", "create", "lab2", "--listen", &listen, "--out", "/dev/null"]);
    assert_eq!(again.0, 2, "one network per data dir: {}", again.2);
    assert!(again.2.contains("belongs to network `lab`"), "{}", again.2);

    // It runs with no flags but the shared harness's, serving the network's bootstrap+relay.
    let admin = Sidecar::start(Launch {
        host: admin_data.host.clone(),
        ..Launch::node(tmp.path(), &manifests, &file_arg, "admin", &[])
    });
    assert_eq!(admin.agent(), admin_key);
    assert!(admin.ready.status.diagnostics.serving_bootstrap);
    let exported = tmp.path().join("exported.json");
    run(&admin_data, &m, &["network", "show", "--out", exported.to_str().unwrap()]);
    assert_eq!(std::fs::read(&exported).unwrap(), std::fs::read(&file).unwrap(), "show --out writes the same file");

    // A member: refused first and told its key, invited, then joins and is seen.
    let member_data = node(1, "member");
    let member_key = refused_first_start(&member_data, &m, &file_arg);
    let invitation = tmp.path().join("member-invitation.json");
    let invited = json(
        "network invite",
        run(&admin_data, &m, &["network", "invite", &member_key, "--out", invitation.to_str().unwrap()]),
    );
    assert_eq!(invited["invitee"], member_key.as_str());

    // A stranger with the member's invitation: refused before it installs.
    let stranger_data = node(2, "stranger");
    let stranger_key = refused_first_start(&stranger_data, &m, &file_arg);
    let (code, _, err) = run(
        &stranger_data,
        &m,
        &[
            "up",
            "--network",
            &file_arg,
            "--invite",
            invitation.to_str().unwrap(),
            "--api",
            "127.0.0.1:0",
            "--happ",
            happ.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("it invites {member_key}, not this node ({stranger_key})")), "{err}");

    let invite_arg = invitation.to_str().unwrap();
    let member = Sidecar::start(Launch {
        host: member_data.host.clone(),
        ..Launch::node(tmp.path(), &manifests, &file_arg, "member", &["--invite", invite_arg])
    });
    assert_eq!(member.agent(), member_key);
    let record = json("network show", run(&member_data, &m, &["network", "show"]));
    assert_eq!(record["invitation"]["admin"], admin_key.as_str(), "the invitation is kept for restarts");
    // Each sees the other, across hosts: the bootstrap+relay on the admin's address carries them.
    for (from, to) in [(&admin_data, &member_key), (&member_data, &admin_key)] {
        eventually("a node sees the other's advert", Duration::from_secs(240), || async {
            let (code, out, err) = run(from, &m, &["peers"]);
            let peers: Vec<serde_json::Value> = serde_json::from_str(&out).map_err(|e| format!("{code} {e}: {err}"))?;
            let agents: Vec<&str> = peers.iter().filter_map(|p| p["agent_pubkey"].as_str()).collect();
            agents.contains(&to.as_str()).then_some(()).ok_or(format!("{agents:?}"))
        })
        .await;
    }

    // Only admins invite.
    let (code, _, err) = run(&member_data, &m, &["network", "invite", &stranger_key]);
    assert_ne!(code, 0);
    assert!(err.contains("is not an admin of network `lab`"), "{err}");
    drop((admin, member));
}
