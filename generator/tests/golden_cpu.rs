//! CPU caps end to end: examples/login-node.toml (cpu_quota and allowed_cpus per user, group
//! and tree) renders exactly generator/tests/golden/login-node; `UPDATE_GOLDEN=1` rewrites it.
//! tests/verify-units.sh has systemd-analyze verify the same units.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn tree(root: &Path) -> Vec<(String, String)> {
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

#[test]
fn golden_login_node_example() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("root/etc");
    fs::create_dir_all(etc.join("contain")).unwrap();
    for f in ["passwd", "group"] {
        fs::copy(workspace().join("tests/fixtures/etc").join(f), etc.join(f)).unwrap();
    }
    fs::copy(
        workspace().join("examples/login-node.toml"),
        etc.join("contain/policy.toml"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_contain-generator"))
        .arg(dir.path().join("normal"))
        .env("CONTAIN_ROOT", dir.path().join("root"))
        .env("CONTAIN_LOG", "stderr")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let status = fs::read_to_string(dir.path().join("root/run/contain/generator.json")).unwrap();
    assert!(status.contains("\"outcome\": \"applied\""), "{status}");

    let got = tree(&dir.path().join("normal"));
    let golden = workspace().join("generator/tests/golden/login-node");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = fs::remove_dir_all(&golden);
        for (rel, text) in &got {
            let path = golden.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
    }
    assert_eq!(got, tree(&golden), "differs from {}", golden.display());
    let users = &got
        .iter()
        .find(|(p, _)| p == "user-.slice.d/30-contain.conf")
        .unwrap()
        .1;
    assert!(users.contains("\nCPUQuota=400%\nAllowedCPUs=0-47\n"), "{users}");
}
