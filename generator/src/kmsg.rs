//! Logging to /dev/kmsg: generators run before the journal and must not talk to other processes.
//! A `log::Log` writing `<prio>contain-generator[pid]: msg` records, as zram-generator does.

use log::{Level, LevelFilter, Metadata, Record};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::OnceLock;

/// `log::info!(target: NOTICE, …)` logs at priority 5 (notice): a normal but significant event.
pub const NOTICE: &str = "notice";

/// The kernel log priority of a record.
pub fn priority(level: Level, target: &str) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info if target == NOTICE => 5,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// One kmsg record a line of `msg`.
pub fn records(priority: u8, pid: u32, msg: &str) -> Vec<String> {
    msg.lines()
        .map(|line| format!("<{priority}>contain-generator[{pid}]: {line}\n"))
        .collect()
}

struct Kmsg {
    /// None: stderr (`CONTAIN_LOG=stderr`, or /dev/kmsg cannot be opened).
    file: Option<File>,
}

impl log::Log for Kmsg {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let msg = record.args().to_string();
        match &self.file {
            Some(f) => {
                let prio = priority(record.level(), record.target());
                // One write per record: kmsg takes each write as one message.
                for line in records(prio, std::process::id(), &msg) {
                    let _ = (&*f).write_all(line.as_bytes());
                }
            }
            None => msg
                .lines()
                .for_each(|line| eprintln!("contain-generator: {line}")),
        }
    }

    fn flush(&self) {}
}

/// Installs the logger: /dev/kmsg, or stderr where it is closed or `CONTAIN_LOG=stderr`.
pub fn init() {
    let to_stderr = std::env::var_os("CONTAIN_LOG").is_some_and(|v| v == "stderr");
    let file = if to_stderr {
        None
    } else {
        OpenOptions::new().write(true).open("/dev/kmsg").ok()
    };
    static LOGGER: OnceLock<Kmsg> = OnceLock::new();
    if log::set_logger(LOGGER.get_or_init(|| Kmsg { file })).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_is_one_record_at_its_priority() {
        assert_eq!(priority(Level::Error, "contain_generator"), 3);
        assert_eq!(priority(Level::Warn, NOTICE), 4);
        assert_eq!(priority(Level::Info, NOTICE), 5);
        assert_eq!(priority(Level::Info, "contain_generator"), 6);
        assert_eq!(
            records(3, 42, "a\nb"),
            ["<3>contain-generator[42]: a\n", "<3>contain-generator[42]: b\n"]
        );
    }
}
