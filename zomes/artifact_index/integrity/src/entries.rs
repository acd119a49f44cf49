//! The entries and the rules that need nothing but their own fields (AF1–AF3, RC1's bounds).
use hdi::prelude::*;

use crate::rules::{ensure, Rule, RuleViolation};

pub const NAME_MAX: usize = 255;
pub const MEDIA_TYPE_MAX: usize = 127;
pub const LABELS_MAX: usize = 16;
pub const LABEL_MAX: usize = 64;
pub const ENDPOINT_MAX: usize = 256;
/// A lease may run at most this far ahead of the claim that sets it: a node that dies is replaced
/// within a week at worst, typically within its (much shorter) configured lease.
pub const LEASE_MAX_SECS: i64 = 7 * 24 * 3600;
pub const LEASE_MIN_SECS: i64 = 10;

/// A CID and what its bytes are. The registering agent is the action's author.
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct Artifact {
    /// CIDv0 (`Qm…`) or CIDv1 in base32 (`b…`) or base58btc (`z…`).
    pub cid: String,
    /// Lower-case hex sha256 of the bytes.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    pub name: String,
    /// `type/subtype`, e.g. `application/octet-stream`.
    pub media_type: String,
    /// Lower-case search labels, e.g. `model`, `dataset`, `build:ripple`.
    pub labels: Vec<String>,
}

/// Provenance of a registered artifact: an in-toto Statement v1 with a SLSA Provenance v1
/// predicate, as JSON. Its author is the builder; the action's signature is the attestation.
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The `Artifact` registration the statement is about.
    pub artifact: ActionHash,
    pub statement: String,
}

/// "This node pins this CID until `until`": a lease, renewed by updating it. The holder is the
/// action's author.
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct ReplicaClaim {
    pub cid: String,
    pub until: Timestamp,
    /// Where peers can fetch the bytes from this node (its sidecar's HTTP API), if it serves them.
    pub endpoint: Option<String>,
}

impl Artifact {
    /// Rules: AF1 (a CID), AF2 (a sha256 digest), AF3 (name, media type and labels in bounds).
    pub fn check(&self) -> Result<(), RuleViolation> {
        ensure(is_cid(&self.cid), Rule::AF1, || format!("`{}` is not a CIDv0 or CIDv1", clip(&self.cid)))?;
        ensure(is_sha256_hex(&self.sha256), Rule::AF2, || {
            format!("sha256 `{}` must be 64 lower-case hex digits", clip(&self.sha256))
        })?;
        let name_ok = !self.name.is_empty() && self.name.len() <= NAME_MAX && !self.name.chars().any(char::is_control);
        ensure(name_ok, Rule::AF3, || format!("name must be 1-{NAME_MAX} bytes without control characters"))?;
        ensure(is_media_type(&self.media_type), Rule::AF3, || {
            format!("media type `{}` must be type/subtype", clip(&self.media_type))
        })?;
        ensure(self.labels.len() <= LABELS_MAX, Rule::AF3, || format!("at most {LABELS_MAX} labels"))?;
        for (i, label) in self.labels.iter().enumerate() {
            ensure(is_label(label), Rule::AF3, || {
                format!("label `{}` must be 1-{LABEL_MAX} characters of [a-z0-9._:=-]", clip(label))
            })?;
            ensure(!self.labels[..i].contains(label), Rule::AF3, || format!("label `{label}` is listed twice"))?;
        }
        Ok(())
    }
}

impl ReplicaClaim {
    /// Rules: RC1 (a CID, a lease that ends after `at` and within `LEASE_MAX_SECS`, an http(s)
    /// endpoint if any).
    pub fn check(&self, at: Timestamp) -> Result<(), RuleViolation> {
        ensure(is_cid(&self.cid), Rule::RC1, || format!("`{}` is not a CIDv0 or CIDv1", clip(&self.cid)))?;
        let lease = (self.until.as_micros() - at.as_micros()) / 1_000_000;
        ensure((LEASE_MIN_SECS..=LEASE_MAX_SECS).contains(&lease), Rule::RC1, || {
            format!("a lease runs {LEASE_MIN_SECS} s to {LEASE_MAX_SECS} s from the claim, not {lease} s")
        })?;
        if let Some(endpoint) = &self.endpoint {
            let ok = endpoint.len() <= ENDPOINT_MAX
                && (endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                && !endpoint.chars().any(|c| c.is_whitespace() || c.is_control());
            ensure(ok, Rule::RC1, || format!("endpoint `{}` must be an http(s) URL", clip(endpoint)))?;
        }
        Ok(())
    }
}

/// A CID as IPFS prints one: CIDv0 is base58btc `Qm` + 44 characters (a sha2-256 multihash);
/// CIDv1 is a multibase string, base32 lower case (`b…`) or base58btc (`z…`).
pub fn is_cid(s: &str) -> bool {
    const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let base58 = |t: &str| t.chars().all(|c| BASE58.contains(c));
    if s.len() == 46 && s.starts_with("Qm") {
        return base58(s);
    }
    if !(9..=128).contains(&s.len()) {
        return false;
    }
    match s.split_at(1) {
        ("b", rest) => rest.chars().all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)),
        ("z", rest) => base58(rest),
        _ => false,
    }
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

fn is_media_type(s: &str) -> bool {
    let token = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c));
    s.len() <= MEDIA_TYPE_MAX && s.split_once('/').is_some_and(|(a, b)| token(a) && token(b))
}

pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= LABEL_MAX
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._:=-".contains(c))
}

/// At most 80 characters of untrusted input, for messages.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact() -> Artifact {
        Artifact {
            cid: "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG".into(),
            sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            size: 0,
            name: "empty.bin".into(),
            media_type: "application/octet-stream".into(),
            labels: vec!["test".into(), "build:ripple".into()],
        }
    }

    #[test]
    fn cids_of_both_versions_are_accepted_and_junk_is_not() {
        assert!(is_cid("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"));
        assert!(is_cid("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"));
        assert!(is_cid("zdj7WWeQ43G6JJvLWQWZpyHuAMq6uYWRjkBXFad11vE2LHhQ7"));
        for junk in ["", "Qm0wAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "bafyBEIG", "ipfs://Qm", "Qm123"] {
            assert!(!is_cid(junk), "{junk}");
        }
    }

    #[test]
    fn artifact_fields_are_bounded() {
        assert_eq!(artifact().check(), Ok(()));
        let rule = |a: Artifact| a.check().map_err(|v| v.rule);
        assert_eq!(rule(Artifact { cid: "nope".into(), ..artifact() }), Err(Rule::AF1));
        assert_eq!(rule(Artifact { sha256: "E3B0".into(), ..artifact() }), Err(Rule::AF2));
        assert_eq!(rule(Artifact { name: String::new(), ..artifact() }), Err(Rule::AF3));
        assert_eq!(rule(Artifact { media_type: "binary".into(), ..artifact() }), Err(Rule::AF3));
        assert_eq!(rule(Artifact { labels: vec!["Model".into()], ..artifact() }), Err(Rule::AF3));
        assert_eq!(rule(Artifact { labels: vec!["a".into(), "a".into()], ..artifact() }), Err(Rule::AF3));
    }

    #[test]
    fn leases_are_bounded() {
        let at = Timestamp::from_micros(1_000_000_000);
        let claim = |secs: i64| ReplicaClaim {
            cid: artifact().cid,
            until: Timestamp::from_micros(at.as_micros() + secs * 1_000_000),
            endpoint: Some("http://127.0.0.1:7780".into()),
        };
        assert_eq!(claim(600).check(at), Ok(()));
        assert_eq!(claim(0).check(at).map_err(|v| v.rule), Err(Rule::RC1));
        assert_eq!(claim(LEASE_MAX_SECS + 1).check(at).map_err(|v| v.rule), Err(Rule::RC1));
        let bad_endpoint = ReplicaClaim { endpoint: Some("ftp://x".into()), ..claim(600) };
        assert_eq!(bad_endpoint.check(at).map_err(|v| v.rule), Err(Rule::RC1));
    }
}
