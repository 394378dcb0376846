//! Users and their groups: NSS (getpwnam_r, getgrouplist) on the live box, the root's
//! /etc/passwd and /etc/group on a fixture tree.

use crate::host::Host;
use contain_policy::{Account, parse_accounts};
use std::ffi::{CStr, CString};

/// Looks a user up by login name.
pub fn by_name(host: &Host, name: &str) -> Option<Account> {
    if host.is_live() {
        return nss_by_name(name);
    }
    files(host).into_iter().find(|a| a.name == name)
}

/// Looks a user up by UID.
pub fn by_uid(host: &Host, uid: u32) -> Option<Account> {
    if host.is_live() {
        return nss_by_uid(uid);
    }
    files(host).into_iter().find(|a| a.uid == uid)
}

/// The local accounts, as the generator reads them (no NSS).
pub fn files(host: &Host) -> Vec<Account> {
    let read = |f: &str| host.read(f).unwrap_or_default();
    parse_accounts(&read("/etc/passwd"), &read("/etc/group"))
}

struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
}

fn nss_by_name(name: &str) -> Option<Account> {
    let c = CString::new(name).ok()?;
    let pw = getpw(|pwd, buf, len, res| unsafe {
        // SAFETY: every pointer is valid for the call; getpwnam_r writes only into them.
        libc::getpwnam_r(c.as_ptr(), pwd, buf, len, res)
    })?;
    Some(with_groups(pw))
}

fn nss_by_uid(uid: u32) -> Option<Account> {
    let pw = getpw(|pwd, buf, len, res| unsafe {
        // SAFETY: as above.
        libc::getpwuid_r(uid, pwd, buf, len, res)
    })?;
    Some(with_groups(pw))
}

fn getpw<F>(call: F) -> Option<Passwd>
where
    F: Fn(*mut libc::passwd, *mut libc::c_char, usize, *mut *mut libc::passwd) -> libc::c_int,
{
    let mut len = 4096;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        // SAFETY: an all-zero passwd is a valid out-parameter.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pwd, buf.as_mut_ptr(), len, &mut res);
        if rc == libc::ERANGE && len < 1 << 20 {
            len *= 4;
            continue;
        }
        if rc != 0 || res.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points into buf, NUL-terminated.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned();
        return Some(Passwd {
            name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        });
    }
}

fn with_groups(pw: Passwd) -> Account {
    let mut gids: Vec<libc::gid_t> = vec![0; 64];
    let Ok(cname) = CString::new(pw.name.clone()) else {
        return Account {
            name: pw.name,
            uid: pw.uid,
            groups: Vec::new(),
        };
    };
    loop {
        let mut n = gids.len() as libc::c_int;
        // SAFETY: gids has room for n entries; getgrouplist updates n.
        let rc = unsafe { libc::getgrouplist(cname.as_ptr(), pw.gid, gids.as_mut_ptr(), &mut n) };
        if rc < 0 && (n as usize) > gids.len() && gids.len() < 65536 {
            gids.resize(n as usize, 0);
            continue;
        }
        gids.truncate(n.max(0) as usize);
        break;
    }
    let groups = gids.into_iter().filter_map(group_name).collect();
    Account {
        name: pw.name,
        uid: pw.uid,
        groups,
    }
}

fn group_name(gid: libc::gid_t) -> Option<String> {
    let mut len = 4096;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        // SAFETY: an all-zero group is a valid out-parameter.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call.
        let rc = unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), len, &mut res) };
        if rc == libc::ERANGE && len < 1 << 20 {
            len *= 4;
            continue;
        }
        if rc != 0 || res.is_null() {
            return None;
        }
        // SAFETY: gr_name points into buf, NUL-terminated.
        return Some(
            unsafe { CStr::from_ptr(grp.gr_name) }
                .to_string_lossy()
                .into_owned(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nss_finds_root_with_its_group() {
        let root = nss_by_name("root").unwrap();
        assert_eq!(root.uid, 0);
        assert!(root.groups.contains(&"root".to_string()));
        assert_eq!(nss_by_uid(0).unwrap().name, "root");
        assert!(nss_by_name("no-such-user-contain").is_none());
    }
}
