//! The real thing: a child cgroup on the machine's cgroup2 with memory.high below memory.max
//! and no swap, a real balloon that grows until throttled, a sibling that must live. Needs
//! root and a cgroup2 /sys/fs/cgroup with the memory controller (CI on a Debian 12 box has
//! both), so it is ignored by a plain `cargo test` and run by `make test`; run anywhere else,
//! it fails saying why.

mod common;

use common::*;
use std::ffi::CString;
use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const M: u64 = 1 << 20;
const HIGH: u64 = 96 * M;
const MAX: u64 = 160 * M;

/// Why cgroup2 cannot be used here, or `None` when it can.
fn unusable() -> Option<String> {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if !mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/cgroup") && l.starts_with("cgroup2 "))
    {
        return Some("/sys/fs/cgroup is not a cgroup2 mount (cgroup v1 or hybrid host)".into());
    }
    let controllers = fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "memory") {
        return Some("the memory controller is not available in cgroup2".into());
    }
    if !running_as_root() {
        return Some("not root".into());
    }
    None
}

/// The test's cgroup tree, removed (processes killed first) when dropped.
struct Tree {
    base: PathBuf,
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::write(self.base.join("cgroup.kill"), "1");
        std::thread::sleep(Duration::from_millis(200));
        for rel in [
            "user.slice/user-4242.slice/session-1.scope",
            "user.slice/user-4242.slice",
            "user.slice",
            "",
        ] {
            let _ = fs::remove_dir(self.base.join(rel));
        }
    }
}

fn enable_memory(dir: &Path) -> std::io::Result<()> {
    let now = fs::read_to_string(dir.join("cgroup.subtree_control"))?;
    if now.split_whitespace().any(|c| c == "memory") {
        return Ok(());
    }
    fs::write(dir.join("cgroup.subtree_control"), "+memory")
}

fn setup() -> Result<(Tree, PathBuf), String> {
    let root = Path::new("/sys/fs/cgroup");
    let tree = Tree {
        base: root.join(format!("contain-watchdog-test-{}", std::process::id())),
    };
    let slice = tree.base.join("user.slice/user-4242.slice");
    let step = |what: &str, r: std::io::Result<()>| r.map_err(|e| format!("{what}: {e}"));
    step("enable memory at the root", enable_memory(root))?;
    step("mkdir", fs::create_dir_all(tree.base.join("user.slice")))?;
    step("enable memory in the test cgroup", enable_memory(&tree.base))?;
    step(
        "enable memory in user.slice",
        enable_memory(&tree.base.join("user.slice")),
    )?;
    step("mkdir", fs::create_dir_all(slice.join("session-1.scope")))?;
    step(
        "memory.high",
        fs::write(slice.join("memory.high"), HIGH.to_string()),
    )?;
    step("memory.max", fs::write(slice.join("memory.max"), MAX.to_string()))?;
    if slice.join("memory.swap.max").exists() {
        step("memory.swap.max", fs::write(slice.join("memory.swap.max"), "0"))?;
    }
    Ok((tree, slice))
}

/// Makes `cmd` join the cgroup at `dir` between fork and exec.
fn join(cmd: &mut Command, dir: &Path) {
    let procs = CString::new(dir.join("cgroup.procs").into_os_string().into_encoded_bytes()).expect("path");
    // SAFETY: only async-signal-safe calls (open, write, close) run in the child.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, b"0\n".as_ptr().cast(), 2);
            libc::close(fd);
            if n != 2 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
#[ignore = "needs root and a cgroup2 /sys/fs/cgroup with the memory controller: run by make test"]
fn a_real_throttled_balloon_is_killed_and_its_sibling_lives() {
    if let Some(why) = unusable() {
        panic!("cannot run here: {why}");
    }
    let (tree, slice) = setup().unwrap_or_else(|e| panic!("cannot create a memory cgroup here: {e}"));
    let scope = slice.join("session-1.scope");
    let base = tempfile::tempdir().expect("tempdir");
    let wd = Watchdog::start(base.path(), &tree.base, &watchdog_policy(HIGH, MAX));
    assert_eq!(
        wd.counters().expect("counters")["watching"],
        1,
        "{}",
        wd.log_text()
    );

    let mut sibling = Command::new("sleep");
    sibling.arg("300");
    join(&mut sibling, &scope);
    let mut sibling = sibling.spawn().expect("sibling");
    // Unbounded: 8 MiB every 50 ms until the kernel throttles it at memory.high.
    let mut runaway = balloon(8, 50, 0);
    join(&mut runaway, &scope);
    let mut runaway = runaway.spawn().expect("balloon");

    let events = |key: &str| {
        let text = fs::read_to_string(slice.join("memory.events")).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        wait_for(Duration::from_secs(30), || events("high") > 0),
        "the balloon never reached memory.high"
    );
    let at_high = Instant::now();
    let entry = wd.entry(Duration::from_secs(2 + 10));
    let took = at_high.elapsed();
    let entry = entry.unwrap_or_else(|| panic!("nothing ended within grace + 10 s; log:\n{}", wd.log_text()));
    eprintln!("real_cgroup: killed {took:?} after reaching memory.high (grace 2 s): {entry:?}");

    let status = runaway.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "the balloon was OOM-killed");
    assert!(events("oom_kill") >= 1, "by the kernel's memcg OOM killer");
    assert!(alive(&mut sibling), "its sibling in the same cgroup lives");
    assert_eq!(
        field(&entry, "CONTAIN_PID"),
        Some(runaway.id().to_string().as_str()),
        "{entry:?}"
    );
    assert_eq!(field(&entry, "CONTAIN_REASON"), Some("throttled"));
    assert_eq!(
        fs::read_to_string(slice.join("memory.max")).expect("read").trim(),
        MAX.to_string(),
        "memory.max restored"
    );
    assert!(fs::read_to_string(wd.notices.join("4242")).is_ok_and(|n| n.contains("was ended at")));
    reap(sibling);
    drop(tree);
}
