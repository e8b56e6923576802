//! Golden spool trees: a scenario's spool before (`tests/golden/NAME/in/`) and the tree the
//! daemons leave (`tests/golden/NAME/expected/`), compared file by file: every file on both
//! sides, each equal once what changes from run to run (times, hostnames, pids, durations,
//! session ids, costs, the version, the temp root's path, the names of the listener's
//! events, which are times) is replaced by a fixed placeholder. `UPDATE_GOLDEN=1` rewrites
//! expected/ from the run, as UPDATE_DOCS does for the man page.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The scenarios' folder.
pub const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");

/// Keys whose values change from run to run, wherever they are in a file, with their
/// placeholders. A null stays null: a placeholder says a value was there.
const VOLATILE: &[(&str, &str)] = &[
    ("started_at", "<time>"),
    ("finished_at", "<time>"),
    ("claimed_at", "<time>"),
    ("dead_lettered_at", "<time>"),
    ("first_started_at", "<time>"),
    ("retry_at", "<time>"),
    ("timestamp", "<time>"),
    ("time", "<time>"),
    ("emitted_at", "<time>"),
    ("first_result_at", "<time>"),
    ("oldest_queued_at", "<time>"),
    ("paused_until", "<time>"),
    ("circuit_open_until", "<time>"),
    ("duration_seconds", "<duration>"),
    ("duration_ms", "<duration>"),
    ("charged_seconds", "<duration>"),
    ("hostname", "<host>"),
    ("pid", "<pid>"),
    ("agent_pid", "<pid>"),
    ("session_id", "<session>"),
    ("total_cost_usd", "<cost>"),
    ("version", "<version>"),
];

/// Where the listener writes its events, named by the time of what they report.
const EVENTS: &str = "triggers/orchestrator";

/// What is in a root but not the daemons' spool: what the test harness puts there (util.rs:
/// notify sockets, logs, the stand-in's state), and the listener's private state
/// (ROOT/listener/: cursors, counts and a binary log, held by its unit and restart tests).
fn ignored(rel: &Path) -> bool {
    let first = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned());
    let first = first.unwrap_or_default();
    let top = rel.components().count() == 1;
    first == "stand-in-state"
        || first == "listener"
        || (top && (first.starts_with("notify-") || first.ends_with(".log")))
}

/// A file of a tree: JSON when it parses as JSON, else its bytes.
#[derive(Debug, PartialEq)]
pub enum Content {
    Json(Value),
    Bytes(Vec<u8>),
}

impl Content {
    fn of(bytes: Vec<u8>) -> Content {
        serde_json::from_slice(&bytes).map_or(Content::Bytes(bytes), Content::Json)
    }

    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Content::Json(v) => format!("{}\n", serde_json::to_string_pretty(v).expect("json")).into_bytes(),
            Content::Bytes(b) => b.clone(),
        }
    }
}

/// The files under `dir`, by path relative to it, in order.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())).flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(path);
            } else {
                out.push(path.strip_prefix(dir).expect("under dir").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Copies the tree `from` into `to`, in the order of the files' names (their mtimes then
/// follow that order, and so does the worker's first-in, first-out).
pub fn copy_tree(from: &Path, to: &Path) {
    for rel in files(from) {
        let dest = to.join(&rel);
        fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        fs::copy(from.join(&rel), &dest).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
    }
}

/// `v` with volatile values replaced by placeholders and `root` in strings by `<root>`.
fn normalize_value(v: Value, root: &str) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let placeholder = VOLATILE.iter().find(|(key, _)| *key == k).map(|(_, p)| *p);
                    let v = match (placeholder, v) {
                        (Some(p), v) if !v.is_null() => Value::String(p.into()),
                        // A task's agent session (`_watcher.session`, a dead letter's): its id.
                        (_, Value::Object(mut s)) if k == "session" && s.contains_key("id") => {
                            s.insert("id".into(), Value::String("<session>".into()));
                            Value::Object(s)
                        }
                        (_, v) => normalize_value(v, root),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| normalize_value(v, root)).collect()),
        Value::String(s) => Value::String(s.replace(root, "<root>")),
        other => other,
    }
}

/// An event's name without its time: `EVENT-WORKER-TASK`, `EVENT-WORKER` or `EVENT-BATCH`.
fn event_name(event: &Map<String, Value>) -> String {
    let subject = if event.contains_key("task_id") { "task_id" } else { "batch" };
    ["event", "worker", subject]
        .iter()
        .filter_map(|k| event.get(*k).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("-")
}

/// An event under its name without its time (`~N` added when that is taken), its `id` to
/// match.
fn renamed_event(taken: &BTreeMap<PathBuf, Content>, mut event: Map<String, Value>) -> (PathBuf, Content) {
    let base = event_name(&event);
    let (mut name, mut n) = (base.clone(), 1);
    while taken.contains_key(&Path::new(EVENTS).join(format!("{name}.json"))) {
        n += 1;
        name = format!("{base}~{n}");
    }
    event.insert("id".into(), Value::String(name.clone()));
    (Path::new(EVENTS).join(format!("{name}.json")), Content::Json(Value::Object(event)))
}

/// The tree under `root` as it is compared: spool files only, normalized, events renamed.
pub fn normalized_tree(root: &Path) -> BTreeMap<PathBuf, Content> {
    let root_s = root.display().to_string();
    let mut out = BTreeMap::new();
    for rel in files(root).into_iter().filter(|r| !ignored(r)) {
        let content = match Content::of(fs::read(root.join(&rel)).expect("read")) {
            Content::Json(v) => Content::Json(normalize_value(v, &root_s)),
            bytes => bytes,
        };
        let (rel, content) = match content {
            Content::Json(Value::Object(m)) if rel.parent() == Some(Path::new(EVENTS)) => {
                renamed_event(&out, m)
            }
            c => (rel, c),
        };
        out.insert(rel, content);
    }
    out
}

/// Compares the tree under `root` with `tests/golden/NAME/expected/`, or rewrites that with
/// UPDATE_GOLDEN=1.
pub fn check(name: &str, root: &Path) {
    let expected_dir = Path::new(GOLDEN).join(name).join("expected");
    let actual = normalized_tree(root);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = fs::remove_dir_all(&expected_dir);
        for (rel, content) in &actual {
            let dest = expected_dir.join(rel);
            fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
            fs::write(&dest, content.to_bytes()).expect("write golden");
        }
        eprintln!("UPDATE_GOLDEN: rewrote {}", expected_dir.display());
        return;
    }
    let expected: BTreeMap<PathBuf, Content> = files(&expected_dir)
        .into_iter()
        .map(|rel| {
            let c = Content::of(fs::read(expected_dir.join(&rel)).expect("read golden"));
            (rel, c)
        })
        .collect();
    let problems = differences(&expected, &actual);
    assert!(
        problems.is_empty(),
        "{name}: the spool differs from tests/golden/{name}/expected/ (if the change is meant, \
         UPDATE_GOLDEN=1 cargo test --test integration golden, and review the diff):\n{}",
        problems.join("\n")
    );
}

/// Every file missing, extra or different, with both sides of a difference.
pub fn differences(
    expected: &BTreeMap<PathBuf, Content>,
    actual: &BTreeMap<PathBuf, Content>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (rel, want) in expected {
        match actual.get(rel) {
            None => out.push(format!("missing: {}", rel.display())),
            Some(got) if got != want => {
                out.push(format!("differs: {}\n{}", rel.display(), describe(want, got)))
            }
            Some(_) => {}
        }
    }
    for rel in actual.keys().filter(|r| !expected.contains_key(*r)) {
        out.push(format!("unexpected: {}", rel.display()));
    }
    out
}

/// Where two contents differ: each JSON pointer whose values differ, or both texts.
fn describe(want: &Content, got: &Content) -> String {
    let mut out = Vec::new();
    match (want, got) {
        (Content::Json(w), Content::Json(g)) => json_differences("", w, g, &mut out),
        _ => out.push(format!(
            "  expected {:?}\n  got      {:?}",
            String::from_utf8_lossy(&want.to_bytes()),
            String::from_utf8_lossy(&got.to_bytes())
        )),
    }
    out.join("\n")
}

fn json_differences(at: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for key in w.keys().chain(g.keys().filter(|k| !w.contains_key(*k))) {
                let (a, b) = (w.get(key).unwrap_or(&Value::Null), g.get(key).unwrap_or(&Value::Null));
                if w.contains_key(key) != g.contains_key(key) {
                    let side = if w.contains_key(key) { "missing" } else { "unexpected" };
                    out.push(format!("  {at}/{key}: {side} ({})", if w.contains_key(key) { a } else { b }));
                } else {
                    json_differences(&format!("{at}/{key}"), a, b, out);
                }
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (a, b)) in w.iter().zip(g).enumerate() {
                json_differences(&format!("{at}/{i}"), a, b, out);
            }
        }
        (w, g) if w != g => out.push(format!("  {at}: expected {w}, got {g}")),
        _ => {}
    }
}
