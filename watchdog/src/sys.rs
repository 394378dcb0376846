//! The few system calls the event loop needs, wrapped once: inotify, signalfd, poll and
//! sd_notify; account names come from the host layer.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub struct Inotify {
    fd: OwnedFd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InotifyEvent {
    pub wd: i32,
    pub mask: u32,
}

impl Inotify {
    pub fn new() -> io::Result<Inotify> {
        // SAFETY: plain syscall; the returned fd is owned from here on.
        let fd = check(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })?;
        // SAFETY: fd was just returned by the kernel and is not owned elsewhere.
        Ok(Inotify {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn add(&self, path: &Path, mask: u32) -> io::Result<i32> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
        // SAFETY: c is a valid NUL-terminated path for the duration of the call.
        check(unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) })
    }

    pub fn remove(&self, wd: i32) {
        // SAFETY: plain syscall; a stale wd only yields EINVAL.
        unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
    }

    /// Every event queued now.
    pub fn read(&self) -> Vec<InotifyEvent> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: buf is valid for writes of its length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return out;
            }
            out.extend(parse_inotify(&buf[..n as usize]));
        }
    }
}

impl AsRawFd for Inotify {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Splits a buffer of `struct inotify_event` records (wd, mask, cookie, len, name[len]).
pub fn parse_inotify(buf: &[u8]) -> Vec<InotifyEvent> {
    let mut out = Vec::new();
    let mut at = 0;
    let u32_at = |i: usize| -> Option<u32> { Some(u32::from_ne_bytes(buf.get(i..i + 4)?.try_into().ok()?)) };
    while at + 16 <= buf.len() {
        let (Some(wd), Some(mask), Some(len)) = (u32_at(at), u32_at(at + 4), u32_at(at + 12)) else {
            break;
        };
        out.push(InotifyEvent { wd: wd as i32, mask });
        at += 16 + len as usize;
    }
    out
}

/// SIGHUP, SIGTERM and SIGINT as readable events instead of asynchronous handlers.
pub struct Signals {
    fd: OwnedFd,
}

impl Signals {
    pub fn block(signals: &[libc::c_int]) -> io::Result<Signals> {
        // SAFETY: the sigset is initialised by sigemptyset before use; all calls are plain syscalls.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = check(libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))?;
            Ok(Signals {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    pub fn read(&self) -> Vec<libc::c_int> {
        let mut out = Vec::new();
        loop {
            // SAFETY: signalfd_siginfo is plain data; the kernel writes whole records.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: info is valid for writes of `size` bytes.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n != size as isize {
                return out;
            }
            out.push(info.ssi_signo as libc::c_int);
        }
    }
}

impl AsRawFd for Signals {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Waits for any of `fds`; `timeout_ms` < 0 waits forever. EINTR counts as a timeout.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: fds is a valid array of pollfd for its length.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(0)
        } else {
            Err(e)
        };
    }
    Ok(n as usize)
}

/// The login name of `uid` through NSS (the host layer: a hung directory costs at most a second).
pub fn user_name(uid: u32) -> Option<String> {
    let root = contain_host::Root::default();
    contain_host::accounts::by_uid(&root, uid, std::time::Duration::from_secs(1))
        .ok()
        .map(|a| a.name)
}

/// Tells systemd about our state (`READY=1`, `STATUS=…`) when run as a Type=notify service.
pub fn sd_notify(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let bytes = path.as_bytes();
    let addr = match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
        Some(b'/') => SocketAddr::from_pathname(Path::new(&path)),
        _ => return,
    };
    if let (Ok(sock), Ok(addr)) = (UnixDatagram::unbound(), addr) {
        let _ = sock.send_to_addr(state.as_bytes(), &addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inotify_reports_modifications_of_a_watched_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("memory.events");
        std::fs::write(&file, "high 0\n").expect("write");
        let ino = Inotify::new().expect("inotify");
        let wd = ino.add(&file, libc::IN_MODIFY).expect("watch");
        let dwd = ino
            .add(dir.path(), libc::IN_CREATE | libc::IN_DELETE)
            .expect("watch dir");
        assert!(ino.read().is_empty());
        std::fs::write(&file, "high 1\n").expect("write");
        std::fs::create_dir(dir.path().join("user-1001.slice")).expect("mkdir");
        let events = ino.read();
        assert!(
            events.iter().any(|e| e.wd == wd && e.mask & libc::IN_MODIFY != 0),
            "{events:?}"
        );
        assert!(
            events
                .iter()
                .any(|e| e.wd == dwd && e.mask & libc::IN_CREATE != 0),
            "{events:?}"
        );
    }

    #[test]
    fn root_has_a_name() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
    }
}
