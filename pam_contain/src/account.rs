//! PAM_USER → UID and group names through NSS (getpwnam_r, getgrouplist), so LDAP/SSSD users resolve.

use crate::decide::User;
use std::ffi::{CStr, CString};

/// The longest part of a user name the log shows.
const SHOWN_CHARS: usize = 64;

/// A user name as the log shows it: quoted, control characters escaped (no forged log lines, no
/// terminal escapes), and cut after [`SHOWN_CHARS`] characters with the full length said.
pub fn shown(name: &str) -> String {
    let count = name.chars().count();
    if count <= SHOWN_CHARS {
        return format!("{name:?}");
    }
    let head: String = name.chars().take(SHOWN_CHARS).collect();
    format!("{head:?}… ({} bytes)", name.len())
}

/// Looks the user up. `Err` says why, for the log.
pub fn lookup(name: &str) -> Result<User, String> {
    let cname = CString::new(name).map_err(|_| format!("user name {} contains a NUL byte", shown(name)))?;
    let (uid, gid) = passwd(&cname)?;
    let mut groups = Vec::new();
    for g in group_ids(&cname, gid) {
        if let Some(n) = group_name(g)
            && !groups.contains(&n)
        {
            groups.push(n);
        }
    }
    Ok(User {
        uid,
        name: name.to_string(),
        groups,
    })
}

/// Retries a `*_r` NSS call with a growing buffer while it says ERANGE.
fn with_buffer<T>(
    mut call: impl FnMut(&mut [libc::c_char]) -> Result<Option<T>, i32>,
) -> Result<Option<T>, i32> {
    let mut size = 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        match call(&mut buf) {
            Err(libc::ERANGE) if size < (1 << 20) => size *= 4,
            other => return other,
        }
    }
}

fn passwd(name: &CStr) -> Result<(u32, u32), String> {
    let found = with_buffer(|buf| {
        // SAFETY: an all-zero passwd is a valid value to be filled in.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf's length is passed with it.
        let rc =
            unsafe { libc::getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) };
        match (rc, result.is_null()) {
            (0, true) => Ok(None),
            (0, false) => Ok(Some((pw.pw_uid, pw.pw_gid))),
            // POSIX lets "not found" come back as one of these too (nss_wrapper does).
            (libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM, _) => Ok(None),
            (e, _) => Err(e),
        }
    });
    match found {
        Ok(Some(ids)) => Ok(ids),
        Ok(None) => Err(format!(
            "no such user {} (getpwnam)",
            shown(&name.to_string_lossy())
        )),
        Err(e) => Err(format!(
            "cannot look up user {}: {}",
            shown(&name.to_string_lossy()),
            std::io::Error::from_raw_os_error(e)
        )),
    }
}

fn group_ids(name: &CStr, gid: u32) -> Vec<u32> {
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let asked = n;
        // SAFETY: groups has room for n entries; n is updated with the count needed.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n.max(0) as usize);
            return groups;
        }
        if n <= asked {
            n = asked * 2;
        }
        if n > 65_536 {
            return vec![gid];
        }
    }
}

fn group_name(gid: u32) -> Option<String> {
    with_buffer(|buf| {
        // SAFETY: as for passwd above.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf's length is passed with it.
        let rc = unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr(), buf.len(), &mut result) };
        match (rc, result.is_null()) {
            (0, true) => Ok(None),
            // SAFETY: on success gr_name points into buf, NUL-terminated.
            (0, false) => Ok(Some(
                unsafe { CStr::from_ptr(gr.gr_name) }
                    .to_string_lossy()
                    .into_owned(),
            )),
            (e, _) => Err(e),
        }
    })
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves_with_its_group() {
        let root = lookup("root").expect("root exists everywhere");
        assert_eq!(root.uid, 0);
        assert!(root.groups.contains(&"root".to_string()), "{:?}", root.groups);
    }

    #[test]
    fn unknown_users_are_an_error() {
        let err = lookup("no-such-user-contain-test").expect_err("unknown");
        assert!(err.contains("no such user"), "{err}");
        assert!(lookup("a\0b").is_err());
    }

    #[test]
    fn names_are_shown_escaped_and_bounded() {
        assert_eq!(shown("alice"), "\"alice\"");
        assert_eq!(shown("a\nb\u{1b}[31m"), "\"a\\nb\\u{1b}[31m\"");
        let long = "x".repeat(300);
        assert_eq!(shown(&long), format!("\"{}\"… (300 bytes)", "x".repeat(64)));
    }
}
