//! Provenance statements: in-toto Statement v1 with a SLSA Provenance v1 predicate
//! (<https://in-toto.io/Statement/v1>, <https://slsa.dev/provenance/v1>), kept as JSON in the
//! entry and parsed here into the fields the rules read (unknown fields are kept in the JSON and
//! ignored). PV1, PV3 and PV4 need only the statement and its author; PV2 needs the artifact.
use std::collections::BTreeMap;

use hdi::prelude::*;

use crate::entries::{clip, is_cid, is_sha256_hex};
use crate::rules::{ensure, Rule, RuleViolation};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
pub const STATEMENT_MAX_BYTES: usize = 64 * 1024;
pub const SUBJECTS_MAX: usize = 64;
/// Materials are named by CID: `ipfs://<cid>`.
pub const MATERIAL_SCHEME: &str = "ipfs://";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: SlsaProvenance,
}

/// in-toto's ResourceDescriptor, the parts Ripple reads.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ResourceDescriptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SlsaProvenance {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RunDetails {
    pub builder: Builder,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Builder {
    pub id: String,
}

impl Statement {
    /// Rules: PV1 (an in-toto Statement v1 with a SLSA Provenance v1 predicate, subjects by
    /// sha256), PV3 (materials are CIDs), PV4 (the builder is the author's agent).
    pub fn parse_and_check(json: &str, author: &AgentPubKey) -> Result<Self, RuleViolation> {
        ensure(json.len() <= STATEMENT_MAX_BYTES, Rule::PV1, || {
            format!("a statement is at most {STATEMENT_MAX_BYTES} bytes, this one {}", json.len())
        })?;
        let statement: Statement = serde_json::from_str(json)
            .map_err(|e| RuleViolation::new(Rule::PV1, format!("not an in-toto statement: {e}")))?;
        ensure(statement.statement_type == STATEMENT_TYPE, Rule::PV1, || format!("_type must be {STATEMENT_TYPE}"))?;
        ensure(statement.predicate_type == PREDICATE_TYPE, Rule::PV1, || {
            format!("predicateType must be {PREDICATE_TYPE}")
        })?;
        ensure((1..=SUBJECTS_MAX).contains(&statement.subject.len()), Rule::PV1, || {
            format!("a statement names 1-{SUBJECTS_MAX} subjects")
        })?;
        for subject in &statement.subject {
            let digest = subject.digest.get("sha256").map(String::as_str).unwrap_or_default();
            ensure(is_sha256_hex(digest), Rule::PV1, || {
                "every subject has a sha256 digest of 64 lower-case hex digits".into()
            })?;
        }
        ensure(!statement.predicate.build_definition.build_type.is_empty(), Rule::PV1, || {
            "buildDefinition.buildType is required".into()
        })?;
        for material in &statement.predicate.build_definition.resolved_dependencies {
            let uri = material.uri.as_deref().unwrap_or_default();
            let cid = uri.strip_prefix(MATERIAL_SCHEME).unwrap_or_default();
            ensure(is_cid(cid), Rule::PV3, || {
                format!("material `{}` must be named {MATERIAL_SCHEME}<cid>", clip(uri))
            })?;
        }
        let builder = &statement.predicate.run_details.builder.id;
        let expected = agent_uri(author);
        ensure(*builder == expected, Rule::PV4, || {
            format!("runDetails.builder.id `{}` must be its author's agent, {expected}", clip(builder))
        })?;
        Ok(statement)
    }

    /// Whether a subject carries this sha256 (PV2's question).
    pub fn names_digest(&self, sha256: &str) -> bool {
        self.subject.iter().any(|s| s.digest.get("sha256").is_some_and(|d| d == sha256))
    }

    /// The CIDs of the materials.
    pub fn material_cids(&self) -> Vec<String> {
        let deps = &self.predicate.build_definition.resolved_dependencies;
        deps.iter().filter_map(|m| m.uri.as_deref()?.strip_prefix(MATERIAL_SCHEME).map(String::from)).collect()
    }
}

/// `holochain:agent:<key>`, the key as Holochain prints it (`u` + unpadded base64url of its 39
/// bytes). Encoded here so the wasm (which has no hash encoding) and the sidecar agree.
pub fn agent_uri(agent: &AgentPubKey) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = agent.get_raw_39();
    let mut out = String::from("holochain:agent:u");
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn agent() -> AgentPubKey {
        AgentPubKey::from_raw_32(vec![7; 32])
    }

    fn statement(builder: &str, material: &str) -> String {
        serde_json::json!({
            "_type": STATEMENT_TYPE,
            "subject": [{"name": "out.bin", "digest": {"sha256": SHA}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "buildDefinition": {
                    "buildType": "https://ripple.invalid/build/v1",
                    "externalParameters": {"command": "make"},
                    "resolvedDependencies": [{"uri": material, "digest": {"sha256": SHA}}]
                },
                "runDetails": {"builder": {"id": builder}, "metadata": {"invocationId": "1"}}
            }
        })
        .to_string()
    }

    #[test]
    fn a_well_formed_statement_by_its_builder_passes() -> Result<(), String> {
        let json = statement(&agent_uri(&agent()), "ipfs://QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG");
        let parsed = Statement::parse_and_check(&json, &agent()).map_err(|e| format!("{e:?}"))?;
        assert!(parsed.names_digest(SHA));
        assert_eq!(parsed.material_cids(), vec!["QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG".to_string()]);
        Ok(())
    }

    #[test]
    fn each_broken_part_cites_its_rule() {
        let me = agent_uri(&agent());
        let rule = |json: &str| Statement::parse_and_check(json, &agent()).map(|_| ()).map_err(|v| v.rule);
        assert_eq!(rule("{}"), Err(Rule::PV1));
        assert_eq!(rule(&statement(&me, "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG")), Err(Rule::PV3));
        let other = agent_uri(&AgentPubKey::from_raw_32(vec![8; 32]));
        assert_eq!(rule(&statement(&other, "ipfs://QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG")), Err(Rule::PV4));
    }

    #[test]
    fn agent_uris_use_holochains_key_encoding() {
        let uri = agent_uri(&agent());
        assert!(uri.starts_with("holochain:agent:uhCAk"), "{uri}");
        assert_eq!(uri.len() - "holochain:agent:".len(), 53, "u + 52 base64url characters for 39 bytes");
    }
}
