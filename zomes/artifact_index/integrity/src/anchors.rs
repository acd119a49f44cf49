//! The anchors lookups start from. Validators recompute them from the linked entry, so a link can
//! only be filed under the key its target really has.
use hdi::prelude::*;

/// `cid.<cid>`: registrations and replica claims of one CID.
pub fn cid(cid: &str) -> Path {
    anchor("cid", cid)
}

/// `sha256.<hex>`: registrations of one digest.
pub fn digest(sha256: &str) -> Path {
    anchor("sha256", sha256)
}

pub fn name(name: &str) -> Path {
    anchor("name", name)
}

pub fn label(label: &str) -> Path {
    anchor("label", label)
}

/// `artifacts.<h>`, `h` the first hex digit of the sha256: all artifacts in 16 shards.
pub fn shard(sha256: &str) -> Path {
    anchor("artifacts", sha256.get(..1).unwrap_or("0"))
}

/// The 16 shard anchors, for a full scan.
pub fn shards() -> impl Iterator<Item = Path> {
    "0123456789abcdef".chars().map(|c| anchor("artifacts", &c.to_string()))
}

/// A two-component path; the value is one component even when it contains dots.
fn anchor(kind: &str, value: &str) -> Path {
    Path::from(vec![Component::from(kind), Component::from(value)])
}
