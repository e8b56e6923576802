//! The spool's layout has one owner, `src/spool/layout.rs` (issue 15): no module outside the
//! backends names a spool folder, a record's suffix or a spool file. This test reads `src/`
//! and fails on a string literal used as such a path component outside `src/spool/` (the
//! layout and the backends) and `src/engine/` (an engine's own key layout), unless the
//! allow-list below names it with the reason.
//!
//! What counts: a literal without whitespace (prose, such as a log message or a help text
//! that names a folder, is not a path) that has one of [`COMPONENTS`] between its slashes, or
//! ends with one of [`SUFFIXES`] (`"{id}.json"`). Test code (`#[cfg(test)] mod`, `tests.rs`,
//! `tests/` folders) and comments are not read: tests build trees of files on purpose.

use std::path::{Path, PathBuf};

/// Folder and file names of worker-watcher-tasks(5).
const COMPONENTS: &[&str] = &[
    "tasks",
    "triggers",
    "results",
    "heartbeats",
    "dlq",
    "prompts",
    "pipes",
    "listener",
    "orchestrator",
    "taken",
    ".inflight",
    ".rejected",
    ".retried",
    ".env",
    ".spend.json",
    "state.json",
];

/// Suffixes of the spool's files.
const SUFFIXES: &[&str] = &[".json", ".pipe", ".md", ".lock", ".orig"];

/// Folders whose modules own a layout.
const OWNERS: &[&str] = &["src/spool", "src/engine"];

/// `(file, literal, why)`: the exceptions, each with its reason. An entry that no longer
/// matches anything fails the test too: remove it with the code it excused.
const ALLOWED: &[(&str, &str, &str)] =
    &[("src/ctl/tasks.rs", "tasks", "the key of the list in `watcherctl tasks --json`, not the folder")];

/// The string literals of Rust source `src` (with their line), comments skipped. Enough of
/// the lexer for this crate: plain, byte and raw strings, char literals and lifetimes.
fn literals(src: &str) -> Vec<(usize, String)> {
    let b = src.as_bytes();
    let line = |i: usize| src[..i].matches('\n').count() + 1;
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_token = i == 0 || !is_ident(b[i - 1]);
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => i = src[i..].find('\n').map_or(b.len(), |j| i + j),
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = src[i + 2..].find("*/").map_or(b.len(), |j| i + 2 + j + 2)
            }
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i = src[i + 2..].find('\'').map_or(b.len(), |j| i + 2 + j + 1)
            }
            // A char literal, or else a lifetime.
            b'\'' => i += if b.get(i + 2) == Some(&b'\'') { 3 } else { 1 },
            b'b' | b'r' if starts_token && raw_start(b, i).is_some() => {
                let (hashes, start) = raw_start(b, i).unwrap_or_default();
                let end_mark = format!("\"{}", "#".repeat(hashes));
                let end = src[start..].find(&end_mark).map_or(b.len(), |j| start + j);
                out.push((line(i), src[start..end].to_string()));
                i = end + end_mark.len();
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                out.push((line(i), src[i + 1..j.min(b.len())].to_string()));
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// At `i`, `r"`, `r#"`, `br"`…: the number of `#` and where the content starts.
fn raw_start(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if b.get(j) == Some(&b'b') {
        j += 1;
    }
    if b.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|c| **c == b'#').count();
    (b.get(j + hashes) == Some(&b'"')).then_some((hashes, j + hashes + 1))
}

/// Whether `lit` names a spool path component or file.
fn names_the_spool(lit: &str) -> bool {
    if lit.is_empty() || lit.chars().any(char::is_whitespace) {
        return false;
    }
    lit.split('/').any(|c| COMPONENTS.contains(&c)) || SUFFIXES.iter().any(|s| lit.ends_with(s))
}

/// The code of `src` that is not test code.
fn code_of(src: &str) -> &str {
    let mut from = 0;
    while let Some(k) = src[from..].find("#[cfg(test)]") {
        let at = from + k;
        if src[at + "#[cfg(test)]".len()..].trim_start().starts_with("mod ") {
            return &src[..at];
        }
        from = at + 1;
    }
    src
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("src").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() && name != "tests" {
            rust_files(&path, out);
        } else if name.ends_with(".rs") && name != "tests.rs" {
            out.push(path);
        }
    }
}

#[test]
fn only_the_spool_names_spool_folders_suffixes_and_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut found = Vec::new();
    for path in files {
        let rel = path.strip_prefix(root).expect("in the crate").display().to_string();
        if OWNERS.iter().any(|o| rel.starts_with(&format!("{o}/"))) {
            continue;
        }
        let src = std::fs::read_to_string(&path).expect("read");
        for (line, lit) in literals(code_of(&src)) {
            if names_the_spool(&lit) {
                found.push((rel.clone(), line, lit));
            }
        }
    }
    let excused =
        |(file, _, lit): &(String, usize, String)| ALLOWED.iter().any(|(f, l, _)| f == file && l == lit);
    let wrong: Vec<String> =
        found.iter().filter(|f| !excused(f)).map(|(f, l, lit)| format!("{f}:{l}: {lit:?}")).collect();
    assert!(
        wrong.is_empty(),
        "spool paths named outside src/spool/ (use spool::Layout, or add an exception with its reason):\n{}",
        wrong.join("\n")
    );
    let stale: Vec<String> = ALLOWED
        .iter()
        .filter(|(f, l, _)| !found.iter().any(|(ff, _, ll)| ff == f && ll == l))
        .map(|(f, l, why)| format!("{f}: {l:?} ({why})"))
        .collect();
    assert!(stale.is_empty(), "exceptions that no longer apply; remove them:\n{}", stale.join("\n"));
}

#[test]
fn the_scanner_finds_paths_in_code_and_not_in_prose_comments_or_tests() {
    let src = r####"
        // "results" in a comment
        let a = dir.join("results");
        let b = format!("{id}.json");
        let c = r#"tasks/x"#;
        let d = "cannot write to results/marie: no space";
        let e = '"'; let f = b"x/.inflight"; let g: &'static str = "ok";
        #[cfg(test)]
        fn only_in_tests() {}
        let h = "heartbeats";
        #[cfg(test)]
        mod tests { const T: &str = "dlq"; }
    "####;
    let hits: Vec<String> =
        literals(code_of(src)).into_iter().map(|(_, l)| l).filter(|l| names_the_spool(l)).collect();
    assert_eq!(hits, ["results", "{id}.json", "tasks/x", "x/.inflight", "heartbeats"]);
}
