//! What the policy means for one user: effective limits with the rule behind each, and login rules.

use crate::model::*;
use crate::value::{CpuQuota, CpuSet, IoBandwidth, Size, Tasks};
use serde::Serialize;

/// Which rule set a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "rule", content = "at")]
pub enum Rule {
    /// `[users]`, the default for everyone.
    Users,
    /// An `[[override]]` at this place.
    Override(Origin),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    pub rule: Rule,
}

/// A user's limits, each with its rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Effective {
    pub memory_high: Option<Sourced<Size>>,
    pub memory_max: Option<Sourced<Size>>,
    pub memory_swap_max: Option<Sourced<Size>>,
    pub tasks_max: Option<Sourced<Tasks>>,
    pub cpu_weight: Option<Sourced<u16>>,
    pub io_weight: Option<Sourced<u16>>,
    pub cpu_quota: Option<Sourced<CpuQuota>>,
    pub allowed_cpus: Option<Sourced<CpuSet>>,
    pub io_read_bandwidth_max: Option<Sourced<IoBandwidth>>,
    pub io_write_bandwidth_max: Option<Sourced<IoBandwidth>>,
}

impl Effective {
    pub fn limits(&self) -> Limits {
        Limits {
            memory_high: self.memory_high.as_ref().map(|s| s.value),
            memory_max: self.memory_max.as_ref().map(|s| s.value),
            memory_swap_max: self.memory_swap_max.as_ref().map(|s| s.value),
            tasks_max: self.tasks_max.as_ref().map(|s| s.value),
            cpu_weight: self.cpu_weight.as_ref().map(|s| s.value),
            io_weight: self.io_weight.as_ref().map(|s| s.value),
            cpu_quota: self.cpu_quota.as_ref().map(|s| s.value),
            allowed_cpus: self.allowed_cpus.as_ref().map(|s| s.value.clone()),
            io_read_bandwidth_max: self.io_read_bandwidth_max.as_ref().map(|s| s.value.clone()),
            io_write_bandwidth_max: self.io_write_bandwidth_max.as_ref().map(|s| s.value.clone()),
        }
    }

    /// True when an `[[override]]` set any value: such caps are applied at login, not at boot.
    pub fn from_override(&self) -> bool {
        let rules = [
            self.memory_high.as_ref().map(|s| &s.rule),
            self.memory_max.as_ref().map(|s| &s.rule),
            self.memory_swap_max.as_ref().map(|s| &s.rule),
            self.tasks_max.as_ref().map(|s| &s.rule),
            self.cpu_weight.as_ref().map(|s| &s.rule),
            self.io_weight.as_ref().map(|s| &s.rule),
            self.cpu_quota.as_ref().map(|s| &s.rule),
            self.allowed_cpus.as_ref().map(|s| &s.rule),
            self.io_read_bandwidth_max.as_ref().map(|s| &s.rule),
            self.io_write_bandwidth_max.as_ref().map(|s| &s.rule),
        ];
        rules
            .into_iter()
            .flatten()
            .any(|r| matches!(r, Rule::Override(_)))
    }

    fn apply(&mut self, limits: &Limits, rule: &Rule) {
        fn set<T>(slot: &mut Option<Sourced<T>>, value: Option<T>, rule: &Rule) {
            if let Some(value) = value {
                *slot = Some(Sourced {
                    value,
                    rule: rule.clone(),
                });
            }
        }
        set(&mut self.memory_high, limits.memory_high, rule);
        set(&mut self.memory_max, limits.memory_max, rule);
        set(&mut self.memory_swap_max, limits.memory_swap_max, rule);
        set(&mut self.tasks_max, limits.tasks_max, rule);
        set(&mut self.cpu_weight, limits.cpu_weight, rule);
        set(&mut self.io_weight, limits.io_weight, rule);
        set(&mut self.cpu_quota, limits.cpu_quota, rule);
        set(&mut self.allowed_cpus, limits.allowed_cpus.clone(), rule);
        set(
            &mut self.io_read_bandwidth_max,
            limits.io_read_bandwidth_max.clone(),
            rule,
        );
        set(
            &mut self.io_write_bandwidth_max,
            limits.io_write_bandwidth_max.clone(),
            rule,
        );
    }
}

impl Limits {
    /// Every cap the template sets, lifted to infinity (weights are not caps: they stay).
    pub fn lifted(&self) -> Limits {
        Limits {
            memory_high: self.memory_high.map(|_| Size::Infinity),
            memory_max: self.memory_max.map(|_| Size::Infinity),
            memory_swap_max: self.memory_swap_max.map(|_| Size::Infinity),
            tasks_max: self.tasks_max.map(|_| Tasks::Infinity),
            cpu_quota: self.cpu_quota.map(|_| CpuQuota::Infinity),
            allowed_cpus: self.allowed_cpus.as_ref().map(|_| CpuSet::default()),
            io_read_bandwidth_max: self.io_read_bandwidth_max.as_ref().map(IoBandwidth::lifted),
            io_write_bandwidth_max: self.io_write_bandwidth_max.as_ref().map(IoBandwidth::lifted),
            ..Limits::default()
        }
    }
}

/// Why a user is never capped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exemption {
    Root,
    SystemAccount { below: u32 },
    Listed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    Exempt(Exemption),
    Capped(Box<Effective>),
}

impl Policy {
    /// What an exempt account's slice gets: no caps, and system.slice's weights. Root's ssh
    /// login is the operator's way in as much as sshd is, so a user's storm must not outweigh it.
    pub fn exempt_limits(&self) -> Limits {
        Limits {
            cpu_weight: self.system.cpu_weight,
            io_weight: self.system.io_weight,
            ..self.users.limits.lifted()
        }
    }

    /// Why `uid` is never capped, if it is.
    pub fn exemption(&self, uid: u32, name: &str) -> Option<Exemption> {
        if uid == 0 {
            Some(Exemption::Root)
        } else if uid < self.users.exempt_uid_below {
            Some(Exemption::SystemAccount {
                below: self.users.exempt_uid_below,
            })
        } else if self.users.exempt.iter().any(|u| u.matches(uid, name)) {
            Some(Exemption::Listed)
        } else {
            None
        }
    }

    /// The limits for a user: `[users]`, then group overrides in file order, then user overrides.
    pub fn resolve(&self, uid: u32, name: &str, groups: &[&str]) -> Resolution {
        if let Some(why) = self.exemption(uid, name) {
            return Resolution::Exempt(why);
        }
        let mut eff = Effective::default();
        eff.apply(&self.users.limits, &Rule::Users);
        let (by_group, by_user): (Vec<_>, Vec<_>) = self
            .overrides
            .iter()
            .filter(|o| o.selector.matches(uid, name, groups))
            .partition(|o| matches!(o.selector, Selector::Group(_)));
        for o in by_group.into_iter().chain(by_user) {
            eff.apply(&o.limits, &Rule::Override(o.origin.clone()));
        }
        Resolution::Capped(Box::new(eff))
    }

    /// The limits to enforce, or `None` for an exempt user.
    pub fn limits_for(&self, uid: u32, name: &str, groups: &[&str]) -> Option<Limits> {
        match self.resolve(uid, name, groups) {
            Resolution::Exempt(_) => None,
            Resolution::Capped(eff) => Some(eff.limits()),
        }
    }

    /// Root and the policy's never-deny users and groups get in whatever fails.
    pub fn never_deny(&self, uid: u32, name: &str, groups: &[&str]) -> bool {
        uid == 0
            || self.login.never_deny_users.iter().any(|u| u.matches(uid, name))
            || self
                .login
                .never_deny_groups
                .iter()
                .any(|g| groups.contains(&g.as_str()))
    }
}

impl Selector {
    pub fn matches(&self, uid: u32, name: &str, groups: &[&str]) -> bool {
        match self {
            Selector::User(n) => n == name,
            Selector::Uid(u) => *u == uid,
            Selector::Group(g) => groups.contains(&g.as_str()),
        }
    }
}
