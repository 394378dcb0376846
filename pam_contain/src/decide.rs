//! The decision: who is logging in, where the process is, what the slice enforces now → what to do.
//! Pure: every input is a value, so every branch has a unit test.

use contain_policy::unit::user_slice;
use contain_policy::value::{Size, Tasks, human_bytes};
use contain_policy::{Exemption, FailureAction, Limits, Policy, Resolution};
use contain_systemd::{Property, properties_for};

/// The account the session is for, resolved through NSS. The name is only matched against the
/// policy; units are named by UID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    fn group_refs(&self) -> Vec<&str> {
        self.groups.iter().map(String::as_str).collect()
    }
}

/// A cgroup limit file's value: `max`, or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Max,
    Value(u64),
    /// The file is there but could not be read, or holds neither: never taken as the policy's.
    Unreadable,
}

impl Limit {
    /// Parses `max` or a number, as in memory.max or pids.max.
    pub fn parse(text: &str) -> Option<Limit> {
        match text.trim() {
            "max" => Some(Limit::Max),
            t => t.parse().ok().map(Limit::Value),
        }
    }
}

/// What the user's slice enforces now, from cgroupfs. `None`: the file is missing (controller
/// off, or the slice does not exist yet); [`Limit::Unreadable`]: there but not understood.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SliceState {
    pub memory_high: Option<Limit>,
    pub memory_max: Option<Limit>,
    pub memory_swap_max: Option<Limit>,
    pub pids_max: Option<Limit>,
    pub cpu_weight: Option<u64>,
    pub io_weight: Option<u64>,
}

/// The machine facts percentages resolve against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Physical memory in bytes (what systemd's `N%` means).
    pub ram: u64,
    pub page_size: u64,
    /// The kernel's task limit (what `TasksMax=N%` means).
    pub tasks_total: u64,
}

/// Everything the decision needs.
pub struct Situation<'a> {
    pub policy: &'a Policy,
    pub user: &'a User,
    /// This process's cgroup v2 path (`/user.slice/user-1000.slice/session-3.scope`), if known.
    pub cgroup: Option<&'a str>,
    /// The target user's slice, as cgroupfs shows it.
    pub slice: &'a SliceState,
    pub machine: Machine,
    pub pid: u32,
}

/// What open_session does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The policy never caps this user.
    Nothing(Exemption),
    /// In the user's slice, and the slice has the policy's caps.
    InPlace { slice: String },
    /// In the user's slice, but some caps differ: set these at runtime.
    Repair {
        slice: String,
        /// The caps come from an `[[override]]`: the slice starts with `[users]` caps and gets
        /// the user's own at login, so a difference is expected, not a repair.
        per_user: bool,
        differences: Vec<String>,
        props: Vec<Property>,
    },
    /// Elsewhere (cron, sudo -u, su from another user's session): move into a new scope there.
    MoveToScope {
        slice: String,
        scope: String,
        /// Where the process is now, for the log.
        from: String,
    },
}

/// Decides what to do for this login.
pub fn decide(s: &Situation<'_>) -> Action {
    let groups = s.user.group_refs();
    let (limits, per_user) = match s.policy.resolve(s.user.uid, &s.user.name, &groups) {
        Resolution::Exempt(why) => return Action::Nothing(why),
        Resolution::Capped(eff) => (eff.limits(), eff.from_override()),
    };
    let slice = user_slice(s.user.uid);
    let slice_path = format!("/user.slice/{slice}");
    let inside = s
        .cgroup
        .is_some_and(|cg| cg == slice_path || cg.starts_with(&format!("{slice_path}/")));
    if !inside {
        return Action::MoveToScope {
            scope: scope_name(s.user.uid, s.pid),
            from: s.cgroup.unwrap_or("(unknown cgroup)").to_string(),
            slice,
        };
    }
    let (differences, wanted) = compare(&limits, s.slice, s.machine);
    if differences.is_empty() {
        Action::InPlace { slice }
    } else {
        Action::Repair {
            slice,
            per_user,
            differences,
            props: properties_for(&wanted),
        }
    }
}

/// The scope a moved process gets: named by UID and PID only, unique while the process lives.
pub fn scope_name(uid: u32, pid: u32) -> String {
    format!("contain-{uid}-{pid}.scope")
}

/// What to do when placing the session failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Deny,
    /// `login.on_failure = "allow"`.
    Allow,
    /// Root or a never-deny user or group: let in whatever the policy's failure action.
    AllowNeverDeny,
}

pub fn on_failure(policy: &Policy, user: &User) -> Verdict {
    if policy.never_deny(user.uid, &user.name, &user.group_refs()) {
        return Verdict::AllowNeverDeny;
    }
    match policy.login.on_failure {
        FailureAction::Deny => Verdict::Deny,
        FailureAction::Allow => Verdict::Allow,
    }
}

/// Compares the slice with the policy. Returns the differences, for the log, and the subset of
/// the limits to set again.
fn compare(limits: &Limits, now: &SliceState, m: Machine) -> (Vec<String>, Limits) {
    let mut diffs = Vec::new();
    let mut wanted = Limits::default();
    let memory = |size: Size, actual: Option<Limit>, name: &str, diffs: &mut Vec<String>| -> bool {
        let ok = memory_matches(size, actual, m);
        if !ok {
            diffs.push(format!("{name} is {}, policy says {size}", show(actual, true)));
        }
        !ok
    };
    if let Some(size) = limits.memory_high
        && memory(size, now.memory_high, "MemoryHigh", &mut diffs)
    {
        wanted.memory_high = Some(size);
    }
    if let Some(size) = limits.memory_max
        && memory(size, now.memory_max, "MemoryMax", &mut diffs)
    {
        wanted.memory_max = Some(size);
    }
    // memory.swap.max is missing when the kernel accounts no swap: nothing to set then.
    if let Some(size) = limits.memory_swap_max
        && now.memory_swap_max.is_some()
        && memory(size, now.memory_swap_max, "MemorySwapMax", &mut diffs)
    {
        wanted.memory_swap_max = Some(size);
    }
    if let Some(tasks) = limits.tasks_max
        && !tasks_match(tasks, now.pids_max, m.tasks_total)
    {
        diffs.push(format!(
            "TasksMax is {}, policy says {tasks}",
            show(now.pids_max, false)
        ));
        wanted.tasks_max = Some(tasks);
    }
    // A missing weight file means the controller is off there: the kernel's default, 100, applies.
    if let Some(w) = limits.cpu_weight
        && u64::from(w) != now.cpu_weight.unwrap_or(100)
    {
        diffs.push(format!(
            "CPUWeight is {}, policy says {w}",
            now.cpu_weight.unwrap_or(100)
        ));
        wanted.cpu_weight = Some(w);
    }
    if let Some(w) = limits.io_weight
        && u64::from(w) != now.io_weight.unwrap_or(100)
    {
        diffs.push(format!(
            "IOWeight is {}, policy says {w}",
            now.io_weight.unwrap_or(100)
        ));
        wanted.io_weight = Some(w);
    }
    (diffs, wanted)
}

fn show(actual: Option<Limit>, bytes: bool) -> String {
    match actual {
        None => "unset (no such cgroup file)".into(),
        Some(Limit::Max) => "infinity".into(),
        Some(Limit::Unreadable) => "unreadable (the cgroup file holds no limit)".into(),
        Some(Limit::Value(v)) if bytes => human_bytes(v),
        Some(Limit::Value(v)) => v.to_string(),
    }
}

/// The kernel keeps memory limits in pages, rounding down; shares of RAM may differ from
/// systemd's own arithmetic by rounding, hence a small tolerance for them.
fn memory_matches(size: Size, actual: Option<Limit>, m: Machine) -> bool {
    let page = m.page_size.max(1);
    let Some(actual) = actual else {
        return false;
    };
    match (size.resolve(m.ram), actual) {
        (None, Limit::Max) => true,
        (_, Limit::Unreadable) | (None, Limit::Value(_)) | (Some(_), Limit::Max) => false,
        (Some(bytes), Limit::Value(v)) => {
            let expected = bytes / page * page;
            let tolerance = match size {
                Size::Permyriad(_) => m.ram / 100_000 + page,
                _ => 0,
            };
            expected.abs_diff(v) <= tolerance
        }
    }
}

fn tasks_match(tasks: Tasks, actual: Option<Limit>, total: u64) -> bool {
    match (tasks, actual) {
        (_, None | Some(Limit::Unreadable)) => false,
        (Tasks::Infinity, Some(a)) => a == Limit::Max,
        (Tasks::Count(n), Some(a)) => a == Limit::Value(n),
        (Tasks::Permyriad(p), Some(Limit::Value(v))) => {
            let expected = u64::try_from(u128::from(total) * u128::from(p) / 10_000).unwrap_or(u64::MAX);
            expected.abs_diff(v) <= total / 1000 + 1
        }
        (Tasks::Permyriad(_), Some(Limit::Max)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contain_policy::{Source, parse};
    use contain_systemd::Value;

    const GIB: u64 = 1 << 30;
    const M: Machine = Machine {
        ram: 32 * GIB,
        page_size: 4096,
        tasks_total: 4_194_303,
    };

    fn policy(extra: &str) -> Policy {
        let text = format!(
            "[users]\nmemory_high = \"12G\"\nmemory_max = \"50%\"\nmemory_swap_max = 0\ntasks_max = 4096\n\
             cpu_weight = 100\nexempt_uid_below = 1000\nexempt_users = [\"svc\"]\n\n\
             [login]\non_failure = \"deny\"\nnever_deny_users = [\"admin\"]\nnever_deny_groups = [\"sudo\"]\n{extra}"
        );
        parse(&[Source {
            path: "test.toml",
            text: &text,
        }])
        .unwrap_or_else(|d| panic!("test policy invalid: {d:?}"))
    }

    fn user(uid: u32, name: &str, groups: &[&str]) -> User {
        User {
            uid,
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// A slice exactly as systemd sets it for the policy above on a 32 GiB machine.
    fn right() -> SliceState {
        SliceState {
            memory_high: Some(Limit::Value(12 * GIB)),
            memory_max: Some(Limit::Value(16 * GIB)),
            memory_swap_max: Some(Limit::Value(0)),
            pids_max: Some(Limit::Value(4096)),
            cpu_weight: Some(100),
            io_weight: None,
        }
    }

    fn decide_for(p: &Policy, u: &User, cgroup: Option<&str>, slice: &SliceState) -> Action {
        decide(&Situation {
            policy: p,
            user: u,
            cgroup,
            slice,
            machine: M,
            pid: 4242,
        })
    }

    const ALICE_SESSION: &str = "/user.slice/user-1001.slice/session-4.scope";

    #[test]
    fn exempt_users_are_left_alone() {
        let p = policy("");
        let root = user(0, "root", &["root"]);
        assert_eq!(
            decide_for(
                &p,
                &root,
                Some("/system.slice/cron.service"),
                &SliceState::default()
            ),
            Action::Nothing(Exemption::Root)
        );
        let daemon = user(120, "postgres", &[]);
        assert_eq!(
            decide_for(&p, &daemon, None, &SliceState::default()),
            Action::Nothing(Exemption::SystemAccount { below: 1000 })
        );
        let listed = user(1500, "svc", &[]);
        assert_eq!(
            decide_for(&p, &listed, None, &right()),
            Action::Nothing(Exemption::Listed)
        );
    }

    #[test]
    fn in_own_slice_with_right_caps_does_nothing() {
        let p = policy("");
        let alice = user(1001, "alice", &["alice"]);
        assert_eq!(
            decide_for(&p, &alice, Some(ALICE_SESSION), &right()),
            Action::InPlace {
                slice: "user-1001.slice".into()
            }
        );
        // user@1001.service and the slice itself count as inside too.
        let manager = "/user.slice/user-1001.slice/user@1001.service/app.slice/x.scope";
        assert!(matches!(
            decide_for(&p, &alice, Some(manager), &right()),
            Action::InPlace { .. }
        ));
        // The kernel rounds to pages: a share of RAM that is not page-aligned still matches.
        let odd = Machine {
            ram: 32 * GIB + 3 * 4096 + 100,
            ..M
        };
        let mut slice = right();
        slice.memory_max = Some(Limit::Value((odd.ram / 2) / 4096 * 4096));
        let s = Situation {
            policy: &p,
            user: &alice,
            cgroup: Some(ALICE_SESSION),
            slice: &slice,
            machine: odd,
            pid: 1,
        };
        assert!(matches!(decide(&s), Action::InPlace { .. }), "{:?}", decide(&s));
    }

    #[test]
    fn differing_caps_are_repaired_and_only_those() {
        let p = policy("");
        let alice = user(1001, "alice", &["alice"]);
        let mut slice = right();
        slice.memory_max = Some(Limit::Max);
        slice.pids_max = Some(Limit::Value(10_813));
        let Action::Repair {
            slice: name,
            per_user,
            differences,
            props,
        } = decide_for(&p, &alice, Some(ALICE_SESSION), &slice)
        else {
            panic!("expected a repair");
        };
        assert_eq!(name, "user-1001.slice");
        assert!(!per_user, "no override applies to alice: this is a repair");
        assert_eq!(
            differences,
            [
                "MemoryMax is infinity, policy says 50%",
                "TasksMax is 10813, policy says 4096"
            ]
        );
        assert_eq!(
            props,
            [
                Property::new("MemoryMaxScale", Value::U32(2_147_483_648)),
                Property::new("TasksMax", Value::U64(4096))
            ]
        );
    }

    #[test]
    fn a_slice_without_memory_files_is_repaired_whole() {
        let p = policy("");
        let alice = user(1001, "alice", &[]);
        let Action::Repair { props, .. } =
            decide_for(&p, &alice, Some(ALICE_SESSION), &SliceState::default())
        else {
            panic!("expected a repair");
        };
        let names: Vec<&str> = props.iter().map(|p| p.name).collect();
        // Swap is skipped when the kernel shows no swap file (no swap accounting).
        assert_eq!(names, ["MemoryHigh", "MemoryMaxScale", "TasksMax"]);
    }

    #[test]
    fn overrides_decide_the_caps() {
        let p = policy(
            "\n[[override]]\nuser = \"carol\"\nmemory_max = \"24G\"\n\n[[override]]\ngroup = \"hpc\"\ntasks_max = \"infinity\"\ncpu_weight = 50\n",
        );
        // Carol's slice starts at the [users] caps (overrides get no boot-time drop-in): her
        // MemoryMax is set at login.
        let carol = user(5001, "carol", &["carol"]);
        let carol_session = "/user.slice/user-5001.slice/session-9.scope";
        let Action::Repair {
            per_user,
            differences,
            props,
            ..
        } = decide_for(&p, &carol, Some(carol_session), &right())
        else {
            panic!("expected a repair");
        };
        assert!(per_user, "carol's caps come from an override");
        assert_eq!(differences, ["MemoryMax is 16G, policy says 24G"]);
        assert_eq!(props, [Property::new("MemoryMax", Value::U64(24 * GIB))]);

        let mut slice = right();
        slice.memory_max = Some(Limit::Value(24 * GIB));
        assert!(matches!(
            decide_for(&p, &carol, Some(carol_session), &slice),
            Action::InPlace { .. }
        ));

        // A group override: infinity and a weight.
        let dave = user(5002, "dave", &["dave", "hpc"]);
        let Action::Repair { props, .. } = decide_for(
            &p,
            &dave,
            Some("/user.slice/user-5002.slice/session-1.scope"),
            &right(),
        ) else {
            panic!("expected a repair");
        };
        assert_eq!(
            props,
            [
                Property::new("TasksMax", Value::U64(u64::MAX)),
                Property::new("CPUWeight", Value::U64(50))
            ]
        );
    }

    #[test]
    fn outside_the_slice_moves_into_a_scope() {
        let p = policy("");
        let bob = user(1002, "bob", &["bob"]);
        // cron, sudo -u: the non-interactive stack has no pam_systemd.
        assert_eq!(
            decide_for(
                &p,
                &bob,
                Some("/system.slice/cron.service"),
                &SliceState::default()
            ),
            Action::MoveToScope {
                slice: "user-1002.slice".into(),
                scope: "contain-1002-4242.scope".into(),
                from: "/system.slice/cron.service".into(),
            }
        );
        // Unknown cgroup (no cgroup v2 line): also moved, and verified afterwards.
        assert!(matches!(
            decide_for(&p, &bob, None, &SliceState::default()),
            Action::MoveToScope { .. }
        ));
    }

    #[test]
    fn su_to_another_user_moves_out_of_the_callers_slice() {
        let p = policy("");
        let bob = user(1002, "bob", &["bob"]);
        // `su bob` from alice's ssh session: alice's slice is not bob's.
        let Action::MoveToScope { slice, from, .. } = decide_for(&p, &bob, Some(ALICE_SESSION), &right())
        else {
            panic!("expected a move");
        };
        assert_eq!(slice, "user-1002.slice");
        assert_eq!(from, ALICE_SESSION);
        // A prefix of another UID is not the same slice: user-10021 is not user-1002.
        let lookalike = "/user.slice/user-10021.slice/session-1.scope";
        assert!(matches!(
            decide_for(&p, &bob, Some(lookalike), &right()),
            Action::MoveToScope { .. }
        ));
        // `su root` from alice's session: root is never capped, nothing moves.
        let root = user(0, "root", &[]);
        assert_eq!(
            decide_for(&p, &root, Some(ALICE_SESSION), &right()),
            Action::Nothing(Exemption::Root)
        );
    }

    #[test]
    fn failures_follow_the_policy_but_never_deny_root_or_listed() {
        let p = policy("");
        assert_eq!(on_failure(&p, &user(1001, "alice", &["alice"])), Verdict::Deny);
        assert_eq!(on_failure(&p, &user(0, "root", &[])), Verdict::AllowNeverDeny);
        assert_eq!(on_failure(&p, &user(1003, "admin", &[])), Verdict::AllowNeverDeny);
        assert_eq!(
            on_failure(&p, &user(1004, "ops", &["ops", "sudo"])),
            Verdict::AllowNeverDeny
        );
        let lenient = policy("").clone();
        let mut lenient = lenient;
        lenient.login.on_failure = FailureAction::Allow;
        assert_eq!(on_failure(&lenient, &user(1001, "alice", &[])), Verdict::Allow);
    }

    #[test]
    fn unreadable_limits_are_repaired_even_swap() {
        let p = policy("");
        let alice = user(1001, "alice", &["alice"]);
        let mut slice = right();
        slice.memory_max = Some(Limit::Unreadable);
        slice.memory_swap_max = Some(Limit::Unreadable);
        let Action::Repair { differences, .. } = decide_for(&p, &alice, Some(ALICE_SESSION), &slice) else {
            panic!("expected a repair");
        };
        assert_eq!(
            differences,
            [
                "MemoryMax is unreadable (the cgroup file holds no limit), policy says 50%",
                "MemorySwapMax is unreadable (the cgroup file holds no limit), policy says 0"
            ]
        );
    }

    #[test]
    fn limits_parse_like_cgroupfs() {
        assert_eq!(Limit::parse("max\n"), Some(Limit::Max));
        assert_eq!(Limit::parse("17179869184\n"), Some(Limit::Value(16 * GIB)));
        assert_eq!(Limit::parse("banana"), None);
    }

    #[test]
    fn task_shares_resolve_against_the_kernel_limit() {
        assert!(tasks_match(
            Tasks::Permyriad(3300),
            Some(Limit::Value(1_384_119)),
            4_194_303
        ));
        assert!(!tasks_match(
            Tasks::Permyriad(3300),
            Some(Limit::Value(4096)),
            4_194_303
        ));
        assert!(!tasks_match(Tasks::Permyriad(3300), Some(Limit::Max), 4_194_303));
        assert!(tasks_match(Tasks::Infinity, Some(Limit::Max), 1));
        assert!(!tasks_match(Tasks::Count(5), None, 1));
        assert!(!tasks_match(Tasks::Infinity, Some(Limit::Unreadable), 1));
    }
}
