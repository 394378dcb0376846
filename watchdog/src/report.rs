//! Telling about a kill: the journal (structured), the counters for `containctl`, and the
//! one-line notice pam_contain shows the user at their next login.

use contain_host::{Root, paths};
use contain_policy::value::human_bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Why a process died.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The watchdog ended it: throttled at memory.high for the grace period.
    Throttled,
    /// The kernel's OOM killer, at this cgroup's memory.max.
    MemoryMax,
    /// The kernel's OOM killer, at the limit of an enclosing cgroup (e.g. user.slice).
    ParentLimit,
    /// The kernel's OOM killer, with the whole machine out of memory.
    SystemOom,
    /// The kernel's OOM killer; its report was not seen (it is rate-limited).
    Oom,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Throttled => "throttled",
            Reason::MemoryMax => "memory_max",
            Reason::ParentLimit => "parent_limit",
            Reason::SystemOom => "system_oom",
            Reason::Oom => "oom",
        }
    }
}

/// One kill, as recorded in `recent` and sent to the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kill {
    /// Unix seconds.
    pub time: u64,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub cgroup: String,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// The cgroup's memory.current when it was acted on or seen, bytes.
    pub usage: u64,
    /// memory.high and memory.max in bytes; `None` for `max`.
    pub high: Option<u64>,
    pub max: Option<u64>,
    pub reason: Reason,
    /// How long it sat throttled (watchdog kills), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_secs: Option<u64>,
    /// memory.swap.max was 0: nothing could be swapped out to make room.
    #[serde(default)]
    pub no_swap: bool,
}

fn size(v: Option<u64>) -> String {
    v.map_or_else(|| "no limit".to_string(), human_bytes)
}

impl Kill {
    fn process(&self) -> String {
        match (&self.comm, self.pid) {
            (Some(c), Some(p)) => format!("\"{}\" (pid {p})", clean(c)),
            (None, Some(p)) => format!("pid {p}"),
            _ => "a process".to_string(),
        }
    }

    /// The journal's MESSAGE.
    pub fn message(&self) -> String {
        let who = match (&self.user, self.uid) {
            (Some(u), _) => format!(" ({u})"),
            (None, Some(uid)) => format!(" (uid {uid})"),
            _ => String::new(),
        };
        let what = self.process();
        let usage = human_bytes(self.usage);
        match self.reason {
            Reason::Throttled => format!(
                "ended {what} in {}{who} at {usage}: throttled at memory.high {} for {}s (memory.max {})",
                self.cgroup,
                size(self.high),
                self.throttled_secs.unwrap_or(0),
                size(self.max)
            ),
            r => format!(
                "kernel OOM-killed {what} in {}{who} at {usage} ({}; memory.high {}, memory.max {})",
                self.cgroup,
                r.as_str(),
                size(self.high),
                size(self.max)
            ),
        }
    }

    /// The line pam_contain shows the user, starting `contain:`, its time in the host's zone.
    pub fn notice(&self) -> String {
        self.notice_with(crate::clock::local_minute)
    }

    /// [`Kill::notice`] with its time written by `minute`.
    pub fn notice_with(&self, minute: fn(u64) -> String) -> String {
        let when = minute(self.time);
        let what = match (&self.comm, self.pid) {
            (Some(_), Some(_)) => format!("your process {}", self.process()),
            _ => "one of your processes".to_string(),
        };
        let swap = if self.no_swap { ", no swap" } else { "" };
        let usage = human_bytes(self.usage);
        let ask = "Ask your admin if you need more.";
        match self.reason {
            Reason::Throttled => format!(
                "contain: {when} — {what} was ended at {usage}: it sat throttled at your {} memory_high for {}s (ceiling {}{swap}). {ask}",
                size(self.high),
                self.throttled_secs.unwrap_or(0),
                size(self.max)
            ),
            Reason::MemoryMax | Reason::Oom => format!(
                "contain: {when} — {what} was killed by the kernel at {usage}: it reached your {} memory_max{swap}. {ask}",
                size(self.max)
            ),
            Reason::ParentLimit => format!(
                "contain: {when} — {what} was killed by the kernel at {usage}: all users together reached the memory set aside for users. {ask}"
            ),
            Reason::SystemOom => {
                format!("contain: {when} — {what} was killed by the kernel: the machine ran out of memory.")
            }
        }
    }

    /// Structured journal fields, systemd's native protocol names.
    pub fn journal_fields(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![
            ("MESSAGE", self.message()),
            ("PRIORITY", "4".to_string()),
            ("SYSLOG_IDENTIFIER", "contain-watchdog".to_string()),
            ("MESSAGE_ID", KILL_MESSAGE_ID.to_string()),
            ("CONTAIN_CGROUP", self.cgroup.clone()),
            ("CONTAIN_USAGE", self.usage.to_string()),
            ("CONTAIN_HIGH", limit_text(self.high)),
            ("CONTAIN_MAX", limit_text(self.max)),
            ("CONTAIN_REASON", self.reason.as_str().to_string()),
        ];
        if let Some(u) = &self.user {
            f.push(("CONTAIN_USER", u.clone()));
        }
        if let Some(u) = self.uid {
            f.push(("CONTAIN_UID", u.to_string()));
        }
        if let Some(p) = self.pid {
            f.push(("CONTAIN_PID", p.to_string()));
        }
        if let Some(c) = &self.comm {
            f.push(("CONTAIN_COMM", c.clone()));
        }
        f
    }
}

/// `journalctl MESSAGE_ID=…` finds every kill contain reported.
pub const KILL_MESSAGE_ID: &str = "5d3b1c8e2f7a4e0b9c6d1a2f3e4b5c6d";

fn limit_text(v: Option<u64>) -> String {
    v.map_or_else(|| "max".to_string(), |b| b.to_string())
}

/// A process name is the user's choice of bytes: no control or format characters (terminal
/// escapes, bidi overrides) into a notice or log.
fn clean(s: &str) -> String {
    contain_policy::text::printable(s)
}

pub use crate::clock::utc_minute;

/// systemd's native journal protocol: `KEY=value\n`, or `KEY\n<u64 le length>value\n` for
/// values holding a newline.
pub fn journal_payload(fields: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in fields {
        out.extend_from_slice(k.as_bytes());
        if v.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(v.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Sends one structured entry to the journal; on failure prints it to stderr, which systemd
/// also journals (without the fields).
pub fn journal(socket: &Path, fields: &[(&str, String)]) {
    let sent = UnixDatagram::unbound().and_then(|s| s.send_to(&journal_payload(fields), socket));
    if sent.is_err() {
        let msg = fields
            .iter()
            .find(|(k, _)| *k == "MESSAGE")
            .map_or("", |(_, v)| v.as_str());
        let extra: Vec<String> = fields
            .iter()
            .filter(|(k, _)| k.starts_with("CONTAIN_"))
            .map(|(k, v)| format!("{k}={}", clean(v)))
            .collect();
        eprintln!("contain-watchdog: {msg} [{}]", extra.join(" "));
    }
}

/// At most this many notices wait for a user; older ones are dropped.
pub const NOTICES_KEPT: usize = 5;

/// Appends a notice for `uid` to `dir/<uid>`, keeping the last [`NOTICES_KEPT`] lines. Which of
/// a user's processes were killed is theirs to know: the directory is root's alone (0700) and
/// each file 0600 root; pam_contain shows it, as root, at the user's next login.
pub fn add_notice(dir: &Path, uid: u32, line: &str) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let path = dir.join(uid.to_string());
    let old = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut lines: Vec<&str> = old.lines().filter(|l| l.starts_with("contain:")).collect();
    let line = clean(&line.replace('\n', " "));
    lines.push(&line);
    let keep = &lines[lines.len().saturating_sub(NOTICES_KEPT)..];
    let mut text = keep.join("\n");
    text.push('\n');
    write_file(&path, text.as_bytes(), 0o600)
}

/// Atomic write with an explicit mode: created with it (a notice is never readable by others,
/// not even for a moment), then set again, since the service's umask is not trusted for it.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    contain_host::files::write_atomic_mode(path, bytes, mode)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupCounts {
    pub watchdog_kills: u64,
    pub oom_kills_seen: u64,
    pub last_kill: Option<u64>,
}

/// `/run/contain/watchdog.json`, read by `containctl status` and `containctl metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// When this watchdog process started, unix seconds.
    pub started: u64,
    /// Every kill recorded since boot: the watchdog's own and the kernel's OOM kills seen.
    pub kills_total: u64,
    pub cgroups: BTreeMap<String, CgroupCounts>,
    /// The last [`RECENT_KEPT`] kills, oldest first.
    pub recent: Vec<Kill>,
    /// Capped cgroups being watched now.
    #[serde(default)]
    pub watching: usize,
}

pub const RECENT_KEPT: usize = 20;

impl Counters {
    /// Continues the counts of an earlier run of this boot (the file is in /run).
    pub fn resume(path: &Path, started: u64) -> Counters {
        let mut c: Counters = fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        c.started = started;
        c
    }

    pub fn record(&mut self, kill: &Kill) {
        let entry = self.cgroups.entry(kill.cgroup.clone()).or_default();
        match kill.reason {
            Reason::Throttled => entry.watchdog_kills += 1,
            _ => entry.oom_kills_seen += 1,
        }
        entry.last_kill = Some(kill.time);
        self.kills_total += 1;
        self.recent.push(kill.clone());
        let excess = self.recent.len().saturating_sub(RECENT_KEPT);
        self.recent.drain(..excess);
    }

    pub fn save(&self, path: &Path) -> io::Result<()> {
        let mut text = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        text.push('\n');
        write_file(path, text.as_bytes(), 0o644)
    }
}

/// Where the watchdog reads and writes: every path under one root (`CONTAIN_ROOT`, for tests).
#[derive(Clone, Debug)]
pub struct Paths {
    pub cgroup_root: PathBuf,
    pub state_dir: PathBuf,
    pub notice_dir: PathBuf,
    pub policy: PathBuf,
    pub proc_root: PathBuf,
    /// `None` when reading kernel reports is switched off (`CONTAIN_KMSG=off`, for tests).
    pub kmsg: Option<PathBuf>,
    pub journal_socket: PathBuf,
}

impl Paths {
    pub fn from_env() -> Paths {
        let kmsg_off = std::env::var_os("CONTAIN_KMSG").is_some_and(|v| v == "off");
        Paths::under(&Root::from_env(), !kmsg_off)
    }

    pub fn under(root: &Root, kmsg: bool) -> Paths {
        Paths {
            cgroup_root: root.path(paths::CGROUP),
            state_dir: root.path(paths::STATE_DIR),
            notice_dir: root.path(paths::NOTICES),
            policy: root.path(paths::POLICY),
            proc_root: root.path(paths::PROC),
            kmsg: kmsg.then(|| root.path("/dev/kmsg")),
            journal_socket: root.path("/run/systemd/journal/socket"),
        }
    }

    pub fn counters(&self) -> PathBuf {
        self.state_dir.join("watchdog.json")
    }

    /// A memory.max the watchdog lowered and has yet to restore, for the next start after a crash.
    pub fn pending_restore(&self) -> PathBuf {
        self.state_dir.join("watchdog.restore")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    /// alice's stress-ng, ended after 10 s throttled at her 600M memory_high: what tests start from.
    pub(crate) fn kill() -> Kill {
        Kill {
            time: 1_795_698_300, // 2026-11-26 13:05 UTC
            uid: Some(1001),
            user: Some("alice".into()),
            cgroup: "/user.slice/user-1001.slice".into(),
            pid: Some(1234),
            comm: Some("stress-ng".into()),
            usage: 812 * M,
            high: Some(600 * M),
            max: Some(800 * M),
            reason: Reason::Throttled,
            throttled_secs: Some(10),
            no_swap: true,
        }
    }

    #[test]
    fn the_notice_says_when_what_at_which_size_and_the_limits() {
        assert_eq!(
            kill().notice_with(utc_minute),
            "contain: 2026-11-26 13:05 UTC — your process \"stress-ng\" (pid 1234) was ended at 812M: it sat throttled at your 600M memory_high for 10s (ceiling 800M, no swap). Ask your admin if you need more."
        );
        let seen = Kill {
            reason: Reason::MemoryMax,
            comm: Some("evil\nname".into()),
            no_swap: false,
            ..kill()
        };
        assert_eq!(
            seen.notice_with(utc_minute),
            "contain: 2026-11-26 13:05 UTC — your process \"evil?name\" (pid 1234) was killed by the kernel at 812M: it reached your 800M memory_max. Ask your admin if you need more."
        );
        let anon = Kill {
            pid: None,
            comm: None,
            ..kill()
        };
        assert!(
            anon.notice_with(utc_minute)
                .contains("— one of your processes was ended at 812M")
        );
    }

    #[test]
    fn journal_fields_are_structured() {
        let f = kill().journal_fields();
        let get = |k: &str| f.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CONTAIN_UID"), Some("1001"));
        assert_eq!(get("CONTAIN_USER"), Some("alice"));
        assert_eq!(get("CONTAIN_PID"), Some("1234"));
        assert_eq!(get("CONTAIN_COMM"), Some("stress-ng"));
        assert_eq!(get("CONTAIN_HIGH"), Some("629145600"));
        assert_eq!(get("CONTAIN_REASON"), Some("throttled"));
        assert_eq!(get("SYSLOG_IDENTIFIER"), Some("contain-watchdog"));
        let payload = journal_payload(&[("A", "x".into()), ("B", "two\nlines".into())]);
        let mut want = b"A=x\nB\n".to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(b"two\nlines\n");
        assert_eq!(payload, want);
    }

    #[test]
    fn journal_entries_reach_a_real_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("journal.sock");
        let rx = UnixDatagram::bind(&sock).expect("bind");
        journal(&sock, &kill().journal_fields());
        let mut buf = vec![0u8; 4096];
        let n = rx.recv(&mut buf).expect("recv");
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            text.contains("CONTAIN_CGROUP=/user.slice/user-1001.slice\n"),
            "{text}"
        );
        assert!(
            text.starts_with("MESSAGE=ended \"stress-ng\" (pid 1234)"),
            "{text}"
        );
    }

    #[test]
    fn notices_keep_the_last_five_lines_for_root_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let notices = dir.path().join("notices");
        for i in 0..7 {
            add_notice(&notices, 1001, &format!("contain: event {i}")).expect("notice");
        }
        let text = fs::read_to_string(notices.join("1001")).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            (2..7).map(|i| format!("contain: event {i}")).collect::<Vec<_>>()
        );
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&notices.join("1001")), 0o600);
        assert_eq!(mode(&notices), 0o700);
        // A directory left world-readable by an older version is closed.
        fs::set_permissions(&notices, fs::Permissions::from_mode(0o755)).expect("chmod");
        add_notice(&notices, 1001, "contain: again").expect("notice");
        assert_eq!(mode(&notices), 0o700);
    }

    #[test]
    fn a_notice_carries_no_control_or_format_characters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut k = kill();
        k.comm = Some("x\u{202e}gnp.exe\u{1b}[2J\u{200b}".into());
        add_notice(dir.path(), 1001, &k.notice_with(utc_minute)).expect("notice");
        add_notice(dir.path(), 1001, "contain: a\u{2066}b\u{7}").expect("notice");
        let text = fs::read_to_string(dir.path().join("1001")).expect("read");
        assert!(text.contains("\"x?gnp.exe?[2J?\""), "{text}");
        assert!(text.contains("contain: a?b?\n"), "{text}");
        assert!(
            !text
                .chars()
                .any(|c| (c.is_control() && c != '\n') || contain_policy::text::is_format(c)),
            "{text:?}"
        );
    }

    #[test]
    fn counters_follow_the_contract_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("watchdog.json");
        let mut c = Counters::resume(&path, 100);
        c.record(&kill());
        c.record(&Kill {
            reason: Reason::MemoryMax,
            ..kill()
        });
        c.save(&path).expect("save");
        let v: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).expect("read")).expect("json");
        assert_eq!(v["started"], 100);
        assert_eq!(v["kills_total"], 2);
        let cg = &v["cgroups"]["/user.slice/user-1001.slice"];
        assert_eq!(cg["watchdog_kills"], 1);
        assert_eq!(cg["oom_kills_seen"], 1);
        assert_eq!(cg["last_kill"], 1_795_698_300u64);
        assert_eq!(v["recent"][0]["comm"], "stress-ng");
        assert_eq!(v["recent"][0]["reason"], "throttled");
        assert_eq!(v["recent"][1]["reason"], "memory_max");
        let again = Counters::resume(&path, 200);
        assert_eq!(
            (again.started, again.kills_total, again.recent.len()),
            (200, 2, 2)
        );
    }
}
