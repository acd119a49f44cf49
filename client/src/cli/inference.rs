//! `ripple infer` and `ripple models …`: queries routed over the mesh, and the local models.
use super::*;

/// Longer than any deadline a query may have (`timeout_ms` ≤ 600000).
pub(super) const INFER_TIMEOUT: Duration = Duration::from_secs(660);

pub(super) async fn infer(args: &InferArgs, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    use crate::inference::{MeshModel, MoeAnswer, MoeQuery, SingleAnswer, SingleQuery};
    let prompt = if args.prompt == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        text
    } else {
        args.prompt.clone()
    };
    if args.moe {
        let query = MoeQuery {
            prompt,
            task_type: parse_name("task type", &args.task)?,
            policy_override: args.policy.clone(),
            require_consensus: !args.no_consensus_required,
            max_tokens: args.max_tokens,
            temperature: args.temperature,
        };
        // The tiers' deadlines bound the query; the policy allows up to 10 minutes.
        let answer: MoeAnswer = api_json_within(data_dir, "inference/moe", &query, INFER_TIMEOUT).await?;
        return print(json, &answer, |a| {
            let mut out = format!("{}\n\n", a.response.trim_end());
            out.push_str(&format!(
                "consensus {:.0}% ({}) over {} answer group(s), policy {}, trace {}, {} ms\n",
                a.consensus_score * 100.0,
                if a.consensus_reached { "reached" } else { "NOT reached" },
                a.answer_groups,
                a.policy,
                a.trace_id,
                a.wall_ms
            ));
            for v in &a.model_votes {
                out.push_str(&format!(
                    "  {} {:<32} weight {:<4} {:>6} ms  {}  {}\n",
                    if v.agrees { "+" } else { "-" },
                    v.model,
                    v.weight,
                    v.latency_ms,
                    &v.response_hash[..12],
                    v.node.as_deref().unwrap_or(&v.tier)
                ));
            }
            for u in &a.unanswered {
                out.push_str(&format!("  ? {:<32} {}\n", u.model, u.reason));
            }
            for w in &a.warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
            out
        });
    }
    let model = match &args.model {
        Some(m) => m.clone(),
        None => {
            let models: Vec<MeshModel> = api(data_dir, "inference/models", false).await?;
            match models.as_slice() {
                [only] => only.model.clone(),
                [] => anyhow::bail!("no online node serves a model (nodes advertise what their localai_url serves)"),
                many => anyhow::bail!(
                    "the mesh serves {}: choose one with --model, or ask them all with --moe",
                    many.iter().map(|m| m.model.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    };
    let query = SingleQuery {
        model,
        prompt,
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        timeout_ms: args.timeout_ms,
    };
    let answer: SingleAnswer = api_json_within(data_dir, "inference/query", &query, INFER_TIMEOUT).await?;
    print(json, &answer, |a| {
        let mut out = format!("{}\n\n", a.response.trim_end());
        out.push_str(&format!(
            "{} on {} ({}) in {} ms, trace {}\n",
            a.model,
            a.answered_by.node,
            short(&a.answered_by.agent),
            a.latency_ms,
            a.trace_id
        ));
        for f in &a.failed_attempts {
            out.push_str(&format!("  failed first: {} ({}): {}\n", f.node, f.endpoint, f.error));
        }
        out
    })
}

pub(super) async fn models(action: Option<&ModelsCommand>, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    use crate::inference::{LoadModel, MeshModel, ModelChange, UnloadModel};
    let changed = |c: &ModelChange| {
        format!(
            "{} {} (decision {}); this node now serves: {}\n",
            c.action,
            c.model,
            c.decision_id,
            if c.models_loaded.is_empty() { "nothing".into() } else { c.models_loaded.join(", ") }
        )
    };
    match action {
        None => {
            let models: Vec<MeshModel> = api(data_dir, "inference/models", false).await?;
            print(json, &models, |models| {
                if models.is_empty() {
                    return "no online node serves a model (nodes advertise what their localai_url serves)\n".into();
                }
                models
                    .iter()
                    .map(|m| {
                        let servers: Vec<String> = m
                            .servers
                            .iter()
                            .map(|s| {
                                let load = s.load_percent.map_or("?".into(), |l| format!("{l}%"));
                                format!("{} ({}, load {load})", s.name, short(&s.agent))
                            })
                            .collect();
                        format!("{:<32} {}\n", m.model, servers.join(", "))
                    })
                    .collect()
            })
        }
        Some(ModelsCommand::Load { model, name }) => {
            let request = LoadModel { model: model.clone(), name: name.clone() };
            // Installing downloads the model: allow it far longer than other commands.
            let change: ModelChange =
                api_json_within(data_dir, "inference/load", &request, Duration::from_secs(3600)).await?;
            print(json, &change, changed)
        }
        Some(ModelsCommand::Unload { model }) => {
            let change: ModelChange =
                api_json(data_dir, "inference/unload", &UnloadModel { model: model.clone() }).await?;
            print(json, &change, changed)
        }
    }
}
