//! The `artifacts.*` tools over this node's artifact service. Arguments arrive already validated
//! against the catalog's input schema; results are checked against the output schema by the
//! caller.
use serde::Deserialize;
use serde_json::{json, Value};

use super::holochain_tools::parse;
use crate::artifacts::PublishMeta;
use crate::runtime::services::Services;

pub const NAMES: &[&str] = &["artifacts.publish", "artifacts.get", "artifacts.verify", "artifacts.replicas"];

/// `artifacts.get` returns bytes inline up to this size; larger ones need an output_path.
const MAX_INLINE: u64 = 1 << 20;

pub async fn call(
    state: &Services,
    tool: &str,
    arguments: Value,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Value, String> {
    let artifacts = &state.artifacts;
    match tool {
        "artifacts.publish" => {
            let input: Publish = parse(arguments)?;
            let path = std::path::PathBuf::from(&input.path);
            let file =
                tokio::fs::File::open(&path).await.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let size = file.metadata().await.map_err(|e| format!("cannot read {}: {e}", path.display()))?.len();
            let name = match input.name {
                Some(n) => n,
                None => path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or("the path has no file name; give name")?,
            };
            let meta = PublishMeta {
                name,
                media_type: input.media_type,
                labels: input.labels,
                provenance: input.provenance,
                materials: input.materials,
                size_bytes: Some(size),
            };
            progress(&format!("adding {} to IPFS and registering it", path.display()));
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
            let published = artifacts.publish(stream, meta, "mcp", |_| {}).await.map_err(|e| e.to_string())?;
            to_value(&published)
        }
        "artifacts.get" => {
            let input: Get = parse(arguments)?;
            let path = input.output_path.as_deref().map(std::path::Path::new);
            let fetched = artifacts.fetch(&input.cid, path, MAX_INLINE).await.map_err(|e| e.to_string())?;
            let mut out = json!({
                "cid": input.cid,
                "registrations": fetched.info.registrations,
                "sha256": fetched.sha256,
                "size": fetched.size,
                "source": fetched.source,
            });
            if let Some(path) = &input.output_path {
                out["written_to"] = json!(path);
            }
            if let Some(bytes) = &fetched.bytes {
                use base64::Engine;
                out["content_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
            Ok(out)
        }
        "artifacts.verify" => {
            let input: Verify = parse(arguments)?;
            let file = match &input.path {
                Some(p) => {
                    let f = tokio::fs::File::open(p).await.map_err(|e| format!("cannot read {p}: {e}"))?;
                    let what = p.clone();
                    let stream = futures::TryStreamExt::map_err(tokio_util::io::ReaderStream::new(f), move |e| {
                        crate::artifacts::ArtifactError::Io { what: what.clone(), reason: e.to_string() }
                    });
                    Some(Box::pin(stream) as crate::artifacts::ByteStream)
                }
                None => None,
            };
            let report = artifacts.verify(&input.cid, file).await.map_err(|e| e.to_string())?;
            to_value(&report)
        }
        "artifacts.replicas" => {
            let input: Cid = parse(arguments)?;
            to_value(&artifacts.replicas(&input.cid).await.map_err(|e| e.to_string())?)
        }
        other => Err(format!("unknown tool {other}")),
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Publish {
    path: String,
    name: Option<String>,
    media_type: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    provenance: Option<Value>,
    #[serde(default)]
    materials: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Get {
    cid: String,
    output_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Verify {
    cid: String,
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cid {
    cid: String,
}
