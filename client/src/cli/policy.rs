//! `ripple policy …`: the policies in force, publishing, evaluating, decisions and the audit trail.
use super::*;

pub(super) async fn policy(command: &PolicyCommand, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    use crate::policy::service::{AuditView, DecisionView};
    use crate::policy::service::{PublishRequest, Published};
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| ConfigError::Setting(format!("cannot read {}: {e}", path.display())))
    };
    match command {
        PolicyCommand::Show => {
            let shown: serde_json::Value = api(data_dir, "policy", false).await?;
            print(json, &shown, |v| {
                let mut out = String::new();
                let admins: Vec<&str> =
                    v["admins"].as_array().into_iter().flatten().filter_map(|a| a.as_str()).collect();
                out.push_str(&format!(
                    "admins       {}\n",
                    if admins.is_empty() { "none".into() } else { admins.join(", ") }
                ));
                for p in v["in_force"].as_array().into_iter().flatten() {
                    let version = p["version"].as_u64().unwrap_or(0);
                    let from = if version == 0 { "built-in default".to_string() } else { format!("version {version}") };
                    out.push_str(&format!("{:<24} {from}\n", p["package"].as_str().unwrap_or("")));
                }
                out
            })
        }
        PolicyCommand::Publish { file, data_json, description } => {
            let rego = read(file)?;
            let data = match data_json {
                Some(path) => Some(
                    serde_json::from_str(&read(path)?)
                        .map_err(|e| ConfigError::Setting(format!("{} is not JSON: {e}", path.display())))?,
                ),
                None => None,
            };
            let request = PublishRequest { rego, data, description: description.clone() };
            let published: Published = api_json(data_dir, "policy/publish", &request).await?;
            print(json, &published, |p| {
                let what = if p.new_version { "published" } else { "unchanged, already current:" };
                format!("{what} {} version {} ({})\n  sha256 {}\n", p.package, p.version, p.bundle_id, p.policy_sha256)
            })
        }
        PolicyCommand::Eval { package, input } => {
            let text = match input.strip_prefix('@') {
                Some(path) => read(Path::new(path))?,
                None => input.clone(),
            };
            let input: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| ConfigError::Setting(format!("INPUT is not JSON: {e}")))?;
            let body = crate::api::EvalBody { package: package.clone(), input };
            let verdict: crate::policy::Verdict = api_json(data_dir, "policy/eval", &body).await?;
            print(json, &verdict, |v| {
                let outcome =
                    if v.allowed { "allowed".to_string() } else { format!("denied: {}", v.reasons.join("; ")) };
                format!("{} version {}: {outcome}\n", v.package, v.version)
            })?;
            if !verdict.allowed {
                std::process::exit(1);
            }
            Ok(())
        }
        PolicyCommand::Decisions { hours, node } => {
            let node = node.as_ref().map(|n| format!("&node={n}")).unwrap_or_default();
            let rows: Vec<DecisionView> =
                api(data_dir, &format!("policy/decisions?hours={hours}{node}"), false).await?;
            print(json, &rows, |rows| {
                rows.iter()
                    .map(|d| {
                        let outcome = if d.verdict.allowed {
                            "allowed".to_string()
                        } else {
                            format!("DENIED: {}", d.verdict.reasons.join("; "))
                        };
                        format!(
                            "{}  {}  policy {} version {}  {outcome}  (node {}, decision {})\n",
                            d.decided_at,
                            d.action,
                            d.verdict.package,
                            d.verdict.version,
                            short(&d.decider),
                            d.decision_id
                        )
                    })
                    .collect()
            })
        }
        PolicyCommand::Audit { hours, subject } => {
            let query = match subject {
                Some(subject) => format!("subject={subject}"),
                None => format!("hours={hours}"),
            };
            let rows: Vec<AuditView> = api(data_dir, &format!("policy/audit?{query}"), false).await?;
            print(json, &rows, |rows| {
                rows.iter()
                    .map(|e| {
                        format!(
                            "{}  {}  {}  {}  {}  (node {}; {})\n",
                            e.at,
                            e.category,
                            e.subject,
                            e.outcome,
                            e.detail,
                            short(&e.author),
                            e.references.join(" ")
                        )
                    })
                    .collect()
            })
        }
    }
}
