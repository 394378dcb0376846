//! contain-generator: called by systemd as `contain-generator NORMAL_DIR [EARLY_DIR LATE_DIR]`
//! at boot and on every daemon-reload. Writes units from /etc/contain/policy.toml.

use contain_generator::kmsg::{Level, log};
use contain_generator::{OOMD_DIR, Outcome, POLICY_PATH, STATE_DIR, generate, load, write_atomic};
use contain_policy::local_users_where;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

fn main() -> ExitCode {
    let Some(unit_dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: contain-generator NORMAL_DIR [EARLY_DIR LATE_DIR]");
        return ExitCode::from(2);
    };
    let policy_path = env_path("CONTAIN_POLICY", POLICY_PATH);
    let state_dir = env_path("CONTAIN_STATE_DIR", STATE_DIR);
    let oomd_dir = env_path("CONTAIN_OOMD_DIR", OOMD_DIR);
    let etc = env_path("CONTAIN_ETC", "/etc");

    let loaded = load(&policy_path);
    match loaded.outcome {
        Outcome::Applied => log(
            Level::Info,
            &format!("applying {}", loaded.policy.sources.join(", ")),
        ),
        Outcome::Default => log(
            Level::Notice,
            &format!(
                "{} not found: applying the built-in default policy",
                policy_path.display()
            ),
        ),
        Outcome::Fallback => {
            for e in &loaded.errors {
                log(Level::Err, e);
            }
            log(
                Level::Err,
                &format!(
                    "{} is invalid: applying the built-in default policy; caps stay on. Fix it, then `containctl check`",
                    policy_path.display()
                ),
            );
        }
    }

    // No NSS here: exempt accounts in the files get per-UID drop-ins; pam_contain covers the rest.
    // Only those are rendered, so only those are read in full.
    let passwd = std::fs::read_to_string(etc.join("passwd")).unwrap_or_default();
    let users = local_users_where(&passwd, |uid, name| loaded.policy.exemption(uid, name).is_some());
    let oomd_unit = [
        "/usr/lib/systemd/system/systemd-oomd.service",
        "/lib/systemd/system/systemd-oomd.service",
    ]
    .iter()
    .map(Path::new)
    .find(|p| p.exists());

    let (status, write_error) = generate(&loaded, &users, &unit_dir, Some(&oomd_dir), oomd_unit);
    if let Some(e) = &write_error {
        log(Level::Err, &format!("could not write every unit: {e}"));
    }
    let json = serde_json::to_string_pretty(&status).unwrap_or_default() + "\n";
    if let Err(e) = write_atomic(&state_dir.join("generator.json"), json.as_bytes()) {
        log(
            Level::Warning,
            &format!("cannot record status in {}: {e}", state_dir.display()),
        );
    }
    // The process ends here: freeing 10,000 overrides one by one would only cost time.
    std::mem::forget(loaded);
    if write_error.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
