//! The cgroup v2 files the watchdog reads, parsed as the kernel formats them, and which
//! cgroups are capped by the policy.

use crate::decide::Sample;
use contain_host::Cap;
use contain_host::cgroupfs::key_value;
pub use contain_host::cgroupfs::{pressure_some_total, slice_path};
use contain_policy::Policy;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// memory.high / memory.max: `max` → `Some(None)`, bytes → `Some(Some(n))`, anything else → `None`.
pub fn parse_limit(text: &str) -> Option<Option<u64>> {
    Cap::parse(text).map(Cap::value)
}

/// One `key value` from a flat-keyed file such as memory.events; 0 when absent.
pub fn flat_key(text: &str, key: &str) -> u64 {
    key_value(text, key).unwrap_or(0)
}

fn read(dir: &Path, file: &str) -> io::Result<String> {
    fs::read_to_string(dir.join(file))
}

fn invalid(dir: &Path, file: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: unexpected contents", dir.join(file).display()),
    )
}

/// Reads a cgroup's limit file as `max` or bytes.
pub fn read_limit(dir: &Path, file: &str) -> io::Result<Option<u64>> {
    parse_limit(&read(dir, file)?).ok_or_else(|| invalid(dir, file))
}

/// Reads everything the decision needs from one cgroup directory.
pub fn read_sample(dir: &Path, at_ms: u64) -> io::Result<Sample> {
    let current = read(dir, "memory.current")?
        .trim()
        .parse()
        .map_err(|_| invalid(dir, "memory.current"))?;
    let events = read(dir, "memory.events")?;
    Ok(Sample {
        at_ms,
        current,
        high: read_limit(dir, "memory.high")?,
        max: read_limit(dir, "memory.max")?,
        high_events: flat_key(&events, "high"),
        oom_kills: flat_key(&events, "oom_kill"),
        stall_us: read(dir, "memory.pressure")
            .ok()
            .and_then(|t| pressure_some_total(&t)),
    })
}

/// What a watched cgroup is, for messages and notices.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    User { uid: u32, name: String },
    Tree { name: String },
    Docker,
}

/// A capped cgroup to watch: its path below the cgroup root (`/user.slice/user-1001.slice`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub cgroup: String,
    pub kind: Kind,
}

fn rel(path: &Path) -> String {
    format!("/{}", path.display())
}

fn entries(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

fn has_memory_limits(limits: &contain_policy::Limits) -> bool {
    limits.memory_high.is_some() || limits.memory_max.is_some()
}

/// Every capped cgroup present under `root` now. `user_name` maps a UID to its login name.
///
/// User slices are judged by the policy (exempt users are skipped) while the limits
/// themselves are read from cgroupfs at each sample: those are what the kernel enforces,
/// including runtime repairs by pam_contain and `systemctl set-property`.
pub fn discover(root: &Path, policy: &Policy, user_name: &dyn Fn(u32) -> Option<String>) -> Vec<Target> {
    let mut out = Vec::new();
    for entry in entries(&root.join("user.slice")) {
        let Some(uid) = entry
            .strip_prefix("user-")
            .and_then(|s| s.strip_suffix(".slice"))
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let name = user_name(uid).unwrap_or_else(|| uid.to_string());
        if policy.exemption(uid, &name).is_some() {
            continue;
        }
        out.push(Target {
            cgroup: format!("/user.slice/{entry}"),
            kind: Kind::User { uid, name },
        });
    }
    for tree in &policy.trees {
        if !has_memory_limits(&tree.limits) {
            continue;
        }
        let slice = slice_path(&tree.slice);
        let kind = Kind::Tree {
            name: tree.name.clone(),
        };
        match &tree.service {
            Some(service) => {
                let template = service.find('@').map(|at| &service[..=at]);
                for entry in entries(&root.join(&slice)) {
                    let hit = match template {
                        Some(prefix) => {
                            entry.starts_with(prefix) && entry.ends_with(".service") && entry != *service
                        }
                        None => entry == *service,
                    };
                    if hit {
                        out.push(Target {
                            cgroup: rel(&slice.join(&entry)),
                            kind: kind.clone(),
                        });
                    }
                }
            }
            None => {
                if root.join(&slice).is_dir() && !slice.as_os_str().is_empty() {
                    out.push(Target {
                        cgroup: rel(&slice),
                        kind,
                    });
                }
            }
        }
    }
    if policy.docker.enabled && has_memory_limits(&policy.docker.limits) && root.join("docker.slice").is_dir()
    {
        out.push(Target {
            cgroup: "/docker.slice".into(),
            kind: Kind::Docker,
        });
    }
    out.sort();
    out.dedup_by(|a, b| a.cgroup == b.cgroup);
    out
}

/// The directories whose children come and go as capped cgroups do (relative, `""` = root):
/// watched for IN_CREATE / IN_DELETE so a new login or service instance is picked up at once.
pub fn parent_dirs(policy: &Policy) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("user.slice"), PathBuf::new()];
    for tree in &policy.trees {
        let slice = slice_path(&tree.slice);
        match (&tree.service, slice.parent()) {
            (Some(_), _) => dirs.push(slice),
            (None, Some(parent)) => dirs.push(parent.to_path_buf()),
            (None, None) => {}
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The nearest existing directory at or above `rel` under `root`: a slice that does not exist
/// yet is watched through its parent, and picked up when it appears.
pub fn nearest_existing(root: &Path, rel: &Path) -> PathBuf {
    let mut p = rel.to_path_buf();
    loop {
        if root.join(&p).is_dir() || p.as_os_str().is_empty() {
            return p;
        }
        if !p.pop() {
            return PathBuf::new();
        }
    }
}

/// One process in a cgroup subtree, as /proc describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub comm: String,
    /// Resident plus swapped-out memory, bytes: what the OOM killer weighs.
    pub size: u64,
    pub oom_score_adj: i32,
    /// The real UID (`Uid:` in /proc/PID/status): root's processes are never a user's runaway.
    pub uid: Option<u32>,
}

/// Every process in the cgroup at `dir` and below.
pub fn processes(dir: &Path, proc_root: &Path) -> Vec<Proc> {
    let mut pids = Vec::new();
    collect_pids(dir, &mut pids, 0);
    pids.sort_unstable();
    pids.dedup();
    pids.into_iter()
        .filter_map(|pid| read_proc(proc_root, pid))
        .collect()
}

fn collect_pids(dir: &Path, pids: &mut Vec<u32>, depth: u32) {
    // cgroup trees are shallow; the bound only guards against a pathological one.
    if depth > 32 {
        return;
    }
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    for entry in entries(dir) {
        collect_pids(&dir.join(entry), pids, depth + 1);
    }
}

fn read_proc(proc_root: &Path, pid: u32) -> Option<Proc> {
    let dir = proc_root.join(pid.to_string());
    let status = fs::read_to_string(dir.join("status")).ok()?;
    let field = |key: &str| -> Option<&str> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
            .map(str::trim)
    };
    // Zombies and exiting tasks hold no memory and are not candidates.
    if field("State").is_some_and(|s| s.starts_with('Z') || s.starts_with('X')) {
        return None;
    }
    let kb = |key: &str| -> u64 {
        field(key)
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let comm = field("Name").unwrap_or("?").to_string();
    let oom_score_adj = fs::read_to_string(dir.join("oom_score_adj"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let uid = field("Uid").and_then(|v| v.split_whitespace().next()?.parse().ok());
    Some(Proc {
        pid,
        comm,
        size: kb("VmRSS") + kb("VmSwap") + kb("VmPTE"),
        oom_score_adj,
        uid,
    })
}

/// The process the kernel's memcg OOM killer would pick under `limit`: the largest by
/// size + oom_score_adj × limit / 1000, never one with oom_score_adj -1000 (as oom_badness).
pub fn likely_victim(procs: &[Proc], limit: u64) -> Option<&Proc> {
    procs
        .iter()
        .filter(|p| p.oom_score_adj > -1000)
        .max_by_key(|p| p.size as i128 + p.oom_score_adj as i128 * limit as i128 / 1000)
}

/// A process still counts as alive while it is in the cgroup and not a zombie.
pub fn alive_in(procs: &[Proc], pid: u32) -> bool {
    procs.iter().any(|p| p.pid == pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use contain_policy::{Source, parse};

    #[test]
    fn kernel_formats_parse() {
        assert_eq!(parse_limit("max\n"), Some(None));
        assert_eq!(parse_limit("629145600\n"), Some(Some(629145600)));
        assert_eq!(parse_limit("lots"), None);
        let events = "low 0\nhigh 1836\nmax 0\noom 0\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(flat_key(events, "high"), 1836);
        assert_eq!(flat_key(events, "oom_kill"), 2);
        assert_eq!(flat_key(events, "oom"), 0);
        let psi = "some avg10=91.20 avg60=40.00 avg300=9.00 total=123456789\nfull avg10=90.00 avg60=39.00 avg300=8.00 total=120000000\n";
        assert_eq!(pressure_some_total(psi), Some(123456789));
        assert_eq!(pressure_some_total("full avg10=0.00 total=5\n"), None);
    }

    #[test]
    fn slices_nest_by_dash() {
        assert_eq!(slice_path("user.slice"), PathBuf::from("user.slice"));
        assert_eq!(
            slice_path("system-t3\\x2dserve.slice"),
            PathBuf::from("system.slice/system-t3\\x2dserve.slice")
        );
        assert_eq!(
            slice_path("a-b-c.slice"),
            PathBuf::from("a.slice/a-b.slice/a-b-c.slice")
        );
        assert_eq!(slice_path("-.slice"), PathBuf::new());
    }

    fn policy(text: &str) -> Policy {
        parse(&[Source { path: "t.toml", text }]).expect("valid test policy")
    }

    #[test]
    fn capped_cgroups_are_found_and_exempt_ones_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for d in [
            "user.slice/user-0.slice",
            "user.slice/user-999.slice",
            "user.slice/user-1001.slice",
            "user.slice/user-1002.slice",
            "user.slice/user-1003.slice",
            "user.slice/user@1001.service",
            "system.slice/system-t3\\x2dserve.slice/t3-serve@a.service",
            "system.slice/system-t3\\x2dserve.slice/t3-serve@b.service",
            "system.slice/system-t3\\x2dserve.slice/other@a.service",
            "system.slice/ssh.service",
            "build.slice/build-ci.slice",
            "docker.slice",
        ] {
            fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        let p = policy(
            r#"
[users]
memory_high = "600M"
memory_max = "800M"
exempt_users = ["carol"]
[trees.t3]
service = "t3-serve@.service"
memory_high = "300M"
memory_max = "400M"
[trees.ci]
slice = "build-ci.slice"
memory_max = "1G"
[docker]
memory_max = "300M"
"#,
        );
        let names = |uid: u32| match uid {
            1001 => Some("alice".to_string()),
            1003 => Some("carol".to_string()),
            _ => None,
        };
        let found: Vec<(String, Kind)> = discover(root, &p, &names)
            .into_iter()
            .map(|t| (t.cgroup, t.kind))
            .collect();
        let user = |uid, name: &str| Kind::User {
            uid,
            name: name.into(),
        };
        let t3 = Kind::Tree { name: "t3".into() };
        assert_eq!(
            found,
            vec![
                (
                    "/build.slice/build-ci.slice".into(),
                    Kind::Tree { name: "ci".into() }
                ),
                ("/docker.slice".into(), Kind::Docker),
                (
                    "/system.slice/system-t3\\x2dserve.slice/t3-serve@a.service".into(),
                    t3.clone()
                ),
                (
                    "/system.slice/system-t3\\x2dserve.slice/t3-serve@b.service".into(),
                    t3
                ),
                ("/user.slice/user-1001.slice".into(), user(1001, "alice")),
                // No passwd entry: still capped, named by UID.
                ("/user.slice/user-1002.slice".into(), user(1002, "1002")),
            ]
        );
        let parents = parent_dirs(&p);
        assert!(parents.contains(&PathBuf::from("system.slice/system-t3\\x2dserve.slice")));
        assert!(parents.contains(&PathBuf::from("build.slice")));
        assert!(parents.contains(&PathBuf::from("user.slice")));
        fs::remove_dir_all(root.join("system.slice/system-t3\\x2dserve.slice")).expect("rm");
        assert_eq!(
            nearest_existing(root, Path::new("system.slice/system-t3\\x2dserve.slice")),
            PathBuf::from("system.slice")
        );
    }

    #[test]
    fn docker_disabled_is_not_watched() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("docker.slice")).expect("mkdir");
        let p = policy("[users]\nmemory_max = \"1G\"\n[docker]\nenabled = false\n");
        assert!(discover(dir.path(), &p, &|_| None).is_empty());
    }

    #[test]
    fn victim_is_the_biggest_killable_process() {
        let p = |pid, size, adj| Proc {
            pid,
            comm: format!("p{pid}"),
            size,
            oom_score_adj: adj,
            uid: Some(1001),
        };
        let g = 1u64 << 30;
        let procs = vec![p(1, g / 10, 0), p(2, g / 2, 0), p(3, g, -1000), p(4, g / 4, 500)];
        // 4: 256M + 500/1000 × 1G = 768M beats 2's 512M; 3 is unkillable.
        assert_eq!(likely_victim(&procs, g).map(|v| v.pid), Some(4));
        assert_eq!(likely_victim(&procs[..3], g).map(|v| v.pid), Some(2));
        assert_eq!(likely_victim(&procs[2..3], g), None);
    }

    #[test]
    fn processes_are_read_recursively_and_zombies_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cg = dir.path().join("cg");
        let proc_root = dir.path().join("proc");
        fs::create_dir_all(cg.join("session-1.scope")).expect("mkdir");
        fs::write(cg.join("cgroup.procs"), "").expect("write");
        fs::write(cg.join("session-1.scope/cgroup.procs"), "10\n11\n12\n").expect("write");
        let status = |name: &str, state: &str, rss: u64| {
            format!("Name:\t{name}\nState:\t{state}\nVmRSS:\t{rss} kB\nVmSwap:\t0 kB\nVmPTE:\t8 kB\n")
        };
        for (pid, text) in [
            (10, status("bash", "S (sleeping)", 4000)),
            (11, status("stress-ng", "D (disk sleep)", 700_000)),
            (12, status("gone", "Z (zombie)", 0)),
        ] {
            fs::create_dir_all(proc_root.join(pid.to_string())).expect("mkdir");
            fs::write(proc_root.join(format!("{pid}/status")), text).expect("write");
        }
        fs::write(proc_root.join("10/oom_score_adj"), "0\n").expect("write");
        let procs = processes(&cg, &proc_root);
        assert_eq!(procs.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![10, 11]);
        assert_eq!(procs[1].comm, "stress-ng");
        assert_eq!(procs[1].size, (700_000 + 8) * 1024);
        assert_eq!(likely_victim(&procs, 800 << 20).map(|p| p.pid), Some(11));
    }
}
