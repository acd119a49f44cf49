//! Zomes compiled once per machine. Holochain compiles each zome's wasm to native code the first
//! time a data dir calls it and keeps the result in that data dir's wasm database: for the ripple
//! hApp's 20 zomes that is ~50 s of a 2-core machine's CPU, and ~1 GB of compiler heap that the
//! process never gives back. So `ripple compile-zomes` (run by `ripple up` in a child process when
//! the cache lacks a zome) compiles them into a cache under the user's cache dir, and a node seeds
//! its own wasm database from that cache before the conductor first needs a zome.
//!
//! The cached bytes are what Holochain itself would store: the module compiled with its cranelift
//! engine, serialized. Wasmer checks the format version and the CPU features when it loads one; a
//! module it refuses is compiled again by the conductor, so a stale cache costs time, never
//! correctness. A checksum guards against a truncated or damaged file.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use holochain::holochain_wasmer_host::module::{sys, ModuleBuilder};
use holochain_state::data::{open_db, DbKey, HolochainDataConfig, Wasm};
use holochain_state::wasm::WasmStore;
use holochain_types::prelude::{AppBundle, DnaFile, DnaWasm, DnaWasmHashed, HoloHashed, WasmHash, ZomeDef};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum CompiledZomesError {
    #[error("cannot read the hApp bundle: {0}")]
    Bundle(String),
    #[error("cannot use the compiled-zome cache {path}: {source}")]
    Cache { path: PathBuf, source: std::io::Error },
    #[error("cannot compile zome {zome}: {reason}")]
    Compile { zome: String, reason: String },
    #[error("`ripple compile-zomes` failed ({0}); the conductor compiles the zomes itself")]
    Child(String),
    #[error("cannot seed the conductor's wasm database under {path}: {reason}")]
    Seed { path: PathBuf, reason: String },
}

/// One zome's wasm, named `dna/zome` for progress output.
#[derive(Debug, Clone)]
pub struct ZomeWasm {
    pub name: String,
    pub hash: WasmHash,
    pub code: bytes::Bytes,
}

/// Every distinct wasm of a hApp bundle (a wasm shared by two DNAs is listed once).
pub async fn bundle_zomes(bytes: &[u8]) -> Result<Vec<ZomeWasm>, CompiledZomesError> {
    let bundle = AppBundle::unpack(bytes).map_err(|e| CompiledZomesError::Bundle(e.to_string()))?;
    let resolution = bundle
        .resolve_cells(Default::default(), Default::default())
        .await
        .map_err(|e| CompiledZomesError::Bundle(e.to_string()))?;
    let mut zomes = BTreeMap::new();
    for (dna, _) in &resolution.dnas_to_register {
        for zome in dna_zomes(dna)? {
            zomes.entry(zome.hash.clone()).or_insert(zome);
        }
    }
    let mut zomes: Vec<ZomeWasm> = zomes.into_values().collect();
    zomes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(zomes)
}

/// The wasm zomes of one DNA, integrity first, as the DNA lists them.
pub fn dna_zomes(dna: &DnaFile) -> Result<Vec<ZomeWasm>, CompiledZomesError> {
    let mut zomes = Vec::new();
    for (zome, def) in dna.dna_def().all_zomes() {
        let ZomeDef::Wasm(wasm) = def else { continue };
        let code = dna.code().get(&wasm.wasm_hash).ok_or_else(|| {
            CompiledZomesError::Bundle(format!("zome {}/{zome} has no wasm in the bundle", dna.dna_def().name))
        })?;
        zomes.push(ZomeWasm {
            name: format!("{}/{zome}", dna.dna_def().name),
            hash: wasm.wasm_hash.clone(),
            code: code.code.clone(),
        });
    }
    Ok(zomes)
}

/// The machine's compiled-zome cache: one directory per Holochain version and CPU architecture.
#[derive(Debug, Clone)]
pub struct ZomeCache {
    root: PathBuf,
    dir: PathBuf,
}

/// Where `ripple compile-zomes` and `ripple up` look when `--zome-cache` is not given.
pub const ZOME_CACHE_ENV: &str = "RIPPLE_ZOME_CACHE";

impl ZomeCache {
    /// `root` (from `--zome-cache`), else `<user cache dir>/ripple/compiled-zomes`.
    pub fn new(root: Option<PathBuf>) -> Self {
        let root = root
            .or_else(|| dirs::cache_dir().map(|d| d.join("ripple/compiled-zomes")))
            .unwrap_or_else(|| std::env::temp_dir().join("ripple-compiled-zomes"));
        let engine = format!("holochain-{}-{}", holochain::HOLOCHAIN_VERSION, std::env::consts::ARCH);
        Self { dir: root.join(engine), root }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, hash: &WasmHash) -> PathBuf {
        self.dir.join(format!("{hash}.module"))
    }

    /// The cached module of `hash`; a damaged file is removed and reads as missing.
    pub fn read(&self, hash: &WasmHash) -> Option<bytes::Bytes> {
        let path = self.path(hash);
        let file = std::fs::read(&path).ok()?;
        if file.len() > 32 && Sha256::digest(&file[32..]).as_slice() == &file[..32] {
            return Some(bytes::Bytes::from(file).slice(32..));
        }
        tracing::warn!("removing the damaged compiled zome {}", path.display());
        let _ = std::fs::remove_file(&path);
        None
    }

    /// Stores a module: checksum, then bytes, written to a temporary file and renamed into place so
    /// a reader never sees half a file.
    fn write(&self, hash: &WasmHash, module: &[u8]) -> Result<(), CompiledZomesError> {
        let path = self.path(hash);
        let cache_error = |source| CompiledZomesError::Cache { path: path.clone(), source };
        let tmp = self.dir.join(format!(".{hash}.{}.tmp", std::process::id()));
        let mut file = std::fs::File::create(&tmp).map_err(cache_error)?;
        file.write_all(&Sha256::digest(module)).and_then(|_| file.write_all(module)).map_err(cache_error)?;
        file.sync_all().map_err(cache_error)?;
        std::fs::rename(&tmp, &path).map_err(cache_error)
    }

    /// The zomes without a cached module, judged by the file's presence alone (cheap enough for
    /// every start; seeding checks each module it reads).
    pub fn missing<'a>(&self, zomes: &'a [ZomeWasm]) -> Vec<&'a ZomeWasm> {
        zomes.iter().filter(|z| !self.path(&z.hash).exists()).collect()
    }

    /// Compiles every zome the cache lacks or holds damaged. Holds the cache's lock meanwhile, so nodes starting
    /// together wait for one compile instead of each running their own. Returns the zomes compiled.
    pub fn compile_missing(
        &self,
        zomes: &[ZomeWasm],
        progress: &dyn Fn(&str),
    ) -> Result<Vec<String>, CompiledZomesError> {
        let cache_error = |source| CompiledZomesError::Cache { path: self.dir.clone(), source };
        create_private_dir(&self.dir).map_err(cache_error)?;
        let _lock = DirLock::exclusive(&self.dir.join(".lock")).map_err(cache_error)?;
        let missing: Vec<&ZomeWasm> = zomes.iter().filter(|z| self.read(&z.hash).is_none()).collect();
        let builder = ModuleBuilder::new(sys::make_cranelift_engine, sys::make_runtime_engine);
        let mut compiled = Vec::new();
        for (i, zome) in missing.iter().enumerate() {
            progress(&format!(
                "compiling zome {}/{} {} ({} KiB of wasm)",
                i + 1,
                missing.len(),
                zome.name,
                zome.code.len() / 1024
            ));
            let compile_error = |reason: String| CompiledZomesError::Compile { zome: zome.name.clone(), reason };
            let module = builder.from_binary(&zome.code).map_err(|e| compile_error(e.to_string()))?;
            let serialized = module.serialize().map_err(|e| compile_error(e.to_string()))?;
            self.write(&zome.hash, &serialized)?;
            compiled.push(zome.name.clone());
        }
        Ok(compiled)
    }
}

/// Runs `ripple compile-zomes` for `happ` in a child process (this executable), so that the
/// compiler's working memory is never this node's. Its progress lines go to this process's stderr.
pub async fn compile_in_child(cache: &ZomeCache, happ: &Path) -> Result<(), CompiledZomesError> {
    let exe = std::env::current_exe().map_err(|e| CompiledZomesError::Child(e.to_string()))?;
    let status = tokio::process::Command::new(exe)
        .arg("compile-zomes")
        .arg("--happ")
        .arg(happ)
        .env(ZOME_CACHE_ENV, &cache.root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| CompiledZomesError::Child(e.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err(CompiledZomesError::Child(status.to_string()))
    }
}

/// Puts the cached modules of `zomes` into the wasm database of the conductor whose data root is
/// `data_root` (it must have started once, so that its database key exists), where it lacks them.
/// Returns how many it added. The modules are not loaded here: that would cost the node their
/// memory twice, and the conductor compiles again from the wasm any module it cannot load.
///
/// Once the database holds every zome's module, a marker listing them saves the next start the
/// key derivation (Argon2, about a second) and the database reads.
pub async fn seed_wasm_store(
    data_root: &Path,
    passphrase: Arc<Mutex<sodoken::LockedArray>>,
    cache: &ZomeCache,
    zomes: &[ZomeWasm],
) -> Result<usize, CompiledZomesError> {
    let seed_error = |reason: String| CompiledZomesError::Seed { path: data_root.to_path_buf(), reason };
    let marker = data_root.join(SEEDED_MARKER);
    let seeded: Vec<String> = zomes.iter().map(|z| z.hash.to_string()).collect();
    if std::fs::read_to_string(&marker).is_ok_and(|done| seeded.iter().all(|h| done.lines().any(|l| l == h))) {
        return Ok(0);
    }
    // The same key and database the conductor opened (holochain's Spaces::new).
    let locked = tokio::fs::read_to_string(data_root.join("databases/db.key"))
        .await
        .map_err(|e| seed_error(format!("db.key: {e}")))?;
    let key = DbKey::load(locked, passphrase).await.map_err(|e| seed_error(format!("db.key: {e}")))?;
    let config = HolochainDataConfig { key: Some(key), max_readers: 1, ..Default::default() };
    let db = open_db(data_root.join("databases"), Wasm, config).await.map_err(|e| seed_error(e.to_string()))?;
    let store = WasmStore::new(db);
    let mut added = 0;
    let mut unseeded = 0;
    for zome in zomes {
        if store.as_read().contains_compiled(&zome.hash).await.map_err(|e| seed_error(e.to_string()))? {
            continue;
        }
        let Some(module) = cache.read(&zome.hash) else {
            unseeded += 1;
            continue;
        };
        let wasm: DnaWasmHashed = HoloHashed::with_pre_hashed(DnaWasm { code: zome.code.clone() }, zome.hash.clone());
        store.put(wasm).await.map_err(|e| seed_error(e.to_string()))?;
        store.put_compiled(zome.hash.clone(), module).await.map_err(|e| seed_error(e.to_string()))?;
        added += 1;
    }
    if unseeded == 0 {
        let _ = std::fs::write(&marker, seeded.join("\n"));
    }
    Ok(added)
}

/// In the conductor's data root: the wasm hashes whose compiled modules its database holds.
const SEEDED_MARKER: &str = "compiled-zomes.seeded";

/// The cache holds native code this process will run: only its owner may write it.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// An exclusive `flock` on a file, released when dropped (or when the process dies).
struct DirLock(std::fs::File);

impl DirLock {
    fn exclusive(path: &Path) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        // SAFETY: flock on a descriptor this struct owns for as long as the lock is held.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self(file))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: unlocks the descriptor locked in `exclusive`, still open here.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}
