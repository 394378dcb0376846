//! The built module in real Linux-PAM (pamtester under pam_wrapper/nss_wrapper) under faults:
//! hostile user names; a bus that is absent, silent, slow, refusing, or hanging up mid-call;
//! /proc and cgroupfs files that are missing, garbage, endless or FIFOs; hostile policy files.
//! Every case checks PAM's answer, that pamtester survived (a crash or a panic in the module
//! gives another answer), and the time bound; root is always let in.

mod common;

use common::*;
use contain_systemd::fake::{Answer, Call};
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The budget for systemd's answers in every run here.
const TIMEOUT_MS: u64 = 500;
/// No run may take longer: the timeout plus pamtester's own start on a loaded machine (1.5 s
/// was passed beside builds and emulated guests).
const BOUND: Duration = Duration::from_millis(3000);

const ALICE_SESSION: &str = "/user.slice/user-1001.slice/session-4.scope";

/// Runs pamtester for `user` with the fault timeout and a 1 GiB address-space limit, so that a
/// module reading without end fails its run instead of the machine. `tune` adjusts the command.
fn login_with(sb: &Sandbox, user: impl AsRef<OsStr>, extra: &str, tune: impl FnOnce(&mut Command)) -> Run {
    let mut cmd = sb.command(user, &[], &format!("timeout={TIMEOUT_MS} {extra}"));
    // SAFETY: setrlimit is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    tune(&mut cmd);
    run(cmd)
}

fn login(sb: &Sandbox, user: impl AsRef<OsStr>, extra: &str) -> Run {
    login_with(sb, user, extra, |_| {})
}

/// pamtester with the module peaks at 6-25 MiB: more means something read without end.
const MAX_RSS_KIB: u64 = 64 << 10;

/// pamtester exits 0 or 1; anything else (a signal, a panic turned abort) is a crash.
fn survived(run: &Run, what: &str) {
    eprintln!(
        "{what}: exit {}, {:?}, {} KiB",
        run.code, run.took, run.max_rss_kib
    );
    assert!(
        run.max_rss_kib <= MAX_RSS_KIB,
        "{what}: pamtester peaked at {} KiB",
        run.max_rss_kib
    );
    assert!(
        run.code == 0 || run.code == 1,
        "{what}: pamtester did not survive (exit {}):\n{}",
        run.code,
        run.stderr
    );
    assert!(
        run.took <= BOUND,
        "{what}: took {:?}, over the {BOUND:?} bound",
        run.took
    );
    for line in run.log() {
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "{what}: a raw control character in a log line: {line:?}"
        );
    }
}

fn expect_in(run: &Run, what: &str) {
    survived(run, what);
    assert!(
        run.code == 0 && run.stdout.contains("successfully opened a session"),
        "{what}: should be let in:\n{}\n{}",
        run.stdout,
        run.log().join("\n")
    );
}

fn expect_denied(run: &Run, what: &str) {
    survived(run, what);
    assert!(
        run.code == 1 && format!("{}{}", run.stdout, run.stderr).contains("pamtester: Permission denied"),
        "{what}: should be denied with PAM_PERM_DENIED:\n{}\n{}",
        run.stdout,
        run.log().join("\n")
    );
}

fn expect_logged(run: &Run, needle: &str, what: &str) {
    assert!(
        run.logged(needle),
        "{what}: no log line with {needle:?}:\n{}",
        run.log().join("\n")
    );
}

/// Every unit asked for is named by `uid` alone: the slice, or a scope named by UID, PID and the
/// time since boot.
fn units_named_by_uid(calls: &[Call], uid: u32, what: &str) {
    let slice = format!("user-{uid}.slice");
    for call in calls {
        let scope = call
            .unit
            .strip_prefix(&format!("contain-{uid}-"))
            .and_then(|rest| rest.strip_suffix(".scope"))
            .and_then(|rest| rest.split_once('-'))
            .is_some_and(|(pid, boot)| {
                [pid, boot]
                    .iter()
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            });
        assert!(
            call.unit == slice || scope,
            "{what}: a unit not named by uid {uid}: {call:?}"
        );
        for prop in &call.properties {
            if let Some(parent) = prop.strip_prefix("Slice=") {
                assert_eq!(parent, slice, "{what}: {call:?}");
            }
        }
    }
}

/// Root and bob (group `sudo`, never denied) get in whatever else is wrong; root needs nothing
/// from systemd, bob's units are named by his UID. Call after taking the earlier calls.
fn never_denied_get_in(sb: &Sandbox, extra: &str, what: &str) {
    let root = login(sb, "root", extra);
    expect_in(&root, &format!("{what}: root"));
    let bob = login(sb, "bob", extra);
    expect_in(&bob, &format!("{what}: bob (never_deny_groups)"));
    // Root leaves alice's slice for its own, uncapped: nothing of alice's is touched. A call cut
    // off mid-way may reach the fake late, so both logins' calls are taken together.
    let (roots, bobs): (Vec<Call>, Vec<Call>) = sb
        .fake()
        .take_calls()
        .into_iter()
        .partition(|c| c.unit == "user-0.slice" || c.unit.starts_with("contain-0-"));
    units_named_by_uid(&roots, 0, &format!("{what}: root"));
    units_named_by_uid(&bobs, 1002, what);
}

fn allow_on_failure(sb: &Sandbox) {
    sb.set_policy(&POLICY.replace("on_failure = \"deny\"", "on_failure = \"allow\""));
}

#[test]
fn hostile_user_names_never_reach_a_unit_name() {
    let _serial = serial();
    let sb = Sandbox::new("names");
    let long = "x".repeat(300);
    let unknown: Vec<(OsString, &str)> = vec![
        (OsString::new(), "\"\""),
        (OsString::from(&long), "… (300 bytes)"),
        (OsString::from("al\nice"), "\"al\\nice\""),
        (OsString::from("alice\n"), "\"alice\\n\""),
        (
            OsString::from("\x1b[31mroot\x1b[0m"),
            "\"\\u{1b}[31mroot\\u{1b}[0m\"",
        ),
        (OsString::from("a\x01b"), "\"a\\u{1}b\""),
        (OsString::from("../../etc/passwd"), "\"../../etc/passwd\""),
        (OsString::from("alice/../root"), "\"alice/../root\""),
        (OsString::from(".."), "\"..\""),
        (OsString::from("root "), "\"root \""),
        (OsString::from("0"), "\"0\""),
        (OsString::from("user-1001.slice"), "\"user-1001.slice\""),
        (OsString::from_vec(b"r\xffo\xfeot".to_vec()), "is not UTF-8 text"),
    ];
    for policy in ["deny", "allow"] {
        if policy == "allow" {
            allow_on_failure(&sb);
        }
        for (name, shown) in &unknown {
            let what = format!("unknown user {name:?}, on_failure={policy}");
            let run = login(&sb, name, "");
            if policy == "deny" {
                expect_denied(&run, &what);
            } else {
                expect_in(&run, &what);
            }
            expect_logged(&run, shown, &what);
            let why = if shown.contains("UTF-8") {
                "PAM_USER "
            } else {
                "no such user "
            };
            expect_logged(&run, why, &what);
            expect_logged(&run, &format!("login.on_failure = \"{policy}\""), &what);
            assert_eq!(sb.fake().take_calls(), [], "{what}: systemd was asked");
        }
    }
    sb.set_policy(POLICY);
    never_denied_get_in(&sb, "", "after hostile names");

    // The same names as real accounts: placed by UID, the name never in a unit.
    let existing = [
        ("ev\x1bil", 1003),
        ("../../x", 1004),
        ("a/b", 1005),
        (long.as_str(), 1006),
        ("c\x01trl", 1007),
        ("user-1001.slice", 1008),
        ("root ", 1009),
    ];
    let mut passwd = PASSWD.to_string();
    for (name, uid) in existing {
        passwd.push_str(&format!("{name}:x:{uid}:{uid}::/home/x:/bin/sh\n"));
    }
    fs::write(sb.dir.join("passwd"), passwd).expect("passwd");
    sb.fake().move_into(Some(sb.proc_cgroup()));
    for (name, uid) in existing {
        let what = format!("existing user {name:?}");
        sb.set_cgroup("/system.slice/cron.service");
        let run = login(&sb, name, "");
        expect_in(&run, &what);
        let calls = sb.fake().take_calls();
        assert_eq!(
            calls.iter().map(|c| c.method.as_str()).collect::<Vec<_>>(),
            ["StartTransientUnit", "SetUnitProperties"],
            "{what}"
        );
        units_named_by_uid(&calls, uid, &what);
        expect_logged(&run, &format!("uid {uid}: moved pid {}", run.pid), &what);
        expect_logged(&run, "session closed for \"", &what);
    }
}

/// A stand-in for the bus socket that misbehaves, on a path of its own.
struct BadBus {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Clone)]
enum Misbehaviour {
    /// Accepts and never says a word.
    Silent,
    /// Accepts and hangs up at once.
    HangUp,
    /// Relays to the real bus at `upstream`, and hangs up on the client once it has sent a
    /// call to `method`: the bus goes away mid-call, after systemd got the call.
    DropMidCall { upstream: PathBuf, method: &'static str },
}

impl BadBus {
    fn start(path: PathBuf, how: Misbehaviour) -> BadBus {
        let _ = fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind the bad bus");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                match &how {
                    Misbehaviour::Silent => held.push(client),
                    Misbehaviour::HangUp => drop(client),
                    Misbehaviour::DropMidCall { upstream, method } => relay(client, upstream, method),
                }
            }
        });
        BadBus {
            path,
            stop,
            thread: Some(thread),
        }
    }

    fn address(&self) -> String {
        format!("unix:path={}", self.path.display())
    }
}

impl Drop for BadBus {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = fs::remove_file(&self.path);
    }
}

fn relay(client: UnixStream, upstream: &Path, method: &'static str) {
    let Ok(server) = UnixStream::connect(upstream) else {
        return;
    };
    let (Ok(mut client_in), Ok(mut server_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let (mut client_out, mut server_in) = (client, server);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut server_in, &mut client_out);
        let _ = client_out.shutdown(std::net::Shutdown::Both);
    });
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = client_in.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
            let the_call = seen.windows(method.len()).any(|w| w == method.as_bytes());
            if the_call {
                // The client is cut off first, so no answer can reach it; systemd still gets
                // the call.
                let _ = client_in.shutdown(std::net::Shutdown::Both);
            }
            if server_out.write_all(&buf[..n]).is_err() {
                break;
            }
            if the_call {
                std::thread::sleep(Duration::from_millis(50));
                break;
            }
        }
        let _ = client_in.shutdown(std::net::Shutdown::Both);
        let _ = server_out.shutdown(std::net::Shutdown::Both);
    });
}

fn login_on(sb: &Sandbox, bus: &str, user: &str, extra: &str) -> Run {
    let bus = bus.to_string();
    login_with(sb, user, extra, move |cmd| {
        cmd.env("CONTAIN_SYSTEM_BUS_ADDRESS", bus);
    })
}

/// Alice outside her slice needs a scope (StartTransientUnit); inside with other caps, a repair
/// (SetUnitProperties). Both must fail cleanly on a bad bus.
fn needs_scope(sb: &Sandbox) {
    sb.set_cgroup("/system.slice/cron.service");
}

fn needs_repair(sb: &Sandbox) {
    sb.set_cgroup(ALICE_SESSION);
    sb.set_slice(1001, &SliceFiles { max: "max", ..RIGHT });
}

#[test]
fn an_absent_or_broken_bus_fails_fast_and_never_locks_out_root() {
    let _serial = serial();
    let sb = Sandbox::new("nobus");
    let hang_up = BadBus::start(sb.dir.join("hangup.sock"), Misbehaviour::HangUp);
    let buses = [
        (
            "no socket at the path",
            "unix:path=/nonexistent/contain-test-bus".to_string(),
        ),
        (
            "an abstract socket nobody listens on",
            "unix:abstract=contain-test-nobody".to_string(),
        ),
        ("not a bus address", "banana".to_string()),
        ("a socket that hangs up at once", hang_up.address()),
    ];
    for (what, bus) in &buses {
        for (path, setup) in [("scope", needs_scope as fn(&Sandbox)), ("repair", needs_repair)] {
            setup(&sb);
            let what = format!("{what}, {path}");
            let alice = login_on(&sb, bus, "alice", "");
            expect_denied(&alice, &what);
            expect_logged(
                &alice,
                "uid 1001: cannot place the session in user-1001.slice: ",
                &what,
            );
            expect_logged(&alice, "session DENIED (login.on_failure = \"deny\")", &what);
            // Nothing waits for a bus that is not there.
            assert!(
                alice.took < Duration::from_millis(TIMEOUT_MS),
                "{what}: took {:?}",
                alice.took
            );
            let root = login_on(&sb, bus, "root", "");
            expect_in(&root, &format!("{what}: root"));
            let bob = login_on(&sb, bus, "bob", "");
            expect_in(&bob, &format!("{what}: bob"));
            expect_logged(&bob, "session allowed UNCAPPED", &what);
        }
    }
    allow_on_failure(&sb);
    needs_scope(&sb);
    let alice = login_on(&sb, "unix:path=/nonexistent/contain-test-bus", "alice", "");
    expect_in(&alice, "no bus, on_failure=allow");
    expect_logged(
        &alice,
        "session allowed UNCAPPED (login.on_failure = \"allow\")",
        "no bus, allow",
    );
    assert_eq!(sb.fake().calls(), [], "the real fake was never reached");
}

#[test]
fn a_silent_bus_or_a_systemd_that_never_answers_is_cut_off_at_the_timeout() {
    let _serial = serial();
    let sb = Sandbox::new("slow");
    let silent = BadBus::start(sb.dir.join("silent.sock"), Misbehaviour::Silent);
    let at_least = Duration::from_millis(TIMEOUT_MS);
    // A bus that accepts and never finishes the handshake.
    needs_scope(&sb);
    let alice = login_on(&sb, &silent.address(), "alice", "");
    expect_denied(&alice, "silent bus");
    expect_logged(&alice, "no answer from systemd within ", "silent bus");
    assert!(alice.took >= at_least, "silent bus: took {:?}", alice.took);
    let bob = login_on(&sb, &silent.address(), "bob", "");
    expect_in(&bob, "silent bus: bob");
    expect_in(&login_on(&sb, &silent.address(), "root", ""), "silent bus: root");

    // systemd takes the call and never answers.
    sb.fake().answer(Answer::Never);
    for (path, setup, method) in [
        ("scope", needs_scope as fn(&Sandbox), "StartTransientUnit"),
        ("repair", needs_repair, "SetUnitProperties"),
    ] {
        let what = format!("systemd never answers, {path}");
        setup(&sb);
        let alice = login(&sb, "alice", "");
        expect_denied(&alice, &what);
        assert!(alice.took >= at_least, "{what}: took {:?}", alice.took);
        expect_logged(&alice, &format!("{method}(") as &str, &what);
        expect_logged(&alice, "no answer from systemd within ", &what);
        let calls = sb.fake().take_calls();
        assert!(calls.iter().all(|c| c.method == method), "{what}: {calls:?}");
        units_named_by_uid(&calls, 1001, &what);
        never_denied_get_in(&sb, "", &what);
    }
    allow_on_failure(&sb);
    needs_scope(&sb);
    expect_in(
        &login(&sb, "alice", ""),
        "systemd never answers, on_failure=allow",
    );
}

#[test]
fn systemd_refusing_or_failing_the_job_follows_the_policy() {
    let _serial = serial();
    let sb = Sandbox::new("refuse");
    let answers = [
        (
            Answer::Refuse("Access denied".into()),
            "systemd refused: org.freedesktop.DBus.Error.Failed: Access denied",
        ),
        (
            Answer::JobResult("canceled".into()),
            "ended with result `canceled`",
        ),
    ];
    for (answer, said) in answers {
        sb.fake().answer(answer.clone());
        for (path, setup) in [("scope", needs_scope as fn(&Sandbox)), ("repair", needs_repair)] {
            let what = format!("{answer:?}, {path}");
            setup(&sb);
            let alice = login(&sb, "alice", "");
            if path == "repair" && matches!(answer, Answer::JobResult(_)) {
                // SetUnitProperties has no job: only a refusal can fail it.
                expect_in(&alice, &what);
            } else {
                expect_denied(&alice, &what);
                expect_logged(&alice, said, &what);
            }
            units_named_by_uid(&sb.fake().take_calls(), 1001, &what);
            never_denied_get_in(&sb, "", &what);
        }
    }
}

#[test]
fn a_bus_that_hangs_up_mid_call_fails_within_the_timeout() {
    let _serial = serial();
    let sb = Sandbox::new("midcall");
    let upstream = PathBuf::from(
        sb.bus_address
            .strip_prefix("unix:path=")
            .and_then(|rest| rest.split(',').next())
            .expect("the fake's bus is a unix:path= address"),
    );
    for (path, setup, method) in [
        ("scope", needs_scope as fn(&Sandbox), "StartTransientUnit"),
        ("repair", needs_repair, "SetUnitProperties"),
    ] {
        let what = format!("bus gone mid-call, {path}");
        let bus = BadBus::start(
            sb.dir.join(format!("{path}.sock")),
            Misbehaviour::DropMidCall {
                upstream: upstream.clone(),
                method,
            },
        );
        setup(&sb);
        let alice = login_on(&sb, &bus.address(), "alice", "");
        expect_denied(&alice, &what);
        expect_logged(
            &alice,
            "uid 1001: cannot place the session in user-1001.slice: ",
            &what,
        );
        let calls = calls_after_hangup(&sb, 1);
        assert_eq!(
            calls.len(),
            1,
            "{what}: systemd got the call before the hang-up: {calls:?}"
        );
        assert_eq!(calls[0].method, method, "{what}");
        units_named_by_uid(&calls, 1001, &what);
        println!("{what}: denied after {:?}", alice.took);
        let root = login_on(&sb, &bus.address(), "root", "");
        expect_in(&root, &format!("{what}: root"));
        // Root leaves alice's slice for its own.
        units_named_by_uid(&calls_after_hangup(&sb, 1), 0, &format!("{what}: root"));
        let bob = login_on(&sb, &bus.address(), "bob", "");
        expect_in(&bob, &format!("{what}: bob"));
        units_named_by_uid(&calls_after_hangup(&sb, 1), 1002, &what);
    }
}

/// The calls systemd got from a client already gone: the relay passes the call on after
/// cutting the client off, so it may land after pamtester ended. Waits for `n` of them.
fn calls_after_hangup(sb: &Sandbox, n: usize) -> Vec<Call> {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while sb.fake().calls().len() < n && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    sb.fake().take_calls()
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: a valid C string path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {}",
        path.display()
    );
}

fn remove_any(path: &Path) {
    let _ = fs::remove_file(path);
    let _ = fs::remove_dir_all(path);
}

#[test]
fn an_unreadable_or_garbage_proc_cgroup_means_try_the_scope() {
    let _serial = serial();
    let sb = Sandbox::new("proc");
    let file = sb.dir.join("proc-odd");
    let ten_mb: Vec<u8> = b"9:cpu,cpuacct:/user.slice/user-1001.slice\n"
        .iter()
        .copied()
        .cycle()
        .take(10 << 20)
        .collect();
    let binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    type Setup = Box<dyn Fn(&Path)>;
    // (what, make the file, whether the fake can write the scope's cgroup into it)
    let cases: Vec<(&str, Setup, bool)> = vec![
        ("missing", Box::new(|_| {}), true),
        ("empty", Box::new(|p| fs::write(p, "").expect("tmp")), true),
        (
            "garbage text",
            Box::new(|p| fs::write(p, "banana\n12:pids:\n0:\n").expect("tmp")),
            true,
        ),
        (
            "binary",
            Box::new(move |p| fs::write(p, &binary).expect("tmp")),
            true,
        ),
        (
            "10 MB",
            Box::new(move |p| fs::write(p, &ten_mb).expect("tmp")),
            true,
        ),
        (
            "a path with ..",
            Box::new(|p| {
                fs::write(
                    p,
                    "0::/user.slice/user-1001.slice/../../system.slice/cron.service\n",
                )
                .expect("tmp")
            }),
            true,
        ),
        (
            "a directory",
            Box::new(|p| fs::create_dir(p).expect("tmp")),
            false,
        ),
        (
            "/dev/zero",
            Box::new(|p| std::os::unix::fs::symlink("/dev/zero", p).expect("tmp")),
            false,
        ),
        ("a FIFO", Box::new(mkfifo), false),
    ];
    let arg = format!("proc_cgroup={}", file.display());
    for (what, make, movable) in &cases {
        let reset = || {
            remove_any(&file);
            make(&file);
        };
        sb.fake().move_into(movable.then(|| file.clone()));
        reset();
        let alice = login(&sb, "alice", &arg);
        survived(&alice, what);
        let calls = sb.fake().take_calls();
        // Where the process is is unknown: it is not taken to be in the slice; a scope is tried.
        assert_eq!(
            calls.first().map(|c| c.method.as_str()),
            Some("StartTransientUnit"),
            "{what}: {calls:?}"
        );
        units_named_by_uid(&calls, 1001, what);
        if *movable {
            expect_in(&alice, what);
            expect_logged(
                &alice,
                "from (unknown cgroup) to user-1001.slice/contain-1001-",
                what,
            );
        } else {
            expect_denied(&alice, what);
            expect_logged(&alice, "shows this process in (no cgroup v2 line)", what);
        }
        reset();
        let root = login(&sb, "root", &arg);
        expect_in(&root, &format!("{what}: root"));
        // Root leaves alice's slice for its own, uncapped: nothing of alice's is touched.
        units_named_by_uid(&sb.fake().take_calls(), 0, &format!("{what}: root"));
        reset();
        expect_in(&login(&sb, "bob", &arg), &format!("{what}: bob"));
        units_named_by_uid(&sb.fake().take_calls(), 1002, what);
    }
    remove_any(&file);
}

#[test]
fn garbage_cgroupfs_files_are_repaired_never_trusted() {
    let _serial = serial();
    let sb = Sandbox::new("cgroupfs");
    sb.set_cgroup(ALICE_SESSION);
    let slice = sb.dir.join("sys/fs/cgroup/user.slice/user-1001.slice");
    let digits: Vec<u8> = b"1234567890".iter().copied().cycle().take(10 << 20).collect();
    let high = "MemoryHigh=1073741824";
    let max = "MemoryMax=2147483648";
    let swap = "MemorySwapMax=0";
    let tasks = "TasksMax=512";
    type Setup = Box<dyn Fn(&Path)>;
    let set = |name: &'static str, text: &'static str| -> Setup {
        Box::new(move |dir: &Path| fs::write(dir.join(name), text).expect("tmp"))
    };
    let cases: Vec<(&str, Vec<Setup>, Vec<&str>)> = vec![
        (
            "memory.max says banana",
            vec![set("memory.max", "banana\n")],
            vec![max],
        ),
        (
            "every file garbage",
            vec![
                set("memory.high", ""),
                set("memory.max", "banana\n"),
                set("memory.swap.max", "-1\n"),
                set("pids.max", "99999999999999999999999\n"),
                set("cpu.weight", "NaN\n"),
            ],
            // A cpu.weight that is no number reads as the kernel's default, the policy's 100.
            vec![high, max, swap, tasks],
        ),
        (
            "every file a directory",
            [
                "memory.high",
                "memory.max",
                "memory.swap.max",
                "pids.max",
                "cpu.weight",
            ]
            .into_iter()
            .map(|name| -> Setup {
                Box::new(move |dir: &Path| {
                    remove_any(&dir.join(name));
                    fs::create_dir(dir.join(name)).expect("tmp")
                })
            })
            .collect(),
            vec![high, max, swap, tasks],
        ),
        (
            "a FIFO, /dev/zero and 10 MB of digits",
            vec![
                Box::new(|dir: &Path| {
                    remove_any(&dir.join("memory.max"));
                    mkfifo(&dir.join("memory.max"))
                }),
                Box::new(|dir: &Path| {
                    remove_any(&dir.join("memory.high"));
                    std::os::unix::fs::symlink("/dev/zero", dir.join("memory.high")).expect("tmp")
                }),
                Box::new(move |dir: &Path| fs::write(dir.join("pids.max"), &digits).expect("tmp")),
            ],
            vec![high, max, tasks],
        ),
        (
            "no slice directory",
            vec![Box::new(|dir: &Path| remove_any(dir))],
            // No memory.swap.max: the kernel accounts no swap, nothing to set.
            vec![high, max, tasks],
        ),
    ];
    for (what, setups, repaired) in &cases {
        remove_any(&slice);
        sb.set_slice(1001, &RIGHT);
        for setup in setups {
            setup(&slice);
        }
        let alice = login(&sb, "alice", "");
        expect_in(&alice, what);
        let calls = sb.fake().take_calls();
        assert_eq!(calls.len(), 1, "{what}: {calls:?}");
        assert_eq!(calls[0].method, "SetUnitProperties", "{what}");
        assert_eq!(calls[0].unit, "user-1001.slice", "{what}");
        assert_eq!(calls[0].properties, *repaired, "{what}");
        expect_logged(
            &alice,
            "uid 1001: user-1001.slice differed from the policy (",
            what,
        );
        expect_in(&login(&sb, "root", ""), &format!("{what}: root"));
        // Root leaves alice's slice for its own, uncapped: nothing of alice's is touched.
        units_named_by_uid(&sb.fake().take_calls(), 0, &format!("{what}: root"));
    }
    // The log says what it found, not "missing", when a file holds garbage.
    remove_any(&slice);
    sb.set_slice(
        1001,
        &SliceFiles {
            max: "banana",
            ..RIGHT
        },
    );
    let alice = login(&sb, "alice", "");
    expect_logged(
        &alice,
        "MemoryMax is unreadable (the cgroup file holds no limit), policy says 2G",
        "banana",
    );
    sb.fake().take_calls();

    // cgroup_root is not a directory at all; and garbage plus a refusal: per the policy.
    let not_a_dir = sb.dir.join("passwd");
    let arg = format!("cgroup_root={}", not_a_dir.display());
    let alice = login(&sb, "alice", &arg);
    expect_in(&alice, "cgroup_root is a file");
    assert_eq!(sb.fake().take_calls()[0].properties, [high, max, tasks]);
    sb.fake().answer(Answer::Refuse("Access denied".into()));
    expect_denied(&login(&sb, "alice", ""), "garbage, then systemd refuses");
    expect_in(&login(&sb, "root", ""), "garbage, refused: root");
}

/// Runs pamtester without the capabilities that let root read any file, so that a mode 000
/// file is unreadable even to the root this test runs as.
fn without_dac_override(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            // CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (linux/capability.h).
            for cap in [1, 2] {
                if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

#[test]
fn a_hostile_policy_file_means_the_built_in_default_and_root_in() {
    let _serial = serial();
    let sb = Sandbox::new("policy");
    let policy = sb.dir.join("etc/contain/policy.toml");
    let dropins = sb.dir.join("etc/contain/policy.d");
    let reset = || {
        remove_any(&policy);
        remove_any(&dropins);
        sb.set_policy(POLICY);
        fs::set_permissions(&policy, fs::Permissions::from_mode(0o644)).expect("chmod");
    };
    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }
    fn write(path: &Path, text: impl AsRef<[u8]>) {
        fs::write(path, text).expect("tmp");
    }
    fn symlink(target: &str, path: &Path) {
        std::os::unix::fs::symlink(target, path).expect("tmp");
    }
    type Setup = fn(&Path, &Path);
    // (what, make it hostile given the policy file and its drop-in dir, the reason the log must
    // give, whether it must be unreadable to root)
    let cases: [(&str, Setup, &str, bool); 12] = [
        (
            "group-writable",
            |p, _| chmod(p, 0o664),
            "mode 0664 lets group or others write it",
            false,
        ),
        (
            "world-writable",
            |p, _| chmod(p, 0o646),
            "mode 0646 lets group or others write it",
            false,
        ),
        (
            "owned by a user",
            |p, _| std::os::unix::fs::chown(p, Some(1001), None).expect("chown"),
            "owned by uid 1001, not root",
            false,
        ),
        (
            "10 MB",
            |p, _| write(p, format!("{POLICY}{}", "# padding\n".repeat(1 << 20))),
            "over the 1048576 byte limit",
            false,
        ),
        (
            "invalid",
            |p, _| write(p, "[users]\nmemory_max = \"2 bananas\"\n"),
            "policy.toml:2:",
            false,
        ),
        (
            "not UTF-8",
            |p, _| write(p, b"[users]\n\xff\xfe\n"),
            "not UTF-8 text",
            false,
        ),
        (
            "a directory",
            |p, _| {
                remove_any(p);
                fs::create_dir(p).expect("tmp")
            },
            "not a regular file",
            false,
        ),
        (
            "a FIFO",
            |p, _| {
                remove_any(p);
                mkfifo(p)
            },
            "not a regular file",
            false,
        ),
        (
            "a symlink to /dev/zero",
            |p, _| {
                remove_any(p);
                symlink("/dev/zero", p)
            },
            "not a regular file",
            false,
        ),
        (
            "a dangling symlink",
            |p, _| {
                remove_any(p);
                symlink("/nonexistent/policy.toml", p)
            },
            "cannot read",
            false,
        ),
        (
            "unreadable (mode 000)",
            |p, _| chmod(p, 0),
            "cannot read: Permission denied",
            true,
        ),
        (
            "an unreadable drop-in",
            |_, d| {
                fs::create_dir(d).expect("tmp");
                write(&d.join("10-x.toml"), "[users]\n");
                chmod(&d.join("10-x.toml"), 0);
            },
            "10-x.toml: cannot read: Permission denied",
            true,
        ),
    ];
    for (what, make, reason, unreadable) in &cases {
        reset();
        make(&policy, &dropins);
        sb.set_cgroup(ALICE_SESSION);
        sb.set_slice(1001, &RIGHT);
        let tune = |cmd: &mut Command| {
            if *unreadable {
                without_dac_override(cmd);
            }
        };
        let alice = login_with(&sb, "alice", "", tune);
        expect_in(&alice, what);
        expect_logged(
            &alice,
            "is invalid, enforcing the built-in default policy instead",
            what,
        );
        expect_logged(&alice, reason, what);
        // The default caps by shares of RAM: the test policy's 1G/2G slice is set to them.
        let calls = sb.fake().take_calls();
        assert_eq!(calls.len(), 1, "{what}: {calls:?}");
        assert_eq!(calls[0].unit, "user-1001.slice", "{what}");
        assert!(calls[0].sets("MemoryMaxScale"), "{what}: {calls:?}");
        let root = login_with(&sb, "root", "", tune);
        expect_in(&root, &format!("{what}: root"));
        // Root leaves alice's slice for its own, uncapped: nothing of alice's is touched.
        units_named_by_uid(&sb.fake().take_calls(), 0, &format!("{what}: root"));
    }
    reset();
}

#[test]
fn forged_job_removed_signals_from_another_bus_client_change_nothing() {
    let _serial = serial();
    let sb = Sandbox::new("forged");
    sb.fake().move_into(Some(sb.proc_cgroup()));
    // Any local user can send signals on the system bus, also to the module's own connection.
    sb.fake().forge_job_removed(Some("failed"));
    let run = login(&sb, "alice", "");
    expect_in(&run, "forged JobRemoved");
    let landed = format!("0::/user.slice/user-1001.slice/contain-1001-{}-", run.pid);
    assert!(
        sb.cgroup().starts_with(&landed),
        "landed in alice's slice: {}",
        sb.cgroup()
    );
    let calls = sb.fake().calls();
    units_named_by_uid(&calls, 1001, "forged JobRemoved");
    assert!(
        calls.iter().any(|c| c.method == "StartTransientUnit"),
        "{calls:?}"
    );
}
