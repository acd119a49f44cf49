//! Heartbeats: a small load sample in the tag of a link under the anchor of its time bucket, so
//! "who is online" reads two buckets and never scans history (ARCHITECTURE.md, "Heartbeats are
//! tiny and time-bucketed").
use hdi::prelude::*;

use crate::node_advert::Availability;
use crate::properties::RegistryProperties;
use crate::rules::{ensure, Rule, RuleViolation};

pub const HEARTBEAT_TAG_MAX_BYTES: usize = 256;
/// Each bucket's anchor is split by the first byte of the agent key so no single base collects
/// every node's heartbeats.
pub const HEARTBEAT_SHARDS: u8 = 16;

/// The load sample a heartbeat carries (the spec's `load` plus availability and a sequence number).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, SerializedBytes)]
pub struct HeartbeatSample {
    /// Counts up from 1 on each node start; gaps show missed beats.
    pub seq: u64,
    pub cpu_percent: u8,
    pub gpu_percent: Option<u8>,
    pub memory_percent: u8,
    pub availability: Availability,
}

impl HeartbeatSample {
    /// HB2 for a decoded sample.
    pub fn check(&self) -> Result<(), RuleViolation> {
        for (field, v) in [
            ("cpu_percent", Some(self.cpu_percent)),
            ("gpu_percent", self.gpu_percent),
            ("memory_percent", Some(self.memory_percent)),
        ] {
            if let Some(v) = v {
                ensure(v <= 100, Rule::HB2, || format!("{field} must be 0-100, got {v}"))?;
            }
        }
        Ok(())
    }

    pub fn to_tag(&self) -> ExternResult<LinkTag> {
        let bytes = SerializedBytes::try_from(self.clone()).map_err(|e| wasm_error!(e))?;
        Ok(LinkTag::new(bytes.bytes().clone()))
    }

    /// HB2: a tag is a heartbeat only if it is small, decodes, and is in range.
    pub fn from_tag(tag: &LinkTag) -> Result<Self, RuleViolation> {
        ensure(tag.0.len() <= HEARTBEAT_TAG_MAX_BYTES, Rule::HB2, || {
            format!("heartbeat tag is {} bytes, at most {HEARTBEAT_TAG_MAX_BYTES} allowed", tag.0.len())
        })?;
        let sample = Self::try_from(SerializedBytes::from(UnsafeBytes::from(tag.0.clone())))
            .map_err(|e| RuleViolation::new(Rule::HB2, format!("heartbeat tag is not a HeartbeatSample: {e:?}")))?;
        sample.check()?;
        Ok(sample)
    }
}

/// Anchor of the heartbeats of key shard `shard` in time bucket `bucket`.
pub fn anchor(bucket: i64, shard: u8) -> Path {
    Path::from(vec![
        Component::from("ripple.hb"),
        Component::from(bucket.to_string()),
        Component::from(shard.to_string()),
    ])
}

pub fn shard_of(agent: &AgentPubKey) -> u8 {
    agent.get_raw_32().first().copied().unwrap_or(0) % HEARTBEAT_SHARDS
}

/// A writer picks the bucket a moment before the host stamps the action, so HB3 also accepts the
/// bucket this many seconds earlier; without it a beat at a bucket boundary could fail.
pub const BUCKET_BOUNDARY_GRACE_SECS: i64 = 5;

/// Where a heartbeat by `agent` written at `at` belongs.
pub fn anchor_hash_for(props: &RegistryProperties, agent: &AgentPubKey, at: Timestamp) -> ExternResult<EntryHash> {
    anchor(props.bucket_of(at), shard_of(agent)).path_entry_hash()
}

/// HB3: the anchors a heartbeat stamped `at` may sit under (its bucket, or the one just before
/// when `at` is within the boundary grace).
pub fn accepted_anchor_hashes(
    props: &RegistryProperties,
    agent: &AgentPubKey,
    at: Timestamp,
) -> ExternResult<Vec<EntryHash>> {
    let earlier = Timestamp::from_micros(at.as_micros() - BUCKET_BOUNDARY_GRACE_SECS * 1_000_000);
    let mut hashes = vec![anchor_hash_for(props, agent, at)?];
    if props.bucket_of(earlier) != props.bucket_of(at) {
        hashes.push(anchor_hash_for(props, agent, earlier)?);
    }
    Ok(hashes)
}
