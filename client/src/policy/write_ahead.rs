//! `policy.gate(action, input)`: decide with the packages in force, commit the Decision, and only
//! then let the action run. A verdict is never acted on before it is on the node's source chain, so a
//! crash between the two leaves the decision behind (the chain is durable), never the action alone.
//! A denial is committed too, then returned as an error naming the package, its version and every
//! reason.
use std::future::Future;
use std::sync::Arc;

use holochain_types::prelude::ActionHash;
use policy_store_types::{DecisionInput, DecisionRecord};

use super::engine::{PolicyError, Verdict};
use super::gates::Gates;

/// Where a gate's decisions are committed: the policy_store DNA's `decisions.record_decision` on
/// this node's chain. Returns once the Decision is committed.
pub trait DecisionLog: Send + Sync {
    fn record(&self, decision: DecisionInput) -> impl Future<Output = anyhow::Result<DecisionRecord>> + Send;
}

/// The packages in force plus the log their decisions go to.
pub struct WriteAheadGate<L> {
    packages: Arc<Gates>,
    log: L,
}

/// An allowance, committed: the action may run now.
#[derive(Debug, Clone)]
pub struct Permit {
    pub verdict: Verdict,
    pub decision: DecisionRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{action} denied by policy {} version {}: {} (decision {decision})", .verdict.package, .verdict.version, .verdict.reasons.join("; "))]
    Denied { action: String, verdict: Verdict, decision: ActionHash },
    /// The policy could not be evaluated: nothing is recorded and the action does not run.
    #[error("{action} not run: {source}")]
    Policy { action: String, source: PolicyError },
    /// The decision could not be committed, so the action does not run.
    #[error("{action} not run: its policy decision could not be recorded: {source:#}")]
    NotRecorded { action: String, source: anyhow::Error },
}

impl<L: DecisionLog> WriteAheadGate<L> {
    pub fn new(packages: Arc<Gates>, log: L) -> Self {
        Self { packages, log }
    }

    /// Decides `action` for `input` (`tools.call`, then the action's own package) and commits the
    /// Decision. `Ok` means allowed and recorded; the caller runs the action after this returns.
    pub async fn pass(&self, action: &str, input: &serde_json::Value) -> Result<Permit, GateError> {
        let policy_failed = |source| GateError::Policy { action: action.into(), source };
        let verdict = self.packages.decide(action, input).map_err(policy_failed)?;
        let decision = decision_input(action, &verdict).map_err(policy_failed)?;
        let decision = self
            .log
            .record(decision)
            .await
            .map_err(|source| GateError::NotRecorded { action: action.into(), source })?;
        if !verdict.allowed {
            let decision = decision.decision_id;
            return Err(GateError::Denied { action: action.into(), verdict, decision });
        }
        Ok(Permit { verdict, decision })
    }
}

/// What a Decision records for `verdict` on `action`.
pub fn decision_input(action: &str, verdict: &Verdict) -> Result<DecisionInput, PolicyError> {
    let bundle = match &verdict.bundle {
        Some(id) => Some(ActionHash::try_from(id.as_str()).map_err(|e| PolicyError::Invalid {
            package: verdict.package.clone(),
            message: format!("bundle id `{id}` is not an action hash: {e}"),
        })?),
        None => None,
    };
    Ok(DecisionInput {
        action: action.into(),
        package: verdict.package.clone(),
        version: verdict.version,
        bundle,
        policy_sha256: verdict.policy_sha256.clone(),
        input_sha256: verdict.input_sha256.clone(),
        allowed: verdict.allowed,
        reasons: verdict.reasons.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicySource;
    use holochain_types::prelude::{AgentPubKey, Timestamp};
    use serde_json::json;
    use std::sync::Mutex;

    /// Records decisions in order, or refuses every one (a conductor that is down).
    #[derive(Default)]
    struct Log {
        down: bool,
        decisions: Mutex<Vec<DecisionInput>>,
    }

    impl DecisionLog for &Log {
        async fn record(&self, input: DecisionInput) -> anyhow::Result<DecisionRecord> {
            anyhow::ensure!(!self.down, "conductor unreachable");
            let mut decisions = self.decisions.lock().unwrap();
            decisions.push(input.clone());
            Ok(DecisionRecord {
                decision_id: ActionHash::from_raw_32(vec![decisions.len() as u8; 32]),
                decided_at: Timestamp::now(),
                decision: input.decided_by(AgentPubKey::from_raw_32(vec![0; 32])),
            })
        }
    }

    fn gates_disabling(action: &str) -> Arc<Gates> {
        let gates = Gates::with_defaults().unwrap();
        let rego = gates.get("tools.call").unwrap().source().rego.clone();
        let bundle = ActionHash::from_raw_32(vec![7; 32]).to_string();
        let data = json!({ "disabled_actions": [action] }).to_string();
        let source =
            PolicySource { package: "tools.call".into(), version: 2, bundle: Some(bundle), rego, data: Some(data) };
        gates.install(source).unwrap();
        Arc::new(gates)
    }

    #[tokio::test]
    async fn an_allowed_action_is_recorded_before_it_is_permitted() {
        let log = Log::default();
        let gate = WriteAheadGate::new(gates_disabling("artifacts.publish"), &log);
        let input = json!({"action": "resources.allocate", "args": {"duration_seconds": 60}});
        let permit = gate.pass("resources.allocate", &input).await.unwrap();
        assert_eq!(permit.verdict.package, "resources.allocate");
        let recorded = log.decisions.lock().unwrap().clone();
        assert_eq!(recorded.len(), 1);
        assert!(recorded[0].allowed);
        assert_eq!(recorded[0].input_sha256, permit.verdict.input_sha256);
    }

    #[tokio::test]
    async fn a_denial_is_recorded_and_names_package_version_and_reason() {
        let log = Log::default();
        let gate = WriteAheadGate::new(gates_disabling("artifacts.publish"), &log);
        let err = gate.pass("artifacts.publish", &json!({"action": "artifacts.publish"})).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("artifacts.publish denied by policy tools.call version 2"), "{text}");
        assert!(text.contains("data.disabled_actions"), "{text}");
        let recorded = log.decisions.lock().unwrap().clone();
        assert_eq!(recorded.len(), 1);
        assert!(!recorded[0].allowed);
        assert_eq!(recorded[0].bundle, Some(ActionHash::from_raw_32(vec![7; 32])));
    }

    #[tokio::test]
    async fn nothing_is_permitted_when_the_decision_cannot_be_recorded() {
        let log = Log { down: true, ..Log::default() };
        let gate = WriteAheadGate::new(Arc::new(Gates::with_defaults().unwrap()), &log);
        let err = gate.pass("resources.allocate", &json!({"action": "resources.allocate"})).await.unwrap_err();
        assert!(matches!(err, GateError::NotRecorded { .. }), "{err}");
        assert!(err.to_string().contains("conductor unreachable"), "{err}");
    }
}
