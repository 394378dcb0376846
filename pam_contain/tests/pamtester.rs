//! The built module in real Linux-PAM (pamtester under pam_wrapper), talking to a fake systemd
//! on a private dbus-daemon. Accounts come from nss_wrapper files: nothing on the host changes.

mod common;

use common::*;
use contain_systemd::fake::Answer;
use std::fs;
use std::time::Duration;

const SCOPE_PROPS_TAIL: [&str; 2] = [
    "Description=contain: session in user-1002.slice",
    "CollectMode=inactive-or-failed",
];

#[test]
fn in_slice_with_the_right_caps_asks_systemd_nothing() {
    let _serial = serial();
    let sb = Sandbox::new("inplace");
    sb.set_cgroup("/user.slice/user-1001.slice/session-4.scope");
    sb.set_slice(1001, &RIGHT);
    let run = sb.pamtester("alice", &[], "");
    run.assert_ok();
    assert_eq!(sb.fake().calls(), [], "nothing to ask systemd");
    assert!(
        run.logged("uid 1001: in user-1001.slice with the policy's caps"),
        "{:?}",
        run.log()
    );
    assert!(
        run.logged("session closed for \"alice\"; nothing to undo"),
        "{:?}",
        run.log()
    );
}

#[test]
fn in_slice_with_other_caps_sets_exactly_the_differing_ones() {
    let _serial = serial();
    let sb = Sandbox::new("repair");
    sb.set_cgroup("/user.slice/user-1001.slice/session-4.scope");
    sb.set_slice(
        1001,
        &SliceFiles {
            max: "max",
            pids: "10813",
            ..RIGHT
        },
    );
    let run = sb.pamtester("alice", &[], "");
    run.assert_ok();
    let calls = sb.fake().calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].method, "SetUnitProperties");
    assert_eq!(calls[0].unit, "user-1001.slice");
    assert_eq!(calls[0].detail, "runtime=true");
    assert_eq!(calls[0].properties, ["MemoryMax=2147483648", "TasksMax=512"]);
    assert!(
        run.logged(
            "uid 1001: user-1001.slice differed from the policy (MemoryMax is infinity, policy says 2G; \
             TasksMax is 10813, policy says 512); set at runtime: MemoryMax=2147483648 TasksMax=512"
        ),
        "{:?}",
        run.log()
    );
}

#[test]
fn a_per_user_override_is_enforced_at_login() {
    let _serial = serial();
    let sb = Sandbox::new("override");
    // Carol (think LDAP: no generator drop-in) got only the [users] caps from user-.slice.d.
    sb.set_cgroup("/user.slice/user-5001.slice/session-2.scope");
    sb.set_slice(5001, &RIGHT);
    let run = sb.pamtester("carol", &[], "");
    run.assert_ok();
    let calls = sb.fake().calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].unit, "user-5001.slice");
    assert_eq!(calls[0].properties, [format!("MemoryMax={}", 3 * GIB)]);
}

#[test]
fn a_policy_edited_between_logins_applies_at_the_next_one() {
    let _serial = serial();
    let sb = Sandbox::new("edit");
    sb.set_cgroup("/user.slice/user-5001.slice/session-2.scope");
    sb.set_slice(5001, &RIGHT);
    let compiled = sb.dir.join("run/contain/policy.compiled");
    let carol_gets = |gib: u64, compiled_used: bool| {
        let run = sb.pamtester("carol", &[], "");
        run.assert_ok();
        assert_eq!(
            run.logged("compiled policy not used"),
            !compiled_used,
            "{:?}",
            run.log()
        );
        let calls = sb.fake().calls();
        let last = calls.last().expect("a call");
        assert_eq!(last.properties, [format!("MemoryMax={}", gib * GIB)], "{calls:?}");
    };
    // A policy written this very second is not compiled yet (a second edit could share its
    // timestamps); an admin's edit is older than that by the next login.
    carol_gets(3, false);
    assert!(!compiled.exists());
    std::thread::sleep(Duration::from_millis(1100));
    // The first login then parses the policy and compiles it; the next reads the compiled form.
    carol_gets(3, false);
    assert!(compiled.exists());
    carol_gets(3, true);
    // An edit of the same size, in place: the next login applies it.
    sb.set_policy(&POLICY.replace("\"3G\"", "\"4G\""));
    carol_gets(4, false);
    std::thread::sleep(Duration::from_millis(1100));
    carol_gets(4, false);
    carol_gets(4, true);
    // A compiled file that is not one (corrupt, another policy's) is passed over, not obeyed.
    fs::write(&compiled, "contain-compiled-policy 1\nidentity x\n").expect("corrupt");
    carol_gets(4, false);
}

#[test]
fn outside_the_slice_the_process_moves_into_a_scope_there() {
    let _serial = serial();
    let sb = Sandbox::new("scope");
    // cron: pam_systemd is not in the non-interactive stack; bob's slice does not exist yet.
    sb.set_cgroup("/system.slice/cron.service");
    sb.fake().move_into(Some(sb.proc_cgroup()));
    let run = sb.pamtester("bob", &[], "");
    run.assert_ok();
    let calls = sb.fake().calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    // Named by UID, PID and the time since boot: a scope left by an earlier holder of the PID
    // cannot collide with it.
    let scope = calls[0].unit.clone();
    assert!(
        scope.starts_with(&format!("contain-1002-{}-", run.pid)),
        "{scope}"
    );
    assert_eq!(calls[0].method, "StartTransientUnit");
    assert_eq!(calls[0].detail, "mode=replace");
    let mut expected = vec!["Slice=user-1002.slice".to_string(), format!("PIDs={}", run.pid)];
    expected.extend(SCOPE_PROPS_TAIL.map(String::from));
    assert_eq!(calls[0].properties, expected);
    // The new slice shows no caps yet in cgroupfs: they are set at runtime after the move
    // (CPUWeight=100 is the kernel's default, already in force).
    assert_eq!(calls[1].method, "SetUnitProperties");
    assert_eq!(calls[1].unit, "user-1002.slice");
    assert_eq!(
        calls[1].properties,
        ["MemoryHigh=1073741824", "MemoryMax=2147483648", "TasksMax=512",]
    );
    assert_eq!(
        sb.cgroup(),
        format!("0::/user.slice/user-1002.slice/{scope}\n"),
        "the fake moved the process"
    );
    assert!(
        run.logged(&format!(
            "uid 1002: moved pid {} from /system.slice/cron.service to user-1002.slice/{scope}",
            run.pid
        )),
        "{:?}",
        run.log()
    );
}

#[test]
fn a_login_as_the_users_slice_stops_keeps_it() {
    let _serial = serial();
    let sb = Sandbox::new("stopping");
    // `sudo -u bob` as bob's last unit ends: systemd has queued the stop of his slice.
    sb.set_cgroup("/user.slice/user-1001.slice/session-4.scope");
    sb.set_slice(1002, &RIGHT);
    sb.fake().slice_stopping(Some("user-1002.slice"));
    sb.fake().move_into(Some(sb.proc_cgroup()));
    let run = sb.pamtester("bob", &[], "");
    run.assert_ok();
    let scope = &sb.fake().calls()[0].unit;
    assert_eq!(sb.cgroup(), format!("0::/user.slice/user-1002.slice/{scope}\n"));
}

#[test]
fn su_from_another_users_session_moves_to_the_target_slice() {
    let _serial = serial();
    let sb = Sandbox::new("su");
    // `su bob` inside alice's ssh session; bob's slice already exists with the right caps.
    sb.set_cgroup("/user.slice/user-1001.slice/session-4.scope");
    sb.set_slice(1002, &RIGHT);
    sb.fake().move_into(Some(sb.proc_cgroup()));
    let run = sb.pamtester("bob", &["tty=/dev/pts/1"], "");
    run.assert_ok();
    let calls = sb.fake().calls();
    assert_eq!(calls.len(), 1, "caps are right, only the move: {calls:?}");
    assert!(calls[0].unit.starts_with(&format!("contain-1002-{}-", run.pid)));
    assert_eq!(calls[0].properties[0], "Slice=user-1002.slice");
}

#[test]
fn root_and_exempt_accounts_leave_a_capped_users_session_uncapped() {
    let _serial = serial();
    let sb = Sandbox::new("rootway");
    sb.set_policy(&POLICY.replace(
        "exempt_uid_below = 1000",
        "exempt_uid_below = 1000\nexempt_users = [\"carol\"]",
    ));
    // `sudo -i` / `su -` from alice's session: root's shell must not live under alice's caps.
    sb.set_cgroup("/user.slice/user-1001.slice/session-4.scope");
    sb.fake().move_into(Some(sb.proc_cgroup()));
    let run = sb.pamtester("root", &[], "");
    run.assert_ok();
    let calls = sb.fake().take_calls();
    assert_eq!(calls.len(), 1, "a move, nothing set on alice's slice: {calls:?}");
    assert_eq!(calls[0].method, "StartTransientUnit");
    assert!(
        calls[0].unit.starts_with(&format!("contain-0-{}-", run.pid)),
        "{calls:?}"
    );
    assert_eq!(calls[0].properties[0], "Slice=user-0.slice");
    assert!(
        sb.cgroup().starts_with("0::/user.slice/user-0.slice/contain-0-"),
        "{}",
        sb.cgroup()
    );
    // `sudo -u carol` (listed in exempt_users): into carol's own slice, whose template caps
    // (the generator never saw carol at boot) are lifted.
    sb.set_cgroup("/user.slice/user-1001.slice/session-4.scope");
    sb.set_slice(5001, &RIGHT);
    let run = sb.pamtester("carol", &[], "");
    run.assert_ok();
    let calls = sb.fake().take_calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(methods, ["StartTransientUnit", "SetUnitProperties"], "{calls:?}");
    assert_eq!(calls[1].unit, "user-5001.slice");
    assert_eq!(
        calls[1].properties,
        [
            "MemoryHigh=infinity",
            "MemoryMax=infinity",
            "MemorySwapMax=infinity",
            "TasksMax=infinity"
        ]
    );
    assert!(
        run.logged("uid 5001: user-5001.slice belongs to an exempt account: caps lifted"),
        "{:?}",
        run.log()
    );
    // carol's own ssh login, slice already lifted: nothing to ask systemd.
    sb.set_cgroup("/user.slice/user-5001.slice/session-9.scope");
    sb.set_slice(
        5001,
        &SliceFiles {
            high: "max",
            max: "max",
            swap: "max",
            pids: "max",
            cpu_weight: "100",
        },
    );
    sb.pamtester("carol", &[], "").assert_ok();
    assert_eq!(sb.fake().take_calls(), []);
    // A capped user keeps today's behaviour: `su - bob` from alice lands in bob's slice.
    sb.set_cgroup("/user.slice/user-1001.slice/session-4.scope");
    sb.set_slice(1002, &RIGHT);
    sb.pamtester("bob", &[], "").assert_ok();
    let calls = sb.fake().take_calls();
    assert_eq!(calls[0].properties[0], "Slice=user-1002.slice", "{calls:?}");
}

#[test]
fn a_scope_that_does_not_hold_the_process_is_a_failure() {
    let _serial = serial();
    let sb = Sandbox::new("notmoved");
    // systemd says done, but the process is still where it was.
    sb.fake().move_into(None);
    let run = sb.pamtester("alice", &[], "");
    run.assert_denied();
    assert!(
        run.logged("shows this process in /system.slice/cron.service"),
        "{:?}",
        run.log()
    );
    assert!(run.logged("session DENIED"), "{:?}", run.log());
}

#[test]
fn a_failed_job_denies_with_its_result() {
    let _serial = serial();
    let sb = Sandbox::new("jobfail");
    sb.fake().answer(Answer::JobResult("failed".into()));
    let run = sb.pamtester("alice", &[], "");
    run.assert_denied();
    assert!(run.logged("ended with result `failed`"), "{:?}", run.log());
}

#[test]
fn a_dead_bus_denies_users_but_never_root_or_never_deny_groups() {
    let _serial = serial();
    let mut sb = Sandbox::new("deadbus");
    sb.kill_bus();
    let alice = sb.pamtester("alice", &[], "");
    alice.assert_denied();
    assert!(
        alice.logged(
            "uid 1001: cannot place the session in user-1001.slice: cannot connect to the system bus"
        ),
        "{:?}",
        alice.log()
    );
    assert!(alice.logged("check `systemctl status dbus`"), "{:?}", alice.log());

    // Root is never capped: no bus needed.
    sb.pamtester("root", &[], "").assert_ok();

    // Bob is in the never-deny group `sudo`: let in, uncapped, with a warning.
    let bob = sb.pamtester("bob", &[], "");
    bob.assert_ok();
    assert!(
        bob.logged("session allowed UNCAPPED (root and login.never_deny_* are never denied)"),
        "{:?}",
        bob.log()
    );

    // A policy that allows on failure lets alice in, with the same warning.
    sb.set_policy(&POLICY.replace("on_failure = \"deny\"", "on_failure = \"allow\""));
    let alice = sb.pamtester("alice", &[], "");
    alice.assert_ok();
    assert!(
        alice.logged("session allowed UNCAPPED (login.on_failure = \"allow\")"),
        "{:?}",
        alice.log()
    );
}

#[test]
fn systemd_that_never_answers_is_cut_off_by_the_timeout() {
    let _serial = serial();
    let sb = Sandbox::new("timeout");
    sb.fake().answer(Answer::Never);
    let run = sb.pamtester("alice", &[], "timeout=300");
    run.assert_denied();
    assert!(
        run.took >= Duration::from_millis(300) && run.took < Duration::from_secs(3),
        "took {:?}",
        run.took
    );
    assert!(run.logged("no answer from systemd within"), "{:?}", run.log());
}

#[test]
fn notices_are_shown_once_at_an_interactive_login() {
    let _serial = serial();
    let sb = Sandbox::new("notices");
    sb.set_cgroup("/user.slice/user-1001.slice/session-4.scope");
    sb.set_slice(1001, &RIGHT);
    let file = sb.dir.join("var/lib/contain/notices/1001");
    let text = "contain: your process 4242 (python3) was ended at 12:01: it sat throttled at MemoryHigh 1G for 10s\n\
                contain: second notice\n";
    fs::write(&file, text).expect("notice");

    // Not a terminal (cron): kept for later.
    let run = sb.pamtester("alice", &["tty=cron"], "");
    run.assert_ok();
    assert!(!run.stdout.contains("contain: your process"), "{}", run.stdout);
    assert!(file.exists(), "kept for an interactive login");

    // sshd before it knows about a pty: shown (sshd prints it on a terminal login), and kept,
    // since `ssh host cmd` would drop it unseen.
    let run = sb.pamtester("alice", &["tty=ssh"], "");
    run.assert_ok();
    assert!(run.stdout.contains("contain: second notice"), "{}", run.stdout);
    assert!(file.exists(), "kept: sshd may not have shown it");

    let run = sb.pamtester("alice", &["tty=/dev/pts/0"], "");
    run.assert_ok();
    assert!(
        run.stdout
            .contains("contain: your process 4242 (python3) was ended at 12:01")
            && run.stdout.contains("contain: second notice"),
        "stdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    assert!(!file.exists(), "removed once shown");
}

#[test]
fn notices_shown_to_sshd_expire_after_a_day() {
    let _serial = serial();
    let sb = Sandbox::new("notices-expire");
    sb.set_cgroup("/user.slice/user-1001.slice/session-4.scope");
    sb.set_slice(1001, &RIGHT);
    let file = sb.dir.join("var/lib/contain/notices/1001");
    fs::write(&file, "contain: an old notice\n").expect("notice");
    let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(25 * 3600);
    fs::File::options()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_modified(day_ago))
        .expect("mtime");
    let run = sb.pamtester("alice", &["tty=ssh"], "");
    run.assert_ok();
    assert!(run.stdout.contains("contain: an old notice"), "{}", run.stdout);
    assert!(!file.exists(), "a day-old notice is removed once shown");
}

#[test]
fn an_invalid_policy_falls_back_to_the_default_with_a_warning() {
    let _serial = serial();
    let sb = Sandbox::new("badpolicy");
    sb.set_policy("[users]\nmemory_maxx = \"2G\"\n");
    sb.set_cgroup("/user.slice/user-1001.slice/session-4.scope");
    sb.set_slice(1001, &RIGHT);
    let run = sb.pamtester("alice", &[], "");
    run.assert_ok();
    assert!(
        run.logged("is invalid, enforcing the built-in default policy instead"),
        "{:?}",
        run.log()
    );
    // The built-in default caps by shares of RAM: the 2G slice is repaired to them.
    let calls = sb.fake().calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].sets("MemoryMaxScale"), "{calls:?}");
}

#[test]
fn unknown_users_follow_the_failure_policy() {
    let _serial = serial();
    let sb = Sandbox::new("nouser");
    let run = sb.pamtester("nobody-here", &[], "");
    run.assert_denied();
    assert!(run.logged("no such user \"nobody-here\""), "{:?}", run.log());
}

#[test]
fn a_module_file_gone_from_the_stack_locks_nobody_out() {
    // The package removed while pam-auth-update kept its line: the control skips the line.
    let _serial = serial();
    let sb = Sandbox::new("gone");
    let gone = sb.dir.join("pam_contain_removed.so");
    for user in ["alice", "root"] {
        let cmd = sb.command(user, &[], "");
        let svc = sb.dir.join("svc/contain");
        let line = fs::read_to_string(&svc).expect("service file");
        let moved = line.replace(&module_path().display().to_string(), &gone.display().to_string());
        assert_ne!(line, moved);
        fs::write(&svc, format!("{moved}session required pam_permit.so\n")).expect("service file");
        let run = run(cmd);
        run.assert_ok();
        assert!(run.logged("unable to dlopen"), "{:?}", run.log());
    }
    assert_eq!(sb.fake().calls(), [], "no module, no calls");
}
