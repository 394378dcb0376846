//! What the module reads from the machine: its own cgroup, the slice's limits, RAM, notices.
//! Every path is built from a root given in the module arguments, so tests use fake trees.

use crate::decide::{Limit, Machine, SliceState};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The longest /proc or cgroupfs file read: the kernel's are a few hundred bytes.
const MAX_KERNEL_FILE: u64 = 64 * 1024;

/// Reads a small kernel text file. Never blocks (a FIFO in its place reads as empty) and never
/// reads past [`MAX_KERNEL_FILE`] (a longer file is not the kernel's; /dev/zero would never end).
fn read_kernel_file(path: &Path) -> std::io::Result<String> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_KERNEL_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_KERNEL_FILE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("longer than {MAX_KERNEL_FILE} bytes"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The cgroup v2 path in a /proc/PID/cgroup text (the `0::` line). A path the kernel would not
/// write (relative, `.` or `..` components, control characters) counts as none.
pub fn unified_cgroup(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim)
        .filter(|p| {
            p.starts_with('/')
                && !p.chars().any(char::is_control)
                && p.split('/').all(|c| c != "." && c != "..")
        })
}

pub fn read_cgroup(proc_cgroup: &Path) -> Option<String> {
    let text = read_kernel_file(proc_cgroup).ok()?;
    unified_cgroup(&text).map(str::to_owned)
}

/// The limits cgroupfs shows for `slice_path` (`/user.slice/user-1000.slice`) under `root`.
pub fn read_slice(root: &Path, slice_path: &str) -> SliceState {
    let dir = root.join(slice_path.trim_start_matches('/'));
    let read = |name: &str| read_kernel_file(&dir.join(name)).ok();
    // Missing: the controller is off or the slice is new. There but not a limit: unreadable.
    let limit = |name: &str| match read_kernel_file(&dir.join(name)) {
        Ok(text) => Some(Limit::parse(&text).unwrap_or(Limit::Unreadable)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            None
        }
        Err(_) => Some(Limit::Unreadable),
    };
    SliceState {
        memory_high: limit("memory.high"),
        memory_max: limit("memory.max"),
        memory_swap_max: limit("memory.swap.max"),
        pids_max: limit("pids.max"),
        cpu_weight: read("cpu.weight").and_then(|t| t.trim().parse().ok()),
        // io.weight reads `default 100` and per-device lines.
        io_weight: read("io.weight").and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("default "))
                .and_then(|v| v.trim().parse().ok())
        }),
    }
}

fn sysctl(name: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// RAM, page size and the kernel's task limit, as systemd resolves `N%` against them.
pub fn machine() -> Machine {
    // SAFETY: sysconf has no preconditions.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let page_size = u64::try_from(page_size).unwrap_or(4096).max(1);
    let ram = u64::try_from(pages).unwrap_or(0).saturating_mul(page_size);
    let pid_max = sysctl("pid_max").map(|p| p.saturating_sub(1)).unwrap_or(u64::MAX);
    let threads_max = sysctl("threads-max").unwrap_or(u64::MAX);
    Machine {
        ram,
        page_size,
        tasks_total: pid_max.min(threads_max),
    }
}

/// At most this much of a notices file is read: the watchdog keeps five lines.
const MAX_NOTICES: u64 = 8192;

/// Reads the user's pending notices: a root-owned regular file, not a symlink. Control characters
/// (a process name can hold terminal escapes) are shown as `?`.
pub fn read_notices(dir: &Path, uid: u32) -> Option<Vec<String>> {
    let path = dir.join(uid.to_string());
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.uid() != 0 {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_NOTICES).read_to_string(&mut text).ok()?;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            l.chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect::<String>()
        })
        .filter(|l| !l.trim().is_empty())
        .collect();
    Some(lines)
}

/// How long ago the notices file was last written.
pub fn notices_age(dir: &Path, uid: u32) -> Option<std::time::Duration> {
    let modified = fs::symlink_metadata(dir.join(uid.to_string()))
        .ok()?
        .modified()
        .ok()?;
    modified.elapsed().ok()
}

pub fn remove_notices(dir: &Path, uid: u32) -> std::io::Result<()> {
    fs::remove_file(dir.join(uid.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unified_line_is_found() {
        let v2 = "0::/user.slice/user-1000.slice/session-3.scope\n";
        assert_eq!(
            unified_cgroup(v2),
            Some("/user.slice/user-1000.slice/session-3.scope")
        );
        let hybrid = "12:pids:/user.slice\n1:name=systemd:/user.slice/x\n0::/user.slice/user-1000.slice/session-3.scope\n";
        assert_eq!(
            unified_cgroup(hybrid),
            Some("/user.slice/user-1000.slice/session-3.scope")
        );
        assert_eq!(unified_cgroup("12:pids:/x\n"), None);
        assert_eq!(unified_cgroup("0::/\n"), Some("/"));
        for odd in [
            "0::/user.slice/user-1000.slice/../../system.slice\n",
            "0::/user.slice/user-1000.slice/./x\n",
            "0::user.slice/user-1000.slice\n",
            "0::/user.slice/user-1000.slice/a\u{1b}b\n",
            "0::\n",
        ] {
            assert_eq!(unified_cgroup(odd), None, "{odd:?}");
        }
    }

    #[test]
    fn slice_files_are_read_as_the_kernel_writes_them() {
        let root = std::env::temp_dir().join(format!("contain-slice-{}", std::process::id()));
        let dir = root.join("user.slice/user-1000.slice");
        fs::create_dir_all(&dir).expect("tmp");
        for (f, v) in [
            ("memory.high", "12884901888\n"),
            ("memory.max", "max\n"),
            ("pids.max", "4096\n"),
            ("cpu.weight", "100\n"),
            ("io.weight", "default 50\n8:0 200\n"),
        ] {
            fs::write(dir.join(f), v).expect("tmp");
        }
        let s = read_slice(&root, "/user.slice/user-1000.slice");
        assert_eq!(s.memory_high, Some(Limit::Value(12 << 30)));
        assert_eq!(s.memory_max, Some(Limit::Max));
        assert_eq!(s.memory_swap_max, None);
        assert_eq!(s.pids_max, Some(Limit::Value(4096)));
        assert_eq!(s.cpu_weight, Some(100));
        assert_eq!(s.io_weight, Some(50));
        assert_eq!(
            read_slice(&root, "/user.slice/user-9.slice"),
            SliceState::default()
        );
        // Garbage, a directory, a FIFO and an endless file are there but unreadable: no hang.
        fs::write(dir.join("memory.high"), "banana\n").expect("tmp");
        fs::remove_file(dir.join("memory.max")).expect("tmp");
        fs::create_dir(dir.join("memory.max")).expect("tmp");
        let fifo =
            std::ffi::CString::new(dir.join("pids.max").into_os_string().into_encoded_bytes()).expect("path");
        fs::remove_file(dir.join("pids.max")).expect("tmp");
        // SAFETY: a valid C string path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo");
        std::os::unix::fs::symlink("/dev/zero", dir.join("memory.swap.max")).expect("tmp");
        let s = read_slice(&root, "/user.slice/user-1000.slice");
        assert_eq!(s.memory_high, Some(Limit::Unreadable));
        assert_eq!(s.memory_max, Some(Limit::Unreadable));
        assert_eq!(s.pids_max, Some(Limit::Unreadable));
        assert_eq!(s.memory_swap_max, Some(Limit::Unreadable));
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn notices_are_sanitised_and_must_be_a_plain_file() {
        let dir = std::env::temp_dir().join(format!("contain-notices-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("tmp");
        fs::write(dir.join("1001"), "contain: killed \x1b[31mx\n\ncontain: second\n").expect("tmp");
        let lines = read_notices(&dir, 1001).expect("notices");
        assert_eq!(lines, ["contain: killed ?[31mx", "contain: second"]);
        std::os::unix::fs::symlink(dir.join("1001"), dir.join("1002")).expect("tmp");
        assert_eq!(read_notices(&dir, 1002), None, "a symlink is not followed");
        assert_eq!(read_notices(&dir, 1003), None);
        remove_notices(&dir, 1001).expect("remove");
        assert_eq!(read_notices(&dir, 1001), None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn this_machine_has_memory() {
        let m = machine();
        assert!(m.ram > 0 && m.page_size >= 4096 && m.tasks_total > 0, "{m:?}");
    }
}
