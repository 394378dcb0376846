//! `containctl io-scheduler`: puts the policy's `io_scheduler` on the disks behind its IO paths.
//! Run at boot by contain-io-scheduler.service and by `containctl apply`.

use crate::host::{Host, key_values};
use crate::iodev::{self, Disk};
use crate::policy;
use crate::{OK, PROBLEMS};
use contain_host::cgroupfs::walk;
use contain_policy::Policy;
use serde::Serialize;
use std::fs;

#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct DiskResult {
    pub disk: String,
    pub paths: Vec<String>,
    /// The scheduler before, when known.
    pub was: Option<String>,
    /// The scheduler now, when known.
    pub now: Option<String>,
    pub error: Option<String>,
}

/// What it did per disk; empty where the policy sets no `io_scheduler`.
pub fn run(host: &Host, policy: &Policy) -> Vec<DiskResult> {
    let Some(want) = policy.system.io_scheduler.as_deref() else {
        return Vec::new();
    };
    let results: Vec<DiskResult> = iodev::disks(host, &policy.system.io_devices)
        .into_iter()
        .map(|disk| set(host, disk, want))
        .collect();
    if want == "bfq" {
        copy_weights_to_bfq(host);
    }
    results
}

/// systemd writes io.bfq.weight beside io.weight when it creates a cgroup, but only where
/// BFQ is loaded by then: the slices made earlier in the boot (system.slice) would keep
/// BFQ's default. Copies each io.weight over, scaled as systemd does.
fn copy_weights_to_bfq(host: &Host) {
    for cg in walk(host, 3) {
        let dir = host.cgroup(&cg);
        let weight = |file: &str| key_values(&fs::read_to_string(dir.join(file)).ok()?, "default");
        let (Some(io), Some(bfq)) = (weight("io.weight"), weight("io.bfq.weight")) else {
            continue;
        };
        let want = bfq_weight(io);
        if bfq != want {
            // A cgroup gone meanwhile needs no weight.
            let _ = fs::write(dir.join("io.bfq.weight"), format!("default {want}"));
        }
    }
}

/// systemd's BFQ_WEIGHT(): cgroup weights 1..100..10000 onto BFQ's 1..100..1000.
fn bfq_weight(io: u64) -> u64 {
    let io = io.clamp(1, 10_000);
    if io <= 100 {
        io
    } else {
        100 + (io - 100) * 900 / 9_900
    }
}

fn set(host: &Host, disk: Disk, want: &str) -> DiskResult {
    let file = &disk.scheduler_file;
    let mut error = None;
    if disk.scheduler.as_deref() != Some(want) {
        // The kernel loads the scheduler's module itself (request_module) on this write.
        if let Err(e) = fs::write(file, want) {
            error = Some(format!(
                "writing `{want}` to {}: {e}",
                host.unroot(&file.display().to_string())
            ));
        }
    }
    let now = fs::read_to_string(file).ok().and_then(|t| iodev::active(&t));
    if error.is_none() && now.as_deref() != Some(want) {
        error = Some(format!(
            "the scheduler is {} after the write",
            now.as_deref().unwrap_or("unreadable")
        ));
    }
    DiskResult {
        disk: disk.name,
        paths: disk.paths,
        was: disk.scheduler,
        now,
        error,
    }
}

/// One line per disk, as the command and `apply` print them.
pub fn describe(r: &DiskResult) -> String {
    let on = format!("{} ({})", r.disk, r.paths.join(", "));
    match (&r.error, &r.was, &r.now) {
        (Some(e), _, _) => format!("{on}: {e}"),
        (None, was, Some(now)) if was.as_ref() == Some(now) => format!("{on}: {now} already"),
        (None, was, now) => format!(
            "{on}: {} → {}",
            was.as_deref().unwrap_or("?"),
            now.as_deref().unwrap_or("?")
        ),
    }
}

pub fn command(host: &Host, json: bool) -> u8 {
    let loaded = policy::effective(host, None);
    let results = run(host, &loaded.policy);
    crate::emit(json, &results, |results| {
        if loaded.policy.system.io_scheduler.is_none() {
            return "the policy sets no io_scheduler: every disk keeps the kernel's choice\n".into();
        }
        if results.is_empty() {
            return "no disk found behind the policy's io_devices\n".into();
        }
        results.iter().map(|r| describe(r) + "\n").collect()
    });
    if results.iter().all(|r| r.error.is_none()) {
        OK
    } else {
        PROBLEMS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bfq_weights_are_systemds() {
        // systemd 252-257 write these for IOWeight= 1, 50, 100, 200, 500, 10000.
        assert_eq!(bfq_weight(1), 1);
        assert_eq!(bfq_weight(50), 50);
        assert_eq!(bfq_weight(100), 100);
        assert_eq!(bfq_weight(200), 109);
        assert_eq!(bfq_weight(500), 136);
        assert_eq!(bfq_weight(10_000), 1000);
    }
}
