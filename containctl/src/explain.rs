//! `containctl explain USER`: a user's effective limits and the rule behind each.

use crate::accounts;
use crate::host::Host;
use crate::policy;
use crate::{OK, USAGE, emit};
use contain_host::Cap;
use contain_host::Machine;
use contain_host::Outcome;
use contain_policy::value::{Size, Tasks, human_bytes};
use contain_policy::{Exemption, FailureAction, Policy, Resolution, Rule, unit};
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
pub struct Explained {
    pub user: String,
    pub uid: u32,
    pub groups: Vec<String>,
    pub slice: String,
    pub resolution: Resolution,
    /// Each limit: (systemd property, policy value, bytes on this host, rule).
    pub limits: Vec<Line>,
    pub policed: bool,
    pub never_denied: bool,
    pub on_failure: FailureAction,
    pub sources: Vec<String>,
}

#[derive(Serialize)]
pub struct Line {
    pub property: &'static str,
    pub value: String,
    pub resolved: Option<String>,
    pub rule: String,
}

fn rule_text(rule: &Rule) -> String {
    match rule {
        Rule::Users => "[users] (everyone's default)".into(),
        Rule::Override(origin) => format!("[[override]] at {origin}"),
    }
}

pub fn explain(host: &Host, policy: &Policy, who: &str) -> Option<Explained> {
    let account = accounts::by_name(host, who).or_else(|| {
        who.parse::<u32>()
            .ok()
            .and_then(|uid| accounts::by_uid(host, uid))
    })?;
    let groups: Vec<&str> = account.groups.iter().map(String::as_str).collect();
    let resolution = policy.resolve(account.uid, &account.name, &groups);
    let m = Machine::of(host);
    let mut limits = Vec::new();
    if let Resolution::Capped(eff) = &resolution {
        let size = |s: &Size| match m.size(*s) {
            Cap::Value(v) => Some(human_bytes(v)),
            Cap::Max | Cap::Unreadable => None,
        };
        // One line per limit the user has, in unit-file order; `resolve` gives the figure
        // this machine makes of it, where that differs from the value as written.
        macro_rules! line {
            ($field:ident, $prop:literal) => {
                line!($field, $prop, |_| None)
            };
            ($field:ident, $prop:literal, $resolve:expr) => {
                if let Some(s) = &eff.$field {
                    let resolve: &dyn Fn(_) -> Option<String> = &$resolve;
                    limits.push(Line {
                        property: $prop,
                        value: s.value.to_string(),
                        resolved: resolve(&s.value),
                        rule: rule_text(&s.rule),
                    });
                }
            };
        }
        line!(memory_high, "MemoryHigh", size);
        line!(memory_max, "MemoryMax", size);
        line!(memory_swap_max, "MemorySwapMax", size);
        line!(tasks_max, "TasksMax", |t: &Tasks| match m.tasks(*t) {
            Cap::Value(v) => Some(v.to_string()),
            Cap::Max | Cap::Unreadable => None,
        });
        line!(cpu_weight, "CPUWeight");
        line!(io_weight, "IOWeight");
        line!(cpu_quota, "CPUQuota");
        line!(allowed_cpus, "AllowedCPUs");
        line!(io_read_bandwidth_max, "IOReadBandwidthMax");
        line!(io_write_bandwidth_max, "IOWriteBandwidthMax");
    } else {
        let exempt = policy.exempt_limits();
        for (property, weight) in [("CPUWeight", exempt.cpu_weight), ("IOWeight", exempt.io_weight)] {
            if let Some(w) = weight {
                limits.push(Line {
                    property,
                    value: w.to_string(),
                    resolved: None,
                    rule: "[system] (exempt accounts weigh as system.slice)".into(),
                });
            }
        }
    }
    Some(Explained {
        slice: unit::user_slice(account.uid),
        policed: policy.users.policing.enabled && matches!(resolution, Resolution::Capped(_)),
        never_denied: policy.never_deny(account.uid, &account.name, &groups),
        on_failure: policy.login.on_failure,
        sources: policy.sources.clone(),
        resolution,
        limits,
        user: account.name,
        uid: account.uid,
        groups: account.groups,
    })
}

/// One line per limit: property, value (with this host's figure for a share), rule.
fn lines(limits: &[Line]) -> String {
    let w = limits.iter().map(|l| l.property.len()).max().unwrap_or(0);
    let mut out = String::new();
    for l in limits {
        let resolved = match &l.resolved {
            Some(r) if l.value.ends_with('%') => format!(" (= {r} on this host)"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "  {:w$}  {}{resolved}  from {}\n",
            l.property, l.value, l.rule
        ));
    }
    out
}

pub fn print(e: &Explained) -> String {
    let mut out = format!(
        "{} (uid {}, groups: {}) works in {}.\n",
        e.user,
        e.uid,
        if e.groups.is_empty() {
            "none".into()
        } else {
            e.groups.join(", ")
        },
        e.slice
    );
    match &e.resolution {
        Resolution::Exempt(why) => {
            let why = match why {
                Exemption::Root => "root is never capped".to_string(),
                Exemption::SystemAccount { below } => {
                    format!("system account: [users] exempt_uid_below = {below}")
                }
                Exemption::Listed => "listed in [users] exempt".into(),
            };
            out.push_str(&format!("Not capped: {why}.\n"));
            out.push_str(&lines(&e.limits));
        }
        Resolution::Capped(_) => {
            out.push_str(&lines(&e.limits));
            out.push_str(&format!(
                "systemd-oomd {} user.slice.\n",
                if e.policed { "polices" } else { "does not police" }
            ));
        }
    }
    out.push_str(&match (e.never_denied, e.on_failure) {
        (true, _) => "If pam_contain cannot place a login: let in anyway (never denied).\n".to_string(),
        (false, FailureAction::Deny) => {
            "If pam_contain cannot place a login: denied ([login] on_failure).\n".into()
        }
        (false, FailureAction::Allow) => {
            "If pam_contain cannot place a login: let in with a warning ([login] on_failure).\n".into()
        }
    });
    out.push_str(&format!("Policy: {}\n", e.sources.join(", ")));
    out
}

/// `containctl explain USER`.
pub fn command(host: &Host, user: &str, policy: Option<&Path>, json: bool) -> u8 {
    let loaded = policy::effective(host, policy);
    if loaded.outcome == Outcome::Fallback {
        eprintln!(
            "containctl: the policy is invalid (see `containctl check`); explaining the built-in default the generator applies"
        );
    }
    match explain(host, &loaded.policy, user) {
        Some(e) => {
            emit(json, &e, print);
            OK
        }
        None => {
            eprintln!("containctl: no such user: {user}");
            USAGE
        }
    }
}
