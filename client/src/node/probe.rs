//! What this machine has: CPU, RAM, disk, GPUs (`nvidia-smi`), the models a LocalAI server has
//! loaded, the size of an IPFS repo. Optional sources that fail are reported as warnings, never
//! guessed: the advert then says "none".
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use agent_registry_types::{Gpu, HardwareClass};

/// One probe of the hardware and the configured services.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Probe {
    pub cpu_model: String,
    pub cpu_cores: u32,
    pub cpu_arch: String,
    pub ram_gb: u32,
    /// Free space on the data dir's filesystem.
    pub disk_free_gb: u64,
    pub gpus: Vec<Gpu>,
    pub models_loaded: Vec<String>,
    pub ipfs_repo_gb: Option<u64>,
    pub hardware_class_guess: HardwareClass,
    /// Sources that were configured or present but could not be read.
    pub warnings: Vec<String>,
}

/// Endpoints the probe asks, when configured.
#[derive(Debug, Clone, Default)]
pub struct ProbeSources {
    pub localai_url: Option<url::Url>,
    pub ipfs_api_url: Option<url::Url>,
}

const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
const GB: u64 = 1_000_000_000;
const GIB: u64 = 1 << 30;

pub async fn probe(data_dir: &Path, sources: &ProbeSources) -> Probe {
    let mut warnings = vec![];
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    system.refresh_cpu_all();
    let cpu_model = system.cpus().first().map(|c| c.brand().trim().to_string()).unwrap_or_default();
    let cpu_cores = u32::try_from(system.cpus().len()).unwrap_or(u32::MAX).max(1);
    let cpu_arch = normalise_arch(&sysinfo::System::cpu_arch());
    let ram_gb = u32::try_from(system.total_memory().div_ceil(GIB)).unwrap_or(u32::MAX);
    let disk_free_gb = disk_free_bytes(data_dir) / GB;

    let gpus = match nvidia_gpus().await {
        Ok(gpus) => gpus,
        Err(GpuProbeError::Absent) => vec![],
        Err(GpuProbeError::Failed(e)) => {
            warnings.push(format!("nvidia-smi: {e}"));
            vec![]
        }
    };
    let models_loaded = match &sources.localai_url {
        Some(url) => localai_models(url).await.unwrap_or_else(|e| {
            warnings.push(format!("LocalAI at {url}: {e}"));
            vec![]
        }),
        None => vec![],
    };
    let ipfs_repo_gb = match &sources.ipfs_api_url {
        Some(url) => match ipfs_repo_size(url).await {
            Ok(bytes) => Some(bytes.div_ceil(GB)),
            Err(e) => {
                warnings.push(format!("IPFS API at {url}: {e}"));
                None
            }
        },
        None => None,
    };
    let hardware_class_guess = guess_class(&cpu_arch, ram_gb, !gpus.is_empty());
    Probe {
        cpu_model,
        cpu_cores,
        cpu_arch,
        ram_gb,
        disk_free_gb,
        gpus,
        models_loaded,
        ipfs_repo_gb,
        hardware_class_guess,
        warnings,
    }
}

/// `uname -m` names, lower case, as the advert's index expects.
fn normalise_arch(arch: &str) -> String {
    match arch.to_ascii_lowercase().as_str() {
        "" => "unknown".into(),
        "amd64" => "x86_64".into(),
        "arm64" => "aarch64".into(),
        other => other.chars().filter(|c| c.is_ascii_alphanumeric() || "_-".contains(*c)).take(32).collect(),
    }
}

/// Free bytes on the filesystem holding `path` (the deepest mount point that contains it).
fn disk_free_bytes(path: &Path) -> u64 {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let disks = sysinfo::Disks::new_with_refreshed_list();
    disks
        .list()
        .iter()
        .filter(|d| path.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map_or(0, |d| d.available_space())
}

enum GpuProbeError {
    /// No NVIDIA driver tools on this machine: no NVIDIA GPUs to report.
    Absent,
    Failed(String),
}

async fn nvidia_gpus() -> Result<Vec<Gpu>, GpuProbeError> {
    Ok(parse_nvidia_smi(&nvidia_smi("name,memory.total").await?))
}

/// Mean utilisation of the NVIDIA GPUs now, for heartbeats; `None` without NVIDIA GPUs.
pub async fn nvidia_utilisation() -> Option<u8> {
    let text = nvidia_smi("utilization.gpu").await.ok()?;
    let values: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let mean = values.iter().sum::<u32>().checked_div(u32::try_from(values.len()).ok()?)?;
    u8::try_from(mean.min(100)).ok()
}

/// `nvidia-smi --query-gpu=<fields>` as CSV without header or units.
async fn nvidia_smi(fields: &str) -> Result<String, GpuProbeError> {
    let output = tokio::time::timeout(
        HTTP_TIMEOUT,
        tokio::process::Command::new("nvidia-smi")
            .args([format!("--query-gpu={fields}").as_str(), "--format=csv,noheader,nounits"])
            .output(),
    )
    .await
    .map_err(|_| GpuProbeError::Failed("timed out".into()))?
    .map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            GpuProbeError::Absent
        } else {
            GpuProbeError::Failed(e.to_string())
        }
    })?;
    if !output.status.success() {
        return Err(GpuProbeError::Failed(String::from_utf8_lossy(&output.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Lines of `name, memory.total [MiB]`.
fn parse_nvidia_smi(text: &str) -> Vec<Gpu> {
    text.lines()
        .filter_map(|line| {
            let (name, mib) = line.rsplit_once(',')?;
            let mib: u64 = mib.trim().parse().ok()?;
            Some(Gpu {
                vendor: "nvidia".into(),
                model: name.trim().trim_start_matches("NVIDIA ").chars().take(64).collect(),
                vram_gb: u32::try_from((mib * (1 << 20)).div_ceil(GIB)).unwrap_or(u32::MAX),
            })
        })
        .take(agent_registry_types::GPUS_MAX)
        .collect()
}

fn http() -> Result<reqwest::Client, String> {
    reqwest::Client::builder().timeout(HTTP_TIMEOUT).build().map_err(|e| e.to_string())
}

/// Model ids from an OpenAI-compatible `/v1/models`, as many and as long as the advert allows.
async fn localai_models(base: &url::Url) -> Result<Vec<String>, String> {
    let backend = crate::bridges::localai::Backend::local(http()?, base.as_str())?;
    let mut ids = backend.models(HTTP_TIMEOUT).await.map_err(|e| e.to_string())?;
    ids.retain(|id| !id.is_empty() && id.len() <= agent_registry_types::MODEL_NAME_MAX);
    ids.truncate(agent_registry_types::MODELS_MAX);
    Ok(ids)
}

/// The repo size from the Kubo RPC API (the artifacts bridge reads Kubo's and js-ipfs's encodings).
async fn ipfs_repo_size(base: &url::Url) -> Result<u64, String> {
    let kubo = crate::bridges::kubo::Kubo::new(base.clone());
    match tokio::time::timeout(HTTP_TIMEOUT, kubo.repo_stat()).await {
        Ok(stat) => stat.map(|s| s.repo_size).map_err(|e| e.to_string()),
        Err(_) => Err(format!("repo/stat did not answer within {} s", HTTP_TIMEOUT.as_secs())),
    }
}

fn guess_class(arch: &str, ram_gb: u32, has_gpu: bool) -> HardwareClass {
    let vendor = std::fs::read_to_string("/sys/class/dmi/id/sys_vendor").unwrap_or_default().to_ascii_lowercase();
    let cloud =
        ["amazon", "google", "microsoft corporation", "digitalocean", "hetzner", "openstack", "qemu", "firecracker"];
    if (arch.starts_with("arm") || arch == "aarch64") && ram_gb <= 8 && !has_gpu {
        HardwareClass::IotArm
    } else if cloud.iter().any(|c| vendor.contains(c)) {
        HardwareClass::CloudVm
    } else if has_gpu {
        HardwareClass::EdgeServer
    } else {
        HardwareClass::Desktop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_smi_lines_become_gpus() {
        let gpus = parse_nvidia_smi("NVIDIA GeForce RTX 4090, 24564\nNVIDIA A100-SXM4-80GB, 81920\ngarbage\n");
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0], Gpu { vendor: "nvidia".into(), model: "GeForce RTX 4090".into(), vram_gb: 24 });
        assert_eq!(gpus[1].vram_gb, 80);
    }

    #[test]
    fn architectures_use_uname_names() {
        assert_eq!(normalise_arch("AMD64"), "x86_64");
        assert_eq!(normalise_arch("arm64"), "aarch64");
        assert_eq!(normalise_arch("x86_64"), "x86_64");
        assert_eq!(normalise_arch(""), "unknown");
    }

    #[test]
    fn small_arm_boards_are_iot() {
        assert_eq!(guess_class("aarch64", 4, false), HardwareClass::IotArm);
        assert_ne!(guess_class("x86_64", 64, true), HardwareClass::IotArm);
    }

    #[tokio::test]
    async fn probing_this_machine_finds_cpus_ram_and_disk() {
        let p = probe(Path::new("."), &ProbeSources::default()).await;
        assert!(p.cpu_cores >= 1);
        assert!(p.ram_gb >= 1);
        assert!(p.disk_free_gb > 0, "the working dir's filesystem has free space");
        assert!(!p.cpu_arch.is_empty());
    }

    /// A loopback server speaking the two APIs the probe reads, with js-ipfs's string sizes.
    async fn serve_models_and_repo_stat() -> url::Url {
        use axum::routing::{get, post};
        let app = axum::Router::new()
            .route(
                "/v1/models",
                get(|| async {
                    axum::Json(serde_json::json!({"object": "list", "data": [
                        {"id": "qwen3-4b", "object": "model"}, {"id": "smollm2-135m", "object": "model"}, {"id": "qwen3-4b"}
                    ]}))
                }),
            )
            .route("/api/v0/repo/stat", post(|| async { axum::Json(serde_json::json!({"RepoSize": "2500000001", "NumObjects": 3})) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap()).parse().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn models_and_repo_size_come_from_the_configured_apis() {
        let url = serve_models_and_repo_stat().await;
        let sources = ProbeSources { localai_url: Some(url.clone()), ipfs_api_url: Some(url) };
        let p = probe(Path::new("."), &sources).await;
        assert_eq!(p.models_loaded, ["qwen3-4b", "smollm2-135m"], "sorted, deduplicated");
        assert_eq!(p.ipfs_repo_gb, Some(3), "2.5 GB rounds up");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[tokio::test]
    async fn an_unreachable_localai_is_a_warning_not_a_model_list() {
        let sources = ProbeSources { localai_url: Some("http://127.0.0.1:9/".parse().unwrap()), ipfs_api_url: None };
        let p = probe(Path::new("."), &sources).await;
        assert!(p.models_loaded.is_empty());
        assert!(p.warnings.iter().any(|w| w.starts_with("LocalAI at http://127.0.0.1:9/")), "{:?}", p.warnings);
    }
}
