//! `containctl validate FILE`: lints one policy file without looking at the host, so config
//! management can check a policy before writing it (Ansible's `validate: containctl validate %s`
//! hands over a temporary file with any name and owner).

use crate::emit;
use contain_policy::{FailureAction, Policy, Source, parse};
use serde::Serialize;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// As the generator: a policy is a few KiB, and a bigger file is refused.
const MAX_BYTES: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Valid, nothing to say.
    Valid,
    /// Valid, with settings worth a second look.
    Problems,
    /// The generator would refuse it and apply the built-in default.
    Unusable,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub file: String,
    pub verdict: Verdict,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn exit_code(&self) -> u8 {
        match self.verdict {
            Verdict::Valid => 0,
            Verdict::Problems => 1,
            Verdict::Unusable => 2,
        }
    }
}

pub fn run(path: &Path) -> Report {
    let file = path.display().to_string();
    let (errors, warnings) = match read(path) {
        Err(e) => (vec![format!("{file}: {e}")], Vec::new()),
        Ok(text) => match parse(&[Source {
            path: &file,
            text: &text,
        }]) {
            Ok(policy) => (Vec::new(), warnings(&policy)),
            Err(diags) => (diags.iter().map(|d| d.to_string()).collect(), Vec::new()),
        },
    };
    let verdict = if !errors.is_empty() {
        Verdict::Unusable
    } else if !warnings.is_empty() {
        Verdict::Problems
    } else {
        Verdict::Valid
    };
    Report {
        file,
        verdict,
        errors,
        warnings,
    }
}

/// Reads at most `MAX_BYTES` from one open file, refusing anything but a regular file
/// (a FIFO or a device would block or never end).
fn read(path: &Path) -> Result<String, String> {
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer.
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let meta = f.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    f.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!("over the {MAX_BYTES} byte limit for a policy"));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Valid settings that weaken containment on any host.
fn warnings(p: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    if !p.users.caps {
        out.push("[users] caps = false: users without an override run uncapped".into());
    }
    if !p.watchdog.enabled {
        out.push(
            "[watchdog] enabled = false: a runaway throttled at memory_high with no swap is never ended"
                .into(),
        );
    }
    if p.login.on_failure == FailureAction::Allow {
        out.push(
            "[login] on_failure = \"allow\": a login whose slice cannot be capped gets in uncapped".into(),
        );
    }
    out
}

pub fn print(r: &Report) -> String {
    let mut out = String::new();
    for e in &r.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    for w in &r.warnings {
        out.push_str(&format!("warning: {}: {w}\n", r.file));
    }
    match r.verdict {
        Verdict::Valid => out.push_str(&format!("{}: valid\n", r.file)),
        Verdict::Problems => out.push_str(&format!("{}: valid, with warnings\n", r.file)),
        Verdict::Unusable => out.push_str(&format!(
            "{}: invalid: the generator would apply the built-in default policy instead\n",
            r.file
        )),
    }
    out
}

/// `containctl validate FILE`.
pub fn command(file: &Path, json: bool) -> u8 {
    let report = run(file);
    emit(json, &report, print);
    report.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn validate(text: &str) -> Report {
        let dir = tempfile::tempdir().unwrap();
        // As Ansible names its temporary copy: no .toml suffix.
        let path = dir.path().join("tmpk3x9_q2b");
        fs::write(&path, text).unwrap();
        run(&path)
    }

    #[test]
    fn exit_codes_say_valid_problems_or_unusable() {
        let valid = validate(contain_policy::DEFAULT_POLICY);
        assert_eq!(
            (valid.verdict, valid.exit_code()),
            (Verdict::Valid, 0),
            "{valid:?}"
        );

        let warned = validate("[users]\nmemory_max = \"2G\"\n[login]\non_failure = \"allow\"\n");
        assert_eq!(warned.exit_code(), 1, "{warned:?}");
        assert!(warned.warnings[0].contains("on_failure"));

        let broken = validate("[users]\nmemory_max = \"banana\"\n");
        assert_eq!(broken.exit_code(), 2);
        assert!(
            broken.errors[0].contains("tmpk3x9_q2b:2:14: `memory_max` in [users]"),
            "{broken:?}"
        );
        assert!(print(&broken).contains("built-in default"));

        let empty = validate("");
        assert_eq!(empty.exit_code(), 2);
        assert!(
            empty.errors[0].contains(":1:1: the policy is empty, so it caps no user"),
            "{empty:?}"
        );

        let uncapped = validate("[users]\ncaps = false\n");
        assert_eq!(uncapped.exit_code(), 1, "{uncapped:?}");
    }

    #[test]
    fn unreadable_or_special_files_are_unusable_without_blocking() {
        let missing = run(Path::new("/nonexistent/policy"));
        assert_eq!(missing.exit_code(), 2);
        let dir = run(Path::new("/"));
        assert_eq!(dir.errors, ["/: not a regular file"]);
        let binary = validate("[users]\nmemory_max = \"1G\"\n\u{0}");
        assert_eq!(binary.exit_code(), 2);
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert_eq!(
            run(&fifo).errors,
            [format!("{}: not a regular file", fifo.display())]
        );
    }
}
