//! Index paths, buckets and the index tag.
use hdi::prelude::*;

use super::node_advert::gpu_box;
use crate::index::*;

#[test]
fn pow2_buckets() {
    assert_eq!([0, 1, 2, 3, 4, 7, 8, 24, 1024].map(pow2_bucket), [0, 1, 2, 2, 4, 4, 8, 16, 1024]);
    assert_eq!(buckets_at_least(20, 100), vec![16, 32, 64]);
    assert_eq!(buckets_at_least(0, 4), vec![0, 1, 2, 4]);
    assert_eq!(buckets_at_least(1, 1), vec![1]);
}

#[test]
fn an_advert_is_listed_under_each_capability() {
    let agent = AgentPubKey::from_raw_32(vec![0x25; 32]);
    let keys = IndexKey::for_advert(&agent, &gpu_box());
    for expected in [
        IndexKey::AllNodes { shard: 0x25 % ALL_NODES_SHARDS },
        IndexKey::GpuVendor("nvidia".into()),
        IndexKey::GpuVram { bucket: 16 },
        IndexKey::Model("gemma-3n-e2b".into()),
        IndexKey::Model("qwen3-4b".into()),
        IndexKey::CpuArch("x86_64".into()),
        IndexKey::Region("us-west".into()),
        IndexKey::CpuCores { bucket: 16 },
        IndexKey::RamGb { bucket: 64 },
        IndexKey::StorageGb { bucket: 2048 },
    ] {
        assert!(keys.contains(&expected), "{expected:?} missing from {keys:?}");
    }
    assert_eq!(keys.len(), 10);
}

#[test]
fn dotted_values_stay_one_component() {
    let path = IndexKey::Model("phi-3.5".into()).path();
    assert_eq!(path.0.len(), 3);
}

#[test]
fn tag_round_trips() {
    let tag = AdvertIndexTag { advert: ActionHash::from_raw_36(vec![7; 36]) };
    assert_eq!(AdvertIndexTag::from_tag(&tag.to_tag().unwrap()), Some(tag));
    assert_eq!(AdvertIndexTag::from_tag(&LinkTag::new(vec![1, 2, 3])), None);
}
