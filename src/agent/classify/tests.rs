use std::time::{Duration, SystemTime};

use super::*;
use crate::agent::interpret;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/claude/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn with_reset(name: &str, reset: u64) -> String {
    fixture(name).replace("RESET_EPOCH", &reset.to_string())
}

fn class_of(stdout: &str, exit: Exit, stderr: &str) -> Verdict {
    let output = interpret(stdout.as_bytes(), true);
    let run = Run {
        exit,
        timed_out: false,
        output: &output,
        stdout_bytes: stdout.len() as u64,
        stderr_tail: stderr,
        duration: Duration::from_secs(5),
    };
    classify(&run, EmptyOutput::Warn)
}

fn epoch_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("clock").as_secs()
}

#[test]
fn success() {
    let v = class_of(&fixture("2.0-success.json"), Exit::Code(0), "");
    assert_eq!(v.class, Class::Success);
}

#[test]
fn permanent_subtypes_are_the_reason() {
    for (file, reason) in [
        ("2.0-error-max-turns.json", "error_max_turns"),
        ("2.0-error-max-budget.json", "error_max_budget_usd"),
        ("2.0-error-structured-output.json", "error_max_structured_output_retries"),
        ("2.0-permission-denied.json", "permission_denied"),
    ] {
        for exit in [Exit::Code(0), Exit::Code(1)] {
            let v = class_of(&fixture(file), exit, "");
            assert_eq!((v.class, v.reason.as_str()), (Class::Permanent, reason), "{file}");
        }
    }
}

#[test]
fn credential_faults() {
    for file in [
        "2.0-not-logged-in.json",
        "2.0-invalid-api-key.json",
        "2.0-oauth-expired.json",
        "2.0-credit-balance.json",
    ] {
        let v = class_of(&fixture(file), Exit::Code(1), "");
        assert_eq!(v.class, Class::Credential, "{file}: {v:?}");
        assert!(v.message.starts_with("the agent cannot authenticate"), "{file}: {}", v.message);
    }
}

#[test]
fn rate_limits_with_their_reset() {
    let reset = epoch_now() + 3600;
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(reset);
    for file in ["1.0-usage-limit.json", "2.0-rate-limit-resets-at.json"] {
        let v = class_of(&with_reset(file, reset), Exit::Code(1), "");
        assert_eq!(v.class, Class::RateLimited { reset_at: Some(at) }, "{file}");
    }
    let v = class_of(&fixture("2.0-five-hour-limit.json"), Exit::Code(1), "");
    assert_eq!(v.class, Class::RateLimited { reset_at: None }, "a reset in a named zone is not parsed");
}

#[test]
fn transient_errors() {
    for file in
        ["2.0-overloaded.json", "2.0-api-500.json", "2.0-network.json", "2.0-stream-overloaded.ndjson"]
    {
        let v = class_of(&fixture(file), Exit::Code(1), "");
        assert_eq!(v.class, Class::Transient, "{file}: {v:?}");
    }
    let v = class_of("", Exit::Code(1), "Error: connect ECONNREFUSED 127.0.0.1:443\n");
    assert_eq!(v.class, Class::Transient);
}

#[test]
fn generic_failures() {
    let v = class_of("", Exit::Code(3), "boom\n");
    assert_eq!((v.class, v.reason.as_str()), (Class::Failed, "exit_code"));
    assert_eq!(v.message, "the agent exited with status 3: boom");
    let v = class_of("", Exit::Signal(9), "");
    assert_eq!(v.reason, "signal");
    let err =
        r#"{"type":"result","subtype":"error_during_execution","is_error":true,"result":"tool crashed"}"#;
    let v = class_of(err, Exit::Code(0), "");
    assert_eq!((v.class, v.reason.as_str()), (Class::Failed, "agent_error"));
}

#[test]
fn successful_output_mentioning_limits_is_still_success() {
    let ok = r#"{"type":"result","subtype":"success","is_error":false,"result":"Fixed the 429 rate limit handling; not logged in users now see a message."}"#;
    assert_eq!(class_of(ok, Exit::Code(0), "").class, Class::Success);
}

#[test]
fn timeout_wins() {
    let output = interpret(fixture("2.0-overloaded.json").as_bytes(), true);
    let run = Run {
        exit: Exit::Signal(15),
        timed_out: true,
        output: &output,
        stdout_bytes: 1,
        stderr_tail: "",
        duration: Duration::from_secs(600),
    };
    assert_eq!(classify(&run, EmptyOutput::Warn).reason, "timeout");
}

#[test]
fn empty_output_policy() {
    let output = interpret(b"", true);
    let run = |d| Run {
        exit: Exit::Code(0),
        timed_out: false,
        output: &output,
        stdout_bytes: 0,
        stderr_tail: "",
        duration: d,
    };
    assert_eq!(classify(&run(Duration::from_millis(50)), EmptyOutput::Warn).class, Class::Success);
    assert_eq!(classify(&run(Duration::from_millis(50)), EmptyOutput::Fail).reason, "empty_output");
    assert_eq!(classify(&run(Duration::from_secs(2)), EmptyOutput::Fail).class, Class::Success);
}

#[test]
fn reset_time_forms() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let secs = |s: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
    assert_eq!(reset_time(None, "Claude AI usage limit reached|1800000100", now), secs(1_800_000_100));
    let obj = serde_json::json!({"error": {"resets_at": 1_800_000_200_000u64}});
    assert_eq!(reset_time(Some(&obj), "", now), secs(1_800_000_200));
    let obj = serde_json::json!({"resetsAt": "2027-01-15T08:00:00Z"});
    assert_eq!(reset_time(Some(&obj), "", now), humantime::parse_rfc3339("2027-01-15T08:00:00Z").ok());
    let obj = serde_json::json!({"retry_after": 30});
    assert_eq!(reset_time(Some(&obj), "", now), Some(now + Duration::from_secs(30)));
    assert_eq!(
        reset_time(None, "Rate limited. Try again in 2 minutes.", now),
        Some(now + Duration::from_secs(120))
    );
    assert_eq!(
        reset_time(None, "limit resets at 2027-01-15T08:00:00Z.", now),
        humantime::parse_rfc3339("2027-01-15T08:00:00Z").ok()
    );
    assert_eq!(reset_time(None, "resets 3am", now), None);
}

#[test]
fn first_line_skips_blanks() {
    assert_eq!(first_line("\n  \n  boom \nmore"), "boom");
    assert_eq!(first_line(""), "");
}
