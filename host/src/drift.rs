//! The one answer to "do this cgroup's caps match the policy?", used by a login's repair,
//! `containctl status`/`apply` and metrics alike.

use crate::cgroupfs::{Cap, Stats, io_max_rates, meminfo_kb};
use crate::root::Root;
use contain_policy::Limits;
use contain_policy::value::{CpuQuota, CpuSet, Size, Tasks, human_bytes};
use serde::Serialize;
use std::fmt;

/// What systemd resolves shares against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Physical memory in bytes (MemTotal: what systemd's `N%` means).
    pub ram: u64,
    pub page_size: u64,
    /// The largest task count the kernel allows (min of pid_max and threads-max: `TasksMax=N%`).
    pub tasks: u64,
}

impl Machine {
    pub fn of(root: &Root) -> Machine {
        let num = |p: &str| root.read(p).and_then(|t| t.trim().parse::<u64>().ok());
        let tasks = match (
            num("/proc/sys/kernel/pid_max"),
            num("/proc/sys/kernel/threads-max"),
        ) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(4_194_304),
        };
        let ram = root
            .read("/proc/meminfo")
            .and_then(|t| meminfo_kb(&t, "MemTotal"))
            .map_or(0, |kb| kb * 1024);
        Machine {
            ram,
            page_size: nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
                .ok()
                .flatten()
                .and_then(|p| u64::try_from(p).ok())
                .unwrap_or(4096)
                .max(1),
            tasks,
        }
    }

    /// A size as the kernel will show it: systemd's physical_memory_scale() for shares (pages ×
    /// share, rounded down), bytes rounded down to a page.
    pub fn size(&self, s: Size) -> Cap {
        let page = self.page_size;
        match s {
            Size::Infinity => Cap::Max,
            Size::Bytes(b) => Cap::Value(b / page * page),
            Size::Permyriad(p) => Cap::Value((self.ram / page) * u64::from(p) / 10_000 * page),
        }
    }

    pub fn tasks(&self, t: Tasks) -> Cap {
        match t {
            Tasks::Infinity => Cap::Max,
            Tasks::Count(n) => Cap::Value(n),
            Tasks::Permyriad(p) => {
                Cap::Value(u64::try_from(u128::from(self.tasks) * u128::from(p) / 10_000).unwrap_or(u64::MAX))
            }
        }
    }
}

/// One setting that differs between the kernel and the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// systemd's property name, e.g. `MemoryMax`.
    pub property: &'static str,
    /// What the kernel shows; `None` when the file is missing or unreadable.
    pub live: Option<String>,
    pub policy: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {}, policy says {}",
            self.property,
            self.live.as_deref().unwrap_or("unset"),
            self.policy
        )
    }
}

fn show_cap(c: Cap, bytes: bool) -> String {
    match c {
        Cap::Max => "infinity".into(),
        Cap::Unreadable => "unreadable (the cgroup file holds no limit)".into(),
        Cap::Value(v) if bytes => human_bytes(v),
        Cap::Value(v) => v.to_string(),
    }
}

/// Compares a cgroup's files with the limits the policy gives it; only set limits are checked.
/// Tolerances: the kernel keeps memory limits in pages, and systemd's arithmetic for shares of
/// RAM and of the task limit may round differently from ours.
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
    let memory_slack = |s: Size| match s {
        Size::Permyriad(_) => m.ram / 100_000 + m.page_size,
        _ => m.page_size,
    };
    if let Some(s) = limits.memory_high {
        check("MemoryHigh", stats.memory_high, m.size(s), true, memory_slack(s));
    }
    if let Some(s) = limits.memory_max {
        check("MemoryMax", stats.memory_max, m.size(s), true, memory_slack(s));
    }
    // memory.swap.max is missing when the kernel accounts no swap: nothing to compare then.
    if let Some(s) = limits.memory_swap_max
        && stats.swap_max.is_some()
    {
        check("MemorySwapMax", stats.swap_max, m.size(s), true, memory_slack(s));
    }
    if let Some(t) = limits.tasks_max {
        let slack = match t {
            Tasks::Permyriad(_) => m.tasks / 100,
            _ => 0,
        };
        check("TasksMax", stats.pids_max, m.tasks(t), false, slack);
    }
    // A missing weight file means the controller is off there: the kernel's default, 100, applies.
    if let Some(w) = limits.cpu_weight {
        let live = Cap::Value(stats.cpu_weight.unwrap_or(100));
        check("CPUWeight", Some(live), Cap::Value(w.into()), false, 0);
    }
    if let Some(w) = limits.io_weight {
        let live = Cap::Value(stats.io_weight.unwrap_or(100));
        check("IOWeight", Some(live), Cap::Value(w.into()), false, 0);
    }
    if let Some(q) = limits.cpu_quota {
        // No cpu.max: the controller is off there, so nothing limits the CPU time.
        let live = stats.cpu_quota_per_sec.unwrap_or(Cap::Max);
        let want = match q {
            CpuQuota::Infinity => Cap::Max,
            CpuQuota::Permyriad(_) => Cap::Value(q.usec_per_sec()),
        };
        // systemd turns the quota into one per period; 1% covers its rounding.
        let slack = want.value().unwrap_or(0) / 100;
        check("CPUQuota", Some(live), want, false, slack);
        if let Some(m) = out.last_mut().filter(|m| m.property == "CPUQuota") {
            m.live = m.live.as_ref().map(|_| show_quota(live));
            m.policy = q.to_string();
        }
    }
    if let Some(want) = &limits.allowed_cpus {
        // No cpuset.cpus (controller off) or an empty one: every CPU.
        let live = match stats.cpuset_cpus.as_deref() {
            None | Some("") => Some(CpuSet::default()),
            Some(text) => CpuSet::parse(text).ok(),
        };
        if live.as_ref() != Some(want) {
            out.push(Mismatch {
                property: "AllowedCPUs",
                live: Some(live.map_or_else(|| "unreadable".to_string(), |l| l.to_string())),
                policy: want.to_string(),
            });
        }
    }
    // io.max is keyed by device number and the policy by path: compared as the rates in force.
    for (property, key, cap) in [
        ("IOReadBandwidthMax", "rbps", &limits.io_read_bandwidth_max),
        ("IOWriteBandwidthMax", "wbps", &limits.io_write_bandwidth_max),
    ] {
        let Some(cap) = cap else { continue };
        let live = io_max_rates(stats.io_max.as_deref().unwrap_or(""), key);
        let same = match cap.bytes_per_sec {
            Some(b) => !live.is_empty() && live.iter().all(|&r| r == b),
            None => live.is_empty(),
        };
        if !same {
            let shown: Vec<String> = live.iter().map(|&r| format!("{}/s", human_bytes(r))).collect();
            out.push(Mismatch {
                property,
                live: Some(if shown.is_empty() {
                    "infinity".into()
                } else {
                    shown.join(", ")
                }),
                policy: cap.to_string(),
            });
        }
    }
    out
}

fn show_quota(c: Cap) -> String {
    match c {
        Cap::Value(usec) => CpuQuota::Permyriad(usec / 100).to_string(),
        other => show_cap(other, false),
    }
}

/// The subset of `limits` that `mismatches` name: what a repair sets again.
pub fn to_repair(limits: &Limits, mismatches: &[Mismatch]) -> Limits {
    let named = |p: &str| mismatches.iter().any(|m| m.property == p);
    Limits {
        memory_high: limits.memory_high.filter(|_| named("MemoryHigh")),
        memory_max: limits.memory_max.filter(|_| named("MemoryMax")),
        memory_swap_max: limits.memory_swap_max.filter(|_| named("MemorySwapMax")),
        tasks_max: limits.tasks_max.filter(|_| named("TasksMax")),
        cpu_weight: limits.cpu_weight.filter(|_| named("CPUWeight")),
        io_weight: limits.io_weight.filter(|_| named("IOWeight")),
        cpu_quota: limits.cpu_quota.filter(|_| named("CPUQuota")),
        allowed_cpus: limits.allowed_cpus.clone().filter(|_| named("AllowedCPUs")),
        io_read_bandwidth_max: limits
            .io_read_bandwidth_max
            .clone()
            .filter(|_| named("IOReadBandwidthMax")),
        io_write_bandwidth_max: limits
            .io_write_bandwidth_max
            .clone()
            .filter(|_| named("IOWriteBandwidthMax")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn machine() -> Machine {
        Machine {
            ram: 2_000_000 * 1024,
            page_size: 4096,
            tasks: 4_194_304,
        }
    }

    #[test]
    fn shares_resolve_like_systemd() {
        let m = machine();
        // 500000 pages × 50% = 250000 pages.
        assert_eq!(m.size(Size::Permyriad(5000)), Cap::Value(250_000 * 4096));
        assert_eq!(m.size(Size::Bytes(800 << 20)), Cap::Value(800 << 20));
        assert_eq!(m.size(Size::Bytes(4097)), Cap::Value(4096));
        assert_eq!(m.size(Size::Infinity), Cap::Max);
        assert_eq!(m.tasks(Tasks::Permyriad(3300)), Cap::Value(1_384_120));
    }

    #[test]
    fn each_drifted_property_is_named_and_only_those_are_repaired() {
        let m = Machine {
            ram: 32 * GIB,
            ..machine()
        };
        let limits = Limits {
            memory_high: Some(Size::Bytes(12 * GIB)),
            memory_max: Some(Size::Permyriad(5000)),
            memory_swap_max: Some(Size::Bytes(0)),
            tasks_max: Some(Tasks::Count(512)),
            cpu_weight: Some(100),
            ..Limits::default()
        };
        let mut stats = Stats {
            memory_high: Some(Cap::Value(12 * GIB)),
            // systemd's share, one page off ours: rounding, not drift.
            memory_max: Some(Cap::Value(16 * GIB - 4096)),
            swap_max: Some(Cap::Value(0)),
            pids_max: Some(Cap::Value(512)),
            ..Stats::default()
        };
        assert_eq!(compare(&m, &limits, &stats), []);
        stats.memory_max = Some(Cap::Max);
        stats.pids_max = Some(Cap::Value(33));
        stats.cpu_weight = Some(50);
        let diff = compare(&m, &limits, &stats);
        let names: Vec<_> = diff.iter().map(|d| d.property).collect();
        assert_eq!(names, ["MemoryMax", "TasksMax", "CPUWeight"]);
        assert_eq!(diff[0].to_string(), "MemoryMax is infinity, policy says 16G");
        let repair = to_repair(&limits, &diff);
        assert_eq!(repair.memory_high, None);
        assert_eq!(repair.memory_max, limits.memory_max);
        assert_eq!(repair.tasks_max, limits.tasks_max);
        // No swap accounting: nothing to compare; a missing limit file is drift.
        stats.swap_max = None;
        stats.memory_high = None;
        let diff = compare(&m, &limits, &stats);
        assert_eq!(diff[0].to_string(), "MemoryHigh is unset, policy says 12G");
        assert!(!diff.iter().any(|d| d.property == "MemorySwapMax"));
    }

    #[test]
    fn io_caps_compare_with_io_max_and_lift_to_none() {
        use contain_policy::value::IoBandwidth;
        let cap = |b: Option<u64>| {
            Some(IoBandwidth {
                bytes_per_sec: b,
                devices: vec!["/".into(), "/home".into()],
            })
        };
        let limits = Limits {
            io_write_bandwidth_max: cap(Some(20 << 20)),
            ..Limits::default()
        };
        let mut stats = Stats {
            io_max: Some("254:0 rbps=max wbps=20971520 riops=max wiops=max\n".into()),
            ..Stats::default()
        };
        assert_eq!(compare(&machine(), &limits, &stats), []);
        // A slice where systemd never wrote io.max: the cap is missing, and a repair sets it.
        stats.io_max = None;
        let diff = compare(&machine(), &limits, &stats);
        assert_eq!(diff.len(), 1, "{diff:?}");
        assert_eq!(
            diff[0].to_string(),
            "IOWriteBandwidthMax is infinity, policy says 20M/s on /, /home"
        );
        assert_eq!(to_repair(&limits, &diff), limits);
        // An exempt account: a cap left over from the template is drift.
        let lifted = limits.lifted();
        stats.io_max = Some("254:0 rbps=max wbps=20971520 riops=max wiops=max\n".into());
        assert_eq!(compare(&machine(), &lifted, &stats).len(), 1);
        stats.io_max = Some(String::new());
        assert_eq!(compare(&machine(), &lifted, &stats), []);
    }

    #[test]
    fn cpu_quota_and_allowed_cpus_compare_with_cpu_max_and_cpuset() {
        let m = machine();
        let limits = Limits {
            cpu_quota: Some(CpuQuota::Permyriad(15_000)),
            allowed_cpus: Some(CpuSet::parse("0-2,9").expect("cpus")),
            ..Limits::default()
        };
        let mut stats = Stats {
            cpu_quota_per_sec: crate::cgroupfs::parse_cpu_max("150000 100000"),
            cpuset_cpus: Some("0-2,9".into()),
            ..Stats::default()
        };
        assert_eq!(compare(&m, &limits, &stats), []);
        stats.cpu_quota_per_sec = Some(Cap::Max);
        stats.cpuset_cpus = Some(String::new());
        let diff = compare(&m, &limits, &stats);
        let shown: Vec<String> = diff.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "CPUQuota is infinity, policy says 150%",
                "AllowedCPUs is all, policy says 0-2,9"
            ]
        );
        let repair = to_repair(&limits, &diff);
        assert_eq!(repair.cpu_quota, limits.cpu_quota);
        assert_eq!(repair.allowed_cpus, limits.allowed_cpus);
        // Lifting a quota: a slice without cpu.max has none.
        let lifted = Limits {
            cpu_quota: Some(CpuQuota::Infinity),
            ..Limits::default()
        };
        assert_eq!(compare(&m, &lifted, &Stats::default()), []);
    }
}
