//! containctl: how an admin knows, before and after a change, that the box is really contained.
//! Exit codes: 0 ok, 1 problems found, 2 usage or parse error.

mod accounts;
mod apply;
mod check;
mod docker;
mod explain;
mod host;
mod iodev;
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
use contain_host::GeneratorStatus;
use contain_host::{Outcome, write_atomic};
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
        Cmd::Check { policy, json } => {
            let report = check::run(&host, policy.as_deref());
            emit(json, &report, check::print);
            if report.problems() > 0 { PROBLEMS } else { OK }
        }
        Cmd::Validate { file, json } => {
            let report = validate::run(&file);
            emit(json, &report, validate::print);
            report.exit_code()
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "containctl", &mut std::io::stdout());
            OK
        }
        Cmd::Render {
            policy,
            out,
            oomd_out,
        } => {
            let loaded = policy::effective(&host, policy.as_deref());
            if loaded.outcome == Outcome::Fallback {
                for e in &loaded.errors {
                    eprintln!("containctl: {e}");
                }
                eprintln!(
                    "containctl: the policy is invalid; rendering the built-in default, as the generator would"
                );
            }
            let oomd_out = oomd_out.unwrap_or_else(|| out.join("oomd.conf.d"));
            match render::write(&host, &loaded, &out, &oomd_out) {
                Ok(files) => {
                    for f in files {
                        println!("{f}");
                    }
                    if loaded.outcome == Outcome::Fallback {
                        PROBLEMS
                    } else {
                        OK
                    }
                }
                Err(e) => {
                    eprintln!("containctl: {e}");
                    PROBLEMS
                }
            }
        }
        Cmd::Diff { policy, json } => {
            let loaded = policy::effective(&host, policy.as_deref());
            for e in &loaded.errors {
                eprintln!("containctl: {e}");
            }
            let diffs = render::diff(&host, &loaded);
            emit(json, &diffs, |d| render::print(d));
            let differ = diffs.iter().any(|d| d.state != render::State::Same);
            if differ || loaded.outcome == Outcome::Fallback {
                PROBLEMS
            } else {
                OK
            }
        }
        Cmd::Explain { user, policy, json } => {
            let loaded = policy::effective(&host, policy.as_deref());
            if loaded.outcome == Outcome::Fallback {
                eprintln!(
                    "containctl: the policy is invalid (see `containctl check`); explaining the built-in default the generator applies"
                );
            }
            match explain::explain(&host, &loaded.policy, &user) {
                Some(e) => {
                    emit(json, &e, explain::print);
                    OK
                }
                None => {
                    eprintln!("containctl: no such user: {user}");
                    USAGE
                }
            }
        }
        Cmd::Status { json } => {
            let loaded = policy::effective(&host, None);
            let report = status::collect(&host, &loaded.policy);
            emit(json, &report, status::print);
            // On stderr, so that --json stays one document: the caps shown are the default's.
            if loaded.outcome == Outcome::Fallback {
                eprintln!(
                    "containctl: the policy is refused, so the built-in default policy applies (caps stay on):"
                );
                for e in &loaded.errors {
                    eprintln!("  {e}");
                }
            }
            if report.problems() > 0 || loaded.outcome == Outcome::Fallback {
                PROBLEMS
            } else {
                OK
            }
        }
        Cmd::Apply { json } => {
            progress::enable(json);
            let loaded = policy::effective(&host, None);
            let report = apply::run(&host, &loaded);
            progress::done();
            emit(json, &report, apply::print);
            if report.ok() { OK } else { PROBLEMS }
        }
        Cmd::Selftest { only, json } => {
            progress::enable(json);
            if let Some(why) = selftest::precondition(&host) {
                eprintln!("containctl: {why}");
                return USAGE;
            }
            let loaded = policy::effective(&host, None);
            let which = only.and_then(|o| o.chars().next());
            let outcomes = selftest::run_tests(&host, &loaded.policy, which);
            emit(json, &outcomes, |o| selftest::print(o));
            if outcomes.iter().all(|o| o.passed) {
                OK
            } else {
                PROBLEMS
            }
        }
        Cmd::Metrics { out, no_journal } => {
            let loaded = policy::effective(&host, None);
            let report = status::collect(&host, &loaded.policy);
            let generator = GeneratorStatus::read(&host).ok();
            let oomd = if no_journal {
                None
            } else {
                metrics::oomd_kills(&host)
            };
            let text = metrics::render(
                &report,
                &metrics::Extra {
                    policy: &loaded.policy,
                    generator,
                    oomd,
                },
            );
            match out {
                Some(path) => match write_atomic(&path, text.as_bytes()) {
                    Ok(()) => OK,
                    Err(e) => {
                        eprintln!("containctl: cannot write {}: {e}", path.display());
                        PROBLEMS
                    }
                },
                None => {
                    let _ = std::io::stdout().write_all(text.as_bytes());
                    OK
                }
            }
        }
        Cmd::DockerSetup {
            daemon_json,
            keep_other,
        } => {
            let path = docker::daemon_json(&host, daemon_json.as_deref());
            let shown = path.display();
            match docker::setup(&host, &path, keep_other) {
                Ok(docker::Outcome::AlreadySet) => {
                    println!("{shown} already routes containers into docker.slice");
                    OK
                }
                Ok(docker::Outcome::Created) => {
                    println!("created {shown}: containers go to docker.slice (restart docker to apply)");
                    OK
                }
                Ok(docker::Outcome::Updated { previous }) => {
                    match previous {
                        Some(p) => println!(
                            "{shown}: cgroup-parent was `{p}`, now docker.slice; other keys kept (restart docker to apply)"
                        ),
                        None => println!(
                            "{shown}: added cgroup-parent docker.slice; other keys kept (restart docker to apply)"
                        ),
                    }
                    OK
                }
                Ok(docker::Outcome::KeptOther(p)) => {
                    println!(
                        "{shown}: cgroup-parent is `{p}`, set by the admin: left alone, containers do not go to docker.slice"
                    );
                    OK
                }
                Ok(docker::Outcome::NoDocker) => {
                    println!("docker is not installed and {shown} does not exist: nothing to do");
                    OK
                }
                Ok(docker::Outcome::LeftInvalid(e)) => {
                    eprintln!(
                        "containctl: warning: {shown} left untouched: {e}. Containers keep landing outside docker.slice \
                         until you fix it and run `containctl docker-setup` again."
                    );
                    PROBLEMS
                }
                Err(e) => {
                    eprintln!("containctl: cannot write {shown}: {e}");
                    PROBLEMS
                }
            }
        }
        Cmd::Balloon { args } => match selftest::balloon(&args) {
            Ok(()) => OK,
            Err(e) => {
                eprintln!("containctl: {e}");
                USAGE
            }
        },
    }
}
