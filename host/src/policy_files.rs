//! The policy files on disk: the main file plus `policy.d/*.toml`, each opened once, checked
//! on the open file (owner, mode, size) and read with a bound.

use crate::files::{open_nonblocking, read_bounded};
use crate::root::{Root, paths};
use contain_policy::{Overrides, Policy, Source, builtin_default, parse_keeping};
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A policy larger than this is refused: real ones are a few KiB.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
pub(crate) fn dropin_dir(main: &Path) -> PathBuf {
    main.with_file_name("policy.d")
}

/// A drop-in the policy reads: `*.toml`, not hidden, not an editor's lock or backup
/// (`.#x.toml`, `#x.toml#`, `x.toml~`).
fn is_dropin_name(name: &str) -> bool {
    name.ends_with(".toml") && !name.starts_with(['.', '#'])
}

/// Reads the main file and its drop-ins in merge order. `Ok(None)` when the main file is absent.
pub fn read_sources(main: &Path) -> Result<Option<Vec<(String, String)>>, Vec<String>> {
    read_sources_shown(main, &|p| p.display().to_string())
}

/// [`read_sources`], naming each file with `shown` (the host's path under a test root).
fn read_sources_shown(
    main: &Path,
    shown: &dyn Fn(&Path) -> String,
) -> Result<Option<Vec<(String, String)>>, Vec<String>> {
    if let Err(e) = fs::symlink_metadata(main)
        && e.kind() == std::io::ErrorKind::NotFound
    {
        return Ok(None);
    }
    let mut files = vec![main.to_path_buf()];
    if let Ok(dir) = fs::read_dir(dropin_dir(main)) {
        let mut extra: Vec<PathBuf> = dir
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_str().is_some_and(is_dropin_name))
            .map(|e| e.path())
            .collect();
        extra.sort();
        files.extend(extra);
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        match read_checked(&path) {
            Ok(text) => out.push((shown(&path), text)),
            Err(e) => errors.push(format!("{}: {e}", shown(&path))),
        }
    }
    if errors.is_empty() {
        Ok(Some(out))
    } else {
        Err(errors)
    }
}

/// Reads one policy file, refusing what another user could have written. The checks are made on
/// the file that is read (fstat of the open descriptor), and the read is bounded: a symlink to a
/// FIFO or to an endless procfs file can neither block boot nor a login.
fn read_checked(path: &Path) -> Result<String, String> {
    let file = open_nonblocking(path, true).map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let euid = nix::unistd::geteuid().as_raw();
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
    let bytes = read_bounded(file, MAX_POLICY_BYTES).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => format!("over the {MAX_POLICY_BYTES} byte limit for a policy"),
        _ => format!("cannot read: {e}"),
    })?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// The policy to enforce: the admin's when valid, else the shipped default. Never fails.
pub fn load(main: &Path) -> Loaded {
    load_shown(main, &|p| p.display().to_string(), Overrides::Kept)
}

/// [`load`] for the host's policy file under `root`, named as the admin knows it, for rendering
/// units: the overrides are checked, not kept.
pub fn load_root_for_units(root: &Root) -> Loaded {
    load_shown(
        &root.path(paths::POLICY),
        &|p| root.display(p),
        Overrides::Checked,
    )
}

fn load_shown(main: &Path, shown: &dyn Fn(&Path) -> String, kept: Overrides) -> Loaded {
    let fallback = |errors| Loaded {
        policy: builtin_default(),
        outcome: Outcome::Fallback,
        errors,
    };
    let sources = match read_sources_shown(main, shown) {
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
    match parse_keeping(&refs, kept) {
        Ok(policy) => Loaded {
            policy,
            outcome: Outcome::Applied,
            errors: Vec::new(),
        },
        Err(diags) => fallback(diags.iter().map(|d| d.to_string()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    const VALID: &str = "[users]\nmemory_max = \"50%\"\n";

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tmp");
        let main = dir.path().join("policy.toml");
        fs::write(&main, VALID).expect("write");
        fs::create_dir(dir.path().join("policy.d")).expect("mkdir");
        (dir, main)
    }

    #[test]
    fn editor_leftovers_and_hidden_files_are_not_read() {
        let (dir, main) = tree();
        let d = dir.path().join("policy.d");
        // Emacs' lock: a dangling symlink. Before, it made the whole policy fall back.
        symlink("root@host.1234:1700000000", d.join(".#site.toml")).expect("link");
        fs::write(d.join(".hidden.toml"), "not = toml = at all").expect("write");
        fs::write(d.join("#site.toml#"), "broken").expect("write");
        fs::write(d.join("site.toml~"), "broken").expect("write");
        fs::write(d.join("site.toml"), "[watchdog]\ngrace = \"15s\"\n").expect("write");
        let loaded = load(&main);
        assert_eq!(loaded.outcome, Outcome::Applied, "{:?}", loaded.errors);
        assert_eq!(loaded.policy.sources.len(), 2, "{:?}", loaded.policy.sources);
    }

    #[test]
    fn a_fifo_or_endless_file_in_place_of_the_policy_is_refused_without_blocking() {
        let (dir, main) = tree();
        fs::remove_file(&main).expect("rm");
        nix::unistd::mkfifo(
            &main,
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .expect("mkfifo");
        let loaded = load(&main);
        assert_eq!(loaded.outcome, Outcome::Fallback);
        assert!(
            loaded.errors[0].contains("not a regular file"),
            "{:?}",
            loaded.errors
        );
        // A symlink to a file that never ends.
        fs::remove_file(&main).expect("rm");
        let endless = dir.path().join("endless");
        symlink("/dev/zero", &endless).expect("link");
        symlink(&endless, &main).expect("link");
        let loaded = load(&main);
        assert_eq!(loaded.outcome, Outcome::Fallback);
    }

    #[test]
    fn oversized_writable_and_absent_policies() {
        let (dir, main) = tree();
        fs::write(&main, vec![b'#'; MAX_POLICY_BYTES as usize + 10]).expect("write");
        let loaded = load(&main);
        assert_eq!(loaded.outcome, Outcome::Fallback);
        assert!(loaded.errors[0].contains("byte limit"), "{:?}", loaded.errors);
        fs::write(&main, VALID).expect("write");
        fs::set_permissions(&main, fs::Permissions::from_mode(0o666)).expect("chmod");
        let loaded = load(&main);
        assert!(loaded.errors[0].contains("chmod go-w"), "{:?}", loaded.errors);
        assert_eq!(load(&dir.path().join("none.toml")).outcome, Outcome::Default);
    }
}
