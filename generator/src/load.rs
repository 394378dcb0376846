//! The policy files on disk: the main file plus `policy.d/*.toml`, checked for safe ownership.

use contain_policy::{Policy, Source, builtin_default, parse};
use serde::Serialize;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A policy larger than this is refused: real ones are a few KiB.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The admin's policy, valid.
    Applied,
    /// No policy file: the shipped default.
    Default,
    /// The admin's policy is invalid or unsafe: the shipped default instead, caps stay on.
    Fallback,
}

/// The policy to enforce, and why it is that one.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub policy: Policy,
    pub outcome: Outcome,
    /// Every problem found, as `file:line:column: message` lines.
    pub errors: Vec<String>,
}

/// The drop-in directory beside a policy file: `/etc/contain/policy.toml` → `/etc/contain/policy.d`.
fn dropin_dir(main: &Path) -> PathBuf {
    main.with_file_name("policy.d")
}

/// Reads the main file and its drop-ins in merge order. `Ok(None)` when the main file is absent.
pub fn read_sources(main: &Path) -> Result<Option<Vec<(String, String)>>, Vec<String>> {
    let mut files = vec![main.to_path_buf()];
    match fs::symlink_metadata(main) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    if let Ok(dir) = fs::read_dir(dropin_dir(main)) {
        let mut extra: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        extra.sort();
        files.extend(extra);
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        match read_checked(&path) {
            Ok(text) => out.push((path.display().to_string(), text)),
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    if errors.is_empty() {
        Ok(Some(out))
    } else {
        Err(errors)
    }
}

/// Reads one policy file, refusing what another user could have written.
fn read_checked(path: &Path) -> Result<String, String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(format!(
            "owned by uid {}, not root: anyone who can write the policy can lift the caps",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "mode {:04o} lets group or others write it; run `chmod go-w {}`",
            meta.mode() & 0o7777,
            path.display()
        ));
    }
    if meta.len() > MAX_POLICY_BYTES {
        return Err(format!(
            "{} bytes, over the {} byte limit for a policy",
            meta.len(),
            MAX_POLICY_BYTES
        ));
    }
    let bytes = fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// The policy to enforce: the admin's when valid, else the shipped default. Never fails.
pub fn load(main: &Path) -> Loaded {
    let fallback = |errors| Loaded {
        policy: builtin_default(),
        outcome: Outcome::Fallback,
        errors,
    };
    let sources = match read_sources(main) {
        Ok(None) => {
            return Loaded {
                policy: builtin_default(),
                outcome: Outcome::Default,
                errors: Vec::new(),
            };
        }
        Ok(Some(s)) => s,
        Err(errors) => return fallback(errors),
    };
    let refs: Vec<Source> = sources.iter().map(|(p, t)| Source { path: p, text: t }).collect();
    match parse(&refs) {
        Ok(policy) => Loaded {
            policy,
            outcome: Outcome::Applied,
            errors: Vec::new(),
        },
        Err(diags) => fallback(diags.iter().map(|d| d.to_string()).collect()),
    }
}
