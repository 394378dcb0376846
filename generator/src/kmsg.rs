//! Logging to /dev/kmsg: generators run before the journal and must not talk to other processes.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::OnceLock;

#[derive(Clone, Copy)]
pub enum Level {
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

fn sink() -> &'static Option<std::fs::File> {
    static KMSG: OnceLock<Option<std::fs::File>> = OnceLock::new();
    KMSG.get_or_init(|| {
        if std::env::var_os("CONTAIN_LOG").is_some_and(|v| v == "stderr") {
            return None;
        }
        OpenOptions::new().write(true).open("/dev/kmsg").ok()
    })
}

/// Writes `<prio>contain-generator[pid]: msg` to /dev/kmsg, or to stderr where kmsg is closed.
pub fn log(level: Level, msg: &str) {
    let pid = std::process::id();
    for line in msg.lines() {
        match sink() {
            // One write per record: kmsg takes each write as one message.
            Some(f) => {
                let _ = (&*f)
                    .write_all(format!("<{}>contain-generator[{pid}]: {line}\n", level as u8).as_bytes());
            }
            None => eprintln!("contain-generator: {line}"),
        }
    }
}
