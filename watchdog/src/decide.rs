//! The decision, pure: given successive samples of one cgroup, has it sat throttled at its
//! memory.high for longer than the grace period without relief? No I/O, no clock: every
//! sample carries its own time, so tests script time as they script the files.

/// One reading of a cgroup's memory files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Monotonic milliseconds.
    pub at_ms: u64,
    /// memory.current, bytes.
    pub current: u64,
    /// memory.high, `None` for `max`.
    pub high: Option<u64>,
    /// memory.max, `None` for `max`.
    pub max: Option<u64>,
    /// memory.events `high`: times the cgroup was pushed into reclaim for exceeding memory.high.
    pub high_events: u64,
    /// memory.events `oom_kill`.
    pub oom_kills: u64,
    /// memory.pressure `some total=` in microseconds; `None` where the kernel has no PSI.
    pub stall_us: Option<u64>,
}

/// Thresholds of the decision. The defaults are what the VM measurements support.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// How long a cgroup may stay throttled before its runaway is ended.
    pub grace_ms: u64,
    /// "At the ceiling": usage at least this share of memory.high (per mille).
    pub near_high_permille: u64,
    /// "Stalled": tasks waited on memory at least this share of the interval (per mille).
    /// A throttled runaway with no swap stalls 30-100% per second in the VM (TCG, loaded host);
    /// reclaiming clean page cache barely stalls, so a big file copy sitting at memory.high is
    /// never mistaken for a runaway. 15% is the PSI trigger validated in the VM.
    pub min_stall_permille: u64,
    /// "Relief": usage fell this share of memory.high (per mille) below the episode's peak.
    pub relief_permille: u64,
    /// Reclaim events count as recent this long. The kernel puts a task far over memory.high
    /// to sleep for up to 2 s between attempts (MEMCG_MAX_HIGH_DELAY_JIFFIES): a second with
    /// no new event, still stalled, is the deepest throttling, not relief.
    pub event_window_ms: u64,
}

impl Rules {
    pub fn with_grace(grace_ms: u64) -> Rules {
        Rules {
            grace_ms,
            near_high_permille: 950,
            min_stall_permille: 150,
            relief_permille: 50,
            event_window_ms: 3_000,
        }
    }
}

/// A stretch of continuous throttling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Episode {
    pub since_ms: u64,
    /// Highest usage seen during the episode.
    pub peak: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do: not throttled, or no memory.high below memory.max.
    Calm,
    /// Throttled, but for less than the grace period.
    Throttled { since_ms: u64 },
    /// An episode ended: usage fell, or throttling stopped. The cgroup recovered by itself.
    Relieved { lasted_ms: u64 },
    /// Throttled for the grace period without relief: end the runaway.
    Act { since_ms: u64, peak: u64 },
    /// At the ceiling with reclaim events, but memory.pressure gives no stall figure: no
    /// evidence, so never an action. Said once per cgroup.
    NoStallEvidence,
    /// Would act again, but the last kill brought no relief (usage never left the ceiling:
    /// memory held by tmpfs/shm, say). No more kills here until usage falls below the ceiling.
    /// Said once, when the watchdog stops.
    NoRelief { since_ms: u64, peak: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    pub verdict: Verdict,
    /// OOM kills the kernel made in this cgroup since the previous sample.
    pub new_oom_kills: u64,
}

/// The decision state of one cgroup.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    prev: Option<Sample>,
    episode: Option<Episode>,
    /// No new action before this time: the last one gets a grace period to show its effect.
    hold_until_ms: u64,
    /// When memory.events `high` last rose.
    last_event_ms: Option<u64>,
    /// The lowest usage seen since the last kill, while no sample has shown recovery yet.
    low_since_kill: Option<u64>,
    /// A kill brought no relief: no action until usage falls below the ceiling.
    stopped: bool,
    /// [`Verdict::NoStallEvidence`] was said.
    told_no_evidence: bool,
}

impl Tracker {
    pub fn episode(&self) -> Option<Episode> {
        self.episode
    }

    pub fn last(&self) -> Option<&Sample> {
        self.prev.as_ref()
    }

    /// Takes the next sample and says what it means.
    pub fn observe(&mut self, sample: Sample, rules: &Rules) -> Observation {
        let Some(prev) = self.prev.replace(sample.clone()) else {
            return Observation {
                verdict: Verdict::Calm,
                new_oom_kills: 0,
            };
        };
        // A counter that went backwards means the cgroup was removed and created again.
        let new_oom_kills = sample.oom_kills.saturating_sub(prev.oom_kills);
        if !at_ceiling(&sample, rules) {
            // Recovered: whatever a kill did or did not bring, the next runaway is a new one.
            self.low_since_kill = None;
            self.stopped = false;
        } else if let Some(low) = &mut self.low_since_kill {
            *low = (*low).min(sample.current);
        }
        if sample.high_events > prev.high_events {
            self.last_event_ms = Some(sample.at_ms);
        }
        // An episode starts on fresh reclaim events; once on, recent ones keep it going.
        let events = match self.episode {
            None => sample.high_events > prev.high_events,
            Some(_) => self
                .last_event_ms
                .is_some_and(|t| sample.at_ms.saturating_sub(t) <= rules.event_window_ms),
        };
        if events && at_ceiling(&sample, rules) && stall_share(&prev, &sample).is_none() {
            self.episode = None;
            let verdict = if self.told_no_evidence {
                Verdict::Calm
            } else {
                self.told_no_evidence = true;
                Verdict::NoStallEvidence
            };
            return Observation {
                verdict,
                new_oom_kills,
            };
        }
        let verdict = match (events && throttled(&prev, &sample, rules), self.episode) {
            (false, None) => Verdict::Calm,
            (false, Some(ep)) => {
                self.episode = None;
                Verdict::Relieved {
                    lasted_ms: sample.at_ms.saturating_sub(ep.since_ms),
                }
            }
            (true, None) => {
                // Throttling began somewhere in the interval; counting from its end never
                // acts before the grace period is over.
                self.episode = Some(Episode {
                    since_ms: sample.at_ms,
                    peak: sample.current,
                });
                self.judge(&sample, rules)
            }
            (true, Some(mut ep)) => {
                let relief = sample.high.unwrap_or(0) / 1000 * rules.relief_permille;
                if sample.current + relief < ep.peak {
                    self.episode = None;
                    return Observation {
                        verdict: Verdict::Relieved {
                            lasted_ms: sample.at_ms.saturating_sub(ep.since_ms),
                        },
                        new_oom_kills,
                    };
                }
                ep.peak = ep.peak.max(sample.current);
                self.episode = Some(ep);
                self.judge(&sample, rules)
            }
        };
        Observation {
            verdict,
            new_oom_kills,
        }
    }

    fn judge(&mut self, sample: &Sample, rules: &Rules) -> Verdict {
        let Some(ep) = self.episode else {
            return Verdict::Calm;
        };
        if sample.at_ms.saturating_sub(ep.since_ms) >= rules.grace_ms && sample.at_ms >= self.hold_until_ms {
            if self.stopped {
                return Verdict::Throttled {
                    since_ms: ep.since_ms,
                };
            }
            let high = sample.high.unwrap_or(0) as u128;
            let never_left_ceiling = self
                .low_since_kill
                .is_some_and(|low| (low as u128) * 1000 >= high * (rules.near_high_permille as u128));
            if never_left_ceiling {
                // Usage never left the ceiling since the last kill: another kill would not
                // free what holds it either.
                self.stopped = true;
                return Verdict::NoRelief {
                    since_ms: ep.since_ms,
                    peak: ep.peak,
                };
            }
            Verdict::Act {
                since_ms: ep.since_ms,
                peak: ep.peak,
            }
        } else {
            Verdict::Throttled {
                since_ms: ep.since_ms,
            }
        }
    }

    /// Lifts a hold, e.g. when the policy switched the watchdog on again.
    pub fn release_hold(&mut self) {
        self.hold_until_ms = 0;
        self.forget_kill();
    }

    /// Records an action: the episode is over, and no new action comes for `hold_ms` (at least
    /// a grace period, for the last one to show its effect). `after` is a fresh sample, so the
    /// kill itself is not counted again as one seen later.
    pub fn acted(&mut self, now_ms: u64, after: Option<Sample>, hold_ms: u64) {
        self.episode = None;
        self.hold_until_ms = now_ms + hold_ms;
        // Relief is judged from what follows; a kill that freed memory shows below the ceiling.
        self.low_since_kill = Some(after.as_ref().map_or(u64::MAX, |s| s.current));
        if let Some(s) = after {
            self.prev = Some(s);
        }
    }

    /// Holds off without having acted (e.g. the policy has the watchdog off): no new verdict to
    /// act for `hold_ms`.
    pub fn hold(&mut self, now_ms: u64, hold_ms: u64) {
        self.episode = None;
        self.hold_until_ms = now_ms + hold_ms;
    }

    /// Forgets the last action: it killed nothing, or the watchdog was switched off and on.
    pub fn forget_kill(&mut self) {
        self.low_since_kill = None;
        self.stopped = false;
    }
}

/// Was the cgroup held at its memory.high and stalled during the interval between two samples?
/// (Whether reclaim events are recent enough is the caller's part.)
fn throttled(prev: &Sample, now: &Sample, rules: &Rules) -> bool {
    if !at_ceiling(now, rules) {
        return false;
    }
    // No stall figure (no PSI, memory.pressure unreadable) is no evidence: never throttled.
    stall_share(prev, now).is_some_and(|permille| permille >= rules.min_stall_permille)
}

/// Usage at memory.high, where memory.high is below memory.max (at or above it never throttles:
/// the kernel OOM-kills at max itself).
fn at_ceiling(now: &Sample, rules: &Rules) -> bool {
    let Some(high) = now.high else {
        return false;
    };
    if now.max.is_some_and(|max| high >= max) {
        return false;
    }
    (now.current as u128) * 1000 >= (high as u128) * (rules.near_high_permille as u128)
}

/// The share of the interval tasks stalled on memory (per mille), if both samples have one.
fn stall_share(prev: &Sample, now: &Sample) -> Option<u64> {
    let (a, b) = (prev.stall_us?, now.stall_us?);
    let interval_us = now.at_ms.saturating_sub(prev.at_ms).max(1) * 1000;
    Some(b.saturating_sub(a).saturating_mul(1000) / interval_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    /// A scripted cgroup: 600M high, 800M max, counters that move as the test says.
    struct Script {
        s: Sample,
    }

    impl Script {
        fn new() -> Script {
            Script {
                s: Sample {
                    at_ms: 0,
                    current: 100 * M,
                    high: Some(600 * M),
                    max: Some(800 * M),
                    high_events: 0,
                    oom_kills: 0,
                    stall_us: Some(0),
                },
            }
        }
        /// One second later, with `usage`, `high_events` more reclaim events, `stall` per mille stalled.
        fn step(&mut self, usage: u64, high_events: u64, stall_permille: u64) -> Sample {
            self.s.at_ms += 1000;
            self.s.current = usage;
            self.s.high_events += high_events;
            self.s.stall_us = self.s.stall_us.map(|t| t + stall_permille * 1000);
            self.s.clone()
        }
    }

    fn run(tracker: &mut Tracker, samples: impl IntoIterator<Item = Sample>) -> Vec<Verdict> {
        let rules = Rules::with_grace(10_000);
        samples
            .into_iter()
            .map(|s| tracker.observe(s, &rules).verdict)
            .collect()
    }

    #[test]
    fn a_runaway_stuck_at_high_is_ended_after_the_grace_period() {
        let mut sc = Script::new();
        let mut t = Tracker::default();
        let mut samples = vec![sc.step(300 * M, 0, 0)];
        // Throttled from second 1 on, creeping up slowly (as measured: ~0.6 MiB/s).
        for i in 0..12 {
            samples.push(sc.step(700 * M + i * M / 2, 10, 920));
        }
        let v = run(&mut t, samples);
        assert_eq!(v[0], Verdict::Calm);
        assert_eq!(v[1], Verdict::Throttled { since_ms: 2000 });
        // Grace counts from the first sample that saw throttling: act at 2 s + 10 s, never earlier.
        let first_act = v.iter().position(|v| matches!(v, Verdict::Act { .. }));
        assert_eq!(first_act, Some(11), "{v:?}");
        assert!(matches!(v[11], Verdict::Act { since_ms: 2000, .. }));
        assert!(
            v[2..11]
                .iter()
                .all(|v| *v == Verdict::Throttled { since_ms: 2000 })
        );
    }

    #[test]
    fn a_spike_that_recedes_is_left_alone() {
        let mut sc = Script::new();
        let mut t = Tracker::default();
        let mut samples = vec![sc.step(300 * M, 0, 0)];
        for _ in 0..6 {
            samples.push(sc.step(650 * M, 10, 900));
        }
        // The job freed memory: back well under the ceiling, no more reclaim.
        for _ in 0..20 {
            samples.push(sc.step(400 * M, 0, 0));
        }
        let v = run(&mut t, samples);
        assert!(!v.iter().any(|v| matches!(v, Verdict::Act { .. })), "{v:?}");
        assert_eq!(v[7], Verdict::Relieved { lasted_ms: 6000 });
    }

    #[test]
    fn falling_usage_while_still_reclaiming_is_relief() {
        let mut sc = Script::new();
        let mut t = Tracker::default();
        let mut samples = vec![sc.step(300 * M, 0, 0)];
        for _ in 0..5 {
            samples.push(sc.step(720 * M, 10, 900));
        }
        // Still at the ceiling and reclaiming, but 60M lower than the peak: making progress.
        samples.push(sc.step(660 * M, 10, 900));
        for _ in 0..8 {
            samples.push(sc.step(660 * M, 10, 900));
        }
        let v = run(&mut t, samples);
        assert_eq!(v[6], Verdict::Relieved { lasted_ms: 5000 });
        // A new episode starts; it has not lasted the grace period yet.
        assert!(!v.iter().any(|v| matches!(v, Verdict::Act { .. })), "{v:?}");
    }

    #[test]
    fn page_cache_churn_at_high_without_stall_is_not_a_runaway() {
        let mut sc = Script::new();
        let mut t = Tracker::default();
        let mut samples = vec![sc.step(300 * M, 0, 0)];
        // A big file copy: usage pinned at high, reclaim events rising, but reclaim is cheap.
        for _ in 0..30 {
            samples.push(sc.step(600 * M, 50, 20));
        }
        let v = run(&mut t, samples);
        assert!(v.iter().all(|v| *v == Verdict::Calm), "{v:?}");
    }

    #[test]
    fn idle_at_high_without_reclaim_is_not_a_runaway() {
        let mut sc = Script::new();
        let mut t = Tracker::default();
        let samples: Vec<_> = (0..30).map(|_| sc.step(650 * M, 0, 0)).collect();
        assert!(run(&mut t, samples).iter().all(|v| *v == Verdict::Calm));
    }

    #[test]
    fn below_the_ceiling_is_not_throttled_even_with_events() {
        let mut sc = Script::new();
        let mut t = Tracker::default();
        // 500M of 600M: events from a child's own limit, say, but this cgroup is not at its high.
        let samples: Vec<_> = (0..30).map(|_| sc.step(500 * M, 10, 900)).collect();
        assert!(run(&mut t, samples).iter().all(|v| *v == Verdict::Calm));
    }

    #[test]
    fn no_high_below_max_means_no_action() {
        for (high, max) in [
            (None, Some(800 * M)),
            (Some(800 * M), Some(800 * M)),
            (None, None),
        ] {
            let mut sc = Script::new();
            sc.s.high = high;
            sc.s.max = max;
            let mut t = Tracker::default();
            let samples: Vec<_> = (0..30).map(|_| sc.step(800 * M, 10, 900)).collect();
            assert!(run(&mut t, samples).iter().all(|v| *v == Verdict::Calm));
        }
    }

    #[test]
    fn seconds_without_events_inside_the_kernels_throttle_sleep_are_not_relief() {
        let mut sc = Script::new();
        let mut t = Tracker::default();
        let mut samples = vec![sc.step(300 * M, 0, 0)];
        // Far over high, the task sleeps up to 2 s per attempt: events every other second.
        for i in 0..14 {
            samples.push(sc.step(660 * M, if i % 2 == 0 { 3 } else { 0 }, 1000));
        }
        let v = run(&mut t, samples);
        assert!(!v.iter().any(|v| matches!(v, Verdict::Relieved { .. })), "{v:?}");
        assert_eq!(
            v.iter().position(|v| matches!(v, Verdict::Act { .. })),
            Some(11),
            "{v:?}"
        );
    }

    #[test]
    fn a_gap_in_throttling_restarts_the_grace_clock() {
        let mut sc = Script::new();
        let mut t = Tracker::default();
        let mut samples = vec![sc.step(300 * M, 0, 0)];
        for _ in 0..8 {
            samples.push(sc.step(700 * M, 10, 900));
        }
        samples.push(sc.step(700 * M, 0, 0));
        for _ in 0..8 {
            samples.push(sc.step(700 * M, 10, 900));
        }
        let v = run(&mut t, samples);
        assert!(matches!(v[9], Verdict::Relieved { .. }));
        assert!(!v.iter().any(|v| matches!(v, Verdict::Act { .. })), "{v:?}");
    }

    #[test]
    fn a_long_interval_does_not_start_the_clock_early() {
        let mut sc = Script::new();
        let rules = Rules::with_grace(10_000);
        let mut t = Tracker::default();
        t.observe(sc.s.clone(), &rules);
        // 30 s later (the periodic rescan), throttled during the whole interval.
        sc.s.at_ms = 30_000;
        sc.s.current = 700 * M;
        sc.s.high_events = 300;
        sc.s.stall_us = Some(28_000_000);
        let v = t.observe(sc.s.clone(), &rules).verdict;
        assert_eq!(v, Verdict::Throttled { since_ms: 30_000 });
    }

    #[test]
    fn after_an_action_the_next_one_waits_a_full_grace_period() {
        let mut sc = Script::new();
        let rules = Rules::with_grace(10_000);
        let mut t = Tracker::default();
        t.observe(sc.step(300 * M, 0, 0), &rules);
        let mut acted_at = None;
        for _ in 0..12 {
            let s = sc.step(700 * M, 10, 900);
            if let Verdict::Act { .. } = t.observe(s.clone(), &rules).verdict {
                acted_at = Some(s.at_ms);
                // Say the kill killed nothing: the cgroup stays throttled.
                let after = sc.step(700 * M, 10, 900);
                t.acted(after.at_ms, Some(after), rules.grace_ms);
                t.forget_kill();
                break;
            }
        }
        let acted_at = acted_at.expect("acted");
        let mut next = None;
        for _ in 0..15 {
            let s = sc.step(700 * M, 10, 900);
            if let Verdict::Act { .. } = t.observe(s.clone(), &rules).verdict {
                next = Some(s.at_ms);
                break;
            }
        }
        let next = next.expect("acted again");
        assert!(
            next - acted_at >= 10_000,
            "acted again after {} ms",
            next - acted_at
        );
    }

    #[test]
    fn oom_kills_are_counted_once_and_a_reset_counter_is_not_negative() {
        let mut sc = Script::new();
        let rules = Rules::with_grace(10_000);
        let mut t = Tracker::default();
        t.observe(sc.step(300 * M, 0, 0), &rules);
        sc.s.oom_kills = 2;
        assert_eq!(t.observe(sc.step(300 * M, 0, 0), &rules).new_oom_kills, 2);
        assert_eq!(t.observe(sc.step(300 * M, 0, 0), &rules).new_oom_kills, 0);
        sc.s.oom_kills = 0;
        assert_eq!(t.observe(sc.step(300 * M, 0, 0), &rules).new_oom_kills, 0);
    }

    #[test]
    fn without_a_stall_figure_there_is_no_evidence_and_no_action() {
        let mut sc = Script::new();
        // No PSI, or memory.pressure unreadable: the reader gives no figure.
        sc.s.stall_us = None;
        let mut t = Tracker::default();
        let mut samples = vec![sc.step(300 * M, 0, 0)];
        for _ in 0..30 {
            samples.push(sc.step(700 * M, 10, 0));
        }
        let v = run(&mut t, samples);
        assert!(!v.iter().any(|v| matches!(v, Verdict::Act { .. })), "{v:?}");
        let told = v.iter().filter(|v| **v == Verdict::NoStallEvidence).count();
        assert_eq!(told, 1, "said once: {v:?}");
    }

    #[test]
    fn a_stall_figure_that_goes_missing_stops_the_clock() {
        let mut sc = Script::new();
        let mut t = Tracker::default();
        let mut samples = vec![sc.step(300 * M, 0, 0)];
        for _ in 0..5 {
            samples.push(sc.step(700 * M, 10, 900));
        }
        sc.s.stall_us = None;
        for _ in 0..20 {
            samples.push(sc.step(700 * M, 10, 900));
        }
        let v = run(&mut t, samples);
        assert!(!v.iter().any(|v| matches!(v, Verdict::Act { .. })), "{v:?}");
    }

    /// Throttled at 700M and stalled until the tracker acts; `after` is the usage the kill left.
    fn act_once(sc: &mut Script, t: &mut Tracker, rules: &Rules, after: u64) {
        t.observe(sc.step(300 * M, 0, 0), rules);
        for _ in 0..15 {
            let s = sc.step(700 * M, 10, 900);
            if let Verdict::Act { .. } = t.observe(s.clone(), rules).verdict {
                let after = sc.step(after, 10, 900);
                t.acted(after.at_ms, Some(after), rules.grace_ms);
                return;
            }
        }
        panic!("never acted");
    }

    #[test]
    fn a_kill_that_brings_no_relief_is_not_repeated_until_recovery() {
        let mut sc = Script::new();
        let rules = Rules::with_grace(10_000);
        let mut t = Tracker::default();
        // The kill freed nothing: tmpfs holds the memory, the rest keep stalling at the ceiling.
        act_once(&mut sc, &mut t, &rules, 700 * M);
        let v: Vec<_> = (0..60)
            .map(|_| t.observe(sc.step(700 * M, 10, 900), &rules).verdict)
            .collect();
        assert!(!v.iter().any(|v| matches!(v, Verdict::Act { .. })), "{v:?}");
        let told = v.iter().filter(|v| matches!(v, Verdict::NoRelief { .. })).count();
        assert_eq!(told, 1, "said once: {v:?}");
        // Recovered (the tmpfs files were removed); a new runaway later is acted on again.
        t.observe(sc.step(300 * M, 0, 0), &rules);
        let v: Vec<_> = (0..15)
            .map(|_| t.observe(sc.step(700 * M, 10, 900), &rules).verdict)
            .collect();
        assert!(v.iter().any(|v| matches!(v, Verdict::Act { .. })), "{v:?}");
    }

    #[test]
    fn a_kill_that_freed_memory_lets_the_next_runaway_be_ended() {
        let mut sc = Script::new();
        let rules = Rules::with_grace(10_000);
        let mut t = Tracker::default();
        // Three balloons: the kill freed one, the other two grow back to the ceiling.
        act_once(&mut sc, &mut t, &rules, 450 * M);
        let v: Vec<_> = (0..30)
            .map(|_| t.observe(sc.step(700 * M, 10, 900), &rules).verdict)
            .collect();
        assert!(v.iter().any(|v| matches!(v, Verdict::Act { .. })), "{v:?}");
        assert!(!v.iter().any(|v| matches!(v, Verdict::NoRelief { .. })), "{v:?}");
    }
}
