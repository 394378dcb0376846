//! The command line as clap defines it against containctl(8): neither may drift from the other.

use crate::Cli;
use clap::CommandFactory;
use std::collections::BTreeSet;

const MAN: &str = include_str!("../../packaging/man/containctl.8");

/// Options named in the man page that are not containctl's own.
const OTHERS_OPTIONS: [&str; 1] = ["cgroup-parent"]; // docker's, in docker-setup's text

fn visible_commands() -> Vec<clap::Command> {
    Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect()
}

/// Every visible long option of every visible command.
fn clap_options() -> BTreeSet<String> {
    let root = Cli::command();
    let mut out = BTreeSet::new();
    for cmd in std::iter::once(&root).chain(visible_commands().iter()) {
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                out.insert(long.to_string());
            }
        }
    }
    out.remove("help");
    out.remove("version");
    out
}

/// `\-\-name` as roff writes `--name`.
fn man_options() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in MAN.match_indices("\\-\\-") {
        let name: String = MAN[i + 4..]
            .replace("\\-", "-")
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        out.insert(name);
    }
    out.remove("help");
    for other in OTHERS_OPTIONS {
        out.remove(other);
    }
    out
}

fn roff(name: &str) -> String {
    name.replace('-', "\\-")
}

#[test]
fn man_page_options_are_the_clap_options() {
    assert_eq!(
        man_options(),
        clap_options(),
        "containctl(8) options (left) vs clap's (right)"
    );
}

#[test]
fn every_command_is_in_the_synopsis_and_described() {
    let synopsis = &MAN[MAN.find(".SH SYNOPSIS").unwrap()..MAN.find(".SH DESCRIPTION").unwrap()];
    let commands = &MAN[MAN.find(".SH COMMANDS").unwrap()..MAN.find(".SH OPTIONS").unwrap()];
    for cmd in visible_commands() {
        let name = roff(cmd.get_name());
        assert!(
            synopsis.contains(&format!(".B containctl {name}\n")),
            "{name} not in the synopsis"
        );
        assert!(
            commands.contains(&format!(".B {name}\n")) || commands.contains(&format!(".BI {name} ")),
            "{name} not under COMMANDS"
        );
        // Each option of the command is in its synopsis line.
        let line_start = synopsis.find(&format!(".B containctl {name}\n")).unwrap();
        let line = &synopsis[line_start..];
        let line = &line[..line.find(".br").unwrap_or(line.len())];
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long().filter(|l| *l != "help") {
                assert!(
                    line.contains(&roff(long)),
                    "--{long} not in {name}'s synopsis line"
                );
            }
        }
    }
    for hidden in Cli::command().get_subcommands().filter(|c| c.is_hide_set()) {
        assert!(
            !synopsis.contains(&roff(hidden.get_name())),
            "hidden {} in the synopsis",
            hidden.get_name()
        );
    }
}

#[test]
fn every_visible_option_has_help_and_test_options_are_hidden() {
    let root = Cli::command();
    for cmd in std::iter::once(&root).chain(visible_commands().iter()) {
        assert!(cmd.get_about().is_some(), "{} has no help", cmd.get_name());
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            assert!(
                arg.get_help().is_some(),
                "{} {} has no help text",
                cmd.get_name(),
                arg.get_id()
            );
        }
    }
    let root_arg = root.get_arguments().find(|a| a.get_id() == "root").unwrap();
    assert!(root_arg.is_hide_set(), "--root is for tests: hidden from help");
    let mut help = Vec::new();
    Cli::command().write_long_help(&mut help).unwrap();
    let help = String::from_utf8(help).unwrap();
    assert!(
        !help.contains("--root") && !help.contains("completions"),
        "{help}"
    );
}

#[test]
fn no_internal_jargon_in_help_or_man_page() {
    let mut text = MAN.to_lowercase();
    let mut root = Cli::command();
    for cmd in root.get_subcommands_mut() {
        let mut help = Vec::new();
        cmd.write_long_help(&mut help).unwrap();
        text.push_str(&String::from_utf8(help).unwrap().to_lowercase());
    }
    for word in ["seed", "the brief"] {
        assert!(!text.contains(word), "`{word}` in help or containctl(8)");
    }
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "containctl", &mut out);
        let out = String::from_utf8(out).unwrap();
        for word in ["validate", "explain", "policy"] {
            assert!(out.contains(word), "{shell}: no {word}");
        }
    }
}
