//! Shared by the integration tests: a memory balloon (the contain-test-balloon helper) and
//! the real watchdog binary started on a given root.

#![allow(dead_code)]

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The UID the test slices belong to (user-4242.slice); balloons and sleepers run as it when the
/// tests run as root, since root's processes are never a user's runaway.
pub const SLICE_UID: u32 = 4242;

/// A policy capping each user at `high` and `max` bytes (whole MiB) with no swap, the watchdog
/// on with a 2 s grace.
pub fn watchdog_policy(high: u64, max: u64) -> String {
    let mib = |bytes: u64| bytes >> 20;
    format!(
        "[users]\nmemory_high = \"{}M\"\nmemory_max = \"{}M\"\nmemory_swap_max = 0\nexempt_uid_below = 1000\n\n\
         [watchdog]\nenabled = true\ngrace = \"2s\"\n",
        mib(high),
        mib(max)
    )
}

pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Runs `cmd` as the slice's user when the tests run as root (an exec'd program needs nothing
/// of the test's own files).
pub fn as_slice_user(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if running_as_root() {
        cmd.uid(SLICE_UID).gid(SLICE_UID);
    }
    cmd
}

/// Starts a balloon child; `setup` runs in the child before exec (e.g. joining a cgroup).
pub fn balloon(step_mb: u64, every_ms: u64, limit_mb: u64) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_contain-test-balloon"));
    cmd.args([step_mb, every_ms, limit_mb].map(|n| n.to_string()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if running_as_root() {
        cmd.arg(SLICE_UID.to_string());
    }
    cmd
}

pub fn rss_kb(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

pub fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Ends a child the test started and waits for it, whatever state it is in.
pub fn reap(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Alive and not a zombie.
pub fn alive(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(None))
}

pub fn wait_for(timeout: Duration, mut what: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if what() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    what()
}

/// The real `contain-watchdog`, its roots moved into `base`, its journal a socket we read.
pub struct Watchdog {
    pub child: Child,
    pub journal: UnixDatagram,
    pub state: PathBuf,
    pub notices: PathBuf,
    pub log: PathBuf,
}

impl Watchdog {
    pub fn start(base: &Path, cgroup_root: &Path, policy_text: &str) -> Watchdog {
        // One fixture root (CONTAIN_ROOT): its cgroupfs and /proc are links to the ones given.
        let root = base.join("root");
        fs::create_dir_all(root.join("sys/fs")).expect("root");
        fs::create_dir_all(root.join("etc/contain")).expect("root");
        fs::create_dir_all(root.join("run/systemd/journal")).expect("root");
        std::os::unix::fs::symlink(cgroup_root, root.join("sys/fs/cgroup")).expect("cgroupfs link");
        std::os::unix::fs::symlink("/proc", root.join("proc")).expect("proc link");
        let state = root.join("run/contain");
        let notices = root.join("var/lib/contain/notices");
        fs::write(root.join("etc/contain/policy.toml"), policy_text).expect("policy");
        let sock = root.join("run/systemd/journal/socket");
        let journal = UnixDatagram::bind(&sock).expect("journal socket");
        journal
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let log = base.join("watchdog.log");
        // CONTAIN_WATCHDOG_BIN: run a copied test binary elsewhere (e.g. inside the test VM).
        let bin = std::env::var_os("CONTAIN_WATCHDOG_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_contain-watchdog").into());
        let child = Command::new(bin)
            .env("CONTAIN_ROOT", &root)
            .env("CONTAIN_KMSG", "off")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("log"))
            .spawn()
            .expect("contain-watchdog starts");
        let w = Watchdog {
            child,
            journal,
            state,
            notices,
            log,
        };
        assert!(
            wait_for(Duration::from_secs(10), || w.counters().is_some()),
            "the watchdog wrote no counters; its log:\n{}",
            w.log_text()
        );
        w
    }

    pub fn counters(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&fs::read_to_string(self.state.join("watchdog.json")).ok()?).ok()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The next journal entry as fields, if one comes within `timeout`.
    pub fn entry(&self, timeout: Duration) -> Option<Vec<(String, String)>> {
        let end = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < end {
            if let Ok(n) = self.journal.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                return Some(
                    text.lines()
                        .filter_map(|l| l.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                );
            }
        }
        None
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn field<'a>(entry: &'a [(String, String)], key: &str) -> Option<&'a str> {
    entry.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}
