//! `ripple status`, `peers` and `advert`: this node and the mesh it sees, as tables.
use super::*;

pub fn render_status(s: &StatusReport) -> String {
    let d = &s.diagnostics;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<12} {v}\n"));
    line("network", format!("{} ({})", s.network, s.network_seed));
    line("agent", s.agent_pubkey.clone());
    if let Some(admin) = &s.policy_admin {
        let who = if *admin == s.agent_pubkey { " (this node)" } else { "" };
        line("policy admin", format!("{admin}{who}"));
    }
    line("mesh", format!("{} with {} peer(s)", serde_plain(&s.mesh_status), s.peer_count));
    for cell in &s.cell_ids {
        line("cell", format!("{} {}", cell.role, cell.dna_hash));
    }
    line("conductor", format!("{} at {}", d.conductor, d.admin_url));
    if let Some(url) = &d.bootstrap_url {
        let reach = match (d.bootstrap_reachable, &d.bootstrap_error) {
            (Some(true), _) => "reachable".to_string(),
            (_, Some(e)) => format!("UNREACHABLE: {e}"),
            _ => "unknown".into(),
        };
        let served = if d.serving_bootstrap { ", served by this node" } else { "" };
        line("bootstrap", format!("{url} ({reach}{served})"));
    }
    if let Some(relay) = &d.relay_url {
        line("relay", relay.clone());
    }
    match &d.gossip_error {
        Some(e) => line("gossip", format!("UNKNOWN: {e}")),
        None => line(
            "gossip",
            format!(
                "last {}, {} rounds, {} ops pending",
                ago(d.last_gossip_ms),
                d.completed_gossip_rounds,
                d.pending_fetch_ops
            ),
        ),
    }
    let n = &s.node;
    line(
        "heartbeat",
        format!(
            "every {} s (bucket {} s), last {}, {} sent ({} for load changes), {} failed",
            n.heartbeat_period_secs,
            n.heartbeat_bucket_secs,
            ago(n.last_heartbeat_ms),
            n.heartbeats_sent,
            n.load_band_beats,
            n.heartbeat_failures
        ),
    );
    let l = &s.liveness;
    line(
        "liveness",
        format!(
            "probing {} member(s) every {} ms: {} alive, {} suspect, {} dead; local health {}, {} msgs sent, {} received",
            l.members, l.period_ms, l.alive, l.suspect, l.dead, l.local_health, l.counters.messages_sent, l.counters.messages_received
        ),
    );
    if let Some(advert) = &n.advert {
        let a = &advert.advert;
        line(
            "advert",
            format!(
                "{} ({}), {} cores {}, {} GB RAM, {} GPU(s), {}",
                a.agent_name,
                serde_plain(&a.hardware_class),
                a.compute.cpu_cores,
                a.compute.cpu_arch,
                a.compute.ram_gb,
                a.compute.gpus.len(),
                serde_plain(&a.availability)
            ),
        );
    }
    if let Some(e) = &n.last_error {
        line("last error", e.clone());
    }
    for w in n.probe.iter().flat_map(|p| &p.warnings) {
        line("warning", w.clone());
    }
    out
}

pub(super) fn render_peers(peers: &Vec<PeerRow>) -> String {
    let mut rows =
        vec![["NAME", "STATE", "PROBE", "AGENT", "CLASS", "CPU", "RAM", "GPUS", "MODELS", "REGION", "LAST BEAT"]
            .map(String::from)
            .to_vec()];
    for p in peers {
        let a = &p.advert;
        let gpus =
            a.compute.gpus.iter().map(|g| format!("{} {} {}G", g.vendor, g.model, g.vram_gb)).collect::<Vec<_>>();
        rows.push(vec![
            format!("{}{}", a.agent_name, if p.is_self { " (self)" } else { "" }),
            p.state.clone(),
            p.liveness.map_or("-", |l| l.as_str()).to_string(),
            short(&p.agent_pubkey),
            serde_plain(&a.hardware_class),
            format!("{}x {}", a.compute.cpu_cores, a.compute.cpu_arch),
            format!("{} GB", a.compute.ram_gb),
            if gpus.is_empty() { "-".into() } else { gpus.join(", ") },
            if a.inference.models_loaded.is_empty() { "-".into() } else { a.inference.models_loaded.join(", ") },
            if a.network.region.is_empty() { "-".into() } else { a.network.region.clone() },
            ago(p.last_heartbeat_ms),
        ]);
    }
    format!("{}{} node(s)\n", table(&rows), peers.len())
}

pub(super) fn render_advert(state: &NodeState) -> String {
    let mut out = match &state.advert {
        Some(record) => format!(
            "version {}\n{}\n",
            record.version,
            serde_json::to_string_pretty(&record.advert).unwrap_or_default()
        ),
        None => "no advert published\n".into(),
    };
    if let Some(probe) = &state.probe {
        out.push_str(&format!(
            "probe: {} ({} cores), {} GB free disk\n",
            probe.cpu_model, probe.cpu_cores, probe.disk_free_gb
        ));
        for w in &probe.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
    }
    out
}
