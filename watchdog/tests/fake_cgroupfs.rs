//! The real contain-watchdog binary on a fake cgroupfs tree: files shaped like the kernel's,
//! written by a scripted "kernel" thread, with real processes in the fake cgroup. Runs
//! anywhere (no cgroup2 needed); tests/real_cgroup.rs does the same on the real kernel.

mod common;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

const M: u64 = 1 << 20;
const HIGH: u64 = 600 * M;
const MAX: u64 = 800 * M;

static POLICY: LazyLock<String> = LazyLock::new(|| watchdog_policy(HIGH, MAX));

/// A fake user-4242.slice with the files the watchdog reads.
#[derive(Clone)]
struct Slice {
    dir: PathBuf,
    /// Beside the fake cgroupfs, unwatched: where a file is written before it is renamed in.
    scratch: PathBuf,
}

impl Slice {
    fn new(root: &Path, pids: &[u32]) -> Slice {
        let dir = root.join("user.slice/user-4242.slice");
        fs::create_dir_all(dir.join("session-1.scope")).expect("mkdir");
        // An exempt system account's slice next to it: never touched.
        fs::create_dir_all(root.join("user.slice/user-999.slice")).expect("mkdir");
        let scratch = root.parent().expect("a base above the root").to_path_buf();
        let s = Slice { dir, scratch };
        s.write("memory.high", &HIGH.to_string());
        s.write("memory.max", &MAX.to_string());
        s.write("memory.swap.max", "0");
        s.write("cgroup.procs", "");
        s.set(300 * M, 0, 0, 0);
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        s.write("session-1.scope/cgroup.procs", &(list.join("\n") + "\n"));
        s
    }
    /// Writes a file whole, as the kernel's read: a reader never sees it truncated and empty
    /// (which fs::write shows it for a moment, and a loaded machine catches). memory.events,
    /// watched by inode, is overwritten in place (its text only grows); the others are renamed in.
    fn write(&self, file: &str, text: &str) {
        let path = self.dir.join(file);
        if file == "memory.events" {
            let f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .expect("open");
            f.write_all_at(text.as_bytes(), 0).expect("write");
            f.set_len(text.len() as u64).expect("set_len");
        } else {
            let staged = self.scratch.join(format!(".{}", file.replace('/', "_")));
            fs::write(&staged, text).expect("write");
            fs::rename(&staged, &path).expect("rename");
        }
    }
    fn set(&self, current: u64, high_events: u64, oom_kills: u64, stall_us: u64) {
        self.write("memory.current", &current.to_string());
        self.write(
            "memory.pressure",
            &format!("some avg10=0.00 avg60=0.00 avg300=0.00 total={stall_us}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total={stall_us}\n"),
        );
        self.set_events(high_events, oom_kills);
    }
    fn set_events(&self, high_events: u64, oom_kills: u64) {
        // Written last: its change is what the watchdog is woken by.
        self.write(
            "memory.events",
            &format!(
                "low 0\nhigh {high_events}\nmax 0\noom {oom_kills}\noom_kill {oom_kills}\noom_group_kill 0\n"
            ),
        );
    }
    fn max(&self) -> String {
        fs::read_to_string(self.dir.join("memory.max"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

/// What the scripted kernel does every 100 ms.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    Quiet,
    /// At the ceiling, reclaim events rising, `stall` per mille of the time stalled.
    AtHigh {
        stall: u64,
    },
    /// At the ceiling with reclaim events, but no memory.pressure file (a kernel without PSI).
    AtHighWithoutPsi,
}

struct Kernel {
    load: Arc<Mutex<Load>>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<(Duration, String)>>>,
    oom: Arc<AtomicBool>,
    /// The kill frees nothing (memory held in tmpfs): the load stays as it was.
    held: Arc<AtomicBool>,
}

/// Plays the kernel for `slice`: applies the load, and when memory.max is lowered below the
/// usage, SIGKILLs `victim` (as the memcg OOM killer would the largest process).
fn kernel(slice: &Slice, victim: u32) -> Kernel {
    let load = Arc::new(Mutex::new(Load::Quiet));
    let stop = Arc::new(AtomicBool::new(false));
    let oom = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicBool::new(false));
    let (l, s, o, h) = (load.clone(), stop.clone(), oom.clone(), held.clone());
    let slice = slice.clone();
    let handle = std::thread::spawn(move || {
        let start = Instant::now();
        let (mut events, mut kills, mut stall) = (0u64, 0u64, 0u64);
        let mut maxes = vec![(Duration::ZERO, slice.max())];
        let mut victim_alive = true;
        loop {
            // One last look after the stop, so the final value is always recorded.
            let stopping = s.load(Ordering::Relaxed);
            let max = slice.max();
            if !max.is_empty() && maxes.last().map(|m| &m.1) != Some(&max) {
                maxes.push((start.elapsed(), max.clone()));
            }
            if stopping {
                return maxes;
            }
            if o.swap(false, Ordering::Relaxed) {
                kills += 1;
            }
            let lowered = max.parse::<u64>().is_ok_and(|m| m < MAX);
            if lowered && victim_alive {
                let _ = kill(Pid::from_raw(victim as i32), Signal::SIGKILL);
                victim_alive = false;
                kills += 1;
                if !h.load(Ordering::Relaxed) {
                    *l.lock().expect("lock") = Load::Quiet;
                }
                let rest =
                    fs::read_to_string(slice.dir.join("session-1.scope/cgroup.procs")).unwrap_or_default();
                let rest: Vec<&str> = rest.lines().filter(|p| *p != victim.to_string()).collect();
                slice.write("session-1.scope/cgroup.procs", &(rest.join("\n") + "\n"));
            }
            match *l.lock().expect("lock") {
                Load::Quiet => slice.set(300 * M, events, kills, stall),
                Load::AtHigh { stall: st } => {
                    events += 5;
                    stall += st * 100;
                    slice.set(700 * M, events, kills, stall);
                }
                Load::AtHighWithoutPsi => {
                    events += 5;
                    slice.set(700 * M, events, kills, stall);
                    let _ = fs::remove_file(slice.dir.join("memory.pressure"));
                    // Touched again: the change the watchdog is woken by.
                    slice.set_events(events, kills);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    Kernel {
        load,
        stop,
        handle: Some(handle),
        oom,
        held,
    }
}

impl Kernel {
    fn set(&self, load: Load) {
        *self.load.lock().expect("lock") = load;
    }
    fn finish(mut self) -> Vec<(Duration, String)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().expect("once").join().expect("kernel thread")
    }
}

/// A test's own base directory, its `cgroup` folder the fake cgroupfs, and the guard that
/// runs these tests one at a time: they measure the watchdog's timing, not against each other.
fn serial_base() -> (std::sync::MutexGuard<'static, ()>, tempfile::TempDir, PathBuf) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let base = tempfile::tempdir().expect("tempdir");
    let root = base.path().join("cgroup");
    (one_at_a_time, base, root)
}

fn sleeper() -> Child {
    as_slice_user(Command::new("sleep").arg("300"))
        .spawn()
        .expect("sleep")
}

#[test]
fn a_runaway_stuck_at_high_is_ended_and_the_user_told() {
    let (_one_at_a_time, base, root) = serial_base();
    let mut balloon = balloon(32, 50, 64).spawn().expect("balloon");
    let mut sibling = sleeper();
    assert!(wait_for(Duration::from_secs(10), || rss_kb(balloon.id()) > 60_000));
    let slice = Slice::new(&root, &[sibling.id(), balloon.id()]);
    let wd = Watchdog::start(base.path(), &root, &POLICY);
    assert_eq!(
        wd.counters().expect("counters")["watching"],
        1,
        "{}",
        wd.log_text()
    );

    let k = kernel(&slice, balloon.id());
    std::thread::sleep(Duration::from_millis(500));
    let throttled_at = Instant::now();
    k.set(Load::AtHigh { stall: 900 });
    let entry = wd.entry(Duration::from_secs(30));
    let took = throttled_at.elapsed();
    let maxes = k.finish();
    let entry = entry.unwrap_or_else(|| panic!("no journal entry; log:\n{}", wd.log_text()));

    // Not before the grace period, and soon after it (the bound is loose: `make test` runs
    // this beside builds on a 2-core machine, where 6.6 s was seen).
    assert!(took >= Duration::from_secs(2), "acted after {took:?}");
    assert!(took <= Duration::from_secs(12), "acted after {took:?}");
    // memory.max: systemd's value, lowered to the usage, systemd's value again.
    let values: Vec<&str> = maxes.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        values,
        vec![MAX.to_string(), (700 * M).to_string(), MAX.to_string()],
        "{maxes:?}"
    );
    assert_eq!(slice.max(), MAX.to_string());

    let pid = balloon.id().to_string();
    assert_eq!(field(&entry, "CONTAIN_PID"), Some(pid.as_str()), "{entry:?}");
    assert_eq!(field(&entry, "CONTAIN_REASON"), Some("throttled"));
    assert_eq!(field(&entry, "CONTAIN_UID"), Some("4242"));
    assert_eq!(
        field(&entry, "CONTAIN_CGROUP"),
        Some("/user.slice/user-4242.slice")
    );
    assert_eq!(field(&entry, "CONTAIN_HIGH"), Some("629145600"));
    assert_eq!(field(&entry, "CONTAIN_MAX"), Some("838860800"));
    assert_eq!(field(&entry, "SYSLOG_IDENTIFIER"), Some("contain-watchdog"));
    let name = field(&entry, "CONTAIN_COMM").expect("comm").to_string();
    assert!(!name.is_empty());

    // Only the balloon died.
    assert!(wait_for(Duration::from_secs(2), || !alive(&mut balloon)));
    assert!(alive(&mut sibling), "the sibling must live");

    // The notice and the counters follow the journal entry.
    assert!(wait_for(Duration::from_secs(5), || wd
        .notices
        .join("4242")
        .exists()));
    let notice = fs::read_to_string(wd.notices.join("4242")).expect("notice for the user");
    assert!(notice.starts_with("contain: "), "{notice}");
    assert!(
        notice.contains(&format!("your process \"{name}\" (pid {pid}) was ended at 700M")),
        "{notice}"
    );
    assert!(notice.contains("at your 600M memory_high for"), "{notice}");
    assert!(notice.contains("(ceiling 800M, no swap)"), "{notice}");

    assert!(wait_for(Duration::from_secs(5), || wd
        .counters()
        .is_some_and(|c| c["kills_total"] == 1)));
    let c = wd.counters().expect("counters");
    assert_eq!(c["kills_total"], 1);
    assert_eq!(c["cgroups"]["/user.slice/user-4242.slice"]["watchdog_kills"], 1);
    assert_eq!(
        c["cgroups"]["/user.slice/user-4242.slice"]["oom_kills_seen"], 0,
        "our own kill is not also 'seen'"
    );
    assert_eq!(c["recent"][0]["pid"], balloon.id());
    assert!(!base.path().join("run/watchdog.restore").exists());
    reap(sibling);
}

#[test]
fn spikes_and_cheap_reclaim_are_left_alone_and_kernel_kills_are_reported() {
    let (_one_at_a_time, base, root) = serial_base();
    let mut victim = sleeper();
    let mut sibling = sleeper();
    let slice = Slice::new(&root, &[sibling.id(), victim.id()]);
    let mut wd = Watchdog::start(base.path(), &root, &POLICY);
    let k = kernel(&slice, victim.id());

    // Page-cache churn: at the ceiling with reclaim events for twice the grace, barely stalled.
    k.set(Load::AtHigh { stall: 50 });
    std::thread::sleep(Duration::from_secs(4));
    // A spike: stalled hard, but for less than the grace period.
    k.set(Load::AtHigh { stall: 900 });
    std::thread::sleep(Duration::from_millis(1000));
    k.set(Load::Quiet);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        wd.entry(Duration::from_millis(100)).is_none(),
        "nothing to report yet"
    );

    // The kernel OOM-kills at memory.max on its own: reported, counted, the user told.
    k.oom.store(true, Ordering::Relaxed);
    let entry = wd
        .entry(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no entry; log:\n{}", wd.log_text()));
    let maxes = k.finish();
    assert_eq!(maxes.len(), 1, "memory.max was never touched: {maxes:?}");
    assert_eq!(field(&entry, "CONTAIN_REASON"), Some("oom"), "{entry:?}");
    assert_eq!(
        field(&entry, "CONTAIN_USER"),
        Some("4242"),
        "no passwd entry: named by UID"
    );
    // The counters are saved after the journal entry is sent.
    assert!(wait_for(Duration::from_secs(5), || wd.counters().is_some_and(
        |c| c["cgroups"]["/user.slice/user-4242.slice"]["oom_kills_seen"] == 1
    )));
    let c = wd.counters().expect("counters");
    assert_eq!(c["cgroups"]["/user.slice/user-4242.slice"]["oom_kills_seen"], 1);
    assert_eq!(c["cgroups"]["/user.slice/user-4242.slice"]["watchdog_kills"], 0);
    let notice = fs::read_to_string(wd.notices.join("4242")).expect("notice");
    assert!(
        notice.contains("was killed by the kernel at 300M: it reached your 800M memory_max, no swap."),
        "{notice}"
    );
    assert!(alive(&mut victim) && alive(&mut sibling));

    // SIGTERM: a clean exit.
    kill(Pid::from_raw(wd.child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    assert!(wait_for(Duration::from_secs(5), || matches!(
        wd.child.try_wait(),
        Ok(Some(_))
    )));
    assert_eq!(
        wd.child.try_wait().ok().flatten().and_then(|s| s.code()),
        Some(0),
        "{}",
        wd.log_text()
    );
    reap(victim);
    reap(sibling);
}

/// How many times the log says `needle`.
fn said(wd: &Watchdog, needle: &str) -> usize {
    wd.log_text().matches(needle).count()
}

#[test]
fn without_stall_evidence_nothing_is_killed_and_that_is_said_once() {
    let (_one_at_a_time, base, root) = serial_base();
    let mut victim = sleeper();
    let slice = Slice::new(&root, &[victim.id()]);
    let wd = Watchdog::start(base.path(), &root, &POLICY);
    let k = kernel(&slice, victim.id());
    // At the ceiling with reclaim events for three times the grace period, memory.pressure gone.
    k.set(Load::AtHighWithoutPsi);
    std::thread::sleep(Duration::from_secs(6));
    let maxes = k.finish();
    assert_eq!(
        maxes.len(),
        1,
        "memory.max was never touched: {maxes:?}\n{}",
        wd.log_text()
    );
    assert!(
        wd.entry(Duration::from_millis(100)).is_none(),
        "{}",
        wd.log_text()
    );
    assert!(alive(&mut victim));
    assert_eq!(said(&wd, "gives no stall figure"), 1, "{}", wd.log_text());
    reap(victim);
}

#[test]
fn a_kill_that_brings_no_relief_is_not_repeated() {
    let (_one_at_a_time, base, root) = serial_base();
    let victim = sleeper();
    let mut sibling = sleeper();
    let slice = Slice::new(&root, &[sibling.id(), victim.id()]);
    let wd = Watchdog::start(base.path(), &root, &POLICY);
    let k = kernel(&slice, victim.id());
    // The memory is in tmpfs: killing the victim frees none of it, the stall goes on.
    k.held.store(true, Ordering::Relaxed);
    k.set(Load::AtHigh { stall: 900 });
    let entry = wd.entry(Duration::from_secs(20));
    assert!(entry.is_some(), "the first kill; log:\n{}", wd.log_text());
    // Three more grace periods, still stalled at the ceiling.
    std::thread::sleep(Duration::from_secs(7));
    let maxes = k.finish();
    let values: Vec<&str> = maxes.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        values,
        vec![MAX.to_string(), (700 * M).to_string(), MAX.to_string()],
        "one kill only: {maxes:?}\n{}",
        wd.log_text()
    );
    assert_eq!(said(&wd, "which brought no relief"), 1, "{}", wd.log_text());
    assert!(alive(&mut sibling), "the sibling must live");
    reap(victim);
    reap(sibling);
}

/// Holds the victim's slice stalled at memory.high until a watchdog with `enabled = false` says
/// it leaves it hanging (within 15 s); the kernel fake is returned for the rest of the test.
fn stalled_and_left_to_hang(wd: &Watchdog, slice: &Slice, victim: u32, why: &str) -> Kernel {
    let k = kernel(slice, victim);
    k.set(Load::AtHigh { stall: 900 });
    assert!(
        wait_for(Duration::from_secs(15), || wd
            .log_text()
            .contains("enabled = false, so it is left to hang")),
        "{why}log:\n{}",
        wd.log_text()
    );
    k
}

#[test]
fn new_cgroups_are_picked_up_and_policy_edits_apply_at_once() {
    let (_one_at_a_time, base, root) = serial_base();
    fs::create_dir_all(root.join("user.slice")).expect("mkdir");
    let wd = Watchdog::start(
        base.path(),
        &root,
        &POLICY.replace("enabled = true", "enabled = false"),
    );
    assert_eq!(wd.counters().expect("counters")["watching"], 0);
    // A login: systemd creates the user's slice.
    let mut victim = sleeper();
    let slice = Slice::new(&root, &[victim.id()]);
    assert!(
        wait_for(Duration::from_secs(3), || wd
            .counters()
            .is_some_and(|c| c["watching"] == 1)),
        "the new slice is watched at once (inotify), not at the 30 s rescan; log:\n{}",
        wd.log_text()
    );
    let k = stalled_and_left_to_hang(&wd, &slice, victim.id(), "");
    assert!(alive(&mut victim), "enabled = false: nothing is ended");
    k.set(Load::Quiet);
    assert_eq!(k.finish().len(), 1, "memory.max untouched");

    // The admin switches it on, the way an editor saves (new file, rename): applied at once.
    let dir = base.path().join("root/etc/contain");
    fs::write(dir.join(".policy.toml.new"), POLICY.as_str()).expect("write");
    fs::rename(dir.join(".policy.toml.new"), dir.join("policy.toml")).expect("rename");
    let k = kernel(&slice, victim.id());
    k.set(Load::AtHigh { stall: 900 });
    let entry = wd.entry(Duration::from_secs(20));
    k.finish();
    let entry = entry.unwrap_or_else(|| panic!("not re-enabled; log:\n{}", wd.log_text()));
    assert_eq!(
        field(&entry, "CONTAIN_PID"),
        Some(victim.id().to_string().as_str())
    );
    assert!(wait_for(Duration::from_secs(2), || !alive(&mut victim)));
    reap(victim);
}

#[test]
fn a_slice_seen_before_its_files_is_watched_once_they_are_there() {
    let (_one_at_a_time, base, root) = serial_base();
    // A slice caught between its mkdir and its memory.events (a fake cgroupfs writes files
    // one by one; the kernel's appear with the directory).
    let mut victim = sleeper();
    let slice = Slice::new(&root, &[victim.id()]);
    fs::remove_file(slice.dir.join("memory.events")).expect("rm");
    let wd = Watchdog::start(
        base.path(),
        &root,
        &POLICY.replace("enabled = true", "enabled = false"),
    );
    assert!(
        wait_for(Duration::from_secs(5), || wd.log_text().contains("watching")),
        "{}",
        wd.log_text()
    );
    let k = stalled_and_left_to_hang(
        &wd,
        &slice,
        victim.id(),
        "the slice is watched within seconds, not at the 30 s rescan; ",
    );
    k.set(Load::Quiet);
    k.finish();
    assert!(alive(&mut victim), "enabled = false: nothing is ended");
    reap(victim);
}
