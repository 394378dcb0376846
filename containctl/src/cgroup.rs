//! Reading one cgroup's figures from cgroupfs, in the kernel's own file formats.

use crate::host::{Host, key_values};
use serde::{Serialize, Serializer};
use std::fs;
use std::path::Path;

/// A cgroup limit file: a number, or `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    Value(u64),
    Max,
}

impl Cap {
    pub fn parse(text: &str) -> Option<Cap> {
        match text.trim() {
            "max" => Some(Cap::Max),
            t => t.parse().ok().map(Cap::Value),
        }
    }

    pub fn value(self) -> Option<u64> {
        match self {
            Cap::Value(v) => Some(v),
            Cap::Max => None,
        }
    }
}

impl Serialize for Cap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cap::Value(v) => s.serialize_u64(*v),
            Cap::Max => s.serialize_str("max"),
        }
    }
}

/// `some avg10=… avg60=… avg300=… total=…` / `full …`, avg10 of each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Pressure {
    pub some_avg10: f64,
    pub full_avg10: f64,
}

pub fn parse_pressure(text: &str) -> Option<Pressure> {
    let mut p = Pressure::default();
    let mut seen = false;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let kind = f.next();
        let avg10 = f
            .find_map(|kv| kv.strip_prefix("avg10="))
            .and_then(|v| v.parse::<f64>().ok());
        match (kind, avg10) {
            (Some("some"), Some(v)) => {
                p.some_avg10 = v;
                seen = true;
            }
            (Some("full"), Some(v)) => p.full_avg10 = v,
            _ => {}
        }
    }
    seen.then_some(p)
}

/// What contain shows for one cgroup. `None` where the file is absent (controller off, old kernel).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub memory_current: Option<u64>,
    pub memory_high: Option<Cap>,
    pub memory_max: Option<Cap>,
    pub memory_peak: Option<u64>,
    pub swap_current: Option<u64>,
    pub swap_max: Option<Cap>,
    pub pressure: Option<Pressure>,
    pub pids_current: Option<u64>,
    pub pids_max: Option<Cap>,
    pub oom_kill: Option<u64>,
    pub events_high: Option<u64>,
    pub events_max: Option<u64>,
    pub cpu_weight: Option<u64>,
    pub io_weight: Option<u64>,
}

impl Stats {
    pub fn read(dir: &Path) -> Stats {
        let file = |name: &str| fs::read_to_string(dir.join(name)).ok();
        let num = |name: &str| file(name).and_then(|t| t.trim().parse().ok());
        let cap = |name: &str| file(name).and_then(|t| Cap::parse(&t));
        let events = file("memory.events").unwrap_or_default();
        let event = |key: &str| key_values(&events, key);
        Stats {
            memory_current: num("memory.current"),
            memory_high: cap("memory.high"),
            memory_max: cap("memory.max"),
            memory_peak: num("memory.peak"),
            swap_current: num("memory.swap.current"),
            swap_max: cap("memory.swap.max"),
            pressure: file("memory.pressure").and_then(|t| parse_pressure(&t)),
            pids_current: num("pids.current"),
            pids_max: cap("pids.max"),
            oom_kill: event("oom_kill"),
            events_high: event("high"),
            events_max: event("max"),
            cpu_weight: num("cpu.weight"),
            // io.weight reads `default 100` (plus per-device lines).
            io_weight: file("io.weight").and_then(|t| key_values(&t, "default")),
        }
    }
}

/// A cgroup's direct children whose names match `keep`, as paths relative to the cgroupfs root.
pub fn children(host: &Host, rel: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let Ok(dir) = fs::read_dir(host.cgroup(rel)) else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| keep(n))
        .map(|n| format!("{}/{n}", rel.trim_end_matches('/')))
        .collect();
    out.sort();
    out
}

/// Every cgroup below the root (depth-first, bounded), as relative paths.
pub fn walk(host: &Host, max_depth: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![("/".to_string(), 0usize)];
    while let Some((rel, depth)) = stack.pop() {
        if depth >= max_depth {
            continue;
        }
        for child in children(host, &rel, |_| true) {
            stack.push((child.clone(), depth + 1));
            out.push(child);
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kernel_pressure_format() {
        let text = "some avg10=12.50 avg60=3.10 avg300=0.70 total=123456\nfull avg10=9.25 avg60=2.00 avg300=0.50 total=99999\n";
        let p = parse_pressure(text).unwrap();
        assert_eq!(p.some_avg10, 12.5);
        assert_eq!(p.full_avg10, 9.25);
        assert_eq!(parse_pressure("garbage"), None);
    }

    #[test]
    fn caps_read_max_and_numbers() {
        assert_eq!(Cap::parse("max\n"), Some(Cap::Max));
        assert_eq!(Cap::parse("838860800\n"), Some(Cap::Value(838860800)));
        assert_eq!(Cap::parse("x"), None);
    }
}
