//! A sandbox for real Linux-PAM runs of the built module: fake accounts (nss_wrapper), a PAM
//! service directory (pam_wrapper), a policy, a cgroupfs-shaped tree, a /proc/self/cgroup-shaped
//! file, a notices directory, and a fake systemd on a private dbus-daemon.

#![allow(dead_code)]

pub mod in_process;

use contain_systemd::fake::FakeSystemd;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const GIB: u64 = 1 << 30;

/// Caps in bytes and counts, so that what the slice must show does not depend on this machine's RAM.
pub const POLICY: &str = r#"
[users]
memory_high = "1G"
memory_max = "2G"
memory_swap_max = 0
tasks_max = 512
cpu_weight = 100
exempt_uid_below = 1000

[[override]]
user = "carol"
memory_max = "3G"

[login]
on_failure = "deny"
never_deny_users = ["root"]
never_deny_groups = ["sudo"]
"#;

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh
alice:x:1001:1001:Alice:/home/alice:/bin/sh
bob:x:1002:1002:Bob:/home/bob:/bin/sh
carol:x:5001:5001:Carol:/home/carol:/bin/sh
";

pub const GROUP: &str = "root:x:0:
alice:x:1001:
bob:x:1002:
carol:x:5001:
sudo:x:27:bob
";

/// pam_wrapper keeps its state under /tmp/pam.X: runs are serialised.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The cdylib built for this test run, beside the test's executable in target/debug/deps (the
/// copy in target/debug is only refreshed by a plain `cargo build`, and lacks the test hook).
pub fn module_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("deps dir");
    let so = dir.join("libpam_contain.so");
    assert!(
        so.exists(),
        "{} is missing: `cargo test -p pam_contain` builds it",
        so.display()
    );
    so
}

#[path = "../../../tests/support/pam_profile.rs"]
mod pam_profile;

/// The `Session:` line of the package's pam-auth-update profile: control and module name.
pub fn shipped_session_line() -> String {
    pam_profile::shipped_session_line().to_string()
}

pub fn lib_path(name: &str) -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/lib/aarch64-linux-gnu",
    ]
    .iter()
    .map(|d| Path::new(d).join(name))
    .find(|p| p.exists())
}

/// Fails loudly when a tool the test needs is missing: scripts/deps.sh installs them.
pub fn require_tools() {
    let mut missing = Vec::new();
    for lib in ["libpam_wrapper.so", "libnss_wrapper.so"] {
        if lib_path(lib).is_none() {
            missing.push(lib.to_string());
        }
    }
    for tool in ["pamtester", "dbus-daemon"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            missing.push(tool.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "missing {missing:?}: run scripts/deps.sh (apt packages libpam-wrapper libnss-wrapper pamtester dbus)"
    );
}

/// A fresh directory for the module's one root (`root=`): the policy, cgroupfs,
/// /proc/self/cgroup and the notices are where they are on a host, under it.
pub fn module_root(name: &str, policy: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pam-contain-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    for sub in [
        "sys/fs/cgroup/user.slice",
        "var/lib/contain/notices",
        "etc/contain",
        "proc/self",
    ] {
        fs::create_dir_all(dir.join(sub)).expect("module root");
    }
    fs::write(dir.join("etc/contain/policy.toml"), policy).expect("policy");
    dir
}

pub struct Sandbox {
    pub dir: PathBuf,
    pub fake: Option<FakeSystemd>,
    pub bus_address: String,
    pub args: String,
}

/// The limit files of a slice as systemd would have set them.
pub struct SliceFiles<'a> {
    pub high: &'a str,
    pub max: &'a str,
    pub swap: &'a str,
    pub pids: &'a str,
    pub cpu_weight: &'a str,
}

/// What [`POLICY`] puts on a user without override.
pub const RIGHT: SliceFiles<'static> = SliceFiles {
    high: "1073741824",
    max: "2147483648",
    swap: "0",
    pids: "512",
    cpu_weight: "100",
};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub pid: u32,
    pub took: Duration,
    /// pamtester's peak resident memory.
    pub max_rss_kib: u64,
}

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        require_tools();
        let dir = module_root(name, POLICY);
        fs::create_dir(dir.join("svc")).expect("sandbox dir");
        fs::write(dir.join("passwd"), PASSWD).expect("passwd");
        fs::write(dir.join("group"), GROUP).expect("group");
        let policy = dir.join("etc/contain/policy.toml");
        fs::set_permissions(&policy, fs::Permissions::from_mode(0o644)).expect("chmod");
        let fake = FakeSystemd::start().expect("dbus-daemon and the fake systemd start");
        let bus_address = fake.address().to_string();
        let args = format!("debug timeout=1500 root={}", dir.display());
        let sandbox = Sandbox {
            dir,
            fake: Some(fake),
            bus_address,
            args,
        };
        sandbox.set_cgroup("/system.slice/cron.service");
        sandbox
    }

    pub fn fake(&self) -> &FakeSystemd {
        self.fake.as_ref().expect("the fake is running")
    }

    /// Stops the bus: later runs find no socket.
    pub fn kill_bus(&mut self) {
        self.fake = None;
    }

    pub fn set_policy(&self, text: &str) {
        fs::write(self.dir.join("etc/contain/policy.toml"), text).expect("policy");
    }

    pub fn proc_cgroup(&self) -> PathBuf {
        self.dir.join("proc/self/cgroup")
    }

    /// Where the module believes it runs: the `0::` line of a /proc/self/cgroup-shaped file.
    pub fn set_cgroup(&self, path: &str) {
        let text = format!("1:name=systemd:/ignored\n0::{path}\n");
        fs::write(self.proc_cgroup(), text).expect("proc_cgroup");
    }

    pub fn cgroup(&self) -> String {
        fs::read_to_string(self.proc_cgroup()).expect("proc_cgroup")
    }

    pub fn set_slice(&self, uid: u32, files: &SliceFiles<'_>) {
        let dir = self
            .dir
            .join(format!("sys/fs/cgroup/user.slice/user-{uid}.slice"));
        fs::create_dir_all(&dir).expect("slice dir");
        for (name, value) in [
            ("memory.high", files.high),
            ("memory.max", files.max),
            ("memory.swap.max", files.swap),
            ("pids.max", files.pids),
            ("cpu.weight", files.cpu_weight),
        ] {
            fs::write(dir.join(name), format!("{value}\n")).expect("slice file");
        }
    }

    /// The service file: the package's line, with the module built for this test run.
    pub fn service_file(&self, extra_args: &str) -> PathBuf {
        let svc = self.dir.join("svc/contain");
        let shipped = shipped_session_line();
        assert!(shipped.ends_with("pam_contain.so"), "{shipped}");
        let line = format!(
            "session {} {} {extra_args}\n",
            shipped.replace("pam_contain.so", &module_path().display().to_string()),
            self.args
        );
        fs::write(&svc, line).expect("service file");
        self.dir.join("svc")
    }

    /// `pamtester contain USER open_session close_session` under pam_wrapper and nss_wrapper.
    pub fn pamtester(&self, user: &str, items: &[&str], extra_args: &str) -> Run {
        run(self.command(user, items, extra_args))
    }

    /// The pamtester command of [`Sandbox::pamtester`], for a caller to adjust (another bus, any
    /// bytes as the user name, limits) before [`run`].
    pub fn command(&self, user: impl AsRef<OsStr>, items: &[&str], extra_args: &str) -> Command {
        let svc_dir = self.service_file(extra_args);
        let preload = format!(
            "{} {}",
            lib_path("libpam_wrapper.so").expect("pam_wrapper").display(),
            lib_path("libnss_wrapper.so").expect("nss_wrapper").display()
        );
        let mut cmd = Command::new("pamtester");
        cmd.arg("-v");
        for item in items {
            cmd.args(["-I", item]);
        }
        cmd.arg("contain")
            .arg(user)
            .args(["open_session", "close_session"])
            .env("LD_PRELOAD", preload)
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", &svc_dir)
            .env("PAM_WRAPPER_DEBUGLEVEL", "2")
            .env("NSS_WRAPPER_PASSWD", self.dir.join("passwd"))
            .env("NSS_WRAPPER_GROUP", self.dir.join("group"))
            .env("CONTAIN_SYSTEM_BUS_ADDRESS", &self.bus_address)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

/// A run still going after this is killed: a hang fails its test instead of stalling the suite.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Runs a pamtester command to its end, or kills it after [`RUN_LIMIT`].
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which clippy does not see
pub fn run(mut cmd: Command) -> Run {
    let started = Instant::now();
    let mut child = cmd.spawn().expect("pamtester runs");
    let pid = child.id();
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    // wait4 rather than Child::try_wait: it also tells the child's peak memory.
    // SAFETY: an all-zero rusage is a valid value to be filled in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: pid is our unreaped child; status and usage are valid for writing.
        let reaped = unsafe { libc::wait4(pid as libc::pid_t, &mut status, libc::WNOHANG, &mut usage) };
        assert!(reaped >= 0, "wait4: {}", std::io::Error::last_os_error());
        if reaped == pid as libc::pid_t {
            break;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed();
    Run {
        code: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        pid,
        took,
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.fake = None;
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Run {
    /// The module's log lines (pam_wrapper prints pam_syslog calls as `SYSLOG(priority): text`).
    pub fn log(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter_map(|l| l.split_once("SYSLOG(").map(|(_, rest)| rest))
            .collect()
    }

    pub fn logged(&self, needle: &str) -> bool {
        self.log().iter().any(|l| l.contains(needle))
    }

    pub fn assert_ok(&self) {
        assert_eq!(
            self.code,
            0,
            "pamtester failed:\n{}\n{}",
            self.stdout,
            self.log().join("\n")
        );
        assert!(
            self.stdout.contains("successfully opened a session"),
            "{}",
            self.stdout
        );
    }

    pub fn assert_denied(&self) {
        assert_ne!(
            self.code,
            0,
            "pamtester succeeded but should be denied:\n{}",
            self.log().join("\n")
        );
        assert!(
            format!("{}{}", self.stdout, self.stderr).contains("pamtester: Permission denied"),
            "expected PAM_PERM_DENIED:\n{}",
            self.stderr
        );
    }
}
