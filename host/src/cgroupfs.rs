//! cgroup v2 files, read in the kernel's own formats: limits, events, pressure, a process's
//! cgroup, and where a slice unit's cgroup is.

use crate::files::read_small;
use crate::root::Root;
use serde::{Serialize, Serializer};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// A cgroup limit file: a number, or `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    Value(u64),
    Max,
    /// The file is there but holds no limit the kernel would write (or cannot be read): never
    /// taken for the policy's value.
    Unreadable,
}

impl Cap {
    pub fn parse(text: &str) -> Option<Cap> {
        match text.trim() {
            "max" => Some(Cap::Max),
            t => t.parse().ok().map(Cap::Value),
        }
    }

    pub fn value(self) -> Option<u64> {
        match self {
            Cap::Value(v) => Some(v),
            Cap::Max | Cap::Unreadable => None,
        }
    }
}

impl Serialize for Cap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cap::Value(v) => s.serialize_u64(*v),
            Cap::Max => s.serialize_str("max"),
            Cap::Unreadable => s.serialize_str("unreadable"),
        }
    }
}

/// `some avg10=… avg60=… avg300=… total=…` / `full …`: avg10 of each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Pressure {
    pub some_avg10: f64,
    pub full_avg10: f64,
}

pub fn parse_pressure(text: &str) -> Option<Pressure> {
    let mut p = Pressure::default();
    let mut seen = false;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let kind = f.next();
        let avg10 = f
            .find_map(|kv| kv.strip_prefix("avg10="))
            .and_then(|v| v.parse::<f64>().ok());
        match (kind, avg10) {
            (Some("some"), Some(v)) => {
                p.some_avg10 = v;
                seen = true;
            }
            (Some("full"), Some(v)) => p.full_avg10 = v,
            _ => {}
        }
    }
    seen.then_some(p)
}

/// `total=` of the `some` line of a PSI file, in microseconds.
pub fn pressure_some_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("total="))
        .and_then(|v| v.parse().ok())
}

/// A value from `key value` lines (memory.events, memory.stat, /proc/vmstat, io.weight's `default`).
pub fn key_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next()? == key).then(|| f.next()?.parse().ok())?
    })
}

/// A `Key:   123 kB` value from /proc/meminfo, in kB.
pub fn meminfo_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.split_whitespace().next()?.parse().ok())?
    })
}

/// What contain reads of one cgroup. `None` where the file is absent (controller off, a new
/// slice) or holds no value the kernel would write.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub memory_current: Option<u64>,
    pub memory_high: Option<Cap>,
    pub memory_max: Option<Cap>,
    pub memory_peak: Option<u64>,
    pub swap_current: Option<u64>,
    pub swap_max: Option<Cap>,
    pub pressure: Option<Pressure>,
    /// io.pressure: time stalled on IO, a throttled cap's waits included.
    pub io_pressure: Option<Pressure>,
    /// io.max as the kernel writes it: one `MAJ:MIN rbps=… wbps=… riops=… wiops=…` line per
    /// capped device.
    pub io_max: Option<String>,
    pub pids_current: Option<u64>,
    pub pids_max: Option<Cap>,
    pub oom_kill: Option<u64>,
    pub events_high: Option<u64>,
    pub events_max: Option<u64>,
    pub cpu_weight: Option<u64>,
    pub io_weight: Option<u64>,
    /// cpu.max as CPU time per second in microseconds (`CPUQuotaPerSecUSec`), or `max`.
    pub cpu_quota_per_sec: Option<Cap>,
    /// cpuset.cpus as the kernel writes it (`0-3,8`); empty means every CPU.
    pub cpuset_cpus: Option<String>,
}

/// cpu.max (`QUOTA PERIOD` or `max PERIOD`) as CPU time per second, the way systemd's
/// `CPUQuota=` is given.
pub fn parse_cpu_max(text: &str) -> Option<Cap> {
    let mut f = text.split_whitespace();
    let (quota, period) = (f.next()?, f.next()?.parse::<u64>().ok()?);
    if period == 0 {
        return None;
    }
    match quota {
        "max" => Some(Cap::Max),
        q => Some(Cap::Value(
            u64::try_from(u128::from(q.parse::<u64>().ok()?) * 1_000_000 / u128::from(period)).ok()?,
        )),
    }
}

impl Stats {
    /// Reads a cgroup directory. Every read is bounded and never blocks.
    pub fn read(dir: &Path) -> Stats {
        let file = |name: &str| read_small(&dir.join(name)).ok();
        let num = |name: &str| file(name).and_then(|t| t.trim().parse().ok());
        // Missing: the controller is off or the slice is new. There but no limit: unreadable.
        let cap = |name: &str| match read_small(&dir.join(name)) {
            Ok(text) => Some(Cap::parse(&text).unwrap_or(Cap::Unreadable)),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => None,
            Err(_) => Some(Cap::Unreadable),
        };
        let events = file("memory.events").unwrap_or_default();
        let event = |key: &str| key_value(&events, key);
        Stats {
            memory_current: num("memory.current"),
            memory_high: cap("memory.high"),
            memory_max: cap("memory.max"),
            memory_peak: num("memory.peak"),
            swap_current: num("memory.swap.current"),
            swap_max: cap("memory.swap.max"),
            pressure: file("memory.pressure").and_then(|t| parse_pressure(&t)),
            io_pressure: file("io.pressure").and_then(|t| parse_pressure(&t)),
            io_max: file("io.max"),
            pids_current: num("pids.current"),
            pids_max: cap("pids.max"),
            oom_kill: event("oom_kill"),
            events_high: event("high"),
            events_max: event("max"),
            cpu_weight: num("cpu.weight"),
            // io.weight reads `default 100` (plus per-device lines).
            io_weight: file("io.weight").and_then(|t| key_value(&t, "default")),
            cpu_quota_per_sec: file("cpu.max").map(|t| parse_cpu_max(&t).unwrap_or(Cap::Unreadable)),
            cpuset_cpus: file("cpuset.cpus").map(|t| t.trim().to_string()),
        }
    }
}

/// The finite rates of one io.max key (`rbps`, `wbps`) over every device line.
pub fn io_max_rates(text: &str, key: &str) -> Vec<u64> {
    text.lines()
        .flat_map(|l| l.split_whitespace().skip(1))
        .filter_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .collect()
}

/// The cgroup v2 path in a /proc/PID/cgroup text (the `0::` line). A path the kernel would not
/// write (relative, `.` or `..` components, control characters) counts as none.
pub fn unified_cgroup(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim)
        .filter(|p| {
            p.starts_with('/')
                && !p.chars().any(char::is_control)
                && p.split('/').all(|c| c != "." && c != "..")
        })
}

/// The cgroup of a process from a /proc/PID/cgroup file.
pub fn read_cgroup(proc_cgroup: &Path) -> Option<String> {
    let text = read_small(proc_cgroup).ok()?;
    unified_cgroup(&text).map(str::to_owned)
}

/// The UID of the `user-UID.slice` a cgroup path is in (`/user.slice/user-1000.slice/…` → 1000).
pub fn user_slice_uid(cgroup: &str) -> Option<u32> {
    cgroup
        .strip_prefix("/user.slice/user-")?
        .split('/')
        .next()?
        .strip_suffix(".slice")?
        .parse()
        .ok()
}

/// The cgroup directory of a slice unit, relative to the cgroup root:
/// `system-t3\x2dserve.slice` → `system.slice/system-t3\x2dserve.slice`. systemd nests a slice
/// under the slice named by each `-`-separated prefix of its name.
pub fn slice_path(slice: &str) -> PathBuf {
    let mut path = PathBuf::new();
    let Some(stem) = slice.strip_suffix(".slice") else {
        return path;
    };
    if stem == "-" || stem.is_empty() {
        return path;
    }
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    path
}

/// A cgroup's direct children whose names match `keep`, as paths relative to the cgroup root.
pub fn children(root: &Root, rel: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let Ok(dir) = fs::read_dir(root.cgroup(rel)) else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| keep(n))
        .map(|n| format!("{}/{n}", rel.trim_end_matches('/')))
        .collect();
    out.sort();
    out
}

/// Every cgroup below the root (depth-first, bounded), as relative paths.
pub fn walk(root: &Root, max_depth: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![("/".to_string(), 0usize)];
    while let Some((rel, depth)) = stack.pop() {
        if depth >= max_depth {
            continue;
        }
        for child in children(root, &rel, |_| true) {
            stack.push((child.clone(), depth + 1));
            out.push(child);
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kernel_formats() {
        let text = "some avg10=12.50 avg60=3.10 avg300=0.70 total=123456\nfull avg10=9.25 avg60=2.00 avg300=0.50 total=99999\n";
        let p = parse_pressure(text).expect("psi");
        assert_eq!((p.some_avg10, p.full_avg10), (12.5, 9.25));
        assert_eq!(pressure_some_total(text), Some(123456));
        assert_eq!(parse_pressure("garbage"), None);
        assert_eq!(Cap::parse("max\n"), Some(Cap::Max));
        assert_eq!(Cap::parse("838860800\n"), Some(Cap::Value(838860800)));
        assert_eq!(Cap::parse("x"), None);
        let events = "low 0\nhigh 1836\nmax 0\noom 0\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(key_value(events, "oom_kill"), Some(2));
        assert_eq!(key_value(events, "oom"), Some(0));
        assert_eq!(
            meminfo_kb("MemTotal:  32858852 kB\nSwapTotal: 0 kB\n", "MemTotal"),
            Some(32858852)
        );
    }

    #[test]
    fn the_unified_line_is_found_and_odd_paths_refused() {
        let hybrid = "12:pids:/user.slice\n1:name=systemd:/user.slice/x\n0::/user.slice/user-1000.slice/session-3.scope\n";
        assert_eq!(
            unified_cgroup(hybrid),
            Some("/user.slice/user-1000.slice/session-3.scope")
        );
        assert_eq!(unified_cgroup("12:pids:/x\n"), None);
        assert_eq!(unified_cgroup("0::/\n"), Some("/"));
        for odd in [
            "0::/user.slice/user-1000.slice/../../system.slice\n",
            "0::/user.slice/user-1000.slice/./x\n",
            "0::user.slice/user-1000.slice\n",
            "0::/user.slice/user-1000.slice/a\u{1b}b\n",
            "0::\n",
        ] {
            assert_eq!(unified_cgroup(odd), None, "{odd:?}");
        }
    }

    #[test]
    fn user_slices_and_slice_paths() {
        assert_eq!(
            user_slice_uid("/user.slice/user-1000.slice/session-3.scope"),
            Some(1000)
        );
        assert_eq!(user_slice_uid("/user.slice/user-0.slice"), Some(0));
        assert_eq!(user_slice_uid("/user.slice/user-x.slice"), None);
        assert_eq!(user_slice_uid("/system.slice/cron.service"), None);
        assert_eq!(
            slice_path("system-t3\\x2dserve.slice"),
            PathBuf::from("system.slice/system-t3\\x2dserve.slice")
        );
        assert_eq!(
            slice_path("user-1000.slice"),
            PathBuf::from("user.slice/user-1000.slice")
        );
        assert_eq!(slice_path("-.slice"), PathBuf::new());
    }

    #[test]
    fn stats_are_read_without_hanging_on_odd_files() {
        let dir = tempfile::tempdir().expect("tmp");
        for (f, v) in [
            ("memory.high", "12884901888\n"),
            ("memory.max", "max\n"),
            ("pids.max", "4096\n"),
            ("cpu.weight", "100\n"),
            ("io.weight", "default 50\n8:0 200\n"),
            ("memory.events", "high 3\noom_kill 1\n"),
        ] {
            fs::write(dir.path().join(f), v).expect("write");
        }
        nix::unistd::mkfifo(
            &dir.path().join("memory.current"),
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .expect("mkfifo");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("memory.swap.max")).expect("link");
        let s = Stats::read(dir.path());
        assert_eq!(s.memory_high, Some(Cap::Value(12 << 30)));
        assert_eq!(s.memory_max, Some(Cap::Max));
        assert_eq!(s.pids_max, Some(Cap::Value(4096)));
        assert_eq!((s.cpu_weight, s.io_weight), (Some(100), Some(50)));
        assert_eq!((s.events_high, s.oom_kill), (Some(3), Some(1)));
        assert_eq!((s.memory_current, s.swap_max), (None, Some(Cap::Unreadable)));
        fs::write(dir.path().join("memory.high"), "banana\n").expect("write");
        assert_eq!(Stats::read(dir.path()).memory_high, Some(Cap::Unreadable));
    }
}
