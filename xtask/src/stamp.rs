//! Input stamps: a step records the SHA-256 of everything it read, and a later run whose inputs
//! hash the same skips it. Only slow checks and installs use them (the reproducibility rebuild,
//! the dashboard rebuild, the test clients); tests are never skipped.
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

/// The hash of a step's inputs, built up part by part. Each part is framed with its length, so
/// no two different sequences of parts hash alike.
#[derive(Default)]
pub struct Inputs(Sha256);

impl Inputs {
    pub fn part(&mut self, label: &str, bytes: &[u8]) -> &mut Self {
        for piece in [label.as_bytes(), bytes] {
            self.0.update((piece.len() as u64).to_le_bytes());
            self.0.update(piece);
        }
        self
    }

    /// A file's path (as given) and its bytes; a missing file counts as its own input.
    pub fn file(&mut self, label: &str, path: &Path) -> &mut Self {
        match std::fs::read(path) {
            Ok(bytes) => self.part(label, &bytes),
            Err(_) => self.part(label, b"<missing>"),
        }
    }

    /// The standard output of a command (e.g. a tool's version); a command that fails counts as
    /// its own input.
    pub fn command_output(&mut self, program: &str, args: &[&str]) -> &mut Self {
        let out = std::process::Command::new(program).args(args).output();
        let bytes = match out {
            Ok(out) if out.status.success() => out.stdout,
            _ => b"<failed>".to_vec(),
        };
        self.part(&format!("{program} {}", args.join(" ")), &bytes)
    }

    pub fn hex(&self) -> String {
        self.0.clone().finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Where a step keeps the hash of the inputs it last succeeded on.
pub struct Stamp(PathBuf);

impl Stamp {
    pub fn at(path: PathBuf) -> Self {
        Self(path)
    }

    /// The step last succeeded on exactly these inputs.
    pub fn matches(&self, inputs: &Inputs) -> bool {
        std::fs::read_to_string(&self.0).is_ok_and(|s| s.trim() == inputs.hex())
    }

    pub fn record(&self, inputs: &Inputs) -> anyhow::Result<()> {
        if let Some(dir) = self.0.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&self.0, inputs.hex()).with_context(|| format!("writing {}", self.0.display()))
    }
}

/// The source files a cargo dep-info file (`<artifact>.d`) lists for its artifact.
pub fn dep_info_sources(dep_info: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(dep_info).with_context(|| format!("reading {}", dep_info.display()))?;
    let first = text.lines().next().unwrap_or_default();
    let (_, deps) = first.split_once(": ").context("a dep-info file without `artifact: sources`")?;
    // Paths are separated by spaces; a space inside a path is written `\ `.
    let mut paths = vec![];
    let mut current = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => current.push(chars.next().unwrap_or(' ')),
            ' ' => {
                if !current.is_empty() {
                    paths.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        paths.push(PathBuf::from(current));
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_differ_when_any_part_differs() {
        let hash = |parts: &[(&str, &[u8])]| {
            let mut i = Inputs::default();
            for (label, bytes) in parts {
                i.part(label, bytes);
            }
            i.hex()
        };
        assert_eq!(hash(&[("a", b"1")]), hash(&[("a", b"1")]));
        assert_ne!(hash(&[("a", b"1")]), hash(&[("a", b"2")]));
        assert_ne!(hash(&[("ab", b"")]), hash(&[("a", b"b")]), "parts are framed");
    }

    #[test]
    fn a_stamp_matches_only_the_inputs_it_recorded() {
        let dir = std::env::temp_dir().join(format!("xtask-stamp-{}", std::process::id()));
        let stamp = Stamp::at(dir.join("nested/step"));
        let mut inputs = Inputs::default();
        inputs.part("x", b"1");
        assert!(!stamp.matches(&inputs));
        stamp.record(&inputs).unwrap();
        assert!(stamp.matches(&inputs));
        inputs.part("y", b"2");
        assert!(!stamp.matches(&inputs));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn reads_the_sources_of_a_dep_info_file() {
        let file = std::env::temp_dir().join(format!("xtask-dep-info-{}.d", std::process::id()));
        std::fs::write(&file, "/t/x.wasm: /src/lib.rs /src/my\\ dir/a.rs /reg/b.rs\n\n/src/lib.rs:\n").unwrap();
        let sources = dep_info_sources(&file).unwrap();
        let _ = std::fs::remove_file(&file);
        assert_eq!(
            sources,
            [PathBuf::from("/src/lib.rs"), PathBuf::from("/src/my dir/a.rs"), PathBuf::from("/reg/b.rs")]
        );
    }
}
