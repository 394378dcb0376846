//! Unit properties as systemd's D-Bus API takes them (see `systemctl set-property`).

use contain_policy::Limits;
use contain_policy::value::{Permyriad, Size, Tasks};
use std::fmt;
use zbus::Variant;

/// A property value with its D-Bus type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `t`
    U64(u64),
    /// `u`
    U32(u32),
    /// `s`
    Str(String),
    /// `au`
    U32Array(Vec<u32>),
    /// `ay`: a CPU mask, bit `n % 8` of byte `n / 8` for CPU n.
    CpuMask(Vec<u8>),
    /// `a(st)`: a path and a figure per device (`IOReadBandwidthMax`); empty resets them all.
    PathU64Array(Vec<(String, u64)>),
}

impl Value {
    pub(crate) fn to_variant(&self) -> Variant<'_> {
        match self {
            Value::U64(v) => Variant::from(*v),
            Value::U32(v) => Variant::from(*v),
            Value::Str(s) => Variant::from(s.as_str()),
            Value::U32Array(a) => Variant::from(a.clone()),
            Value::CpuMask(a) => Variant::from(a.clone()),
            Value::PathU64Array(a) => Variant::from(a.clone()),
        }
    }
}

/// One `Name=value` assignment for SetUnitProperties or StartTransientUnit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Property {
    pub name: &'static str,
    pub value: Value,
}

impl Property {
    pub fn new(name: &'static str, value: Value) -> Self {
        Property { name, value }
    }

    /// `ManagedOOMMemoryPressure=` (`auto` or `kill`).
    pub fn managed_oom_memory_pressure(mode: &str) -> Self {
        Property::new("ManagedOOMMemoryPressure", Value::Str(mode.to_string()))
    }

    /// `ManagedOOMMemoryPressureLimit=`, scaled as systemctl does.
    pub fn managed_oom_memory_pressure_limit(limit: Permyriad) -> Self {
        Property::new(
            "ManagedOOMMemoryPressureLimit",
            Value::U32(scale_from_permyriad(limit.0)),
        )
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Value::U64(u64::MAX) => write!(f, "{}=infinity", self.name),
            Value::U64(v) => write!(f, "{}={v}", self.name),
            Value::U32(v) => write!(f, "{}={v}", self.name),
            Value::Str(s) => write!(f, "{}={s}", self.name),
            Value::U32Array(a) => {
                let items: Vec<String> = a.iter().map(u32::to_string).collect();
                write!(f, "{}={}", self.name, items.join(" "))
            }
            Value::CpuMask(mask) => {
                let cpus: Vec<String> = (0..mask.len() * 8)
                    .filter(|n| mask[n / 8] & (1 << (n % 8)) != 0)
                    .map(|n| n.to_string())
                    .collect();
                write!(f, "{}={}", self.name, cpus.join(" "))
            }
            Value::PathU64Array(a) => {
                let items: Vec<String> = a.iter().map(|(p, v)| format!("{p} {v}")).collect();
                write!(f, "{}={}", self.name, items.join(", "))
            }
        }
    }
}

/// A share of 10000 as systemd's 32-bit scale, where `u32::MAX` is 100% (UINT32_SCALE_FROM_PERMYRIAD).
pub fn scale_from_permyriad(permyriad: u32) -> u32 {
    let p = u64::from(permyriad.min(10_000));
    ((p * u64::from(u32::MAX) + 5_000) / 10_000) as u32
}

fn memory(name: &'static str, scale_name: &'static str, size: Size) -> Property {
    match size {
        Size::Bytes(b) => Property::new(name, Value::U64(b)),
        // systemd refuses a zero scale; zero bytes is the same thing.
        Size::Permyriad(0) => Property::new(name, Value::U64(0)),
        Size::Permyriad(p) => Property::new(scale_name, Value::U32(scale_from_permyriad(p))),
        Size::Infinity => Property::new(name, Value::U64(u64::MAX)),
    }
}

/// The properties that put `limits` on a unit, in the order `Limits::assignments` gives.
pub fn properties_for(limits: &Limits) -> Vec<Property> {
    let mut out = Vec::new();
    if let Some(s) = limits.memory_high {
        out.push(memory("MemoryHigh", "MemoryHighScale", s));
    }
    if let Some(s) = limits.memory_max {
        out.push(memory("MemoryMax", "MemoryMaxScale", s));
    }
    if let Some(s) = limits.memory_swap_max {
        out.push(memory("MemorySwapMax", "MemorySwapMaxScale", s));
    }
    if let Some(t) = limits.tasks_max {
        out.push(match t {
            Tasks::Count(n) => Property::new("TasksMax", Value::U64(n)),
            Tasks::Permyriad(p) => Property::new("TasksMaxScale", Value::U32(scale_from_permyriad(p))),
            Tasks::Infinity => Property::new("TasksMax", Value::U64(u64::MAX)),
        });
    }
    if let Some(w) = limits.cpu_weight {
        out.push(Property::new("CPUWeight", Value::U64(u64::from(w))));
    }
    if let Some(w) = limits.io_weight {
        out.push(Property::new("IOWeight", Value::U64(u64::from(w))));
    }
    if let Some(q) = limits.cpu_quota {
        out.push(Property::new("CPUQuotaPerSecUSec", Value::U64(q.usec_per_sec())));
    }
    if let Some(set) = &limits.allowed_cpus {
        // An empty mask lifts the restriction, as `AllowedCPUs=` does.
        out.push(Property::new("AllowedCPUs", Value::CpuMask(set.mask())));
    }
    for (name, cap) in [
        ("IOReadBandwidthMax", &limits.io_read_bandwidth_max),
        ("IOWriteBandwidthMax", &limits.io_write_bandwidth_max),
    ] {
        if let Some(cap) = cap {
            // No devices (no cap) is the empty array, which lifts every earlier one.
            let per_device = match cap.bytes_per_sec {
                Some(b) => cap.devices.iter().map(|d| (d.clone(), b)).collect(),
                None => Vec::new(),
            };
            out.push(Property::new(name, Value::PathU64Array(per_device)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use contain_policy::value::{CpuQuota, CpuSet, IoBandwidth};

    #[test]
    fn scale_matches_systemd() {
        assert_eq!(scale_from_permyriad(0), 0);
        assert_eq!(scale_from_permyriad(10_000), u32::MAX);
        // 50% of UINT32_MAX, rounded to closest: (5000 * 4294967295 + 5000) / 10000.
        assert_eq!(scale_from_permyriad(5_000), 2_147_483_648);
        assert_eq!(scale_from_permyriad(6_000), 2_576_980_377);
        assert_eq!(scale_from_permyriad(20_000), u32::MAX);
    }

    /// Every limit set, the memory high point as a share of RAM and the rest in bytes.
    fn every_limit() -> Limits {
        Limits {
            memory_high: Some(Size::Permyriad(4000)),
            memory_max: Some(Size::Bytes(16 << 30)),
            memory_swap_max: Some(Size::Bytes(0)),
            tasks_max: Some(Tasks::Count(4096)),
            cpu_weight: Some(100),
            io_weight: Some(50),
            cpu_quota: Some(CpuQuota::Permyriad(15_000)),
            allowed_cpus: Some(CpuSet::parse("0-2,9").unwrap()),
            io_read_bandwidth_max: Some(IoBandwidth {
                bytes_per_sec: Some(20 << 20),
                devices: vec!["/".into(), "/home".into()],
            }),
            io_write_bandwidth_max: Some(IoBandwidth {
                bytes_per_sec: None,
                devices: vec!["/".into()],
            }),
        }
    }

    #[test]
    fn limits_become_typed_properties() {
        let props = properties_for(&every_limit());
        let shown: Vec<String> = props.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            shown,
            [
                "MemoryHighScale=1717986918",
                "MemoryMax=17179869184",
                "MemorySwapMax=0",
                "TasksMax=4096",
                "CPUWeight=100",
                "IOWeight=50",
                "CPUQuotaPerSecUSec=1500000",
                "AllowedCPUs=0 1 2 9",
                "IOReadBandwidthMax=/ 20971520, /home 20971520",
                "IOWriteBandwidthMax="
            ]
        );
        // systemd's D-Bus API takes these as a(st) and an empty array as "no cap".
        assert_eq!(props[8].value.to_variant().value_signature().to_string(), "a(st)");
        assert_eq!(props[9].value, Value::PathU64Array(Vec::new()));
        assert_eq!(props[7].value, Value::CpuMask(vec![0b111, 0b10]));
        assert_eq!(props[0].value, Value::U32(1_717_986_918));
        assert_eq!(props[1].value, Value::U64(16 << 30));
    }

    #[test]
    fn infinity_and_shares() {
        let limits = Limits {
            memory_max: Some(Size::Infinity),
            memory_swap_max: Some(Size::Permyriad(0)),
            tasks_max: Some(Tasks::Permyriad(3300)),
            cpu_quota: Some(CpuQuota::Infinity),
            allowed_cpus: Some(CpuSet::default()),
            ..Limits::default()
        };
        let shown: Vec<String> = properties_for(&limits).iter().map(|p| p.to_string()).collect();
        assert_eq!(
            shown,
            [
                "MemoryMax=infinity",
                "MemorySwapMax=0",
                "TasksMaxScale=1417339207",
                "CPUQuotaPerSecUSec=infinity",
                "AllowedCPUs="
            ]
        );
        assert!(properties_for(&Limits::default()).is_empty());
        assert_eq!(
            Property::managed_oom_memory_pressure_limit(Permyriad(6000)).to_string(),
            "ManagedOOMMemoryPressureLimit=2576980377"
        );
    }

    /// The package's postrm removes the runtime drop-ins these properties leave on user slices
    /// (systemd names them 50-SETTING.conf, after the unit-file setting): a property added here
    /// and not there would outlive the package until the next boot.
    #[test]
    fn postrm_removes_every_runtime_drop_in_contain_sets() {
        let postrm = include_str!("../../packaging/debian/postrm");
        let list: String = postrm
            .split_once("for prop in ")
            .and_then(|(_, rest)| rest.split_once("; do"))
            .map(|(props, _)| props.replace("\\\n", " "))
            .expect("postrm has its `for prop in ...; do` loop");
        let removed: Vec<&str> = list.split_whitespace().collect();
        // Each property in both its forms: in bytes and as a share.
        let by_share = Limits {
            memory_high: Some(Size::Permyriad(5000)),
            memory_max: Some(Size::Permyriad(5000)),
            memory_swap_max: Some(Size::Permyriad(5000)),
            tasks_max: Some(Tasks::Permyriad(100)),
            ..every_limit()
        };
        let in_bytes = Limits {
            memory_high: Some(Size::Bytes(1 << 30)),
            ..every_limit()
        };
        for limits in [in_bytes, by_share] {
            for p in properties_for(&limits) {
                let setting = match p.name {
                    "CPUQuotaPerSecUSec" => "CPUQuota",
                    n => n.strip_suffix("Scale").unwrap_or(n),
                };
                assert!(
                    removed.contains(&setting),
                    "postrm leaves 50-{setting}.conf ({}); it removes {removed:?}",
                    p.name
                );
            }
        }
    }
}
