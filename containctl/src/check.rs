//! `containctl check`: the policy's lint and the host's readiness, most serious first, each with its fix.

use crate::docker;
use crate::host::Host;
use crate::iodev;
use crate::pam::{self, Finding as PamFinding};
use crate::policy;
use crate::status;
use crate::{OK, PROBLEMS, emit};
use contain_host::Machine;
use contain_host::accounts::{self, LookupError};
use contain_host::paths;
use contain_host::read_sources;
use contain_host::status::StatusError;
use contain_host::{GeneratorStatus, Outcome};
use contain_policy::value::{CpuSet, Size, human_bytes};
use contain_policy::{FailureAction, Limits, Policy, Source, aggregate, parse};
use contain_policy::{Selector, UserRef};
use serde::Serialize;
use std::fs;
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
    Info,
    Ok,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub what: String,
    pub fix: Option<String>,
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, severity: Severity, what: impl Into<String>, fix: Option<&str>) {
        self.0.push(Finding {
            severity,
            what: what.into(),
            fix: fix.map(str::to_string),
        });
    }
    fn ok(&mut self, what: impl Into<String>) {
        self.add(Severity::Ok, what, None);
    }
}

#[derive(Serialize)]
pub struct Report {
    pub policy: String,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn problems(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity <= Severity::Warning)
            .count()
    }
}

pub fn run(host: &Host, given: Option<&Path>) -> Report {
    let mut f = Findings::default();
    let path = policy::path(host, given);
    let shown = if given.is_some() {
        path.display().to_string()
    } else {
        host.display(&path)
    };
    let mut policy = lint(host, &path, &shown, given.is_none(), &mut f);
    if let Some(p) = policy.as_mut().filter(|_| given.is_none()) {
        policy::unroot(host, p);
    }
    let machine = Machine::of(host);
    if let Some(p) = &policy {
        policy_checks(p, &machine, host, &mut f);
        name_checks(host, p, &mut f);
        cpu_checks(host, p, &mut f);
        io_checks(host, p, &mut f);
    }
    host_checks(host, policy.as_ref(), &mut f);
    if let Some(p) = &policy {
        live_caps(host, p, &mut f);
    }
    let mut findings = f.0;
    findings.sort_by_key(|x| x.severity);
    Report {
        policy: shown,
        findings,
    }
}

/// Reads and parses the policy as the generator does; every diagnostic becomes an error.
fn lint(host: &Host, path: &Path, shown: &str, default_path: bool, f: &mut Findings) -> Option<Policy> {
    let unroot = |s: &str| {
        if default_path {
            host.unroot(s)
        } else {
            s.to_string()
        }
    };
    let sources = match read_sources(path) {
        Ok(Some(s)) => s,
        Ok(None) => {
            f.add(
                Severity::Warning,
                format!("{shown} does not exist: the built-in default policy applies"),
                Some("reinstall the package's /etc/contain/policy.toml, or write one (see contain.toml(5))"),
            );
            return Some(contain_policy::builtin_default());
        }
        Err(errors) => {
            for e in errors {
                f.add(
                    Severity::Error,
                    unroot(&e),
                    Some("the generator applies the built-in default until this is fixed"),
                );
            }
            return None;
        }
    };
    let refs: Vec<Source> = sources.iter().map(|(p, t)| Source { path: p, text: t }).collect();
    match parse(&refs) {
        Ok(p) => {
            let names: Vec<String> = p.sources.iter().map(|s| unroot(s)).collect();
            f.ok(format!("policy {} is valid", names.join(", ")));
            Some(p)
        }
        Err(diags) => {
            for d in diags {
                let what = format!("{}:{}:{}: {}", unroot(&d.file), d.line, d.column, d.message);
                let fix = d.help.unwrap_or_else(|| "see contain.toml(5)".into());
                f.add(Severity::Error, what, Some(&fix));
            }
            None
        }
    }
}

/// Does a set of limits hang a runaway? High below max, no swap, nobody to end it.
fn hangs(limits: &Limits, m: &Machine) -> Option<(String, String)> {
    let high = limits.memory_high?;
    let max = limits.memory_max.unwrap_or(Size::Infinity);
    let below = match (m.size(high).value(), m.size(max).value()) {
        (Some(h), Some(x)) => h < x,
        (Some(_), None) => true,
        _ => false,
    };
    (below && limits.memory_swap_max == Some(Size::Bytes(0))).then(|| (high.to_string(), max.to_string()))
}

fn policy_checks(p: &Policy, m: &Machine, host: &Host, f: &mut Findings) {
    if !p.users.caps {
        f.add(
            Severity::Warning,
            "[users] caps = false: users without an override of their own run uncapped",
            Some("if that is not meant, remove `caps = false` and set caps in [users] (see contain.toml(5))"),
        );
    }
    // The worst case of every tree at once against this host's RAM.
    match host.ram() {
        Some(ram) => {
            let agg = aggregate(p, ram);
            if agg.fits {
                f.ok(format!("the caps fit in RAM: {agg}"));
            } else {
                f.add(
                    Severity::Warning,
                    format!("the caps do not fit in RAM: {agg}"),
                    Some(
                        "each user is still held at their own ceiling, but together they can exhaust the box: \
                         lower memory_max, cap all users together with [user_slice] memory_max, \
                         or set [capacity] heavy_users to how many are really heavy at once",
                    ),
                );
            }
        }
        None => f.add(
            Severity::Warning,
            "cannot read /proc/meminfo: the aggregate check was skipped",
            None,
        ),
    }

    if !p.watchdog.enabled {
        let mut sets: Vec<(String, Limits)> = vec![("[users]".into(), p.users.limits.clone())];
        for o in &p.overrides {
            let mut l = p.users.limits.clone();
            let ov = &o.limits;
            l.memory_high = ov.memory_high.or(l.memory_high);
            l.memory_max = ov.memory_max.or(l.memory_max);
            l.memory_swap_max = ov.memory_swap_max.or(l.memory_swap_max);
            sets.push((format!("the override for {} ({})", o.selector, o.origin), l));
        }
        for t in &p.trees {
            sets.push((format!("[trees.{}]", t.name), t.limits.clone()));
        }
        if p.docker.enabled {
            sets.push(("[docker]".into(), p.docker.limits.clone()));
        }
        for (what, limits) in sets {
            if let Some((high, max)) = hangs(&limits, m) {
                f.add(
                    Severity::Warning,
                    format!(
                        "{what}: memory_high {high} < memory_max {max} with memory_swap_max = 0 and \
                         [watchdog] enabled = false: a runaway is throttled at memory_high and never \
                         reaches memory_max, so the kernel never OOM-kills it; with no swap there is \
                         nothing to reclaim, and systemd-oomd does not kill without reclaim activity. \
                         It sits in D state, holding its memory, and nobody is told"
                    ),
                    Some(
                        "set [watchdog] enabled = true (it ends the runaway after the grace period), \
                         or set memory_high equal to memory_max (or leave it out) so the kernel kills at the ceiling",
                    ),
                );
            }
        }
    }

    if let Some(ram) = host.swap_total() {
        let swap0 = p.users.limits.memory_swap_max == Some(Size::Bytes(0));
        if ram == 0 {
            f.add(
                Severity::Info,
                "no swap on this host: memory_swap_max and oomd's swap_used_limit have nothing to act on",
                None,
            );
        } else if !swap0 {
            f.add(
                Severity::Warning,
                format!(
                    "this host has {} of swap and [users] memory_swap_max is not 0: a runaway spills \
                     into swap and can thrash the disk for everyone",
                    human_bytes(ram)
                ),
                Some("set memory_swap_max = 0 in [users]: work then ends at its ceiling instead"),
            );
        } else {
            f.ok(format!(
                "swap {}: kept for the system, users may not use it",
                human_bytes(ram)
            ));
        }
    }
}

/// How long a check waits for the directory (SSSD, LDAP) per name.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Every user and group the policy names must be one NSS knows, by its canonical name: a typo,
/// or a directory name written in another case or fully qualified, silently never applies.
fn name_checks(host: &Host, p: &Policy, f: &mut Findings) {
    let mut users: Vec<(String, String)> = Vec::new();
    let mut groups: Vec<(String, String)> = Vec::new();
    for o in &p.overrides {
        let place = format!("the override for {} ({})", o.selector, o.origin);
        match &o.selector {
            Selector::User(name) => users.push((name.clone(), place)),
            Selector::Group(name) => groups.push((name.clone(), place)),
            Selector::Uid(_) => {}
        }
    }
    for (list, what) in [
        (&p.users.exempt, "[users] exempt_users"),
        (&p.login.never_deny_users, "[login] never_deny_users"),
    ] {
        for u in list {
            if let UserRef::Name(name) = u {
                users.push((name.clone(), what.to_string()));
            }
        }
    }
    for g in &p.login.never_deny_groups {
        groups.push((g.clone(), "[login] never_deny_groups".to_string()));
    }
    let mut unknown = 0;
    for (name, place) in &users {
        match accounts::by_name(host, name, LOOKUP_TIMEOUT) {
            Ok(account) if account.name == *name => {}
            Ok(account) => {
                unknown += 1;
                f.add(
                    Severity::Warning,
                    format!(
                        "{place}: `{name}` is the account `{}` to NSS; the policy matches the account's own name, so this entry never applies",
                        account.name
                    ),
                    Some(&format!("write `{}` as NSS names it (getent passwd {name})", account.name)),
                );
            }
            Err(LookupError::NotFound(_)) => {
                unknown += 1;
                f.add(
                    Severity::Warning,
                    format!("{place}: no user `{name}` is known to NSS, so this entry never applies"),
                    Some("check the spelling against `getent passwd`; a directory user must resolve here (sssd, nslcd)"),
                );
            }
            Err(e) => f.add(
                Severity::Info,
                format!("{place}: cannot check user `{name}`: {e}"),
                None,
            ),
        }
    }
    for (name, place) in &groups {
        match accounts::group_exists(host, name, LOOKUP_TIMEOUT) {
            Ok(true) => {}
            Ok(false) => {
                unknown += 1;
                f.add(
                    Severity::Warning,
                    format!("{place}: no group `{name}` is known to NSS, so this entry never applies"),
                    Some("check the spelling against `getent group`; a directory group must resolve here"),
                );
            }
            Err(e) => f.add(
                Severity::Info,
                format!("{place}: cannot check group `{name}`: {e}"),
                None,
            ),
        }
    }
    if unknown == 0 && !(users.is_empty() && groups.is_empty()) {
        f.ok(format!(
            "every user and group the policy names is known to NSS ({} users, {} groups)",
            users.len(),
            groups.len()
        ));
    }
}

/// `allowed_cpus` naming no CPU this host has cannot take effect.
fn cpu_checks(host: &Host, p: &Policy, f: &mut Findings) {
    let Some(online) = host
        .read("/sys/devices/system/cpu/online")
        .and_then(|t| CpuSet::parse(&t).ok())
    else {
        return;
    };
    let sets = std::iter::once(("[users]".to_string(), &p.users.limits))
        .chain(p.overrides.iter().map(|o| {
            (
                format!("the override for {} ({})", o.selector, o.origin),
                &o.limits,
            )
        }))
        .chain(p.trees.iter().map(|t| (format!("[trees.{}]", t.name), &t.limits)));
    for (place, limits) in sets {
        if let Some(set) = &limits.allowed_cpus
            && !set.is_all()
            && !set.intersects(&online)
        {
            f.add(
                Severity::Warning,
                format!("{place}: allowed_cpus = \"{set}\" names no CPU of this host (online: {online}); systemd then ignores it"),
                Some("name CPUs this host has (see /sys/devices/system/cpu/online)"),
            );
        }
    }
}

/// Whether the policy's IO settings can work on the disks behind its paths: IOWeight needs
/// BFQ or io.cost; io_latency_target and the bandwidth caps work on any scheduler.
fn io_checks(host: &Host, p: &Policy, f: &mut Findings) {
    let all = |pick: fn(&Limits) -> bool| {
        pick(&p.users.limits)
            || p.overrides.iter().any(|o| pick(&o.limits))
            || p.trees.iter().any(|t| pick(&t.limits))
    };
    let weights = p.system.io_weight.is_some() || all(|l| l.io_weight.is_some());
    let caps = all(|l| {
        [&l.io_read_bandwidth_max, &l.io_write_bandwidth_max]
            .iter()
            .any(|c| c.as_ref().is_some_and(|c| c.bytes_per_sec.is_some()))
    });
    let mut paths = p.system.io_devices.clone();
    for c in [
        &p.users.limits.io_read_bandwidth_max,
        &p.users.limits.io_write_bandwidth_max,
    ]
    .into_iter()
    .flatten()
    {
        paths.extend(
            c.devices
                .iter()
                .filter(|d| !paths.contains(d))
                .cloned()
                .collect::<Vec<_>>(),
        );
    }
    let mut latency = p.system.io_latency_target;
    if let Some(target) = latency
        && !kernel_has_io_latency(host)
    {
        f.add(
            Severity::Warning,
            format!("[system] io_latency_target = {target} does nothing here: this kernel has no io.latency (CONFIG_BLK_CGROUP_IOLATENCY, off in Debian's kernels)"),
            Some("cap each user's IO below the disk's rate with io_write_bandwidth_max (io.max works on every kernel and disk), or set [system] io_scheduler = \"bfq\" (io_weight then takes effect); see contain.toml(5)"),
        );
        latency = None;
    }
    for disk in iodev::disks(host, &paths) {
        let sched = disk.scheduler.as_deref().unwrap_or("unknown");
        let iocost = if disk.iocost { "on" } else { "off" };
        let at = format!(
            "{} ({}; scheduler {sched}, io.cost {iocost})",
            disk.name,
            disk.paths.join(", ")
        );
        let wanted = p.system.io_scheduler.as_deref();
        if let Some(want) = wanted.filter(|w| disk.scheduler.as_deref() != Some(*w)) {
            f.add(
                Severity::Warning,
                format!("{at}: the policy's io_scheduler is {want}, not in force on this disk"),
                Some("run `containctl io-scheduler` (contain-io-scheduler.service does it at boot); it says so where the kernel lacks that scheduler"),
            );
        }
        if weights && !disk.honours_weight() && latency.is_none() && !caps {
            f.add(
                Severity::Warning,
                format!("{at}: the policy's io_weight does nothing here (only BFQ or io.cost honour io.weight), and nothing else protects system.slice's IO: one user's writes can stall logins"),
                Some("cap each user's writes below the disk's rate with io_write_bandwidth_max (io.max works on every kernel and disk), and/or set [system] io_scheduler = \"bfq\" (io_weight then takes effect); see contain.toml(5)"),
            );
        } else if weights && !disk.honours_weight() {
            f.add(
                Severity::Info,
                format!("{at}: io_weight has no effect here (only BFQ or io.cost honour it); the IO protection in force is {}",
                    match (latency, caps) {
                        (Some(t), true) => format!("io_latency_target {t} and per-user bandwidth caps"),
                        (Some(t), false) => format!("io_latency_target {t}"),
                        _ => "the per-user bandwidth caps".into(),
                    }),
                None,
            );
        } else {
            f.ok(format!("{at}: the policy's IO settings take effect"));
        }
    }
}

/// io.latency exists only in kernels built with it: where the io controller is on for
/// system.slice (io.max there) but io.latency is not, the kernel lacks it. Unknown counts as
/// present, so a host without the io controller is not told twice.
fn kernel_has_io_latency(host: &Host) -> bool {
    let slice = "/sys/fs/cgroup/system.slice";
    host.read(&format!("{slice}/io.latency")).is_some() || host.read(&format!("{slice}/io.max")).is_none()
}

fn host_checks(host: &Host, p: Option<&Policy>, f: &mut Findings) {
    // cgroup v2 and its controllers.
    match host.read("/sys/fs/cgroup/cgroup.controllers") {
        Some(text) => {
            let have: Vec<&str> = text.split_whitespace().collect();
            let missing: Vec<&str> = ["memory", "io", "cpu", "pids"]
                .into_iter()
                .filter(|c| !have.contains(c))
                .collect();
            if missing.is_empty() {
                f.ok("cgroup v2 with the memory, io, cpu and pids controllers");
            } else {
                f.add(
                    Severity::Error,
                    format!("cgroup v2 lacks the {} controller(s)", missing.join(", ")),
                    Some("use a kernel with these controllers; check cgroup_disable= on the kernel command line"),
                );
            }
        }
        None => f.add(
            Severity::Error,
            "/sys/fs/cgroup is not cgroup v2 (unified): systemd cannot apply MemoryMax/MemorySwapMax and oomd cannot run",
            Some("boot with systemd.unified_cgroup_hierarchy=1 (the default since Debian 11)"),
        ),
    }
    if host.path("/proc/pressure/memory").exists() {
        f.ok("pressure stall information (PSI) is available");
    } else {
        f.add(
            Severity::Error,
            "/proc/pressure/memory is missing: no PSI, so systemd-oomd and the watchdog are blind",
            Some("boot a kernel with CONFIG_PSI, and without psi=0 on its command line (or add psi=1)"),
        );
    }

    let policing = p.is_some_and(|p| {
        p.users.policing.enabled
            || p.trees.iter().any(|t| t.policing.enabled)
            || (p.docker.enabled && p.docker.policing.enabled)
    });
    let oomd = host.find(&["/usr/lib/systemd/systemd-oomd", "/lib/systemd/systemd-oomd"]);
    let severity = if policing { Severity::Error } else { Severity::Info };
    if oomd.is_none() {
        f.add(
            severity,
            "systemd-oomd is not installed: nothing backs the caps up under box-wide pressure",
            Some("apt install systemd-oomd"),
        );
    } else if !host.is_running("systemd-oomd") {
        f.add(
            severity,
            "systemd-oomd is installed but not running",
            Some("systemctl enable --now systemd-oomd"),
        );
    } else {
        f.ok("systemd-oomd is running");
    }
    if let Some(p) = p {
        if p.watchdog.enabled && !host.is_running("contain-watchdog") {
            f.add(
                Severity::Warning,
                "[watchdog] is enabled but contain-watchdog is not running: a runaway throttled at memory_high hangs",
                Some("systemctl enable --now contain-watchdog; see journalctl -u contain-watchdog"),
            );
        } else if p.watchdog.enabled {
            f.ok("contain-watchdog is running");
        }
    }

    pam_checks(host, p, f);
    docker_checks(host, p, f);
    generator_checks(host, f);
}

fn pam_checks(host: &Host, p: Option<&Policy>, f: &mut Findings) {
    let deny = p.is_none_or(|p| p.login.on_failure == FailureAction::Deny);
    for (file, first) in [("common-session", true), ("common-session-noninteractive", false)] {
        let abs = format!("/etc/pam.d/{file}");
        let Some(text) = host.read(&abs) else {
            f.add(
                Severity::Warning,
                format!("{abs} is missing: cannot check where sessions go"),
                Some("on Debian it is written by pam-auth-update"),
            );
            continue;
        };
        let surface = if first {
            "ssh and console logins"
        } else {
            "cron, at and sudo -u"
        };
        match pam::judge(&text, first) {
            PamFinding::Ok => f.ok(format!("{abs} runs pam_contain")),
            PamFinding::Missing => f.add(
                Severity::Error,
                format!("{abs} does not run pam_contain: {surface} are not placed in capped slices"),
                Some("pam-auth-update --package --enable contain"),
            ),
            PamFinding::BeforeSystemd => f.add(
                Severity::Error,
                format!("{abs} runs pam_contain before pam_systemd: the login has no session slice yet"),
                Some("pam-auth-update --package (the contain profile sorts right after pam_systemd)"),
            ),
            PamFinding::NotRequired(control) if deny => f.add(
                Severity::Warning,
                format!(
                    "{abs} runs pam_contain as `{control}`: with on_failure = \"deny\" a failure would still let the session in"
                ),
                Some("use `required` or the package's control (see pam_contain(8)), or set [login] on_failure = \"allow\""),
            ),
            PamFinding::NotRequired(_) => f.ok(format!("{abs} runs pam_contain")),
        }
    }
}

fn docker_checks(host: &Host, p: Option<&Policy>, f: &mut Findings) {
    let path = docker::daemon_json(host, None);
    let installed = docker::docker_installed(host);
    if !installed && !path.exists() {
        return;
    }
    if p.is_some_and(|p| !p.docker.enabled) {
        f.add(
            Severity::Info,
            "docker is here but [docker] is disabled in the policy: containers are not capped by contain",
            None,
        );
        return;
    }
    let fix = "containctl docker-setup, then systemctl restart docker";
    match docker::inspect(&path) {
        docker::State::Parent(Some(v)) if v == docker::PARENT => {
            f.ok("docker routes containers into docker.slice")
        }
        docker::State::Parent(other) => f.add(
            Severity::Error,
            format!(
                "{} sets cgroup-parent to {}: containers land outside docker.slice, uncapped and protected from oomd",
                docker::DAEMON_JSON,
                other.map_or("nothing".into(), |v| format!("`{v}`"))
            ),
            Some(fix),
        ),
        docker::State::Missing => f.add(
            Severity::Error,
            format!(
                "docker is installed but {} is missing: containers land in system.slice, uncapped and protected from oomd",
                docker::DAEMON_JSON
            ),
            Some(fix),
        ),
        docker::State::Invalid(e) => f.add(
            Severity::Error,
            format!("{}: {e}", docker::DAEMON_JSON),
            Some("fix the JSON by hand, then run containctl docker-setup"),
        ),
    }
}

fn generator_checks(host: &Host, f: &mut Findings) {
    let state = paths::GENERATOR_STATUS;
    let status = match GeneratorStatus::read(host) {
        Ok(status) => status,
        Err(StatusError::Missing) => {
            f.add(
                Severity::Warning,
                format!("{state} is missing: contain-generator has not run since boot, so no caps are in place"),
                Some("check that /usr/lib/systemd/system-generators/contain-generator exists, then systemctl daemon-reload"),
            );
            return;
        }
        Err(StatusError::Unreadable(e)) => {
            f.add(
                Severity::Warning,
                format!("{state} is unreadable: {e}"),
                Some("systemctl daemon-reload"),
            );
            return;
        }
    };
    let errors = &status.errors;
    match status.outcome {
        Outcome::Applied if errors.is_empty() => f.ok("the generator applied the policy at its last run"),
        Outcome::Default => f.add(
            Severity::Info,
            "the generator applied the built-in default policy (no policy file at its last run)",
            None,
        ),
        outcome => f.add(
            Severity::Error,
            format!(
                "the generator's last run: {}, {} error(s){}",
                serde_json::to_value(outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                errors.len(),
                errors.first().map_or(String::new(), |e| format!("; first: {e}"))
            ),
            Some("fix the policy (this check lists its errors), then containctl apply"),
        ),
    }
    // A policy edited after the generator ran is not in force yet.
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let ran = mtime(&host.path(state));
    let newest = status.sources.iter().filter_map(|s| mtime(&host.path(s))).max();
    if let (Some(ran), Some(newest)) = (ran, newest)
        && newest > ran
    {
        f.add(
            Severity::Warning,
            "the policy changed after the generator last ran: the new caps are not in force",
            Some("containctl apply (or reboot)"),
        );
    }
}

fn live_caps(host: &Host, p: &Policy, f: &mut Findings) {
    if !host.cgroup("/user.slice").is_dir() {
        return;
    }
    let report = status::collect(host, p);
    for r in report.slices.iter().chain(&report.trees) {
        if r.caps_match != Some(false) {
            continue;
        }
        let diffs: Vec<String> = r
            .mismatches
            .iter()
            .map(|m| {
                format!(
                    "{} is {}, the policy says {}",
                    m.property,
                    m.live.as_deref().unwrap_or("unreadable"),
                    m.policy
                )
            })
            .collect();
        f.add(
            Severity::Warning,
            format!("{}: {}", r.unit, diffs.join("; ")),
            Some("containctl apply"),
        );
    }
    for scope in &report.escaped_containers {
        f.add(
            Severity::Warning,
            format!("container {scope} runs outside docker.slice: uncapped and unpoliced"),
            Some("docker group members are root-equivalent: restart it without --cgroup-parent, and keep the group small"),
        );
    }
}

pub fn print(report: &Report) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let tag = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::Ok => "ok",
        };
        out.push_str(&format!("{tag}: {}\n", f.what));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("  fix: {fix}\n"));
        }
    }
    let n = report.problems();
    if n == 0 {
        out.push_str("No problems found.\n");
    } else {
        out.push_str(&format!("{n} problem(s) found.\n"));
    }
    out
}

/// `containctl check`.
pub fn command(host: &Host, policy: Option<&Path>, json: bool) -> u8 {
    let report = run(host, policy);
    emit(json, &report, print);
    if report.problems() > 0 { PROBLEMS } else { OK }
}
