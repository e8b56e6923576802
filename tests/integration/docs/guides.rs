//! The README and the guides in docs/ hold to the code, as the man pages do (man.rs). They link
//! to the man pages for the reference tables rather than copy them; what they still say about
//! names the code defines must be true:
//! - an UPPER_CASE name in their code is a setting of src/config/vars.rs, or a name the code or
//!   the project's scripts use (a journal field, an environment variable), or one of OTHERS;
//! - a `watcher_*` or `process_*` name in their code is a metric family a daemon serves;
//! - a list of failure reasons or of worker states names real ones, and, of three or more, all
//!   of them unless it says it gives examples ("e.g.", "such as", "…");
//! - an exit status a sentence gives is one a program has; a 32-digit hex id is a MESSAGE_ID;
//! - the commands they show are real (commands.rs);
//! - `name(N)` references name pages of man/, and relative links lead to a file and heading.
//!
//! Each test lists every problem it finds, so one run shows all the drift.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use worker_watcher::agent::reason;
use worker_watcher::log::ids;
use worker_watcher::metrics::WorkerMetrics;
use worker_watcher::worker::state::WorkerState;

use crate::support::markdown::{self, anchors, links, lists, List};

/// UPPER_CASE names in the guides that are neither settings nor used by our code or scripts:
/// the agent's own settings, and names of the kernel and of systemd quoted to explain a choice.
const OTHERS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "AF_UNIX",
    "AF_INET",
    "AF_INET6",
    "AF_NETLINK",
    "AI_ADDRCONFIG",
    "CLONE_VM",
    "CLONE_VFORK",
    "CLONE_INTO_CGROUP",
    "RENAME_NOREPLACE",
    "IN_CREATE",
    "IN_MOVED_TO",
    "IN_CLOSE_WRITE",
    "IN_Q_OVERFLOW",
    "IN_IGNORED",
    "PIPE_BUF",
    "EX_CONFIG",
    "EX_TEMPFAIL",
    "EX_SOFTWARE",
    "_TRANSPORT",
];

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn read(rel: &str) -> String {
    fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The Markdown files under `dir` (relative to the repository), recursively, sorted.
fn markdown_under(dir: &str, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(repo().join(dir)) else { return };
    let mut names: Vec<String> =
        entries.filter_map(|e| Some(e.ok()?.file_name().to_str()?.to_string())).collect();
    names.sort();
    for name in names {
        let rel = if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") };
        if repo().join(&rel).is_dir() {
            if !matches!(name.as_str(), "target" | "results" | "corpus" | "artifacts")
                && !name.starts_with('.')
            {
                markdown_under(&rel, out);
            }
        } else if name.ends_with(".md") {
            out.push(rel);
        }
    }
}

/// The guides whose statements are checked: the README, docs/, systemd/README.md.
pub(crate) fn guides() -> Vec<(String, markdown::Parsed)> {
    let mut files = vec!["README.md".to_string(), "systemd/README.md".to_string()];
    markdown_under("docs", &mut files);
    files.into_iter().map(|f| (f.clone(), markdown::parse(&read(&f)))).collect()
}

/// Identifier-like words of a text (letters, digits, `_`).
fn idents(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty())
}

fn upper_name(w: &str) -> bool {
    let mut parts = w.trim_start_matches('_').split('_');
    let first = parts.next().unwrap_or("");
    w.contains('_')
        && first.starts_with(|c: char| c.is_ascii_uppercase())
        && w.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && parts.all(|p| !p.is_empty())
}

/// Every file under `dir` whose name ends with one of `exts`.
fn files_under(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, exts, out);
        } else if exts.iter().any(|e| path.to_string_lossy().ends_with(e)) {
            out.push(path);
        }
    }
}

/// UPPER_CASE names the code and the tests use as string literals (journal fields,
/// environment variables), and the names the project's scripts use.
fn names_in_use() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut sources = Vec::new();
    files_under(&repo().join("src"), &[".rs"], &mut sources);
    for text in sources.iter().filter_map(|p| fs::read_to_string(p).ok()) {
        for literal in text.split('"').skip(1).step_by(2) {
            let name = literal.split('=').next().unwrap_or("");
            if upper_name(name) {
                names.insert(name.to_string());
            }
        }
    }
    let mut tests = Vec::new();
    files_under(&repo().join("tests"), &[".rs"], &mut tests);
    for text in tests.iter().filter_map(|p| fs::read_to_string(p).ok()) {
        names.extend(text.split('"').skip(1).step_by(2).filter(|l| upper_name(l)).map(str::to_string));
    }
    let mut scripts = vec![
        repo().join(".ci/run"),
        repo().join("scripts/try"),
        repo().join("fuzz/run.sh"),
        repo().join("Containerfile"),
        repo().join("compose.yaml"),
    ];
    files_under(&repo().join("tests"), &[".sh", ".py"], &mut scripts);
    files_under(&repo().join("packaging"), &[".sh"], &mut scripts);
    for text in scripts.iter().filter_map(|p| fs::read_to_string(p).ok()) {
        names.extend(idents(&text).filter(|w| upper_name(w)).map(str::to_string));
    }
    names
}

pub(crate) fn report(problems: Vec<String>, what: &str) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

#[test]
fn guides_name_only_real_settings() {
    let settings: BTreeSet<&str> = worker_watcher::config::VARS.iter().map(|v| v.name).collect();
    let in_use = names_in_use();
    let mut problems = Vec::new();
    for (file, doc) in guides() {
        for code in &doc.code {
            for w in idents(&code.text).filter(|w| upper_name(w)) {
                if !settings.contains(w) && !in_use.contains(w) && !OTHERS.contains(&w) {
                    problems.push(format!(
                        "{file}: `{w}` is not a setting of src/config/vars.rs (in `{}`)",
                        code.text.trim()
                    ));
                }
            }
        }
    }
    report(problems, "names that are not settings");
}

/// Every metric family a worker or the listener serves.
fn metric_families() -> BTreeSet<String> {
    let metrics = WorkerMetrics::new("w").expect("the metrics register");
    let text = String::from_utf8(metrics.encode().expect("encode")).expect("UTF-8");
    let mut families: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .map(str::to_string)
        .collect();
    families.extend(worker_watcher::listener::metric_families());
    families
}

#[test]
fn guides_name_only_real_metric_families() {
    let families = metric_families();
    let mut problems = Vec::new();
    for (file, doc) in guides() {
        for code in &doc.code {
            // Words with their dashes: `worker-watcher_spool` (a volume) names no family.
            let words = code.text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'));
            for w in words.filter(|w| w.starts_with("watcher_") || w.starts_with("process_")) {
                if w.ends_with('_') && families.iter().any(|f| f.starts_with(w)) {
                    continue; // a prefix: `process_*`
                }
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| w.strip_suffix(s).filter(|f| families.contains(*f)))
                    .unwrap_or(w);
                if !families.contains(family) {
                    problems
                        .push(format!("{file}: `{w}` is not a metric family of the worker or the listener"));
                }
            }
        }
    }
    report(problems, "names that are not metric families");
}

/// The `status` words of a worker's heartbeat.
fn worker_states() -> BTreeSet<String> {
    WorkerState::ALL.iter().map(|s| s.as_str().to_string()).collect()
}

/// Whether the text around a list says it gives examples only.
fn says_examples(list: &List) -> bool {
    let before = list.before.to_lowercase();
    let after = list.after.trim_start();
    ["e.g.", "for example", "such as", "among them", "including", "like "].iter().any(|m| before.contains(m))
        || after.starts_with('…')
        || after.starts_with(", …")
        || after.starts_with("...")
}

fn check_list(
    file: &str,
    list: &List,
    what: &str,
    vocabulary: &BTreeSet<String>,
    problems: &mut Vec<String>,
) {
    let known = list.items.iter().filter(|i| vocabulary.contains(*i)).count();
    if known * 2 <= list.items.len() {
        return; // not a list of these
    }
    let shown = list.items.join("`, `");
    for item in list.items.iter().filter(|i| !vocabulary.contains(*i)) {
        problems.push(format!("{file}: `{item}` is not a {what} (in `{shown}`)"));
    }
    // Two words ("`agent_error` or `exit_code`: read stderr_tail") pick some; three or more
    // claim to be the list.
    let missing: Vec<&String> = vocabulary.iter().filter(|v| !list.items.contains(v)).collect();
    if list.items.len() >= 3 && !missing.is_empty() && !says_examples(list) {
        let missing = missing.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
        problems.push(format!(
            "{file}: a list of {what}s (`{shown}`) lacks {missing}; list them all, or say it gives examples (e.g.)"
        ));
    }
}

#[test]
fn guides_list_reasons_and_states_as_the_code_has_them() {
    let reasons: BTreeSet<String> = reason::FINAL.iter().map(|r| r.to_string()).collect();
    let states = worker_states();
    let mut problems = Vec::new();
    for (file, doc) in guides() {
        for list in lists(&doc.prose) {
            check_list(&file, &list, "failure reason", &reasons, &mut problems);
            check_list(&file, &list, "worker state", &states, &mut problems);
        }
    }
    report(problems, "lists of reasons or states that differ from the code");
}

/// Exit statuses a program has: the daemons' (0, 2 for a bad command line, src/error.rs) and
/// watcherctl's (src/ctl/exit.rs).
fn exit_statuses() -> BTreeSet<u32> {
    use worker_watcher::error::{EX_CONFIG, EX_SOFTWARE, EX_TEMPFAIL};
    let mut all: BTreeSet<u32> =
        [0, 2, EX_CONFIG, EX_SOFTWARE, EX_TEMPFAIL].iter().map(|&c| u32::from(c)).collect();
    let ctl = read("src/ctl/exit.rs");
    all.extend(ctl.lines().filter_map(|l| {
        l.strip_prefix("pub const ")?.split_once(": u8 = ")?.1.trim_end_matches(';').parse::<u32>().ok()
    }));
    all
}

#[test]
fn stated_statuses_are_read_from_sentences() {
    let text = "It exits with status 78; (exit 69), and exit statuses 0, 1 or 2. Exit 70.";
    assert_eq!(stated_statuses(text), [78, 69, 0, 1, 2, 70]);
}

/// The numbers a sentence gives as exit statuses: "exit status 78", "(exit 69)", "exits 78",
/// "exit statuses 0, 1 or 2".
fn stated_statuses(prose: &str) -> Vec<u32> {
    let lower = prose.to_lowercase();
    let words: Vec<&str> =
        lower.split(|c: char| c.is_whitespace() || "()`,;:".contains(c)).filter(|w| !w.is_empty()).collect();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if !matches!(*w, "exit" | "exits" | "exited") {
            continue;
        }
        let mut j = i + 1;
        while j < words.len() && matches!(words[j], "status" | "statuses" | "code" | "codes" | "with" | "is")
        {
            j += 1;
        }
        while let Some(n) = words.get(j).and_then(|w| w.trim_end_matches('.').parse::<u32>().ok()) {
            out.push(n);
            j += 1;
            if matches!(words.get(j), Some(&"or") | Some(&"and")) {
                j += 1;
            }
        }
    }
    out
}

#[test]
fn guides_give_only_real_exit_statuses() {
    let statuses = exit_statuses();
    let mut problems = Vec::new();
    for (file, doc) in guides() {
        for n in stated_statuses(&doc.prose).into_iter().filter(|n| !statuses.contains(n)) {
            problems.push(format!("{file}: exit status {n} is not one of {statuses:?}"));
        }
    }
    report(problems, "exit statuses no program has");
}

#[test]
fn guides_name_only_real_message_ids() {
    let known: BTreeSet<&str> = ids::ALL.iter().map(|(_, id)| *id).collect();
    let mut problems = Vec::new();
    for (file, doc) in guides() {
        let code: Vec<&str> = doc.code.iter().map(|c| c.text.as_str()).collect();
        for text in code.iter().copied().chain([doc.prose.as_str()]) {
            for w in idents(text).filter(|w| w.len() == 32 && w.chars().all(|c| c.is_ascii_hexdigit())) {
                if !known.contains(w) {
                    problems.push(format!("{file}: {w} is not a MESSAGE_ID of src/log/ids.rs"));
                }
            }
        }
    }
    report(problems, "unknown MESSAGE_IDs");
}

#[test]
fn guides_refer_to_real_man_pages() {
    let mut problems = Vec::new();
    for (file, doc) in guides() {
        let text =
            doc.prose.clone() + &doc.code.iter().map(|c| c.text.as_str()).collect::<Vec<_>>().join("\n");
        for (i, _) in text.match_indices('(') {
            let name: String = text[..i]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
                .collect::<String>()
                .chars()
                .rev()
                .collect();
            let section = text[i + 1..].chars().next().filter(|c| ('1'..='8').contains(c));
            let ours =
                name.starts_with("worker-watcher") || name == "watcherctl" || name == "orchestrator-listener";
            if let (Some(section), true) = (section, ours && text[i + 2..].starts_with(')')) {
                if !repo().join(format!("man/{name}.{section}")).exists() {
                    problems.push(format!("{file}: {name}({section}) is not a page of man/"));
                }
            }
        }
    }
    report(problems, "man pages that do not exist");
}

#[test]
fn guide_links_lead_to_a_file_and_heading() {
    let mut files = vec!["README.md".to_string(), "BENCHMARKS.md".to_string()];
    for dir in ["docs", "systemd", "bench", "tests"] {
        markdown_under(dir, &mut files);
    }
    let mut problems = Vec::new();
    for file in &files {
        let text = read(file);
        let dir = Path::new(file).parent().unwrap_or(Path::new(""));
        for link in links(&markdown::parse(&text).prose) {
            let (path, anchor) = link.split_once('#').map_or((link.as_str(), None), |(p, a)| (p, Some(a)));
            let target = if path.is_empty() { PathBuf::from(file) } else { dir.join(path) };
            let Ok(target_text) = fs::read_to_string(repo().join(&target)) else {
                if !repo().join(&target).is_dir() {
                    problems.push(format!("{file}: ({link}) leads to no file"));
                }
                continue;
            };
            let is_md = target.extension().is_some_and(|e| e == "md");
            if let Some(anchor) = anchor.filter(|_| is_md) {
                if !anchors(&target_text).iter().any(|a| a == anchor) {
                    problems.push(format!("{file}: ({link}) names no heading of {}", target.display()));
                }
            }
        }
    }
    report(problems, "links that lead nowhere");
}

/// The README is a front page, and the guides leave the reference tables (metric families,
/// MESSAGE_IDs, exit statuses) to the man pages, which the docs test holds to the code.
#[test]
fn guides_leave_reference_tables_to_the_man_pages() {
    for guide in ["operating", "design", "migrating", "development"] {
        assert!(repo().join(format!("docs/{guide}.md")).exists(), "docs/{guide}.md is missing");
    }
    let readme = read("README.md");
    assert!(
        readme.lines().count() <= 200,
        "README.md has {} lines: move the detail to docs/",
        readme.lines().count()
    );
    let families = metric_families();
    let statuses = exit_statuses();
    let mut problems = Vec::new();
    for (file, _) in guides() {
        for row in read(&file).lines().filter(|l| l.starts_with('|')) {
            let cells: Vec<&str> = row.split('|').map(|c| c.trim().trim_matches('`')).collect();
            // A table of families (one a row), not a table that mentions one.
            let family = cells.get(1).filter(|c| families.contains(**c));
            let id = idents(row).find(|w| w.len() == 32 && w.chars().all(|c| c.is_ascii_hexdigit()));
            let status = cells.get(1).and_then(|c| c.parse::<u32>().ok()).filter(|n| statuses.contains(n));
            if family.is_some() || id.is_some() || status.is_some() {
                problems.push(format!("{file}: a table row copies the reference: {row}"));
            }
        }
    }
    report(problems, "tables that belong in the man pages");
}
