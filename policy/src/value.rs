//! Value types with systemd's own syntax: sizes, percentages, weights, task limits, time spans.

use serde::{Deserialize, Serialize};
use std::fmt;

const UNITS: [(char, u32); 6] = [('K', 10), ('M', 20), ('G', 30), ('T', 40), ('P', 50), ('E', 60)];

/// A memory size as `MemoryMax=` takes it: bytes, a share of RAM, or no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Size {
    Bytes(u64),
    /// Hundredths of a percent of physical memory (10000 = 100%).
    Permyriad(u32),
    Infinity,
}

impl Size {
    /// Parses `12G`, `1.5G`, `4096`, `75%`, `12.5%`, `infinity` (base 1024, as systemd does).
    pub fn parse(text: &str) -> Result<Size, String> {
        if let Some(bytes) = plain_bytes(text) {
            return Ok(Size::Bytes(bytes));
        }
        let t = text.trim();
        if t == "infinity" {
            return Ok(Size::Infinity);
        }
        if let Some(p) = t.strip_suffix('%') {
            return parse_permyriad(p).map(Size::Permyriad);
        }
        parse_bytes(t).map(Size::Bytes)
    }

    /// Resolves against physical memory; `None` for no limit.
    pub fn resolve(self, ram: u64) -> Option<u64> {
        match self {
            Size::Bytes(b) => Some(b),
            Size::Permyriad(p) => Some((ram as u128 * p as u128 / 10_000) as u64),
            Size::Infinity => None,
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Size::Infinity => f.write_str("infinity"),
            Size::Permyriad(p) => write!(f, "{}", Permyriad(p)),
            Size::Bytes(b) => f.write_str(&format_bytes(b)),
        }
    }
}

impl From<Size> for String {
    fn from(s: Size) -> String {
        s.to_string()
    }
}

/// Formats bytes with the largest suffix that divides them exactly (`16G`, `1536M`, `4097`).
pub fn format_bytes(b: u64) -> String {
    if b == 0 {
        return "0".into();
    }
    for &(suffix, shift) in UNITS.iter().rev() {
        if b.trailing_zeros() >= shift {
            return format!("{}{}", b >> shift, suffix);
        }
    }
    b.to_string()
}

/// Human figure for reports: `12.0G`, `800M`, `512K`.
pub fn human_bytes(b: u64) -> String {
    for &(suffix, shift) in UNITS.iter().rev() {
        let unit = 1u64 << shift;
        if b >= unit {
            let v = b as f64 / unit as f64;
            return if b.is_multiple_of(unit) || v >= 100.0 {
                format!("{:.0}{}", v, suffix)
            } else {
                format!("{:.1}{}", v, suffix)
            };
        }
    }
    format!("{}B", b)
}

/// Digits with an optional unit letter (`4096`, `1536M`), as nearly every size is written: read in
/// one pass. `None` for anything else, overflow included, which [`parse_bytes`] reads and words.
fn plain_bytes(t: &str) -> Option<u64> {
    let (&last, rest) = t.as_bytes().split_last()?;
    let (digits, shift) = match last.to_ascii_uppercase() {
        b'0'..=b'9' => (t.as_bytes(), 0),
        unit => (rest, UNITS.iter().find(|(s, _)| *s as u8 == unit)?.1),
    };
    // 19 digits always fit in a u64.
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    n.checked_mul(1 << shift)
}

fn parse_bytes(t: &str) -> Result<u64, String> {
    let (num, shift) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let up = c.to_ascii_uppercase();
            let Some(&(_, shift)) = UNITS.iter().find(|(s, _)| *s == up) else {
                return Err(format!(
                    "unknown size suffix `{c}`; use K, M, G, T, P or E (base 1024), `N%` or `infinity`"
                ));
            };
            (&t[..t.len() - 1], shift)
        }
        _ => (t, 0),
    };
    let (whole, frac) = match num.split_once('.') {
        Some((w, f)) => (w, f),
        None => (num, ""),
    };
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "`{t}` is not a size; write bytes (`4096`), a suffixed size (`12G`), a share of RAM (`75%`) or `infinity`"
        ));
    }
    if !frac.is_empty() && shift == 0 {
        return Err(format!(
            "`{t}`: a fraction of a byte makes no sense; use a suffix such as `1.5G`"
        ));
    }
    let too_big = || format!("`{t}` is larger than any memory (max 16E)");
    let whole: u64 = whole.parse().map_err(|_| too_big())?;
    let mut bytes = whole.checked_mul(1u64 << shift).ok_or_else(too_big)?;
    if !frac.is_empty() {
        let digits = &frac[..frac.len().min(18)];
        let f: u128 = digits.parse().map_err(|_| too_big())?;
        let scale = 10u128.pow(digits.len() as u32);
        let extra = (f << shift) / scale;
        bytes = bytes.checked_add(extra as u64).ok_or_else(too_big)?;
    }
    Ok(bytes)
}

/// Parses `N`, `N.N` or `N.NN` (the `%` already stripped) into hundredths of a percent.
fn parse_permyriad(p: &str) -> Result<u32, String> {
    let (whole, frac) = p.split_once('.').unwrap_or((p, ""));
    let ok = !whole.is_empty()
        && whole.len() <= 3
        && frac.len() <= 2
        && whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit());
    if !ok {
        return Err(format!("`{p}%` is not a percentage; write e.g. `75%` or `12.5%`"));
    }
    let w: u32 = whole.parse().unwrap_or(u32::MAX);
    let f: u32 = format!("{frac:0<2}").parse().unwrap_or(0);
    let v = w * 100 + f;
    if v > 10_000 {
        return Err(format!("`{p}%` is over 100%; a share of RAM is at most `100%`"));
    }
    Ok(v)
}

/// A percentage as systemd prints it: `60%`, `12.5%`, `0.25%`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Permyriad(pub u32);

impl Permyriad {
    pub fn parse(text: &str) -> Result<Permyriad, String> {
        match text.trim().strip_suffix('%') {
            Some(p) => parse_permyriad(p).map(Permyriad),
            None => Err(format!("`{text}` is not a percentage; write e.g. `60%`")),
        }
    }
}

impl fmt::Display for Permyriad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (w, r) = (self.0 / 100, self.0 % 100);
        match r {
            0 => write!(f, "{w}%"),
            r if r % 10 == 0 => write!(f, "{w}.{}%", r / 10),
            r => write!(f, "{w}.{r:02}%"),
        }
    }
}

impl From<Permyriad> for String {
    fn from(p: Permyriad) -> String {
        p.to_string()
    }
}

/// `TasksMax=`: a count, a share of the kernel's pid limit, or no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Tasks {
    Count(u64),
    Permyriad(u32),
    Infinity,
}

impl Tasks {
    pub fn parse(text: &str) -> Result<Tasks, String> {
        let t = text.trim();
        if t == "infinity" {
            return Ok(Tasks::Infinity);
        }
        if let Some(p) = t.strip_suffix('%') {
            return parse_permyriad(p).map(Tasks::Permyriad);
        }
        match t.parse::<u64>() {
            Ok(0) => Err("a task limit of 0 would forbid every process; use at least 1".into()),
            Ok(n) => Ok(Tasks::Count(n)),
            Err(_) => Err(format!(
                "`{t}` is not a task limit; write a count (`4096`), `33%` or `infinity`"
            )),
        }
    }
}

impl fmt::Display for Tasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Tasks::Count(n) => write!(f, "{n}"),
            Tasks::Permyriad(p) => write!(f, "{}", Permyriad(p)),
            Tasks::Infinity => f.write_str("infinity"),
        }
    }
}

impl From<Tasks> for String {
    fn from(t: Tasks) -> String {
        t.to_string()
    }
}

/// A time span in milliseconds, parsed from `20s`, `500ms`, `1min`, `1min 30s` or bare seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Span(pub u64);

impl Span {
    pub fn parse(text: &str) -> Result<Span, String> {
        let err = || format!("`{text}` is not a time span; write e.g. `20s`, `500ms` or `1min`");
        let mut total: u64 = 0;
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(err());
        }
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return Err(err());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| err())?;
            rest = rest[digits..].trim_start();
            let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
            let ms_per = match &rest[..unit_len] {
                "ms" | "msec" => 1,
                "" | "s" | "sec" => 1000,
                "m" | "min" => 60_000,
                "h" | "hr" => 3_600_000,
                _ => return Err(err()),
            };
            rest = rest[unit_len..].trim_start();
            total = n
                .checked_mul(ms_per)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(err)?;
        }
        Ok(Span(total))
    }

    pub fn as_millis(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}s", self.0 / 1000)
        } else {
            write!(f, "{}ms", self.0)
        }
    }
}

impl From<Span> for String {
    fn from(s: Span) -> String {
        s.to_string()
    }
}

/// `CPUQuota=`: CPU time per second, in hundredths of a percent of one CPU (`400%` = four CPUs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum CpuQuota {
    Permyriad(u64),
    /// No quota: lifts one set by `[users]` or a group override.
    Infinity,
}

impl CpuQuota {
    /// The largest quota accepted: 10,000 CPUs.
    const MAX: u64 = 100_000_000;

    /// Parses `400%`, `12.5%` or `infinity`.
    pub fn parse(text: &str) -> Result<CpuQuota, String> {
        let t = text.trim();
        if t == "infinity" {
            return Ok(CpuQuota::Infinity);
        }
        let err = || {
            format!(
                "`{t}` is not a CPU quota; write a share of one CPU such as `400%` (four CPUs), `50%` or `infinity`"
            )
        };
        let p = t.strip_suffix('%').ok_or_else(err)?;
        let (whole, frac) = p.split_once('.').unwrap_or((p, ""));
        let ok = !whole.is_empty()
            && whole.len() <= 7
            && frac.len() <= 2
            && whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit());
        if !ok {
            return Err(err());
        }
        let w: u64 = whole.parse().map_err(|_| err())?;
        let f: u64 = format!("{frac:0<2}").parse().map_err(|_| err())?;
        match w * 100 + f {
            v if v < 100 => Err(format!(
                "`{t}` is below 1%, the smallest quota the kernel enforces"
            )),
            v if v > Self::MAX => Err(format!("`{t}` is over 1000000% (10,000 CPUs)")),
            v => Ok(CpuQuota::Permyriad(v)),
        }
    }

    /// Microseconds of CPU time per second, as `CPUQuotaPerSecUSec` takes it (`u64::MAX`: none).
    pub fn usec_per_sec(self) -> u64 {
        match self {
            CpuQuota::Permyriad(p) => p * 100,
            CpuQuota::Infinity => u64::MAX,
        }
    }
}

impl fmt::Display for CpuQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CpuQuota::Permyriad(p) => {
                let (w, r) = (p / 100, p % 100);
                match r {
                    0 => write!(f, "{w}%"),
                    r if r % 10 == 0 => write!(f, "{w}.{}%", r / 10),
                    r => write!(f, "{w}.{r:02}%"),
                }
            }
            CpuQuota::Infinity => f.write_str("infinity"),
        }
    }
}

impl From<CpuQuota> for String {
    fn from(q: CpuQuota) -> String {
        q.to_string()
    }
}

/// `AllowedCPUs=`: CPU numbers as sorted, merged, inclusive ranges; empty means every CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct CpuSet(Vec<(u32, u32)>);

impl CpuSet {
    /// The highest CPU number accepted (systemd's CPU_SET_MAX is 8192 CPUs).
    const LAST: u32 = 8191;

    /// Parses `0-3`, `0,2,4-7` (commas or spaces) or `all`.
    pub fn parse(text: &str) -> Result<CpuSet, String> {
        let t = text.trim();
        if t == "all" {
            return Ok(CpuSet::default());
        }
        let err = |part: &str| {
            format!("`{part}` in `{t}` is not a CPU number or range; write e.g. `0-3`, `0,2,4-7` or `all`")
        };
        let cpu = |n: &str, part: &str| -> Result<u32, String> {
            if n.is_empty() || n.len() > 5 || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(part));
            }
            match n.parse::<u32>() {
                Ok(v) if v <= Self::LAST => Ok(v),
                _ => Err(format!(
                    "CPU {n} in `{t}` is above {}, the highest systemd accepts",
                    Self::LAST
                )),
            }
        };
        let mut ranges = Vec::new();
        for part in t.split([',', ' ']).filter(|p| !p.is_empty()) {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (cpu(a, part)?, cpu(b, part)?),
                None => {
                    let v = cpu(part, part)?;
                    (v, v)
                }
            };
            if lo > hi {
                return Err(format!(
                    "`{part}` in `{t}` runs backwards; write the lower CPU first"
                ));
            }
            ranges.push((lo, hi));
        }
        if ranges.is_empty() {
            return Err(format!(
                "`{t}` names no CPU; write e.g. `0-3`, or `all` for every CPU"
            ));
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Ok(CpuSet(merged))
    }

    /// True for `all`: no restriction.
    /// Whether the two sets share a CPU (an empty set means every CPU).
    pub fn intersects(&self, other: &CpuSet) -> bool {
        if self.is_all() || other.is_all() {
            return true;
        }
        self.0
            .iter()
            .any(|&(a, b)| other.0.iter().any(|&(c, d)| a <= d && c <= b))
    }

    pub fn is_all(&self) -> bool {
        self.0.is_empty()
    }

    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.0
    }

    /// The CPUs as systemd's D-Bus `AllowedCPUs` byte array: bit `n % 8` of byte `n / 8` is CPU n.
    pub fn mask(&self) -> Vec<u8> {
        let Some(&(_, last)) = self.0.last() else {
            return Vec::new();
        };
        let mut bytes = vec![0u8; last as usize / 8 + 1];
        for &(lo, hi) in &self.0 {
            for n in lo..=hi {
                bytes[n as usize / 8] |= 1 << (n % 8);
            }
        }
        bytes
    }

    /// As `AllowedCPUs=` takes it; empty (every CPU) for `all`.
    pub fn unit_value(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        parts.join(",")
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            f.write_str("all")
        } else {
            f.write_str(&self.unit_value())
        }
    }
}

impl From<CpuSet> for String {
    fn from(s: CpuSet) -> String {
        s.to_string()
    }
}

/// The paths whose backing block devices per-user IO caps apply to when a table names none
/// (systemd resolves each path to its device; several on one device are one cap).
pub const DEFAULT_IO_DEVICES: [&str; 4] = ["/", "/home", "/var", "/tmp"];

/// An IO bandwidth cap as `IOReadBandwidthMax=`/`IOWriteBandwidthMax=` take it: bytes per
/// second on the device backing each path, or none (`infinity`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoBandwidth {
    /// `None`: no cap (an exempt account's slice lifts the template's).
    pub bytes_per_sec: Option<u64>,
    pub devices: Vec<String>,
}

impl IoBandwidth {
    /// Parses `20M`, `20M/s`, `1G`, bytes, or `infinity` (base 1024, per second).
    pub fn parse_rate(text: &str) -> Result<Option<u64>, String> {
        let t = text.trim();
        let t = t.strip_suffix("/s").unwrap_or(t);
        match Size::parse(t) {
            Ok(Size::Bytes(0)) => Err(format!("`{text}` would stop all IO; write a rate above 0")),
            Ok(Size::Bytes(b)) => Ok(Some(b)),
            Ok(Size::Infinity) => Ok(None),
            Ok(Size::Permyriad(_)) => Err(format!(
                "`{text}` is a share; an IO cap is bytes per second such as \"20M\""
            )),
            Err(e) => Err(e),
        }
    }

    /// No cap: in a unit or a runtime property, it lifts every earlier one.
    pub const NONE: IoBandwidth = IoBandwidth {
        bytes_per_sec: None,
        devices: Vec::new(),
    };

    /// No cap, for an exempt account's slice.
    pub fn lifted(&self) -> IoBandwidth {
        Self::NONE
    }

    /// The values of its unit-file assignments: one `PATH RATE` per device, or one empty
    /// assignment that resets every earlier one.
    pub fn unit_values(&self) -> Vec<String> {
        match self.bytes_per_sec {
            None => vec![String::new()],
            Some(b) => self
                .devices
                .iter()
                .map(|d| format!("{d} {}", format_bytes(b)))
                .collect(),
        }
    }
}

impl fmt::Display for IoBandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.bytes_per_sec {
            None => f.write_str("infinity"),
            Some(b) => write!(f, "{}/s on {}", format_bytes(b), self.devices.join(", ")),
        }
    }
}

/// Checks a path that `io_devices` names: absolute, and one word of plain text.
pub fn check_io_device(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` is not an absolute path"));
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) || path.contains('\\') {
        return Err(format!(
            "`{}` holds spaces, backslashes or control characters",
            path.escape_debug()
        ));
    }
    Ok(())
}

/// Values read back from their own text (the compiled policy a login reads).
macro_rules! from_own_text {
    ($($ty:ident),*) => {$(
        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(text: String) -> Result<$ty, String> {
                $ty::parse(&text)
            }
        }
    )*};
}
from_own_text!(Size, Permyriad, Tasks, Span, CpuQuota, CpuSet);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_systemd_does() {
        assert_eq!(Size::parse("12G"), Ok(Size::Bytes(12 << 30)));
        assert_eq!(Size::parse("1.5G"), Ok(Size::Bytes(3 << 29)));
        assert_eq!(Size::parse("4096"), Ok(Size::Bytes(4096)));
        assert_eq!(Size::parse("0"), Ok(Size::Bytes(0)));
        assert_eq!(Size::parse("75%"), Ok(Size::Permyriad(7500)));
        assert_eq!(Size::parse("12.5%"), Ok(Size::Permyriad(1250)));
        assert_eq!(Size::parse("infinity"), Ok(Size::Infinity));
        assert!(Size::parse("101%").is_err());
        assert!(Size::parse("12X").is_err());
        assert!(Size::parse("-1").is_err());
        assert!(Size::parse("99999999999E").is_err());
        assert!(Size::parse("").is_err());
        assert!(Size::parse("1.5").is_err());
        assert_eq!(Size::parse("2k"), Ok(Size::Bytes(2048)));
        assert_eq!(Size::parse(" 2K"), Ok(Size::Bytes(2048)));
        assert_eq!(
            Size::parse("16E"),
            Err("`16E` is larger than any memory (max 16E)".into())
        );
        assert_eq!(Size::parse("18446744073709551615"), Ok(Size::Bytes(u64::MAX)));
        assert!(Size::parse("18446744073709551616").is_err());
        assert!(Size::parse("+1M").is_err());
    }

    #[test]
    fn sizes_print_canonically() {
        assert_eq!(Size::Bytes(16 << 30).to_string(), "16G");
        assert_eq!(Size::Bytes(1536 << 20).to_string(), "1536M");
        assert_eq!(Size::Bytes(4097).to_string(), "4097");
        assert_eq!(Size::Permyriad(1250).to_string(), "12.5%");
        assert_eq!(Size::Permyriad(25).to_string(), "0.25%");
        assert_eq!(human_bytes(12 << 30), "12G");
        assert_eq!(human_bytes(1536 << 20), "1.5G");
    }

    #[test]
    fn percent_resolves_against_ram() {
        assert_eq!(Size::Permyriad(5000).resolve(32 << 30), Some(16 << 30));
        assert_eq!(Size::Infinity.resolve(1), None);
    }

    #[test]
    fn spans_and_tasks() {
        assert_eq!(Span::parse("20s"), Ok(Span(20_000)));
        assert_eq!(Span::parse("1min 30s"), Ok(Span(90_000)));
        assert_eq!(Span::parse("250ms"), Ok(Span(250)));
        assert_eq!(Span::parse("15"), Ok(Span(15_000)));
        assert!(Span::parse("soon").is_err());
        assert_eq!(Span(20_000).to_string(), "20s");
        assert_eq!(Tasks::parse("33%"), Ok(Tasks::Permyriad(3300)));
        assert!(Tasks::parse("0").is_err());
    }

    #[test]
    fn cpu_quotas() {
        assert_eq!(CpuQuota::parse("400%"), Ok(CpuQuota::Permyriad(40_000)));
        assert_eq!(CpuQuota::parse("12.5%"), Ok(CpuQuota::Permyriad(1250)));
        assert_eq!(CpuQuota::parse("infinity"), Ok(CpuQuota::Infinity));
        assert_eq!(CpuQuota::Permyriad(40_000).usec_per_sec(), 4_000_000);
        assert_eq!(CpuQuota::Permyriad(15_000).to_string(), "150%");
        assert_eq!(CpuQuota::Permyriad(1250).to_string(), "12.5%");
        for bad in ["0%", "0.5%", "400", "four", "-5%", "%", "1.234%", "99999999%"] {
            assert!(CpuQuota::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_sets() {
        let s = CpuSet::parse("4-7, 0,1 2").unwrap();
        assert_eq!(s.ranges(), [(0, 2), (4, 7)]);
        assert_eq!(s.to_string(), "0-2,4-7");
        assert_eq!(s.mask(), [0b1111_0111]);
        assert_eq!(CpuSet::parse("9").unwrap().mask(), [0, 0b10]);
        assert_eq!(CpuSet::parse("3").unwrap().unit_value(), "3");
        assert!(CpuSet::parse("all").unwrap().is_all());
        assert!(CpuSet::parse("all").unwrap().mask().is_empty());
        for bad in ["", "3-1", "a", "0-", "1.5", "8192", "0;1"] {
            assert!(CpuSet::parse(bad).is_err(), "{bad}");
        }
    }
}
