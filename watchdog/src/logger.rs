//! The daemon's log: one line on stderr a record, prefixed `<N>` with its syslog priority,
//! which systemd reads as the journal priority.

use log::{Level, LevelFilter, Metadata, Record};

/// `log::info!(target: NOTICE, …)` logs at priority 5 (notice), between info and warning.
pub const NOTICE: &str = "notice";
/// `log::error!(target: CRITICAL, …)` logs at priority 2 (crit): a cgroup may stay squeezed.
pub const CRITICAL: &str = "crit";

/// The journal priority of a record.
pub fn priority(level: Level, target: &str) -> u8 {
    match (level, target) {
        (Level::Error, CRITICAL) => 2,
        (Level::Error, _) => 3,
        (Level::Warn, _) => 4,
        (Level::Info, NOTICE) => 5,
        (Level::Info, _) => 6,
        (Level::Debug | Level::Trace, _) => 7,
    }
}

struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        eprintln!("<{}>{}", priority(record.level(), record.target()), record.args());
    }

    fn flush(&self) {}
}

/// Sends every record to stderr; debug records only when `debug` (`CONTAIN_WATCHDOG_DEBUG`).
pub fn init(debug: bool) {
    static LOGGER: Stderr = Stderr;
    // Only the first call installs it (tests may call it again).
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_priorities_of_every_level_are_kept() {
        assert_eq!(priority(Level::Error, CRITICAL), 2);
        assert_eq!(priority(Level::Error, "contain_watchdog::daemon"), 3);
        assert_eq!(priority(Level::Warn, NOTICE), 4);
        assert_eq!(priority(Level::Info, NOTICE), 5);
        assert_eq!(priority(Level::Info, "contain_watchdog::daemon"), 6);
        assert_eq!(priority(Level::Debug, "contain_watchdog::daemon"), 7);
    }
}
