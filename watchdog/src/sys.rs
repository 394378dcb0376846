//! The few system calls the event loop needs, wrapped once: inotify, signalfd, poll and
//! sd_notify; account names come from the host layer.

use nix::errno::Errno;
use nix::poll::{PollFd, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify as NixInotify, WatchDescriptor};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

pub use nix::sys::inotify::InotifyEvent;

/// A non-blocking inotify instance.
pub struct Inotify(NixInotify);

impl Inotify {
    pub fn new() -> io::Result<Inotify> {
        Ok(Inotify(NixInotify::init(
            InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC,
        )?))
    }

    pub fn add(&self, path: &Path, mask: AddWatchFlags) -> io::Result<WatchDescriptor> {
        Ok(self.0.add_watch(path, mask)?)
    }

    pub fn remove(&self, wd: WatchDescriptor) {
        // A stale wd only yields EINVAL.
        let _ = self.0.rm_watch(wd);
    }

    /// Every event queued now.
    pub fn read(&self) -> Vec<InotifyEvent> {
        let mut out = Vec::new();
        while let Ok(events) = self.0.read_events() {
            if events.is_empty() {
                break;
            }
            out.extend(events);
        }
        out
    }
}

impl AsFd for Inotify {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// SIGHUP, SIGTERM and SIGINT as readable events instead of asynchronous handlers.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    pub fn block(signals: &[Signal]) -> io::Result<Signals> {
        let mut set = SigSet::empty();
        for &s in signals {
            set.add(s);
        }
        set.thread_block()?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Signals { fd })
    }

    pub fn read(&self) -> Vec<Signal> {
        let mut out = Vec::new();
        while let Ok(Some(info)) = self.fd.read_signal() {
            if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                out.push(sig);
            }
        }
        out
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Waits for any of `fds` for at most `timeout_ms`. EINTR counts as a timeout.
pub fn poll(fds: &mut [PollFd<'_>], timeout_ms: u64) -> io::Result<usize> {
    let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::MAX);
    match nix::poll::poll(fds, timeout) {
        Ok(n) => Ok(n as usize),
        Err(Errno::EINTR) => Ok(0),
        Err(e) => Err(e.into()),
    }
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
    use std::os::unix::ffi::OsStrExt;
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
        let wd = ino.add(&file, AddWatchFlags::IN_MODIFY).expect("watch");
        let dwd = ino
            .add(dir.path(), AddWatchFlags::IN_CREATE | AddWatchFlags::IN_DELETE)
            .expect("watch dir");
        assert!(ino.read().is_empty());
        std::fs::write(&file, "high 1\n").expect("write");
        std::fs::create_dir(dir.path().join("user-1001.slice")).expect("mkdir");
        let events = ino.read();
        assert!(
            events
                .iter()
                .any(|e| e.wd == wd && e.mask.contains(AddWatchFlags::IN_MODIFY)),
            "{events:?}"
        );
        assert!(
            events
                .iter()
                .any(|e| e.wd == dwd && e.mask.contains(AddWatchFlags::IN_CREATE)),
            "{events:?}"
        );
    }

    #[test]
    fn root_has_a_name() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
    }
}
