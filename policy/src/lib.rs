//! contain's policy: parse and validate `/etc/contain/policy.toml`, resolve it per user, render
//! systemd units and check that the caps fit in RAM. Pure: no I/O happens here.

mod accounts;
mod aggregate;
pub mod compiled;
mod model;
mod parse;
mod render;
mod resolve;
pub mod text;
mod tree;
pub mod unit;
pub mod value;

pub use accounts::{Account, LocalUser, local_users, local_users_where, parse_accounts};
pub use aggregate::{Aggregate, Term, aggregate};
pub use model::*;
pub use parse::{Diagnostic, Overrides, Source, parse, parse_keeping};
pub use render::{DROPIN, OOMD_DROPIN, Rendered, USER_DROPIN, render};
pub use resolve::{Effective, Exemption, Resolution, Rule, Sourced};
pub use tree::chunked_reading_agrees;

/// The shipped default policy, applied when the admin's policy is missing or invalid.
pub const DEFAULT_POLICY: &str = include_str!("../../packaging/policy.toml");

/// Where the shipped default says it comes from in messages and unit headers.
pub const DEFAULT_POLICY_NAME: &str = "(built-in default policy)";

/// The built-in default, parsed. Its validity is a test of this crate.
pub fn builtin_default() -> Policy {
    parse(&[Source {
        path: DEFAULT_POLICY_NAME,
        text: DEFAULT_POLICY,
    }])
    .expect("the shipped default policy is valid (tested)")
}
