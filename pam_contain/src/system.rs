//! The watchdog's notices for a user, as the module shows them at login. The cgroup and account
//! reads are the host layer's (contain-host).

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// At most this much of a notices file is read: the watchdog keeps five lines.
const MAX_NOTICES: u64 = 8192;

/// Reads the user's pending notices: a root-owned regular file, not a symlink. What could change
/// how a line is displayed (a process name can hold terminal escapes, bidi overrides) shows as `?`.
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
        .map(contain_policy::text::printable)
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
}
