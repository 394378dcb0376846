//! The host as files: every path is under one root, so tests run on fixture trees.

use contain_host::Root;
pub use contain_host::cgroupfs::{key_value as key_values, meminfo_kb};
use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};

/// The machine containctl looks at: the host layer's [`Root`] (`/` on a live box, a fixture
/// tree in tests), plus what only containctl reads.
#[derive(Clone, Debug)]
pub struct Host {
    root: Root,
}

impl Deref for Host {
    type Target = Root;
    fn deref(&self) -> &Root {
        &self.root
    }
}

impl Host {
    pub fn new(root: PathBuf) -> Host {
        Host {
            root: Root::new(root),
        }
    }

    /// A path string as the admin knows it: without the test root in front.
    pub fn unroot(&self, path: &str) -> String {
        if self.is_live() {
            return path.to_string();
        }
        match Path::new(path).strip_prefix(self.base()) {
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => path.to_string(),
        }
    }

    /// Physical memory as systemd sees it: `MemTotal` from /proc/meminfo, in bytes.
    pub fn ram(&self) -> Option<u64> {
        meminfo_kb(&self.read("/proc/meminfo")?, "MemTotal").map(|kb| kb * 1024)
    }

    pub fn swap_total(&self) -> Option<u64> {
        meminfo_kb(&self.read("/proc/meminfo")?, "SwapTotal").map(|kb| kb * 1024)
    }

    /// A counter from /proc/vmstat (`pswpout`, `pgscan_direct` …).
    pub fn vmstat(&self, key: &str) -> Option<u64> {
        key_values(&self.read("/proc/vmstat")?, key)
    }

    /// The comm names of running processes, from /proc/PID/comm.
    pub fn process_names(&self) -> Vec<String> {
        let Ok(dir) = fs::read_dir(self.path("/proc")) else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .filter_map(|e| fs::read_to_string(e.path().join("comm")).ok())
            .map(|s| s.trim_end().to_string())
            .collect()
    }

    pub fn is_running(&self, comm: &str) -> bool {
        // comm is cut at 15 bytes by the kernel.
        let want = &comm[..comm.len().min(15)];
        self.process_names().iter().any(|n| n == want)
    }

    /// The first of `candidates` that exists under the root.
    pub fn find(&self, candidates: &[&str]) -> Option<PathBuf> {
        candidates.iter().map(|c| self.path(c)).find(|p| p.exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo_and_keyed_counters() {
        let meminfo = "MemTotal:       32858852 kB\nMemFree:  100 kB\nSwapTotal:        1048572 kB\n";
        assert_eq!(meminfo_kb(meminfo, "MemTotal"), Some(32858852));
        assert_eq!(meminfo_kb(meminfo, "SwapTotal"), Some(1048572));
        assert_eq!(meminfo_kb(meminfo, "Nope"), None);
        let events = "low 0\nhigh 1836\nmax 0\noom 0\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(key_values(events, "oom_kill"), Some(2));
        assert_eq!(key_values(events, "high"), Some(1836));
        assert_eq!(key_values(events, "oom"), Some(0));
    }

    #[test]
    fn paths_move_under_the_root() {
        let h = Host::new(PathBuf::from("/tmp/fx"));
        assert_eq!(h.path("/etc/pam.d"), PathBuf::from("/tmp/fx/etc/pam.d"));
        assert_eq!(
            h.unroot("/tmp/fx/etc/contain/policy.toml"),
            "/etc/contain/policy.toml"
        );
        assert!(!h.is_live());
        assert!(Host::new(PathBuf::from("/")).is_live());
    }
}
