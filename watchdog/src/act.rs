//! Ending a runaway: lower the cgroup's memory.max to its current usage so the kernel's memcg
//! OOM killer picks the victim inside that cgroup only (largest, respecting oom_score_adj),
//! then put memory.max back. The restore happens on every path, including a panic, and
//! after a crash at the next start (from a record written before lowering).

use crate::cgroupfs::{self, Proc};
use nix::sys::pthread::{Pthread, pthread_kill, pthread_self};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

/// Ends a memory.max write still reclaiming: before Linux 6.13 the write returns only once usage
/// is under the value written (the victim's memory freed, a second or more under emulation),
/// whatever the file says meanwhile; a pending signal ends its loop.
const WAKE: Signal = Signal::SIGUSR2;

extern "C" fn wake(_: libc::c_int) {}

fn catch_wake() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let action = SigAction::new(SigHandler::Handler(wake), SaFlags::empty(), SigSet::empty());
        // SAFETY: the handler does nothing, so it is async-signal-safe; without it WAKE would
        // end the process.
        if let Err(e) = unsafe { sigaction(WAKE, &action) } {
            log::warn!("cannot catch {WAKE}: a lowering write ends only when the kernel is done: {e}");
        }
    });
}

#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long to wait for the kernel's OOM kill after lowering memory.max.
    pub kill_wait: Duration,
    /// How long to wait for the victim to leave the cgroup, for the report.
    pub gone_wait: Duration,
    pub poll: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            kill_wait: Duration::from_secs(5),
            gone_wait: Duration::from_secs(2),
            poll: Duration::from_millis(50),
        }
    }
}

/// What happened to memory.max afterwards.
#[derive(Debug, PartialEq, Eq)]
pub enum Restore {
    /// Put back to the value it had.
    Restored,
    /// Someone else (systemd, an admin) set it meanwhile: their value was kept.
    LeftAlone(String),
}

#[derive(Debug)]
pub struct Ended {
    /// memory.max as it was (systemd's value), as the kernel printed it.
    pub original_max: String,
    pub lowered_to: u64,
    /// memory.current just before acting.
    pub usage: u64,
    /// The kernel's oom_kill counter rose.
    pub killed: bool,
    /// The process the OOM killer was expected to pick (unconfirmed).
    pub victim: Option<Proc>,
    /// Every process in the cgroup before acting, to match the kernel's report or, without
    /// one, to find which left ([`await_victim`]).
    pub before: Vec<Proc>,
    pub restore: io::Result<Restore>,
}

/// A kill the kernel has counted, with the ceiling already given back: what the report needs,
/// handed over before the lowering write is ended (which can take a reclaim pass).
pub struct Killed<'a> {
    /// memory.current just before acting.
    pub usage: u64,
    /// memory.max as it was, and is again.
    pub original_max: &'a str,
    pub before: &'a [Proc],
}

fn page_size() -> u64 {
    use nix::unistd::{SysconfVar, sysconf};
    match sysconf(SysconfVar::PAGE_SIZE) {
        Ok(Some(p)) if p > 0 => p as u64,
        _ => 4096,
    }
}

fn oom_kills(dir: &Path) -> io::Result<u64> {
    Ok(cgroupfs::flat_key(
        &fs::read_to_string(dir.join("memory.events"))?,
        "oom_kill",
    ))
}

/// Restores memory.max when dropped, unless already restored: no early return, error or panic
/// can leave a cgroup squeezed to its usage.
struct MaxGuard {
    file: PathBuf,
    original: String,
    lowered: u64,
    pending: PathBuf,
    armed: bool,
}

impl MaxGuard {
    fn restore(&mut self) -> io::Result<Restore> {
        self.armed = false;
        let mut last = None;
        for attempt in 0..3 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            match restore_if_ours(&self.file, &self.original, self.lowered) {
                Ok(r) => {
                    let _ = fs::remove_file(&self.pending);
                    return Ok(r);
                }
                Err(e) => last = Some(e),
            }
        }
        // The pending record stays: the next start tries again.
        Err(last.unwrap_or_else(|| io::Error::other("restore failed")))
    }
}

impl Drop for MaxGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.restore();
        }
    }
}

/// Writes `original` back unless memory.max no longer holds the value we lowered it to.
fn restore_if_ours(file: &Path, original: &str, lowered: u64) -> io::Result<Restore> {
    let now = fs::read_to_string(file)?;
    let now = now.trim();
    if now.parse::<u64>().ok() != Some(lowered) {
        return Ok(Restore::LeftAlone(now.to_string()));
    }
    fs::write(file, original)?;
    Ok(Restore::Restored)
}

/// Puts back a memory.max a crashed earlier run left lowered. Returns what it did, for the log.
pub fn recover_pending(cgroup_root: &Path, pending: &Path) -> Option<(String, io::Result<Restore>)> {
    let text = fs::read_to_string(pending).ok()?;
    let mut fields = text.trim_end_matches('\n').split('\t');
    let (Some(cgroup), Some(original), Some(lowered)) = (fields.next(), fields.next(), fields.next()) else {
        let _ = fs::remove_file(pending);
        return None;
    };
    let lowered: u64 = lowered.parse().ok()?;
    let file = cgroup_root
        .join(cgroup.trim_start_matches('/'))
        .join("memory.max");
    let result = restore_if_ours(&file, original, lowered);
    if result.is_ok() || !file.exists() {
        let _ = fs::remove_file(pending);
    }
    Some((cgroup.to_string(), result))
}

/// Root's processes with oom_score_adj -1000 while a runaway is ended, their own values back
/// afterwards (also on an early return or a panic).
struct RootShield {
    proc_root: PathBuf,
    saved: Vec<(u32, i32)>,
}

impl RootShield {
    fn new(proc_root: &Path) -> RootShield {
        RootShield {
            proc_root: proc_root.to_path_buf(),
            saved: Vec::new(),
        }
    }

    fn protect(&mut self, p: &cgroupfs::Proc) {
        if p.oom_score_adj == -1000 {
            return;
        }
        let file = self.proc_root.join(p.pid.to_string()).join("oom_score_adj");
        if fs::write(&file, "-1000").is_ok() {
            self.saved.push((p.pid, p.oom_score_adj));
        }
    }
}

impl Drop for RootShield {
    fn drop(&mut self) {
        for (pid, adj) in self.saved.drain(..) {
            let _ = fs::write(
                self.proc_root.join(pid.to_string()).join("oom_score_adj"),
                adj.to_string(),
            );
        }
    }
}

/// Ends the runaway in the cgroup at `dir` (`cgroup` is its path for the crash record);
/// `on_kill` runs once the kill is counted and the ceiling restored.
pub fn end_runaway(
    dir: &Path,
    cgroup: &str,
    proc_root: &Path,
    pending: &Path,
    timing: &Timing,
    on_kill: impl FnOnce(&Killed<'_>),
) -> io::Result<Ended> {
    let before = cgroupfs::processes(dir, proc_root);
    let oom_before = oom_kills(dir)?;
    let max_file = dir.join("memory.max");
    let original = fs::read_to_string(&max_file)?.trim().to_string();
    let usage: u64 = fs::read_to_string(dir.join("memory.current"))?
        .trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "memory.current"))?;
    let page = page_size();
    let target = usage / page * page;
    if target == 0
        || cgroupfs::parse_limit(&original)
            .flatten()
            .is_some_and(|m| m <= target)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("usage {usage} is not below memory.max {original}: nothing to lower"),
        ));
    }
    // Root's processes in a user's slice (an admin's `systemd-run --slice=`, a `sudo` without
    // pam_contain) are never the runaway: out of the OOM killer's reach while it picks.
    // Only in a user's slice: a container's root is the runaway of docker.slice.
    let mut shielded = RootShield::new(proc_root);
    let mut candidates = before.clone();
    let users_slice = contain_host::cgroupfs::user_slice_uid(cgroup).is_some_and(|uid| uid != 0);
    for p in candidates.iter_mut().filter(|p| users_slice && p.uid == Some(0)) {
        shielded.protect(p);
        p.oom_score_adj = -1000;
    }
    let predicted = cgroupfs::likely_victim(&candidates, target).cloned();
    if predicted.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no process the kernel could end here but root's: nothing to lower",
        ));
    }

    if let Err(e) =
        contain_host::write_atomic(pending, format!("{cgroup}\t{original}\t{target}\n").as_bytes())
    {
        log::warn!(
            "cannot record {} (a crash now would leave memory.max lowered): {e}",
            pending.display()
        );
    }
    let mut guard = MaxGuard {
        file: max_file.clone(),
        original: original.clone(),
        lowered: target,
        pending: pending.to_path_buf(),
        armed: true,
    };
    // The kernel reclaims and OOM-kills inside this write, which returns only once usage is
    // under the new limit: after the victim's memory is freed, a second or more under
    // emulation. It runs beside this thread, so the kill is seen (and the ceiling given back,
    // and the write ended by WAKE) as soon as the kernel counts it.
    catch_wake();
    let writer: OnceLock<Pthread> = OnceLock::new();
    let (killed, written, restore) = std::thread::scope(|scope| {
        let mut lowering = Some(scope.spawn(|| {
            let _ = writer.set(pthread_self());
            fs::write(&max_file, target.to_string())
        }));
        let joined = |h: std::thread::ScopedJoinHandle<'_, io::Result<()>>| {
            h.join()
                .unwrap_or_else(|_| Err(io::Error::other("the write of memory.max panicked")))
        };
        let start = Instant::now();
        let mut written: Option<(io::Result<()>, Instant)> = None;
        let mut killed = false;
        loop {
            if oom_kills(dir).is_ok_and(|n| n > oom_before) {
                killed = true;
                break;
            }
            if let Some(h) = lowering.take_if(|h| h.is_finished()) {
                let result = joined(h);
                let failed = result.is_err();
                written = Some((result, Instant::now()));
                if failed {
                    break;
                }
            }
            // No kill within kill_wait of the write's end (reclaim sufficed, or nothing can
            // be killed); a write still in the kernel after far longer is ended below.
            let waited = written.as_ref().map_or(start.elapsed() / 6, |(_, t)| t.elapsed());
            if waited >= timing.kill_wait {
                break;
            }
            std::thread::sleep(timing.poll);
        }
        // The kill is done (or did not come): give the cgroup its ceiling back at once, tell,
        // and only then wait for the write, which can be deep in a reclaim pass. It is woken
        // first: until the victim's memory is freed the kernel loops in it (the OOM killer
        // finds the victim still exiting), taking CPU the tell and that exit need.
        let wake_writer = || {
            if let Some(&thread) = writer.get() {
                let _ = pthread_kill(thread, WAKE);
            }
        };
        if killed && lowering.as_ref().is_some_and(|h| !h.is_finished()) {
            wake_writer();
        }
        let restore = guard.restore();
        if killed {
            on_kill(&Killed {
                usage,
                original_max: &original,
                before: &before,
            });
        }
        if let Some(h) = &lowering {
            while !h.is_finished() {
                wake_writer();
                std::thread::sleep(timing.poll);
            }
        }
        let written = match (lowering, written) {
            (Some(h), _) => joined(h),
            (None, Some((result, _))) => result,
            (None, None) => unreachable!("the write is joined or still pending"),
        };
        // A kill counted before the write began (the kernel's own, at the old ceiling) lets
        // the restore look before the write lands: look again once it has.
        let restore = match restore {
            Ok(Restore::LeftAlone(_)) => restore_if_ours(&max_file, &original, target),
            r => r,
        };
        (killed, written, restore)
    });
    if let (false, Err(e)) = (killed, written) {
        return Err(e);
    }
    drop(shielded);

    Ok(Ended {
        original_max: original,
        lowered_to: target,
        usage,
        killed,
        victim: predicted,
        before,
        restore,
    })
}

/// After a kill, the largest of `before` that has left the cgroup: the victim, confirmed from
/// /proc where the kernel's own report is not to be had (waits up to `gone_wait`).
pub fn await_victim(dir: &Path, proc_root: &Path, before: &[Proc], timing: &Timing) -> Option<Proc> {
    let deadline = Instant::now() + timing.gone_wait;
    loop {
        let now = cgroupfs::processes(dir, proc_root);
        let left = before
            .iter()
            .filter(|p| !cgroupfs::alive_in(&now, p.pid))
            .max_by_key(|p| p.size);
        if left.is_some() || Instant::now() >= deadline {
            return left.cloned();
        }
        std::thread::sleep(timing.poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    const M: u64 = 1 << 20;

    /// A fake cgroup with two processes in a fake /proc.
    struct Fake {
        _dir: tempfile::TempDir,
        cg: PathBuf,
        proc_root: PathBuf,
        pending: PathBuf,
    }

    fn fake(max: &str) -> Fake {
        let dir = tempfile::tempdir().expect("tempdir");
        let cg = dir.path().join("cg/user.slice/user-1001.slice");
        let proc_root = dir.path().join("proc");
        fs::create_dir_all(cg.join("session-3.scope")).expect("mkdir");
        fs::write(cg.join("memory.max"), format!("{max}\n")).expect("w");
        fs::write(cg.join("memory.current"), format!("{}\n", 707 * M + 123)).expect("w");
        fs::write(
            cg.join("memory.events"),
            "low 0\nhigh 1836\nmax 0\noom 0\noom_kill 0\n",
        )
        .expect("w");
        fs::write(cg.join("cgroup.procs"), "").expect("w");
        fs::write(cg.join("session-3.scope/cgroup.procs"), "100\n200\n").expect("w");
        let pending = dir.path().join("state/watchdog.restore");
        let f = Fake {
            _dir: dir,
            cg,
            proc_root,
            pending,
        };
        f.process(100, "bash", 1001, 4_000);
        f.process(200, "stress-ng", 1001, 700_000);
        f
    }

    impl Fake {
        /// A process in the fake /proc (its cgroup membership is written separately).
        fn process(&self, pid: u32, name: &str, uid: u32, rss_kb: u64) -> PathBuf {
            let d = self.proc_root.join(pid.to_string());
            fs::create_dir_all(&d).expect("mkdir");
            fs::write(
                d.join("status"),
                format!("Name:\t{name}\nState:\tS (sleeping)\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nVmRSS:\t{rss_kb} kB\n"),
            )
            .expect("w");
            d
        }

        fn end(&self) -> io::Result<Ended> {
            end_runaway(
                &self.cg,
                "/user.slice/user-1001.slice",
                &self.proc_root,
                &self.pending,
                &fast(),
                |_| {},
            )
        }

        /// Ends the runaway with [`kernel`] playing along; also returns every memory.max it saw.
        fn end_with_kernel(&self, kill: bool) -> (Ended, Vec<String>) {
            let (stop, kernel) = kernel(self, kill);
            let ended = self.end().expect("acted");
            stop.store(true, Ordering::Relaxed);
            (ended, kernel.join().expect("kernel thread"))
        }
    }

    /// Plays the kernel: when memory.max drops below the usage, kill the largest process.
    fn kernel(f: &Fake, kill: bool) -> (Arc<AtomicBool>, std::thread::JoinHandle<Vec<String>>) {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let cg = f.cg.clone();
        let initial = fs::read_to_string(cg.join("memory.max")).expect("read");
        let handle = std::thread::spawn(move || {
            let mut seen = vec![initial.trim().to_string()];
            loop {
                // One last look after the stop, so the final value is always recorded.
                let stopping = s.load(Ordering::Relaxed);
                let max = fs::read_to_string(cg.join("memory.max")).unwrap_or_default();
                let max = max.trim().to_string();
                // A read between the truncate and the write of fs::write sees nothing.
                if !max.is_empty() && seen.last() != Some(&max) {
                    seen.push(max.clone());
                }
                if kill && max.parse::<u64>().is_ok_and(|m| m < 800 * M) {
                    let _ = fs::write(cg.join("session-3.scope/cgroup.procs"), "100\n");
                    let _ = fs::write(
                        cg.join("memory.events"),
                        "low 0\nhigh 1836\nmax 1\noom 1\noom_kill 1\n",
                    );
                }
                if stopping {
                    return seen;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        (stop, handle)
    }

    fn fast() -> Timing {
        Timing {
            kill_wait: Duration::from_millis(600),
            gone_wait: Duration::from_millis(300),
            poll: Duration::from_millis(10),
        }
    }

    #[test]
    fn lowers_to_usage_waits_for_the_kill_and_restores() {
        let f = fake("838860800");
        let (ended, seen) = f.end_with_kernel(true);
        let page = page_size();
        let lowered = ((707 * M + 123) / page * page).to_string();
        // The sequence the kernel saw: systemd's value, lowered to the usage, systemd's value again.
        assert_eq!(
            seen,
            vec!["838860800".to_string(), lowered, "838860800".to_string()]
        );
        assert!(ended.killed);
        let left = await_victim(&f.cg, &f.proc_root, &ended.before, &fast());
        assert_eq!(
            left.map(|v| (v.pid, v.comm)),
            Some((200, "stress-ng".into())),
            "confirmed from /proc: it left the cgroup"
        );
        assert_eq!(ended.restore.expect("restored"), Restore::Restored);
        assert!(
            !f.pending.exists(),
            "the crash record is removed after the restore"
        );
    }

    #[test]
    fn roots_processes_are_shielded_while_the_runaway_is_ended() {
        let f = fake("838860800");
        // Root's apt (sudo without pam_contain) is the largest process in alice's slice.
        let apt = f.process(300, "apt", 0, 900_000);
        fs::write(apt.join("oom_score_adj"), "0\n").expect("w");
        fs::write(f.cg.join("session-3.scope/cgroup.procs"), "100\n200\n300\n").expect("w");
        let adj = apt.join("oom_score_adj");
        let seen_adj = std::thread::scope(|scope| {
            let watcher = scope.spawn(|| {
                let mut seen = Vec::new();
                for _ in 0..200 {
                    let v = fs::read_to_string(&adj).unwrap_or_default().trim().to_string();
                    if !v.is_empty() && seen.last() != Some(&v) {
                        seen.push(v);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                seen
            });
            let ended = f.end().expect("acted");
            assert_eq!(
                ended.victim.map(|v| v.pid),
                Some(200),
                "the user's process, not root's"
            );
            watcher.join().expect("watcher")
        });
        assert!(seen_adj.contains(&"-1000".to_string()), "{seen_adj:?}");
        assert_eq!(fs::read_to_string(&adj).expect("read").trim(), "0", "restored");
        // Only root's processes left: nothing is lowered at all.
        fs::write(f.cg.join("session-3.scope/cgroup.procs"), "300\n").expect("w");
        let err = f.end().expect_err("nothing to end");
        assert!(err.to_string().contains("but root's"), "{err}");
        assert_eq!(
            fs::read_to_string(f.cg.join("memory.max")).expect("read").trim(),
            "838860800"
        );
        assert_eq!(fs::read_to_string(&adj).expect("read").trim(), "0");
    }

    #[test]
    fn the_kill_is_handed_over_once_with_the_ceiling_already_back() {
        for kill in [true, false] {
            let f = fake("838860800");
            let (stop, kernel) = kernel(&f, kill);
            let mut told = Vec::new();
            let ended = end_runaway(
                &f.cg,
                "/user.slice/user-1001.slice",
                &f.proc_root,
                &f.pending,
                &fast(),
                |k| {
                    let max = fs::read_to_string(f.cg.join("memory.max")).expect("read");
                    let pids: Vec<u32> = k.before.iter().map(|p| p.pid).collect();
                    told.push((max, k.original_max.to_string(), k.usage, pids));
                },
            )
            .expect("acted");
            stop.store(true, Ordering::Relaxed);
            kernel.join().expect("kernel thread");
            assert_eq!(ended.killed, kill);
            let expected = kill.then(|| {
                let c = "838860800".to_string();
                (c.clone(), c, 707 * M + 123, vec![100, 200])
            });
            assert_eq!(told, expected.into_iter().collect::<Vec<_>>(), "kill: {kill}");
        }
    }

    #[test]
    fn restores_even_when_no_kill_comes() {
        let f = fake("max");
        let (ended, seen) = f.end_with_kernel(false);
        assert!(!ended.killed);
        assert!(
            await_victim(&f.cg, &f.proc_root, &ended.before, &fast()).is_none(),
            "nothing left the cgroup"
        );
        // The prediction is still reported, unconfirmed.
        assert_eq!(ended.victim.map(|v| v.pid), Some(200));
        assert_eq!(seen.first().map(String::as_str), Some("max"));
        assert_eq!(seen.last().map(String::as_str), Some("max"));
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(fs::read_to_string(f.cg.join("memory.max")).expect("read"), "max");
    }

    #[test]
    fn a_value_set_by_someone_else_meanwhile_is_kept() {
        let f = fake("838860800");
        let file = f.cg.join("memory.max");
        let mut guard = MaxGuard {
            file: file.clone(),
            original: "838860800".into(),
            lowered: 1000 * 4096,
            pending: f.pending.clone(),
            armed: true,
        };
        fs::write(&file, "999999488").expect("w");
        assert_eq!(
            guard.restore().expect("ok"),
            Restore::LeftAlone("999999488".into())
        );
        assert_eq!(fs::read_to_string(&file).expect("read"), "999999488");
    }

    #[test]
    fn a_panic_between_lower_and_restore_still_restores() {
        let f = fake("838860800");
        let file = f.cg.join("memory.max");
        let r = std::panic::catch_unwind(|| {
            let _guard = MaxGuard {
                file: file.clone(),
                original: "838860800".into(),
                lowered: 4096 * 10,
                pending: f.pending.clone(),
                armed: true,
            };
            fs::write(&file, (4096 * 10).to_string()).expect("w");
            panic!("something went wrong mid-action");
        });
        assert!(r.is_err());
        assert_eq!(fs::read_to_string(&file).expect("read"), "838860800");
    }

    #[test]
    fn a_crash_record_is_restored_at_the_next_start() {
        let f = fake("40960");
        let root = f.cg.parent().and_then(Path::parent).expect("root").to_path_buf();
        fs::create_dir_all(f.pending.parent().expect("dir")).expect("mkdir");
        fs::write(&f.pending, "/user.slice/user-1001.slice\t838860800\t40960\n").expect("w");
        let (cg, r) = recover_pending(&root, &f.pending).expect("recovered");
        assert_eq!(cg, "/user.slice/user-1001.slice");
        assert_eq!(r.expect("ok"), Restore::Restored);
        assert_eq!(
            fs::read_to_string(f.cg.join("memory.max")).expect("read"),
            "838860800"
        );
        assert!(!f.pending.exists());
        assert!(recover_pending(&root, &f.pending).is_none());
    }

    #[test]
    fn nothing_is_lowered_when_usage_is_already_at_max() {
        let f = fake(&(707 * M).to_string());
        let err = end_runaway(&f.cg, "/x", &f.proc_root, &f.pending, &fast(), |_| {
            panic!("nothing was killed")
        })
        .expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            fs::read_to_string(f.cg.join("memory.max")).expect("read").trim(),
            (707 * M).to_string()
        );
    }
}
