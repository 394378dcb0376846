//! contain-watchdog: ends a runaway that sits throttled at its memory.high (with no swap it
//! would hang there forever) by letting the kernel's OOM killer choose the victim inside that
//! cgroup only, and tells the journal, `containctl` and the user.

pub mod act;
pub mod cgroupfs;
pub mod clock;
pub mod daemon;
pub mod decide;
pub mod hook;
pub mod kmsg;
pub mod logger;
pub mod report;
pub mod sys;
pub mod terminals;
