//! What a long operation is waiting for, and for how long, on a terminal only: one line on
//! standard error, rewritten in place, gone when the operation ends. Scripts and `--json`
//! see nothing.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static SHOWN: AtomicBool = AtomicBool::new(false);

/// Turns the line on when standard error is a terminal and the output is not JSON.
pub fn enable(json: bool) {
    SHOWN.store(!json && std::io::stderr().is_terminal(), Ordering::Relaxed);
}

/// The line as shown: `containctl: waiting for X… 12 s`.
pub fn line(what: &str, waited: Duration) -> String {
    format!("containctl: waiting for {what}… {} s", waited.as_secs())
}

/// Shows that `what` has been waited for since `since`.
pub fn waiting(what: &str, since: Instant) {
    if SHOWN.load(Ordering::Relaxed) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{}", line(what, since.elapsed()));
        let _ = err.flush();
    }
}

/// Clears the line.
pub fn done() {
    if SHOWN.load(Ordering::Relaxed) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_what_and_how_long() {
        assert_eq!(
            line("systemd-oomd to end stress test B", Duration::from_millis(12_400)),
            "containctl: waiting for systemd-oomd to end stress test B… 12 s"
        );
        // Not a terminal here (the test harness captures stderr): nothing is shown.
        enable(false);
        assert!(!SHOWN.load(Ordering::Relaxed) || std::io::stderr().is_terminal());
        enable(true);
        assert!(!SHOWN.load(Ordering::Relaxed), "--json: never");
    }
}
