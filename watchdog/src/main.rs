use contain_watchdog::daemon::{Config, Daemon};
use contain_watchdog::logger;
use contain_watchdog::sys::Signals;
use nix::sys::signal::Signal;
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
    let signals = Signals::block(&[Signal::SIGHUP, Signal::SIGTERM, Signal::SIGINT]);
    let cfg = Config::from_env();
    logger::init(cfg.debug);
    let result = signals.and_then(|signals| Daemon::new(cfg)?.run(&signals));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("contain-watchdog: {e}");
            ExitCode::FAILURE
        }
    }
}
