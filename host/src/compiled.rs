//! The compiled policy under /run/contain (format: `contain_policy::compiled`): written wherever
//! the policy is parsed (the generator at boot, `containctl apply`, a login that had to parse),
//! read by logins. It is used only while the policy files are exactly those it was compiled
//! from: any edit, chmod, added or removed drop-in changes their identity and the next login
//! parses the policy again. Missing, stale, foreign-owned or corrupt: the full parse, never a
//! failed login.

use crate::files::open_nonblocking;
use crate::policy_files::{Loaded, Outcome, dropin_dir, load};
use contain_policy::Policy;
use contain_policy::compiled::{Compiled, encode};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::num::NonZeroUsize;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::ptr::NonNull;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the compiled policy lives on the host.
pub const COMPILED_POLICY: &str = "/run/contain/policy.compiled";
/// Larger than any compiled 1 MiB policy can be.
const MAX_COMPILED: u64 = 64 << 20;

/// A file changed this recently may change again within the same timestamp (the kernel's
/// clock ticks coarsely, some file systems keep seconds): its policy is not compiled yet.
const SETTLED: Duration = Duration::from_secs(1);

/// What identifies the policy files as read: for the main file, the drop-in directory and each
/// entry in it, the device, inode, size, mode, owner and modification and change times in
/// nanoseconds (symlinks followed, as the policy is read). One line.
pub fn identity(main: &Path) -> String {
    identity_and_newest(main).0
}

/// [`identity`], and the newest modification or change time among the files.
fn identity_and_newest(main: &Path) -> (String, SystemTime) {
    let mut out = String::new();
    let mut newest = UNIX_EPOCH;
    let mut stat = |path: &Path, name: &str| match fs::metadata(path) {
        Ok(m) => {
            for (secs, nanos) in [(m.mtime(), m.mtime_nsec()), (m.ctime(), m.ctime_nsec())] {
                let at = UNIX_EPOCH + Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32);
                newest = newest.max(at);
            }
            let _ = write!(
                out,
                "{name:?}:{}:{}:{}:{:o}:{}:{}.{}:{}.{} ",
                m.dev(),
                m.ino(),
                m.size(),
                m.mode(),
                m.uid(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec()
            );
        }
        Err(e) => {
            let _ = write!(out, "{name:?}:{:?} ", e.kind());
        }
    };
    stat(main, &main.display().to_string());
    let dir = dropin_dir(main);
    stat(&dir, "policy.d");
    if let Ok(entries) = fs::read_dir(&dir) {
        let mut names: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            stat(&dir.join(&name), &name.to_string_lossy());
        }
    }
    (out.replace('\n', " "), newest)
}

/// Writes the compiled policy atomically, root-only writable. A temporary name of this
/// process's own: two logins compiling at once never rename each other's half-written file.
pub fn write(path: &Path, policy: &Policy, identity: &str) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".policy.compiled.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(encode(policy, identity).as_bytes())?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Parses the policy as [`load`] does and, when it applies, writes its compiled form for the
/// next logins (not while a file of it changed within the last second: a second edit in the
/// same timestamp would go unseen). Why it was not written is returned beside the policy.
pub fn load_and_compile(main: &Path, compiled: &Path) -> (Loaded, Option<String>) {
    let (id, newest) = identity_and_newest(main);
    let loaded = load(main);
    if loaded.outcome != Outcome::Applied {
        // A default or refused policy is not cached: a stale copy could only be removed.
        let _ = fs::remove_file(compiled);
        return (loaded, None);
    }
    let now = SystemTime::now();
    if newest > now || now.duration_since(newest).is_ok_and(|age| age < SETTLED) {
        let _ = fs::remove_file(compiled);
        return (loaded, Some("the policy changed within the last second".into()));
    }
    let failed = write(compiled, &loaded.policy, &id)
        .err()
        .map(|e| format!("{}: {e}", compiled.display()));
    (loaded, failed)
}

/// A read-only mapping of the compiled file: the login reads a few lines of it, not all.
struct Mapped {
    at: NonNull<std::ffi::c_void>,
    len: NonZeroUsize,
}

impl Mapped {
    fn bytes(&self) -> &[u8] {
        // SAFETY: `at` maps `len` readable bytes until drop; the file is only ever replaced by
        // rename, never truncated in place, so the pages stay backed.
        unsafe { std::slice::from_raw_parts(self.at.as_ptr().cast::<u8>(), self.len.get()) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `open`, once.
        let _ = unsafe { munmap(self.at, self.len.get()) };
    }
}

/// The compiled policy, opened and checked against the policy files' identity.
pub struct CompiledPolicy {
    map: Mapped,
    header: Compiled,
}

impl CompiledPolicy {
    /// Opens the compiled form of the policy at `main`; why not, when it cannot be used.
    pub fn open(main: &Path, compiled: &Path) -> Result<CompiledPolicy, String> {
        let identity = identity(main);
        let file = open_nonblocking(compiled, false).map_err(|e| e.to_string())?;
        let meta = file.metadata().map_err(|e| e.to_string())?;
        let euid = nix::unistd::geteuid().as_raw();
        if !meta.is_file() || (meta.uid() != 0 && meta.uid() != euid) || meta.mode() & 0o022 != 0 {
            return Err("not a regular file of root's, writable by root only".into());
        }
        let dir = fs::metadata(compiled.parent().unwrap_or(Path::new("/"))).map_err(|e| e.to_string())?;
        if (dir.uid() != 0 && dir.uid() != euid) || dir.mode() & 0o022 != 0 {
            return Err("its directory is writable by others".into());
        }
        if meta.len() > MAX_COMPILED {
            return Err("too large".into());
        }
        let len = NonZeroUsize::new(meta.len() as usize).ok_or("empty")?;
        // SAFETY: a private read-only mapping of a file opened here; see `Mapped::bytes`.
        let at = unsafe { mmap(None, len, ProtFlags::PROT_READ, MapFlags::MAP_PRIVATE, &file, 0) }
            .map_err(|e| e.to_string())?;
        let map = Mapped { at, len };
        let header = Compiled::decode(map.bytes(), &identity)?;
        Ok(CompiledPolicy { map, header })
    }

    /// Whether the policy looks at a user's groups at all.
    pub fn reads_groups(&self) -> bool {
        self.header.reads_groups()
    }

    /// The policy as it applies to one account (`None`: everything but the overrides).
    pub fn policy_for(&self, account: Option<(u32, &str, &[&str])>) -> Result<Policy, String> {
        match account {
            Some((uid, name, groups)) => self.header.for_user(self.map.bytes(), uid, name, groups),
            None => Ok(self.header.base().clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    const POLICY: &str =
        "[users]\nmemory_max = \"2G\"\n[[override]]\nuser = \"alice\"\nmemory_max = \"3G\"\n";

    /// Lets the policy files age past [`SETTLED`], as an admin's edit has by the next login.
    fn settle() {
        std::thread::sleep(SETTLED + Duration::from_millis(50));
    }

    fn tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("tmp");
        let main = dir.path().join("etc/policy.toml");
        fs::create_dir_all(dir.path().join("etc/policy.d")).expect("mkdir");
        fs::write(&main, POLICY).expect("write");
        let compiled = dir.path().join("run/policy.compiled");
        settle();
        (dir, main, compiled)
    }

    fn alice_max(policy: &Policy) -> String {
        let limits = policy.limits_for(1001, "alice", &[]).expect("capped");
        limits.memory_max.map(|m| m.to_string()).unwrap_or_default()
    }

    fn cached_alice_max(main: &Path, compiled: &Path) -> Result<String, String> {
        let cached = CompiledPolicy::open(main, compiled)?;
        Ok(alice_max(&cached.policy_for(Some((1001, "alice", &[])))?))
    }

    #[test]
    fn an_edit_makes_the_next_login_parse_again() {
        let (_dir, main, compiled) = tree();
        assert!(CompiledPolicy::open(&main, &compiled).is_err(), "none yet");
        let (loaded, not_written) = load_and_compile(&main, &compiled);
        assert_eq!((loaded.outcome, not_written), (Outcome::Applied, None));
        assert_eq!(cached_alice_max(&main, &compiled).as_deref(), Ok("3G"));
        // Same size, in place: the times tell. Just edited: parsed, not compiled yet.
        fs::write(&main, POLICY.replace("3G", "4G")).expect("edit");
        assert!(cached_alice_max(&main, &compiled).is_err(), "stale after an edit");
        let (loaded, not_written) = load_and_compile(&main, &compiled);
        assert_eq!(alice_max(&loaded.policy), "4G");
        assert!(not_written.is_some_and(|why| why.contains("last second")));
        assert!(
            CompiledPolicy::open(&main, &compiled).is_err(),
            "nothing compiled yet"
        );
        settle();
        load_and_compile(&main, &compiled);
        assert_eq!(cached_alice_max(&main, &compiled).as_deref(), Ok("4G"));
        // A drop-in added, then a chmod that makes the policy refused.
        let dropin = main.with_file_name("policy.d/x.toml");
        fs::write(dropin, "[watchdog]\ngrace = \"15s\"\n").expect("write");
        assert!(
            CompiledPolicy::open(&main, &compiled).is_err(),
            "stale after a new drop-in"
        );
        settle();
        load_and_compile(&main, &compiled);
        assert!(CompiledPolicy::open(&main, &compiled).is_ok());
        fs::set_permissions(&main, fs::Permissions::from_mode(0o666)).expect("chmod");
        assert!(
            CompiledPolicy::open(&main, &compiled).is_err(),
            "stale after a chmod"
        );
        let (loaded, _) = load_and_compile(&main, &compiled);
        assert_eq!(loaded.outcome, Outcome::Fallback);
        assert!(!compiled.exists(), "a refused policy leaves nothing compiled");
    }

    #[test]
    fn a_corrupt_or_writable_compiled_file_is_not_used() {
        let (_dir, main, compiled) = tree();
        load_and_compile(&main, &compiled);
        let text = fs::read_to_string(&compiled).expect("read");
        fs::write(&compiled, &text[..text.len() / 2]).expect("cut");
        assert!(CompiledPolicy::open(&main, &compiled).is_err(), "cut short");
        fs::write(&compiled, "").expect("empty");
        assert!(CompiledPolicy::open(&main, &compiled).is_err(), "empty");
        fs::write(&compiled, &text).expect("restore");
        assert!(CompiledPolicy::open(&main, &compiled).is_ok());
        fs::set_permissions(&compiled, fs::Permissions::from_mode(0o666)).expect("chmod");
        assert!(
            CompiledPolicy::open(&main, &compiled).is_err(),
            "writable by others"
        );
        fs::remove_file(&compiled).expect("rm");
        std::os::unix::fs::symlink(&main, &compiled).expect("link");
        assert!(CompiledPolicy::open(&main, &compiled).is_err(), "a symlink");
    }
}
