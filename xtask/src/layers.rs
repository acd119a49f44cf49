//! The sidecar's layers (`../shared/ARCHITECTURE.md`, "The sidecar"), checked: a module may use
//! modules of its own layer or below, never above. `cargo xtask test` runs the check, and so do
//! this crate's unit tests, so a service that reaches into the HTTP layer fails CI.
use std::collections::BTreeSet;
use std::path::Path;

/// Every top-level module of `client/src`, lowest layer first. A module missing here is an error:
/// a new module must say where it sits.
const LAYERS: &[(&str, &[&str])] = &[
    ("base", &["allocator", "config", "local_http", "manifests", "metrics", "periodic", "runfile"]),
    ("mesh and bridges", &["bootstrap", "bridges", "compiled_zomes", "conductor", "mesh", "networks", "peer"]),
    ("node", &["node"]),
    ("services", &["artifacts", "inference", "policy", "resources", "shards"]),
    ("runtime", &["runtime"]),
    ("surfaces", &["api", "cli", "mcp", "up"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module))
}

/// The top-level module a file under `client/src` belongs to (`api/ui.rs` → `api`).
fn module_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

/// The top-level modules a source text uses through `crate::`, outside comments and before its
/// tests.
fn uses(source: &str) -> BTreeSet<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (at, _) in line.match_indices("crate::") {
            let rest = &line[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// One line per use of a higher layer (or of a module the table does not place).
fn violations(files: &[(String, String)]) -> Vec<String> {
    let mut found = vec![];
    for (module, source) in files {
        let Some(own) = layer_of(module) else {
            found.push(format!("`{module}` is not in xtask/src/layers.rs: say which layer it belongs to"));
            continue;
        };
        for used in uses(source) {
            match layer_of(&used) {
                Some(layer) if layer > own => found.push(format!(
                    "`{module}` ({}) uses `crate::{used}` ({}), a higher layer",
                    LAYERS[own].0, LAYERS[layer].0
                )),
                Some(_) => {}
                None => {
                    found.push(format!("`{module}` uses `crate::{used}`, which xtask/src/layers.rs does not place"))
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

fn sources(root: &Path) -> anyhow::Result<Vec<(String, String)>> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, root, out)?;
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root)?;
                if matches!(relative.to_str(), Some("lib.rs" | "main.rs")) {
                    continue;
                }
                let module = module_of(relative).ok_or_else(|| anyhow::anyhow!("odd path {}", path.display()))?;
                out.push((module, std::fs::read_to_string(&path)?));
            }
        }
        Ok(())
    }
    let mut out = vec![];
    walk(root, root, &mut out)?;
    Ok(out)
}

/// Fails with every use of a higher layer in `client/src`.
pub fn check(workspace_root: &Path) -> anyhow::Result<()> {
    let found = violations(&sources(&workspace_root.join("client/src"))?);
    if found.is_empty() {
        println!("layers: every module of client/src uses only its own layer and those below");
        return Ok(());
    }
    anyhow::bail!("the sidecar's layers are crossed:\n  {}", found.join("\n  "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(module: &str, source: &str) -> (String, String) {
        (module.to_string(), source.to_string())
    }

    #[test]
    fn the_sidecar_keeps_its_layers() {
        // The run-time root, as `Workspace::locate` finds it: the compile-time one can name another
        // checkout that shared the target dir (cargo does not rebuild for a new path).
        check(&crate::workspace::Workspace::locate().unwrap().root).unwrap();
    }

    #[test]
    fn a_service_using_the_http_layer_or_an_unplaced_module_is_named() {
        let files = [
            file("shards", "use crate::api::ApiError;\nuse crate::mesh::Mesh;"),
            file("api", "use crate::shards::ShardService; use crate::runtime::services::Services;"),
            file("node", "fn f() {}\n#[cfg(test)]\nmod tests { use crate::inference::x; }"),
            file("gadgets", ""),
            file("mesh", "crate::gizmo::go()"),
            file("policy", "//! Served by `crate::api`.\nuse crate::node::view::MeshView;"),
        ];
        assert_eq!(
            violations(&files),
            vec![
                "`gadgets` is not in xtask/src/layers.rs: say which layer it belongs to".to_string(),
                "`mesh` uses `crate::gizmo`, which xtask/src/layers.rs does not place".to_string(),
                "`shards` (services) uses `crate::api` (surfaces), a higher layer".to_string(),
            ]
        );
    }
}
