//! Module arguments, as written in the PAM stack: `session optional pam_contain.so debug timeout=2000`.

use contain_host::{Root, paths};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    pub policy: PathBuf,
    /// The policy compiled for logins (checked against the policy files before use).
    pub compiled: PathBuf,
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

/// Above SSSD's own LDAP timeouts (6 s) and a busy PID 1's answer on a loaded login node: a
/// login denied because systemd was slow would be a surprise. A dead bus fails at once.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(10_000);

impl Default for Args {
    fn default() -> Self {
        Args::under(&Root::default())
    }
}

impl Args {
    /// Every path under `root`: the live host, or a test's fixture tree (`root=DIR`).
    fn under(root: &Root) -> Args {
        Args {
            policy: root.path(paths::POLICY),
            compiled: root.path(contain_host::compiled::COMPILED_POLICY),
            debug: false,
            timeout: DEFAULT_TIMEOUT,
            cgroup_root: root.path(paths::CGROUP),
            proc_cgroup: root.path("/proc/self/cgroup"),
            notices: root.path(paths::NOTICES),
            panic_for_test: false,
        }
    }
}

/// Parses the arguments; unknown or malformed ones are returned as warnings and otherwise ignored,
/// as other PAM modules do.
pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> (Args, Vec<String>) {
    let args: Vec<&str> = args.into_iter().collect();
    // `root=` first: the paths named one by one below it still win.
    let mut out = match args
        .iter()
        .find_map(|a| a.strip_prefix("root="))
        .filter(|d| !d.is_empty())
    {
        Some(dir) => Args::under(&Root::new(dir)),
        None => Args::default(),
    };
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
            ("root", Some(v)) if !v.is_empty() => {}
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
    fn one_root_moves_every_path_and_single_paths_still_win() {
        let (a, w) = parse(["root=/tmp/fx", "timeout=300", "proc_cgroup=/tmp/odd"]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(a.policy, PathBuf::from("/tmp/fx/etc/contain/policy.toml"));
        assert_eq!(a.cgroup_root, PathBuf::from("/tmp/fx/sys/fs/cgroup"));
        assert_eq!(a.notices, PathBuf::from("/tmp/fx/var/lib/contain/notices"));
        assert_eq!(a.compiled, PathBuf::from("/tmp/fx/run/contain/policy.compiled"));
        assert_eq!(a.proc_cgroup, PathBuf::from("/tmp/odd"));
        assert_eq!(a.timeout, Duration::from_millis(300));
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
