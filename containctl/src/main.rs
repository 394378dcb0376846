//! containctl: how an admin knows, before and after a change, that the box is really contained.
//! Exit codes: 0 ok, 1 problems found, 2 usage or parse error.

mod accounts;
mod apply;
mod check;
mod docker;
mod explain;
mod host;
mod iodev;
mod iosched;
mod metrics;
mod pam;
mod policy;
mod progress;
mod render;
mod selftest;
mod status;
mod table;
mod validate;

#[cfg(test)]
mod cli_tests;

use clap::{CommandFactory, Parser, Subcommand};
use host::Host;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "containctl",
    version,
    about = "Check, preview and run contain's per-user containment"
)]
struct Cli {
    /// Look at the host under DIR (/sys/fs/cgroup, /proc, /etc, /run move with it): for tests.
    #[arg(long, global = true, env = "CONTAIN_ROOT", default_value = "/", hide = true)]
    root: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Lint the policy and check the host; problems most serious first, each with its fix.
    Check {
        /// Use this policy file (and its policy.d) instead of /etc/contain/policy.toml.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Print the result as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Lint one policy file without looking at the host: exit 0 valid, 1 warnings, 2 unusable.
    Validate {
        /// The policy file, whatever its name or owner (e.g. a config-management temp file).
        file: PathBuf,
        /// Print the result as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Write what the generator would write, as files.
    Render {
        /// Use this policy file (and its policy.d) instead of /etc/contain/policy.toml.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// The generator's output directory (units and drop-ins).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Where the oomd.conf drop-in goes (default: OUT/oomd.conf.d).
        #[arg(long, value_name = "DIR")]
        oomd_out: Option<PathBuf>,
    },
    /// Compare the policy's units with what is live under /run/systemd/generator.
    Diff {
        /// Use this policy file (and its policy.d) instead of /etc/contain/policy.toml.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Print the result as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// A user's effective limits and the rule behind each.
    Explain {
        /// Login name or UID.
        user: String,
        /// Use this policy file (and its policy.d) instead of /etc/contain/policy.toml.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Print the result as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Live figures of every user slice and policed tree, against the policy.
    Status {
        /// Print the result as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Put the policy in force without a reboot: reload, set running slices, reload oomd.
    Apply {
        /// Print the result as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Put the policy's io_scheduler on the disks behind its io_devices (run at boot by
    /// contain-io-scheduler.service, and by apply).
    IoScheduler {
        /// Print the result as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Stress tests in a throwaway slice: A, a balloon killed at its ceiling; B, a thrashing
    /// workload ended by systemd-oomd.
    Selftest {
        /// Run only test `a` or `b`.
        #[arg(long, value_parser = ["a", "b"])]
        only: Option<String>,
        /// Print the result as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// The status figures in Prometheus text format.
    Metrics {
        /// Write atomically to this file (node-exporter's textfile collector) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Do not read systemd-oomd's kills from the journal.
        #[arg(long)]
        no_journal: bool,
    },
    /// Route docker containers into docker.slice in daemon.json, keeping every other key.
    DockerSetup {
        /// Edit this file instead of /etc/docker/daemon.json.
        #[arg(long, value_name = "FILE")]
        daemon_json: Option<PathBuf>,
        /// Leave a cgroup-parent the admin set to something else alone (the package's
        /// postinst runs it this way).
        #[arg(long)]
        keep_other: bool,
    },
    /// Print a shell completion script (the package installs them).
    #[command(hide = true)]
    Completions {
        /// bash, zsh or fish.
        shell: clap_complete::Shell,
    },
    #[command(name = "__balloon", hide = true)]
    Balloon {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

const OK: u8 = 0;
const PROBLEMS: u8 = 1;
const USAGE: u8 = 2;

fn emit<T: Serialize>(json: bool, value: &T, text: impl FnOnce(&T) -> String) {
    let out = if json {
        serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
    } else {
        text(value)
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(out.as_bytes());
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { USAGE } else { OK });
        }
    };
    ExitCode::from(run(cli))
}

fn run(cli: Cli) -> u8 {
    let host = Host::new(cli.root);
    match cli.command {
        Cmd::Check { policy, json } => check::command(&host, policy.as_deref(), json),
        Cmd::Validate { file, json } => validate::command(&file, json),
        Cmd::Render {
            policy,
            out,
            oomd_out,
        } => render::command(&host, policy.as_deref(), &out, oomd_out),
        Cmd::Diff { policy, json } => render::diff_command(&host, policy.as_deref(), json),
        Cmd::Explain { user, policy, json } => explain::command(&host, &user, policy.as_deref(), json),
        Cmd::Status { json } => status::command(&host, json),
        Cmd::Apply { json } => apply::command(&host, json),
        Cmd::IoScheduler { json } => iosched::command(&host, json),
        Cmd::Selftest { only, json } => selftest::command(&host, only, json),
        Cmd::Metrics { out, no_journal } => metrics::command(&host, out, no_journal),
        Cmd::DockerSetup {
            daemon_json,
            keep_other,
        } => docker::command(&host, daemon_json.as_deref(), keep_other),
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "containctl", &mut std::io::stdout());
            OK
        }
        Cmd::Balloon { args } => selftest::balloon_command(&args),
    }
}
