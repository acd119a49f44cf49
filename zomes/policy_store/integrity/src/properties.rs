//! DNA properties of policy_store (set per network in `manifests/holochain/networks.json`; part of
//! the DNA hash, so the admins of a network are fixed with the network itself).
use hdi::prelude::*;

/// Who may publish policy on this network.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, SerializedBytes)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyProperties {
    /// Agent keys (`uhCAk…`) allowed to publish and update policy bundles (PB1). Empty means nobody
    /// can: the network runs on the built-in default policies.
    pub admins: Vec<AgentPubKeyB64>,
    /// Who signs invitations (MP1–MP3, read by the `membrane` crate); empty on an open network.
    pub network_admins: Vec<AgentPubKeyB64>,
}

impl PolicyProperties {
    /// Reads the properties of the running DNA; absent properties mean no admins.
    pub fn current() -> ExternResult<Self> {
        let bytes = dna_info()?.modifiers.properties;
        if matches!(bytes.bytes().as_slice(), [] | [0xc0]) {
            return Ok(Self::default()); // msgpack nil: `properties: ~`
        }
        bytes.try_into().map_err(|e| wasm_error!(WasmErrorInner::Guest(format!("policy_store DNA properties: {e:?}"))))
    }

    pub fn is_admin(&self, agent: &AgentPubKey) -> bool {
        self.admins.iter().any(|admin| AgentPubKey::from(admin.clone()) == *agent)
    }
}
