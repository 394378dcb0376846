//! Module arguments, as written in the PAM stack: `session optional pam_contain.so debug timeout=2000`.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    pub policy: PathBuf,
    pub debug: bool,
    /// The budget for all of systemd's answers in one open_session.
    pub timeout: Duration,
    /// Where cgroupfs is mounted.
    pub cgroup_root: PathBuf,
    /// This process's cgroup file.
    pub proc_cgroup: PathBuf,
    /// Where the watchdog leaves notices for users.
    pub notices: PathBuf,
    /// Debug builds only: panic inside the hook, to show the host survives.
    pub panic_for_test: bool,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(2000);

impl Default for Args {
    fn default() -> Self {
        Args {
            policy: PathBuf::from(contain_host::paths::POLICY),
            debug: false,
            timeout: DEFAULT_TIMEOUT,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            proc_cgroup: PathBuf::from("/proc/self/cgroup"),
            notices: PathBuf::from(contain_host::paths::NOTICES),
            panic_for_test: false,
        }
    }
}

/// Parses the arguments; unknown or malformed ones are returned as warnings and otherwise ignored,
/// as other PAM modules do.
pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> (Args, Vec<String>) {
    let mut out = Args::default();
    let mut warnings = Vec::new();
    for arg in args {
        let (key, value) = match arg.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (arg, None),
        };
        match (key, value) {
            ("debug", None) => out.debug = true,
            ("policy", Some(v)) if !v.is_empty() => out.policy = v.into(),
            ("timeout", Some(v)) => match v.parse::<u64>() {
                Ok(ms) if ms > 0 => out.timeout = Duration::from_millis(ms),
                _ => warnings.push(format!(
                    "bad argument `{arg}`: timeout is in milliseconds, e.g. timeout=2000; using {} ms",
                    out.timeout.as_millis()
                )),
            },
            ("cgroup_root", Some(v)) if !v.is_empty() => out.cgroup_root = v.into(),
            ("proc_cgroup", Some(v)) if !v.is_empty() => out.proc_cgroup = v.into(),
            ("notices", Some(v)) if !v.is_empty() => out.notices = v.into(),
            // Debug builds only (the tests'): the packaged module has no way to panic on purpose.
            #[cfg(debug_assertions)]
            ("panic_for_test", None) => out.panic_for_test = true,
            _ => warnings.push(format!("unknown argument `{arg}`, ignored")),
        }
    }
    (out, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let (a, w) = parse([]);
        assert_eq!(a, Args::default());
        assert!(w.is_empty());
        let (a, w) = parse([
            "debug",
            "policy=/tmp/p.toml",
            "timeout=300",
            "cgroup_root=/tmp/cg",
        ]);
        assert!(a.debug);
        assert_eq!(a.policy, PathBuf::from("/tmp/p.toml"));
        assert_eq!(a.timeout, Duration::from_millis(300));
        assert_eq!(a.cgroup_root, PathBuf::from("/tmp/cg"));
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn bad_arguments_warn_and_keep_defaults() {
        let (a, w) = parse(["timeout=soon", "timeout=0", "verbose", "policy="]);
        assert_eq!(a, Args::default());
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(w[0].contains("milliseconds"), "{}", w[0]);
        assert!(w[2].contains("unknown argument `verbose`"), "{}", w[2]);
    }
}
