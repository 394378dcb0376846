//! open_session: load, decide, act, verify, and apply the failure policy. The PAM handle is
//! reached only through [`Host`], so this reads as the steps it takes.

use crate::args::Args;
use crate::decide::{Action, Situation, User, Verdict, decide, on_failure};
use crate::{account, system};
use contain_generator::{Outcome, load};
use contain_policy::unit::user_slice;
use contain_policy::{FailureAction, Policy};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

/// What the module needs from its host: the log, and a line of text for the user.
pub trait Host {
    fn log(&self, level: Level, message: &str);
    /// Shows a line to the user (PAM_TEXT_INFO); false when it could not be delivered.
    fn tell(&self, text: &str) -> bool;
}

/// The module's answer to PAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Success,
    Denied,
}

/// One open_session. `user_name` is PAM_USER, or why there is none usable; `interactive` says
/// whether notices can be shown (a terminal login).
pub fn open_session(
    host: &dyn Host,
    args: &Args,
    user_name: Result<&str, String>,
    interactive: bool,
) -> Answer {
    let loaded = load(&args.policy);
    match loaded.outcome {
        Outcome::Applied => {}
        Outcome::Default => host.log(
            Level::Debug,
            &format!(
                "{} absent: enforcing the built-in default policy",
                args.policy.display()
            ),
        ),
        Outcome::Fallback => host.log(
            Level::Warning,
            &format!(
                "{} is invalid, enforcing the built-in default policy instead ({}); run `containctl check`",
                args.policy.display(),
                loaded.errors.first().map(String::as_str).unwrap_or("no detail")
            ),
        ),
    }
    let policy = &loaded.policy;

    let user = match user_name.and_then(account::lookup) {
        Ok(user) => user,
        Err(why) => return unresolved(host, policy, &why),
    };
    let deadline = Instant::now() + args.timeout;
    match place(host, args, policy, &user, deadline) {
        Ok(()) => {
            if interactive {
                show_notices(host, args, user.uid);
            }
            Answer::Success
        }
        Err(why) => failed(host, policy, &user, &why, interactive, args),
    }
}

fn unresolved(host: &dyn Host, policy: &Policy, why: &str) -> Answer {
    match policy.login.on_failure {
        FailureAction::Deny => {
            host.log(
                Level::Err,
                &format!("{why}; session denied (login.on_failure = \"deny\")"),
            );
            Answer::Denied
        }
        FailureAction::Allow => {
            host.log(
                Level::Warning,
                &format!("{why}; session allowed uncapped (login.on_failure = \"allow\")"),
            );
            Answer::Success
        }
    }
}

fn failed(
    host: &dyn Host,
    policy: &Policy,
    user: &User,
    why: &str,
    interactive: bool,
    args: &Args,
) -> Answer {
    let slice = user_slice(user.uid);
    let head = format!("uid {}: cannot place the session in {slice}: {why}", user.uid);
    let check = "check `systemctl status dbus` and `busctl status org.freedesktop.systemd1`";
    match on_failure(policy, user) {
        Verdict::Deny => {
            host.log(
                Level::Err,
                &format!("{head}; session DENIED (login.on_failure = \"deny\"); {check}"),
            );
            Answer::Denied
        }
        verdict => {
            let why_allowed = if verdict == Verdict::Allow {
                "login.on_failure = \"allow\""
            } else {
                "root and login.never_deny_* are never denied"
            };
            host.log(
                Level::Warning,
                &format!("{head}; session allowed UNCAPPED ({why_allowed}); {check}"),
            );
            if interactive {
                show_notices(host, args, user.uid);
            }
            Answer::Success
        }
    }
}

fn remaining(deadline: Instant) -> Result<Duration, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err("out of time before asking systemd (timeout= budget spent)".into())
    } else {
        Ok(left)
    }
}

/// Decides and acts; after a move, checks where the process landed and the slice's caps.
fn place(
    host: &dyn Host,
    args: &Args,
    policy: &Policy,
    user: &User,
    deadline: Instant,
) -> Result<(), String> {
    let machine = system::machine();
    let pid = std::process::id();
    let slice_path = format!("/user.slice/{}", user_slice(user.uid));
    let situation = |cgroup: &Option<String>, slice: &crate::decide::SliceState| -> Action {
        decide(&Situation {
            policy,
            user,
            cgroup: cgroup.as_deref(),
            slice,
            machine,
            pid,
        })
    };
    let cgroup = system::read_cgroup(&args.proc_cgroup);
    let action = situation(&cgroup, &system::read_slice(&args.cgroup_root, &slice_path));
    let uid = user.uid;
    match action {
        Action::Nothing(why) => {
            host.log(
                Level::Debug,
                &format!("uid {uid}: exempt ({why:?}), nothing to do"),
            );
            Ok(())
        }
        Action::InPlace { slice } => {
            host.log(
                Level::Debug,
                &format!("uid {uid}: in {slice} with the policy's caps"),
            );
            Ok(())
        }
        Action::Repair { .. } => repair(host, uid, action, deadline),
        Action::MoveToScope { slice, scope, from } => {
            contain_systemd::start_transient_scope(&scope, &slice, &[pid], &[], remaining(deadline)?)
                .map_err(|e| e.to_string())?;
            let expected = format!("{slice_path}/{scope}");
            let now = system::read_cgroup(&args.proc_cgroup);
            if now.as_deref() != Some(expected.as_str()) {
                return Err(format!(
                    "systemd started {scope}, but {} shows this process in {}, not {expected}",
                    args.proc_cgroup.display(),
                    now.as_deref().unwrap_or("(no cgroup v2 line)")
                ));
            }
            host.log(
                Level::Info,
                &format!("uid {uid}: moved pid {pid} from {from} to {slice}/{scope}"),
            );
            // The slice may be new (the user's first session): check its caps too.
            match situation(&now, &system::read_slice(&args.cgroup_root, &slice_path)) {
                repair_action @ Action::Repair { .. } => repair(host, uid, repair_action, deadline),
                _ => Ok(()),
            }
        }
    }
}

fn repair(host: &dyn Host, uid: u32, action: Action, deadline: Instant) -> Result<(), String> {
    let Action::Repair {
        slice,
        differences,
        props,
    } = action
    else {
        return Ok(());
    };
    contain_systemd::set_unit_properties(&slice, true, &props, remaining(deadline)?)
        .map_err(|e| e.to_string())?;
    let set: Vec<String> = props.iter().map(|p| p.to_string()).collect();
    host.log(
        Level::Notice,
        &format!(
            "uid {uid}: {slice} differed from the policy ({}); set at runtime: {}",
            differences.join("; "),
            set.join(" ")
        ),
    );
    Ok(())
}

/// Shows the watchdog's notices, then removes them — only once they were delivered.
fn show_notices(host: &dyn Host, args: &Args, uid: u32) {
    let Some(lines) = system::read_notices(&args.notices, uid) else {
        return;
    };
    if lines.iter().all(|l| host.tell(l)) {
        if let Err(e) = system::remove_notices(&args.notices, uid) {
            host.log(
                Level::Warning,
                &format!("uid {uid}: notices shown but not removed: {e}"),
            );
        } else {
            host.log(
                Level::Debug,
                &format!("uid {uid}: {} notice(s) shown", lines.len()),
            );
        }
    }
}

/// Whether a PAM_TTY names a terminal (sshd with a pty, login, su on a tty), not cron or `ssh host cmd`.
pub fn interactive_tty(tty: Option<&str>) -> bool {
    tty.is_some_and(|t| {
        t.starts_with("/dev/") || t.starts_with("tty") || t.starts_with("pts/") || t.starts_with(':')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminals_are_interactive() {
        assert!(interactive_tty(Some("/dev/pts/3")));
        assert!(interactive_tty(Some("tty1")));
        assert!(interactive_tty(Some(":0")));
        assert!(!interactive_tty(Some("ssh")));
        assert!(!interactive_tty(Some("cron")));
        assert!(!interactive_tty(None));
    }
}
