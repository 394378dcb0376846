//! What the kernel should show for a policy's limits: sizes resolved against RAM the way
//! systemd does it (shares of physical pages, rounded down to a page), and the comparison.

use crate::cgroup::{Cap, Stats};
use crate::host::Host;
use contain_policy::Limits;
use contain_policy::value::{Size, Tasks, human_bytes};
use serde::Serialize;

const PAGE: u64 = 4096;

/// What systemd resolves shares against.
#[derive(Clone, Copy, Debug)]
pub struct Machine {
    /// Physical memory in bytes (MemTotal).
    pub ram: u64,
    /// The largest task count the kernel allows (min of pid_max and threads-max).
    pub tasks: u64,
}

impl Machine {
    pub fn of(host: &Host) -> Machine {
        let num = |p: &str| host.read(p).and_then(|t| t.trim().parse::<u64>().ok());
        let tasks = match (
            num("/proc/sys/kernel/pid_max"),
            num("/proc/sys/kernel/threads-max"),
        ) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(4_194_304),
        };
        Machine {
            ram: host.ram().unwrap_or(0),
            tasks,
        }
    }

    /// `MemoryMax=` as the kernel will show it in memory.max.
    pub fn size(&self, s: Size) -> Cap {
        match s {
            Size::Infinity => Cap::Max,
            Size::Bytes(b) => Cap::Value(b / PAGE * PAGE),
            // systemd's physical_memory_scale(): pages × share, rounded down, × page size.
            Size::Permyriad(p) => Cap::Value((self.ram / PAGE) * p as u64 / 10_000 * PAGE),
        }
    }

    pub fn tasks(&self, t: Tasks) -> Cap {
        match t {
            Tasks::Infinity => Cap::Max,
            Tasks::Count(n) => Cap::Value(n),
            Tasks::Permyriad(p) => Cap::Value(self.tasks * p as u64 / 10_000),
        }
    }
}

/// One setting that differs between the kernel and the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// systemd's property name, e.g. `MemoryMax`.
    pub property: &'static str,
    pub live: Option<String>,
    pub policy: String,
}

fn show_cap(c: Cap, bytes: bool) -> String {
    match c {
        Cap::Max => "infinity".into(),
        Cap::Value(v) if bytes => human_bytes(v),
        Cap::Value(v) => v.to_string(),
    }
}

/// Compares a cgroup's files with the limits the policy gives it. Only set limits are checked.
pub fn compare(m: &Machine, limits: &Limits, stats: &Stats) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut check = |property, live: Option<Cap>, want: Cap, bytes: bool, slack: u64| {
        let same = match (live, want) {
            (Some(Cap::Max), Cap::Max) => true,
            (Some(Cap::Value(a)), Cap::Value(b)) => a.abs_diff(b) <= slack,
            _ => false,
        };
        if !same {
            out.push(Mismatch {
                property,
                live: live.map(|c| show_cap(c, bytes)),
                policy: show_cap(want, bytes),
            });
        }
    };
    // The kernel keeps limits in pages: one page of difference is rounding, not drift.
    if let Some(s) = limits.memory_high {
        check("MemoryHigh", stats.memory_high, m.size(s), true, PAGE);
    }
    if let Some(s) = limits.memory_max {
        check("MemoryMax", stats.memory_max, m.size(s), true, PAGE);
    }
    if let Some(s) = limits.memory_swap_max
        && stats.swap_max.is_some()
    {
        check("MemorySwapMax", stats.swap_max, m.size(s), true, PAGE);
    }
    if let Some(t) = limits.tasks_max {
        // A share of the task limit depends on which sysctl systemd read: allow 1%.
        let slack = match t {
            Tasks::Permyriad(_) => m.tasks / 100,
            _ => 0,
        };
        check("TasksMax", stats.pids_max, m.tasks(t), false, slack);
    }
    if let Some(w) = limits.cpu_weight
        && stats.cpu_weight.is_some()
    {
        check(
            "CPUWeight",
            stats.cpu_weight.map(Cap::Value),
            Cap::Value(w.into()),
            false,
            0,
        );
    }
    if let Some(w) = limits.io_weight
        && stats.io_weight.is_some()
    {
        check(
            "IOWeight",
            stats.io_weight.map(Cap::Value),
            Cap::Value(w.into()),
            false,
            0,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_resolve_like_systemd() {
        let m = Machine {
            ram: 2_000_000 * 1024,
            tasks: 4_194_304,
        };
        // 500000 pages × 50% = 250000 pages.
        assert_eq!(m.size(Size::Permyriad(5000)), Cap::Value(250_000 * 4096));
        assert_eq!(m.size(Size::Bytes(800 << 20)), Cap::Value(800 << 20));
        assert_eq!(m.size(Size::Bytes(4097)), Cap::Value(4096));
        assert_eq!(m.size(Size::Infinity), Cap::Max);
        assert_eq!(m.tasks(Tasks::Permyriad(3300)), Cap::Value(1_384_120));
    }

    #[test]
    fn compare_names_each_drifted_property() {
        let m = Machine {
            ram: 2 << 30,
            tasks: 4_194_304,
        };
        let limits = Limits {
            memory_high: Some(Size::Bytes(600 << 20)),
            memory_max: Some(Size::Bytes(800 << 20)),
            memory_swap_max: Some(Size::Bytes(0)),
            tasks_max: Some(Tasks::Count(512)),
            ..Limits::default()
        };
        let mut stats = Stats {
            memory_high: Some(Cap::Value(600 << 20)),
            memory_max: Some(Cap::Value(800 << 20)),
            swap_max: Some(Cap::Value(0)),
            pids_max: Some(Cap::Value(512)),
            ..Stats::default()
        };
        assert!(compare(&m, &limits, &stats).is_empty());
        stats.memory_max = Some(Cap::Max);
        stats.pids_max = Some(Cap::Value(33));
        let diff = compare(&m, &limits, &stats);
        assert_eq!(diff.len(), 2);
        assert_eq!(diff[0].property, "MemoryMax");
        assert_eq!(diff[0].live.as_deref(), Some("infinity"));
        assert_eq!(diff[0].policy, "800M");
        assert_eq!(diff[1].property, "TasksMax");
    }
}
