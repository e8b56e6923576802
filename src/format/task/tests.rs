use super::*;
use serde_json::json;

fn parse(v: serde_json::Value) -> Result<Task, Invalid> {
    Task::parse(v.to_string().as_bytes(), "file-stem", "marie")
}

#[test]
fn full_task() {
    let t = parse(json!({"task_id": "test-001", "description": "Echo 'Hello'", "worker": "marie",
        "timeout": 600, "max_retries": 3, "metadata": {"batch": "b1"}, "extra": [1]}))
    .expect("valid");
    assert_eq!(t.id, "test-001");
    assert_eq!(t.timeout, Some(Duration::from_secs(600)));
    assert_eq!(t.max_retries, Some(3));
    assert_eq!(t.metadata(), json!({"batch": "b1"}));
    assert_eq!(t.doc["extra"], json!([1]), "unknown fields kept");
    let t = parse(json!({"description": "x", "max_turns": 5, "max_budget_usd": 0.5})).expect("valid");
    assert_eq!((t.max_turns, t.max_budget_usd), (Some(5), Some(0.5)));
}

#[test]
fn id_defaults_to_the_file_stem() {
    let t = parse(json!({"description": "x"})).expect("valid");
    assert_eq!(t.id, "file-stem");
    assert_eq!(t.doc["task_id"], "file-stem");
}

#[test]
fn each_problem_is_named() {
    let cases: Vec<(&[u8], &str)> = vec![
        (b"{not json", "not valid JSON"),
        (b"[1,2]", "not a JSON object but an array"),
        (br#"{"task_id": "../etc", "description": "x"}"#, "task_id \"../etc\" is invalid"),
        (br#"{"task_id": 7, "description": "x"}"#, "task_id \"7\" is invalid"),
        (br#"{"task_id": "ok"}"#, "\"description\" is missing"),
        (br#"{"description": ""}"#, "\"description\" must be a non-empty string"),
        (
            br#"{"description": "x", "worker": "anga"}"#,
            "\"worker\" is \"anga\" but this queue belongs to \"marie\"",
        ),
        (br#"{"description": "x", "timeout": -1}"#, "\"timeout\" must be a number of seconds > 0"),
        (br#"{"description": "x", "max_retries": "3"}"#, "\"max_retries\" must be a whole number"),
        (br#"{"description": "x", "max_turns": 0}"#, "\"max_turns\" must be a whole number from 1"),
        (
            br#"{"description": "x", "max_budget_usd": -1}"#,
            "\"max_budget_usd\" must be a number of US dollars > 0",
        ),
    ];
    for (bytes, expected) in cases {
        let err = Task::parse(bytes, "stem", "marie").expect_err(expected);
        assert!(err.to_string().contains(expected), "{err} / {expected}");
    }
}

#[test]
fn ids() {
    assert!(is_valid_id("a"));
    assert!(is_valid_id("Task_1.2-x"));
    assert!(is_valid_id(&"a".repeat(128)));
    assert!(!is_valid_id(&"a".repeat(129)));
    for bad in ["", ".a", "-a", "a/b", "a b", "é", "a\0"] {
        assert!(!is_valid_id(bad), "{bad:?}");
    }
}

#[test]
fn state_round_trips_and_is_omitted_when_empty() {
    let mut t = parse(json!({"description": "x"})).expect("valid");
    assert!(!String::from_utf8_lossy(&t.to_bytes()).contains(STATE_KEY));
    t.state.attempts = 2;
    t.state.reclaims = 1;
    t.state.history.push(Failure {
        attempt: 1,
        reason: "exit_code".into(),
        exit_code: Some(1),
        ..Failure::default()
    });
    let back = Task::parse(&t.to_bytes(), "file-stem", "marie").expect("valid");
    assert_eq!(back.state, t.state);
    assert_eq!(back.doc, t.doc);
}

#[test]
fn a_rewritten_task_keeps_its_retry_time_to_the_last_bit() {
    // Found by the task_parse fuzz target: a long decimal parsed to one f64, written back in
    // its shortest form, parsed to a neighbour (serde_json's default float parsing is not
    // always correctly rounded; its `float_roundtrip` feature is).
    let long = "17958448888888888888888888888888888888888888888888888888621.25";
    let text = format!(r#"{{"description":"d","_watcher":{{"attempts":1,"retry_at":{long}}}}}"#);
    let task = Task::parse(text.as_bytes(), "t1", "marie").expect("valid");
    let again = Task::parse(&task.to_bytes(), "t1", "marie").expect("still valid");
    assert_eq!(again.state.retry_at.map(f64::to_bits), task.state.retry_at.map(f64::to_bits));
    assert_eq!(again.to_bytes(), task.to_bytes());
}
