//! Linux-PAM driven from inside the test process, as sshd drives it: pam_start_confdir with a
//! service directory, a conversation that records what the user would be shown, and the
//! process's thread list (a PAM call must leave no thread behind).

use contain_systemd::fake::FakeSystemd;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::fs;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::Mutex;

#[repr(C)]
pub struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
pub struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

#[repr(C)]
pub struct PamConv {
    conv: extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int,
    appdata: *mut c_void,
}

#[link(name = "pam")]
unsafe extern "C" {
    pub fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut c_void,
    ) -> c_int;
    pub fn pam_set_item(pamh: *mut c_void, item: c_int, value: *const c_void) -> c_int;
    pub fn pam_open_session(pamh: *mut c_void, flags: c_int) -> c_int;
    pub fn pam_close_session(pamh: *mut c_void, flags: c_int) -> c_int;
    pub fn pam_end(pamh: *mut c_void, status: c_int) -> c_int;
}

pub const PAM_SUCCESS: c_int = 0;
pub const PAM_PERM_DENIED: c_int = 6;
pub const PAM_SYSTEM_ERR: c_int = 4;
pub const PAM_TTY: c_int = 3;
pub const PAM_TEXT_INFO: c_int = 4;

pub static SHOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records TEXT_INFO lines, as a terminal would show them.
pub extern "C" fn conversation(
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

pub fn threads() -> Vec<String> {
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

/// The ids of this process's threads.
pub fn task_ids() -> std::collections::BTreeSet<u32> {
    fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// One pam_start … pam_end cycle for `user`, returning open_session's result.
pub fn login(confdir: &Path, user: &str, tty: Option<&str>) -> c_int {
    login_as(confdir, Some(user.as_bytes()), tty)
}

/// [`login`] with any bytes as PAM_USER, or none at all (`pam_start` with a NULL user).
pub fn login_as(confdir: &Path, user: Option<&[u8]>, tty: Option<&str>) -> c_int {
    let conv = PamConv {
        conv: conversation,
        appdata: ptr::null_mut(),
    };
    let service = CString::new("contain").expect("c string");
    let user = user.map(|u| CString::new(u).expect("a user name without NUL"));
    let user_ptr = user.as_ref().map_or(ptr::null(), |u| u.as_ptr());
    let dir = CString::new(confdir.as_os_str().as_encoded_bytes()).expect("c string");
    let mut pamh: *mut c_void = ptr::null_mut();
    // SAFETY: all pointers are valid C strings / structs (or NULL, which pam_start accepts for
    // the user) for the duration of the calls.
    unsafe {
        let rc = pam_start_confdir(service.as_ptr(), user_ptr, &conv, dir.as_ptr(), &mut pamh);
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

/// [`super::module_root`] for a test that loads the module in this process, and a fake systemd
/// the module is pointed at. The bus address is process-wide: the caller is the only test in
/// its binary.
pub fn host_root(name: &str, policy: &str) -> (PathBuf, FakeSystemd) {
    let dir = super::module_root(name, policy);
    let fake = FakeSystemd::start().expect("dbus-daemon and the fake systemd start");
    // SAFETY: the only test in its binary, set before any module call reads it.
    unsafe { std::env::set_var("CONTAIN_SYSTEM_BUS_ADDRESS", fake.address()) };
    (dir, fake)
}

/// The service `contain` in `dir`: this build's module, required, with its timeout, the root
/// and `extra` arguments.
pub fn write_service(dir: &Path, timeout_ms: u64, extra: &str) {
    let line = format!(
        "session required {} timeout={timeout_ms} root={} {extra}\n",
        super::module_path().display(),
        dir.display(),
    );
    fs::write(dir.join("contain"), line).expect("service file");
}
