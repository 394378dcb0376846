//! `containctl apply`: put an edited policy in force without a reboot.

use crate::host::Host;
use crate::iosched;
use crate::policy;
use crate::progress;
use crate::render::{self, FileDiff, State};
use crate::status::{uid_of_user_slice, user_limits};
use crate::{OK, PROBLEMS, emit};
use contain_host::Stats;
use contain_host::cgroupfs::children;
use contain_host::compiled::{COMPILED_POLICY, load_and_compile};
use contain_host::drift::{Machine, Mismatch, compare};
use contain_host::{Loaded, Outcome, paths};
use contain_policy::value::IoBandwidth;
use contain_systemd::{Error as BusError, daemon_reload, properties_for, reload_unit, set_unit_properties};
use serde::Serialize;
use std::time::Duration;
use std::time::Instant;

const RELOAD_TIMEOUT: Duration = Duration::from_secs(120);
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
const OOMD: &str = "systemd-oomd.service";

#[derive(Serialize)]
pub struct SliceChange {
    pub unit: String,
    pub user: Option<String>,
    /// What differed from the policy before apply.
    pub changed: Vec<Mismatch>,
    /// What still differs afterwards (should be empty).
    pub remaining: Vec<Mismatch>,
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct Report {
    pub files: Vec<FileDiff>,
    pub reloaded: bool,
    pub slices: Vec<SliceChange>,
    pub oomd: String,
    /// The policy's io_scheduler put on its disks.
    pub disks: Vec<iosched::DiskResult>,
    pub errors: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
            && self
                .slices
                .iter()
                .all(|s| s.error.is_none() && s.remaining.is_empty())
    }
}

pub fn run(host: &Host, loaded: &Loaded) -> Report {
    let mut report = Report {
        files: Vec::new(),
        reloaded: false,
        slices: Vec::new(),
        oomd: String::new(),
        disks: Vec::new(),
        errors: Vec::new(),
    };
    if loaded.outcome == Outcome::Fallback {
        report.errors.push(format!(
            "the policy is invalid; nothing was applied (a reload now would put the built-in default in force): {}",
            loaded.errors.join("; ")
        ));
        return report;
    }
    report.files = render::diff(host, loaded)
        .into_iter()
        .filter(|d| d.state != State::Same)
        .collect();

    // What each running user slice carries now, before systemd re-reads anything.
    progress::waiting("systemd to re-read the units and set the caps", Instant::now());
    let m = Machine::of(host);
    let before: Vec<(String, String, Stats)> = children(host, "/user.slice", |n| {
        n.starts_with("user-") && n.ends_with(".slice")
    })
    .into_iter()
    .map(|cg| {
        let stats = Stats::read(&host.cgroup(&cg));
        let unit = cg.rsplit('/').next().unwrap_or_default().to_string();
        (cg, unit, stats)
    })
    .collect();

    // 1. The generator rewrites the units; systemd re-reads them.
    match daemon_reload(RELOAD_TIMEOUT) {
        Ok(()) => report.reloaded = true,
        Err(e) => {
            report.errors.push(format!("daemon-reload failed: {e}"));
            return report;
        }
    }
    // The policy compiled for logins (one would compile it too): each reads its own overrides.
    let _ = load_and_compile(&host.path(paths::POLICY), &host.path(COMPILED_POLICY));

    // 2. Running user slices: runtime properties win over every drop-in, pam_contain's old
    //    repairs included, so set the policy's values there too.
    for (cg, unit, stats) in before {
        let Some(uid) = uid_of_user_slice(&unit) else {
            continue;
        };
        let (user, mut limits) = user_limits(&loaded.policy, host, uid);
        // A cap the policy no longer sets is lifted: an earlier apply's runtime value would
        // otherwise outlive it until the next boot.
        for cap in [
            &mut limits.io_read_bandwidth_max,
            &mut limits.io_write_bandwidth_max,
        ] {
            cap.get_or_insert(IoBandwidth::NONE);
        }
        let props = properties_for(&limits);
        if props.is_empty() {
            continue;
        }
        let changed = compare(&m, &limits, &stats);
        let error = set_unit_properties(&unit, true, &props, CALL_TIMEOUT)
            .err()
            .map(|e| format!("SetUnitProperties failed: {e}"));
        let remaining = if error.is_none() && host.is_live() {
            compare(&m, &limits, &Stats::read(&host.cgroup(&cg)))
        } else {
            Vec::new()
        };
        report.slices.push(SliceChange {
            unit,
            user,
            changed,
            remaining,
            error,
        });
    }

    // 3. oomd re-reads its drop-in on reload (systemd >= 254); older ones must restart.
    report.oomd = if !host.is_running("systemd-oomd") {
        "systemd-oomd is not running: nothing to reload".into()
    } else {
        match reload_unit(OOMD, CALL_TIMEOUT) {
            Ok(()) => "systemd-oomd reloaded its configuration".into(),
            Err(BusError::Method { message, .. }) if message.contains("not applicable") => {
                match restart_oomd(host) {
                    Ok(()) => {
                        "systemd-oomd cannot reload on this systemd version; restarted it instead".into()
                    }
                    Err(e) => {
                        report.errors.push(e.clone());
                        e
                    }
                }
            }
            Err(e) => {
                let e = format!("reloading systemd-oomd failed: {e}");
                report.errors.push(e.clone());
                e
            }
        }
    };

    // 4. The disks' scheduler, as contain-io-scheduler.service sets it at boot.
    report.disks = iosched::run(host, &loaded.policy);
    for d in &report.disks {
        if d.error.is_some() {
            report.errors.push(iosched::describe(d));
        }
    }
    report
}

fn restart_oomd(host: &Host) -> Result<(), String> {
    if !host.is_live() {
        return Err("would restart systemd-oomd (not on a fixture root)".into());
    }
    let status = std::process::Command::new("systemctl")
        .args(["try-restart", OOMD])
        .status()
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("systemctl try-restart {OOMD} failed ({status})"))
}

pub fn print(r: &Report) -> String {
    let mut out = String::new();
    if r.files.is_empty() {
        out.push_str("Generated units: unchanged.\n");
    } else {
        out.push_str("Generated units changed:\n");
        for f in &r.files {
            out.push_str(&format!("  {:?}: {}\n", f.state, f.path).to_lowercase());
        }
    }
    if r.reloaded {
        out.push_str("systemd reloaded (the generator ran again).\n");
    }
    for s in &r.slices {
        let who = s.user.as_deref().map_or(String::new(), |u| format!(" ({u})"));
        if let Some(e) = &s.error {
            out.push_str(&format!("{}{who}: {e}\n", s.unit));
        } else if s.changed.is_empty() {
            out.push_str(&format!("{}{who}: caps already right\n", s.unit));
        } else {
            let what: Vec<String> = s
                .changed
                .iter()
                .map(|m| {
                    format!(
                        "{} {} → {}",
                        m.property,
                        m.live.as_deref().unwrap_or("?"),
                        m.policy
                    )
                })
                .collect();
            out.push_str(&format!("{}{who}: {}\n", s.unit, what.join(", ")));
        }
        for m in &s.remaining {
            out.push_str(&format!(
                "  still wrong: {} is {}, the policy says {}\n",
                m.property,
                m.live.as_deref().unwrap_or("?"),
                m.policy
            ));
        }
    }
    if !r.oomd.is_empty() {
        out.push_str(&r.oomd);
        out.push('\n');
    }
    for d in r.disks.iter().filter(|d| d.error.is_none()) {
        out.push_str(&format!("IO scheduler on {}\n", iosched::describe(d)));
    }
    for e in &r.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

/// `containctl apply`.
pub fn command(host: &Host, json: bool) -> u8 {
    progress::enable(json);
    let loaded = policy::effective(host, None);
    let report = run(host, &loaded);
    progress::done();
    emit(json, &report, print);
    if report.ok() { OK } else { PROBLEMS }
}
