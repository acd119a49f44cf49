//! Admission by invitation, the same in every Ripple DNA (rules MP1–MP3 of
//! `docs/integrity/membrane.md`).
//!
//! A network whose DNA properties name `network_admins` admits an agent only with a membrane proof:
//! an [`Invitation`] naming that agent and this DNA, signed by one of those admins. The admins
//! themselves need none. A network without admins (ripple-local, tests) is open to anyone who can
//! reach it.
//!
//! The same check runs twice: in `genesis_self_check`, so a node with a missing or bad proof fails
//! before it writes anything, and on the `AgentValidationPkg` action, so honest peers reject (and
//! warrant) an agent whose conductor skipped its own check.
use hdi::prelude::*;

/// What a network admin signs: this agent may join these DNAs.
#[derive(Serialize, Deserialize, SerializedBytes, Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The invited agent: the proof admits this key and no other.
    pub invitee: AgentPubKey,
    /// The DNAs it admits to (one network's cells). Another network, or a DNA not listed, has
    /// another hash, so a proof cannot be replayed there.
    pub dnas: Vec<DnaHash>,
}

/// The membrane proof: an invitation and a network admin's signature over it.
#[derive(Serialize, Deserialize, SerializedBytes, Debug, Clone, PartialEq, Eq)]
pub struct SignedInvitation {
    pub invitation: Invitation,
    pub admin: AgentPubKey,
    pub signature: Signature,
}

/// The admission field any Ripple DNA's properties may carry; the other fields are each DNA's own.
#[derive(Serialize, Deserialize, SerializedBytes, Debug, Default)]
struct AdmissionProperties {
    #[serde(default)]
    network_admins: Vec<AgentPubKeyB64>,
}

/// The agents that may sign invitations on this network (DNA properties `network_admins`). Empty
/// means the network is open.
pub fn network_admins() -> ExternResult<Vec<AgentPubKey>> {
    let bytes = dna_info()?.modifiers.properties;
    if matches!(bytes.bytes().as_slice(), [] | [0xc0]) {
        return Ok(vec![]); // msgpack nil: `properties: ~`
    }
    let properties = AdmissionProperties::try_from(bytes)
        .map_err(|e| wasm_error!(WasmErrorInner::Guest(format!("DNA properties `network_admins`: {e:?}"))))?;
    Ok(properties.network_admins.into_iter().map(AgentPubKey::from).collect())
}

/// Rules MP1–MP3 for `agent` joining this DNA with `proof`. `Ok(Err(reason))` refuses, with the
/// rule ID first (`"MP2: …"`).
pub fn check_admission(agent: &AgentPubKey, proof: Option<&MembraneProof>) -> ExternResult<Result<(), String>> {
    let admins = network_admins()?;
    if admins.is_empty() || admins.contains(agent) {
        return Ok(Ok(()));
    }
    let Some(proof) = proof else {
        return Ok(Err("MP1: this network admits only invited agents: join with an invitation signed by a \
                       network admin as the membrane proof"
            .into()));
    };
    let signed = match SignedInvitation::try_from((**proof).clone()) {
        Ok(signed) => signed,
        Err(e) => return Ok(Err(format!("MP1: the membrane proof is not a signed invitation: {e:?}"))),
    };
    if !admins.contains(&signed.admin) {
        return Ok(Err(format!("MP2: the invitation is signed by {}, who is not a network admin", signed.admin)));
    }
    if !verify_signature(signed.admin.clone(), signed.signature.clone(), &signed.invitation)? {
        return Ok(Err("MP2: the invitation's signature does not verify".into()));
    }
    if signed.invitation.invitee != *agent {
        return Ok(Err(format!("MP3: the invitation is for {}, not for {agent}", signed.invitation.invitee)));
    }
    let dna = dna_info()?.hash;
    if !signed.invitation.dnas.contains(&dna) {
        return Ok(Err(format!("MP3: the invitation does not name this DNA ({dna}); it is for another network")));
    }
    Ok(Ok(()))
}

/// The integrity zome's `genesis_self_check`: refuse to start a chain without admission.
pub fn genesis_self_check(data: GenesisSelfCheckData) -> ExternResult<ValidateCallbackResult> {
    Ok(match check_admission(&data.agent_key, data.membrane_proof.as_ref())? {
        Ok(()) => ValidateCallbackResult::Valid,
        Err(reason) => ValidateCallbackResult::Invalid(reason),
    })
}

/// The verdict on an op of an `AgentValidationPkg` action (its record and its agent-activity op),
/// or `None` for any other op. Each DNA's `validate` asks this first.
pub fn validate_admission(op: &Op) -> ExternResult<Option<ValidateCallbackResult>> {
    let action = match op {
        Op::CreateRecord(CreateRecord { record }) => record.action(),
        Op::AgentActivity(AgentActivity { action, .. }) => action.action(),
        _ => return Ok(None),
    };
    let ActionData::AgentValidationPkg(AgentValidationPkgData { membrane_proof }) = &action.data else {
        return Ok(None);
    };
    Ok(Some(match check_admission(action.author(), membrane_proof.as_ref())? {
        Ok(()) => ValidateCallbackResult::Valid,
        Err(reason) => ValidateCallbackResult::Invalid(reason),
    }))
}
