//! `[watchdog] on_kill`: the admin's program, run after every kill with the kill's facts in
//! its environment (mail, chat, a ticket). Spawned and reaped later: it never delays the next
//! decision, and it is killed when it outlives its time.

// A process name is the user's choice of bytes: the one sanitiser, as for notices.
use crate::report::Kill;
use contain_policy::text::printable;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the program may run.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// Programs running at once; a kill beyond that is not handed to the program (it is in the
/// journal anyway). The service allows few tasks.
pub const MAX_RUNNING: usize = 2;

/// The kill's facts as environment variables; values unknown are empty.
pub fn environment(kill: &Kill) -> Vec<(&'static str, String)> {
    let opt = |v: Option<String>| v.unwrap_or_default();
    let limit = |v: Option<u64>| v.map_or_else(|| "max".to_string(), |b| b.to_string());
    vec![
        ("CONTAIN_USER", opt(kill.user.clone())),
        ("CONTAIN_UID", opt(kill.uid.map(|u| u.to_string()))),
        ("CONTAIN_PID", opt(kill.pid.map(|p| p.to_string()))),
        ("CONTAIN_COMMAND", opt(kill.comm.as_deref().map(printable))),
        ("CONTAIN_SIZE", kill.usage.to_string()),
        ("CONTAIN_MEMORY_HIGH", limit(kill.high)),
        ("CONTAIN_MEMORY_MAX", limit(kill.max)),
        ("CONTAIN_REASON", kill.reason.as_str().to_string()),
        ("CONTAIN_CGROUP", kill.cgroup.clone()),
        ("CONTAIN_TIME", kill.time.to_string()),
        (
            "CONTAIN_THROTTLED_SECONDS",
            opt(kill.throttled_secs.map(|s| s.to_string())),
        ),
        ("CONTAIN_NO_SWAP", u8::from(kill.no_swap).to_string()),
        ("CONTAIN_MESSAGE", printable(&kill.message())),
    ]
}

/// How the program is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// As a transient service in system.slice through systemd-run: out of the watchdog's
    /// sandbox (it may use the network and write files), timed out by systemd.
    SystemdRun,
    /// As the watchdog's own child, inside its sandbox (no systemd, or tests).
    Direct,
}

impl Launch {
    /// systemd-run where systemd runs, unless `CONTAIN_ON_KILL_DIRECT=1`.
    pub fn from_env() -> Launch {
        let direct = std::env::var_os("CONTAIN_ON_KILL_DIRECT").is_some_and(|v| v == "1");
        if !direct && Path::new("/run/systemd/system").is_dir() {
            Launch::SystemdRun
        } else {
            Launch::Direct
        }
    }
}

/// The command that runs `program` for `kill`; `seq` makes the transient unit's name unique.
pub fn command(launch: Launch, program: &str, kill: &Kill, seq: u64) -> Command {
    let env = environment(kill);
    let mut cmd = match launch {
        Launch::Direct => Command::new(program),
        Launch::SystemdRun => {
            let mut c = Command::new("systemd-run");
            c.args([
                "--quiet",
                "--no-block",
                "--collect",
                "--slice=system.slice",
                &format!("--unit=contain-on-kill-{}-{seq}", kill.time),
                "--description=contain: on_kill program",
                &format!("--property=RuntimeMaxSec={}", HOOK_TIMEOUT.as_secs()),
            ]);
            for (k, v) in &env {
                c.arg(format!("--setenv={k}={v}"));
            }
            c.arg("--").arg(program);
            c
        }
    };
    cmd.env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .current_dir("/")
        .stdin(Stdio::null())
        // Its own process group: a timeout ends whatever it started too.
        .process_group(0);
    if launch == Launch::Direct {
        cmd.envs(env.iter().map(|(k, v)| (*k, v)));
    }
    cmd
}

struct Running {
    child: Child,
    deadline: Instant,
    what: String,
}

/// The programs started and not yet reaped.
#[derive(Default)]
pub struct Hooks {
    running: Vec<Running>,
    seq: u64,
}

/// What became of a program, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Exited { what: String, code: Option<i32> },
    TimedOut { what: String },
}

impl Hooks {
    /// Starts `program` for `kill`, unless [`MAX_RUNNING`] are still running.
    pub fn start(&mut self, launch: Launch, program: &str, kill: &Kill) -> io::Result<()> {
        self.running
            .retain_mut(|r| !matches!(r.child.try_wait(), Ok(Some(_))));
        if self.running.len() >= MAX_RUNNING {
            return Err(io::Error::other(format!(
                "{MAX_RUNNING} earlier runs of {program} are still running"
            )));
        }
        self.seq += 1;
        let child = command(launch, program, kill, self.seq).spawn()?;
        let timeout = match launch {
            Launch::Direct => HOOK_TIMEOUT,
            // systemd-run only queues the unit; systemd enforces the program's own limit.
            Launch::SystemdRun => Duration::from_secs(10),
        };
        self.running.push(Running {
            child,
            deadline: Instant::now() + timeout,
            what: format!(
                "{program} (pid {})",
                kill.pid.map_or("?".into(), |p| p.to_string())
            ),
        });
        Ok(())
    }

    /// Reaps what has ended and kills what overran; never waits.
    pub fn reap(&mut self) -> Vec<Ended> {
        let now = Instant::now();
        let mut ended = Vec::new();
        self.running.retain_mut(|r| match r.child.try_wait() {
            Ok(Some(status)) => {
                ended.push(Ended::Exited {
                    what: r.what.clone(),
                    code: status.code(),
                });
                false
            }
            Ok(None) if now >= r.deadline => {
                let _ = killpg(Pid::from_raw(r.child.id() as i32), Signal::SIGKILL);
                let _ = r.child.kill();
                let _ = r.child.wait();
                ended.push(Ended::TimedOut { what: r.what.clone() });
                false
            }
            Ok(None) => true,
            Err(_) => false,
        });
        ended
    }

    /// How long until the next deadline, if anything runs (so poll wakes up to reap it).
    pub fn next_check(&self) -> Option<Duration> {
        let now = Instant::now();
        self.running
            .iter()
            .map(|r| r.deadline.saturating_duration_since(now))
            .min()
            // Exits are noticed within this much; nothing waits on them.
            .map(|d| d.min(Duration::from_millis(500)))
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn kill() -> Kill {
        Kill {
            comm: Some("evil\nname".into()),
            max: None,
            ..crate::report::tests::kill()
        }
    }

    fn wait_all(h: &mut Hooks) -> Vec<Ended> {
        let end = Instant::now() + Duration::from_secs(20);
        let mut all = Vec::new();
        while h.running() > 0 && Instant::now() < end {
            all.extend(h.reap());
            std::thread::sleep(Duration::from_millis(20));
        }
        all
    }

    /// The real program sees the facts, and nothing of the watchdog's own environment.
    #[test]
    fn the_program_gets_the_kills_facts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("env.txt");
        let script = dir.path().join("hook.sh");
        fs::write(&script, format!("#!/bin/sh\nenv > {}\n", out.display())).expect("script");
        fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let mut h = Hooks::default();
        let started = Instant::now();
        h.start(Launch::Direct, script.to_str().expect("utf-8"), &kill())
            .expect("start");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "start waited for the program"
        );
        let ended = wait_all(&mut h);
        assert_eq!(ended.len(), 1, "{ended:?}");
        assert!(
            matches!(&ended[0], Ended::Exited { code: Some(0), .. }),
            "{ended:?}"
        );
        let env = fs::read_to_string(&out).expect("env written");
        for want in [
            "CONTAIN_USER=alice",
            "CONTAIN_UID=1001",
            "CONTAIN_PID=1234",
            "CONTAIN_COMMAND=evil?name",
            "CONTAIN_SIZE=851443712",
            "CONTAIN_MEMORY_HIGH=629145600",
            "CONTAIN_MEMORY_MAX=max",
            "CONTAIN_REASON=throttled",
            "CONTAIN_CGROUP=/user.slice/user-1001.slice",
            "CONTAIN_TIME=1795698300",
            "CONTAIN_THROTTLED_SECONDS=10",
            "CONTAIN_NO_SWAP=1",
        ] {
            assert!(env.lines().any(|l| l == want), "{want} missing from:\n{env}");
        }
        assert!(
            env.contains("CONTAIN_MESSAGE=ended \"evil?name\" (pid 1234)"),
            "{env}"
        );
        assert!(
            !env.contains("CARGO"),
            "the watchdog's environment leaked:\n{env}"
        );
    }

    #[test]
    fn systemd_run_carries_the_facts_and_the_timeout() {
        let cmd = command(Launch::SystemdRun, "/usr/local/sbin/tell", &kill(), 7);
        assert_eq!(cmd.get_program(), "systemd-run");
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(args.contains(&"--slice=system.slice".to_string()), "{args:?}");
        assert!(
            args.contains(&"--unit=contain-on-kill-1795698300-7".to_string()),
            "{args:?}"
        );
        assert!(
            args.contains(&"--property=RuntimeMaxSec=30".to_string()),
            "{args:?}"
        );
        assert!(
            args.contains(&"--setenv=CONTAIN_USER=alice".to_string()),
            "{args:?}"
        );
        assert_eq!(args[args.len() - 2..], ["--", "/usr/local/sbin/tell"]);
    }

    /// A program that hangs is killed at its deadline, its children with it, and the
    /// watchdog's calls never wait for it.
    #[test]
    fn a_hanging_program_is_killed_on_time() {
        let mut h = Hooks::default();
        h.start(Launch::Direct, "/bin/sh", &kill()).expect("start");
        // /bin/sh with no script reads stdin (null): it ends at once. Now one that hangs:
        let _ = wait_all(&mut h);
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("hang.sh");
        let bg = dir.path().join("bg.pids");
        fs::write(
            &script,
            format!("#!/bin/sh\nsleep 600 &\necho $! >> {}\nsleep 600\n", bg.display()),
        )
        .expect("script");
        fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let path = script.to_str().expect("utf-8");
        h.start(Launch::Direct, path, &kill()).expect("start");
        h.start(Launch::Direct, path, &kill()).expect("start");
        assert!(
            h.start(Launch::Direct, path, &kill()).is_err(),
            "a third runs at once"
        );
        let t0 = Instant::now();
        assert!(h.reap().is_empty());
        assert!(t0.elapsed() < Duration::from_millis(100), "reap waited");
        assert!(h.next_check().is_some_and(|d| d <= Duration::from_millis(500)));
        let end = Instant::now() + Duration::from_secs(10);
        while fs::read_to_string(&bg).map_or(0, |t| t.lines().count()) < 2 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        for r in &mut h.running {
            r.deadline = Instant::now();
        }
        let ended = h.reap();
        assert_eq!(ended.len(), 2);
        assert!(ended.iter().all(|e| matches!(e, Ended::TimedOut { .. })));
        assert_eq!(h.running(), 0);
        // The programs' own children went with them (dead, or zombies awaiting init).
        let alive = |pid: &str| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
                .unwrap_or(false)
        };
        let end = Instant::now() + Duration::from_secs(5);
        let pids = fs::read_to_string(&bg).expect("pids");
        while pids.lines().any(alive) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !pids.lines().any(alive),
            "a child of the program survived: {pids}"
        );
    }
}
