//! The module loaded into this very process by Linux-PAM (pam_start_confdir), as sshd loads it:
//! no call may leave a thread behind (sshd forks right after; a thread alive then can hold a
//! lock the child needs), a panic inside fails the call and leaves the host running, and
//! notices reach the conversation function. One test: the thread count is per process.

mod common;

use common::in_process::*;
use common::*;
use contain_systemd::fake::Answer;
use std::fs;

const TIMEOUT_MS: u64 = 400;

#[test]
fn the_module_inside_a_host_process() {
    require_tools();
    // A real account that exists on every Debian system; the policy caps uid >= 1000.
    let nobody = 65534;
    let (dir, fake) = host_root("host", POLICY);
    let proc_cgroup = dir.join("proc/self/cgroup");
    write_service(&dir, TIMEOUT_MS, "");
    let set_cgroup = |path: &str| fs::write(&proc_cgroup, format!("0::{path}\n")).expect("proc_cgroup");
    let slice = format!("/user.slice/user-{nobody}.slice");

    // Warm up: libpam, the module and NSS are loaded once, as in a long-running sshd.
    set_cgroup(&format!("{slice}/session-1.scope"));
    login(&dir, "root", None);
    // Root, in nobody's slice here, left it for its own: not what this test is about.
    fake.take_calls();
    let base = threads();

    // 1. Needs a scope: StartTransientUnit, the job's signal, then a repair of the new slice.
    set_cgroup("/system.slice/cron.service");
    fake.move_into(Some(proc_cgroup.clone()));
    assert_eq!(login(&dir, "nobody", None), PAM_SUCCESS);
    let calls = fake.take_calls();
    assert_eq!(
        calls.iter().map(|c| c.method.as_str()).collect::<Vec<_>>(),
        ["StartTransientUnit", "SetUnitProperties"]
    );
    let prefix = format!("contain-{nobody}-{}-", std::process::id());
    assert!(calls[0].unit.starts_with(&prefix), "{:?}", calls[0].unit);
    assert_eq!(threads(), base, "after a scope");

    // 2. In the slice with other caps: a repair.
    set_cgroup(&format!("{slice}/session-1.scope"));
    assert_eq!(login(&dir, "nobody", None), PAM_SUCCESS);
    assert_eq!(fake.take_calls().len(), 1);
    assert_eq!(threads(), base, "after a repair");

    // 3. systemd never answers: denied after the timeout, and nothing stays behind.
    fake.answer(Answer::Never);
    assert_eq!(login(&dir, "nobody", None), PAM_PERM_DENIED);
    assert_eq!(threads(), base, "after a timeout");
    fake.answer(Answer::Done);
    fake.take_calls();

    // 4. Notices reach the conversation at a terminal login, then are gone.
    let notice = dir.join(format!("var/lib/contain/notices/{nobody}"));
    fs::write(&notice, "contain: your process 7 (cc1plus) was ended\n").expect("notice");
    assert_eq!(login(&dir, "nobody", Some("/dev/pts/3")), PAM_SUCCESS);
    assert_eq!(
        *SHOWN.lock().unwrap_or_else(|p| p.into_inner()),
        ["contain: your process 7 (cc1plus) was ended"]
    );
    assert!(!notice.exists());

    // 5. A panic inside the module fails this call, never root's; the host lives on and the
    // next call works.
    write_service(&dir, TIMEOUT_MS, "panic_for_test");
    let rc = login(&dir, "nobody", None);
    assert_eq!(rc, PAM_SYSTEM_ERR, "a panic must not pass as success");
    assert_eq!(
        login(&dir, "root", None),
        PAM_SUCCESS,
        "a panic never locks root out"
    );
    write_service(&dir, TIMEOUT_MS, "");
    assert_eq!(
        login(&dir, "nobody", None),
        PAM_SUCCESS,
        "the host and the module still work"
    );
    assert_eq!(threads(), base, "after a panic");

    // 6. No bus at all.
    drop(fake);
    assert_eq!(login(&dir, "nobody", None), PAM_PERM_DENIED);
    assert_eq!(login(&dir, "root", None), PAM_SUCCESS);
    let _ = fs::remove_dir_all(&dir);
}
