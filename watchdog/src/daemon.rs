//! The event loop: one thread, one poll(2) over inotify (memory.events of every capped cgroup
//! and the directories they appear in), a signalfd and /dev/kmsg. Idle, it sleeps until the
//! kernel reports something or the slow rescan is due; a cgroup is sampled once a second only
//! while it is being pushed over its memory.high.

use crate::act::{self, Restore};
use crate::cgroupfs::{self, Kind, Target};
use crate::decide::{Rules, Sample, Tracker, Verdict};
use crate::hook::{self, Hooks, Launch};
use crate::kmsg::{KernelKill, Kmsg};
use crate::logger::{CRITICAL, NOTICE};
use crate::report::{self, Counters, Kill, Paths, Reason};
use crate::sys::{self, Inotify, Signals};
use crate::terminals;
use contain_host::Outcome;
use contain_policy::Policy;
use nix::poll::{PollFd, PollFlags};
use nix::sys::inotify::{AddWatchFlags, WatchDescriptor};
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug)]
pub struct Config {
    pub paths: Paths,
    pub timing: act::Timing,
    /// Sampling interval of a cgroup that is over its memory.high.
    pub tick_ms: u64,
    /// The safety-net rescan of every capped cgroup.
    pub rescan_ms: u64,
    /// How long after its last memory.events change a cgroup keeps being sampled.
    pub hot_ms: u64,
    /// How long the kernel gets to print its report of an OOM kill we saw counted.
    pub report_delay_ms: u64,
    /// Log every sample and verdict (`CONTAIN_WATCHDOG_DEBUG=1`).
    pub debug: bool,
    /// How `[watchdog] on_kill` is started.
    pub hook_launch: Launch,
    /// Where a user's open terminals are found.
    pub terminals: terminals::Sources,
}

impl Config {
    pub fn from_env() -> Config {
        Config {
            paths: Paths::from_env(),
            timing: act::Timing::default(),
            tick_ms: 1000,
            rescan_ms: 30_000,
            hot_ms: 3000,
            report_delay_ms: 300,
            debug: std::env::var_os("CONTAIN_WATCHDOG_DEBUG").is_some_and(|v| !v.is_empty() && v != "0"),
            hook_launch: Launch::from_env(),
            terminals: terminals::Sources::under(&contain_host::Root::from_env()),
        }
    }
}

struct Watched {
    target: Target,
    tracker: Tracker,
    wd: Option<WatchDescriptor>,
    hot_until_ms: u64,
}

impl Watched {
    fn hot(&self, now: u64) -> bool {
        now < self.hot_until_ms || self.tracker.episode().is_some()
    }
}

/// OOM kills counted in a cgroup, waiting briefly for the kernel's report naming the victim.
struct SeenKills {
    cgroup: String,
    count: u64,
    due_ms: u64,
    sample: Sample,
}

pub struct Daemon {
    cfg: Config,
    policy: Policy,
    rules: Rules,
    inotify: Inotify,
    kmsg: Option<Kmsg>,
    watched: BTreeMap<String, Watched>,
    wd_cgroup: HashMap<WatchDescriptor, String>,
    wd_dir: HashMap<WatchDescriptor, PathBuf>,
    /// /etc/contain and /etc/contain/policy.d: an edited policy is applied without a reload.
    wd_policy: HashMap<WatchDescriptor, PathBuf>,
    reload_soon: bool,
    counters: Counters,
    start: Instant,
    next_rescan_ms: u64,
    rescan_soon: bool,
    seen: Vec<SeenKills>,
    hooks: Hooks,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Hold after a disabled watchdog saw a runaway: say so once in a while, not every second.
const DISABLED_HOLD_MS: u64 = 600_000;

impl Daemon {
    pub fn new(cfg: Config) -> io::Result<Daemon> {
        if let Some((cgroup, result)) =
            act::recover_pending(&cfg.paths.cgroup_root, &cfg.paths.pending_restore())
        {
            match result {
                Ok(Restore::Restored) => {
                    log::warn!("restored memory.max of {cgroup}, left lowered by an earlier run")
                }
                Ok(Restore::LeftAlone(v)) => {
                    log::info!(target: NOTICE, "memory.max of {cgroup} was reset meanwhile to {v}")
                }
                Err(e) => {
                    log::error!(target: CRITICAL, "cannot restore memory.max of {cgroup}, left lowered by an earlier run: {e}")
                }
            }
        }
        let kmsg = cfg.paths.kmsg.as_ref().and_then(|p| match Kmsg::open(p) {
            Ok(k) => Some(k),
            Err(e) => {
                log::warn!(
                    "cannot read kernel reports from {}: {e}; victims are found from /proc alone",
                    p.display()
                );
                None
            }
        });
        let counters = Counters::resume(&cfg.paths.counters(), unix_now());
        let policy = contain_policy::builtin_default();
        let rules = Rules::with_grace(policy.watchdog.grace.as_millis());
        let mut d = Daemon {
            cfg,
            policy,
            rules,
            inotify: Inotify::new()?,
            kmsg,
            watched: BTreeMap::new(),
            wd_cgroup: HashMap::new(),
            wd_dir: HashMap::new(),
            wd_policy: HashMap::new(),
            reload_soon: false,
            counters,
            start: Instant::now(),
            next_rescan_ms: 0,
            rescan_soon: false,
            seen: Vec::new(),
            hooks: Hooks::default(),
        };
        d.load_policy(true);
        Ok(d)
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Loads the policy; says what it does only at start or when it changed.
    fn load_policy(&mut self, first: bool) {
        self.watch_policy();
        let loaded = contain_host::load(&self.cfg.paths.policy);
        for e in &loaded.errors {
            log::error!("{e}");
        }
        if !first && loaded.policy == self.policy {
            return;
        }
        match loaded.outcome {
            Outcome::Applied => log::info!("policy from {}", loaded.policy.sources.join(", ")),
            Outcome::Default => {
                log::info!(target: NOTICE, "no policy file: using the built-in default policy")
            }
            Outcome::Fallback => log::error!("the policy is invalid: using the built-in default policy"),
        }
        self.policy = loaded.policy;
        for w in self.watched.values_mut() {
            w.tracker.release_hold();
        }
        self.rules = Rules::with_grace(self.policy.watchdog.grace.as_millis());
        if self.policy.watchdog.enabled {
            log::info!(
                "ending runaways throttled at memory.high for {}",
                self.policy.watchdog.grace
            );
        } else {
            log::info!(target: NOTICE, "[watchdog] enabled = false: watching only, runaways throttled at memory.high are left alone");
        }
    }

    fn watch_policy(&mut self) {
        let main = &self.cfg.paths.policy;
        let dirs = [
            main.parent().map(PathBuf::from),
            Some(main.with_file_name("policy.d")),
        ];
        for dir in dirs.into_iter().flatten() {
            if self.wd_policy.values().any(|d| *d == dir) || !dir.is_dir() {
                continue;
            }
            let mask = AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_ONLYDIR;
            if let Ok(wd) = self.inotify.add(&dir, mask) {
                self.wd_policy.insert(wd, dir);
            }
        }
    }

    /// Brings the watched set in line with the cgroups present and the policy, then samples all.
    fn rescan(&mut self) {
        let root = self.cfg.paths.cgroup_root.clone();
        let targets = cgroupfs::discover(&root, &self.policy, &sys::user_name);
        let keep: BTreeSet<&str> = targets.iter().map(|t| t.cgroup.as_str()).collect();
        let gone: Vec<String> = self
            .watched
            .keys()
            .filter(|k| !keep.contains(k.as_str()))
            .cloned()
            .collect();
        for cgroup in gone {
            self.forget(&cgroup);
        }
        let mut half_made = false;
        for target in targets {
            if let Some(w) = self.watched.get_mut(&target.cgroup) {
                w.target = target;
                continue;
            }
            let events = root
                .join(target.cgroup.trim_start_matches('/'))
                .join("memory.events");
            let wd = match self.inotify.add(&events, AddWatchFlags::IN_MODIFY) {
                Ok(wd) => {
                    self.wd_cgroup.insert(wd, target.cgroup.clone());
                    Some(wd)
                }
                // Seen between its mkdir and its files: looked at again in a second.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    half_made = true;
                    continue;
                }
                Err(e) => {
                    log::warn!("cannot watch {}: {e}", events.display());
                    None
                }
            };
            self.watched.insert(
                target.cgroup.clone(),
                Watched {
                    target,
                    tracker: Tracker::default(),
                    wd,
                    hot_until_ms: 0,
                },
            );
        }
        let cgroups: Vec<String> = self.watched.keys().cloned().collect();
        for cgroup in cgroups {
            self.sample(&cgroup);
        }

        let desired: BTreeSet<PathBuf> = cgroupfs::parent_dirs(&self.policy)
            .iter()
            .map(|d| cgroupfs::nearest_existing(&root, d))
            .collect();
        self.wd_dir.retain(|wd, dir| {
            let keep = desired.contains(dir);
            if !keep {
                self.inotify.remove(*wd);
            }
            keep
        });
        for dir in desired {
            if self.wd_dir.values().any(|d| *d == dir) {
                continue;
            }
            match self.inotify.add(
                &root.join(&dir),
                AddWatchFlags::IN_CREATE | AddWatchFlags::IN_DELETE | AddWatchFlags::IN_ONLYDIR,
            ) {
                Ok(wd) => {
                    self.wd_dir.insert(wd, dir);
                }
                Err(e) => log::warn!("cannot watch {}: {e}", root.join(&dir).display()),
            }
        }

        if self.counters.watching != self.watched.len() {
            self.counters.watching = self.watched.len();
            self.save_counters();
        }
        sys::sd_notify(&format!("STATUS=watching {} capped cgroups", self.watched.len()));
        self.next_rescan_ms = self.now_ms() + if half_made { 1000 } else { self.cfg.rescan_ms };
        self.rescan_soon = false;
    }

    fn forget(&mut self, cgroup: &str) {
        if let Some(w) = self.watched.remove(cgroup)
            && let Some(wd) = w.wd
        {
            self.inotify.remove(wd);
            self.wd_cgroup.remove(&wd);
        }
    }

    fn dir_of(&self, cgroup: &str) -> PathBuf {
        self.cfg.paths.cgroup_root.join(cgroup.trim_start_matches('/'))
    }

    /// Reads one cgroup and acts on what the decision says.
    fn sample(&mut self, cgroup: &str) {
        let now = self.now_ms();
        let dir = self.dir_of(cgroup);
        let rules = self.rules;
        let Some(w) = self.watched.get_mut(cgroup) else {
            return;
        };
        let sample = match cgroupfs::read_sample(&dir, now) {
            Ok(s) => s,
            Err(e) => {
                if e.kind() == io::ErrorKind::NotFound {
                    self.rescan_soon = true;
                } else {
                    log::warn!("cannot read {}: {e}", dir.display());
                }
                return;
            }
        };
        let prev = w.tracker.last().cloned();
        let obs = w.tracker.observe(sample.clone(), &rules);
        if self.cfg.debug
            && let Some(prev) = prev
        {
            log::debug!("{}", debug_line(cgroup, &prev, &sample, &obs.verdict));
        }
        if obs.new_oom_kills > 0 {
            self.seen.push(SeenKills {
                cgroup: cgroup.to_string(),
                count: obs.new_oom_kills,
                due_ms: now + self.cfg.report_delay_ms,
                sample: sample.clone(),
            });
        }
        match obs.verdict {
            Verdict::Act { since_ms, .. } if self.policy.watchdog.enabled => {
                self.act(cgroup, &sample, now.saturating_sub(since_ms));
            }
            Verdict::Act { since_ms, .. } => {
                log::info!(target: NOTICE, "{cgroup} has been throttled at memory.high for {}s; [watchdog] enabled = false, so it is left to hang",
                        now.saturating_sub(since_ms) / 1000);
                w.tracker.hold(now, DISABLED_HOLD_MS);
            }
            Verdict::NoStallEvidence => {
                log::warn!(
                    "{cgroup} is at memory.high with reclaim events, but {}/memory.pressure gives no stall figure (no PSI? unreadable?): without evidence of a stall it is never acted on",
                    dir.display()
                );
            }
            Verdict::NoRelief { since_ms, peak } => {
                log::warn!(
                    "{cgroup} is still stalled at memory.high {}s after the last kill, which brought no relief (usage {peak} never left the ceiling: memory held in tmpfs or shared memory?); no more kills there until its usage falls below memory.high",
                    now.saturating_sub(since_ms) / 1000
                );
            }
            Verdict::Relieved { lasted_ms } if lasted_ms >= 2000 => {
                log::info!("{cgroup} recovered after {}s at memory.high", lasted_ms / 1000);
            }
            _ => {}
        }
    }

    fn act(&mut self, cgroup: &str, before: &Sample, throttled_ms: u64) {
        let dir = self.dir_of(cgroup);
        let Some(target) = self.watched.get(cgroup).map(|w| w.target.clone()) else {
            return;
        };
        let uid = match &target.kind {
            Kind::User { uid, .. } => Some(*uid),
            _ => None,
        };
        let kill_of = |pid: Option<u32>, comm: Option<String>, usage: u64, original_max: &str| Kill {
            time: unix_now(),
            uid,
            user: user_of(&target.kind),
            cgroup: cgroup.to_string(),
            pid,
            comm,
            usage,
            high: before.high,
            max: cgroupfs::parse_limit(original_max).flatten(),
            reason: Reason::Throttled,
            throttled_secs: Some(throttled_ms.div_ceil(1000)),
            no_swap: no_swap(&dir),
        };
        let (proc_root, pending, timing) = (
            self.cfg.paths.proc_root.clone(),
            self.cfg.paths.pending_restore(),
            self.cfg.timing,
        );
        let mut reported = false;
        let result = act::end_runaway(&dir, cgroup, &proc_root, &pending, &timing, |killed| {
            // The kernel's report is in the log before its kill counter rises: the user hears
            // of it at once. Only without it is the victim looked for in /proc, below.
            let pids: Vec<u32> = killed.before.iter().map(|p| p.pid).collect();
            if let Some(k) = self.kernel_report(cgroup, &pids, uid) {
                self.report(
                    &target,
                    &kill_of(Some(k.pid), Some(k.comm), killed.usage, killed.original_max),
                );
                reported = true;
            }
        });
        let now = self.now_ms();
        let after = cgroupfs::read_sample(&dir, now).ok();
        let grace = self.rules.grace_ms;
        if let Some(w) = self.watched.get_mut(cgroup) {
            w.tracker.acted(now, after, grace);
        }
        let ended = match result {
            Ok(e) => e,
            Err(e) => {
                log::warn!("cannot end the runaway in {cgroup}: {e}");
                return;
            }
        };
        match &ended.restore {
            Ok(Restore::Restored) => {}
            Ok(Restore::LeftAlone(v)) => {
                log::info!(target: NOTICE, "memory.max of {cgroup} was set to {v} meanwhile; kept")
            }
            Err(e) => {
                log::error!(target: CRITICAL, "cannot restore memory.max of {cgroup} to {}: {e}; it stays at {} until the next start or daemon-reload",
                    ended.original_max, ended.lowered_to)
            }
        }
        if !ended.killed {
            if let Some(w) = self.watched.get_mut(cgroup) {
                w.tracker.forget_kill();
            }
            log::warn!(
                "lowered memory.max of {cgroup} to its usage {} but the kernel killed nothing within {}s (every process oom_score_adj -1000?); restored {}",
                ended.lowered_to,
                self.cfg.timing.kill_wait.as_secs(),
                ended.original_max
            );
            return;
        }
        if reported {
            return;
        }
        let left = act::await_victim(&dir, &proc_root, &ended.before, &timing);
        if left.is_none() {
            log::info!(target: NOTICE, "{cgroup}: the OOM victim could not be confirmed; reporting the largest process");
        }
        let (pid, comm) = match left.as_ref().or(ended.victim.as_ref()) {
            Some(v) => (Some(v.pid), Some(v.comm.clone())),
            None => (None, None),
        };
        self.report(&target, &kill_of(pid, comm, ended.usage, &ended.original_max));
    }

    fn kernel_report(&mut self, cgroup: &str, pids: &[u32], uid: Option<u32>) -> Option<KernelKill> {
        let k = self.kmsg.as_mut()?;
        k.drain();
        k.claim(cgroup, pids, uid)
    }

    /// Reports the OOM kills the kernel made on its own, once its report had time to appear.
    fn report_seen(&mut self) {
        let now = self.now_ms();
        let (due, later): (Vec<SeenKills>, Vec<SeenKills>) = std::mem::take(&mut self.seen)
            .into_iter()
            .partition(|s| s.due_ms <= now);
        self.seen = later;
        for s in due {
            let Some(target) = self.watched.get(&s.cgroup).map(|w| w.target.clone()) else {
                continue;
            };
            let uid = match &target.kind {
                Kind::User { uid, .. } => Some(*uid),
                _ => None,
            };
            for _ in 0..s.count.min(16) {
                let kernel = self.kernel_report(&s.cgroup, &[], uid);
                let reason = match &kernel {
                    None => Reason::Oom,
                    Some(k) if k.constraint.as_deref() == Some("CONSTRAINT_NONE") => Reason::SystemOom,
                    Some(k) => match k.oom_memcg.as_deref() {
                        Some(m) if m == s.cgroup || m.starts_with(&format!("{}/", s.cgroup)) => {
                            Reason::MemoryMax
                        }
                        Some(_) => Reason::ParentLimit,
                        None => Reason::Oom,
                    },
                };
                let kill = Kill {
                    time: unix_now(),
                    uid,
                    user: user_of(&target.kind),
                    cgroup: s.cgroup.clone(),
                    pid: kernel.as_ref().map(|k| k.pid),
                    comm: kernel.map(|k| k.comm),
                    usage: s.sample.current,
                    high: s.sample.high,
                    max: s.sample.max,
                    reason,
                    throttled_secs: None,
                    no_swap: no_swap(&self.dir_of(&s.cgroup)),
                };
                self.report(&target, &kill);
            }
        }
    }

    fn report(&mut self, target: &Target, kill: &Kill) {
        // The user's terminals first: their line has a deadline (a second after the kill),
        // the journal entry, notice, counters and hook do not.
        let user = match target.kind {
            Kind::User { uid, .. } => {
                let notice = kill.notice();
                // Logged as each batch is written: the journal's time of the first line is
                // when the user's login was told.
                let told = terminals::tell(&self.cfg.terminals, uid, &notice, |written| {
                    log::info!("told uid {uid} on {}", written.join(", "));
                });
                for (tty, e) in &told.failed {
                    log::info!(target: NOTICE, "cannot tell uid {uid} on {tty}: {e}");
                }
                Some((uid, notice))
            }
            _ => None,
        };
        report::journal(&self.cfg.paths.journal_socket, &kill.journal_fields());
        if let Some((uid, notice)) = user {
            // Again at their next login.
            if let Err(e) = report::add_notice(&self.cfg.paths.notice_dir, uid, &notice) {
                log::warn!("cannot leave a notice for uid {uid}: {e}");
            }
        }
        self.counters.record(kill);
        self.save_counters();
        if let Some(program) = &self.policy.watchdog.on_kill
            && let Err(e) = self.hooks.start(self.cfg.hook_launch, program, kill)
        {
            log::warn!("cannot run on_kill {program}: {e}");
        }
    }

    fn reap_hooks(&mut self) {
        for ended in self.hooks.reap() {
            match ended {
                hook::Ended::Exited { code: Some(0), .. } => {}
                hook::Ended::Exited { what, code } => log::warn!(
                    "on_kill {what} failed ({})",
                    code.map_or("killed by a signal".into(), |c| format!("exit status {c}"))
                ),
                hook::Ended::TimedOut { what } => {
                    log::warn!("on_kill {what} did not finish in time: killed")
                }
            }
        }
    }

    fn save_counters(&self) {
        if let Err(e) = self.counters.save(&self.cfg.paths.counters()) {
            log::warn!("cannot write {}: {e}", self.cfg.paths.counters().display());
        }
    }

    /// How long poll may sleep: until the next hot sample, pending report or rescan.
    fn timeout_ms(&self) -> u64 {
        let now = self.now_ms();
        let mut until = self.next_rescan_ms;
        for w in self.watched.values() {
            if w.hot(now) {
                let next = w.tracker.last().map_or(now, |s| s.at_ms + self.cfg.tick_ms);
                until = until.min(next);
            }
        }
        for s in &self.seen {
            until = until.min(s.due_ms);
        }
        if let Some(d) = self.hooks.next_check() {
            until = until.min(now + d.as_millis() as u64);
        }
        until.saturating_sub(now)
    }

    fn handle_inotify(&mut self) {
        let now = self.now_ms();
        let hot_ms = self.cfg.hot_ms;
        let mut wake = Vec::new();
        for ev in self.inotify.read() {
            if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                // The watched file or directory is gone (a logout, a stopped service).
                if let Some(cgroup) = self.wd_cgroup.remove(&ev.wd) {
                    if let Some(w) = self.watched.get_mut(&cgroup) {
                        w.wd = None;
                    }
                    self.forget(&cgroup);
                }
                if self.wd_dir.remove(&ev.wd).is_some() {
                    self.rescan_soon = true;
                }
                if self.wd_policy.remove(&ev.wd).is_some() {
                    self.reload_soon = true;
                }
                continue;
            }
            if self.wd_policy.contains_key(&ev.wd) {
                self.reload_soon = true;
                continue;
            }
            if self.wd_dir.contains_key(&ev.wd) {
                self.rescan_soon = true;
                continue;
            }
            if let Some(cgroup) = self.wd_cgroup.get(&ev.wd)
                && let Some(w) = self.watched.get_mut(cgroup)
            {
                if !w.hot(now) {
                    wake.push(cgroup.clone());
                }
                w.hot_until_ms = now + hot_ms;
            }
        }
        // A cgroup that just became active is sampled at once: the baseline for its deltas.
        for cgroup in wake {
            self.sample(&cgroup);
        }
    }

    fn sample_due(&mut self) {
        let now = self.now_ms();
        let due: Vec<String> = self
            .watched
            .iter()
            .filter(|(_, w)| w.hot(now) && w.tracker.last().is_none_or(|s| now >= s.at_ms + self.cfg.tick_ms))
            .map(|(k, _)| k.clone())
            .collect();
        for cgroup in due {
            self.sample(&cgroup);
        }
    }

    /// Runs until SIGTERM or SIGINT.
    pub fn run(&mut self, signals: &Signals) -> io::Result<()> {
        self.rescan();
        self.save_counters();
        log::info!("watching {} capped cgroups", self.watched.len());
        sys::sd_notify("READY=1");
        loop {
            let (signalled, inotified, kmsg_ready) = {
                let mut fds = vec![
                    PollFd::new(signals.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN),
                ];
                if let Some(k) = &self.kmsg {
                    fds.push(PollFd::new(k.as_fd(), PollFlags::POLLIN));
                }
                sys::poll(&mut fds, self.timeout_ms())?;
                let ready = |i: usize| {
                    fds.get(i)
                        .and_then(PollFd::revents)
                        .is_some_and(|r| !r.is_empty())
                };
                (ready(0), ready(1), ready(2))
            };
            if signalled {
                for sig in signals.read() {
                    if sig == Signal::SIGHUP {
                        self.reload_soon = true;
                    } else {
                        log::info!("stopping");
                        sys::sd_notify("STOPPING=1");
                        return Ok(());
                    }
                }
            }
            if kmsg_ready && let Some(k) = self.kmsg.as_mut() {
                k.drain();
            }
            if inotified {
                self.handle_inotify();
            }
            if self.reload_soon {
                self.reload_soon = false;
                sys::sd_notify("RELOADING=1");
                self.load_policy(false);
                // Trackers keep their state: a reload does not restart anyone's grace.
                self.rescan();
                sys::sd_notify("READY=1");
            }
            if self.rescan_soon || self.now_ms() >= self.next_rescan_ms {
                self.rescan();
            }
            self.sample_due();
            self.report_seen();
            self.reap_hooks();
        }
    }
}

/// One sample, as the decision saw it: what to look at when tuning the thresholds.
fn debug_line(cgroup: &str, prev: &Sample, now: &Sample, verdict: &Verdict) -> String {
    let ms = now.at_ms.saturating_sub(prev.at_ms).max(1);
    let stall = match (prev.stall_us, now.stall_us) {
        (Some(a), Some(b)) => format!("{}", b.saturating_sub(a) / ms),
        _ => "?".into(),
    };
    format!(
        "{cgroup}: {ms} ms, current {} ({} of high), high events +{}, stall {stall}‰, oom_kill +{}: {verdict:?}",
        now.current >> 20,
        now.high.map_or("-".into(), |h| format!(
            "{}‰",
            (now.current as u128 * 1000 / h.max(1) as u128)
        )),
        now.high_events.saturating_sub(prev.high_events),
        now.oom_kills.saturating_sub(prev.oom_kills),
    )
}

fn user_of(kind: &Kind) -> Option<String> {
    match kind {
        Kind::User { name, .. } => Some(name.clone()),
        _ => None,
    }
}

fn no_swap(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join("memory.swap.max")).is_ok_and(|t| t.trim() == "0")
}
