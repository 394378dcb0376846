//! Reading the policy from disk and writing what it renders, shared by `contain-generator`
//! and `containctl` so that both produce the same files.

pub mod kmsg;
mod load;
mod write;

pub use load::{Loaded, MAX_POLICY_BYTES, Outcome, load, read_sources};
pub use write::{Status, generate, write_atomic};

/// Where the admin's policy lives.
pub const POLICY_PATH: &str = "/etc/contain/policy.toml";
/// Where the generator leaves its status for `containctl` and the admin.
pub const STATE_DIR: &str = "/run/contain";
/// Where systemd-oomd reads runtime drop-ins.
pub const OOMD_DIR: &str = "/run/systemd/oomd.conf.d";
