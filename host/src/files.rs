//! Reading and writing host files safely: bounded, never blocking, atomic.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The longest /proc or cgroupfs file read: the kernel's are a few hundred bytes.
pub const MAX_SMALL_FILE: u64 = 64 * 1024;

/// Opens a file for reading without blocking on a FIFO or taking a terminal.
pub fn open_nonblocking(path: &Path, follow: bool) -> io::Result<fs::File> {
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    fs::OpenOptions::new().read(true).custom_flags(flags).open(path)
}

/// Reads at most `limit` bytes of an open file; a longer one is an error, not a truncation.
pub fn read_bounded(file: fs::File, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("longer than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// Reads a small kernel or state text file: never blocks (a FIFO reads as empty) and never reads
/// past [`MAX_SMALL_FILE`] (/dev/zero in its place is an error, not a hang).
pub fn read_small(path: &Path) -> io::Result<String> {
    let bytes = read_bounded(open_nonblocking(path, true)?, MAX_SMALL_FILE)?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes `contents` to `path` through a temporary file and a rename: readers never see half a
/// file. The file gets `mode`.
pub fn write_atomic_mode(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.contain-tmp"));
    let result = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(contents)?;
        // No fsync: contain's outputs live on tmpfs or are rewritten at every boot.
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// [`write_atomic_mode`] with 0644: units, status, metrics.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, contents, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn small_reads_never_hang_and_never_run_long() {
        let dir = tempfile::tempdir().expect("tmp");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(
            &fifo,
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .expect("mkfifo");
        assert_eq!(read_small(&fifo).expect("a FIFO reads as empty"), "");
        assert!(read_small(Path::new("/dev/zero")).is_err());
        let plain = dir.path().join("memory.max");
        fs::write(&plain, "max\n").expect("write");
        assert_eq!(read_small(&plain).expect("read"), "max\n");
    }

    #[test]
    fn atomic_writes_replace_whole_files_with_the_mode_asked() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("a/b/status.json");
        write_atomic(&path, b"one").expect("write");
        write_atomic_mode(&path, b"two", 0o600).expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(path.parent().expect("dir"))
            .expect("ls")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }
}
