//! open_session: load, decide, act, verify, and apply the failure policy. The PAM handle is
//! reached only through [`Host`], systemd through [`Bus`], NSS through [`Accounts`] and the
//! machine (policy, cgroupfs, notices) through [`System`]: this reads as the steps it takes,
//! and every path runs in-process against scripted fakes (the tests below).

use crate::args::Args;
use crate::decide::{Action, RepairKind, Situation, User, Verdict, decide, on_failure, scope_name};
use crate::live::{LiveAccounts, LiveBus, LiveSystem};
use contain_host::{Loaded, Machine, Outcome, Stats};
use contain_policy::unit::user_slice;
use contain_policy::{FailureAction, Policy, UserRef};
use contain_systemd::Property;
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

/// systemd's manager, as open_session calls it.
pub trait Bus {
    /// Starts a transient scope holding `pid` in `slice`, waiting for its job.
    fn start_scope(&self, scope: &str, slice: &str, pid: u32, timeout: Duration) -> Result<(), String>;
    /// Sets properties on a slice at runtime.
    fn set_properties(&self, slice: &str, props: &[Property], timeout: Duration) -> Result<(), String>;
}

/// NSS, bounded in time.
pub trait Accounts {
    /// PAM_USER → the account by its canonical name; its groups only when `with_groups`.
    fn by_name(&self, name: &str, with_groups: bool, timeout: Duration) -> Result<User, String>;
}

/// What open_session reads from the machine: the policy, cgroupfs, this process, the notices.
pub trait System {
    /// Opens the policy for this login; false when the account's groups cannot matter to it.
    fn open_policy(&self, host: &dyn Host) -> bool;
    /// The policy as it applies to `user`; without one, everything but the overrides.
    fn policy_for(&self, host: &dyn Host, user: Option<&User>) -> Loaded;
    /// This process's cgroup v2 path.
    fn cgroup(&self) -> Option<String>;
    /// A user's slice as cgroupfs shows it.
    fn slice(&self, uid: u32) -> Stats;
    fn machine(&self) -> Machine;
    fn pid(&self) -> u32;
    /// The time since boot in nanoseconds, for scope names no earlier process can have used.
    fn boot_ns(&self) -> u128;
    fn notices(&self, uid: u32) -> Option<Vec<String>>;
    fn notices_age(&self, uid: u32) -> Option<Duration>;
    fn remove_notices(&self, uid: u32) -> std::io::Result<()>;
}

/// Everything one open_session talks to.
pub struct World<'a, S, B, A> {
    pub host: &'a dyn Host,
    pub system: &'a S,
    pub bus: &'a B,
    pub accounts: &'a A,
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

/// One open_session on the live machine. `user_name` is PAM_USER, or why there is none usable.
/// `never_deny` is set as soon as the session is known to be root's or a never-deny account's:
/// should anything after that panic, the caller lets the session in.
pub fn open_session(
    host: &dyn Host,
    args: &Args,
    user_name: Result<&str, String>,
    notices: Notices,
    never_deny: &Cell<bool>,
) -> Answer {
    let world = World {
        host,
        system: &LiveSystem::new(args),
        bus: &LiveBus,
        accounts: &LiveAccounts,
    };
    open_session_in(&world, args, user_name, notices, never_deny)
}

/// [`open_session`] against any [`World`].
pub fn open_session_in<S: System, B: Bus, A: Accounts>(
    world: &World<'_, S, B, A>,
    args: &Args,
    user_name: Result<&str, String>,
    notices: Notices,
    never_deny: &Cell<bool>,
) -> Answer {
    let host = world.host;
    // One budget for everything that may wait: the account lookup and systemd's answers.
    let started = Instant::now();
    let deadline = started + args.timeout;
    if user_name.as_deref() == Ok("root") {
        never_deny.set(true);
    }
    // The policy opened (its compiled form, when current) says whether groups matter; who
    // next, through NSS (a directory may be slow or down: bounded by the deadline), then the
    // policy for that user: root is known to be root before a policy is parsed.
    let reads_groups = world.system.open_policy(host);
    let typed = user_name.as_deref().ok().map(str::to_owned);
    let user = user_name.and_then(|name| {
        let left = deadline.saturating_duration_since(Instant::now());
        world.accounts.by_name(name, reads_groups, left)
    });
    if matches!(user, Ok(User { uid: 0, .. })) {
        never_deny.set(true);
    }
    let loaded = world.system.policy_for(host, user.as_ref().ok());
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
    match place(world, policy, &user, deadline) {
        Ok(()) => {
            show_notices(world, user.uid, notices);
            Answer::Success
        }
        // The time taken tells a timeout from a refusal and shows how close a slow bus came.
        Err(why) => {
            let why = format!("{why} (after {} ms)", started.elapsed().as_millis());
            failed(world, policy, &user, &why, notices)
        }
    }
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

fn failed<S: System, B: Bus, A: Accounts>(
    world: &World<'_, S, B, A>,
    policy: &Policy,
    user: &User,
    why: &str,
    notices: Notices,
) -> Answer {
    let host = world.host;
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
            show_notices(world, user.uid, notices);
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
fn place<S: System, B: Bus, A: Accounts>(
    world: &World<'_, S, B, A>,
    policy: &Policy,
    user: &User,
    deadline: Instant,
) -> Result<(), String> {
    let (host, system) = (world.host, world.system);
    let machine = system.machine();
    let pid = system.pid();
    let scope = scope_name(user.uid, pid, system.boot_ns());
    let slice_path = format!("/user.slice/{}", user_slice(user.uid));
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
    let cgroup = system.cgroup();
    let action = situation(&cgroup, &system.slice(user.uid));
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
        Action::Repair { .. } => repair(world, uid, action, deadline),
        Action::MoveToScope { slice, scope, from } => {
            world.bus.start_scope(&scope, &slice, pid, remaining(deadline)?)?;
            let expected = format!("{slice_path}/{scope}");
            let now = system.cgroup();
            if now.as_deref() != Some(expected.as_str()) {
                return Err(format!(
                    "systemd started {scope}, but /proc/self/cgroup shows this process in {}, not {expected}",
                    now.as_deref().unwrap_or("(no cgroup v2 line)")
                ));
            }
            host.log(
                Level::Info,
                &format!("uid {uid}: moved pid {pid} from {from} to {slice}/{scope}"),
            );
            // The slice may be new (the user's first session): check its caps too.
            match situation(&now, &system.slice(uid)) {
                repair_action @ Action::Repair { .. } => repair(world, uid, repair_action, deadline),
                _ => Ok(()),
            }
        }
    }
}

fn repair<S: System, B: Bus, A: Accounts>(
    world: &World<'_, S, B, A>,
    uid: u32,
    action: Action,
    deadline: Instant,
) -> Result<(), String> {
    let Action::Repair {
        slice,
        why,
        differences,
        props,
    } = action
    else {
        return Ok(());
    };
    world.bus.set_properties(&slice, &props, remaining(deadline)?)?;
    let set: Vec<String> = props.iter().map(|p| p.to_string()).collect();
    // Overrides and lifts are applied at login by design: not worth a notice.
    let (level, what) = match why {
        RepairKind::Override => (Level::Info, "gets the user's own caps from the policy"),
        RepairKind::Lift => (
            Level::Info,
            "belongs to an exempt account: caps lifted, weights as system.slice's",
        ),
        RepairKind::Drift => (Level::Notice, "differed from the policy"),
    };
    world.host.log(
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
fn show_notices<S: System, B: Bus, A: Accounts>(world: &World<'_, S, B, A>, uid: u32, notices: Notices) {
    let (host, system) = (world.host, world.system);
    if notices == Notices::Hide {
        return;
    }
    let Some(lines) = system.notices(uid) else {
        return;
    };
    if !lines.iter().all(|l| host.tell(l)) {
        return;
    }
    let expired = notices == Notices::Show || system.notices_age(uid).is_none_or(|age| age >= KEEP_NOTICES);
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
    match system.remove_notices(uid) {
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

    /// Scripted fakes of everything open_session talks to.
    mod fakes {
        use super::super::*;
        use contain_host::Cap;
        use std::cell::RefCell;
        use std::collections::VecDeque;

        pub const GIB: u64 = 1 << 30;
        pub const M: Machine = Machine {
            ram: 32 * GIB,
            page_size: 4096,
            tasks: 4_194_303,
        };

        pub const POLICY: &str = "[users]\nmemory_high = \"1G\"\nmemory_max = \"2G\"\nmemory_swap_max = 0\n\
            tasks_max = 512\ncpu_weight = 100\nexempt_uid_below = 1000\n\
            [[override]]\nuser = \"carol\"\nmemory_max = \"3G\"\n\
            [login]\non_failure = \"deny\"\nnever_deny_users = [\"admin\"]\nnever_deny_groups = [\"sudo\"]\n";

        pub fn applied(text: &str) -> Loaded {
            let policy =
                contain_policy::parse(&[contain_policy::Source { path: "p.toml", text }]).expect("policy");
            Loaded {
                policy,
                outcome: Outcome::Applied,
                errors: Vec::new(),
            }
        }

        /// The slice as systemd sets it for [`POLICY`].
        pub fn right() -> Stats {
            Stats {
                memory_high: Some(Cap::Value(GIB)),
                memory_max: Some(Cap::Value(2 * GIB)),
                swap_max: Some(Cap::Value(0)),
                pids_max: Some(Cap::Value(512)),
                cpu_weight: Some(100),
                ..Stats::default()
            }
        }

        pub struct FakeSystem {
            pub loaded: Loaded,
            pub reads_groups: bool,
            /// Each read takes the next; the last one stays.
            pub cgroups: RefCell<VecDeque<Option<String>>>,
            pub slice: Stats,
            pub notices: RefCell<Option<Vec<String>>>,
            pub opened: Cell<bool>,
        }

        impl FakeSystem {
            pub fn new(cgroup: &str, slice: Stats) -> FakeSystem {
                FakeSystem {
                    loaded: applied(POLICY),
                    reads_groups: true,
                    cgroups: RefCell::new(VecDeque::from([Some(cgroup.to_string())])),
                    slice,
                    notices: RefCell::new(None),
                    opened: Cell::new(false),
                }
            }
        }

        impl System for FakeSystem {
            fn open_policy(&self, _: &dyn Host) -> bool {
                self.opened.set(true);
                self.reads_groups
            }
            fn policy_for(&self, _: &dyn Host, _: Option<&User>) -> Loaded {
                assert!(self.opened.get(), "the policy is opened before it is read");
                self.loaded.clone()
            }
            fn cgroup(&self) -> Option<String> {
                let mut queue = self.cgroups.borrow_mut();
                if queue.len() > 1 {
                    queue.pop_front().flatten()
                } else {
                    queue.front().cloned().flatten()
                }
            }
            fn slice(&self, _: u32) -> Stats {
                self.slice.clone()
            }
            fn machine(&self) -> Machine {
                M
            }
            fn pid(&self) -> u32 {
                4242
            }
            fn boot_ns(&self) -> u128 {
                7
            }
            fn notices(&self, _: u32) -> Option<Vec<String>> {
                self.notices.borrow().clone()
            }
            fn notices_age(&self, _: u32) -> Option<Duration> {
                Some(Duration::ZERO)
            }
            fn remove_notices(&self, _: u32) -> std::io::Result<()> {
                *self.notices.borrow_mut() = None;
                Ok(())
            }
        }

        /// systemd: answers in order (`Ok` once the script runs out); every call recorded.
        #[derive(Default)]
        pub struct FakeBus {
            pub answers: RefCell<VecDeque<Result<(), String>>>,
            pub calls: RefCell<Vec<String>>,
        }

        impl FakeBus {
            pub fn down() -> FakeBus {
                let bus = FakeBus::default();
                bus.answers
                    .borrow_mut()
                    .extend((0..4).map(|_| Err("connecting to the system bus: no such file".into())));
                bus
            }
            fn answer(&self, call: String) -> Result<(), String> {
                self.calls.borrow_mut().push(call);
                self.answers.borrow_mut().pop_front().unwrap_or(Ok(()))
            }
        }

        impl Bus for FakeBus {
            fn start_scope(&self, scope: &str, slice: &str, pid: u32, _: Duration) -> Result<(), String> {
                self.answer(format!("start {scope} in {slice} with {pid}"))
            }
            fn set_properties(&self, slice: &str, props: &[Property], _: Duration) -> Result<(), String> {
                let props: Vec<String> = props.iter().map(|p| p.to_string()).collect();
                self.answer(format!("set {slice} {}", props.join(" ")))
            }
        }

        /// NSS: alice 1001, bob 1002 (sudo), carol 5001, admin 1500, svc 500, root 0; any
        /// other name is unknown. `hung` makes every lookup time out.
        #[derive(Default)]
        pub struct FakeAccounts {
            pub hung: bool,
            pub asked: RefCell<Vec<(String, bool)>>,
        }

        impl Accounts for FakeAccounts {
            fn by_name(&self, name: &str, with_groups: bool, timeout: Duration) -> Result<User, String> {
                self.asked.borrow_mut().push((name.to_string(), with_groups));
                if self.hung {
                    return Err(format!(
                        "looking up {name:?} took longer than {} ms",
                        timeout.as_millis()
                    ));
                }
                let (uid, groups): (u32, &[&str]) = match name {
                    "root" => (0, &["root"]),
                    "svc" => (500, &["svc"]),
                    "alice" => (1001, &["alice"]),
                    "bob" => (1002, &["bob", "sudo"]),
                    "admin" => (1500, &["admin"]),
                    "carol" => (5001, &["carol"]),
                    _ => return Err(format!("no such user {name:?}")),
                };
                Ok(User {
                    uid,
                    name: name.to_string(),
                    groups: if with_groups {
                        groups.iter().map(|g| g.to_string()).collect()
                    } else {
                        Vec::new()
                    },
                })
            }
        }
    }

    use fakes::*;

    /// One open_session against the fakes: the answer, whether a panic would be forgiven, the log.
    fn login(
        system: &FakeSystem,
        bus: &FakeBus,
        accounts: &FakeAccounts,
        user: &str,
        notices: Notices,
    ) -> (Answer, bool, Vec<(Level, String)>) {
        let host = Recorder::default();
        let world = World {
            host: &host,
            system,
            bus,
            accounts,
        };
        let never_deny = Cell::new(false);
        let answer = open_session_in(&world, &Args::default(), Ok(user), notices, &never_deny);
        (answer, never_deny.get(), host.0.into_inner())
    }

    fn logged(log: &[(Level, String)], needle: &str) -> bool {
        log.iter().any(|(_, m)| m.contains(needle))
    }

    const ALICE_SESSION: &str = "/user.slice/user-1001.slice/session-4.scope";
    const CRON: &str = "/system.slice/cron.service";

    #[test]
    fn in_the_slice_with_the_right_caps_asks_systemd_nothing_and_shows_notices() {
        let system = FakeSystem::new(ALICE_SESSION, right());
        *system.notices.borrow_mut() = Some(vec!["contain: killed x".into()]);
        let bus = FakeBus::default();
        let (answer, never_deny, log) =
            login(&system, &bus, &FakeAccounts::default(), "alice", Notices::Show);
        assert_eq!((answer, never_deny), (Answer::Success, false));
        assert!(bus.calls.borrow().is_empty(), "{:?}", bus.calls);
        assert!(
            logged(&log, "uid 1001: in user-1001.slice with the policy's caps"),
            "{log:?}"
        );
        // Recorder::tell delivers nothing: the notices stay for the next login.
        assert!(system.notices.borrow().is_some());
    }

    #[test]
    fn in_the_slice_with_drifted_caps_sets_only_those() {
        let slice = Stats {
            memory_max: Some(contain_host::Cap::Max),
            ..right()
        };
        let system = FakeSystem::new(ALICE_SESSION, slice);
        let bus = FakeBus::default();
        let (answer, _, log) = login(&system, &bus, &FakeAccounts::default(), "alice", Notices::Hide);
        assert_eq!(answer, Answer::Success);
        assert_eq!(*bus.calls.borrow(), ["set user-1001.slice MemoryMax=2147483648"]);
        assert!(logged(&log, "differed from the policy"), "{log:?}");
    }

    #[test]
    fn an_override_is_set_at_login() {
        let system = FakeSystem::new("/user.slice/user-5001.slice/session-2.scope", right());
        let bus = FakeBus::default();
        let (answer, _, log) = login(&system, &bus, &FakeAccounts::default(), "carol", Notices::Hide);
        assert_eq!(answer, Answer::Success);
        assert_eq!(
            *bus.calls.borrow(),
            [format!("set user-5001.slice MemoryMax={}", 3 * GIB)]
        );
        assert!(
            logged(&log, "gets the user's own caps from the policy"),
            "{log:?}"
        );
    }

    #[test]
    fn outside_the_slice_the_session_moves_to_a_new_scope_and_is_checked_there() {
        let scope = "contain-1001-4242-7.scope";
        let system = FakeSystem::new(CRON, right());
        system
            .cgroups
            .borrow_mut()
            .push_back(Some(format!("/user.slice/user-1001.slice/{scope}")));
        let bus = FakeBus::default();
        let (answer, _, log) = login(&system, &bus, &FakeAccounts::default(), "alice", Notices::Hide);
        assert_eq!(answer, Answer::Success, "{log:?}");
        assert_eq!(
            *bus.calls.borrow(),
            [format!("start {scope} in user-1001.slice with 4242")]
        );
        assert!(
            logged(
                &log,
                &format!("moved pid 4242 from {CRON} to user-1001.slice/{scope}")
            ),
            "{log:?}"
        );
    }

    #[test]
    fn a_scope_that_does_not_hold_the_process_fails_the_login() {
        let system = FakeSystem::new(CRON, right());
        let (answer, _, log) = login(
            &system,
            &FakeBus::default(),
            &FakeAccounts::default(),
            "alice",
            Notices::Hide,
        );
        assert_eq!(answer, Answer::Denied);
        assert!(logged(&log, &format!("shows this process in {CRON}")), "{log:?}");
    }

    #[test]
    fn a_dead_bus_denies_users_but_never_root_or_never_deny_accounts() {
        for (user, cgroup, expected, forgiven) in [
            ("alice", CRON, Answer::Denied, false),
            ("bob", CRON, Answer::Success, true),
            ("admin", CRON, Answer::Success, true),
            ("root", ALICE_SESSION, Answer::Success, true),
        ] {
            let system = FakeSystem::new(cgroup, right());
            let bus = FakeBus::down();
            let (answer, never_deny, log) =
                login(&system, &bus, &FakeAccounts::default(), user, Notices::Hide);
            assert_eq!((answer, never_deny), (expected, forgiven), "{user}: {log:?}");
            assert_eq!(bus.calls.borrow().len(), 1, "{user}: one attempt");
            let said = if forgiven {
                "allowed UNCAPPED"
            } else {
                "session DENIED"
            };
            assert!(logged(&log, said), "{user}: {log:?}");
        }
    }

    #[test]
    fn an_exempt_account_in_its_own_capped_slice_gets_the_caps_lifted() {
        let system = FakeSystem::new("/user.slice/user-500.slice/session-9.scope", right());
        let bus = FakeBus::default();
        let (answer, never_deny, log) = login(&system, &bus, &FakeAccounts::default(), "svc", Notices::Hide);
        assert_eq!((answer, never_deny), (Answer::Success, false));
        let calls = bus.calls.borrow();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert!(
            calls[0].starts_with("set user-500.slice MemoryHigh=infinity MemoryMax=infinity"),
            "{calls:?}"
        );
        assert!(
            logged(
                &log,
                "belongs to an exempt account: caps lifted, weights as system.slice's"
            ),
            "{log:?}"
        );
    }

    #[test]
    fn a_hung_directory_denies_by_policy_but_lets_never_deny_names_in() {
        let accounts = FakeAccounts {
            hung: true,
            ..FakeAccounts::default()
        };
        for (user, expected) in [
            ("alice", Answer::Denied),
            ("admin", Answer::Success),
            ("root", Answer::Success),
        ] {
            let system = FakeSystem::new(CRON, right());
            let bus = FakeBus::default();
            let (answer, _, log) = login(&system, &bus, &accounts, user, Notices::Hide);
            assert_eq!(answer, expected, "{user}: {log:?}");
            assert!(logged(&log, "took longer than"), "{user}: {log:?}");
            assert!(bus.calls.borrow().is_empty(), "{user}: nobody to place");
        }
    }

    #[test]
    fn a_broken_policy_is_reported_and_the_built_in_default_enforced() {
        let mut system = FakeSystem::new(ALICE_SESSION, right());
        system.loaded = Loaded {
            policy: contain_policy::builtin_default(),
            outcome: Outcome::Fallback,
            errors: vec!["/etc/contain/policy.toml:3:1: unknown key `memory_maxx`".into()],
        };
        let bus = FakeBus::default();
        let (answer, _, log) = login(&system, &bus, &FakeAccounts::default(), "alice", Notices::Hide);
        assert_eq!(answer, Answer::Success, "{log:?}");
        assert!(
            logged(
                &log,
                "is invalid, enforcing the built-in default policy instead (/etc/contain/policy.toml:3:1"
            ),
            "{log:?}"
        );
        assert_eq!(
            bus.calls.borrow().len(),
            1,
            "the default's caps are set: {:?}",
            bus.calls
        );
    }

    #[test]
    fn groups_are_looked_up_only_when_the_policy_reads_them() {
        for reads_groups in [true, false] {
            let mut system = FakeSystem::new(ALICE_SESSION, right());
            system.reads_groups = reads_groups;
            let accounts = FakeAccounts::default();
            login(&system, &FakeBus::default(), &accounts, "alice", Notices::Hide);
            assert_eq!(*accounts.asked.borrow(), [("alice".to_string(), reads_groups)]);
        }
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
