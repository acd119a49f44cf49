//! The machine's compiled-zome cache: `ripple compile-zomes` fills it, compiles again a module that
//! is missing or damaged, and a fresh node seeds its conductor from it instead of compiling.
use super::harness::*;
use ripple::cli::CompileZomesReport;

/// Where Holochain 0.7.1 loads compiled modules from its wasm database.
const MODULE_CACHE: &str = "holochain::core::ribosome::real_ribosome::module_cache";

fn compile_zomes(extra: &[&str]) -> CompileZomesReport {
    let happ = happ().display().to_string();
    let (code, out, err) = ripple(&[&["--json"], extra, &["compile-zomes", "--happ", happ.as_str()]].concat());
    assert_eq!(code, 0, "compile-zomes failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("compile-zomes --json: {e}: {out}"))
}

/// A fresh node needs no compile of its own: `ripple up` seeds every zome from the cache.
#[tokio::test(flavor = "multi_thread")]
async fn compile_zomes_fills_the_cache_repairs_a_damaged_module_and_seeds_a_fresh_node() {
    // The shared cache the other tests' nodes use (compiled here if this test runs first).
    let shared = compile_zomes(&[]);
    assert!(shared.zomes.len() >= 20, "5 DNAs with an integrity zome and 3 coordinators: {:?}", shared.zomes);
    for zome in &shared.zomes {
        assert!(shared.cache_dir.join(format!("{}.module", zome.wasm_hash)).is_file(), "{} is cached", zome.name);
    }

    // A cache of this test's own: every module linked from the shared one but two, one missing
    // and one damaged (its checksum no longer matches).
    let tmp = TempDir::new("compiled-zomes");
    let root = tmp.path().join("cache");
    let dir = root.join(shared.cache_dir.file_name().expect("engine dir"));
    std::fs::create_dir_all(&dir).unwrap();
    let (missing, damaged) = (&shared.zomes[0], &shared.zomes[1]);
    for zome in &shared.zomes[2..] {
        let file = format!("{}.module", zome.wasm_hash);
        std::fs::hard_link(shared.cache_dir.join(&file), dir.join(&file)).unwrap();
    }
    let damaged_file = dir.join(format!("{}.module", damaged.wasm_hash));
    let mut bytes = std::fs::read(shared.cache_dir.join(format!("{}.module", damaged.wasm_hash))).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&damaged_file, &bytes).unwrap();

    let root_arg = root.display().to_string();
    let own = compile_zomes(&["--zome-cache", root_arg.as_str()]);
    assert_eq!(own.cache_dir, dir);
    let compiled: Vec<&str> = own.zomes.iter().filter(|z| z.compiled_now).map(|z| z.name.as_str()).collect();
    let mut expected = vec![missing.name.as_str(), damaged.name.as_str()];
    expected.sort();
    assert_eq!(compiled, expected, "only the missing and the damaged module are compiled");
    assert_ne!(std::fs::read(&damaged_file).unwrap(), bytes, "the damaged module was replaced");
    let again = compile_zomes(&["--zome-cache", root_arg.as_str()]);
    assert!(again.zomes.iter().all(|z| !z.compiled_now), "a full cache compiles nothing: {:?}", again.zomes);

    // A fresh node: no compile step, every zome seeded into its conductor, and it works.
    let manifests = test_manifests(tmp.path()).await;
    let mut launch = Launch::node(tmp.path(), &manifests, "local", "seeded", &["--zome-cache", &root_arg]);
    // Holochain says at info level when a module from its database does not load (and compiles it).
    launch.env.push(("RUST_LOG".into(), format!("error,ripple=info,{MODULE_CACHE}=info")));
    let node = Sidecar::start(launch);
    let log = node.log();
    assert!(!log.contains("compiling"), "nothing to compile:\n{log}");
    assert!(log.contains(&format!("seeded {} compiled zomes", own.zomes.len())), "{log}");
    assert!(!log.contains("Invalid compiled, serialized module"), "the conductor loads every seeded module:\n{log}");
    let status = node.status().await;
    assert_eq!(status.cell_ids.len(), 5, "{status:?}");
}
