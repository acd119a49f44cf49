//! The resource_mesh entries (issue 5; spec §10.2, §10.5, §11.4) and their field rules, as pure
//! checks unit-tested natively. Who may author each, and the chain rules, are the validators'
//! (arriving with the DNA).
use hdi::prelude::AgentPubKey;
use serde::{Deserialize, Serialize};

use crate::capacity::Capacity;

/// The spec's `resource_type` (§11.4 `resources.allocate`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    Compute,
    Inference,
    Storage,
    Memory,
}

/// The spec's `locality_preference`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LocalityPreference {
    #[default]
    Nearest,
    Cheapest,
    Fastest,
    Any,
}

/// Longest allocation a request may ask for: one week.
pub const MAX_DURATION_SECS: u32 = 7 * 24 * 3600;
/// Longest model name, as in agent_registry's adverts.
pub const MODEL_NAME_MAX: usize = 128;

/// What a provider offers, derived from its advert; authored only by the provider.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ResourceOffer {
    pub capacity: Capacity,
    /// Models it serves (inference allocations name one).
    pub models: Vec<String>,
}

/// A requester asks one provider (chosen by its scheduler) for resources.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AllocationRequest {
    pub provider: AgentPubKey,
    pub resource_type: ResourceType,
    pub requirements: Capacity,
    pub model_name: Option<String>,
    pub locality_preference: LocalityPreference,
    pub duration_secs: u32,
}

impl ResourceOffer {
    pub fn check(&self) -> Result<(), String> {
        if self.capacity.is_zero() {
            return Err("an offer must offer something".into());
        }
        check_models(&self.models)
    }
}

impl AllocationRequest {
    pub fn check(&self) -> Result<(), String> {
        if self.requirements.is_zero() {
            return Err("a request must require something".into());
        }
        if self.duration_secs == 0 || self.duration_secs > MAX_DURATION_SECS {
            return Err(format!("duration_secs must be 1..={MAX_DURATION_SECS}, got {}", self.duration_secs));
        }
        match (&self.resource_type, &self.model_name) {
            (ResourceType::Inference, None) => Err("an inference request names its model".into()),
            (_, Some(model)) => check_models(std::slice::from_ref(model)),
            _ => Ok(()),
        }
    }
}

fn check_models(models: &[String]) -> Result<(), String> {
    for (i, m) in models.iter().enumerate() {
        let ok = !m.is_empty()
            && m.len() <= MODEL_NAME_MAX
            && m.chars().all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c));
        if !ok {
            return Err(format!("model {i} must be 1-{MODEL_NAME_MAX} of [A-Za-z0-9._:/-], got {m:?}"));
        }
        if models[..i].iter().any(|other| other.eq_ignore_ascii_case(m)) {
            return Err(format!("model {m:?} is listed twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AllocationRequest {
        AllocationRequest {
            provider: AgentPubKey::from_raw_36(vec![1; 36]),
            resource_type: ResourceType::Compute,
            requirements: Capacity { cpu_cores: 2, ..Capacity::default() },
            model_name: None,
            locality_preference: LocalityPreference::Nearest,
            duration_secs: 3600,
        }
    }

    #[test]
    fn requests_need_something_for_a_bounded_time() {
        assert!(request().check().is_ok());
        let nothing = AllocationRequest { requirements: Capacity::default(), ..request() };
        assert!(nothing.check().is_err_and(|e| e.contains("require something")));
        let forever = AllocationRequest { duration_secs: MAX_DURATION_SECS + 1, ..request() };
        assert!(forever.check().is_err_and(|e| e.contains("duration_secs")));
        let inference = AllocationRequest { resource_type: ResourceType::Inference, ..request() };
        assert!(inference.check().is_err_and(|e| e.contains("names its model")));
        let named = AllocationRequest { model_name: Some("qwen3:4b".into()), ..inference };
        assert!(named.check().is_ok());
    }

    #[test]
    fn offers_list_each_model_once() {
        let offer = ResourceOffer {
            capacity: Capacity { model_slots: 2, ..Capacity::default() },
            models: vec!["a".into(), "A".into()],
        };
        assert!(offer.check().is_err_and(|e| e.contains("twice")));
        let empty = ResourceOffer { capacity: Capacity::default(), models: vec![] };
        assert!(empty.check().is_err());
    }

    #[test]
    fn the_spec_names_serialise_as_the_spec_writes_them() {
        assert_eq!(serde_json::to_string(&LocalityPreference::Cheapest).ok().as_deref(), Some("\"cheapest\""));
    }
}
