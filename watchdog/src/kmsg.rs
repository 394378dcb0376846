//! The kernel's own OOM reports from /dev/kmsg: which process the OOM killer chose, in which
//! memory cgroup. cgroupfs counts kills but never names the victim.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// One OOM kill as the kernel reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelKill {
    pub pid: u32,
    pub comm: String,
    /// The cgroup whose limit was hit (`/user.slice/user-1001.slice`); `None` when only the
    /// "Killed process" line was seen (the summary line is rate-limited by the kernel).
    pub oom_memcg: Option<String>,
    /// `CONSTRAINT_MEMCG`, `CONSTRAINT_NONE` (the whole machine), …
    pub constraint: Option<String>,
    pub uid: Option<u32>,
}

/// Parses the text of one kmsg record (after the `prio,seq,ts,flags;` header).
///
/// Cgroup paths and process names in these lines are the user's choice of bytes, so nothing is
/// found by searching for `pid=` or `task=`: each line is read in the order the kernel writes it
/// (mm/oom_kill.c), its numeric fields anchored at the end.
pub fn parse_message(msg: &str) -> Option<KernelKill> {
    if let Some(rest) = msg.strip_prefix("oom-kill:") {
        return parse_summary(rest);
    }
    parse_killed(msg)
}

fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `constraint=C,nodemask=N,cpuset=PATH,mems_allowed=M,oom_memcg=PATH|global_oom,
/// task_memcg=PATH,task=COMM,pid=N,uid=N` (dump_oom_victim). `pid` and `uid` are anchored at
/// the end. `oom_memcg` is taken only when every split of the line in the kernel's order, with
/// the victim's cgroup inside it, gives the same one: a cgroup or process named to look like
/// these fields makes it unknown (the kill is then matched by pid), never someone else's.
fn parse_summary(rest: &str) -> Option<KernelKill> {
    let (head, uid) = rest.rsplit_once(",uid=")?;
    let (head, pid) = head.rsplit_once(",pid=")?;
    let (pid, uid) = (number::<u32>(pid)?, number::<u32>(uid)?);
    let constraint = rest
        .strip_prefix("constraint=")
        .and_then(|r| r.split(',').next())
        .filter(|c| c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') && !c.is_empty())
        .map(str::to_string);
    const OOM: &str = ",oom_memcg=";
    const TASK_MEMCG: &str = ",task_memcg=";
    const TASK: &str = ",task=";
    let mut splits: Vec<(&str, &str)> = Vec::new();
    for (i, _) in head.match_indices(OOM) {
        let o_start = i + OOM.len();
        for (j, _) in head[o_start..].match_indices(TASK_MEMCG) {
            let oom_memcg = &head[o_start..o_start + j];
            let t_start = o_start + j + TASK_MEMCG.len();
            for (k, _) in head[t_start..].match_indices(TASK) {
                let task_memcg = &head[t_start..t_start + k];
                let inside = task_memcg == oom_memcg
                    || task_memcg
                        .strip_prefix(oom_memcg)
                        .is_some_and(|r| r.starts_with('/') || oom_memcg.ends_with('/'));
                if oom_memcg.starts_with('/') && inside {
                    splits.push((oom_memcg, &head[t_start + k + TASK.len()..]));
                }
            }
        }
    }
    let oom_memcg = match splits.first() {
        Some((first, _)) if splits.iter().all(|(o, _)| o == first) => Some(first.to_string()),
        _ => None,
    };
    // The name is only shown; the "Killed process" line, anchored at both ends, corrects it.
    let comm = match splits.first() {
        Some((_, comm)) => comm,
        None => {
            let after = head.find(TASK_MEMCG).map_or(head, |j| &head[j..]);
            &after[after.find(TASK)? + TASK.len()..]
        }
    };
    Some(KernelKill {
        pid,
        comm: comm.to_string(),
        oom_memcg,
        constraint,
        uid: Some(uid),
    })
}

/// `Memory cgroup out of memory: Killed process PID (COMM) total-vm:NkB, anon-rss:NkB,
/// file-rss:NkB, shmem-rss:NkB, UID:N pgtables:NkB oom_score_adj:N` (__oom_kill_process), or
/// `Out of memory…: Killed process …` for the whole machine. The name ends at the last
/// `) total-vm:`: everything after it is the kernel's numbers.
fn parse_killed(msg: &str) -> Option<KernelKill> {
    const KILLED: &str = ": Killed process ";
    let (cause, rest) = msg.split_once(KILLED)?;
    let memcg = cause == "Memory cgroup out of memory";
    if !memcg && !cause.starts_with("Out of memory") {
        return None;
    }
    let (pid, rest) = rest.split_once(" (")?;
    let close = rest.rfind(") total-vm:")?;
    let tail = &rest[close..];
    let uid = tail
        .split_once(" UID:")
        .and_then(|(_, u)| u.split_whitespace().next())
        .and_then(number);
    Some(KernelKill {
        pid: number(pid)?,
        comm: rest[..close].to_string(),
        oom_memcg: None,
        constraint: memcg.then(|| "CONSTRAINT_MEMCG".to_string()),
        uid,
    })
}

/// A non-blocking reader of new kmsg records, keeping the last few OOM kills.
pub struct Kmsg {
    file: File,
    recent: Vec<Seen>,
}

/// A kill as its lines came in.
#[derive(Debug)]
struct Seen {
    kill: KernelKill,
    /// Its "Killed process" line has come.
    named: bool,
    /// Reported from its summary before that line came: kept only to take the line when it does.
    claimed: bool,
}

const KEEP: usize = 32;

impl Kmsg {
    /// Opens `path` positioned at its end: only kills from now on are of interest.
    pub fn open(path: &Path) -> io::Result<Kmsg> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        file.seek(SeekFrom::End(0))?;
        Ok(Kmsg {
            file,
            recent: Vec::new(),
        })
    }

    /// Reads every record available now.
    pub fn drain(&mut self) {
        let mut buf = [0u8; 8192];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => self.take(&String::from_utf8_lossy(&buf[..n])),
                // EPIPE: records were overwritten before we read them; go on with the next.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    fn take(&mut self, record: &str) {
        // Continuation lines (" SUBSYSTEM=…") follow the first line; only the message matters.
        let first = record.lines().next().unwrap_or("");
        let Some((_, msg)) = first.split_once(';') else {
            return;
        };
        let Some(kill) = parse_message(msg) else {
            return;
        };
        // One kill, two lines: the cgroup comes from the summary, the name from the
        // "Killed process" line (anchored at both ends, it cannot be misread).
        let summary = msg.starts_with("oom-kill:");
        if let Some(i) = self.recent.iter().position(|s| s.kill.pid == kill.pid) {
            let seen = &mut self.recent[i];
            if summary {
                seen.kill.oom_memcg = kill.oom_memcg;
                seen.kill.constraint = kill.constraint.or(seen.kill.constraint.take());
                seen.kill.uid = kill.uid.or(seen.kill.uid);
            } else if seen.claimed {
                self.recent.remove(i);
            } else {
                seen.kill.comm = kill.comm;
                seen.named = true;
            }
            return;
        }
        self.recent.push(Seen {
            kill,
            named: !summary,
            claimed: false,
        });
        if self.recent.len() > KEEP {
            self.recent.remove(0);
        }
    }

    /// Takes the kill reported for `cgroup` (or, with no summary line, for one of `pids`).
    pub fn claim(&mut self, cgroup: &str, pids: &[u32], uid: Option<u32>) -> Option<KernelKill> {
        let open = |s: &Seen| !s.claimed;
        let i = self
            .recent
            .iter()
            .position(|s| open(s) && s.kill.oom_memcg.as_deref() == Some(cgroup))
            .or_else(|| {
                self.recent
                    .iter()
                    .position(|s| open(s) && pids.contains(&s.kill.pid))
            })
            .or_else(|| {
                let uid = uid?;
                self.recent
                    .iter()
                    .position(|s| open(s) && s.kill.uid == Some(uid) && s.kill.oom_memcg.is_none())
            })?;
        if self.recent[i].named {
            return Some(self.recent.remove(i).kill);
        }
        self.recent[i].claimed = true;
        Some(self.recent[i].kill.clone())
    }
}

impl AsFd for Kmsg {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/user.slice/user-1001.slice,task_memcg=/user.slice/user-1001.slice/session-3.scope,task=stress-ng-vm,pid=1234,uid=1001";
    const KILLED: &str = "Memory cgroup out of memory: Killed process 1234 (stress-ng-vm) total-vm:760000kB, anon-rss:700000kB, file-rss:0kB, shmem-rss:0kB, UID:1001 pgtables:1400kB oom_score_adj:0";

    #[test]
    fn both_report_lines_parse() {
        let k = parse_message(SUMMARY).expect("summary");
        assert_eq!(k.pid, 1234);
        assert_eq!(k.comm, "stress-ng-vm");
        assert_eq!(k.oom_memcg.as_deref(), Some("/user.slice/user-1001.slice"));
        assert_eq!(k.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
        assert_eq!(k.uid, Some(1001));
        let k = parse_message(KILLED).expect("killed");
        assert_eq!(
            (k.pid, k.comm.as_str(), k.uid),
            (1234, "stress-ng-vm", Some(1001))
        );
        assert_eq!(k.oom_memcg, None);
        assert_eq!(parse_message("usb 1-1: new device"), None);
        let odd = SUMMARY.replace("task=stress-ng-vm", "task=a,b (x)");
        assert_eq!(parse_message(&odd).map(|k| k.comm), Some("a,b (x)".to_string()));
        let global = "Out of memory: Killed process 99 (java) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:1002 pgtables:1kB oom_score_adj:0";
        let k = parse_message(global).expect("global");
        assert_eq!(
            (k.pid, k.comm.as_str(), k.uid, k.constraint),
            (99, "java", Some(1002), None)
        );
    }

    /// Names the user chooses: a process name (15 bytes) and cgroups in their delegated subtree.
    #[test]
    fn names_shaped_like_fields_cannot_spoof_the_report() {
        // A process named to carry its own pid and uid.
        let named = SUMMARY.replace("task=stress-ng-vm", "task=x,pid=1,uid=0");
        let k = parse_message(&named).expect("parsed");
        assert_eq!((k.pid, k.uid), (1234, Some(1001)));
        assert_eq!(k.comm, "x,pid=1,uid=0");
        assert_eq!(k.oom_memcg.as_deref(), Some("/user.slice/user-1001.slice"));

        // A scope named to carry another pid and task: the victim is still pid 1234.
        let scope = SUMMARY.replace("session-3.scope", "a,task=sshd,pid=1,uid=0,task=b");
        let k = parse_message(&scope).expect("parsed");
        assert_eq!((k.pid, k.uid), (1234, Some(1001)));
        assert_eq!(k.oom_memcg.as_deref(), Some("/user.slice/user-1001.slice"));

        // The cpuset path (the allocating task's) is written before oom_memcg: named to pass as
        // another user's cgroup, it makes the cgroup unknown, never the other user's.
        let cpuset = SUMMARY.replace(
            "cpuset=/",
            "cpuset=/user.slice/user-1001.slice/x,oom_memcg=/user.slice/user-1002.slice,task_memcg=/user.slice/user-1002.slice/y",
        );
        let k = parse_message(&cpuset).expect("parsed");
        assert_eq!(k.pid, 1234);
        assert_ne!(k.oom_memcg.as_deref(), Some("/user.slice/user-1002.slice"));

        // "Killed process": the name cannot carry a UID or another pid.
        let killed = KILLED.replace("(stress-ng-vm)", "(x) UID:0 y)");
        let k = parse_message(&killed).expect("parsed");
        assert_eq!((k.pid, k.uid, k.comm.as_str()), (1234, Some(1001), "x) UID:0 y"));
        let killed = KILLED.replace("(stress-ng-vm)", "(a) total-vm:1kB, UID:0 pgtables:1kB (b)");
        let k = parse_message(&killed).expect("parsed");
        assert_eq!(k.uid, Some(1001));
        assert!(parse_message("audit: Killed process 1 (init) total-vm:1kB, UID:0").is_none());
    }

    /// A Kmsg over a regular file that holds `records` before it is opened; the directory
    /// lives as long as the returned guard.
    fn kmsg_over(records: &str) -> (tempfile::TempDir, Kmsg) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kmsg");
        std::fs::write(&path, records).expect("write");
        let k = Kmsg::open(&path).expect("open");
        (dir, k)
    }

    #[test]
    fn the_name_comes_from_the_killed_line_the_cgroup_from_the_summary() {
        let (_dir, mut k) = kmsg_over("");
        let scope = SUMMARY.replace("session-3.scope", "s,task=t");
        k.take(&format!("3,2,100,-;{scope}\n"));
        k.take(&format!("3,3,101,-;{KILLED}\n"));
        let got = k
            .claim("/user.slice/user-1001.slice", &[], None)
            .expect("claimed");
        assert_eq!((got.pid, got.comm.as_str()), (1234, "stress-ng-vm"));
    }

    #[test]
    fn a_killed_line_after_its_summary_was_claimed_is_no_new_kill() {
        let (_dir, mut k) = kmsg_over("");
        k.take(&format!("3,2,100,-;{SUMMARY}\n"));
        let got = k
            .claim("/user.slice/user-1001.slice", &[], None)
            .expect("claimed");
        assert_eq!(got.pid, 1234);
        k.take(&format!("3,3,101,-;{KILLED}\n"));
        assert!(k.recent.is_empty(), "{:?}", k.recent);
        assert_eq!(k.claim("/x", &[], Some(1001)), None);
        // The pid's next kill is one.
        k.take(&format!("3,4,102,-;{KILLED}\n"));
        assert_eq!(k.claim("/x", &[1234], None).map(|k| k.pid), Some(1234));
    }

    #[test]
    fn records_from_a_file_are_merged_and_claimed_by_cgroup() {
        let (_dir, mut k) = kmsg_over("6,1,1,-;old record before we started\n");
        // kmsg hands out one record per read; a regular file hands out all at once, so feed one.
        k.take(&format!("3,2,100,-;{SUMMARY}\n SUBSYSTEM=x\n"));
        k.take(&format!("3,3,101,-;{KILLED}\n"));
        assert_eq!(k.recent.len(), 1);
        assert_eq!(k.claim("/user.slice/user-1002.slice", &[77], Some(1002)), None);
        let got = k
            .claim("/user.slice/user-1001.slice", &[], None)
            .expect("claimed");
        assert_eq!(got.pid, 1234);
        assert!(k.recent.is_empty());
        // A lone "Killed process" line is matched by pid, then by uid.
        k.take(&format!("3,4,102,-;{KILLED}\n"));
        assert_eq!(k.claim("/x", &[1234], None).map(|k| k.pid), Some(1234));
        k.take(&format!("3,5,103,-;{KILLED}\n"));
        assert_eq!(k.claim("/x", &[], Some(1001)).map(|k| k.pid), Some(1234));
    }
}
