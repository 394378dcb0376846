//! open_session wall time through real Linux-PAM (pam_start_confdir, in this process) against a
//! fake systemd on a private dbus-daemon, and the memory the module adds to its host.
//!
//! Usage: bench MODULE.so [CALLS]   (pam_contain/bench/run.sh builds the stripped module first)
//! The fake runs in a child process (`bench --serve-fake FILE`) so that it adds nothing to the
//! host's RSS.

use contain_systemd::fake::FakeSystemd;
use std::ffi::{CString, c_char, c_int, c_void};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::ptr;
use std::time::{Duration, Instant};

#[repr(C)]
struct PamConv {
    conv: extern "C" fn(c_int, *mut *const c_void, *mut *mut c_void, *mut c_void) -> c_int,
    appdata: *mut c_void,
}

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut c_void,
    ) -> c_int;
    fn pam_open_session(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut c_void, status: c_int) -> c_int;
}

extern "C" fn no_conversation(_: c_int, _: *mut *const c_void, _: *mut *mut c_void, _: *mut c_void) -> c_int {
    19 // PAM_CONV_ERR: nothing to say in a benchmark
}

/// A policy is compiled for logins once its files are a second old (see contain_host::compiled):
/// each case starts that long after its policy was written, as an admin's edit has by then.
const SETTLED: Duration = Duration::from_millis(1100);

const POLICY: &str = "[users]\nmemory_high = \"1G\"\nmemory_max = \"2G\"\nmemory_swap_max = 0\n\
                      tasks_max = 512\ncpu_weight = 100\nexempt_uid_below = 1000\n";

fn serve_fake(cgroup_file: &str) {
    let fake = match FakeSystemd::start() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("bench: fake systemd: {e}");
            std::process::exit(1);
        }
    };
    fake.move_into(Some(PathBuf::from(cgroup_file)));
    println!("{}", fake.address());
    let _ = std::io::stdout().flush();
    // Serve until the parent closes our stdin.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn open_session(confdir: &Path) -> (c_int, Duration) {
    let conv = PamConv {
        conv: no_conversation,
        appdata: ptr::null_mut(),
    };
    let service = c"contain";
    let user = c"nobody";
    let dir = CString::new(confdir.as_os_str().as_encoded_bytes()).unwrap_or_default();
    let mut pamh: *mut c_void = ptr::null_mut();
    // SAFETY: valid C strings and structs for the duration of the calls.
    unsafe {
        if pam_start_confdir(service.as_ptr(), user.as_ptr(), &conv, dir.as_ptr(), &mut pamh) != 0 {
            eprintln!("bench: pam_start_confdir failed");
            std::process::exit(1);
        }
        let started = Instant::now();
        let rc = pam_open_session(pamh, 0);
        let took = started.elapsed();
        pam_end(pamh, rc);
        (rc, took)
    }
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let pick = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<32} n={:<5} median {:>8.1} µs   p99 {:>8.1} µs   max {:>8.1} µs",
        times.len(),
        us(pick(0.5)),
        us(pick(0.99)),
        us(pick(1.0))
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve-fake") {
        serve_fake(args.get(2).map(String::as_str).unwrap_or("/dev/null"));
        return;
    }
    let Some(module) = args.get(1).map(PathBuf::from) else {
        eprintln!("usage: bench MODULE.so [CALLS]");
        std::process::exit(2);
    };
    let calls: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let dir = std::env::temp_dir().join(format!("pam-contain-bench-{}", std::process::id()));
    let slice = dir.join("sys/fs/cgroup/user.slice/user-65534.slice");
    std::fs::create_dir_all(&slice).unwrap_or_default();
    for (f, v) in [
        ("memory.high", "1073741824"),
        ("memory.max", "2147483648"),
        ("memory.swap.max", "0"),
        ("pids.max", "512"),
        ("cpu.weight", "100"),
    ] {
        std::fs::write(slice.join(f), v).unwrap_or_default();
    }
    for sub in ["var/lib/contain/notices", "etc/contain", "proc/self"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap_or_default();
    }
    std::fs::write(dir.join("etc/contain/policy.toml"), POLICY).unwrap_or_default();
    std::thread::sleep(SETTLED);
    let proc_cgroup = dir.join("proc/self/cgroup");
    std::fs::write(
        dir.join("contain"),
        format!("session required {} root={}\n", module.display(), dir.display()),
    )
    .unwrap_or_default();

    let exe = std::env::current_exe().unwrap_or_default();
    let mut fake = Command::new(exe)
        .arg("--serve-fake")
        .arg(&proc_cgroup)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("bench: cannot start the fake: {e}");
            std::process::exit(1)
        });
    let mut address = String::new();
    if let Some(out) = fake.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut address);
    }
    // SAFETY: single-threaded here; the module reads it later on this thread.
    unsafe { std::env::set_var("CONTAIN_SYSTEM_BUS_ADDRESS", address.trim()) };

    let in_slice = "0::/user.slice/user-65534.slice/session-1.scope\n";
    let rss_before = rss_kib();
    std::fs::write(&proc_cgroup, in_slice).unwrap_or_default();
    let (rc, _) = open_session(&dir);
    assert_eq!(rc, 0, "warm-up open_session failed");
    let rss_loaded = rss_kib();

    let mut common = Vec::with_capacity(calls);
    for _ in 0..calls {
        let (rc, took) = open_session(&dir);
        assert_eq!(rc, 0);
        common.push(took);
    }
    let rss_common = rss_kib();
    let mut scope = Vec::with_capacity(calls);
    let mut rss_scope_half = 0;
    for i in 0..calls {
        if i == calls / 2 {
            rss_scope_half = rss_kib();
        }
        std::fs::write(&proc_cgroup, "0::/system.slice/cron.service\n").unwrap_or_default();
        let (rc, took) = open_session(&dir);
        assert_eq!(rc, 0, "scope open_session failed");
        scope.push(took);
    }
    // A user with an [[override]]: the slice starts at the [users] caps, the module sets hers.
    let policy_with_override = format!("{POLICY}\n[[override]]\nuser = \"nobody\"\nmemory_max = \"3G\"\n");
    std::fs::write(dir.join("etc/contain/policy.toml"), policy_with_override).unwrap_or_default();
    std::thread::sleep(SETTLED);
    let mut per_user = Vec::with_capacity(calls);
    for _ in 0..calls {
        std::fs::write(&proc_cgroup, in_slice).unwrap_or_default();
        std::fs::write(slice.join("memory.max"), "2147483648").unwrap_or_default();
        let (rc, took) = open_session(&dir);
        assert_eq!(rc, 0, "override open_session failed");
        per_user.push(took);
    }
    // The same in-slice login under a policy of 10,000 per-user overrides (none for nobody).
    let mut big = POLICY.to_string();
    for i in 0..10_000 {
        big.push_str(&format!(
            "[[override]]\nuser = \"u{i}\"\nmemory_max = \"{}M\"\nmemory_high = \"1000M\"\n",
            1024 + i
        ));
    }
    std::fs::write(dir.join("etc/contain/policy.toml"), big).unwrap_or_default();
    std::thread::sleep(SETTLED);
    std::fs::write(slice.join("memory.max"), "2147483648").unwrap_or_default();
    std::fs::write(&proc_cgroup, in_slice).unwrap_or_default();
    let mut big_policy = Vec::with_capacity(calls);
    for _ in 0..calls {
        let (rc, took) = open_session(&dir);
        assert_eq!(rc, 0, "10,000-override open_session failed");
        big_policy.push(took);
    }
    let rss_after = rss_kib();
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0);

    report("already in slice, caps right", common);
    report("needs a scope (1 D-Bus job)", scope);
    report("sets an override (1 D-Bus call)", per_user);
    report("10,000 overrides, in slice", big_policy);
    println!(
        "RSS: host before loading {rss_before} KiB; added: {} KiB after the first open_session, \
         {} KiB after {calls} in-slice calls, {} KiB after {} scope calls, {} KiB after {calls}",
        rss_loaded.saturating_sub(rss_before),
        rss_common.saturating_sub(rss_before),
        rss_scope_half.saturating_sub(rss_before),
        calls / 2,
        rss_after.saturating_sub(rss_before),
    );
    println!("threads in the host after all calls: {threads} (the host's own: 1)");
    drop(fake.stdin.take());
    let _ = fake.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
