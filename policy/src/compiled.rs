//! The policy compiled for logins: everything but the overrides on one line, then one line per
//! override keyed by what it selects, sorted, so that a login finds its user's overrides in a
//! few probes without reading the others. Pure: the host writes it under /run and holds it
//! against the identity of the policy files it was compiled from.
//!
//! ```text
//! contain-compiled-policy 1
//! identity <one line from the host>
//! overrides <count> <bytes of the override lines>
//! base <the policy without overrides, JSON>
//! <key>\t<position in the policy, 8 digits>\t<override JSON>     (sorted)
//! ```

use crate::model::{Override, Policy, Selector};

const MAGIC: &str = "contain-compiled-policy 1";

/// The key a selector is found by; JSON-quoted, so no name can hold a tab or a newline.
fn key(selector: &Selector) -> String {
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
    match selector {
        Selector::User(n) => format!("u{}", quoted(n)),
        Selector::Uid(u) => format!("i{u}"),
        Selector::Group(g) => format!("g{}", quoted(g)),
    }
}

/// The compiled form of `policy`, for the policy files whose identity is `identity` (one line).
pub fn encode(policy: &Policy, identity: &str) -> String {
    let base = Policy {
        overrides: Vec::new(),
        ..policy.clone()
    };
    let mut lines: Vec<String> = (policy.overrides.iter().enumerate())
        .map(|(at, o)| {
            let json = serde_json::to_string(o).unwrap_or_default();
            format!("{}\t{at:08}\t{json}\n", key(&o.selector))
        })
        .collect();
    lines.sort_unstable();
    let body_len: usize = lines.iter().map(String::len).sum();
    let base = serde_json::to_string(&base).unwrap_or_default();
    let identity = identity.replace('\n', " ");
    let mut out = format!(
        "{MAGIC}\nidentity {identity}\noverrides {} {body_len}\nbase {base}\n",
        lines.len()
    );
    // One allocation for the whole file: a login that compiles 10,000 overrides keeps no more.
    out.reserve_exact(body_len);
    for line in lines {
        out.push_str(&line);
    }
    out
}

/// Whether any part of the policy looks at a user's groups: when none does, a login needs the
/// account's UID and name only.
pub fn reads_groups(policy: &Policy) -> bool {
    !policy.login.never_deny_groups.is_empty()
        || (policy.overrides.iter()).any(|o| matches!(o.selector, Selector::Group(_)))
}

/// A compiled policy's header, checked against the identity it must have; the override lines
/// stay in the caller's bytes, unread until a user's are looked up.
pub struct Compiled {
    base: Policy,
    body: std::ops::Range<usize>,
    groups_read: bool,
}

impl Compiled {
    /// Reads the header of `bytes`; an error when it is not a whole compiled policy for
    /// `identity` (another policy, an older format, cut short, corrupt).
    pub fn decode(bytes: &[u8], identity: &str) -> Result<Compiled, String> {
        let mut rest = bytes;
        let mut line = |what: &str| -> Result<&[u8], String> {
            let end = memchr::memchr(b'\n', rest).ok_or_else(|| format!("no {what} line"))?;
            let text = &rest[..end];
            rest = &rest[end + 1..];
            Ok(text)
        };
        let text = |line: &[u8]| String::from_utf8_lossy(line).into_owned();
        if line("format")? != MAGIC.as_bytes() {
            return Err("another format".into());
        }
        if line("identity")?.strip_prefix(b"identity ") != Some(identity.as_bytes()) {
            return Err("compiled from other policy files".into());
        }
        let counts = text(line("overrides")?);
        let counts = counts.strip_prefix("overrides ").unwrap_or_default();
        let (_, body_len) = counts.split_once(' ').unwrap_or_default();
        let body_len: usize = body_len.parse().map_err(|_| "bad overrides line".to_string())?;
        let base = line("base")?.strip_prefix(b"base ").unwrap_or_default();
        let base: Policy = serde_json::from_slice(base).map_err(|e| format!("base: {e}"))?;
        if rest.len() != body_len || !(rest.is_empty() || rest.ends_with(b"\n")) {
            return Err("cut short or grown".into());
        }
        let groups_read = !base.login.never_deny_groups.is_empty() || has_group_keys(rest);
        Ok(Compiled {
            base,
            body: bytes.len() - rest.len()..bytes.len(),
            groups_read,
        })
    }

    /// See [`reads_groups`].
    pub fn reads_groups(&self) -> bool {
        self.groups_read
    }

    /// Everything but the overrides.
    pub fn base(&self) -> &Policy {
        &self.base
    }

    /// The policy as it applies to one account: the base and the overrides that select it, in
    /// the policy's order; `bytes` are those decoded. It resolves for this account exactly as
    /// the whole policy does.
    pub fn for_user(&self, bytes: &[u8], uid: u32, name: &str, groups: &[&str]) -> Result<Policy, String> {
        let body = bytes.get(self.body.clone()).ok_or("not the bytes decoded")?;
        let mut keys = vec![key(&Selector::User(name.into())), key(&Selector::Uid(uid))];
        keys.extend(groups.iter().map(|g| key(&Selector::Group((*g).into()))));
        let mut found: Vec<(u32, Override)> = Vec::new();
        for k in &keys {
            let mut at = first_at_or_after(body, k.as_bytes());
            while at < body.len() {
                let line = line_at(body, at);
                let Some((line_key, rest)) = split_tab(line) else {
                    return Err("override line without a key".into());
                };
                if line_key != k.as_bytes() {
                    break;
                }
                let (position, json) = split_tab(rest).ok_or("override line without a position")?;
                let position: u32 = (std::str::from_utf8(position).ok())
                    .and_then(|p| p.parse().ok())
                    .ok_or("bad override position")?;
                let o: Override = serde_json::from_slice(json).map_err(|e| format!("override: {e}"))?;
                if !found.iter().any(|(p, _)| *p == position) {
                    found.push((position, o));
                }
                at += line.len() + 1;
            }
        }
        found.sort_by_key(|(p, _)| *p);
        Ok(Policy {
            overrides: found.into_iter().map(|(_, o)| o).collect(),
            ..self.base.clone()
        })
    }
}

fn has_group_keys(body: &[u8]) -> bool {
    body.starts_with(b"g") || memchr::memmem::find(body, b"\ng").is_some()
}

fn split_tab(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let tab = memchr::memchr(b'\t', line)?;
    Some((&line[..tab], &line[tab + 1..]))
}

/// The line starting at `at`, without its newline.
fn line_at(body: &[u8], at: usize) -> &[u8] {
    let end = memchr::memchr(b'\n', &body[at..]).map_or(body.len(), |n| at + n);
    &body[at..end]
}

/// Where the first line at or after byte `pos` starts (`body.len()` past the last).
fn line_start_from(body: &[u8], pos: usize) -> usize {
    if pos == 0 || body.get(pos - 1) == Some(&b'\n') {
        return pos;
    }
    memchr::memchr(b'\n', &body[pos..]).map_or(body.len(), |n| pos + n + 1)
}

/// The start of the first line whose key is `key` or sorts after it: a binary search over
/// byte positions, each probe snapped to the next line.
fn first_at_or_after(body: &[u8], key: &[u8]) -> usize {
    let reached = |pos: usize| {
        let start = line_start_from(body, pos);
        start >= body.len() || split_tab(line_at(body, start)).is_none_or(|(k, _)| k >= key)
    };
    let (mut lo, mut hi) = (0, body.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if reached(mid) { hi = mid } else { lo = mid + 1 }
    }
    line_start_from(body, lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Source, parse};

    fn policy(text: &str) -> Policy {
        parse(&[Source { path: "p.toml", text }]).expect("valid")
    }

    const MIXED: &str = "[users]\nmemory_max = \"2G\"\ncpu_quota = \"150%\"\nallowed_cpus = \"0-1\"\n\
        [login]\nnever_deny_groups = [\"wheel\"]\n\
        [[override]]\nuser = \"bob\"\nmemory_max = \"3G\"\n\
        [[override]]\ngroup = \"hpc\"\nmemory_max = \"8G\"\ntasks_max = 100\n\
        [[override]]\nuid = 1001\nmemory_high = \"1536M\"\n\
        [[override]]\nuser = \"alice\"\nmemory_max = \"75%\"\n\
        [[override]]\ngroup = \"gpu\"\ncpu_weight = 500\n";

    #[test]
    fn a_user_resolves_from_the_compiled_form_as_from_the_whole_policy() {
        let whole = policy(MIXED);
        let text = encode(&whole, "id 1");
        let compiled = Compiled::decode(text.as_bytes(), "id 1").expect("decode");
        assert!(compiled.reads_groups());
        for (uid, name, groups) in [
            (1001, "alice", &["hpc", "gpu"][..]),
            (1002, "bob", &[]),
            (1003, "carol", &["gpu"]),
            (1004, "dave", &["hpc", "wheel"]),
        ] {
            let view = compiled
                .for_user(text.as_bytes(), uid, name, groups)
                .expect("lookup");
            assert_eq!(
                view.resolve(uid, name, groups),
                whole.resolve(uid, name, groups),
                "{name}"
            );
            assert_eq!(
                view.never_deny(uid, name, groups),
                whole.never_deny(uid, name, groups)
            );
            let selected: Vec<_> = (whole.overrides.iter())
                .filter(|o| o.selector.matches(uid, name, groups))
                .cloned()
                .collect();
            assert_eq!(
                view.overrides, selected,
                "{name}: the same overrides in the same order"
            );
            assert_eq!(
                Policy {
                    overrides: Vec::new(),
                    ..view
                },
                Policy {
                    overrides: Vec::new(),
                    ..whole.clone()
                }
            );
        }
    }

    #[test]
    fn another_identity_a_cut_or_a_corrupt_file_is_refused() {
        let text = encode(&policy(MIXED), "dev 1 ino 2");
        assert!(Compiled::decode(text.as_bytes(), "dev 1 ino 3").is_err());
        assert!(Compiled::decode(&text.as_bytes()[..text.len() - 5], "dev 1 ino 2").is_err());
        let mut grown = text.clone();
        grown.push_str("u\"x\"\t00000009\t{}\n");
        assert!(Compiled::decode(grown.as_bytes(), "dev 1 ino 2").is_err());
        let corrupt = text.replacen("\"memory_max\":\"3G\"", "\"memory_max\":\"3Q\"", 1);
        let compiled = Compiled::decode(corrupt.as_bytes(), "dev 1 ino 2").expect("header intact");
        assert!(compiled.for_user(corrupt.as_bytes(), 1002, "bob", &[]).is_err());
        assert!(Compiled::decode(b"", "x").is_err());
        assert!(Compiled::decode(b"contain-compiled-policy 1\nidentity x\n", "x").is_err());
    }

    #[test]
    fn many_overrides_are_found_by_binary_search() {
        let mut text = String::from("[users]\nmemory_max = \"2G\"\n");
        for i in 0..2000 {
            text.push_str(&format!(
                "[[override]]\nuser = \"u{i}\"\nmemory_max = \"{}M\"\n",
                1024 + i
            ));
        }
        let whole = policy(&text);
        assert!(!reads_groups(&whole));
        let encoded = encode(&whole, "x");
        let compiled = Compiled::decode(encoded.as_bytes(), "x").expect("decode");
        assert!(!compiled.reads_groups());
        for i in [0, 1, 9, 10, 999, 1000, 1999] {
            let name = format!("u{i}");
            let view = compiled
                .for_user(encoded.as_bytes(), 30000 + i, &name, &[])
                .expect("lookup");
            assert_eq!(view.overrides.len(), 1, "{name}");
            assert_eq!(
                view.resolve(30000 + i, &name, &[]),
                whole.resolve(30000 + i, &name, &[])
            );
        }
        assert!(
            compiled
                .for_user(encoded.as_bytes(), 1, "u2000", &[])
                .expect("lookup")
                .overrides
                .is_empty()
        );
        assert!(
            compiled
                .for_user(encoded.as_bytes(), 1, "a", &[])
                .expect("lookup")
                .overrides
                .is_empty()
        );
        assert!(
            compiled
                .for_user(encoded.as_bytes(), 1, "zzz", &[])
                .expect("lookup")
                .overrides
                .is_empty()
        );
    }

    /// Every valid policy of the fuzz corpus and the shipped ones: each account it names, and
    /// one it does not, resolves from the compiled form exactly as from the whole policy.
    #[test]
    fn every_valid_corpus_policy_compiles_to_the_same_answers() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut texts: Vec<String> = [
            "packaging/policy.toml",
            "examples/devvm.toml",
            "examples/login-node.toml",
            "tests/vm/policy.toml",
        ]
        .iter()
        .map(|p| std::fs::read_to_string(root.join(p)).expect("shipped policy"))
        .collect();
        for entry in std::fs::read_dir(root.join("fuzz/corpus/policy")).expect("corpus") {
            if let Ok(text) = String::from_utf8(std::fs::read(entry.expect("entry").path()).expect("read")) {
                texts.push(text);
            }
        }
        let mut checked = 0;
        for text in &texts {
            let Ok(whole) = parse(&[Source { path: "p.toml", text }]) else {
                continue;
            };
            let encoded = encode(&whole, "id");
            let compiled = Compiled::decode(encoded.as_bytes(), "id").expect("own encoding decodes");
            assert_eq!(compiled.reads_groups(), reads_groups(&whole), "{text}");
            let without = Policy {
                overrides: Vec::new(),
                ..whole.clone()
            };
            assert_eq!(
                compiled.base(),
                &without,
                "every value reads back as it was: {text}"
            );
            let mut names: Vec<(u32, String)> = vec![(4242, "nobody-named".into())];
            let groups: Vec<&str> = (whole.overrides.iter())
                .filter_map(|o| match &o.selector {
                    Selector::Group(g) => Some(g.as_str()),
                    _ => None,
                })
                .chain(whole.login.never_deny_groups.iter().map(String::as_str))
                .collect();
            for o in &whole.overrides {
                match &o.selector {
                    Selector::User(n) => names.push((5000, n.clone())),
                    Selector::Uid(u) => names.push((*u, "by-uid".into())),
                    Selector::Group(_) => {}
                }
            }
            for (uid, name) in &names {
                for groups in [&groups[..], &[]] {
                    let view = compiled
                        .for_user(encoded.as_bytes(), *uid, name, groups)
                        .expect("lookup");
                    assert_eq!(
                        view.resolve(*uid, name, groups),
                        whole.resolve(*uid, name, groups),
                        "{text}"
                    );
                    assert_eq!(
                        view.never_deny(*uid, name, groups),
                        whole.never_deny(*uid, name, groups)
                    );
                    assert_eq!(view.exemption(*uid, name), whole.exemption(*uid, name));
                }
            }
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} valid policies in the corpus");
    }
}
