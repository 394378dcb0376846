//! Writing the rendered units, the oomd drop-in and the status file, each atomically.

use crate::load::{Loaded, Outcome};
use contain_policy::{LocalUser, OOMD_DROPIN, render};
use serde::Serialize;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The generator's last run, as `/run/contain/generator.json`.
#[derive(Debug, Serialize)]
pub struct Status {
    pub outcome: Outcome,
    pub sources: Vec<String>,
    pub errors: Vec<String>,
    pub units: Vec<String>,
    pub oomd_conf: Option<String>,
    pub oomd_wants: Option<String>,
}

/// Writes `contents` to `path` through a temporary file and a rename: readers never see half a file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.contain-tmp"));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(contents)?;
        // No fsync: the outputs live on tmpfs (/run) and are rewritten at every boot.
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Renders `loaded` and writes it: units under `unit_dir`, the oomd drop-in under `oomd_dir`
/// (when given), and a `.wants` link for systemd-oomd when `oomd_unit` exists.
/// Returns the status to record and the first write error; every error is in `errors` too.
pub fn generate(
    loaded: &Loaded,
    users: &[LocalUser],
    unit_dir: &Path,
    oomd_dir: Option<&Path>,
    oomd_unit: Option<&Path>,
) -> (Status, Option<std::io::Error>) {
    let rendered = render(&loaded.policy, users);
    let mut status = Status {
        outcome: loaded.outcome,
        sources: loaded.policy.sources.clone(),
        errors: loaded.errors.clone(),
        units: Vec::new(),
        oomd_conf: None,
        oomd_wants: None,
    };
    let mut first_error = None;
    let mut note = |status: &mut Status, what: &Path, e: std::io::Error| {
        status
            .errors
            .push(format!("{}: cannot write: {e}", what.display()));
        first_error.get_or_insert(e);
    };
    for (rel, text) in &rendered.units {
        let path = unit_dir.join(rel);
        match write_atomic(&path, text.as_bytes()) {
            Ok(()) => status.units.push(rel.clone()),
            Err(e) => note(&mut status, &path, e),
        }
    }
    if let Some(dir) = oomd_dir {
        let path = dir.join(OOMD_DROPIN);
        match write_atomic(&path, rendered.oomd_conf.as_bytes()) {
            Ok(()) => status.oomd_conf = Some(path.display().to_string()),
            Err(e) => note(&mut status, &path, e),
        }
    }
    if let Some(target) = oomd_unit.filter(|u| u.exists()) {
        let link: PathBuf = unit_dir.join("multi-user.target.wants/systemd-oomd.service");
        let made = fs::create_dir_all(link.parent().unwrap_or(unit_dir)).and_then(|_| {
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(target, &link)
        });
        match made {
            Ok(()) => status.oomd_wants = Some(link.display().to_string()),
            Err(e) => note(&mut status, &link, e),
        }
    }
    (status, first_error)
}
