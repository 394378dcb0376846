//! The package's pam-auth-update profile as tests read it: containctl's and pam_contain's
//! tests include this file with `#[path]`, so both hold the same line against their checks.

/// packaging/pam-configs/contain.
pub const PROFILE: &str = include_str!("../../packaging/pam-configs/contain");

/// The line after `Session:`: control, module and arguments, as the profile adds them.
pub fn shipped_session_line() -> &'static str {
    PROFILE
        .lines()
        .skip_while(|l| !l.starts_with("Session:"))
        .nth(1)
        .expect("a line after Session:")
        .trim()
}
