//! Admission by invitation (`docs/integrity/membrane.md`) on a network with an admin: an invited
//! agent joins; no proof, a proof for another agent or another DNA, or one not signed by an admin
//! is refused at genesis (MP1–MP3) before anything is written; and an agent whose conductor skipped
//! that check is warranted by an honest peer in every DNA it joined.
use std::sync::Arc;
use std::time::Duration;

use agent_registry_types::{Invitation, RegistryProperties, SignedInvitation};
use holochain::prelude::*;
use holochain::sweettest::*;
use policy_store_types::PolicyProperties;
use serde_json::json;

use crate::support::*;
use crate::warrants::introduce;

/// Two of the network's DNAs (enough to show a proof is bound to one DNA), in this order.
const ROLES: [&str; 2] = ["agent_registry", "policy_store"];

/// agent_registry and policy_store of a fresh network whose admin is `admin`.
async fn network(seed: &str, admin: &AgentPubKey) -> Vec<DnaFile> {
    let network_admins = vec![admin.clone().into()];
    vec![
        registry_dna(seed, &RegistryProperties { network_admins: network_admins.clone(), ..fast_props() }, false).await,
        policy_dna(seed, &PolicyProperties { network_admins, ..Default::default() }, false).await,
    ]
}

/// Installs `dnas` for `agent` as the sidecar does: one hApp bundle, the proof in every role's
/// settings. The error is the conductor's, as text.
async fn install(
    conductor: &SweetConductor,
    agent: &AgentPubKey,
    dnas: &[DnaFile],
    proof: Option<&SignedInvitation>,
) -> Result<Vec<CellId>, String> {
    let app_id = format!("app-{agent}");
    let roles: Vec<_> = ROLES
        .iter()
        .map(|role| {
            json!({ "name": role, "provisioning": { "strategy": "create", "deferred": false },
                    "dna": { "path": format!("{role}.dna") } })
        })
        .collect();
    let manifest: AppManifest =
        serde_json::from_value(json!({ "manifest_version": "0", "name": app_id, "roles": roles })).unwrap();
    let resources = ROLES
        .iter()
        .zip(dnas)
        .map(|(role, dna)| (format!("{role}.dna"), DnaBundle::from_dna_file(dna.clone()).unwrap()));
    let bundle = AppBundle::new(manifest, resources).unwrap();
    let proof = proof.map(|p| Arc::new(SerializedBytes::try_from(p.clone()).unwrap()));
    let roles_settings = ROLES
        .iter()
        .map(|role| {
            let settings =
                RoleSettings::Provisioned { membrane_proof: proof.clone(), modifiers: None, init_properties: None };
            (role.to_string(), settings)
        })
        .collect();
    let app = conductor
        .raw_handle()
        .install_app_bundle(InstallAppPayload {
            source: AppBundleSource::Bytes(bundle.pack().unwrap()),
            agent_key: Some(agent.clone()),
            installed_app_id: Some(app_id.clone()),
            network_seed: None,
            roles_settings: Some(roles_settings),
            ignore_genesis_failure: false,
            restore_from_dht: false,
        })
        .await
        .map_err(|e| format!("{e:?}"))?;
    conductor.raw_handle().enable_app(app_id).await.map_err(|e| format!("{e:?}"))?;
    let cells: Vec<CellId> =
        ROLES.iter().zip(dnas).map(|(_, dna)| CellId::new(dna.dna_hash().clone(), agent.clone())).collect();
    let installed: Vec<CellId> = app.all_cells().collect();
    assert!(cells.iter().all(|c| installed.contains(c)), "installed {installed:?}, expected {cells:?}");
    Ok(cells)
}

fn refused(result: Result<Vec<CellId>, String>, rule: &str, what: &str) {
    let error = result.err().unwrap_or_else(|| panic!("{what}: admitted"));
    assert!(error.contains(&format!("{rule}: ")), "{what}: refused, but not citing {rule}: {error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_invited_agents_join_and_peers_warrant_one_that_skipped_the_check() {
    let rendezvous = SweetLocalRendezvous::new().await;
    let config = || SweetConductorConfig::rendezvous(true);
    let honest = SweetConductor::from_config_rendezvous(config(), rendezvous.clone()).await;
    let mut rogue = SweetConductor::from_config_rendezvous(config(), rendezvous.clone()).await;
    let admin = SweetAgents::one(honest.keystore()).await;
    let dnas = network(&unique_seed("membrane"), &admin).await;
    seed_compiled_zomes([&honest, &rogue], &dnas.iter().collect::<Vec<_>>()).await;

    // The admin needs no invitation; it signs them (and a non-admin cannot).
    let admin_cells = install(&honest, &admin, &dnas, None).await.expect("the admin joins without a proof");
    let registry = honest.get_sweet_cell(admin_cells[0].clone()).unwrap();
    let [invitee, stranger] = [SweetAgents::one(honest.keystore()).await, SweetAgents::one(honest.keystore()).await];
    let invite = |invitee: &AgentPubKey, dnas: &[&DnaFile]| Invitation {
        invitee: invitee.clone(),
        dnas: dnas.iter().map(|d| d.dna_hash().clone()).collect(),
    };
    let both: Vec<&DnaFile> = dnas.iter().collect();
    let signed: SignedInvitation =
        honest.call(&registry.zome("capabilities"), "sign_invitation", invite(&invitee, &both)).await;
    assert_eq!(signed.admin, admin);

    // MP1: no proof, or bytes that are not a signed invitation.
    refused(install(&honest, &stranger, &dnas, None).await, "MP1", "an agent without an invitation");
    // MP3: another agent's invitation; an invitation to one DNA replayed into another.
    refused(
        install(&honest, &stranger, &dnas, Some(&signed)).await,
        "MP3",
        "the invitee's invitation, used by another",
    );
    let registry_only: SignedInvitation =
        honest.call(&registry.zome("capabilities"), "sign_invitation", invite(&stranger, &[&dnas[0]])).await;
    refused(
        install(&honest, &stranger, &dnas, Some(&registry_only)).await,
        "MP3",
        "an invitation to agent_registry only",
    );
    // MP2: signed by a non-admin; an admin named but another key's signature.
    let by_stranger = |admin: &AgentPubKey| {
        let (keystore, invitation) = (honest.keystore(), invite(&stranger, &both));
        let admin = admin.clone();
        let signer = stranger.clone();
        async move {
            let bytes = holochain_serialized_bytes::encode(&invitation).unwrap();
            let signature = keystore.sign(signer, bytes.into()).await.unwrap();
            SignedInvitation { invitation, admin, signature }
        }
    };
    refused(
        install(&honest, &stranger, &dnas, Some(&by_stranger(&stranger).await)).await,
        "MP2",
        "a self-signed invitation",
    );
    refused(
        install(&honest, &stranger, &dnas, Some(&by_stranger(&admin).await)).await,
        "MP2",
        "a forged admin signature",
    );

    let invited = install(&honest, &invitee, &dnas, Some(&signed)).await.expect("the invited agent joins");
    let invited_registry = honest.get_sweet_cell(invited[0].clone()).unwrap();
    let refusal: Result<SignedInvitation, _> =
        honest.call_fallible(&invited_registry.zome("capabilities"), "sign_invitation", invite(&stranger, &both)).await;
    let refusal = format!("{:?}", refusal.expect_err("a member who is not an admin cannot invite"));
    assert!(refusal.contains("is not a network admin"), "{refusal}");

    // A conductor that skips genesis_self_check: its genesis is written directly, without a proof.
    let mallory = SweetAgents::one(rogue.keystore()).await;
    for dna in &dnas {
        let store = rogue.raw_handle().get_dht_store(dna.dna_hash()).unwrap();
        holochain_state::source_chain::genesis(store, rogue.keystore(), dna.dna_hash().clone(), mallory.clone(), None)
            .await
            .expect("write a genesis past the self-check");
    }
    let mallory_cells = install(&rogue, &mallory, &dnas, None).await.expect("a chain with genesis installs unchecked");
    let invited_ids = invited.clone();
    for (index, role) in ROLES.iter().enumerate() {
        let rogue_cell = rogue.get_sweet_cell(mallory_cells[index].clone()).unwrap();
        // Either honest agent's cell in this DNA space may be the one that issues the warrant.
        let honest_cells =
            [&admin_cells[index], &invited_ids[index]].map(|id| honest.get_sweet_cell(id.clone()).unwrap());
        introduce(&honest, &honest_cells[0], &rogue, &rogue_cell).await;
        let reasons = eventually(
            &format!("an honest peer warrants the uninvited agent in {role}"),
            Duration::from_secs(180),
            || async {
                for cell in &honest_cells {
                    let reasons = warrant_reasons(cell, &mallory).await;
                    if !reasons.is_empty() {
                        return Some(reasons);
                    }
                }
                None
            },
        )
        .await;
        assert!(reasons.iter().all(|r| r.starts_with("MP1: ")), "{role}: warranted for something else: {reasons:?}");
        for cell in &honest_cells {
            assert!(
                warrant_reasons(&rogue_cell, cell.agent_pubkey()).await.is_empty(),
                "the honest agents did nothing wrong"
            );
        }
        eprintln!("{role}: the uninvited agent was warranted: {reasons:?}");
    }
    // The invited agent is nobody's suspect.
    assert!(warrant_reasons(&registry, &invitee).await.is_empty());
    rogue.shutdown().await;
}
