//! The anchors lookups start from. Validators recompute them from the linked entry, so a link can
//! only be filed under the key its target really has.
use hdi::prelude::*;

/// Width of the time buckets decisions and audit events are filed under.
pub const BUCKET_SECS: i64 = 3600;

/// `policy.<package>`: every version of one package.
pub fn package(package: &str) -> Path {
    anchor("policy", package)
}

/// `policies.all`: every bundle of every package. Only admins write bundles, so it stays small.
pub fn all_bundles() -> Path {
    anchor("policies", "all")
}

/// `decisions.<bucket>`: decisions made in one hour, by every node.
pub fn decisions(bucket: i64) -> Path {
    anchor("decisions", &bucket.to_string())
}

/// `audit.<bucket>`: audit events of one hour.
pub fn audit_bucket(bucket: i64) -> Path {
    anchor("audit", &bucket.to_string())
}

/// `subject.<subject>`: audit events about one subject (a tool, an artifact CID, a model, …).
pub fn audit_subject(subject: &str) -> Path {
    anchor("subject", subject)
}

/// The hour bucket a moment falls into.
pub fn bucket_of(at: Timestamp) -> i64 {
    at.as_micros().div_euclid(BUCKET_SECS * 1_000_000)
}

/// A two-component path; the value is one component even when it contains dots.
fn anchor(kind: &str, value: &str) -> Path {
    Path::from(vec![Component::from(kind), Component::from(value)])
}
