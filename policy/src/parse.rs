//! Parsing and validation: TOML text → merged tree → [`Policy`], collecting every error.

use crate::model::*;
use crate::tree::{self, Entries, Fnv, Kind, LineMark, Loc, Node};

mod sections;
use crate::unit;
use crate::value::{
    CpuQuota, CpuSet, DEFAULT_IO_DEVICES, IoBandwidth, Permyriad, Size, Span, Tasks, check_io_device,
};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

/// One policy file's text and the path to name in messages.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    pub path: &'a str,
    pub text: &'a str,
}

/// An error tied to a place in a policy file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Line numbers, counted when a place is asked for. Places mostly come in file order (the
/// overrides' origins): each is counted on from the last. One out of order builds an index.
#[derive(Default)]
struct Lines {
    /// The last offset asked for, its 0-based line and the offset that line starts at.
    at: usize,
    line: usize,
    start: usize,
    /// Where each line starts, once a place came out of order.
    starts: Option<Vec<usize>>,
    /// The headers' lines, as reading the file counted them, and the next one not passed yet.
    headers: Vec<LineMark>,
    next_header: usize,
}

impl Lines {
    /// 1-based line and column (in characters) of a byte offset.
    fn line_column(&mut self, text: &str, offset: usize) -> (u32, u32) {
        let offset = offset.min(text.len());
        let (line, start) = self.line_start(text.as_bytes(), offset);
        let column = text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        (line as u32 + 1, column as u32)
    }

    fn line_start(&mut self, text: &[u8], offset: usize) -> (usize, usize) {
        if let Some(starts) = &self.starts {
            let line = starts.partition_point(|&s| s <= offset) - 1;
            return (line, starts[line]);
        }
        if offset < self.at {
            let mut starts = vec![0];
            starts.extend(memchr::memchr_iter(b'\n', text).map(|i| i + 1));
            self.starts = Some(starts);
            return self.line_start(text, offset);
        }
        // From the last header at or before the place: an override's origin is one.
        while let Some(header) = self.headers.get(self.next_header)
            && header.offset as usize <= offset
        {
            if header.offset as usize >= self.at {
                self.at = header.offset as usize;
                self.line = header.line as usize;
                self.start = header.line_start as usize;
            }
            self.next_header += 1;
        }
        // The last newline by a plain loop from the end, not memrchr: it is one byte back for a
        // header at column 1.
        let skipped = &text[self.at..offset];
        if let Some(last) = skipped.iter().rposition(|&b| b == b'\n') {
            self.line += memchr::memchr_iter(b'\n', &skipped[..last]).count() + 1;
            self.start = self.at + last + 1;
        }
        self.at = offset;
        (self.line, self.start)
    }
}

struct Diags<'a> {
    files: &'a [Source<'a>],
    /// The files' paths, made once for every origin to share.
    paths: Vec<Arc<str>>,
    lines: Vec<Lines>,
    out: Vec<Diagnostic>,
}

impl Diags<'_> {
    fn line_column(&mut self, at: &Loc) -> (u32, u32) {
        let file = at.file as usize;
        self.lines[file].line_column(self.files[file].text, at.offset as usize)
    }

    fn error(&mut self, at: &Loc, message: impl Into<String>, help: Option<String>) {
        let (line, column) = self.line_column(at);
        self.out.push(Diagnostic {
            file: self.files[at.file as usize].path.to_string(),
            line,
            column,
            message: message.into(),
            help,
        });
    }

    fn origin(&mut self, at: &Loc) -> Origin {
        let (line, column) = self.line_column(at);
        let file = self.paths[at.file as usize].clone();
        Origin { file, line, column }
    }
}

/// What a parse keeps of the `[[override]]` tables, which it checks in full either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overrides {
    Kept,
    /// Checked, then dropped: for rendering units, which never carry them (pam_contain sets a
    /// user's own caps at login), so that 10,000 of them cost the boot no more than reading.
    Checked,
}

/// Parses and validates the policy files in merge order (the main file, then `policy.d/*.toml`).
/// Later files replace earlier values key by key; `[[override]]` entries accumulate.
pub fn parse(sources: &[Source<'_>]) -> Result<Policy, Vec<Diagnostic>> {
    parse_keeping(sources, Overrides::Kept)
}

/// [`parse`], keeping of the overrides what `kept` says.
pub fn parse_keeping<'a>(sources: &[Source<'a>], kept: Overrides) -> Result<Policy, Vec<Diagnostic>> {
    let mut d = Diags {
        files: sources,
        paths: sources.iter().map(|s| Arc::from(s.path)).collect(),
        lines: sources.iter().map(|_| Lines::default()).collect(),
        out: Vec::new(),
    };
    let mut merged: Entries<'a> = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let file = i as u32;
        if let Some(nul) = memchr::memchr(0, src.text.as_bytes()) {
            let at = Loc::new(file, nul);
            d.error(
                &at,
                "the file contains a NUL byte",
                Some("a policy is plain UTF-8 text".into()),
            );
            continue;
        }
        match tree::document(src.text, file) {
            Ok(document) => {
                d.lines[i].headers = document.headers;
                merge(&mut merged, document.root);
            }
            Err(errors) => {
                for (at, msg) in errors {
                    d.error(&at, format!("invalid TOML: {msg}"), None);
                }
            }
        }
    }
    if !d.out.is_empty() {
        return Err(d.out);
    }
    let policy = sections::build(&mut d, &merged, sources, kept);
    if d.out.is_empty() { Ok(policy) } else { Err(d.out) }
}

fn merge<'a>(into: &mut Entries<'a>, from: Entries<'a>) {
    for (key, node) in from {
        match into.iter_mut().find(|(k, _)| *k == key) {
            None => into.push((key, node)),
            Some((_, old)) => match (&mut old.kind, node.kind) {
                (Kind::Table(o), Kind::Table(n)) => merge(o, n),
                (Kind::Tables(o), Kind::Tables(n)) if key == "override" => o.append(*n),
                (o @ (Kind::Array(_) | Kind::Tables(_)), n) if key == "override" && n.items().is_some() => {
                    let mut items = o.items().unwrap_or_default().into_owned();
                    items.extend(n.items().unwrap_or_default().iter().cloned());
                    *o = Kind::Array(items);
                }
                (_, kind) => {
                    *old = Node {
                        key: node.key,
                        at: node.at,
                        kind,
                    }
                }
            },
        }
    }
}

/// How an integer written without quotes becomes a value.
type IntParser<T> = dyn Fn(&str) -> Result<T, String>;

const LIMIT_KEYS: [&str; 11] = [
    "memory_high",
    "memory_max",
    "memory_swap_max",
    "tasks_max",
    "cpu_weight",
    "io_weight",
    "cpu_quota",
    "allowed_cpus",
    "io_read_bandwidth_max",
    "io_write_bandwidth_max",
    "io_devices",
];

/// The limit keys that cap a user (weights only share, they never cap).
const CAP_KEYS: [&str; 8] = [
    "memory_high",
    "memory_max",
    "memory_swap_max",
    "tasks_max",
    "cpu_quota",
    "allowed_cpus",
    "io_read_bandwidth_max",
    "io_write_bandwidth_max",
];

/// True when `limits` holds back a user somewhere: a finite memory, task or CPU cap.
fn caps_something(limits: &Limits) -> bool {
    let memory = |s: Option<Size>| s.is_some_and(|s| s != Size::Infinity);
    memory(limits.memory_high)
        || memory(limits.memory_max)
        || memory(limits.memory_swap_max)
        || limits.tasks_max.is_some_and(|t| t != Tasks::Infinity)
        || limits.cpu_quota.is_some_and(|q| q != CpuQuota::Infinity)
        || limits.allowed_cpus.as_ref().is_some_and(|c| !c.is_all())
        || limits
            .io_read_bandwidth_max
            .as_ref()
            .is_some_and(|b| b.bytes_per_sec.is_some())
        || limits
            .io_write_bandwidth_max
            .as_ref()
            .is_some_and(|b| b.bytes_per_sec.is_some())
}

/// A table being read: checks for unknown keys up front, then hands out typed values.
struct Reader<'n> {
    name: Cow<'n, str>,
    entries: &'n [(Cow<'n, str>, Node<'n>)],
    /// `key_bit` of every key present: most keys asked for are absent (an override asks for
    /// all fourteen, sets two or three), and a clear bit answers without a scan.
    present: u64,
}

/// `key_bit` of every limit key but the two memory caps.
const RARE_LIMIT_BITS: u64 = {
    let mut bits = 0;
    let mut i = 2;
    while i < LIMIT_KEYS.len() {
        bits |= key_bit(LIMIT_KEYS[i]);
        i += 1;
    }
    bits
};

/// One of 64 bits for a key, from its length and end bytes (distinct for the keys a section
/// knows, not required to be).
const fn key_bit(key: &str) -> u64 {
    let bytes = key.as_bytes();
    let (first, last) = match bytes {
        [] => (0, 0),
        [first, .., last] => (*first, *last),
        [only] => (*only, *only),
    };
    let mix = bytes.len() ^ ((first as usize) << 1) ^ ((last as usize) << 3);
    1 << (mix % 64)
}

impl<'n> Reader<'n> {
    fn new(
        d: &mut Diags,
        name: impl Into<Cow<'n, str>>,
        entries: &'n [(Cow<'n, str>, Node<'n>)],
        known: &[&str],
    ) -> Self {
        let name = name.into();
        let mut present = 0;
        for (key, node) in entries {
            present |= key_bit(key);
            if !known.contains(&key.as_ref()) {
                let help = match closest(key, known) {
                    Some(k) => format!("did you mean `{k}`? known keys: {}", known.join(", ")),
                    None => format!("known keys: {}", known.join(", ")),
                };
                d.error(&node.key, format!("unknown key `{key}` in {name}"), Some(help));
            }
        }
        Reader {
            name,
            entries,
            present,
        }
    }

    fn node(&self, key: &str) -> Option<&'n Node<'n>> {
        if self.present & key_bit(key) == 0 {
            return None;
        }
        self.entries.iter().find(|(k, _)| k == key).map(|(_, n)| n)
    }

    fn wrong_type(&self, d: &mut Diags, key: &str, node: &Node, want: &str) {
        d.error(
            &node.at,
            format!(
                "`{key}` in {} must be {want}, not {}",
                self.name,
                node.kind.type_name()
            ),
            None,
        );
    }

    fn text(&self, d: &mut Diags, key: &str) -> Option<(&'n str, &'n Loc)> {
        let node = self.node(key)?;
        match &node.kind {
            Kind::Str(s) => Some((s, &node.at)),
            _ => {
                self.wrong_type(d, key, node, "a string");
                None
            }
        }
    }

    /// A user or group name, if written and valid: an invalid one is an error.
    fn account_name(&self, d: &mut Diags, key: &str) -> Option<&'n str> {
        let (name, at) = self.text(d, key)?;
        match check_account_name(name) {
            Ok(()) => Some(name),
            Err(msg) => {
                d.error(at, msg, None);
                None
            }
        }
    }

    fn bool(&self, d: &mut Diags, key: &str) -> Option<bool> {
        let node = self.node(key)?;
        match node.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.wrong_type(d, key, node, "`true` or `false`");
                None
            }
        }
    }

    fn int(&self, d: &mut Diags, key: &str, min: u64, max: u64) -> Option<u64> {
        let node = self.node(key)?;
        match &node.kind {
            Kind::Int(raw, radix) => {
                let v = i128::from_str_radix(raw, *radix).ok();
                match v {
                    Some(v) if v >= min as i128 && v <= max as i128 => Some(v as u64),
                    _ => {
                        d.error(
                            &node.at,
                            format!("`{key}` in {} is {raw}, out of range", self.name),
                            Some(format!("use a whole number from {min} to {max}")),
                        );
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(d, key, node, &format!("a whole number from {min} to {max}"));
                None
            }
        }
    }

    /// A string value parsed by `parse`, or an integer passed through `from_int`.
    fn typed<T>(
        &self,
        d: &mut Diags,
        key: &str,
        want: &str,
        parse: impl Fn(&str) -> Result<T, String>,
        from_int: Option<&IntParser<T>>,
    ) -> Option<(T, &'n Loc)> {
        let node = self.node(key)?;
        let result = match (&node.kind, from_int) {
            (Kind::Str(s), _) => parse(s),
            (Kind::Int(raw, 10), Some(f)) => f(raw),
            _ => {
                self.wrong_type(d, key, node, want);
                return None;
            }
        };
        match result {
            Ok(v) => Some((v, &node.at)),
            Err(msg) => {
                d.error(&node.at, format!("`{key}` in {}: {msg}", self.name), None);
                None
            }
        }
    }

    fn size(&self, d: &mut Diags, key: &str) -> Option<(Size, &'n Loc)> {
        let bytes = |raw: &str| -> Result<Size, String> {
            if raw.starts_with('-') {
                return Err(format!("`{raw}` is negative; a size is 0 or more"));
            }
            raw.parse::<u64>()
                .map(Size::Bytes)
                .map_err(|_| format!("`{raw}` bytes is larger than any memory"))
        };
        self.typed(
            d,
            key,
            "a size such as \"12G\", \"75%\", \"infinity\" or bytes",
            Size::parse,
            Some(&bytes),
        )
    }

    fn percent(&self, d: &mut Diags, key: &str) -> Option<Permyriad> {
        self.typed(d, key, "a percentage such as \"60%\"", Permyriad::parse, None)
            .map(|v| v.0)
    }

    fn span(&self, d: &mut Diags, key: &str) -> Option<(Span, &'n Loc)> {
        let secs = |raw: &str| Span::parse(raw);
        self.typed(d, key, "a time span such as \"20s\"", Span::parse, Some(&secs))
    }

    fn tasks(&self, d: &mut Diags, key: &str) -> Option<Tasks> {
        self.typed(
            d,
            key,
            "a task count, \"33%\" or \"infinity\"",
            Tasks::parse,
            Some(&Tasks::parse),
        )
        .map(|v| v.0)
    }

    fn cpu_quota(&self, d: &mut Diags, key: &str) -> Option<CpuQuota> {
        self.typed(
            d,
            key,
            "a share of one CPU such as \"400%\" or \"infinity\"",
            CpuQuota::parse,
            None,
        )
        .map(|v| v.0)
    }

    fn cpu_set(&self, d: &mut Diags, key: &str) -> Option<CpuSet> {
        self.typed(
            d,
            key,
            "CPU numbers such as \"0-3\" or \"all\"",
            CpuSet::parse,
            None,
        )
        .map(|v| v.0)
    }

    fn io_bandwidth(&self, d: &mut Diags, key: &str, devices: &[String]) -> Option<IoBandwidth> {
        self.typed(
            d,
            key,
            "bytes per second such as \"20M\" or \"infinity\"",
            IoBandwidth::parse_rate,
            None,
        )
        .map(|(bytes_per_sec, _)| IoBandwidth {
            bytes_per_sec,
            devices: devices.to_vec(),
        })
    }

    /// `io_devices`: absolute paths, duplicates dropped; the default list when unset.
    fn io_devices(&self, d: &mut Diags) -> Vec<String> {
        let default = || DEFAULT_IO_DEVICES.iter().map(|p| p.to_string()).collect();
        let Some(node) = self.node("io_devices") else {
            return default();
        };
        let Some(items) = node.kind.items() else {
            self.wrong_type(
                d,
                "io_devices",
                node,
                "an array of paths such as [\"/\", \"/home\"]",
            );
            return default();
        };
        let mut out: Vec<String> = Vec::new();
        for item in items.iter() {
            match &item.kind {
                Kind::Str(s) => match check_io_device(s) {
                    Ok(()) if !out.iter().any(|p| p == s) => out.push(s.to_string()),
                    Ok(()) => {}
                    Err(msg) => d.error(&item.at, format!("`io_devices` in {}: {msg}", self.name), None),
                },
                other => d.error(
                    &item.at,
                    format!("entries of `io_devices` are paths, not {}", other.type_name()),
                    None,
                ),
            }
        }
        if items.is_empty() {
            d.error(
                &node.at,
                format!("`io_devices` in {} is empty", self.name),
                Some("name the paths whose disks the IO caps apply to, or leave io_devices out for /, /home, /var and /tmp".into()),
            );
            return default();
        }
        out
    }

    fn weight(&self, d: &mut Diags, key: &str) -> Option<u16> {
        self.int(d, key, 1, 10_000).map(|v| v as u16)
    }

    fn table(&self, d: &mut Diags, key: &str) -> Option<&'n [(Cow<'n, str>, Node<'n>)]> {
        let node = self.node(key)?;
        match &node.kind {
            Kind::Table(t) => Some(t),
            _ => {
                d.error(
                    &node.at,
                    format!(
                        "`{key}` must be a table (`[{key}]`), not {}",
                        node.kind.type_name()
                    ),
                    None,
                );
                None
            }
        }
    }

    fn users(&self, d: &mut Diags, key: &str) -> Option<Vec<UserRef>> {
        let node = self.node(key)?;
        let Some(items) = node.kind.items() else {
            self.wrong_type(d, key, node, "an array of user names or UIDs");
            return None;
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match &item.kind {
                Kind::Str(s) => match check_account_name(s) {
                    Ok(()) => out.push(UserRef::Name(s.to_string())),
                    Err(msg) => d.error(&item.at, msg, None),
                },
                Kind::Int(raw, radix) => match u32::from_str_radix(raw, *radix) {
                    Ok(uid) => out.push(UserRef::Uid(uid)),
                    Err(_) => d.error(&item.at, format!("`{raw}` is not a UID (0 to 4294967295)"), None),
                },
                other => d.error(
                    &item.at,
                    format!(
                        "entries of `{key}` are user names or UIDs, not {}",
                        other.type_name()
                    ),
                    None,
                ),
            }
        }
        Some(out)
    }

    fn names(&self, d: &mut Diags, key: &str) -> Option<Vec<String>> {
        let node = self.node(key)?;
        let Some(items) = node.kind.items() else {
            self.wrong_type(d, key, node, "an array of group names");
            return None;
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match &item.kind {
                Kind::Str(s) => match check_account_name(s) {
                    Ok(()) => out.push(s.to_string()),
                    Err(msg) => d.error(&item.at, msg, None),
                },
                other => d.error(
                    &item.at,
                    format!("group names are strings, not {}", other.type_name()),
                    None,
                ),
            }
        }
        Some(out)
    }

    fn limits(&self, d: &mut Diags) -> Limits {
        let high = self.size(d, "memory_high");
        let max = self.size(d, "memory_max");
        if let (Some((h, at)), Some((m, _))) = (&high, &max)
            && exceeds(*h, *m)
        {
            d.error(
                at,
                format!("memory_high ({h}) is above memory_max ({m}) in {}", self.name),
                Some("memory_high is the throttling point and must be at or below memory_max".into()),
            );
        }
        // Most overrides set memory only: when no other limit's bit is present, every other
        // limit is unset, without asking for each.
        if self.present & RARE_LIMIT_BITS == 0 {
            return Limits {
                memory_high: high.map(|v| v.0),
                memory_max: max.map(|v| v.0),
                ..Limits::default()
            };
        }
        // The device list matters only under a bandwidth cap: 10,000 overrides have none.
        let devices = if ["io_devices", "io_read_bandwidth_max", "io_write_bandwidth_max"]
            .iter()
            .any(|k| self.node(k).is_some())
        {
            self.io_devices(d)
        } else {
            Vec::new()
        };
        Limits {
            memory_high: high.map(|v| v.0),
            memory_max: max.map(|v| v.0),
            memory_swap_max: self.size(d, "memory_swap_max").map(|v| v.0),
            tasks_max: self.tasks(d, "tasks_max"),
            cpu_weight: self.weight(d, "cpu_weight"),
            io_weight: self.weight(d, "io_weight"),
            cpu_quota: self.cpu_quota(d, "cpu_quota"),
            allowed_cpus: self.cpu_set(d, "allowed_cpus"),
            io_read_bandwidth_max: self.io_bandwidth(d, "io_read_bandwidth_max", &devices),
            io_write_bandwidth_max: self.io_bandwidth(d, "io_write_bandwidth_max", &devices),
        }
    }

    fn policing(&self, d: &mut Diags) -> Policing {
        Policing {
            enabled: self.bool(d, "police").unwrap_or(false),
            pressure_limit: self.percent(d, "pressure_limit"),
        }
    }
}

/// True when `high` is certainly above `max` (sizes of different kinds are compared at check time, with RAM).
pub(crate) fn exceeds(high: Size, max: Size) -> bool {
    match (high, max) {
        (Size::Bytes(h), Size::Bytes(m)) => h > m,
        (Size::Permyriad(h), Size::Permyriad(m)) => h > m,
        (Size::Infinity, Size::Bytes(_) | Size::Permyriad(_)) => true,
        _ => false,
    }
}

/// The bytes of a user or group name, as a table: one lookup a byte, for 10,000 overrides.
static NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.' | b'$' | b'@');
        b += 1;
    }
    table
};

fn check_account_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 256
        && !s.starts_with('-')
        // By bytes: every allowed character is ASCII, and no byte of another one is.
        && s.bytes().all(|b| NAME_BYTES[b as usize]);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid user or group name; names are letters, digits, `_`, `-`, `.`, `@` (no `/`, spaces or control characters)",
            s.escape_debug()
        ))
    }
}

fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (levenshtein(key, k), *k))
        .filter(|(dist, k)| *dist <= 2.max(k.len() / 4))
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().take(64).enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn with_keys<'k>(extra: &[&'k str]) -> Vec<&'k str> {
    LIMIT_KEYS.iter().copied().chain(extra.iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(files: &[(&str, &str)]) -> Result<Policy, Vec<String>> {
        let sources: Vec<Source> = files.iter().map(|&(path, text)| Source { path, text }).collect();
        parse(&sources).map_err(|e| e.iter().map(Diagnostic::to_string).collect())
    }

    #[test]
    fn overrides_as_tables_and_as_an_inline_array_accumulate_in_file_order() {
        let caps = "[users]\nmemory_max = \"2G\"\n";
        let main = format!(
            "{caps}[[override]]\nuser = \"a\"\nmemory_max = \"1G\"\n[[override]]\nuid = 7\nmemory_max = \"1G\"\n"
        );
        let inline = "override = [{ user = \"b\", memory_max = \"1G\" }]\n";
        let tables = "\n[[override]]\ngroup = \"c\"\nmemory_max = \"1G\"\n";
        let p = policy(&[("p.toml", &main), ("d/1.toml", inline), ("d/2.toml", tables)]).unwrap();
        let got: Vec<String> = p
            .overrides
            .iter()
            .map(|o| format!("{} {}", o.selector, o.origin))
            .collect();
        assert_eq!(
            got,
            [
                "user a p.toml:3:1",
                "uid 7 p.toml:6:1",
                "user b d/1.toml:1:13",
                "group c d/2.toml:2:1"
            ]
        );
        let p = policy(&[("d/1.toml", &format!("{inline}{caps}")), ("p.toml", &main)]).unwrap();
        assert_eq!(p.overrides.len(), 3);
    }

    #[test]
    fn an_array_of_tables_where_names_are_due_has_each_table_refused() {
        let text =
            "[users]\nmemory_max = \"2G\"\n[[login.never_deny_users]]\nx = 1\n[[login.never_deny_users]]\n";
        let errors = policy(&[("p.toml", text)]).unwrap_err();
        let refused = "entries of `never_deny_users` are user names or UIDs, not a table";
        assert_eq!(
            errors,
            [format!("p.toml:3:1: {refused}"), format!("p.toml:5:1: {refused}")]
        );
        let text = "[users]\nmemory_max = \"2G\"\n[[override]]\nuser = \"a\"\n[[override]]\nuser = \"a\"\nmemory_max = \"1G\"\n";
        let errors = policy(&[("p.toml", text)]).unwrap_err();
        assert!(
            errors[0].starts_with("p.toml:3:1: the override for user a sets no limit"),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("p.toml:5:1: a second override for user a"),
            "{errors:?}"
        );
    }

    #[test]
    fn overrides_only_checked_give_the_same_errors_and_the_same_policy_without_them() {
        let base = "[users]\nmemory_max = \"2G\"\n";
        let valid = format!(
            "{base}[[override]]\nuser = \"a\"\nmemory_max = \"1G\"\n[[override]]\ngroup = \"g\"\ntasks_max = 9\n"
        );
        let invalid = [
            format!("{valid}[[override]]\nuser = \"a\"\nmemory_max = \"1G\"\n"),
            format!("{valid}[[override]]\nuid = 4\n"),
            format!("{valid}[[override]]\nuser = \"b\"\nuid = 5\nmemory_max = \"1G\"\n"),
            format!("{valid}[[override]]\nuser = \"c\"\nmemory_hgh = \"1G\"\n"),
            format!("{base}override = [1]\n"),
        ];
        let parse_as = |text: &str, kept| {
            parse_keeping(&[Source { path: "p.toml", text }], kept)
                .map_err(|e| e.iter().map(Diagnostic::to_string).collect::<Vec<_>>())
        };
        let kept = parse_as(&valid, Overrides::Kept).expect("valid");
        assert_eq!(kept.overrides.len(), 2);
        let checked = parse_as(&valid, Overrides::Checked).expect("valid");
        assert_eq!(
            checked,
            Policy {
                overrides: Vec::new(),
                ..kept
            }
        );
        for text in &invalid {
            let errors = parse_as(text, Overrides::Kept).expect_err(text);
            assert_eq!(parse_as(text, Overrides::Checked), Err(errors), "{text}");
        }
    }
}
