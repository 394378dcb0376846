//! Accounts as the system knows them: NSS (files, SSSD, LDAP …) on a live box, the root's
//! /etc/passwd and /etc/group on a fixture tree. Every NSS lookup runs in a short-lived child
//! process that is killed at the deadline: a hung directory cannot hang a login or a daemon,
//! and no thread is left behind.

use crate::root::Root;
pub use contain_policy::Account;
use contain_policy::parse_accounts;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Gid, Group, Uid, User, fork, getgrouplist, pipe2};
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

/// The longest part of a user name messages show.
const SHOWN_CHARS: usize = 64;
/// The most a lookup's answer may hold (a user in thousands of groups is still far below).
const MAX_ANSWER: usize = 4 << 20;

/// A user name as messages show it: quoted, control characters escaped (no forged log lines, no
/// terminal escapes), and cut after [`SHOWN_CHARS`] characters with the full length said.
pub fn shown(name: &str) -> String {
    let count = name.chars().count();
    if count <= SHOWN_CHARS {
        return format!("{name:?}");
    }
    let head: String = name.chars().take(SHOWN_CHARS).collect();
    format!("{head:?}… ({} bytes)", name.len())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// NSS answered: no such account.
    NotFound(String),
    /// NSS failed (a directory unreachable, a bad name).
    Failed(String),
    /// No answer within the time given.
    TimedOut { what: String, after: Duration },
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NotFound(what) => write!(f, "no such user {what}"),
            LookupError::Failed(why) => f.write_str(why),
            LookupError::TimedOut { what, after } => write!(
                f,
                "looking up {what} took longer than {} ms (is the directory service — sssd, nslcd — hung?)",
                after.as_millis()
            ),
        }
    }
}

/// What the child process sends back.
#[derive(Serialize, Deserialize)]
enum Answer {
    Found {
        name: String,
        uid: u32,
        groups: Vec<String>,
    },
    NotFound,
    Failed(String),
}

enum Key<'a> {
    Name(&'a str),
    Uid(u32),
}

/// Looks a user up by login name, as typed; the account's canonical name is in the answer.
pub fn by_name(root: &Root, name: &str, timeout: Duration) -> Result<Account, LookupError> {
    if !root.is_live() {
        return files(root)
            .into_iter()
            .find(|a| a.name == name)
            .ok_or_else(|| LookupError::NotFound(shown(name)));
    }
    if name.contains('\0') {
        return Err(LookupError::Failed(format!(
            "user name {} contains a NUL byte",
            shown(name)
        )));
    }
    nss(Key::Name(name), timeout)
}

/// Looks a user up by name for a caller that reads no groups (they may come back empty). When
/// NSS asks the local files first and /etc/passwd has the name, that line is NSS's answer: it
/// is read here, without a child process (a file cannot hang). Otherwise as [`by_name`].
pub fn by_name_without_groups(root: &Root, name: &str, timeout: Duration) -> Result<Account, LookupError> {
    if root.is_live()
        && root
            .read("/etc/nsswitch.conf")
            .is_some_and(|conf| files_answer_first(&conf))
        && let Some(account) = local_passwd_entry(&root.path("/etc/passwd"), name)
    {
        return Ok(account);
    }
    by_name(root, name, timeout)
}

/// Whether nsswitch.conf's `passwd:` line starts with `files` taking its default actions.
fn files_answer_first(conf: &str) -> bool {
    conf.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .find_map(|l| l.strip_prefix("passwd:"))
        .is_some_and(|services| {
            let mut words = services.split_whitespace();
            words.next() == Some("files") && !words.next().is_some_and(|w| w.starts_with('['))
        })
}

/// The first /etc/passwd line for `name`, as glibc's files service reads it.
fn local_passwd_entry(path: &std::path::Path, name: &str) -> Option<Account> {
    const MAX_PASSWD: u64 = 64 << 20;
    let file = crate::files::open_nonblocking(path, true).ok()?;
    let bytes = crate::files::read_bounded(file, MAX_PASSWD).ok()?;
    let prefix = format!("{name}:");
    let line = bytes
        .split(|b| *b == b'\n')
        .find(|l| l.starts_with(prefix.as_bytes()))?;
    let line = std::str::from_utf8(line).ok()?;
    let uid = line.split(':').nth(2)?.parse().ok()?;
    Some(Account {
        name: name.to_string(),
        uid,
        groups: Vec::new(),
    })
}

/// Looks a user up by UID.
pub fn by_uid(root: &Root, uid: u32, timeout: Duration) -> Result<Account, LookupError> {
    if !root.is_live() {
        return files(root)
            .into_iter()
            .find(|a| a.uid == uid)
            .ok_or_else(|| LookupError::NotFound(format!("uid {uid}")));
    }
    nss(Key::Uid(uid), timeout)
}

/// Whether NSS knows a group by this name (`containctl check` on overrides).
pub fn group_exists(root: &Root, name: &str, timeout: Duration) -> Result<bool, LookupError> {
    if !root.is_live() {
        let text = root.read("/etc/group").unwrap_or_default();
        return Ok(text.lines().any(|l| l.split(':').next() == Some(name)));
    }
    let name = name.to_string();
    let answer = in_child(
        &format!("group {}", shown(&name)),
        timeout,
        move || match Group::from_name(&name) {
            Ok(Some(g)) => Answer::Found {
                name: g.name,
                uid: g.gid.as_raw(),
                groups: Vec::new(),
            },
            Ok(None) | Err(Errno::ENOENT | Errno::ESRCH | Errno::EBADF | Errno::EPERM) => Answer::NotFound,
            Err(e) => Answer::Failed(format!("cannot look up group: {e}")),
        },
    )?;
    match answer {
        Answer::Found { .. } => Ok(true),
        Answer::NotFound => Ok(false),
        Answer::Failed(why) => Err(LookupError::Failed(why)),
    }
}

/// The local accounts in the root's /etc/passwd and /etc/group, as the generator reads them.
pub fn files(root: &Root) -> Vec<Account> {
    let read = |f: &str| std::fs::read_to_string(root.path(f)).unwrap_or_default();
    parse_accounts(&read("/etc/passwd"), &read("/etc/group"))
}

fn nss(key: Key<'_>, timeout: Duration) -> Result<Account, LookupError> {
    let what = match key {
        Key::Name(n) => shown(n),
        Key::Uid(u) => format!("uid {u}"),
    };
    let name = match key {
        Key::Name(n) => Some(n.to_string()),
        Key::Uid(_) => None,
    };
    let uid = match key {
        Key::Uid(u) => Some(u),
        Key::Name(_) => None,
    };
    let answer = in_child(&what, timeout, move || {
        let found = match (&name, uid) {
            (Some(n), _) => User::from_name(n),
            (None, Some(u)) => User::from_uid(Uid::from_raw(u)),
            (None, None) => Ok(None),
        };
        match found {
            Ok(Some(user)) => Answer::Found {
                groups: group_names(&user.name, user.gid),
                name: user.name,
                uid: user.uid.as_raw(),
            },
            // POSIX lets "not found" come back as one of these too (nss_wrapper does).
            Ok(None) | Err(Errno::ENOENT | Errno::ESRCH | Errno::EBADF | Errno::EPERM) => Answer::NotFound,
            Err(e) => Answer::Failed(format!("cannot look up user: {e}")),
        }
    })?;
    match answer {
        Answer::Found { name, uid, groups } => Ok(Account { name, uid, groups }),
        Answer::NotFound => Err(LookupError::NotFound(what)),
        Answer::Failed(why) => Err(LookupError::Failed(format!("{what}: {why}"))),
    }
}

/// The names of every group of a user (primary and supplementary), without repeats.
fn group_names(name: &str, gid: Gid) -> Vec<String> {
    let gids = CString::new(name)
        .ok()
        .and_then(|c| getgrouplist(&c, gid).ok())
        .unwrap_or_else(|| vec![gid]);
    let mut names: Vec<String> = Vec::new();
    for g in gids {
        if let Ok(Some(group)) = Group::from_gid(g)
            && !names.contains(&group.name)
        {
            names.push(group.name);
        }
    }
    names
}

/// Runs `lookup` in a child process and waits at most `timeout` for its answer; the child is
/// killed and reaped at the deadline.
fn in_child(what: &str, timeout: Duration, lookup: impl FnOnce() -> Answer) -> Result<Answer, LookupError> {
    let failed = |e: Errno| LookupError::Failed(format!("cannot look up {what}: {e}"));
    let (read_end, write_end) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(failed)?;
    // SAFETY: the child only looks the account up, writes to the pipe and _exits; it never
    // returns into the caller's code (a panic is caught), so nothing of the parent's state is
    // used twice.
    match unsafe { fork() }.map_err(failed)? {
        ForkResult::Child => {
            drop(read_end);
            let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(lookup))
                .unwrap_or_else(|_| Answer::Failed("the lookup panicked".into()));
            let bytes = serde_json::to_vec(&answer).unwrap_or_default();
            let _ = write_all(&write_end, &bytes);
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let bytes = read_until(&read_end, Instant::now() + timeout);
            if bytes.is_none() {
                let _ = kill(child, Signal::SIGKILL);
            }
            // The host may reap children itself (sshd's SIGCHLD handler): ECHILD is fine.
            let _ = waitpid(child, None);
            let bytes = bytes.ok_or_else(|| LookupError::TimedOut {
                what: what.to_string(),
                after: timeout,
            })?;
            serde_json::from_slice(&bytes).map_err(|_| {
                LookupError::Failed(format!(
                    "cannot look up {what}: the lookup process ended without an answer"
                ))
            })
        }
    }
}

fn write_all(fd: &OwnedFd, mut bytes: &[u8]) -> nix::Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads to end of file; `None` when the deadline passes first.
fn read_until(fd: &OwnedFd, deadline: Instant) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return None,
        }
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => return Some(out),
            Ok(n) if out.len() + n <= MAX_ANSWER => out.extend_from_slice(&buf[..n]),
            Ok(_) => return None,
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn root_resolves_through_nss_with_its_group() {
        let live = Root::default();
        let root = by_name(&live, "root", T).expect("root exists everywhere");
        assert_eq!((root.uid, root.name.as_str()), (0, "root"));
        assert!(root.groups.contains(&"root".to_string()), "{:?}", root.groups);
        assert_eq!(by_uid(&live, 0, T).expect("uid 0").name, "root");
        assert!(matches!(
            by_name(&live, "no-such-user-contain-test", T),
            Err(LookupError::NotFound(_))
        ));
        assert!(matches!(by_name(&live, "a\0b", T), Err(LookupError::Failed(_))));
        assert_eq!(group_exists(&live, "root", T), Ok(true));
        assert_eq!(group_exists(&live, "no-such-group-contain", T), Ok(false));
    }

    #[test]
    fn a_hung_lookup_is_cut_off_at_the_deadline_and_reaped() {
        let started = Instant::now();
        let got = in_child("a hung directory", Duration::from_millis(200), || {
            std::thread::sleep(Duration::from_secs(30));
            Answer::NotFound
        });
        assert!(
            matches!(got, Err(LookupError::TimedOut { .. })),
            "{:?}",
            got.err()
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_panicking_lookup_is_an_error_not_a_second_caller() {
        let got = in_child("x", T, || panic!("boom"));
        assert!(matches!(got, Ok(Answer::Failed(ref m)) if m.contains("panicked")));
    }

    #[test]
    fn fixture_roots_read_their_own_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = Root::new(dir.path());
        std::fs::create_dir(dir.path().join("etc")).expect("mkdir");
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("etc/group"), "alice:x:1001:\nhpc:x:2000:alice\n").expect("write");
        let alice = by_name(&root, "alice", T).expect("alice");
        assert_eq!(alice.groups, ["alice", "hpc"]);
        assert_eq!(by_uid(&root, 1001, T).expect("uid").name, "alice");
        assert!(by_name(&root, "bob", T).is_err());
        assert_eq!(group_exists(&root, "hpc", T), Ok(true));
        assert_eq!(group_exists(&root, "gpu", T), Ok(false));
    }

    #[test]
    fn the_local_passwd_answers_only_where_nss_asks_it_first() {
        assert!(files_answer_first(
            "# x\npasswd:         files systemd\ngroup: files\n"
        ));
        assert!(files_answer_first("passwd: files # comment\n"));
        assert!(!files_answer_first("passwd: sss files\n"));
        assert!(!files_answer_first("passwd: compat\n"));
        assert!(!files_answer_first("passwd: files [SUCCESS=continue] sss\n"));
        assert!(!files_answer_first("group: files\n"));
        let dir = tempfile::tempdir().expect("tmp");
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0::/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\nal:x:1002:1002::/:/bin/sh\n",
        )
        .expect("write");
        assert_eq!(local_passwd_entry(&passwd, "al").map(|a| a.uid), Some(1002));
        assert_eq!(local_passwd_entry(&passwd, "alice").map(|a| a.uid), Some(1001));
        assert!(local_passwd_entry(&passwd, "ali").is_none());
        // The live answer matches NSS's for an account in the local files.
        let live = Root::default();
        let fast = by_name_without_groups(&live, "root", T).expect("root");
        assert_eq!((fast.uid, fast.name.as_str()), (0, "root"));
    }

    #[test]
    fn names_are_shown_escaped_and_bounded() {
        assert_eq!(shown("alice"), "\"alice\"");
        assert_eq!(shown("a\nb\u{1b}[31m"), "\"a\\nb\\u{1b}[31m\"");
        let long = "x".repeat(300);
        assert_eq!(shown(&long), format!("\"{}\"… (300 bytes)", "x".repeat(64)));
    }
}
