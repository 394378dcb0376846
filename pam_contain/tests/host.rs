//! The module loaded into this very process by Linux-PAM (pam_start_confdir), as sshd loads it:
//! no call may leave a thread behind (sshd forks right after; a thread alive then can hold a
//! lock the child needs), a panic inside fails the call and leaves the host running, and
//! notices reach the conversation function. One test: the thread count is per process.

mod common;

use common::*;
use contain_systemd::fake::{Answer, FakeSystemd};
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::fs;
use std::ptr;
use std::sync::Mutex;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

#[repr(C)]
struct PamConv {
    conv: extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int,
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
    fn pam_set_item(pamh: *mut c_void, item: c_int, value: *const c_void) -> c_int;
    fn pam_open_session(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_close_session(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut c_void, status: c_int) -> c_int;
}

const PAM_SUCCESS: c_int = 0;
const PAM_SESSION_ERR: c_int = 14;
const PAM_TTY: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;

static SHOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records TEXT_INFO lines, as a terminal would show them.
extern "C" fn conversation(
    n: c_int,
    msgs: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    _appdata: *mut c_void,
) -> c_int {
    let n = n.max(0) as usize;
    // SAFETY: Linux-PAM passes n messages; the reply array is malloc'd as it frees it.
    unsafe {
        let replies = libc::calloc(n, std::mem::size_of::<PamResponse>()) as *mut PamResponse;
        for i in 0..n {
            let m = &**msgs.add(i);
            if m.msg_style == PAM_TEXT_INFO {
                let text = CStr::from_ptr(m.msg).to_string_lossy().into_owned();
                SHOWN.lock().unwrap_or_else(|p| p.into_inner()).push(text);
            }
        }
        *resp = replies;
    }
    PAM_SUCCESS
}

fn threads() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| e.ok())
        .map(|e| {
            fs::read_to_string(e.path().join("comm"))
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect();
    names.sort();
    names
}

/// One pam_start … pam_end cycle for `user`, returning open_session's result.
fn login(confdir: &std::path::Path, user: &str, tty: Option<&str>) -> c_int {
    let conv = PamConv {
        conv: conversation,
        appdata: ptr::null_mut(),
    };
    let service = CString::new("contain").expect("c string");
    let user = CString::new(user).expect("c string");
    let dir = CString::new(confdir.as_os_str().as_encoded_bytes()).expect("c string");
    let mut pamh: *mut c_void = ptr::null_mut();
    // SAFETY: all pointers are valid C strings / structs for the duration of the calls.
    unsafe {
        let rc = pam_start_confdir(service.as_ptr(), user.as_ptr(), &conv, dir.as_ptr(), &mut pamh);
        assert_eq!(rc, PAM_SUCCESS, "pam_start_confdir");
        if let Some(tty) = tty {
            let tty = CString::new(tty).expect("c string");
            pam_set_item(pamh, PAM_TTY, tty.as_ptr().cast());
        }
        let rc = pam_open_session(pamh, 0);
        if rc == PAM_SUCCESS {
            assert_eq!(pam_close_session(pamh, 0), PAM_SUCCESS);
        }
        pam_end(pamh, rc);
        rc
    }
}

#[test]
fn the_module_inside_a_host_process() {
    require_tools();
    // A real account that exists on every Debian system; the policy caps uid >= 1000.
    let nobody = 65534;
    let dir = std::env::temp_dir().join(format!("pam-contain-host-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("cg/user.slice")).expect("tmp");
    fs::create_dir_all(dir.join("notices")).expect("tmp");
    fs::write(dir.join("policy.toml"), POLICY).expect("policy");
    let proc_cgroup = dir.join("proc_cgroup");
    let fake = FakeSystemd::start().expect("dbus-daemon and the fake systemd start");
    // SAFETY: the only test in this binary, and set before any thread reads it.
    unsafe { std::env::set_var("CONTAIN_SYSTEM_BUS_ADDRESS", fake.address()) };
    let write_service = |extra: &str| {
        let line = format!(
            "session required {} timeout=400 policy={} cgroup_root={} proc_cgroup={} notices={} {extra}\n",
            module_path().display(),
            dir.join("policy.toml").display(),
            dir.join("cg").display(),
            proc_cgroup.display(),
            dir.join("notices").display(),
        );
        fs::write(dir.join("contain"), line).expect("service file");
    };
    write_service("");
    let set_cgroup = |path: &str| fs::write(&proc_cgroup, format!("0::{path}\n")).expect("proc_cgroup");
    let slice = format!("/user.slice/user-{nobody}.slice");

    // Warm up: libpam, the module and NSS are loaded once, as in a long-running sshd.
    set_cgroup(&format!("{slice}/session-1.scope"));
    login(&dir, "root", None);
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
    assert_eq!(
        calls[0].unit,
        format!("contain-{nobody}-{}.scope", std::process::id())
    );
    assert_eq!(threads(), base, "after a scope");

    // 2. In the slice with other caps: a repair.
    set_cgroup(&format!("{slice}/session-1.scope"));
    assert_eq!(login(&dir, "nobody", None), PAM_SUCCESS);
    assert_eq!(fake.take_calls().len(), 1);
    assert_eq!(threads(), base, "after a repair");

    // 3. systemd never answers: denied after the timeout, and nothing stays behind.
    fake.answer(Answer::Never);
    assert_eq!(login(&dir, "nobody", None), PAM_SESSION_ERR);
    assert_eq!(threads(), base, "after a timeout");
    fake.answer(Answer::Done);
    fake.take_calls();

    // 4. Notices reach the conversation at a terminal login, then are gone.
    let notice = dir.join(format!("notices/{nobody}"));
    fs::write(&notice, "contain: your process 7 (cc1plus) was ended\n").expect("notice");
    assert_eq!(login(&dir, "nobody", Some("/dev/pts/3")), PAM_SUCCESS);
    assert_eq!(
        *SHOWN.lock().unwrap_or_else(|p| p.into_inner()),
        ["contain: your process 7 (cc1plus) was ended"]
    );
    assert!(!notice.exists());

    // 5. A panic inside the module fails this call; the host lives on and the next call works.
    write_service("panic_for_test");
    let rc = login(&dir, "nobody", None);
    assert_ne!(rc, PAM_SUCCESS, "a panic must not pass as success");
    write_service("");
    assert_eq!(
        login(&dir, "nobody", None),
        PAM_SUCCESS,
        "the host and the module still work"
    );
    assert_eq!(threads(), base, "after a panic");

    // 6. No bus at all.
    drop(fake);
    assert_eq!(login(&dir, "nobody", None), PAM_SESSION_ERR);
    assert_eq!(login(&dir, "root", None), PAM_SUCCESS);
    let _ = fs::remove_dir_all(&dir);
}
