//! `ripple init`, `ripple up` and `ripple compile-zomes`: resolving flags, environment and
//! `ripple.toml` into the settings a node starts with, and starting it.
use super::*;

pub(super) fn init(cli: &Cli, args: &InitArgs, path: &Path) -> anyhow::Result<()> {
    let manifests = Manifests::new(manifests_dir(cli.manifests.as_deref()));
    manifests.network(&args.network)?;
    let name = args.agent_name.clone().unwrap_or_else(config::default_agent_name);
    config::check_agent_name(&name)?;
    config::write_init(path, &config::init_template(&args.network, &name), args.force)?;
    print(cli.json, &serde_json::json!({ "config": path }), |_| format!("wrote {}\n", path.display()))
}

/// Resolves `ripple up`'s settings: flag, then environment (clap), then ripple.toml, then default.
pub fn resolve_up(
    args: &UpArgs,
    file: &ConfigFile,
    data_dir: &Path,
    manifests: PathBuf,
    zome_cache: Option<PathBuf>,
) -> Result<UpSettings, anyhow::Error> {
    let manifests = Manifests::new(manifests);
    let (network, record) = resolve_network(args.network.clone().or(file.network.clone()), data_dir, &manifests)?;
    if args.invite.is_some() && record.is_none() {
        return Err(ConfigError::Setting(
            "--invite admits this node to a created network: pass its network file with --network FILE".into(),
        )
        .into());
    }

    let admin_url = args.admin_url.clone().or(file.admin_url.clone());
    let conductor = match admin_url {
        Some(url) => {
            let url = config::parse_url("--admin-url", &url, &["ws"])?;
            let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
            if !loopback {
                return Err(ConfigError::Setting(format!(
                    "--admin-url {url}: the admin websocket is unauthenticated, so ripple only attaches to one on loopback"
                ))
                .into());
            }
            ConductorChoice::Attach { admin_url: url }
        }
        None => ConductorChoice::Embedded {
            passphrase_file: args.passphrase_file.clone().or(file.passphrase_file.clone()),
            passphrase_env: std::env::var(crate::conductor::PASSPHRASE_ENV).ok(),
        },
    };
    let bootstrap = args
        .bootstrap
        .clone()
        .or(file.bootstrap.clone())
        .map(|u| config::parse_url("--bootstrap", &u, &["http", "https"]))
        .transpose()?;
    let policy_admin = args
        .policy_admin
        .clone()
        .or(file.policy_admin.clone())
        .map(|key| config::parse_agent_key("--policy-admin", &key))
        .transpose()?;
    let api_listen = args.api.or(file.api_listen).unwrap_or_else(|| parse_addr(DEFAULT_API_LISTEN));
    if !api_listen.ip().is_loopback() {
        return Err(ConfigError::Setting(format!("--api {api_listen}: the HTTP API serves on loopback only")).into());
    }

    let node = &file.node;
    let agent_name = args.agent_name.clone().or(node.agent_name.clone()).unwrap_or_else(config::default_agent_name);
    config::check_agent_name(&agent_name)?;
    let optional_url =
        |flag: &str, value: Option<String>| value.map(|v| config::parse_url(flag, &v, &["http", "https"])).transpose();
    let sources = ProbeSources {
        localai_url: optional_url("localai_url", args.localai_url.clone().or(node.localai_url.clone()))?,
        ipfs_api_url: optional_url("ipfs_api_url", args.ipfs_api_url.clone().or(node.ipfs_api_url.clone()))?,
    };
    let region = args.region.clone().or(node.region.clone()).unwrap_or_default();
    let region_ok = region.is_empty()
        || (region.len() <= agent_registry_types::LABEL_MAX
            && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c)));
    if !region_ok {
        return Err(ConfigError::Setting(format!("region `{region}` must be up to 32 characters of [a-z0-9_-]")).into());
    }
    let advert_refresh_secs = node.advert_refresh_secs.unwrap_or(60);
    if advert_refresh_secs == 0 {
        return Err(ConfigError::Setting("advert_refresh_secs must be at least 1".into()).into());
    }
    let view = view_settings(args.view_catch_up_secs.or(node.view_catch_up_secs), args.no_view_signals, node)?;

    Ok(UpSettings {
        data_dir: data_dir.into(),
        network,
        conductor,
        bootstrap,
        policy_admin,
        bootstrap_listen: args.bootstrap_listen.or(file.bootstrap_listen),
        happ: args.happ.clone().or(file.happ.clone()).unwrap_or_else(default_happ),
        zome_cache: ZomeCache::new(zome_cache),
        api_listen,
        provide: !args.no_provide && file.node.provide.unwrap_or(true),
        record,
        invite: args.invite.clone(),
        peer: peer_listen(args.peer_listen.or(file.peer_listen), args.peer_url.clone().or(file.peer_url.clone()))?,
        node: NodeSettings {
            data_dir: data_dir.into(),
            agent_name,
            hardware_class: node.hardware_class,
            region,
            bandwidth_mbps: node.bandwidth_mbps.unwrap_or(1000),
            heartbeat_secs: args.heartbeat_secs.or(node.heartbeat_secs),
            advert_refresh: Duration::from_secs(advert_refresh_secs.into()),
            sources,
            peer_endpoint: None,
            max_batch_size: node.max_batch_size.unwrap_or(1),
            tokens_per_second: node.tokens_per_second.unwrap_or(0),
            vector_shards: args.vector_shards.or(node.vector_shards).unwrap_or(0),
            redis_memory_gb: node.redis_memory_gb.unwrap_or(0),
            s3_available_gb: node.s3_available_gb.unwrap_or(0),
            view,
        },
        manifests,
    })
}

/// `--peer-listen` and the URL it is reached at.
pub(super) fn peer_listen(listen: Option<SocketAddr>, url: Option<String>) -> Result<Option<PeerListen>, ConfigError> {
    let Some(listen) = listen else {
        return match url {
            Some(_) => Err(ConfigError::Setting("--peer-url is where --peer-listen is reached: give both".into())),
            None => Ok(None),
        };
    };
    let url = advertised_url(("--peer-listen", listen), ("--peer-url", url.as_deref()))?;
    Ok(Some(PeerListen { listen, url }))
}

/// The URL other nodes reach a listener at: `url` if given, else `http://LISTEN`, which needs a
/// concrete address. Either way a fixed port, since other nodes keep the URL.
pub(super) fn advertised_url(
    (listen_flag, listen): (&str, SocketAddr),
    (url_flag, url): (&str, Option<&str>),
) -> Result<url::Url, ConfigError> {
    if listen.port() == 0 {
        return Err(ConfigError::Setting(format!(
            "{listen_flag} needs a fixed port: other nodes keep the URL it is reached at ({listen})"
        )));
    }
    match url {
        Some(url) => config::parse_url(url_flag, url, &["http", "https"]),
        None if listen.ip().is_unspecified() => Err(ConfigError::Setting(format!(
            "{listen_flag} {listen} is every interface: say which URL other nodes use with {url_flag} http://HOST:{}",
            listen.port()
        ))),
        None => config::parse_url(listen_flag, &format!("http://{listen}"), &["http"]),
    }
}

/// The network `up` runs: the data dir's created network if it has one (a `--network` that names
/// another is refused: one network per data dir), a network file, or an entry of networks.json
/// (by default the one this data dir joined, else local).
pub(super) fn resolve_network(
    wanted: Option<String>,
    data_dir: &Path,
    manifests: &Manifests,
) -> anyhow::Result<(crate::manifests::Network, Option<crate::networks::NetworkRecord>)> {
    use crate::networks::{is_file_argument, NetworkError, NetworkFile, NetworkRecord};
    let record = NetworkRecord::load(data_dir)?;
    let from_file = |value: &str| NetworkFile::load(Path::new(value));
    match (wanted, record) {
        (None, Some(record)) => Ok((record.network(), Some(record))),
        (Some(wanted), Some(record)) => {
            let same = if is_file_argument(&wanted) {
                from_file(&wanted)?.network.network_seed == record.network.network_seed
            } else {
                wanted == record.name
            };
            if !same {
                let path = NetworkRecord::path(data_dir);
                return Err(NetworkError::OtherNetwork { have: record.name, want: wanted, record: path }.into());
            }
            Ok((record.network(), Some(record)))
        }
        (Some(wanted), None) if is_file_argument(&wanted) => {
            let file = from_file(&wanted)?;
            let record = NetworkRecord {
                name: file.name.clone(),
                network: file.network.clone(),
                agent_key: None,
                invitation: None,
                serve_bootstrap: None,
            };
            Ok((file.network(), Some(record)))
        }
        (wanted, None) => {
            // A plain `ripple up` rejoins what this data dir joined (`JoinedRecord`); the runtime
            // refuses a network or bootstrap that contradicts it.
            let joined = crate::networks::JoinedRecord::load(data_dir)?.map(|j| j.network);
            Ok((manifests.network(wanted.or(joined).as_deref().unwrap_or("local"))?, None))
        }
    }
}

pub(super) fn mcp_http(args: &UpArgs) -> Result<Option<McpHttp>, ConfigError> {
    let Some(listen) = args.mcp_http else { return Ok(None) };
    if !listen.ip().is_loopback() {
        return Err(ConfigError::Setting(format!(
            "--mcp-http {listen}: the MCP tools control this node and are unauthenticated, so they serve on loopback only"
        )));
    }
    Ok(Some(McpHttp { listen, names: args.tool_names }))
}

/// The mesh view's read cadence: at least a second, and well inside the slow full read.
pub(super) fn view_settings(
    catch_up_secs: Option<u32>,
    no_signals: bool,
    node: &crate::config::NodeConfig,
) -> Result<ViewSettings, ConfigError> {
    let defaults = ViewSettings::default();
    let catch_up = match catch_up_secs {
        None => defaults.catch_up,
        Some(secs) if secs == 0 || u64::from(secs) >= defaults.reconcile.as_secs() => {
            return Err(ConfigError::Setting(format!(
                "view_catch_up_secs = {secs}: must be from 1 to {} (the full read's interval)",
                defaults.reconcile.as_secs() - 1
            )));
        }
        Some(secs) => Duration::from_secs(secs.into()),
    };
    Ok(ViewSettings { catch_up, signals: !no_signals && node.view_signals.unwrap_or(true), ..defaults })
}

pub(super) fn parse_addr(text: &str) -> SocketAddr {
    text.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// `./manifests` when run from a checkout, else the checkout this binary was built from.
pub(super) fn manifests_dir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf).unwrap_or_else(|| from_checkout("manifests", "manifests/holochain/networks.json"))
}

pub(super) fn default_happ() -> PathBuf {
    from_checkout("workdir/ripple.happ", "workdir/ripple.happ")
}

pub(super) fn from_checkout(relative: &str, marker: &str) -> PathBuf {
    if Path::new(marker).exists() {
        return PathBuf::from(relative);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

pub(super) async fn run_up(settings: UpSettings, mcp: Option<McpHttp>, json: bool) -> anyhow::Result<()> {
    let progress = |line: &str| eprintln!("==> {line}");
    let ready = |r: &Ready| {
        if json {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        } else {
            if let Some(note) = &r.passphrase_note {
                eprintln!("==> {note}");
            }
            print!("{}", render_status(&r.status));
            println!("api          {}", r.api_url);
            if let Some(url) = &r.mcp_url {
                println!("mcp          {url}");
            }
            if r.status.diagnostics.serving_bootstrap {
                if let Some(url) = &r.status.diagnostics.bootstrap_url {
                    let admin =
                        r.status.policy_admin.as_ref().map(|k| format!(" --policy-admin {k}")).unwrap_or_default();
                    println!("join with    ripple up --network {} --bootstrap {url}{admin}", r.status.network);
                }
            }
            println!("ready; Ctrl-C stops the node");
        }
    };
    up::run(settings, mcp, &progress, &ready).await?;
    eprintln!("==> stopped");
    Ok(())
}

pub(super) async fn compile_zomes(happ: PathBuf, cache: ZomeCache) -> anyhow::Result<CompileZomesReport> {
    let started = std::time::Instant::now();
    let bytes =
        std::fs::read(&happ).map_err(|e| ConfigError::Setting(format!("cannot read {}: {e}", happ.display())))?;
    let zomes = bundle_zomes(&bytes).await?;
    let worker = cache.clone();
    let zomes_to_compile = zomes.clone();
    let compiled = tokio::task::spawn_blocking(move || {
        worker.compile_missing(&zomes_to_compile, &|line: &str| eprintln!("==> {line}"))
    })
    .await??;
    Ok(CompileZomesReport {
        cache_dir: cache.dir().to_path_buf(),
        happ,
        zomes: zomes
            .iter()
            .map(|z| CompiledZome {
                name: z.name.clone(),
                wasm_hash: z.hash.to_string(),
                compiled_now: compiled.contains(&z.name),
            })
            .collect(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

pub(super) fn render_compile_zomes(r: &CompileZomesReport) -> String {
    let compiled = r.zomes.iter().filter(|z| z.compiled_now).count();
    format!(
        "compiled {compiled} zomes and found {} already compiled in {} ({:.1} s)\n",
        r.zomes.len() - compiled,
        r.cache_dir.display(),
        r.seconds
    )
}
