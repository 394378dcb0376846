//! The validated policy: plain data, every value already checked.

use crate::value::{CpuQuota, CpuSet, IoBandwidth, Permyriad, Size, Span, Tasks};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Where a setting came from, for messages and `containctl explain`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// Shared by every origin in the file: 10,000 overrides hold one copy of its path.
    pub file: Arc<str>,
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The cgroup settings contain manages on one unit; `None` leaves systemd's value alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_high: Option<Size>,
    pub memory_max: Option<Size>,
    pub memory_swap_max: Option<Size>,
    pub tasks_max: Option<Tasks>,
    pub cpu_weight: Option<u16>,
    pub io_weight: Option<u16>,
    pub cpu_quota: Option<CpuQuota>,
    pub allowed_cpus: Option<CpuSet>,
    pub io_read_bandwidth_max: Option<IoBandwidth>,
    pub io_write_bandwidth_max: Option<IoBandwidth>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// The settings as systemd unit-file assignments, in a fixed order.
    pub fn assignments(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(v) = self.memory_high {
            out.push(("MemoryHigh", v.to_string()));
        }
        if let Some(v) = self.memory_max {
            out.push(("MemoryMax", v.to_string()));
        }
        if let Some(v) = self.memory_swap_max {
            out.push(("MemorySwapMax", v.to_string()));
        }
        if let Some(v) = self.tasks_max {
            out.push(("TasksMax", v.to_string()));
        }
        if let Some(v) = self.cpu_weight {
            out.push(("CPUWeight", v.to_string()));
        }
        if let Some(v) = self.io_weight {
            out.push(("IOWeight", v.to_string()));
        }
        // An empty assignment resets to systemd's default: no quota, every CPU.
        match self.cpu_quota {
            Some(CpuQuota::Infinity) => out.push(("CPUQuota", String::new())),
            Some(q) => out.push(("CPUQuota", q.to_string())),
            None => {}
        }
        if let Some(set) = &self.allowed_cpus {
            out.push(("AllowedCPUs", set.unit_value()));
        }
        for (key, cap) in [
            ("IOReadBandwidthMax", &self.io_read_bandwidth_max),
            ("IOWriteBandwidthMax", &self.io_write_bandwidth_max),
        ] {
            for v in cap.iter().flat_map(IoBandwidth::unit_values) {
                out.push((key, v));
            }
        }
        out
    }
}

/// oomd's pressure policing of one tree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policing {
    pub enabled: bool,
    /// `None` means oomd.conf's DefaultMemoryPressureLimit.
    pub pressure_limit: Option<Permyriad>,
}

/// A user named by login name or by UID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UserRef {
    Name(String),
    Uid(u32),
}

impl UserRef {
    pub fn matches(&self, uid: u32, name: &str) -> bool {
        match self {
            UserRef::Name(n) => n == name,
            UserRef::Uid(u) => *u == uid,
        }
    }
}

impl fmt::Display for UserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserRef::Name(n) => f.write_str(n),
            UserRef::Uid(u) => write!(f, "uid {u}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    User(String),
    Uid(u32),
    Group(String),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::User(n) => write!(f, "user {n}"),
            Selector::Uid(u) => write!(f, "uid {u}"),
            Selector::Group(g) => write!(f, "group {g}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub selector: Selector,
    pub limits: Limits,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Users {
    pub limits: Limits,
    /// `caps = false`: the admin chose to leave users uncapped (overrides still apply).
    pub caps: bool,
    /// Accounts below this UID (system accounts) are never capped.
    pub exempt_uid_below: u32,
    pub exempt: Vec<UserRef>,
    pub policing: Policing,
}

/// Another tree of work capped like a user: a template service's instances, or a slice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub name: String,
    /// `foo@.service` (caps per instance) or `None` when the tree is a slice as a whole.
    pub service: Option<String>,
    /// The slice holding the tree; policed by oomd when `policing.enabled`.
    pub slice: String,
    pub limits: Limits,
    pub policing: Policing,
    /// How many instances may be heavy at once, for the aggregate check.
    pub expected_instances: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Docker {
    pub enabled: bool,
    pub limits: Limits,
    pub policing: Policing,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct System {
    pub cpu_weight: Option<u16>,
    pub io_weight: Option<u16>,
    /// `IODeviceLatencyTargetSec=` on system.slice and exempt accounts' slices, per device.
    pub io_latency_target: Option<Span>,
    /// The paths whose backing devices `io_latency_target` and `io_scheduler` apply to.
    pub io_devices: Vec<String>,
    /// The block scheduler put on those disks at boot (`bfq` makes `IOWeight=` real).
    #[serde(default)]
    pub io_scheduler: Option<String>,
    /// Memory kept free for system.slice in the aggregate check.
    pub reserve: Size,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Oomd {
    pub pressure_limit: Permyriad,
    pub pressure_duration: Span,
    pub swap_used_limit: Permyriad,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watchdog {
    pub enabled: bool,
    /// How long a cgroup may sit throttled at MemoryHigh before its runaway is ended.
    pub grace: Span,
    /// A program run after every kill with its facts in CONTAIN_* variables (absolute path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_kill: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureAction {
    Deny,
    Allow,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub on_failure: FailureAction,
    pub never_deny_users: Vec<UserRef>,
    pub never_deny_groups: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Users expected to be at their maximum at the same time.
    pub heavy_users: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub users: Users,
    /// Aggregate limits on user.slice as a whole.
    pub user_slice: Limits,
    pub overrides: Vec<Override>,
    pub trees: Vec<Tree>,
    pub docker: Docker,
    pub system: System,
    pub oomd: Oomd,
    pub watchdog: Watchdog,
    pub login: Login,
    pub capacity: Capacity,
    /// The files this policy was read from, in merge order.
    pub sources: Vec<String>,
}
