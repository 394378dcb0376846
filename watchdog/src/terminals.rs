//! Telling a user at once, on their open terminals, as write(1) would: the ttys of their
//! logind sessions, of utmp (tmux and screen panes register there) and of their processes
//! (an ssh login's logind session has no TTY, and trixie has no utmp), only those the user
//! owns with group write permission (`mesg n` clears it), never blocking.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where the candidate terminals are listed; movable for tests.
#[derive(Clone, Debug)]
pub struct Sources {
    /// logind's session files (`UID=`, `TTY=`).
    pub sessions_dir: PathBuf,
    /// utmp, glibc's x86_64 record layout.
    pub utmp: PathBuf,
    /// Where tty names are resolved (`/dev`).
    pub dev: PathBuf,
    /// procfs, for the controlling terminals of the user's processes.
    pub proc: PathBuf,
}

impl Default for Sources {
    fn default() -> Sources {
        Sources {
            sessions_dir: "/run/systemd/sessions".into(),
            utmp: "/run/utmp".into(),
            dev: "/dev".into(),
            proc: "/proc".into(),
        }
    }
}

impl Sources {
    /// The defaults under the one root (`CONTAIN_ROOT`, for tests).
    pub fn under(root: &contain_host::Root) -> Sources {
        let d = Sources::default();
        Sources {
            sessions_dir: root.path(d.sessions_dir),
            utmp: root.path(d.utmp),
            dev: root.path(d.dev),
            proc: root.path(d.proc),
        }
    }
}

/// At most this many terminals get a line (a user with hundreds of panes still costs little).
const MAX_TERMINALS: usize = 64;
/// The longest line written, in characters.
const MAX_LINE: usize = 480;

/// A tty name as logind and utmp write it (`pts/3`, `tty2`): nothing that leaves /dev.
fn tty_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 32
        && !name.starts_with('/')
        && name.split('/').all(|p| !p.is_empty() && p != "." && p != "..")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '/')
}

/// The ttys of `uid`'s logind sessions.
pub fn session_ttys(dir: &Path, uid: u32) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        // logind keeps a FIFO (`N.ref`) beside each session file: only regular files are read,
        // without blocking and with a bound, so nothing there can stall the watchdog.
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Ok(text) = contain_host::files::read_small(&e.path()) else {
            continue;
        };
        let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)?.strip_prefix('='));
        if field("UID").and_then(|u| u.parse::<u32>().ok()) == Some(uid)
            && let Some(tty) = field("TTY")
        {
            out.push(tty.to_string());
        }
    }
    out
}

const UTMP_RECORD: usize = 384;
const USER_PROCESS: i16 = 7;

/// At most this many /proc entries are looked at (a user cannot make the search endless).
const MAX_PROCS: usize = 1 << 17;

/// A controlling terminal's device number as /proc/PID/stat gives it, as a name under /dev:
/// Unix98 ptys (majors 136-143) and the virtual consoles (major 4, minors 1-63).
fn tty_of_device(tty_nr: u64) -> Option<String> {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        136..=143 => Some(format!("pts/{}", (major - 136) * 256 + minor)),
        4 if (1..64).contains(&minor) => Some(format!("tty{minor}")),
        _ => None,
    }
}

/// The controlling terminals of `uid`'s processes (real UID): every open ssh or console
/// login has its shell there, whatever logind and utmp recorded.
pub fn process_ttys(proc_dir: &Path, uid: u32) -> Vec<String> {
    let Ok(entries) = fs::read_dir(proc_dir) else {
        return Vec::new();
    };
    let mut ttys = BTreeSet::new();
    for entry in entries.flatten().take(MAX_PROCS) {
        let name = entry.file_name();
        if !name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let dir = entry.path();
        let Ok(status) = fs::read_to_string(dir.join("status")) else {
            continue;
        };
        let real_uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok());
        if real_uid != Some(uid) {
            continue;
        }
        let Ok(stat) = fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: fields count from the last ')'.
        let tty_nr = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(4)?.parse::<u64>().ok());
        if let Some(tty) = tty_nr.filter(|&t| t != 0).and_then(tty_of_device) {
            ttys.insert(tty);
        }
    }
    ttys.into_iter().collect()
}

/// The ttys of every logged-in process in utmp; ownership is checked when they are opened.
pub fn utmp_ttys(bytes: &[u8]) -> Vec<String> {
    bytes
        .chunks_exact(UTMP_RECORD)
        .filter(|r| i16::from_ne_bytes([r[0], r[1]]) == USER_PROCESS)
        .filter_map(|r| {
            let line = &r[8..40];
            let end = line.iter().position(|&b| b == 0).unwrap_or(line.len());
            std::str::from_utf8(&line[..end]).ok().map(str::to_string)
        })
        .collect()
}

/// The line as it is written: what could change its display replaced (the one sanitiser),
/// bounded, on a line of its own whatever the terminal's mode (hence `\r\n`).
pub fn terminal_text(line: &str) -> String {
    let clean: String = contain_policy::text::printable(line)
        .chars()
        .take(MAX_LINE)
        .collect();
    format!("\r\n{clean}\r\n")
}

/// Writes `line` to one terminal if `uid` owns it and accepts messages. Never blocks: a full
/// terminal buffer loses the line. `Ok(false)`: not written (not theirs, or `mesg n`).
pub fn write_to(path: &Path, uid: u32, text: &str) -> io::Result<bool> {
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)?;
    // Checked on the open descriptor: the name may have been reused meanwhile.
    let meta = f.metadata()?;
    if !meta.file_type().is_char_device() || meta.uid() != uid || meta.mode() & 0o020 == 0 {
        return Ok(false);
    }
    f.write_all(text.as_bytes())?;
    Ok(true)
}

/// What [`tell`] did: terminals written to, and those skipped or failed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Told {
    pub written: Vec<String>,
    pub refused: Vec<String>,
    pub failed: Vec<(String, String)>,
}

/// Writes `line` to every open terminal of `uid`: logind's and utmp's (the logins' own) first,
/// then those only a scan of /proc finds (tmux, screen), which takes longest on a busy box.
/// `on_written` gets each batch of terminals written to as it is done: the logins' own before
/// that scan.
pub fn tell(src: &Sources, uid: u32, line: &str, mut on_written: impl FnMut(&[String])) -> Told {
    let text = terminal_text(line);
    let mut told = Told::default();
    let mut logins: BTreeSet<String> = session_ttys(&src.sessions_dir, uid).into_iter().collect();
    let utmp = contain_host::files::open_nonblocking(&src.utmp, true)
        .and_then(|f| contain_host::files::read_bounded(f, 4 << 20));
    if let Ok(bytes) = utmp {
        logins.extend(utmp_ttys(&bytes));
    }
    let logins: Vec<String> = logins
        .into_iter()
        .filter(|n| tty_name_ok(n))
        .take(MAX_TERMINALS)
        .collect();
    told.write_each(&src.dev, uid, &text, logins.iter().cloned(), &mut on_written);
    let others: BTreeSet<String> = process_ttys(&src.proc, uid)
        .into_iter()
        .filter(|n| tty_name_ok(n) && !logins.contains(n))
        .collect();
    told.write_each(
        &src.dev,
        uid,
        &text,
        others.into_iter().take(MAX_TERMINALS - logins.len()),
        &mut on_written,
    );
    told
}

impl Told {
    fn write_each(
        &mut self,
        dev: &Path,
        uid: u32,
        text: &str,
        names: impl Iterator<Item = String>,
        on_written: &mut impl FnMut(&[String]),
    ) {
        let first = self.written.len();
        for name in names {
            match write_to(&dev.join(&name), uid, text) {
                Ok(true) => self.written.push(name),
                Ok(false) => self.refused.push(name),
                // Gone since, or a logout raced us: nothing to tell there.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // `mesg n` (no group write) is refused at the open, as write(1) is refused.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => self.refused.push(name),
                Err(e) => self.failed.push((name, e.to_string())),
            }
        }
        if self.written.len() > first {
            on_written(&self.written[first..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loginds_ref_fifos_never_block_the_search() {
        let dir = tempfile::tempdir().expect("tmp");
        fs::write(dir.path().join("3"), "UID=1001\nTTY=pts/2\n").expect("write");
        // logind's N.ref: a FIFO whose writer never writes. Reading it would block for ever.
        nix::unistd::mkfifo(
            &dir.path().join("3.ref"),
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .expect("mkfifo");
        let _writer = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.path().join("3.ref"))
            .expect("hold the FIFO open");
        assert_eq!(session_ttys(dir.path(), 1001), ["pts/2"]);
    }
    use nix::pty::openpty;
    use nix::sys::termios::{self, SetArg};
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::PermissionsExt;

    fn utmp_record(kind: i16, line: &str) -> Vec<u8> {
        let mut r = vec![0u8; UTMP_RECORD];
        r[..2].copy_from_slice(&kind.to_ne_bytes());
        r[8..8 + line.len()].copy_from_slice(line.as_bytes());
        r
    }

    #[test]
    fn processes_give_their_owners_controlling_terminals() {
        let dir = tempfile::tempdir().expect("tempdir");
        let proc_entry = |pid: u32, uid: u32, comm: &str, tty_nr: u64| {
            let d = dir.path().join(pid.to_string());
            fs::create_dir_all(&d).expect("mkdir");
            fs::write(
                d.join("status"),
                format!("Name:\tx\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
            )
            .expect("w");
            fs::write(
                d.join("stat"),
                format!("{pid} ({comm}) S 1 {pid} {pid} {tty_nr} -1 0\n"),
            )
            .expect("w");
        };
        proc_entry(100, 1001, "bash", 34816); // pts/0
        proc_entry(101, 1001, "x) S 1 1 1 34817 (", 34818); // a hostile name; pts/2
        proc_entry(102, 1001, "sleep", 0); // no terminal
        proc_entry(103, 1002, "bash", 34819); // another user's pts/3
        proc_entry(104, 1001, "agetty", 1025); // tty1
        proc_entry(105, 1001, "serial", (4 << 8) | 64); // ttyS0: not a login terminal here
        fs::create_dir_all(dir.path().join("self")).expect("mkdir");
        assert_eq!(process_ttys(dir.path(), 1001), ["pts/0", "pts/2", "tty1"]);
        assert_eq!(tty_of_device((137 << 8) | 4), Some("pts/260".into()));
    }

    #[test]
    fn utmp_lists_logged_in_ttys_only() {
        let mut bytes = utmp_record(USER_PROCESS, "pts/3");
        bytes.extend(utmp_record(8, "pts/4")); // DEAD_PROCESS
        bytes.extend(utmp_record(USER_PROCESS, "tty2"));
        bytes.extend([1, 2, 3]); // a torn record at the end
        assert_eq!(utmp_ttys(&bytes), ["pts/3", "tty2"]);
    }

    #[test]
    fn sessions_of_that_uid_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("3"), "UID=1001\nUSER=alice\nTTY=pts/0\n").expect("w");
        fs::write(dir.path().join("4"), "UID=1002\nUSER=bob\nTTY=pts/1\n").expect("w");
        fs::write(dir.path().join("5"), "UID=1001\nUSER=alice\nSERVICE=cron\n").expect("w");
        fs::write(dir.path().join("6"), "UID=10011\nTTY=pts/9\n").expect("w");
        assert_eq!(session_ttys(dir.path(), 1001), ["pts/0"]);
    }

    #[test]
    fn names_never_leave_dev() {
        for bad in [
            "",
            "../etc/passwd",
            "/dev/pts/1",
            "pts/../../x",
            "pts//1",
            "pts/1\n",
        ] {
            assert!(!tty_name_ok(bad), "{bad:?}");
        }
        for good in ["pts/0", "tty2", "ttyS0"] {
            assert!(tty_name_ok(good), "{good:?}");
        }
    }

    #[test]
    fn the_line_is_one_clean_bounded_line() {
        assert_eq!(
            terminal_text("contain: a\x1b[2Jb\nc"),
            "\r\ncontain: a?[2Jb?c\r\n"
        );
        assert_eq!(terminal_text(&"x".repeat(2000)).len(), MAX_LINE + 4);
    }

    /// A real pty pair: the line arrives on the other side, at once; `mesg n` and someone
    /// else's terminal get nothing.
    #[test]
    fn writes_to_a_pty_as_write_would() {
        let pty = openpty(None, None).expect("openpty");
        // Raw, so the test reads exactly what was written.
        let mut t = termios::tcgetattr(&pty.slave).expect("tcgetattr");
        termios::cfmakeraw(&mut t);
        termios::tcsetattr(&pty.slave, SetArg::TCSANOW, &t).expect("tcsetattr");
        let path = fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).expect("pty name");
        let me = fs::metadata(&path).expect("meta").uid();
        let mut master = fs::File::from(pty.master);
        let read_all = |m: &mut fs::File| {
            use nix::fcntl::{FcntlArg, OFlag, fcntl};
            fcntl(&*m, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("O_NONBLOCK");
            let mut buf = vec![0u8; 4096];
            let n = m.read(&mut buf).unwrap_or(0);
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };

        fs::set_permissions(&path, fs::Permissions::from_mode(0o620)).expect("mesg y");
        let started = std::time::Instant::now();
        assert!(write_to(&path, me, &terminal_text("contain: ended")).expect("write"));
        assert_eq!(read_all(&mut master), "\r\ncontain: ended\r\n");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));

        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("mesg n");
        assert!(!write_to(&path, me, "no").expect("open"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o620)).expect("mesg y");
        assert!(!write_to(&path, me.wrapping_add(1), "no").expect("open"));
        assert_eq!(read_all(&mut master), "");

        // A terminal whose reader is gone and whose buffer is full: the write gives up.
        let mut filled = 0usize;
        let chunk = "y".repeat(4096);
        loop {
            match write_to(&path, me, &chunk) {
                Ok(true) => filled += chunk.len(),
                Ok(false) => panic!("refused"),
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
                    break;
                }
            }
            assert!(filled < 16 << 20, "the pty never filled up");
        }
        drop(pty.slave);
    }

    #[test]
    fn tell_reaches_the_users_terminals_through_the_session_files() {
        let pty = openpty(None, None).expect("openpty");
        let path = fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).expect("pty name");
        let me = fs::metadata(&path).expect("meta").uid();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o620)).expect("mesg y");
        let name = path
            .strip_prefix("/dev")
            .expect("under /dev")
            .to_str()
            .expect("utf-8")
            .to_string();
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("1"), format!("UID={me}\nTTY={name}\n")).expect("w");
        let src = Sources {
            sessions_dir: dir.path().to_path_buf(),
            utmp: dir.path().join("no-utmp"),
            dev: "/dev".into(),
            proc: dir.path().join("no-proc"),
        };
        let mut batches = Vec::new();
        let told = tell(&src, me, "contain: hello", |w| batches.push(w.to_vec()));
        assert_eq!(batches, [vec![name.clone()]], "told before /proc is scanned");
        assert_eq!(told.written, [name]);
        let mut master = fs::File::from(pty.master);
        let mut buf = vec![0u8; 256];
        let n = master.read(&mut buf).expect("read");
        assert!(String::from_utf8_lossy(&buf[..n]).contains("contain: hello"));
        drop(pty.slave);
    }
}
