//! The documentation cannot drift from the code: the variables of worker-watcher.env(5) are
//! generated from the settings table (src/config/vars.rs), and the flags and metric families
//! of worker-watcher(8) and orchestrator-listener(8), the commands, options and exit statuses
//! of watcherctl(1), the journal catalog and the packaged env file are checked against their
//! sources.
//!
//! `UPDATE_DOCS=1 cargo test --test integration docs` rewrites the generated part of the page.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use clap::CommandFactory;
use worker_watcher::cli::{ListenerArgs, WorkerArgs};
use worker_watcher::config::{Reload, Var, VARS};
use worker_watcher::ctl::{exit, CtlArgs};
use worker_watcher::log::ids;
use worker_watcher::metrics::WorkerMetrics;

const BEGIN: &str = ".\\\" BEGIN GENERATED from src/config/vars.rs: do not edit by hand\n";
const END: &str = ".\\\" END GENERATED\n";

/// The variables of the old design (DESIGN §3): their names and meaning are kept.
const DESIGN_VARS: &[&str] = &[
    "MAX_CONCURRENT_TASKS",
    "TASK_TIMEOUT",
    "HEARTBEAT_INTERVAL",
    "MAX_RETRIES",
    "RETRY_BACKOFF",
    "INITIAL_RETRY_DELAY",
    "CIRCUIT_BREAKER_THRESHOLD",
    "CIRCUIT_BREAKER_TIMEOUT",
    "TASK_DIR",
    "TRIGGER_DIR",
    "RESULT_DIR",
    "HEARTBEAT_DIR",
    "DLQ_DIR",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "ENABLE_METRICS",
    "METRICS_PORT",
    "CLAUDE_COMMAND",
];

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Text for roff: backslashes escaped, a dash that starts a word (an option) made a minus.
fn roff_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut prev = ' ';
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' if prev == ' ' || prev == '-' => out.push_str("\\-"),
            c => out.push(c),
        }
        prev = c;
    }
    out
}

/// Roff text lines of at most 78 bytes (mandoc's style limit is 80), filled at spaces; a line
/// that would start with a control character is neutralised.
fn roff_lines(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= 78 => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
        .into_iter()
        .map(
            |l| {
                if l.starts_with('.') || l.starts_with('\'') {
                    format!("\\&{l}\n")
                } else {
                    format!("{l}\n")
                }
            },
        )
        .collect()
}

/// A literal value (a default, a name): every dash a minus, so that it copies as typed.
fn roff_literal(s: &str) -> String {
    roff_text(s).replace("\\-", "-").replace('-', "\\-")
}

fn var_entry(v: &Var) -> String {
    let default = match v.default {
        Some(d) => format!("Default: \\fB{}\\fR.", roff_literal(d)),
        None => "Unset by default.".to_string(),
    };
    let reload = match v.reload {
        Reload::Live => "Applied by SIGHUP.",
        Reload::Restart => "Read at start-up only.",
    };
    format!(
        ".TP\n.B {}\n{}.br\n{}",
        v.name,
        roff_lines(&roff_text(v.doc)),
        roff_lines(&format!("Value: {}. {default} {reload}", roff_text(v.expects)))
    )
}

/// The generated part of worker-watcher.env(5): every variable of the table, in its order,
/// then which of them SIGHUP applies.
fn env_page_block() -> String {
    let mut out = String::from(BEGIN);
    for v in VARS {
        out.push_str(&var_entry(v));
    }
    for (reload, title) in [(Reload::Live, "Applied by SIGHUP"), (Reload::Restart, "Read at start-up only")] {
        let names: Vec<&str> = VARS.iter().filter(|v| v.reload == reload).map(|v| v.name).collect();
        out.push_str(&format!(".SS {title}\n{}\n", names.join(",\n")));
    }
    out.push_str(END);
    out
}

#[test]
fn env_page_is_generated_from_the_table() {
    let rel = "man/worker-watcher.env.5";
    let page = read(rel);
    let start = page.find(BEGIN).expect("BEGIN GENERATED marker in man/worker-watcher.env.5");
    let end = page.find(END).expect("END GENERATED marker in man/worker-watcher.env.5") + END.len();
    let wanted = env_page_block();
    if page[start..end] == wanted {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!("{}{}{}", &page[..start], wanted, &page[end..]);
        fs::write(repo_file(rel), updated).expect("rewrite the page");
        return;
    }
    panic!(
        "{rel} does not match src/config/vars.rs; run `UPDATE_DOCS=1 cargo test --test integration \
         docs` and commit the page"
    );
}

#[test]
fn env_page_documents_every_variable_of_the_design() {
    let page = read("man/worker-watcher.env.5");
    for name in DESIGN_VARS.iter().copied().chain(VARS.iter().map(|v| v.name)) {
        assert!(worker_watcher::config::vars::lookup(name).is_some(), "{name} is not in the settings table");
        assert!(page.contains(&format!("\n.B {name}\n")), "worker-watcher.env(5) has no entry for {name}");
    }
}

#[test]
fn packaged_env_file_shows_every_variable() {
    let file = read("packaging/watcher.env");
    for v in VARS {
        let line = match v.default {
            Some(d) if d.contains(' ') => format!("#{}=\"{d}\"", v.name),
            Some(d) => format!("#{}={d}", v.name),
            None => format!("#{}=", v.name),
        };
        assert!(
            file.lines().any(|l| l.starts_with(&line)),
            "packaging/watcher.env has no line starting with {line:?}"
        );
    }
}

/// The long options named in a page's OPTIONS section.
fn page_options(page: &str) -> BTreeSet<String> {
    let start = page.find("\n.SH OPTIONS\n").expect("an OPTIONS section");
    let rest = &page[start + 1..];
    let end = rest[4..].find("\n.SH ").map_or(rest.len(), |i| i + 4);
    rest[..end]
        .lines()
        .filter(|l| l.starts_with(".B") && l.contains("\\-\\-"))
        .flat_map(|l| l.split("\\-\\-").skip(1).map(|s| s.to_string()))
        .map(|s| {
            let name: String = s
                .replace("\\-", "-")
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            name
        })
        .collect()
}

#[test]
fn worker_page_options_match_the_command_line() {
    let page = read("man/worker-watcher.8");
    let documented = page_options(&page);
    let cmd = WorkerArgs::command();
    let mut real: BTreeSet<String> =
        cmd.get_arguments().filter_map(|a| a.get_long()).map(str::to_string).collect();
    real.extend(["help".to_string(), "version".to_string()]);
    assert_eq!(documented, real, "OPTIONS of worker-watcher(8) vs the flags of src/cli.rs");
}

/// `(id, entry text)` of every entry of the journal catalog.
fn catalog_entries() -> Vec<(String, String)> {
    let text = read("packaging/catalog/worker-watcher.catalog");
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(id) = line.strip_prefix("-- ") {
            entries.push((id.trim().to_string(), String::new()));
        } else if let Some((_, body)) = entries.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    entries
}

#[test]
fn catalog_explains_every_message_id() {
    let entries = catalog_entries();
    let in_catalog: BTreeSet<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
    let defined: BTreeSet<&str> = ids::ALL.iter().map(|(_, id)| *id).collect();
    assert_eq!(in_catalog.len(), entries.len(), "an id has two catalog entries");
    for (name, id) in ids::ALL {
        assert!(in_catalog.contains(id), "the journal catalog has no entry for {name} ({id})");
    }
    for id in &in_catalog {
        assert!(defined.contains(id), "catalog entry {id} is not an id of src/log/ids.rs");
    }
    for (id, body) in &entries {
        let header: Vec<&str> = body.lines().take_while(|l| !l.is_empty()).collect();
        for field in ["Subject: ", "Defined-By: worker-watcher", "Support: ", "Documentation: "] {
            assert!(header.iter().any(|l| l.starts_with(field)), "catalog entry {id} lacks {field:?}");
        }
        let text = body.lines().skip(header.len()).filter(|l| !l.trim().is_empty()).count();
        assert!(text > 0, "catalog entry {id} has no explanation");
    }
}

#[test]
fn worker_page_lists_every_message_id() {
    let page = read("man/worker-watcher.8");
    for (name, id) in ids::ALL.iter().filter(|(_, id)| !ids::LISTENER.contains(id)) {
        assert!(page.contains(id), "worker-watcher(8) does not list {name} ({id})");
    }
}

#[test]
fn listener_page_lists_its_message_ids() {
    let page = read("man/orchestrator-listener.8");
    for id in ids::LISTENER {
        assert!(ids::ALL.iter().any(|(_, i)| i == id), "{id} is not in ids::ALL");
        assert!(page.contains(id), "orchestrator-listener(8) does not list {id}");
    }
}

#[test]
fn listener_page_options_match_the_command_line() {
    let documented = page_options(&read("man/orchestrator-listener.8"));
    let mut real: BTreeSet<String> =
        ListenerArgs::command().get_arguments().filter_map(|a| a.get_long()).map(str::to_string).collect();
    real.extend(["help".to_string(), "version".to_string()]);
    assert_eq!(documented, real, "OPTIONS of orchestrator-listener(8) vs the flags of src/cli.rs");
}

#[test]
fn listener_page_lists_every_metric_family() {
    let families: BTreeSet<String> = worker_watcher::listener::metric_families().into_iter().collect();
    for family in DESIGN_METRICS {
        assert!(families.contains(*family), "the listener does not serve {family}");
    }
    let named = words(section(&read("man/orchestrator-listener.8"), "METRICS"));
    for family in &families {
        assert!(named.contains(family), "orchestrator-listener(8) METRICS does not list {family}");
    }
    for word in named.iter().filter(|w| w.starts_with("watcher_") || w.starts_with("process_")) {
        assert!(families.contains(word), "orchestrator-listener(8) names {word}, which it does not serve");
    }
}

#[test]
fn rpm_pre_script_creates_the_sysusers_user() {
    let conf = read("packaging/sysusers.d/worker-watcher.conf");
    let pre = read("packaging/rpm/pre.sh");
    for line in conf.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        assert!(pre.lines().any(|l| l == line), "packaging/rpm/pre.sh lacks the sysusers line {line:?}");
    }
}

/// The metric families of DESIGN §5 (the dashboard is checked in tests/integration/prometheus).
const DESIGN_METRICS: &[&str] = &[
    "watcher_tasks_processed_total",
    "watcher_tasks_failed_total",
    "watcher_task_duration_seconds",
    "watcher_task_queue_size",
    "watcher_active_tasks",
    "watcher_circuit_breaker_state",
];

/// The text of section `.SH title` of a page, up to the next `.SH`.
fn section<'a>(page: &'a str, title: &str) -> &'a str {
    let head = format!("\n.SH {title}\n");
    let start = page.find(&head).unwrap_or_else(|| panic!("no section {title}")) + head.len();
    let rest = &page[start..];
    &rest[..rest.find("\n.SH ").map_or(rest.len(), |i| i + 1)]
}

/// The subsections (`.SS title`) of a section's text, by title, quotes removed.
fn subsections(text: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(title) = line.strip_prefix(".SS ") {
            let title = title.trim().trim_matches('"').to_string();
            assert!(!out.contains_key(&title), "two subsections {title:?}");
            out.insert(title.clone(), String::new());
            current = Some(title);
        } else if let Some(body) = current.as_ref().and_then(|t| out.get_mut(t)) {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// The options (`--long`, `-s`) named by the tags of `.TP`/`.TQ` entries of `text`: what an
/// entry documents, not what its prose mentions.
fn tagged_options(text: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = BTreeSet::new();
    for pair in lines.windows(2) {
        if !(pair[0].starts_with(".TP") || pair[0].starts_with(".TQ")) {
            continue;
        }
        let tag = pair[1].replace("\\fB", " ").replace("\\fI", " ").replace("\\fR", " ").replace("\\fP", " ");
        for word in tag.split(|c: char| c.is_whitespace() || c == '"' || c == ',') {
            let (dashes, rest) = match word.strip_prefix("\\-\\-") {
                Some(rest) => ("--", rest),
                None => match word.strip_prefix("\\-") {
                    Some(rest) if rest.len() == 1 => ("-", rest),
                    _ => continue,
                },
            };
            let name: String = rest
                .replace("\\-", "-")
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            out.insert(format!("{dashes}{name}"));
        }
    }
    out
}

/// The long and short names of the arguments of `cmd` that `keep` accepts.
fn clap_options(cmd: &clap::Command, keep: impl Fn(&clap::Arg) -> bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for arg in cmd.get_arguments().filter(|a| keep(a)) {
        out.extend(arg.get_long().map(|l| format!("--{l}")));
        out.extend(arg.get_short().map(|s| format!("-{s}")));
    }
    out
}

/// The commands of watcherctl that run something (`dlq list`, not `dlq`), by their words.
fn leaf_commands(cmd: &clap::Command, prefix: &str, out: &mut BTreeMap<String, clap::Command>) {
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("{prefix}{}", sub.get_name());
        if sub.has_subcommands() {
            leaf_commands(sub, &format!("{name} "), out);
        } else {
            out.insert(name, sub.clone());
        }
    }
}

#[test]
fn watcherctl_page_documents_each_command_with_its_options() {
    let page = read("man/watcherctl.1");
    let mut cmd = CtlArgs::command();
    cmd.build();
    let mut commands = BTreeMap::new();
    leaf_commands(&cmd, "", &mut commands);
    let sections = subsections(section(&page, "COMMANDS"));
    assert_eq!(
        sections.keys().collect::<Vec<_>>(),
        commands.keys().collect::<Vec<_>>(),
        "the subsections of COMMANDS in watcherctl(1) vs the commands of src/ctl/args.rs"
    );
    for (name, sub) in &commands {
        // -h/--help, --root and --env-file are everywhere: OPTIONS documents them once.
        let real = clap_options(sub, |a| !a.is_global_set() && a.get_id() != "help");
        let documented = tagged_options(&sections[name]);
        assert_eq!(documented, real, "watcherctl(1) COMMANDS/{name} vs the options of `watcherctl {name}`");
        assert!(
            section(&page, "SYNOPSIS").contains(&format!(".B watcherctl {name}\n")),
            "the SYNOPSIS of watcherctl(1) has no `watcherctl {name}`"
        );
    }
}

#[test]
fn watcherctl_page_options_match_the_global_options() {
    let page = read("man/watcherctl.1");
    let mut cmd = CtlArgs::command();
    cmd.build();
    let real = clap_options(&cmd, |_| true);
    assert!(real.contains("--root") && real.contains("--help") && real.contains("-V"), "{real:?}");
    let documented = tagged_options(section(&page, "OPTIONS"));
    assert_eq!(documented, real, "OPTIONS of watcherctl(1) vs the global flags of src/ctl/args.rs");
}

#[test]
fn watcherctl_page_lists_exactly_its_exit_statuses() {
    // Read from the source, so that a status added there and not here fails.
    let source = read("src/ctl/exit.rs");
    let defined: BTreeSet<u8> = source
        .lines()
        .filter_map(|l| l.strip_prefix("pub const ")?.split_once(": u8 = "))
        .map(|(_, n)| n.trim_end_matches(';').parse().expect("a status"))
        .collect();
    for code in [exit::OK, exit::TASK_FAILED, exit::USAGE, exit::TIMED_OUT, exit::CONFIG] {
        assert!(defined.contains(&code), "src/ctl/exit.rs was not read right: no {code} in {defined:?}");
    }
    let page = read("man/watcherctl.1");
    let lines: Vec<&str> = section(&page, "EXIT STATUS").lines().collect();
    let documented: BTreeSet<u8> = lines
        .windows(2)
        .filter(|w| w[0] == ".TP")
        .map(|w| w[1].strip_prefix(".B ").and_then(|n| n.parse().ok()).expect("`.B N` after .TP"))
        .collect();
    assert_eq!(documented, defined, "EXIT STATUS of watcherctl(1) vs src/ctl/exit.rs");
}

/// Roff text without font changes, split into words of identifier characters.
fn words(text: &str) -> BTreeSet<String> {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.clone().next() == Some('f') {
            chars.next();
            chars.next();
            plain.push(' ');
        } else {
            plain.push(c);
        }
    }
    plain
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn worker_page_lists_every_metric_family() {
    let metrics = WorkerMetrics::new("w").expect("the metrics register");
    let exposition = String::from_utf8(metrics.encode().expect("encode")).expect("UTF-8");
    let families: BTreeSet<String> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .map(str::to_string)
        .collect();
    for family in DESIGN_METRICS {
        assert!(families.contains(*family), "{family} is not registered");
    }
    let page = read("man/worker-watcher.8");
    let named = words(section(&page, "METRICS AND HEALTH"));
    for family in &families {
        assert!(named.contains(family), "worker-watcher(8) METRICS AND HEALTH does not list {family}");
    }
    for word in named.iter().filter(|w| w.starts_with("watcher_") || w.starts_with("process_")) {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| word.strip_suffix(s).filter(|f| families.contains(*f)))
            .unwrap_or(word);
        assert!(families.contains(family), "worker-watcher(8) names {word}, which is not a metric family");
    }
}

#[test]
fn no_page_is_a_draft_or_has_a_placeholder_for_a_shipped_part() {
    for rel in ["man/watcherctl.1", "man/worker-watcher.8", "man/orchestrator-listener.8"] {
        let page = read(rel);
        for marker in ["DRAFT", "PLACEHOLDER"] {
            assert!(!page.contains(marker), "{rel} still has a {marker} comment");
        }
    }
    assert!(!read("man/worker-watcher-tasks.5").contains("PLACEHOLDER("));
}
