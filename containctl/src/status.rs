//! `containctl status`: every user slice and policed tree, live from cgroupfs, against the policy.

use crate::accounts;
use crate::host::Host;
use crate::policy;
use crate::table::{Table, bytes};
use crate::{OK, PROBLEMS, emit};
use contain_host::Outcome;
use contain_host::cgroupfs::{self, children, walk};
use contain_host::drift::{Machine, Mismatch, compare};
use contain_host::{Cap, Stats};
use contain_policy::{Limits, Policy, Resolution};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The watchdog's counters, `/run/contain/watchdog.json`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Watchdog {
    pub started: Option<u64>,
    pub kills_total: u64,
    pub cgroups: BTreeMap<String, WatchdogCgroup>,
    pub recent: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct WatchdogCgroup {
    pub watchdog_kills: u64,
    pub oom_kills_seen: u64,
    pub last_kill: Option<u64>,
}

pub const WATCHDOG_STATE: &str = "/run/contain/watchdog.json";

pub fn read_watchdog(host: &Host) -> Option<Watchdog> {
    serde_json::from_str(&host.read(WATCHDOG_STATE)?).ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One user's `user-UID.slice`.
    User,
    /// One instance of a capped template service.
    Instance,
    /// A policed tree as a whole: user.slice, docker.slice, a tree's slice.
    Tree,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub kind: Kind,
    pub unit: String,
    pub cgroup: String,
    pub uid: Option<u32>,
    pub user: Option<String>,
    #[serde(flatten)]
    pub stats: Stats,
    /// Whether oomd polices this tree (trees only).
    pub policed: Option<bool>,
    /// `None` when the policy sets nothing to compare.
    pub caps_match: Option<bool>,
    pub mismatches: Vec<Mismatch>,
    pub watchdog_kills: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub ram: u64,
    /// User slices and service instances, the biggest first.
    pub slices: Vec<Row>,
    pub trees: Vec<Row>,
    pub watchdog: Option<Watchdog>,
    /// Container scopes outside docker.slice: uncapped and unpoliced.
    pub escaped_containers: Vec<String>,
}

impl Report {
    pub fn problems(&self) -> usize {
        self.slices
            .iter()
            .chain(&self.trees)
            .filter(|r| r.caps_match == Some(false))
            .count()
            + self.escaped_containers.len()
    }
}

/// The cgroup path of a slice unit: `system-t3\x2dserve.slice` → `/system.slice/system-t3\x2dserve.slice`.
pub fn slice_path(slice: &str) -> String {
    format!("/{}", cgroupfs::slice_path(slice).display())
}

pub fn uid_of_user_slice(name: &str) -> Option<u32> {
    name.strip_prefix("user-")?.strip_suffix(".slice")?.parse().ok()
}

/// What the policy gives a user's slice: their resolved limits, or an exempt account's.
pub fn user_limits(policy: &Policy, host: &Host, uid: u32) -> (Option<String>, Limits) {
    let Some(account) = accounts::by_uid(host, uid) else {
        // Unknown to NSS: the user-.slice template applies.
        return (None, policy.users.limits.clone());
    };
    let groups: Vec<&str> = account.groups.iter().map(String::as_str).collect();
    let limits = match policy.resolve(uid, &account.name, &groups) {
        Resolution::Capped(eff) => eff.limits(),
        Resolution::Exempt(_) => policy.exempt_limits(),
    };
    (Some(account.name), limits)
}

fn row(host: &Host, m: &Machine, wd: Option<&Watchdog>, kind: Kind, cgroup: &str, limits: &Limits) -> Row {
    let dir = host.cgroup(cgroup);
    let stats = Stats::read(&dir);
    // A slice with nothing in it yet (docker.slice before the first container) has no cgroup.
    let live = dir.is_dir();
    let mismatches = if live {
        compare(m, limits, &stats)
    } else {
        Vec::new()
    };
    let caps_match = (live && !limits.is_empty()).then_some(mismatches.is_empty());
    Row {
        kind,
        unit: cgroup.rsplit('/').next().unwrap_or(cgroup).to_string(),
        cgroup: cgroup.to_string(),
        uid: None,
        user: None,
        stats,
        policed: None,
        caps_match,
        mismatches,
        watchdog_kills: wd
            .and_then(|w| w.cgroups.get(cgroup))
            .map_or(0, |c| c.watchdog_kills),
    }
}

pub fn collect(host: &Host, policy: &Policy) -> Report {
    let m = Machine::of(host);
    let wd = read_watchdog(host);
    let wd = wd.as_ref();
    let mut slices = Vec::new();
    let mut trees = Vec::new();

    let mut users = row(host, &m, wd, Kind::Tree, "/user.slice", &policy.user_slice);
    users.policed = Some(policy.users.policing.enabled);
    trees.push(users);
    for cg in children(host, "/user.slice", |n| uid_of_user_slice(n).is_some()) {
        let uid = uid_of_user_slice(cg.rsplit('/').next().unwrap_or_default()).unwrap_or_default();
        let (name, limits) = user_limits(policy, host, uid);
        let mut r = row(host, &m, wd, Kind::User, &cg, &limits);
        r.uid = Some(uid);
        r.user = name;
        slices.push(r);
    }

    for tree in &policy.trees {
        let path = slice_path(&tree.slice);
        let slice_limits = if tree.service.is_some() {
            Limits::default()
        } else {
            tree.limits.clone()
        };
        let mut t = row(host, &m, wd, Kind::Tree, &path, &slice_limits);
        t.policed = Some(tree.policing.enabled);
        trees.push(t);
        if let Some(service) = &tree.service {
            let prefix = service.trim_end_matches(".service"); // "t3-serve@"
            for cg in children(host, &path, |n| {
                n.starts_with(prefix) && n.ends_with(".service") && n.len() > service.len()
            }) {
                slices.push(row(host, &m, wd, Kind::Instance, &cg, &tree.limits));
            }
        }
    }

    if policy.docker.enabled || host.cgroup("/docker.slice").is_dir() {
        let limits = if policy.docker.enabled {
            policy.docker.limits.clone()
        } else {
            Limits::default()
        };
        let mut d = row(host, &m, wd, Kind::Tree, "/docker.slice", &limits);
        d.policed = Some(policy.docker.enabled && policy.docker.policing.enabled);
        trees.push(d);
    }

    slices.sort_by_key(|r| std::cmp::Reverse(r.stats.memory_current.unwrap_or(0)));
    let escaped_containers = walk(host, 8)
        .into_iter()
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap_or_default();
            name.starts_with("docker-") && name.ends_with(".scope") && !p.starts_with("/docker.slice/")
        })
        .collect();
    Report {
        ram: m.ram,
        slices,
        trees,
        watchdog: wd.cloned(),
        escaped_containers,
    }
}

fn cap_cell(c: Option<Cap>) -> String {
    match c {
        None => "-".into(),
        Some(Cap::Max) => "max".into(),
        Some(Cap::Unreadable) => "?".into(),
        Some(Cap::Value(v)) => bytes(Some(v)),
    }
}

fn caps_cell(r: &Row) -> String {
    match r.caps_match {
        None => "-".into(),
        Some(true) => "ok".into(),
        Some(false) => r
            .mismatches
            .iter()
            .map(|mm| {
                format!(
                    "{} {} (policy {})",
                    mm.property,
                    mm.live.as_deref().unwrap_or("unreadable"),
                    mm.policy
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn table(rows: &[Row], first: &'static str) -> String {
    let mut t = Table::new(&[
        first,
        "USER",
        ">MEM",
        ">HIGH",
        ">MAX",
        ">PEAK",
        ">SWAP",
        ">PSI some/full",
        ">IO PSI",
        ">TASKS",
        ">OOM",
        ">WD",
        "CAPS",
    ]);
    for r in rows {
        let psi = r
            .stats
            .pressure
            .map_or("-".into(), |p| format!("{:.1}/{:.1}", p.some_avg10, p.full_avg10));
        let io_psi = r
            .stats
            .io_pressure
            .map_or("-".into(), |p| format!("{:.1}/{:.1}", p.some_avg10, p.full_avg10));
        let tasks = match (r.stats.pids_current, r.stats.pids_max) {
            (Some(c), Some(Cap::Value(m))) => format!("{c}/{m}"),
            (Some(c), _) => c.to_string(),
            _ => "-".into(),
        };
        let mut unit = r.unit.clone();
        if r.policed == Some(true) {
            unit.push_str(" (oomd)");
        }
        t.row(vec![
            unit,
            r.user.clone().unwrap_or_else(|| "-".into()),
            bytes(r.stats.memory_current),
            cap_cell(r.stats.memory_high),
            cap_cell(r.stats.memory_max),
            bytes(r.stats.memory_peak),
            bytes(r.stats.swap_current),
            psi,
            io_psi,
            tasks,
            r.stats.oom_kill.map_or("-".into(), |v| v.to_string()),
            r.watchdog_kills.to_string(),
            caps_cell(r),
        ]);
    }
    t.render()
}

pub fn print(report: &Report) -> String {
    let mut out = String::new();
    if report.slices.is_empty() {
        out.push_str("No user slices or service instances are running.\n");
    } else {
        out.push_str(&table(&report.slices, "SLICE"));
    }
    out.push('\n');
    out.push_str(&table(&report.trees, "TREE"));
    if let Some(wd) = &report.watchdog {
        out.push_str(&format!(
            "\nwatchdog: {} runaway(s) ended since it started",
            wd.kills_total
        ));
        if let Some(last) = wd.recent.last() {
            let field = |k: &str| last.get(k).map(|v| v.to_string().trim_matches('"').to_string());
            out.push_str(&format!(
                "; last: {} in {} ({})",
                field("comm").unwrap_or_default(),
                field("cgroup").unwrap_or_default(),
                field("reason").unwrap_or_default()
            ));
        }
        out.push('\n');
    } else {
        out.push_str("\nwatchdog: no counters (contain-watchdog not running?)\n");
    }
    for scope in &report.escaped_containers {
        out.push_str(&format!(
            "WARNING: container {scope} runs outside docker.slice: uncapped and hidden from oomd. \
             Someone used --cgroup-parent; members of the docker group are root-equivalent.\n"
        ));
    }
    let drifted = report
        .slices
        .iter()
        .chain(&report.trees)
        .filter(|r| r.caps_match == Some(false))
        .count();
    if drifted > 0 {
        out.push_str(&format!(
            "{drifted} cgroup(s) do not carry the policy's caps: run `containctl apply`.\n"
        ));
    }
    out
}

/// `containctl status`.
pub fn command(host: &Host, json: bool) -> u8 {
    let loaded = policy::effective(host, None);
    let report = collect(host, &loaded.policy);
    emit(json, &report, print);
    // On stderr, so that --json stays one document: the caps shown are the default's.
    if loaded.outcome == Outcome::Fallback {
        eprintln!(
            "containctl: the policy is refused, so the built-in default policy applies (caps stay on):"
        );
        for e in &loaded.errors {
            eprintln!("  {e}");
        }
    }
    if report.problems() > 0 || loaded.outcome == Outcome::Fallback {
        PROBLEMS
    } else {
        OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nesting is contain_host's (tested there); this form is absolute, the root `/`.
    #[test]
    fn slice_paths_are_absolute() {
        assert_eq!(slice_path("user-1001.slice"), "/user.slice/user-1001.slice");
        assert_eq!(slice_path("-.slice"), "/");
    }
}
