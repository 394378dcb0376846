//! open_session: load, decide, act, verify, and apply the failure policy. The PAM handle is
//! reached only through [`Host`], so this reads as the steps it takes.

use crate::args::Args;
use crate::decide::{Action, RepairKind, Situation, User, Verdict, decide, on_failure, scope_name};
use crate::system;
use contain_host::accounts;
use contain_host::cgroupfs::read_cgroup;
use contain_host::{Machine, Outcome, Root, Stats, load};
use contain_policy::unit::user_slice;
use contain_policy::{FailureAction, Policy, UserRef};
use std::cell::Cell;
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

/// How the watchdog's notices reach the user in this session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notices {
    /// A terminal login: show them, then remove them.
    Show,
    /// sshd before it knows whether a pty follows (PAM_TTY=ssh): sshd prints them on a
    /// terminal login and drops them for `ssh host cmd`, so they are kept for a day.
    ShowAndKeep,
    /// cron, sudo, `su -c`: nobody would see them.
    Hide,
}

/// How long a notice shown to sshd without a terminal is shown again.
const KEEP_NOTICES: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// One open_session. `user_name` is PAM_USER, or why there is none usable. `never_deny` is set
/// as soon as the session is known to be root's or a never-deny account's: should anything after
/// that panic, the caller lets the session in.
pub fn open_session(
    host: &dyn Host,
    args: &Args,
    user_name: Result<&str, String>,
    notices: Notices,
    never_deny: &Cell<bool>,
) -> Answer {
    // One budget for everything that may wait: the account lookup and systemd's answers.
    let deadline = Instant::now() + args.timeout;
    if user_name.as_deref() == Ok("root") {
        never_deny.set(true);
    }
    // Who first, through NSS (a directory may be slow or down: bounded by the deadline), then
    // the policy: root is known to be root before a policy is parsed.
    let typed = user_name.as_deref().ok().map(str::to_owned);
    let user = user_name.and_then(|name| lookup(name, deadline));
    if matches!(user, Ok(User { uid: 0, .. })) {
        never_deny.set(true);
    }
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
    let user = match user {
        Ok(user) => user,
        Err(why) => return unresolved(host, policy, typed.as_deref(), &why),
    };
    if on_failure(policy, &user) == Verdict::AllowNeverDeny {
        never_deny.set(true);
    }
    #[cfg(debug_assertions)]
    #[allow(clippy::panic)]
    if args.panic_for_test {
        panic!("panic_for_test: a bug must fail this login, never root's");
    }
    match place(host, args, policy, &user, deadline) {
        Ok(()) => {
            show_notices(host, args, user.uid, notices);
            Answer::Success
        }
        Err(why) => failed(host, policy, &user, &why, notices, args),
    }
}

/// PAM_USER → the account, by its canonical name, with its groups.
fn lookup(name: &str, deadline: Instant) -> Result<User, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    let account = accounts::by_name(&Root::default(), name, left).map_err(|e| e.to_string())?;
    Ok(User {
        uid: account.uid,
        name: account.name,
        groups: account.groups,
    })
}

/// The time since boot, for scope names that no earlier process can have used.
fn boot_ns() -> u128 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u128 * 1_000_000_000 + t.tv_nsec() as u128)
        .unwrap_or_default()
}

/// No account to place the session for. Root and never-deny users named in the policy still
/// get in, by the name as typed (a hung directory answers nothing better): letting one in
/// uncapped is the safe side of that guess.
fn unresolved(host: &dyn Host, policy: &Policy, typed: Option<&str>, why: &str) -> Answer {
    let never_denied = typed.is_some_and(|name| {
        name == "root"
            || (policy.login.never_deny_users.iter()).any(|u| matches!(u, UserRef::Name(n) if n == name))
    });
    if never_denied {
        host.log(
            Level::Warning,
            &format!("{why}; session allowed UNCAPPED (root and login.never_deny_users are never denied)"),
        );
        return Answer::Success;
    }
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

fn failed(host: &dyn Host, policy: &Policy, user: &User, why: &str, notices: Notices, args: &Args) -> Answer {
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
            show_notices(host, args, user.uid, notices);
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
    let machine = Machine::of(&Root::default());
    let pid = std::process::id();
    let scope = scope_name(user.uid, pid, boot_ns());
    let slice_path = format!("/user.slice/{}", user_slice(user.uid));
    let slice_dir = args.cgroup_root.join(slice_path.trim_start_matches('/'));
    let situation = |cgroup: &Option<String>, slice: &Stats| -> Action {
        decide(&Situation {
            policy,
            user,
            cgroup: cgroup.as_deref(),
            slice,
            machine,
            scope: &scope,
        })
    };
    let cgroup = read_cgroup(&args.proc_cgroup);
    let action = situation(&cgroup, &Stats::read(&slice_dir));
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
            let now = read_cgroup(&args.proc_cgroup);
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
            match situation(&now, &Stats::read(&slice_dir)) {
                repair_action @ Action::Repair { .. } => repair(host, uid, repair_action, deadline),
                _ => Ok(()),
            }
        }
    }
}

fn repair(host: &dyn Host, uid: u32, action: Action, deadline: Instant) -> Result<(), String> {
    let Action::Repair {
        slice,
        why,
        differences,
        props,
    } = action
    else {
        return Ok(());
    };
    contain_systemd::set_unit_properties(&slice, true, &props, remaining(deadline)?)
        .map_err(|e| e.to_string())?;
    let set: Vec<String> = props.iter().map(|p| p.to_string()).collect();
    // Overrides and lifts are applied at login by design: not worth a notice.
    let (level, what) = match why {
        RepairKind::Override => (Level::Info, "gets the user's own caps from the policy"),
        RepairKind::Lift => (Level::Info, "belongs to an exempt account: caps lifted"),
        RepairKind::Drift => (Level::Notice, "differed from the policy"),
    };
    host.log(
        level,
        &format!(
            "uid {uid}: {slice} {what} ({}); set at runtime: {}",
            differences.join("; "),
            set.join(" ")
        ),
    );
    Ok(())
}

/// Shows the watchdog's notices, then removes them — only once they were delivered, and, where
/// sshd may drop them unseen, only once they are a day old.
fn show_notices(host: &dyn Host, args: &Args, uid: u32, notices: Notices) {
    if notices == Notices::Hide {
        return;
    }
    let Some(lines) = system::read_notices(&args.notices, uid) else {
        return;
    };
    if !lines.iter().all(|l| host.tell(l)) {
        return;
    }
    let expired = notices == Notices::Show
        || system::notices_age(&args.notices, uid).is_none_or(|age| age >= KEEP_NOTICES);
    if !expired {
        host.log(
            Level::Debug,
            &format!(
                "uid {uid}: {} notice(s) shown, kept for terminal logins",
                lines.len()
            ),
        );
        return;
    }
    match system::remove_notices(&args.notices, uid) {
        Err(e) => host.log(
            Level::Warning,
            &format!("uid {uid}: notices shown but not removed: {e}"),
        ),
        Ok(()) => host.log(
            Level::Debug,
            &format!("uid {uid}: {} notice(s) shown", lines.len()),
        ),
    }
}

/// How notices reach the user, from PAM_TTY.
pub fn notice_delivery(tty: Option<&str>) -> Notices {
    match tty {
        Some("ssh") => Notices::ShowAndKeep,
        Some(t)
            if t.starts_with("/dev/")
                || t.starts_with("tty")
                || t.starts_with("pts/")
                || t.starts_with(':') =>
        {
            Notices::Show
        }
        _ => Notices::Hide,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Recorder(RefCell<Vec<(Level, String)>>);

    impl Host for Recorder {
        fn log(&self, level: Level, message: &str) {
            self.0.borrow_mut().push((level, message.to_string()));
        }
        fn tell(&self, _: &str) -> bool {
            false
        }
    }

    #[test]
    fn an_unresolvable_account_is_denied_unless_root_or_never_deny_by_name() {
        let policy = contain_policy::parse(&[contain_policy::Source {
            path: "p.toml",
            text: "[users]\nmemory_max = \"1G\"\n[login]\non_failure = \"deny\"\nnever_deny_users = [\"admin\"]\n",
        }])
        .expect("policy");
        let why = "looking up \"x\" took longer than 2000 ms";
        let host = Recorder::default();
        // A hung directory: root (whose groups sssd would add) and admin still get in.
        assert_eq!(unresolved(&host, &policy, Some("root"), why), Answer::Success);
        assert_eq!(unresolved(&host, &policy, Some("admin"), why), Answer::Success);
        assert_eq!(unresolved(&host, &policy, Some("alice"), why), Answer::Denied);
        assert_eq!(unresolved(&host, &policy, None, why), Answer::Denied);
        let log = host.0.borrow();
        assert!(log[0].1.contains("allowed UNCAPPED"), "{log:?}");
        assert_eq!(log[2].0, Level::Err);
    }

    #[test]
    fn notices_go_to_terminals_and_to_sshd() {
        assert_eq!(notice_delivery(Some("/dev/pts/3")), Notices::Show);
        assert_eq!(notice_delivery(Some("tty1")), Notices::Show);
        assert_eq!(notice_delivery(Some(":0")), Notices::Show);
        assert_eq!(notice_delivery(Some("ssh")), Notices::ShowAndKeep);
        assert_eq!(notice_delivery(Some("cron")), Notices::Hide);
        assert_eq!(notice_delivery(None), Notices::Hide);
    }
}
