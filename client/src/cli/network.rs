//! `ripple network …` and `ripple bootstrap serve`: creating, inviting to and serving networks.
use super::*;

pub(super) async fn network(
    cli: &Cli,
    command: &NetworkCommand,
    data_dir: &Path,
    config_path: &Path,
) -> anyhow::Result<()> {
    use crate::networks::{self, Hosting, NetworkRecord};
    match command {
        NetworkCommand::Create(args) => {
            let file = ConfigFile::load(config_path, cli.config.is_some())?;
            let hosting = match (&args.listen, &args.bootstrap) {
                (Some(listen), _) => {
                    let url = advertised_url(("--listen", *listen), ("--advertise", args.advertise.as_deref()))?;
                    Hosting::Serve { listen: *listen, url }
                }
                (None, Some(bootstrap)) => {
                    let bootstrap = config::parse_url("--bootstrap", bootstrap, &["http", "https"])?;
                    let relay = match &args.relay {
                        Some(relay) => config::parse_url("--relay", relay, &["http", "https"])?,
                        None => bootstrap.clone(),
                    };
                    Hosting::Existing { bootstrap, relay }
                }
                (None, None) => unreachable!("clap requires --listen or --bootstrap"),
            };
            let request = networks::CreateRequest {
                name: args.name.clone(),
                data_dir: data_dir.into(),
                manifests: Manifests::new(manifests_dir(cli.manifests.as_deref())),
                happ: args.happ.clone().or(file.happ.clone()).unwrap_or_else(default_happ),
                zome_cache: ZomeCache::new(cli.zome_cache.clone()),
                passphrase_file: args.passphrase_file.clone().or(file.passphrase_file.clone()),
                hosting,
                heartbeat_bucket_secs: args.heartbeat_bucket,
                out: args.out.clone().unwrap_or_else(|| PathBuf::from(format!("{}.network.json", args.name))),
                force: args.force,
            };
            let created = networks::create(request, &|line| eprintln!("==> {line}")).await?;
            print(cli.json, &created, render_created)
        }
        NetworkCommand::Invite(args) => {
            let key = config::parse_agent_key("AGENT_KEY", &args.agent_key)?;
            let out = args.out.clone().unwrap_or_else(|| {
                PathBuf::from(format!(
                    "invitation-{}.json",
                    key.to_string().chars().skip(5).take(12).collect::<String>()
                ))
            });
            let body = crate::api::InviteBody { invitee: key.to_string() };
            let invitation: networks::InvitationFile = api_json(data_dir, "network/invitations", &body).await?;
            networks::write_json(&out, &invitation)?;
            let report =
                serde_json::json!({ "invitation": out, "network": invitation.network, "invitee": invitation.invitee });
            print(cli.json, &report, |_| {
                format!(
                    "wrote {}: it admits {} to network `{}`.\nOn that node: ripple up --network NETWORK_FILE --invite {}\n",
                    out.display(),
                    invitation.invitee,
                    invitation.network,
                    out.display()
                )
            })
        }
        NetworkCommand::Show { out } => {
            let record = NetworkRecord::load(data_dir)?.ok_or_else(|| {
                ConfigError::Setting(format!(
                    "{} belongs to no created network (no {}): it runs a network from networks.json, or none yet",
                    data_dir.display(),
                    networks::RECORD_FILE
                ))
            })?;
            if let Some(out) = out {
                networks::write_json(out, &record.network_file())?;
                eprintln!("==> wrote {}", out.display());
            }
            print(cli.json, &record, render_record)
        }
    }
}

pub(super) fn render_created(c: &crate::networks::Created) -> String {
    let serving = match c.serving_bootstrap {
        Some(addr) => format!("this node serves its bootstrap+relay on {addr} ({}) while it runs", c.bootstrap_url),
        None => format!("bootstrap {} relay {}", c.bootstrap_url, c.relay_url),
    };
    format!(
        "created network `{}` (seed {})\n  admin: {} (this node)\n  {serving}\n  network file: {}\n\n\
         Next: `ripple up` runs this node. Another node joins with `ripple up --network {}`, which prints its key;\n\
         invite it here with `ripple network invite KEY` and start it again with `--invite FILE`.\n",
        c.network,
        c.network_seed,
        c.admin,
        c.network_file.display(),
        c.network_file.display()
    )
}

pub(super) fn render_record(r: &crate::networks::NetworkRecord) -> String {
    let mut out = format!("network `{}` (seed {})\n", r.name, r.network.network_seed);
    let admission = if r.network.admins.is_empty() { "open".to_string() } else { r.network.admins.join(", ") };
    out += &format!("  admins: {admission}\n");
    out += &format!("  bootstrap: {}\n", r.network.bootstrap_url.as_deref().unwrap_or("-"));
    if let Some(addr) = r.serve_bootstrap {
        out += &format!("  served by this node on {addr}\n");
    }
    out += &format!("  this node: {}\n", r.agent_key.as_deref().unwrap_or("no key yet (start it once)"));
    let invited = match (&r.invitation, &r.agent_key) {
        (Some(i), _) => format!("invited by {}", i.admin),
        (None, Some(key)) if r.network.admins.contains(key) => "an admin".into(),
        _ => "not invited yet".into(),
    };
    out += &format!("  admission: {invited}\n");
    out
}

pub(super) async fn bootstrap_serve(json: bool, args: &BootstrapServeArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut signals = Signals::register()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            for (flag, file) in [("--tls-cert", cert), ("--tls-key", key)] {
                if !file.is_file() {
                    return Err(ConfigError::Setting(format!("{flag} {}: no such file", file.display())).into());
                }
            }
            Some(crate::bootstrap::Tls { cert: cert.clone(), key: key.clone() })
        }
        _ => None,
    };
    let server = crate::bootstrap::LocalBootstrap::start_public(args.listen, tls)
        .await
        .with_context(|| format!("cannot serve bootstrap+relay on {}", args.listen))?;
    let listen = SocketAddr::new(args.listen.ip(), server.url.port().unwrap_or_default());
    let serving = BootstrapServing {
        listen,
        bootstrap_url: (!args.listen.ip().is_unspecified())
            .then(|| server.url.to_string().trim_end_matches('/').to_string()),
    };
    if json {
        println!("{}", serde_json::to_string(&serving)?);
    } else {
        let scheme = server.url.scheme();
        let join = serving
            .bootstrap_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://<an address of this machine>:{}", listen.port()));
        println!("serving bootstrap+relay on {listen}; nodes join with  --bootstrap {join}\n(Ctrl-C stops it)");
    }
    signals.recv().await;
    drop(server);
    if !json {
        println!("stopped");
    }
    Ok(())
}
