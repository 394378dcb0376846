//! The kernel's own OOM reports from /dev/kmsg: which process the OOM killer chose, in which
//! memory cgroup. cgroupfs counts kills but never names the victim.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, RawFd};
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
pub fn parse_message(msg: &str) -> Option<KernelKill> {
    if let Some(rest) = msg.strip_prefix("oom-kill:") {
        let field = |key: &str| -> Option<&str> {
            let start = rest.find(&format!("{key}="))? + key.len() + 1;
            let tail = &rest[start..];
            Some(tail.split(',').next().unwrap_or(tail))
        };
        // The task name may hold commas; it ends where `,pid=` starts.
        let task_start = rest.find(",task=")? + ",task=".len();
        let pid_at = rest.rfind(",pid=")?;
        let comm = rest.get(task_start..pid_at)?.to_string();
        return Some(KernelKill {
            pid: field("pid")?.parse().ok()?,
            comm,
            oom_memcg: field("oom_memcg").map(str::to_string),
            constraint: field("constraint").map(str::to_string),
            uid: field("uid").and_then(|u| u.parse().ok()),
        });
    }
    // "Memory cgroup out of memory: Killed process 1234 (stress-ng) total-vm:…, UID:1001 …"
    let at = msg.find("Killed process ")?;
    let rest = &msg[at + "Killed process ".len()..];
    let (pid, rest) = rest.split_once(" (")?;
    let close = rest.rfind(") total-vm").or_else(|| rest.rfind(')'))?;
    let comm = rest[..close].to_string();
    let uid = rest
        .find("UID:")
        .and_then(|i| rest[i + 4..].split_whitespace().next())
        .and_then(|u| u.parse().ok());
    Some(KernelKill {
        pid: pid.parse().ok()?,
        comm,
        oom_memcg: None,
        constraint: msg
            .starts_with("Memory cgroup out of memory")
            .then(|| "CONSTRAINT_MEMCG".to_string()),
        uid,
    })
}

/// A non-blocking reader of new kmsg records, keeping the last few OOM kills.
pub struct Kmsg {
    file: File,
    pub recent: Vec<KernelKill>,
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

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
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
        // The summary line comes first; the "Killed process" line for the same pid adds nothing.
        if let Some(seen) = self.recent.iter_mut().find(|k| k.pid == kill.pid) {
            if seen.oom_memcg.is_none() && kill.oom_memcg.is_some() {
                *seen = kill;
            }
            return;
        }
        self.recent.push(kill);
        if self.recent.len() > KEEP {
            self.recent.remove(0);
        }
    }

    /// Takes the kill reported for `cgroup` (or, with no summary line, for one of `pids`).
    pub fn claim(&mut self, cgroup: &str, pids: &[u32], uid: Option<u32>) -> Option<KernelKill> {
        let i = self
            .recent
            .iter()
            .position(|k| k.oom_memcg.as_deref() == Some(cgroup))
            .or_else(|| self.recent.iter().position(|k| pids.contains(&k.pid)))
            .or_else(|| {
                let uid = uid?;
                self.recent
                    .iter()
                    .position(|k| k.uid == Some(uid) && k.oom_memcg.is_none())
            })?;
        Some(self.recent.remove(i))
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
    }

    #[test]
    fn records_from_a_file_are_merged_and_claimed_by_cgroup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kmsg");
        std::fs::write(&path, "6,1,1,-;old record before we started\n").expect("write");
        let mut k = Kmsg::open(&path).expect("open");
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
