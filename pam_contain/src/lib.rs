//! pam_contain: puts every login inside its user's capped `user-UID.slice` before the shell starts.
//!
//! The PAM entry points are a thin shell over [`session::open_session`]; the decision is the pure
//! [`decide::decide`]. Built with panic=unwind: a panic is caught here, so a bug fails one login,
//! never root's or a never-deny account's, and never kills sshd.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod args;
pub mod decide;
pub mod live;
pub mod session;
pub mod system;

use pam::constants::{PAM_SILENT, PAM_TEXT_INFO, PamFlag, PamResultCode};
use pam::conv::Conv;
use pam::items::{Tty, User};
use pam::module::{PamHandle, PamHooks};
use session::{Answer, Host, Level};
use std::cell::Cell;
use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::AssertUnwindSafe;

#[link(name = "pam")]
unsafe extern "C" {
    /// Linux-PAM's logger: authpriv, prefixed `pam_contain(SERVICE:session):` like every module.
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
}

struct PamHost<'a> {
    pamh: &'a PamHandle,
    debug: bool,
    silent: bool,
}

impl Host for PamHost<'_> {
    fn log(&self, level: Level, message: &str) {
        if level == Level::Debug && !self.debug {
            return;
        }
        let priority = match level {
            Level::Err => libc::LOG_ERR,
            Level::Warning => libc::LOG_WARNING,
            Level::Notice => libc::LOG_NOTICE,
            Level::Info => libc::LOG_INFO,
            Level::Debug => libc::LOG_DEBUG,
        };
        let text = CString::new(message.replace('\0', "?")).unwrap_or_default();
        // SAFETY: pamh is the live handle of this call; "%s" takes exactly the one C string given.
        unsafe { pam_syslog(self.pamh, priority, c"%s".as_ptr(), text.as_ptr()) };
    }

    fn tell(&self, text: &str) -> bool {
        if self.silent {
            return false;
        }
        match self.pamh.get_item::<Conv>() {
            Ok(Some(conv)) => conv.send(PAM_TEXT_INFO, text).is_ok(),
            _ => false,
        }
    }
}

fn item_text(item: Option<&CStr>) -> Option<String> {
    item.and_then(|c| c.to_str().ok()).map(str::to_owned)
}

/// PAM_USER as text, or why it cannot be looked up (unset, or not UTF-8), for the log.
fn user_item(pamh: &PamHandle) -> Result<String, String> {
    match pamh.get_item::<User>() {
        Ok(Some(user)) => user.0.to_str().map(str::to_owned).map_err(|_| {
            format!(
                "PAM_USER {} is not UTF-8 text",
                contain_host::accounts::shown(&user.0.to_string_lossy())
            )
        }),
        _ => Err("PAM_USER is not set".to_string()),
    }
}

struct PamContain;
pam::pam_hooks!(PamContain);

impl PamHooks for PamContain {
    fn sm_open_session(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        let (args, warnings) = args::parse(args.iter().filter_map(|a| a.to_str().ok()));
        let user = user_item(pamh);
        let tty = item_text(pamh.get_item::<Tty>().ok().flatten().map(|t| t.0));
        let host = PamHost {
            pamh,
            debug: args.debug,
            silent: flags & PAM_SILENT != 0,
        };
        for w in &warnings {
            host.log(Level::Warning, w);
        }
        let never_deny = Cell::new(false);
        let answer = std::panic::catch_unwind(AssertUnwindSafe(|| {
            session::open_session(
                &host,
                &args,
                user.as_deref().map_err(String::clone),
                session::notice_delivery(tty.as_deref()),
                &never_deny,
            )
        }));
        match answer {
            Ok(Answer::Success) => PamResultCode::PAM_SUCCESS,
            // Not PAM_SESSION_ERR: sudo takes that as non-fatal and runs the command anyway.
            Ok(Answer::Denied) => PamResultCode::PAM_PERM_DENIED,
            Err(_) if never_deny.get() => {
                host.log(
                    Level::Err,
                    "internal error (a bug: please report it); session allowed UNCAPPED: root and login.never_deny_* are never denied",
                );
                PamResultCode::PAM_SUCCESS
            }
            Err(_) => {
                host.log(
                    Level::Err,
                    "internal error (a bug: please report it); session denied",
                );
                PamResultCode::PAM_SYSTEM_ERR
            }
        }
    }

    fn sm_close_session(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        let (args, _) = args::parse(args.iter().filter_map(|a| a.to_str().ok()));
        let user = user_item(pamh);
        let host = PamHost {
            pamh,
            debug: args.debug,
            silent: true,
        };
        host.log(
            Level::Debug,
            &format!(
                "session closed for {}; nothing to undo",
                user.as_deref()
                    .map_or("(unknown user)".to_string(), contain_host::accounts::shown)
            ),
        );
        PamResultCode::PAM_SUCCESS
    }
}
