//! The commands the README and the guides in docs/ show must run: `watcherctl` with real
//! subcommands and options, `worker-watcher` and `orchestrator-listener` with real options, and
//! `claude` with commands of the Claude Code CLI (its `--help` of 2.1.197, recorded in
//! tests/fixtures/claude/: there is no `claude login`). Part of the docs test (guides.rs).

use std::collections::BTreeSet;

use clap::CommandFactory;
use worker_watcher::cli::{ListenerArgs, WorkerArgs};
use worker_watcher::ctl::CtlArgs;

use crate::docs::guides::{guides, read, report};
use crate::support::markdown::commands;

/// The long and short options of `cmd`, `--name` and `-n`, and `--help`/`--version`.
fn options_of(cmd: &clap::Command) -> BTreeSet<String> {
    let mut out: BTreeSet<String> =
        ["--help", "-h", "--version", "-V"].iter().map(|s| s.to_string()).collect();
    for a in cmd.get_arguments() {
        out.extend(a.get_long().map(|l| format!("--{l}")));
        out.extend(a.get_short().map(|s| format!("-{s}")));
    }
    out
}

/// The options among a command's words (`--name` of `--name=value`; not `-`, `--`).
fn option_words(args: &[String]) -> impl Iterator<Item = &str> {
    args.iter().map(|a| a.split('=').next().unwrap_or("")).filter(|a| {
        a.starts_with('-') && a.len() > 1 && *a != "--" && !a[1..].starts_with(|c: char| c.is_ascii_digit())
    })
}

/// What is wrong with `watcherctl ARGS…`: an unknown command, or an option it does not take.
fn check_watcherctl(args: &[String]) -> Option<String> {
    let mut root = CtlArgs::command();
    root.build();
    let globals = options_of(&root);
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    // `--root DIR` and `--env-file FILE` come before the command: skip their values.
    let first = *positional.first()?;
    let skip =
        args.iter().take_while(|a| *a != first).filter(|a| *a == "--root" || *a == "--env-file").count();
    let first = positional.get(skip)?;
    let mut leaves = Vec::new();
    for name in first.split('|') {
        let Some(sub) = root.find_subcommand(name).cloned() else {
            return Some(format!("watcherctl has no command {name}"));
        };
        if sub.has_subcommands() {
            let second = positional.get(skip + 1)?;
            for leaf in second.split('|') {
                let Some(leaf) = sub.find_subcommand(leaf).cloned() else {
                    return Some(format!("`watcherctl {name}` has no command {leaf}"));
                };
                leaves.push(leaf);
            }
        } else {
            leaves.push(sub);
        }
    }
    for leaf in &leaves {
        let known: BTreeSet<String> = options_of(leaf).union(&globals).cloned().collect();
        if let Some(bad) = option_words(args).find(|o| !known.contains(*o)) {
            return Some(format!("`watcherctl {}` has no option {bad}", leaf.get_name()));
        }
    }
    None
}

/// Like `check_watcherctl`, for a daemon's command line.
fn check_daemon(cmd: clap::Command, args: &[String]) -> Option<String> {
    let known = options_of(&cmd);
    option_words(args)
        .find(|o| !known.contains(*o))
        .map(|bad| format!("`{}` has no option {bad}", cmd.get_name()))
}

/// The commands of a `--help` text: the first word of each entry of its `Commands:` section,
/// `update|upgrade` giving both.
fn help_commands(help: &str) -> BTreeSet<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .flat_map(|w| w.split('|').map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// The options of a `--help` text that take a value (`--output-format <format>`).
fn help_options_with_values(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in help.lines().map(str::trim_start).filter(|l| l.starts_with('-')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2).filter(|p| p[1].starts_with('<')) {
            out.extend(pair[0].trim_end_matches(',').split(',').map(str::to_string));
        }
        for w in words.iter().take_while(|w| w.starts_with('-')) {
            let w = w.trim_end_matches(',');
            if words.iter().any(|x| x.starts_with('<')) {
                out.insert(w.to_string());
            }
        }
    }
    out
}

/// What is wrong with `claude ARGS…`, by the recorded `--help` of Claude Code 2.1.197.
fn check_claude(args: &[String]) -> Option<String> {
    let help = read("tests/fixtures/claude/2.1.197-help.txt");
    let top = help_commands(&help);
    let auth = help_commands(&read("tests/fixtures/claude/2.1.197-auth-help.txt"));
    let valued = help_options_with_values(&help);
    assert!(top.contains("auth") && auth.contains("login"), "the recorded --help was not read right");
    assert!(valued.contains("--output-format") && !valued.contains("--print"), "{valued:?}");
    // The words that are not options, nor the value of one.
    let mut words: Vec<&String> = Vec::new();
    let mut skip = false;
    for a in args {
        if std::mem::take(&mut skip) {
            continue;
        }
        if a.starts_with('-') {
            skip = !a.contains('=') && valued.contains(a.as_str());
        } else {
            words.push(a);
        }
    }
    match words.as_slice() {
        [] => None,
        [w, ..] if !top.contains(w.as_str()) => {
            Some(format!("`claude {w}` is not a command of Claude Code 2.1.197"))
        }
        [a, w, ..] if a.as_str() == "auth" && !auth.contains(w.as_str()) => {
            Some(format!("`claude auth {w}` is not a command of Claude Code 2.1.197"))
        }
        _ => None,
    }
}

#[test]
fn guides_run_real_commands_and_options() {
    let mut problems = Vec::new();
    for (file, doc) in guides() {
        for code in &doc.code {
            // A prompt for claude is any text (`claude -p "…"`): only its command words count.
            let checks = [
                (
                    "watcherctl",
                    commands(&code.text, "watcherctl")
                        .iter()
                        .filter_map(|a| check_watcherctl(a))
                        .collect::<Vec<_>>(),
                ),
                (
                    "worker-watcher",
                    commands(&code.text, "worker-watcher")
                        .iter()
                        .filter_map(|a| check_daemon(WorkerArgs::command(), a))
                        .collect(),
                ),
                (
                    "orchestrator-listener",
                    commands(&code.text, "orchestrator-listener")
                        .iter()
                        .filter_map(|a| check_daemon(ListenerArgs::command(), a))
                        .collect(),
                ),
                ("claude", commands(&code.text, "claude").iter().filter_map(|a| check_claude(a)).collect()),
            ];
            for (_, found) in checks {
                problems
                    .extend(found.into_iter().map(|p| format!("{file}: {p} (in `{}`)", code.text.trim())));
            }
        }
    }
    report(problems, "commands that do not exist");
}
