//! "Cap the box, not one surface": does every tree at its maximum, plus a reserve, fit in RAM?

use crate::model::*;
use crate::value::{Size, human_bytes};
use serde::Serialize;
use std::fmt;

/// One tree's worst case: `count` × `each`, or unbounded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Term {
    pub what: String,
    pub count: u32,
    /// Bytes per member; `None` means uncapped.
    pub each: Option<u64>,
    /// What the term adds up to, after any aggregate cap; `None` means uncapped.
    pub total: Option<u64>,
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Aggregate {
    pub terms: Vec<Term>,
    pub reserve: u64,
    /// Sum of every term and the reserve; `None` when some tree is uncapped.
    pub total: Option<u64>,
    pub ram: u64,
    pub fits: bool,
}

/// Adds up every tree's worst case for a host with `ram` bytes.
pub fn aggregate(policy: &Policy, ram: u64) -> Aggregate {
    let mut terms = Vec::new();
    let cap = |s: Option<Size>| s.and_then(|s| s.resolve(ram));

    // The worst case: the heavy users are the ones with the largest ceilings.
    let per_user = policy
        .users
        .limits
        .memory_max
        .into_iter()
        .chain(policy.overrides.iter().filter_map(|o| o.limits.memory_max))
        .map(|s| cap(Some(s)))
        .try_fold(0u64, |acc, v| v.map(|v| acc.max(v)));
    let per_user = policy.users.limits.memory_max.and(per_user);
    let n = policy.capacity.heavy_users;
    let users_sum = per_user.map(|each| each.saturating_mul(n as u64));
    let slice_cap = cap(policy.user_slice.memory_max);
    let (total, note) = match (users_sum, slice_cap) {
        (Some(sum), Some(c)) if c < sum => {
            (Some(c), Some(format!("user.slice capped at {}", human_bytes(c))))
        }
        (None, Some(c)) => (Some(c), Some(format!("user.slice capped at {}", human_bytes(c)))),
        (sum, _) => (sum, None),
    };
    let noun = if n == 1 { "user" } else { "users" };
    terms.push(Term {
        what: noun.into(),
        count: n,
        each: per_user,
        total,
        note,
    });

    for tree in &policy.trees {
        let each = cap(tree.limits.memory_max);
        let count = if tree.service.is_some() {
            tree.expected_instances
        } else {
            1
        };
        let total = each.map(|e| e.saturating_mul(count as u64));
        terms.push(Term {
            what: tree.name.clone(),
            count,
            each,
            total,
            note: None,
        });
    }
    if policy.docker.enabled {
        let each = cap(policy.docker.limits.memory_max);
        terms.push(Term {
            what: "docker".into(),
            count: 1,
            each,
            total: each,
            note: None,
        });
    }

    let reserve = policy.system.reserve.resolve(ram).unwrap_or(0);
    let total = terms
        .iter()
        .try_fold(reserve, |acc, t| t.total.map(|v| acc.saturating_add(v)));
    let fits = total.is_some_and(|t| t <= ram);
    Aggregate {
        terms,
        reserve,
        total,
        ram,
        fits,
    }
}

impl fmt::Display for Aggregate {
    /// The arithmetic, e.g. `3 users × 16G = 48G + docker 8G + system reserve 2G = 58G > 32G RAM`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = |v: Option<u64>| v.map_or("unlimited".to_string(), human_bytes);
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|t| {
                let mut s = if t.count == 1 {
                    format!("{} {}", t.what, size(t.each))
                } else {
                    format!(
                        "{} {} × {} = {}",
                        t.count,
                        t.what,
                        size(t.each),
                        size(t.each.map(|e| e.saturating_mul(t.count as u64)))
                    )
                };
                if let Some(note) = &t.note {
                    s.push_str(&format!(" ({note}: {})", size(t.total)));
                }
                s
            })
            .collect();
        let cmp = if self.fits { "≤" } else { ">" };
        write!(
            f,
            "{} + system reserve {} = {} {cmp} {} RAM",
            parts.join(" + "),
            human_bytes(self.reserve),
            size(self.total),
            human_bytes(self.ram)
        )
    }
}
