//! DNA hashes per network: a network is a network seed, so each role has one hash per network.
//! `manifests/holochain/dnas/index.json` records them; the sidecar refuses bundles that differ.
use std::collections::BTreeMap;

use anyhow::{bail, Context};
use holochain_types::prelude::{AppManifest, DnaBundle, DnaModifiersOpt, YamlProperties};
use serde::{Deserialize, Serialize};

use crate::build::dna_bundle_path;
use crate::workspace::{step, Workspace};

#[derive(Deserialize)]
struct Network {
    network_seed: String,
    /// DNA properties per role that override the bundle's (as the sidecar installs them).
    #[serde(default)]
    dna_properties: BTreeMap<String, serde_json::Value>,
}

/// The pin file. `networks[network][role]` is the DnaHash (base64) a node must run.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Pins {
    comment: String,
    /// The compiler the pins were made with: another rustc may emit other wasm, hence other hashes.
    rustc: String,
    networks: BTreeMap<String, NetworkPins>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct NetworkPins {
    network_seed: String,
    dnas: BTreeMap<String, String>,
}

pub async fn pin(ws: &Workspace, check: bool) -> anyhow::Result<()> {
    step(if check { "checking pinned DNA hashes" } else { "pinning DNA hashes" });
    let computed = compute(ws).await?;
    let path = ws.pins();
    if !check {
        std::fs::create_dir_all(path.parent().context("pin path has no parent")?)?;
        std::fs::write(&path, serde_json::to_string_pretty(&computed)? + "\n")?;
        for (net, pins) in &computed.networks {
            for (role, hash) in &pins.dnas {
                eprintln!("    {net:8} {role:16} {hash}");
            }
        }
        eprintln!("    wrote {}", ws.rel(&path));
        return Ok(());
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{} is missing: run `cargo xtask pin`", ws.rel(&path)))?;
    let pinned: Pins = serde_json::from_str(&text).with_context(|| format!("{} is not a pin file", ws.rel(&path)))?;
    let mut stale = vec![];
    for (net, pins) in &computed.networks {
        for (role, hash) in &pins.dnas {
            let old = pinned.networks.get(net).and_then(|p| p.dnas.get(role));
            if old != Some(hash) {
                stale.push(format!("{net}/{role}: pinned {}, built {hash}", old.map_or("nothing", String::as_str)));
            }
        }
    }
    for (net, pins) in &pinned.networks {
        for role in pins.dnas.keys() {
            if computed.networks.get(net).is_none_or(|p| !p.dnas.contains_key(role)) {
                stale.push(format!("{net}/{role}: pinned but no longer built"));
            }
        }
    }
    if stale.is_empty() {
        eprintln!(
            "    {} DNA hashes match {}",
            computed.networks.values().map(|p| p.dnas.len()).sum::<usize>(),
            ws.rel(&path)
        );
        return Ok(());
    }
    let toolchain = if pinned.rustc != computed.rustc {
        format!(
            "\nThe pins were made with `{}` but this is `{}`: a different compiler emits different wasm.",
            pinned.rustc, computed.rustc
        )
    } else {
        String::new()
    };
    bail!(
        "pinned DNA hashes are stale:\n  {}{toolchain}\nIf you changed an integrity zome or DNA properties on purpose (this forks every network), run \
         `cargo xtask build && cargo xtask pin` and commit the new {}.",
        stale.join("\n  "),
        ws.rel(&path)
    )
}

async fn compute(ws: &Workspace) -> anyhow::Result<Pins> {
    let networks: BTreeMap<String, Network> = serde_json::from_str(
        &std::fs::read_to_string(ws.networks()).with_context(|| format!("reading {}", ws.rel(&ws.networks())))?,
    )
    .with_context(|| format!("{} does not list networks with a network_seed", ws.rel(&ws.networks())))?;
    let happ: AppManifest = yaml_serde::from_str(&std::fs::read_to_string(ws.happ_manifest())?)
        .with_context(|| format!("{} is not a hApp manifest", ws.rel(&ws.happ_manifest())))?;
    let sources = ws.dna_sources()?;

    let mut pins = BTreeMap::new();
    for (net, network) in &networks {
        let mut dnas = BTreeMap::new();
        for role in happ.app_roles() {
            let source = sources
                .iter()
                .find(|s| !s.test_only && s.name == role.name)
                .with_context(|| format!("role `{}` has no dnas/{}/dna.yaml", role.name, role.name))?;
            let bundle_path = dna_bundle_path(ws, source);
            let bytes = std::fs::read(&bundle_path)
                .with_context(|| format!("{} missing: run `cargo xtask build`", ws.rel(&bundle_path)))?;
            let bundle =
                DnaBundle::unpack(bytes.as_slice()).with_context(|| format!("unpacking {}", ws.rel(&bundle_path)))?;
            let mut modifiers = role.dna.modifiers.clone();
            if let Some(props) = network.dna_properties.get(&role.name) {
                modifiers.properties = Some(YamlProperties::new(yaml_serde::to_value(props)?));
            }
            let modifiers: DnaModifiersOpt = modifiers
                .serialized()
                .map_err(|e| anyhow::anyhow!("role `{}` modifiers: {e:?}", role.name))?
                .with_network_seed(network.network_seed.clone());
            let (dna_file, _) = bundle.into_dna_file(modifiers).await?;
            dnas.insert(role.name.clone(), dna_file.dna_hash().to_string());
        }
        pins.insert(net.clone(), NetworkPins { network_seed: network.network_seed.clone(), dnas });
    }
    Ok(Pins {
        comment: "Written by `cargo xtask pin`; checked by `cargo xtask pin --check` and by the sidecar before it installs the hApp.".into(),
        rustc: rustc_version()?,
        networks: pins,
    })
}

fn rustc_version() -> anyhow::Result<String> {
    let out = std::process::Command::new("rustc").arg("--version").output().context("running rustc --version")?;
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_networks_are_the_three_ripple_networks() {
        let ws = Workspace::locate().unwrap();
        let networks: BTreeMap<String, Network> =
            serde_json::from_str(&std::fs::read_to_string(ws.networks()).unwrap()).unwrap();
        let seeds: Vec<_> = networks.values().map(|n| n.network_seed.as_str()).collect();
        assert_eq!(networks.keys().collect::<Vec<_>>(), ["local", "mainnet", "testnet"]);
        assert_eq!(seeds, ["ripple-local", "ripple-mainnet", "ripple-testnet"]);
    }
}
