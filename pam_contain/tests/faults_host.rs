//! The module loaded into this process by Linux-PAM, as sshd loads it, through every kind of
//! fault in a row: no PAM_USER and hostile ones, unreadable /proc and cgroupfs files, a hostile
//! policy, systemd that never answers, no bus at all. The host must come out of each call with
//! PAM's answer in time, root let in, no thread left and its memory flat. One test: the thread
//! list, the memory peak and the bus address are per process.

mod common;

use common::in_process::*;
use common::*;
use contain_systemd::fake::Answer;
use std::ffi::c_int;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const TIMEOUT_MS: u64 = 500;
/// The timeout plus a margin for a loaded machine.
const BOUND: Duration = Duration::from_millis(3000);

/// This process's peak resident memory (VmHWM), in KiB.
fn peak_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// A joined thread may still be listed in /proc for a moment after join returns (the kernel
/// wakes the joiner before it reaps the task): wait for it to go, so that only threads the
/// module leaves count.
fn await_gone(task: &Path, what: &str) {
    let deadline = Instant::now() + BOUND;
    while task.exists() {
        assert!(
            Instant::now() < deadline,
            "{what}: the call's own thread never ended"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One login, with its answer checked against `want` and its time against the bound. The call
/// runs on a thread of its own so that a hang fails the test instead of stalling it.
fn attempt(dir: &Path, user: Option<&[u8]>, want: c_int, what: &str) -> Duration {
    let (dir, user) = (dir.to_path_buf(), user.map(<[u8]>::to_vec));
    let (done_tx, done) = std::sync::mpsc::channel();
    let started = Instant::now();
    let call = std::thread::spawn(move || {
        let task = fs::read_link("/proc/thread-self").expect("/proc/thread-self");
        let _ = done_tx.send((login_as(&dir, user.as_deref(), None), task));
    });
    let (rc, task) = match done.recv_timeout(BOUND * 4) {
        Ok(answer) => answer,
        Err(_) => panic!("{what}: the PAM call hung"),
    };
    let took = started.elapsed();
    let _ = call.join();
    await_gone(&Path::new("/proc").join(task), what);
    assert_eq!(rc, want, "{what}: PAM answered {rc}, not {want}");
    assert!(took <= BOUND, "{what}: took {took:?}");
    took
}

#[test]
fn the_host_survives_every_fault() {
    require_tools();
    // A module reading without end must fail this test, not exhaust the machine.
    let limit = libc::rlimit {
        rlim_cur: 1 << 30,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit for this process.
    assert_eq!(
        unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) },
        0,
        "setrlimit"
    );
    // A real account on every Debian system, capped by the test policy (uid >= 1000).
    let nobody = 65534;
    let (user, root) = (Some(&b"nobody"[..]), Some(&b"root"[..]));
    let (dir, fake) = host_root("faults-host", POLICY);
    let slice = dir.join(format!("sys/fs/cgroup/user.slice/user-{nobody}.slice"));
    fs::create_dir_all(&slice).expect("tmp");
    let policy = dir.join("etc/contain/policy.toml");
    let proc_cgroup = dir.join("proc/self/cgroup");
    let service = |extra: &str| write_service(&dir, TIMEOUT_MS, extra);
    service("");
    let in_slice = || {
        fs::write(
            &proc_cgroup,
            format!("0::/user.slice/user-{nobody}.slice/session-1.scope\n"),
        )
        .expect("proc_cgroup")
    };
    in_slice();

    // Warm up: libpam, the module and NSS load once, as in a long-running sshd.
    attempt(&dir, root, PAM_SUCCESS, "warm-up");
    // Root, in nobody's slice here, left it for its own: not what this test is about.
    fake.take_calls();
    let threads_before = threads();
    let peak_before = peak_kib();

    // 1. No PAM_USER, and hostile ones: denied (on_failure = deny), systemd never asked.
    let long = vec![b'x'; 300];
    let names: [Option<&[u8]>; 9] = [
        None,
        Some(b""),
        Some(&long),
        Some(b"al\nice"),
        Some(b"\x1b[31mroot\x1b[0m"),
        Some(b"a\x01b"),
        Some(b"../../etc/passwd"),
        Some(b"root "),
        Some(b"r\xffoot"),
    ];
    for name in names {
        let what = format!("PAM_USER {:?}", name.map(String::from_utf8_lossy));
        attempt(&dir, name, PAM_PERM_DENIED, &what);
    }
    assert_eq!(fake.take_calls(), [], "no unit for an unknown name");
    attempt(&dir, root, PAM_SUCCESS, "root after hostile names");
    fake.take_calls();

    // 2. /proc/self/cgroup unreadable: a scope is tried; it cannot be seen to hold the process.
    let odd = dir.join("odd");
    let fifo = std::ffi::CString::new(dir.join("fifo").into_os_string().into_encoded_bytes()).expect("path");
    // SAFETY: a valid C string path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo");
    fs::create_dir(&odd).expect("tmp");
    for path in [
        "/dev/zero",
        &dir.join("fifo").display().to_string(),
        &odd.display().to_string(),
        "/nonexistent",
    ] {
        service(&format!("proc_cgroup={path}"));
        let what = format!("proc_cgroup={path}");
        attempt(&dir, user, PAM_PERM_DENIED, &what);
        let calls = fake.take_calls();
        assert_eq!(calls.len(), 1, "{what}: {calls:?}");
        let prefix = format!("contain-{nobody}-{}-", std::process::id());
        assert!(calls[0].unit.starts_with(&prefix), "{what}: {:?}", calls[0].unit);
        attempt(&dir, root, PAM_SUCCESS, &format!("{what}: root"));
        fake.take_calls();
    }
    service("");

    // 3. Garbage in cgroupfs: never taken as the policy's caps; repaired.
    for (file, text) in [("memory.max", "banana"), ("memory.high", ""), ("pids.max", "-1")] {
        fs::write(slice.join(file), text).expect("tmp");
    }
    fs::create_dir(slice.join("memory.swap.max")).expect("tmp");
    attempt(&dir, user, PAM_SUCCESS, "garbage cgroupfs");
    let calls = fake.take_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].properties,
        [
            "MemoryHigh=1073741824",
            "MemoryMax=2147483648",
            "MemorySwapMax=0",
            "TasksMax=512"
        ]
    );
    attempt(&dir, root, PAM_SUCCESS, "garbage cgroupfs: root");
    fake.take_calls();

    // 4. A group-writable policy: the built-in default, still enforced.
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o666)).expect("chmod");
    attempt(&dir, user, PAM_SUCCESS, "group-writable policy");
    let calls = fake.take_calls();
    assert!(
        calls.len() == 1 && calls[0].sets("MemoryMaxScale"),
        "the default's caps: {calls:?}"
    );
    attempt(&dir, root, PAM_SUCCESS, "group-writable policy: root");
    fake.take_calls();
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o644)).expect("chmod");

    // 5. systemd never answers: denied at the timeout, not later.
    fake.answer(Answer::Never);
    let took = attempt(&dir, user, PAM_PERM_DENIED, "systemd never answers");
    assert!(
        took >= Duration::from_millis(TIMEOUT_MS),
        "cut off early: {took:?}"
    );
    attempt(&dir, root, PAM_SUCCESS, "systemd never answers: root");

    fake.take_calls();
    assert_eq!(threads(), threads_before, "a thread was left behind");

    // 6. No bus at all. (The fake's own teardown, with a call left pending, leaves a zbus
    // helper thread, started by the time the drop returns: only threads the module would add
    // count. By task id: a thread just started still carries its parent's name.)
    drop(fake);
    let without_bus = task_ids();
    attempt(&dir, user, PAM_PERM_DENIED, "no bus");
    attempt(&dir, root, PAM_SUCCESS, "no bus: root");
    let added: Vec<u32> = task_ids().difference(&without_bus).copied().collect();
    assert!(
        added.is_empty(),
        "threads were left behind without a bus: {added:?}"
    );

    let grew = peak_kib().saturating_sub(peak_before);
    assert!(grew < 16 << 10, "the host's memory peak grew by {grew} KiB");
    let _ = fs::remove_dir_all(&dir);
}
