//! `containctl metrics`: the status figures in Prometheus text exposition format (0.0.4), for
//! node-exporter's textfile collector.

use crate::host::Host;
use crate::status::{Report, Row};
use crate::{OK, PROBLEMS};
use crate::{policy, status};
use contain_host::write_atomic;
use contain_host::{Cap, GeneratorStatus, Outcome};
use contain_policy::{Policy, aggregate};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

/// Kills systemd-oomd logged this boot, by the tree whose pressure (or swap) triggered it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OomdKills {
    /// (reason, tree) → count; reason is `pressure` or `swap`.
    pub by: BTreeMap<(String, String), u64>,
}

/// Counts oomd's kill lines (its journal, message text only), in the wording of systemd 252
/// to 257 (`Killed CGROUP due to …`) and of later releases (`Marked CGROUP for killing due to …`):
/// `… due to memory pressure for TREE being …` and, for swap, `… due to memory used (…) /
/// total (…) and swap used (…) / total (…) being more than …` (before 248: `due to swap used`).
pub fn parse_oomd_journal(text: &str) -> OomdKills {
    let mut kills = OomdKills::default();
    for line in text.lines() {
        let line = line.trim();
        let rest = if let Some(rest) = line.strip_prefix("Killed ") {
            rest
        } else if let Some(rest) = line.strip_prefix("Marked ")
            && rest.contains(" for killing due to ")
        {
            rest
        } else {
            continue;
        };
        let (reason, tree) = if let Some((_, after)) = rest.split_once(" due to memory pressure for ") {
            (
                "pressure",
                after.split_whitespace().next().unwrap_or("").to_string(),
            )
        } else if rest.contains(" due to memory used (") || rest.contains(" due to swap used") {
            // Swap is system-wide: the root is the tree.
            ("swap", "/".to_string())
        } else {
            continue;
        };
        *kills.by.entry((reason.to_string(), tree)).or_default() += 1;
    }
    kills
}

/// journalctl's arguments for systemd-oomd's messages, their text only.
pub const OOMD_JOURNAL_ARGS: [&str; 6] = ["-q", "--no-pager", "-o", "cat", "-u", "systemd-oomd.service"];

/// Reads oomd's kills of this boot from the journal; `None` where there is no journal to ask.
pub fn oomd_kills(host: &Host) -> Option<OomdKills> {
    if !host.is_live() {
        return None;
    }
    let out = std::process::Command::new("journalctl")
        .arg("-b")
        .args(OOMD_JOURNAL_ARGS)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| parse_oomd_journal(&String::from_utf8_lossy(&out.stdout)))
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }
    /// A family of one sample without labels.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: &str) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: &str) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

fn cap(c: Option<Cap>) -> Option<String> {
    // A file that holds no limit gives no sample rather than a made-up one.
    c.and_then(|c| match c {
        Cap::Value(v) => Some(v.to_string()),
        Cap::Max => Some("+Inf".into()),
        Cap::Unreadable => None,
    })
}

type Getter = fn(&Row) -> Option<String>;

/// What `render` needs besides the status report.
pub struct Extra<'a> {
    pub policy: &'a Policy,
    /// The generator's status (generator.json), if it ran.
    pub generator: Option<GeneratorStatus>,
    pub oomd: Option<OomdKills>,
}

pub fn render(report: &Report, extra: &Extra) -> String {
    let mut o = Out(String::new());
    let rows: Vec<&Row> = report.trees.iter().chain(&report.slices).collect();
    let per_row: [(&str, &str, &str, Getter); 17] = [
        (
            "contain_memory_current_bytes",
            "gauge",
            "Memory charged to the cgroup (memory.current).",
            |r| r.stats.memory_current.map(|v| v.to_string()),
        ),
        (
            "contain_memory_high_bytes",
            "gauge",
            "Throttle point (memory.high); +Inf when unset.",
            |r| cap(r.stats.memory_high),
        ),
        (
            "contain_memory_max_bytes",
            "gauge",
            "Hard ceiling (memory.max); +Inf when unset.",
            |r| cap(r.stats.memory_max),
        ),
        (
            "contain_memory_peak_bytes",
            "gauge",
            "Highest memory use since the cgroup was created (memory.peak).",
            |r| r.stats.memory_peak.map(|v| v.to_string()),
        ),
        (
            "contain_swap_current_bytes",
            "gauge",
            "Swap used by the cgroup (memory.swap.current).",
            |r| r.stats.swap_current.map(|v| v.to_string()),
        ),
        (
            "contain_swap_max_bytes",
            "gauge",
            "Swap limit (memory.swap.max); +Inf when unset.",
            |r| cap(r.stats.swap_max),
        ),
        (
            "contain_memory_pressure_some_avg10_ratio",
            "gauge",
            "Share of the last 10 s in which some task of the cgroup waited for memory (PSI).",
            |r| r.stats.pressure.map(|p| (p.some_avg10 / 100.0).to_string()),
        ),
        (
            "contain_memory_pressure_full_avg10_ratio",
            "gauge",
            "Share of the last 10 s in which every task of the cgroup waited for memory (PSI).",
            |r| r.stats.pressure.map(|p| (p.full_avg10 / 100.0).to_string()),
        ),
        (
            "contain_io_pressure_some_avg10_ratio",
            "gauge",
            "Share of the last 10 s in which some task of the cgroup waited for IO, throttling by an IO cap included (PSI).",
            |r| r.stats.io_pressure.map(|p| (p.some_avg10 / 100.0).to_string()),
        ),
        (
            "contain_io_pressure_full_avg10_ratio",
            "gauge",
            "Share of the last 10 s in which every task of the cgroup waited for IO (PSI).",
            |r| r.stats.io_pressure.map(|p| (p.full_avg10 / 100.0).to_string()),
        ),
        (
            "contain_tasks_current",
            "gauge",
            "Processes and threads in the cgroup (pids.current).",
            |r| r.stats.pids_current.map(|v| v.to_string()),
        ),
        (
            "contain_tasks_max",
            "gauge",
            "Task limit (pids.max); +Inf when unset.",
            |r| cap(r.stats.pids_max),
        ),
        (
            "contain_oom_kills_total",
            "counter",
            "Processes the kernel OOM-killed inside the cgroup (memory.events oom_kill).",
            |r| r.stats.oom_kill.map(|v| v.to_string()),
        ),
        (
            "contain_memory_high_events_total",
            "counter",
            "Times the cgroup was throttled at memory.high (memory.events high).",
            |r| r.stats.events_high.map(|v| v.to_string()),
        ),
        (
            "contain_memory_max_events_total",
            "counter",
            "Times the cgroup hit memory.max (memory.events max).",
            |r| r.stats.events_max.map(|v| v.to_string()),
        ),
        (
            "contain_caps_match",
            "gauge",
            "1 when the cgroup carries the policy's caps, 0 when they drifted.",
            |r| r.caps_match.map(|m| u8::from(m).to_string()),
        ),
        (
            "contain_watchdog_cgroup_kills_total",
            "counter",
            "Runaways contain-watchdog ended in this cgroup.",
            |r| Some(r.watchdog_kills.to_string()),
        ),
    ];
    for (name, kind, help, get) in per_row {
        let samples: Vec<(&Row, String)> = rows.iter().filter_map(|r| get(r).map(|v| (*r, v))).collect();
        if samples.is_empty() {
            continue;
        }
        o.family(name, kind, help);
        for (r, v) in samples {
            let kind = serde_json::to_value(r.kind)
                .ok()
                .and_then(|k| k.as_str().map(str::to_string))
                .unwrap_or_default();
            let user = r.user.clone().unwrap_or_default();
            o.sample(
                name,
                &[
                    ("cgroup", &r.cgroup),
                    ("unit", &r.unit),
                    ("kind", &kind),
                    ("user", &user),
                ],
                &v,
            );
        }
    }

    o.single(
        "contain_escaped_containers",
        "gauge",
        "Docker container scopes running outside docker.slice (uncapped).",
        &report.escaped_containers.len().to_string(),
    );

    if let Some(wd) = &report.watchdog {
        o.single(
            "contain_watchdog_kills_total",
            "counter",
            "Runaways contain-watchdog ended since it started.",
            &wd.kills_total.to_string(),
        );
        o.family(
            "contain_watchdog_oom_kills_seen_total",
            "counter",
            "Kernel OOM kills contain-watchdog saw in capped cgroups, by cgroup.",
        );
        for (cg, c) in &wd.cgroups {
            o.sample(
                "contain_watchdog_oom_kills_seen_total",
                &[("cgroup", cg)],
                &c.oom_kills_seen.to_string(),
            );
        }
    }
    o.single(
        "contain_watchdog_up",
        "gauge",
        "1 when contain-watchdog's counters are present.",
        if report.watchdog.is_some() { "1" } else { "0" },
    );

    if let Some(oomd) = &extra.oomd {
        o.family(
            "contain_oomd_kills_total",
            "counter",
            "Cgroups systemd-oomd killed this boot, by reason and the tree that triggered it.",
        );
        if oomd.by.is_empty() {
            o.sample(
                "contain_oomd_kills_total",
                &[("reason", "pressure"), ("tree", "")],
                "0",
            );
        }
        for ((reason, tree), n) in &oomd.by {
            o.sample(
                "contain_oomd_kills_total",
                &[("reason", reason), ("tree", tree)],
                &n.to_string(),
            );
        }
    }

    let outcome = extra.generator.as_ref().map(|g| match g.outcome {
        Outcome::Applied => "applied",
        Outcome::Default => "default",
        Outcome::Fallback => "fallback",
    });
    o.family(
        "contain_generator_outcome",
        "gauge",
        "The generator's last outcome: 1 for the one that happened (applied, default or fallback).",
    );
    for name in ["applied", "default", "fallback"] {
        let v = if outcome == Some(name) { "1" } else { "0" };
        o.sample("contain_generator_outcome", &[("outcome", name)], v);
    }
    let errors = extra.generator.as_ref().map_or(0, |g| g.errors.len());
    o.single(
        "contain_generator_errors",
        "gauge",
        "Errors in the generator's last run.",
        &errors.to_string(),
    );

    let fits = aggregate(extra.policy, report.ram).fits;
    o.single(
        "contain_policy_fits_ram",
        "gauge",
        "1 when every tree at its maximum plus the system reserve fits in RAM.",
        if fits { "1" } else { "0" },
    );
    o.0
}

/// `containctl metrics`.
pub fn command(host: &Host, out: Option<PathBuf>, no_journal: bool) -> u8 {
    let loaded = policy::effective(host, None);
    let report = status::collect(host, &loaded.policy);
    let generator = GeneratorStatus::read(host).ok();
    let oomd = if no_journal { None } else { oomd_kills(host) };
    let text = render(
        &report,
        &Extra {
            policy: &loaded.policy,
            generator,
            oomd,
        },
    );
    match out {
        Some(path) => match write_atomic(&path, text.as_bytes()) {
            Ok(()) => OK,
            Err(e) => {
                eprintln!("containctl: cannot write {}: {e}", path.display());
                PROBLEMS
            }
        },
        None => {
            let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
            OK
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_oomd_kills_by_reason_and_tree() {
        let journal = "\
Considered 3 cgroups for killing, top candidates were:
Killed /user.slice/user-1001.slice/session-3.scope due to memory pressure for /user.slice being 93.12% > 60.00% for > 20s with reclaim activity
Killed /docker.slice/docker-ab.scope due to memory pressure for /docker.slice being 70.00% > 60.00% for > 20s with reclaim activity
Killed /user.slice/user-1002.slice/session-9.scope due to memory pressure for /user.slice being 88.00% > 60.00% for > 20s with reclaim activity
Killed /user.slice/user-1001.slice/session-4.scope due to swap used (900) / total (1000) being more than 80.00%
";
        let k = parse_oomd_journal(journal);
        assert_eq!(k.by.get(&("pressure".into(), "/user.slice".into())), Some(&2));
        assert_eq!(k.by.get(&("pressure".into(), "/docker.slice".into())), Some(&1));
        assert_eq!(k.by.get(&("swap".into(), "/".into())), Some(&1));
    }

    /// The lines systemd-oomd 252 (bookworm) and 257 (trixie) log, from src/oom/oomd-manager.c:
    /// `Killed %s due to memory used (%PRIu64) / total (%PRIu64) and swap used (%PRIu64) /
    /// total (%PRIu64) being more than %PERMYRIAD` and `Killed %s due to memory pressure for %s
    /// being %lu.%02lu%% > %lu.%02lu%% for > %s with reclaim activity`; later releases say
    /// `Marked %s for killing due to …`.
    #[test]
    fn counts_the_kills_of_systemd_252_and_257_in_their_own_words() {
        let journal = "\
Considered 2 cgroups for killing, top candidates were:
        Path: /user.slice/user-1001.slice/session-4.scope
                Swap Usage: 912.0M
Killed /user.slice/user-1001.slice/session-4.scope due to memory used (3954180096) / total (4107448320) and swap used (912261120) / total (1073737728) being more than 80.00%
Killed /user.slice/user-1002.slice/user@1002.service/app.slice/run-u7.service due to memory used (3998000000) / total (4107448320) and swap used (1000000000) / total (1073737728) being more than 90.00%
Killed /user.slice/user-1001.slice/session-7.scope due to memory pressure for /user.slice/user-1001.slice being 71.48% > 60.00% for > 20s with reclaim activity
Marked /docker.slice/docker-ab.scope for killing due to memory used (15449980928) / total (16437264384) and swap used (14808154112) / total (16436412416) being more than 90.00%
Failed to kill any cgroups based on swap: No such file or directory
";
        let k = parse_oomd_journal(journal);
        assert_eq!(k.by.get(&("swap".into(), "/".into())), Some(&3), "{k:?}");
        assert_eq!(
            k.by.get(&("pressure".into(), "/user.slice/user-1001.slice".into())),
            Some(&1),
            "{k:?}"
        );
        assert_eq!(k.by.values().sum::<u64>(), 4, "{k:?}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            escape("/system.slice/system-t3\\x2dserve.slice"),
            "/system.slice/system-t3\\\\x2dserve.slice"
        );
        assert_eq!(escape("a\"b\nc"), "a\\\"b\\nc");
    }
}
