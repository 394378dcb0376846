//! The generator run as systemd runs it: a process, temp output dirs, every host path under a
//! fixture root (`CONTAIN_ROOT`).

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the generator on a fixture root whose /etc/contain/policy.toml is a link to `policy`
/// (relative to the workspace root; none when it does not exist), with its `policy.d` beside it.
fn run(policy: &str) -> Run {
    let dir = fixture_root();
    let etc = dir.path().join("root/etc");
    let target = workspace().join(policy);
    if fs::symlink_metadata(&target).is_ok() {
        std::os::unix::fs::symlink(&target, etc.join("contain/policy.toml")).unwrap();
        let dropins = target.with_file_name("policy.d");
        if dropins.is_dir() {
            std::os::unix::fs::symlink(&dropins, etc.join("contain/policy.d")).unwrap();
        }
    }
    generate(dir)
}

/// Compares the whole output with `generator/tests/golden/NAME`; `UPDATE_GOLDEN=1` rewrites it.
fn golden(name: &str, policy: &str) {
    let r = run(policy);
    assert!(r.status.success(), "{}", r.stderr);
    assert_eq!(r.json()["outcome"], "applied", "{}", r.stderr);
    let expected_dir = workspace().join("generator/tests/golden").join(name);
    let mut got = r.unit_files();
    got.extend(
        tree(&r.oomd())
            .into_iter()
            .map(|(p, t)| (format!("oomd.conf.d/{p}"), t)),
    );
    got.sort();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = fs::remove_dir_all(&expected_dir);
        for (rel, text) in &got {
            let path = expected_dir.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
    }
    let want = tree(&expected_dir);
    let names = |v: &[(String, String)]| v.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&got),
        names(&want),
        "file list differs from {}",
        expected_dir.display()
    );
    for ((path, g), (_, w)) in got.iter().zip(&want) {
        assert_eq!(g, w, "{path} differs from the golden copy");
    }
}

#[test]
fn golden_shipped_policy() {
    golden("shipped", "packaging/policy.toml");
}

#[test]
fn golden_devvm_example() {
    golden("devvm", "examples/devvm.toml");
}

/// CPU caps end to end: cpu_quota and allowed_cpus per user, group and tree.
#[test]
fn golden_login_node_example() {
    golden("login-node", "examples/login-node.toml");
    let users = fs::read_to_string(
        workspace().join("generator/tests/golden/login-node/user-.slice.d/30-contain.conf"),
    )
    .unwrap();
    assert!(users.contains("\nCPUQuota=400%\nAllowedCPUs=0-47\n"), "{users}");
}

#[test]
fn golden_cloud_disk_example() {
    golden("cloud-disk", "examples/cloud-disk.toml");
}

#[test]
fn exempt_accounts_get_a_dropin_overrides_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    fs::write(&policy, "[users]\nmemory_high = \"600M\"\nmemory_max = \"800M\"\nexempt_users = [\"bob\"]\n[[override]]\nuser = \"alice\"\nmemory_max = \"700M\"\n[[override]]\ngroup = \"hpc\"\ncpu_weight = 50\n").unwrap();
    let r = run(policy.to_str().unwrap());
    assert!(r.status.success(), "{}", r.stderr);
    // pam_contain sets an override at login: no boot-time file per overridden user.
    for capped in ["user-1000.slice.d", "user-1001.slice.d", "user-65534.slice.d"] {
        assert!(!r.units().join(capped).exists(), "{capped} written");
    }
    for exempt in [
        "user-0.slice.d",
        "user-1.slice.d",
        "user-100.slice.d",
        "user-1002.slice.d",
    ] {
        let text = r.read(&format!("{exempt}/31-contain-user.conf"));
        assert!(
            text.contains("MemoryHigh=infinity\nMemoryMax=infinity\n"),
            "{exempt}: {text}"
        );
    }
}

#[test]
fn missing_policy_applies_the_shipped_default() {
    let r = run("/nonexistent/policy.toml");
    assert!(r.status.success());
    assert_eq!(r.json()["outcome"], "default");
    assert!(r.read("user-.slice.d/30-contain.conf").contains("MemoryMax=50%"));
    assert!(
        r.stderr
            .contains("not found: applying the built-in default policy"),
        "{}",
        r.stderr
    );
}

/// The generator on a policy path that `make` fills: it succeeds, applies the built-in default
/// and says `expect` in its status and on stderr.
fn policy_falls_back(make: impl FnOnce(&Path), expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    make(&policy);
    let r = run(policy.to_str().unwrap());
    assert!(
        r.status.success(),
        "a bad policy must never fail the generator: {}",
        r.stderr
    );
    let status = r.json();
    assert_eq!(status["outcome"], "fallback");
    let errors = status["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e.as_str().unwrap().contains(expect)),
        "{errors:?}"
    );
    assert!(r.stderr.contains(expect), "{}", r.stderr);
    // Caps stay on: the built-in default is applied.
    let users = r.read("user-.slice.d/30-contain.conf");
    assert!(
        users.contains("MemoryMax=50%") && users.contains("(built-in default policy)"),
        "{users}"
    );
    assert!(r.oomd().join("50-contain.conf").exists());
}

fn broken_policy_falls_back(text: &str, mode: u32, expect: &str) {
    policy_falls_back(
        |policy| {
            fs::write(policy, text).unwrap();
            fs::set_permissions(policy, fs::Permissions::from_mode(mode)).unwrap();
        },
        expect,
    );
}

#[test]
fn invalid_policy_falls_back_with_located_errors() {
    broken_policy_falls_back(
        "[users]\nmemory_max = \"lots\"\n",
        0o644,
        "policy.toml:2:14: `memory_max` in [users]",
    );
}

#[test]
fn group_writable_policy_is_refused() {
    broken_policy_falls_back(
        "[users]\nmemory_max = \"1G\"\n",
        0o664,
        "lets group or others write it",
    );
}

#[test]
fn dangling_symlink_policy_falls_back() {
    policy_falls_back(
        |policy| std::os::unix::fs::symlink(policy.with_file_name("gone.toml"), policy).unwrap(),
        "cannot read",
    );
}

#[test]
fn fifo_policy_is_refused_without_blocking() {
    policy_falls_back(
        |policy| nix::unistd::mkfifo(policy, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap(),
        "not a regular file",
    );
}

#[test]
fn oversized_policy_is_refused() {
    let text = "#".repeat(2 << 20);
    broken_policy_falls_back(&text, 0o644, "over the 1048576 byte limit");
}

#[test]
fn policy_that_is_a_directory_falls_back() {
    policy_falls_back(|policy| fs::create_dir(policy).unwrap(), "not a regular file");
}

#[test]
fn symlinked_policy_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.toml");
    fs::write(&real, "[users]\nmemory_max = \"3G\"\n").unwrap();
    let link = dir.path().join("policy.toml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let r = run(link.to_str().unwrap());
    assert_eq!(r.json()["outcome"], "applied");
    assert!(r.read("user-.slice.d/30-contain.conf").contains("MemoryMax=3G"));
}

/// A policy file and its `policy.d/` drop-ins in a fresh directory.
fn policy_with_dropins(main: &str, dropins: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    fs::write(&policy, main).unwrap();
    fs::create_dir(dir.path().join("policy.d")).unwrap();
    for (name, text) in dropins {
        fs::write(dir.path().join("policy.d").join(name), text).unwrap();
    }
    (dir, policy)
}

#[test]
fn dropin_directory_is_merged_in_lexical_order() {
    let (_dir, policy) = policy_with_dropins(
        "[users]\nmemory_max = \"1G\"\n",
        &[
            ("20-b.toml", "[users]\nmemory_max = \"3G\"\n"),
            ("10-a.toml", "[users]\nmemory_max = \"2G\"\n"),
            ("README", "not toml, ignored"),
        ],
    );
    let r = run(policy.to_str().unwrap());
    assert_eq!(r.json()["sources"].as_array().unwrap().len(), 3);
    assert!(r.read("user-.slice.d/30-contain.conf").contains("MemoryMax=3G"));
}

#[test]
fn broken_dropin_falls_back_too() {
    let (_dir, policy) = policy_with_dropins(
        "[users]\nmemory_max = \"1G\"\n",
        &[("10-a.toml", "[users]\nmemory_max = 1G\n")],
    );
    let r = run(policy.to_str().unwrap());
    assert_eq!(r.json()["outcome"], "fallback");
    assert!(r.stderr.contains("policy.d/10-a.toml:2:"), "{}", r.stderr);
}

#[test]
fn unwritable_output_fails_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("normal");
    fs::write(&blocker, "a file where a directory should be").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_contain-generator"))
        .arg(&blocker)
        .env("CONTAIN_ROOT", dir.path())
        .env("CONTAIN_LOG", "stderr")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not write every unit"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn no_arguments_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_contain-generator"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
#[ignore = "changing a file's owner needs root: run by make test"]
fn policy_owned_by_another_user_is_refused() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "changing a file's owner needs root"
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    fs::write(&policy, "[users]\nmemory_max = \"1G\"\n").unwrap();
    std::os::unix::fs::chown(&policy, Some(65534), None).unwrap();
    let r = run(policy.to_str().unwrap());
    assert_eq!(r.json()["outcome"], "fallback");
    assert!(r.stderr.contains("owned by uid 65534, not root"), "{}", r.stderr);
}
