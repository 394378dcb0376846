//! The decision: who is logging in, where the process is, what the slice enforces now → what to do.
//! Pure: every input is a value, so every branch has a unit test.

use contain_host::cgroupfs::user_slice_uid;
use contain_host::drift::{compare, to_repair};
use contain_host::{Machine, Stats};
use contain_policy::unit::user_slice;
use contain_policy::{Exemption, FailureAction, Policy, Resolution};
use contain_systemd::{Property, properties_for};

/// The account the session is for, resolved through NSS. `name` is the account's canonical name
/// (what NSS answers, not what was typed): the policy's names are matched against it. Units are
/// named by UID only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn group_refs(&self) -> Vec<&str> {
        self.groups.iter().map(String::as_str).collect()
    }
}

/// Everything the decision needs.
pub struct Situation<'a> {
    pub policy: &'a Policy,
    pub user: &'a User,
    /// This process's cgroup v2 path (`/user.slice/user-1000.slice/session-3.scope`), if known.
    pub cgroup: Option<&'a str>,
    /// The target user's slice, as cgroupfs shows it.
    pub slice: &'a Stats,
    pub machine: Machine,
    /// The name a new scope gets, if one is needed (unique: see [`scope_name`]).
    pub scope: &'a str,
}

/// What open_session does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The policy never caps this user, and nothing caps the session now.
    Nothing(Exemption),
    /// In the user's slice, and the slice has the policy's caps.
    InPlace { slice: String },
    /// In the user's slice, but some caps differ: set these at runtime.
    Repair {
        slice: String,
        why: RepairKind,
        differences: Vec<String>,
        props: Vec<Property>,
    },
    /// Elsewhere (cron, sudo, su from another user's session): move into a new scope there.
    MoveToScope {
        slice: String,
        scope: String,
        /// Where the process is now, for the log.
        from: String,
    },
}

/// Why a slice's caps are set at login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairKind {
    /// They drifted from the policy (someone's `systemctl set-property`, a lost drop-in).
    Drift,
    /// They come from an `[[override]]`: the slice starts with `[users]` caps and gets the user's
    /// own at login, so a difference is expected.
    Override,
    /// An exempt account (root, a listed or directory account the generator did not see at boot)
    /// in a slice that carries the template's caps or weights: the caps are lifted and the
    /// weights set as system.slice's.
    Lift,
}

/// Decides what to do for this login.
pub fn decide(s: &Situation<'_>) -> Action {
    let groups = s.user.group_refs();
    let slice = user_slice(s.user.uid);
    let slice_path = format!("/user.slice/{slice}");
    let inside = s
        .cgroup
        .is_some_and(|cg| cg == slice_path || cg.starts_with(&format!("{slice_path}/")));
    let move_here = || Action::MoveToScope {
        scope: s.scope.to_string(),
        from: s.cgroup.unwrap_or("(unknown cgroup)").to_string(),
        slice: slice.clone(),
    };
    let (limits, why) = match s.policy.resolve(s.user.uid, &s.user.name, &groups) {
        Resolution::Exempt(exemption) => {
            // `sudo -i`, `su -` from a capped user's session: out of that user's caps, into the
            // exempt account's own slice. Elsewhere (cron in system.slice) it stays put.
            let in_other_users_slice = s
                .cgroup
                .and_then(user_slice_uid)
                .is_some_and(|uid| uid != s.user.uid);
            if in_other_users_slice {
                return move_here();
            }
            if !inside {
                return Action::Nothing(exemption);
            }
            (s.policy.exempt_limits(), RepairKind::Lift)
        }
        Resolution::Capped(eff) => {
            if !inside {
                return move_here();
            }
            let why = if eff.from_override() {
                RepairKind::Override
            } else {
                RepairKind::Drift
            };
            (eff.limits(), why)
        }
    };
    let mut mismatches = compare(&s.machine, &limits, s.slice);
    if why == RepairKind::Lift {
        // Only a cap that is there is lifted: a missing file (a new slice) caps nothing.
        mismatches.retain(|m| m.live.is_some());
    }
    if mismatches.is_empty() {
        return match s.policy.exemption(s.user.uid, &s.user.name) {
            Some(exemption) => Action::Nothing(exemption),
            None => Action::InPlace { slice },
        };
    }
    Action::Repair {
        slice,
        why,
        differences: mismatches.iter().map(ToString::to_string).collect(),
        props: properties_for(&to_repair(&limits, &mismatches)),
    }
}

/// The scope a moved process gets: named by UID, PID and the time since boot, so a scope left by
/// an earlier process with the same PID (nohup'd, still running) never collides with it.
pub fn scope_name(uid: u32, pid: u32, boot_ns: u128) -> String {
    format!("contain-{uid}-{pid}-{boot_ns}.scope")
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

#[cfg(test)]
mod tests {
    use super::*;
    use contain_host::Cap;
    use contain_policy::{Source, parse};
    use contain_systemd::Value;

    const GIB: u64 = 1 << 30;
    const M: Machine = Machine {
        ram: 32 * GIB,
        page_size: 4096,
        tasks: 4_194_303,
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
    fn right() -> Stats {
        Stats {
            memory_high: Some(Cap::Value(12 * GIB)),
            memory_max: Some(Cap::Value(16 * GIB)),
            swap_max: Some(Cap::Value(0)),
            pids_max: Some(Cap::Value(4096)),
            cpu_weight: Some(100),
            ..Stats::default()
        }
    }

    /// The slice of an exempt account, lifted at boot by the generator's drop-in.
    fn lifted() -> Stats {
        Stats {
            memory_high: Some(Cap::Max),
            memory_max: Some(Cap::Max),
            swap_max: Some(Cap::Max),
            pids_max: Some(Cap::Max),
            ..Stats::default()
        }
    }

    fn decide_for(p: &Policy, u: &User, cgroup: Option<&str>, slice: &Stats) -> Action {
        decide(&Situation {
            policy: p,
            user: u,
            cgroup,
            slice,
            machine: M,
            scope: "contain-x-4242-7.scope",
        })
    }

    const ALICE_SESSION: &str = "/user.slice/user-1001.slice/session-4.scope";

    #[test]
    fn exempt_users_are_left_alone() {
        let p = policy("");
        let root = user(0, "root", &["root"]);
        assert_eq!(
            decide_for(&p, &root, Some("/system.slice/cron.service"), &Stats::default()),
            Action::Nothing(Exemption::Root)
        );
        let daemon = user(120, "postgres", &[]);
        assert_eq!(
            decide_for(&p, &daemon, None, &Stats::default()),
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
        slice.memory_max = Some(Cap::Value((odd.ram / 2) / 4096 * 4096));
        let s = Situation {
            policy: &p,
            user: &alice,
            cgroup: Some(ALICE_SESSION),
            slice: &slice,
            machine: odd,
            scope: "s",
        };
        assert!(matches!(decide(&s), Action::InPlace { .. }), "{:?}", decide(&s));
    }

    #[test]
    fn differing_caps_are_repaired_and_only_those() {
        let p = policy("");
        let alice = user(1001, "alice", &["alice"]);
        let mut slice = right();
        slice.memory_max = Some(Cap::Max);
        slice.pids_max = Some(Cap::Value(10_813));
        let Action::Repair {
            slice: name,
            why,
            differences,
            props,
        } = decide_for(&p, &alice, Some(ALICE_SESSION), &slice)
        else {
            panic!("expected a repair");
        };
        assert_eq!(name, "user-1001.slice");
        assert_eq!(
            why,
            RepairKind::Drift,
            "no override applies to alice: this is a repair"
        );
        assert_eq!(
            differences,
            [
                "MemoryMax is infinity, policy says 16G",
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
        let Action::Repair { props, .. } = decide_for(&p, &alice, Some(ALICE_SESSION), &Stats::default())
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
            why,
            differences,
            props,
            ..
        } = decide_for(&p, &carol, Some(carol_session), &right())
        else {
            panic!("expected a repair");
        };
        assert_eq!(why, RepairKind::Override, "carol's caps come from an override");
        assert_eq!(differences, ["MemoryMax is 16G, policy says 24G"]);
        assert_eq!(props, [Property::new("MemoryMax", Value::U64(24 * GIB))]);

        let mut slice = right();
        slice.memory_max = Some(Cap::Value(24 * GIB));
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
            decide_for(&p, &bob, Some("/system.slice/cron.service"), &Stats::default()),
            Action::MoveToScope {
                slice: "user-1002.slice".into(),
                scope: "contain-x-4242-7.scope".into(),
                from: "/system.slice/cron.service".into(),
            }
        );
        // Unknown cgroup (no cgroup v2 line): also moved, and verified afterwards.
        assert!(matches!(
            decide_for(&p, &bob, None, &Stats::default()),
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
        // `su root` from alice's session: root is never capped, so it leaves her slice (above).
        let root = user(0, "root", &[]);
        assert!(matches!(
            decide_for(&p, &root, Some(ALICE_SESSION), &right()),
            Action::MoveToScope { .. }
        ));
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
    fn exempt_accounts_leave_other_users_slices_and_get_their_caps_lifted() {
        let p = policy("");
        let root = user(0, "root", &["root"]);
        // `sudo -i` / `su -` from alice's session: out of alice's caps, into root's own slice.
        let Action::MoveToScope { slice, from, scope } =
            decide_for(&p, &root, Some(ALICE_SESSION), &lifted())
        else {
            panic!("expected a move");
        };
        assert_eq!((slice.as_str(), from.as_str()), ("user-0.slice", ALICE_SESSION));
        assert_eq!(scope, "contain-x-4242-7.scope");
        // `sudo -u svc` (a listed account) likewise; a directory account nobody saw at boot too.
        let svc = user(1500, "svc", &[]);
        assert!(matches!(
            decide_for(&p, &svc, Some(ALICE_SESSION), &right()),
            Action::MoveToScope { .. }
        ));
        // In its own slice, already lifted (the generator saw it): nothing to do.
        let root_session = "/user.slice/user-0.slice/session-2.scope";
        assert_eq!(
            decide_for(&p, &root, Some(root_session), &lifted()),
            Action::Nothing(Exemption::Root)
        );
        // In its own slice carrying the template's caps (the generator never saw the account):
        // every cap the template sets is lifted; weights are not caps.
        let svc_session = "/user.slice/user-1500.slice/session-4.scope";
        let Action::Repair {
            why, props, slice, ..
        } = decide_for(&p, &svc, Some(svc_session), &right())
        else {
            panic!("expected a lift");
        };
        assert_eq!((why, slice.as_str()), (RepairKind::Lift, "user-1500.slice"));
        let names: Vec<&str> = props.iter().map(|p| p.name).collect();
        assert_eq!(names, ["MemoryHigh", "MemoryMax", "MemorySwapMax", "TasksMax"]);
        assert!(props.iter().all(|p| p.value == Value::U64(u64::MAX)), "{props:?}");
        // Cron in system.slice: an exempt account's job stays where it is.
        assert_eq!(
            decide_for(&p, &svc, Some("/system.slice/cron.service"), &Stats::default()),
            Action::Nothing(Exemption::Listed)
        );
    }

    #[test]
    fn exempt_accounts_weigh_as_system_slice() {
        let p = policy("[system]\ncpu_weight = 200\n");
        let root = user(0, "root", &["root"]);
        let root_session = "/user.slice/user-0.slice/session-2.scope";
        // Caps lifted, weight still the kernel's 100 (a directory account's slice, unseen at boot).
        let Action::Repair { why, props, .. } = decide_for(&p, &root, Some(root_session), &lifted()) else {
            panic!("expected the weight set");
        };
        assert_eq!(why, RepairKind::Lift);
        let names: Vec<&str> = props.iter().map(|p| p.name).collect();
        assert_eq!(names, ["CPUWeight"]);
        let weighed = Stats {
            cpu_weight: Some(200),
            ..lifted()
        };
        assert_eq!(
            decide_for(&p, &root, Some(root_session), &weighed),
            Action::Nothing(Exemption::Root)
        );
        // A capped user keeps the template's weight.
        let alice = user(1001, "alice", &[]);
        assert_eq!(
            decide_for(&p, &alice, Some(ALICE_SESSION), &right()),
            Action::InPlace {
                slice: "user-1001.slice".into()
            }
        );
    }

    #[test]
    fn scope_names_differ_for_a_reused_pid() {
        assert_eq!(scope_name(1001, 42, 7), "contain-1001-42-7.scope");
        assert_ne!(scope_name(1001, 42, 7), scope_name(1001, 42, 8));
    }
}
