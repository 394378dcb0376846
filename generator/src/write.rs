//! Writing the rendered units and the oomd drop-in, each atomically.

use contain_host::{GeneratorStatus as Status, Loaded, write_atomic};
use contain_policy::{LocalUser, OOMD_DROPIN, render};
use std::fs;
use std::path::{Path, PathBuf};

/// Renders `loaded` and writes it: units under `unit_dir`, the oomd drop-in under `oomd_dir`
/// (when given), and a `.wants` link to `oomd_unit` (systemd-oomd's unit, when installed).
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
    if let Some(target) = oomd_unit {
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
