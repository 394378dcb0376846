//! contain-generator: called by systemd as `contain-generator NORMAL_DIR [EARLY_DIR LATE_DIR]`
//! at boot and on every daemon-reload. Writes units from /etc/contain/policy.toml.
//! `CONTAIN_ROOT` moves every host path it reads or writes (tests).

use contain_generator::generate;
use contain_generator::kmsg::{self, NOTICE};
use contain_host::{Outcome, Root, load_root_for_units, paths};
use contain_policy::local_users_where;
use std::path::PathBuf;
use std::process::ExitCode;

mod arena;

use arena::BootArena;

#[global_allocator]
static HEAP: BootArena = BootArena::new();

fn main() -> ExitCode {
    let Some(unit_dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: contain-generator NORMAL_DIR [EARLY_DIR LATE_DIR]");
        return ExitCode::from(2);
    };
    kmsg::init();
    let root = Root::from_env();
    let policy_path = paths::POLICY;

    let loaded = load_root_for_units(&root);
    match loaded.outcome {
        Outcome::Applied => log::info!("applying {}", loaded.policy.sources.join(", ")),
        Outcome::Default => {
            log::info!(target: NOTICE, "{policy_path} not found: applying the built-in default policy")
        }
        Outcome::Fallback => {
            for e in &loaded.errors {
                log::error!("{e}");
            }
            log::error!(
                "{policy_path} is invalid: applying the built-in default policy; caps stay on. Fix it, then `containctl check`"
            );
        }
    }

    // No NSS here: exempt accounts in the files get per-UID drop-ins; pam_contain covers the rest.
    // Only those are rendered, so only those are read in full.
    let passwd = std::fs::read_to_string(root.path("/etc/passwd")).unwrap_or_default();
    let users = local_users_where(&passwd, |uid, name| loaded.policy.exemption(uid, name).is_some());
    // The link points at the host's unit, found under the root.
    let oomd_unit = root.oomd_unit().map(|found| PathBuf::from(root.display(&found)));

    let (status, write_error) = generate(
        &loaded,
        &users,
        &unit_dir,
        Some(&root.path(paths::OOMD_DIR)),
        oomd_unit.as_deref(),
    );
    if let Some(e) = &write_error {
        log::error!("could not write every unit: {e}");
    }
    if let Err(e) = status.write(&root) {
        log::warn!("cannot record status in {}: {e}", paths::GENERATOR_STATUS);
    }
    if write_error.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
