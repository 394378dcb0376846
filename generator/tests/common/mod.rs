//! Shared by the generator's integration tests: the generator run as systemd runs it (a
//! process, temp output dirs, every host path under a fixture root through `CONTAIN_ROOT`) and
//! the files it wrote.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub struct Run {
    pub dir: tempfile::TempDir,
    pub status: std::process::ExitStatus,
    pub stderr: String,
}

impl Run {
    pub fn units(&self) -> PathBuf {
        self.dir.path().join("normal")
    }
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    pub fn oomd(&self) -> PathBuf {
        self.root().join("run/systemd/oomd.conf.d")
    }
    pub fn json(&self) -> serde_json::Value {
        let text = fs::read_to_string(self.root().join("run/contain/generator.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.units().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
    /// Every unit file written, by path under the unit directory (none when it was not made).
    pub fn unit_files(&self) -> Vec<(String, String)> {
        let units = self.units();
        if units.is_dir() { tree(&units) } else { Vec::new() }
    }
}

/// A fresh fixture root (`root/` in the returned directory): the test accounts' /etc/passwd and
/// /etc/group and an empty /etc/contain.
pub fn fixture_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("root/etc");
    fs::create_dir_all(etc.join("contain")).unwrap();
    for f in ["passwd", "group"] {
        fs::copy(workspace().join("tests/fixtures/etc").join(f), etc.join(f)).unwrap();
    }
    dir
}

/// Runs the generator on `dir`'s fixture root, as `contain-generator NORMAL EARLY LATE`.
pub fn generate(dir: tempfile::TempDir) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_contain-generator"))
        .current_dir(workspace())
        .args([
            dir.path().join("normal"),
            dir.path().join("early"),
            dir.path().join("late"),
        ])
        .env("CONTAIN_ROOT", dir.path().join("root"))
        .env("CONTAIN_LOG", "stderr")
        .output()
        .unwrap();
    Run {
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).into(),
        dir,
    }
}

/// Every file below `root` with its text, sorted by path.
pub fn tree(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}
