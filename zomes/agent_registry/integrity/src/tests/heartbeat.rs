//! HB2 samples and tags, and bucket arithmetic.
use hdi::prelude::*;

use crate::heartbeat::*;
use crate::{Availability, RegistryProperties, Rule};

fn sample() -> HeartbeatSample {
    HeartbeatSample {
        seq: u64::MAX,
        cpu_percent: 100,
        gpu_percent: Some(100),
        memory_percent: 100,
        availability: Availability::Maintenance,
    }
}

#[test]
fn the_largest_sample_fits_the_tag_limit() {
    let tag = sample().to_tag().unwrap();
    assert!(tag.0.len() <= HEARTBEAT_TAG_MAX_BYTES, "{} bytes", tag.0.len());
    assert_eq!(HeartbeatSample::from_tag(&tag).unwrap(), sample());
}

#[test]
fn out_of_range_and_junk_tags_break_hb2() {
    let mut s = sample();
    s.gpu_percent = Some(101);
    assert_eq!(HeartbeatSample::from_tag(&s.to_tag().unwrap()).unwrap_err().rule, Rule::HB2);
    assert_eq!(HeartbeatSample::from_tag(&LinkTag::new(vec![0xff; 8])).unwrap_err().rule, Rule::HB2);
    assert_eq!(HeartbeatSample::from_tag(&LinkTag::new(vec![0; 300])).unwrap_err().rule, Rule::HB2);
}

#[test]
fn buckets_follow_the_properties() {
    let props =
        RegistryProperties { heartbeat_bucket_secs: 300, heartbeat_min_interval_secs: 30, ..Default::default() };
    assert_eq!(props.bucket_of(Timestamp::from_micros(299_999_999)), 0);
    assert_eq!(props.bucket_of(Timestamp::from_micros(300_000_000)), 1);
    assert_eq!(props.bucket_of(Timestamp::from_micros(-1)), -1);
    assert!(RegistryProperties { heartbeat_bucket_secs: 10, heartbeat_min_interval_secs: 10, ..Default::default() }
        .check()
        .is_err());
}
