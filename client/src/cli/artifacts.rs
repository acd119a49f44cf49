//! `ripple artifact …`: publishing, fetching and verifying content-addressed artifacts.
use super::*;

pub(super) async fn artifact(command: &ArtifactCommand, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    use crate::artifacts::{ArtifactInfo, Published, ReplicaReport, VerifyReport};
    match command {
        ArtifactCommand::Add(args) => {
            let meta = publish_meta(args)?;
            // Checked by the node first: a refusal mid-upload would reach us as a broken connection.
            let _: serde_json::Value = api_json(data_dir, "artifacts/check", &meta).await?;
            let file = tokio::fs::File::open(&args.file)
                .await
                .map_err(|e| ConfigError::Setting(format!("cannot read {}: {e}", args.file.display())))?;
            let total = file.metadata().await?.len();
            let meta = crate::artifacts::PublishMeta { size_bytes: Some(total), ..meta };
            eprintln!(
                "==> adding {} ({}) to IPFS and registering it on the mesh",
                args.file.display(),
                human_bytes(total)
            );
            let progress = Progress::new(total);
            let stream =
                futures::StreamExt::inspect(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20), move |chunk| {
                    if let Ok(chunk) = chunk {
                        progress.advance(chunk.len() as u64);
                    }
                });
            use base64::Engine;
            let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&meta)?);
            let run = RunFile::read(data_dir)?;
            let response = reqwest::Client::new()
                .post(format!("{}/artifacts", run.api_url))
                .header(crate::api::VIA_HEADER, "cli")
                .header(crate::api::PUBLISH_META_HEADER, header)
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await?;
            let published: Published = decode(response).await?;
            eprintln!();
            print(json, &published, |p| {
                format!(
                    "published {}\n  sha256      {}\n  size        {}\n  artifact    {}\n  provenance  {}\n  replica     held here until {}\n  took        {:.2} s\n",
                    p.cid, p.sha256, human_bytes(p.size), p.artifact_id, p.provenance_id, p.replica_until, p.seconds
                )
            })
        }
        ArtifactCommand::Get { cid, output } => {
            let info: ArtifactInfo = api(data_dir, &format!("artifacts/{cid}"), false).await?;
            let registered = info.registrations.first().ok_or_else(|| anyhow::anyhow!("{cid} has no registration"))?;
            let response = get_bytes(data_dir, &format!("artifacts/{cid}/content"), &[]).await?;
            let source = header(&response, crate::api::SOURCE_HEADER);
            let to_stdout = output.as_deref() == Some(Path::new("-"));
            let target = output.clone().unwrap_or_else(|| PathBuf::from(safe_file_name(&registered.name)));
            let (sha256, size) = write_checked(response, if to_stdout { None } else { Some(&target) }).await?;
            if sha256 != registered.sha256 || size != registered.size {
                anyhow::bail!(
                    "the bytes received for {cid} hash to sha256 {sha256} ({size} bytes) but it is registered as {} ({} bytes): refused, nothing written",
                    registered.sha256, registered.size
                );
            }
            let report = serde_json::json!({ "cid": cid, "sha256": sha256, "size": size, "source": source,
                "written_to": if to_stdout { "-".to_string() } else { target.display().to_string() } });
            if to_stdout {
                return Ok(()); // the bytes are the output
            }
            print(json, &report, |_| {
                format!(
                    "wrote {} ({}, sha256 {sha256} as registered) from {source}\n",
                    target.display(),
                    human_bytes(size)
                )
            })
        }
        ArtifactCommand::Verify { cid, file } => {
            let report: VerifyReport = match file {
                None => api(data_dir, &format!("artifacts/{cid}/verify"), false).await?,
                Some(path) => {
                    decode(post_file(data_dir, &format!("artifacts/{cid}/verify"), path).await?.send().await?).await?
                }
            };
            print(json, &report, render_verify)?;
            if !report.ok {
                anyhow::bail!(
                    "{cid} failed verification: {}",
                    report.checks.iter().filter(|c| !c.ok).map(|c| c.detail.as_str()).collect::<Vec<_>>().join("; ")
                );
            }
            Ok(())
        }
        ArtifactCommand::Find { name, label, sha256 } => {
            let (key, value) = match (name, label, sha256) {
                (Some(v), _, _) => ("name", v),
                (_, Some(v), _) => ("label", v),
                (_, _, Some(v)) => ("sha256", v),
                _ => return Err(ConfigError::Setting("give --name, --label or --sha256".into()).into()),
            };
            let url = url::form_urlencoded::Serializer::new(String::new()).append_pair(key, value).finish();
            let found: Vec<crate::artifacts::Registration> = api(data_dir, &format!("artifacts?{url}"), false).await?;
            print(json, &found, |rows| {
                let mut table_rows =
                    vec![["CID", "NAME", "SIZE", "LABELS", "REGISTRANT", "AT"].map(String::from).to_vec()];
                for r in rows {
                    table_rows.push(vec![
                        r.cid.clone(),
                        r.name.clone(),
                        human_bytes(r.size),
                        r.labels.join(","),
                        r.registrant.clone(),
                        r.registered_at.clone(),
                    ]);
                }
                if rows.is_empty() {
                    format!("no artifact with {key} {value}\n")
                } else {
                    table(&table_rows)
                }
            })
        }
        ArtifactCommand::Replicas { cid } => {
            let report: ReplicaReport = api(data_dir, &format!("artifacts/{cid}/replicas"), false).await?;
            print(json, &report, |r| {
                let mut rows = vec![["HOLDER", "LIVE", "UNTIL", "ENDPOINT"].map(String::from).to_vec()];
                for row in &r.replicas {
                    let holder = if row.is_self { format!("{} (this node)", row.holder) } else { row.holder.clone() };
                    rows.push(vec![
                        holder,
                        if row.live { "yes" } else { "no" }.into(),
                        row.until.clone(),
                        row.endpoint.clone().unwrap_or_default(),
                    ]);
                }
                let verdict = if r.under_replicated { "under-replicated" } else { "replicated" };
                format!("{}: {} live of {} wanted ({verdict})\n{}", r.cid, r.live, r.min_providers, table(&rows))
            })
        }
    }
}

pub(super) fn publish_meta(args: &ArtifactAddArgs) -> Result<crate::artifacts::PublishMeta, ConfigError> {
    let name =
        match &args.name {
            Some(n) => n.clone(),
            None => args.file.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or_else(|| {
                ConfigError::Setting(format!("{} has no file name; pass --name", args.file.display()))
            })?,
        };
    let provenance = match &args.provenance {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Setting(format!("cannot read {}: {e}", path.display())))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| ConfigError::Setting(format!("{} is not JSON: {e}", path.display())))?,
            )
        }
        None => None,
    };
    for label in &args.labels {
        if !artifact_index_types::is_label(label) {
            return Err(ConfigError::Setting(format!("--label `{label}` must be 1-64 characters of [a-z0-9._:=-]")));
        }
    }
    for cid in &args.materials {
        if !artifact_index_types::is_cid(cid) {
            return Err(ConfigError::Setting(format!("--material `{cid}` is not a CID")));
        }
    }
    Ok(crate::artifacts::PublishMeta {
        name,
        media_type: Some(args.media_type.clone()),
        labels: args.labels.clone(),
        provenance,
        materials: args.materials.clone(),
        size_bytes: None, // set from the file when it is opened
    })
}

/// A POST to the running node's `route` whose body streams `file`'s bytes.
pub(super) async fn post_file(data_dir: &Path, route: &str, file: &Path) -> anyhow::Result<reqwest::RequestBuilder> {
    let f = tokio::fs::File::open(file)
        .await
        .map_err(|e| ConfigError::Setting(format!("cannot read {}: {e}", file.display())))?;
    let run = RunFile::read(data_dir)?;
    Ok(reqwest::Client::new()
        .post(format!("{}/{route}", run.api_url))
        .body(reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f))))
}

/// A GET of the running node's `route` whose body is bytes: the response, or the node's error.
pub(super) async fn get_bytes(
    data_dir: &Path,
    route: &str,
    query: &[(&str, String)],
) -> anyhow::Result<reqwest::Response> {
    let run = RunFile::read(data_dir)?;
    let response = reqwest::Client::new().get(format!("{}/{route}", run.api_url)).query(query).send().await?;
    if !response.status().is_success() {
        let _: serde_json::Value = decode(response).await?;
        unreachable!("decode fails on an error status");
    }
    Ok(response)
}

/// A response header as text ("" when absent).
pub(super) fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

/// Streams `response` into `target` (through a temporary file renamed at the end, so a crash never
/// leaves a partial file under the name) or stdout, returning the sha256 and size written.
pub(super) async fn write_checked(response: reqwest::Response, target: Option<&Path>) -> anyhow::Result<(String, u64)> {
    use sha2::Digest;
    use tokio::io::AsyncWriteExt;
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    let tmp = target.map(|t| t.with_extension("ripple-partial"));
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match &tmp {
        Some(path) => Box::new(tokio::fs::File::create(path).await?),
        None => Box::new(tokio::io::stdout()),
    };
    let mut stream = response.bytes_stream();
    let copied: anyhow::Result<()> = async {
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            let chunk = chunk?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            out.write_all(&chunk).await?;
        }
        Ok(out.flush().await?)
    }
    .await;
    drop(out);
    if let Err(e) = copied {
        if let Some(tmp) = &tmp {
            let _ = std::fs::remove_file(tmp); // nothing half-written is left behind
        }
        return Err(e);
    }
    let sha256 = crate::bridges::kubo::hex(&hasher.finalize());
    if let (Some(tmp), Some(target)) = (tmp, target) {
        std::fs::rename(&tmp, target)?;
    }
    Ok((sha256, size))
}

/// A registered name as a file name in the current directory (no directories, no dot files).
pub(super) fn safe_file_name(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name).trim_start_matches('.');
    if base.is_empty() {
        "artifact".into()
    } else {
        base.into()
    }
}

pub(super) fn render_verify(r: &crate::artifacts::VerifyReport) -> String {
    let mut out = format!(
        "{} {} ({} bytes, sha256 {}) from {}\n",
        if r.ok { "VERIFIED" } else { "FAILED" },
        r.cid,
        r.size,
        r.sha256,
        r.source
    );
    for c in &r.checks {
        out.push_str(&format!("  [{}] {}: {}\n", if c.ok { "ok" } else { "FAIL" }, c.check, c.detail));
    }
    out
}
