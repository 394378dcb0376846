use contain_watchdog::daemon::{Config, Daemon, log};
use contain_watchdog::sys::Signals;
use std::process::ExitCode;

const USAGE: &str = "usage: contain-watchdog [--help | --version]

Ends a runaway that sits throttled at its memory_high in a cgroup capped by
/etc/contain/policy.toml, by letting the kernel's OOM killer pick the victim
inside that cgroup only. Runs as contain-watchdog.service; see contain-watchdog(8).";

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("--help" | "-h") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("--version") => {
            println!("contain-watchdog {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("contain-watchdog: unknown argument `{other}`\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    // Signals become events on a descriptor before anything else runs.
    let result = Signals::block(&[libc::SIGHUP, libc::SIGTERM, libc::SIGINT])
        .and_then(|signals| Daemon::new(Config::from_env())?.run(&signals));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(3, &format!("contain-watchdog: {e}"));
            ExitCode::FAILURE
        }
    }
}
