//! The one root every host path is built from: `/` on a live box, a fixture tree in tests.

use std::path::{Path, PathBuf};

/// The environment variable that moves the root (tests only).
pub const ROOT_ENV: &str = "CONTAIN_ROOT";

/// The host paths contain uses, as the admin knows them; [`Root::path`] puts them under the root.
pub mod paths {
    /// The admin's policy.
    pub const POLICY: &str = "/etc/contain/policy.toml";
    /// The generator's status, the watchdog's counters.
    pub const STATE_DIR: &str = "/run/contain";
    /// The generator's status file.
    pub const GENERATOR_STATUS: &str = "/run/contain/generator.json";
    /// Where systemd-oomd reads runtime drop-ins.
    pub const OOMD_DIR: &str = "/run/systemd/oomd.conf.d";
    /// Where the watchdog leaves notices for users.
    pub const NOTICES: &str = "/var/lib/contain/notices";
    pub const CGROUP: &str = "/sys/fs/cgroup";
    pub const PROC: &str = "/proc";
    /// systemd-oomd's unit, where Debian has installed it (merged /usr and not).
    pub const OOMD_UNITS: [&str; 2] = [
        "/usr/lib/systemd/system/systemd-oomd.service",
        "/lib/systemd/system/systemd-oomd.service",
    ];
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    base: PathBuf,
}

impl Default for Root {
    fn default() -> Self {
        Root::new("/")
    }
}

impl Root {
    pub fn new(base: impl Into<PathBuf>) -> Root {
        Root { base: base.into() }
    }

    /// `CONTAIN_ROOT`, else `/`.
    pub fn from_env() -> Root {
        std::env::var_os(ROOT_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(Root::default, Root::new)
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// True on the real machine: only then are NSS, systemd and the journal asked.
    pub fn is_live(&self) -> bool {
        self.base == Path::new("/")
    }

    /// An absolute host path (`/sys/fs/cgroup`) under the root.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        self.base.join(abs.strip_prefix("/").unwrap_or(abs))
    }

    /// A cgroup directory (`/user.slice/user-1000.slice`) under the root's cgroupfs.
    pub fn cgroup(&self, rel: &str) -> PathBuf {
        self.path(paths::CGROUP).join(rel.trim_start_matches('/'))
    }

    /// Reads a small text file under the root (bounded, never blocking).
    pub fn read(&self, abs: &str) -> Option<String> {
        crate::files::read_small(&self.path(abs)).ok()
    }

    /// A path under the root as the admin would name it on the host.
    pub fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.base) {
            Ok(rel) if !self.is_live() => format!("/{}", rel.display()),
            _ => path.display().to_string(),
        }
    }

    /// The first of `candidates` that exists under the root.
    pub fn find(&self, candidates: &[&str]) -> Option<PathBuf> {
        candidates.iter().map(|c| self.path(c)).find(|p| p.exists())
    }

    /// systemd-oomd's unit file, if installed.
    pub fn oomd_unit(&self) -> Option<PathBuf> {
        self.find(&paths::OOMD_UNITS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_move_under_the_root() {
        let r = Root::new("/tmp/fx");
        assert_eq!(r.path("/etc/pam.d"), PathBuf::from("/tmp/fx/etc/pam.d"));
        assert_eq!(
            r.cgroup("/user.slice/user-1001.slice"),
            PathBuf::from("/tmp/fx/sys/fs/cgroup/user.slice/user-1001.slice")
        );
        assert_eq!(
            r.display(Path::new("/tmp/fx/etc/contain/policy.toml")),
            "/etc/contain/policy.toml"
        );
        assert!(!r.is_live());
        assert!(Root::default().is_live());
        assert_eq!(Root::default().path(paths::POLICY), PathBuf::from(paths::POLICY));
    }

    #[test]
    fn the_oomd_unit_is_looked_for_under_the_root_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let r = Root::new(dir.path());
        assert_eq!(r.oomd_unit(), None, "the host's own oomd unit is never seen");
        let unit = r.path(paths::OOMD_UNITS[1]);
        std::fs::create_dir_all(unit.parent().expect("parent")).expect("mkdir");
        std::fs::write(&unit, "[Unit]\n").expect("write");
        assert_eq!(r.oomd_unit(), Some(unit));
    }
}
