//! The live [`World`](crate::session::World): systemd on the system bus, NSS in a bounded
//! child, and the machine's policy files, cgroupfs and notices under the module's root.

use crate::args::Args;
use crate::decide::User;
use crate::session::{Accounts, Bus, Host, Level, System};
use crate::system;
use contain_host::accounts;
use contain_host::cgroupfs::read_cgroup;
use contain_host::compiled::{CompiledPolicy, load_and_compile};
use contain_host::{Loaded, Machine, Outcome, Root, Stats};
use contain_policy::unit::user_slice;
use contain_systemd::Property;
use std::cell::RefCell;
use std::time::Duration;

/// systemd through contain-systemd: one connection per call, dropped with it.
pub struct LiveBus;

impl Bus for LiveBus {
    fn start_scope(&self, scope: &str, slice: &str, pid: u32, timeout: Duration) -> Result<(), String> {
        contain_systemd::start_transient_scope(scope, slice, &[pid], &[], timeout).map_err(|e| e.to_string())
    }

    fn set_properties(&self, slice: &str, props: &[Property], timeout: Duration) -> Result<(), String> {
        contain_systemd::set_unit_properties(slice, true, props, timeout).map_err(|e| e.to_string())
    }
}

/// NSS on the live machine (the module's `root=` moves files, never the accounts).
pub struct LiveAccounts;

impl Accounts for LiveAccounts {
    fn by_name(&self, name: &str, with_groups: bool, timeout: Duration) -> Result<User, String> {
        let live = Root::default();
        let account = if with_groups {
            accounts::by_name(&live, name, timeout)
        } else {
            accounts::by_name_without_groups(&live, name, timeout)
        }
        .map_err(|e| e.to_string())?;
        Ok(User {
            uid: account.uid,
            name: account.name,
            groups: account.groups,
        })
    }
}

/// The policy files, cgroupfs, /proc/self/cgroup and the notices, at the module's paths.
pub struct LiveSystem<'a> {
    args: &'a Args,
    /// The compiled policy, once [`System::open_policy`] found it current.
    compiled: RefCell<Option<CompiledPolicy>>,
}

impl<'a> LiveSystem<'a> {
    pub fn new(args: &'a Args) -> LiveSystem<'a> {
        LiveSystem {
            args,
            compiled: RefCell::new(None),
        }
    }
}

impl System for LiveSystem<'_> {
    fn open_policy(&self, host: &dyn Host) -> bool {
        // Current compiled form: this login reads only its own overrides, and no groups when
        // the policy looks at none.
        match CompiledPolicy::open(&self.args.policy, &self.args.compiled) {
            Ok(compiled) => {
                let reads_groups = compiled.reads_groups();
                *self.compiled.borrow_mut() = Some(compiled);
                reads_groups
            }
            Err(why) => {
                host.log(Level::Debug, &format!("compiled policy not used: {why}"));
                true
            }
        }
    }

    fn policy_for(&self, host: &dyn Host, user: Option<&User>) -> Loaded {
        if let Some(compiled) = self.compiled.borrow_mut().take() {
            let groups = user.map(User::group_refs).unwrap_or_default();
            match compiled.policy_for(user.map(|u| (u.uid, u.name.as_str(), &groups[..]))) {
                Ok(policy) => {
                    return Loaded {
                        policy,
                        outcome: Outcome::Applied,
                        errors: Vec::new(),
                    };
                }
                Err(why) => host.log(Level::Debug, &format!("compiled policy not used: {why}")),
            }
        }
        // The whole policy, compiled for the next logins.
        let (loaded, not_written) = load_and_compile(&self.args.policy, &self.args.compiled);
        if let Some(why) = not_written {
            host.log(Level::Debug, &format!("compiled policy not written: {why}"));
        }
        loaded
    }

    fn cgroup(&self) -> Option<String> {
        read_cgroup(&self.args.proc_cgroup)
    }

    fn slice(&self, uid: u32) -> Stats {
        Stats::read(
            &self
                .args
                .cgroup_root
                .join(format!("user.slice/{}", user_slice(uid))),
        )
    }

    fn machine(&self) -> Machine {
        Machine::of(&Root::default())
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }

    fn boot_ns(&self) -> u128 {
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
            .map(|t| t.tv_sec() as u128 * 1_000_000_000 + t.tv_nsec() as u128)
            .unwrap_or_default()
    }

    fn notices(&self, uid: u32) -> Option<Vec<String>> {
        system::read_notices(&self.args.notices, uid)
    }

    fn notices_age(&self, uid: u32) -> Option<Duration> {
        system::notices_age(&self.args.notices, uid)
    }

    fn remove_notices(&self, uid: u32) -> std::io::Result<()> {
        system::remove_notices(&self.args.notices, uid)
    }
}
