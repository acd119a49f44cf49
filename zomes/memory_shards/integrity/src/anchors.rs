//! The anchors lookups start from. Validators recompute them from the linked map, so a map can
//! only be filed under its own collection.
use hdi::prelude::*;

/// `collection.<name>`: the maps of one collection.
pub fn collection(name: &str) -> Path {
    anchor("collection", name)
}

/// `collections.<h>`, `h` a hex digit of the name's FNV-1a hash: all maps in 16 shards (no hot
/// anchor). A plain function of the name, so validators recompute it without a host call.
pub fn all_maps(name: &str) -> Path {
    let fnv = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    anchor("collections", &format!("{:x}", fnv & 0xf))
}

/// The 16 anchors of `all_maps`, for a full scan.
pub fn all_map_shards() -> impl Iterator<Item = Path> {
    "0123456789abcdef".chars().map(|c| anchor("collections", &c.to_string()))
}

/// A two-component path; the value is one component even when it contains dots.
fn anchor(kind: &str, value: &str) -> Path {
    Path::from(vec![Component::from(kind), Component::from(value)])
}
