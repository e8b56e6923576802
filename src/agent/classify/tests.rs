use std::time::{Duration, SystemTime};

use super::*;
use crate::agent::interpret;
use crate::agent::reason::Reason;

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
            assert_eq!(v.class, Class::Permanent(Reason::parse(reason).expect("a reason")), "{file}");
            assert_eq!(v.reason().map(Reason::as_str), Some(reason));
        }
    }
}

/// What each recorded case of the real CLI (tests/fixtures/claude/VERSION/manifest.json) is.
fn expected(case: &str) -> Option<Class> {
    let rate_limited = Class::RateLimited { reset_at: None };
    Some(match case {
        "success" => Class::Success,
        "not-logged-in" | "invalid-key" | "api-401" | "api-403" => Class::Outage(Cause::Credential),
        // Any reset time: "resets 9:40pm (UTC)" depends on when it was recorded.
        "api-429" | "api-429-reset" | "api-429-past" | "usage-limit" | "usage-limit-past" => rate_limited,
        "api-500" | "api-529" => Class::Outage(Cause::Service),
        "connection-refused" | "unresolvable-host" => Class::Outage(Cause::Network),
        "empty-stdin" => Class::Failed(Reason::ExitCode),
        _ => return None,
    })
}

#[test]
fn every_recording_of_the_real_cli() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude");
    let mut versions: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("manifest.json").is_file())
        .collect();
    versions.sort();
    assert!(versions.len() >= 2, "recordings of two CLI versions: {versions:?}");
    let mut checked = 0;
    for version in versions {
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(version.join("manifest.json")).expect("manifest"))
                .expect("manifest is JSON");
        for case in manifest["cases"].as_array().expect("cases") {
            let name = case["case"].as_str().expect("case");
            let read = |k: &str| {
                case[k].as_str().map_or_else(String::new, |f| {
                    std::fs::read_to_string(version.join(f)).expect("fixture file")
                })
            };
            let (stdout, stderr) = (read("stdout"), read("stderr"));
            let exit = Exit::Code(case["exit"].as_i64().expect("exit") as i32);
            let mut v = class_of(&stdout, exit, &stderr);
            if let Class::RateLimited { reset_at } = &mut v.class {
                *reset_at = None;
            }
            let want = expected(name).unwrap_or_else(|| panic!("no expected class for case {name}"));
            let at = format!("{}/{}: {v:?}", version.display(), case["stdout"]);
            assert_eq!(v.class, want, "{at}");
            checked += 1;
        }
    }
    assert!(checked >= 60, "every case in both modes of both versions: {checked}");
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
        assert_eq!(v.class, Class::Outage(Cause::Credential), "{file}: {v:?}");
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
fn outages_of_the_service_and_the_network() {
    for (file, cause) in [
        ("2.0-overloaded.json", Cause::Service),
        ("2.0-api-500.json", Cause::Service),
        ("2.0-network.json", Cause::Network),
        ("2.0-stream-overloaded.ndjson", Cause::Service),
    ] {
        let v = class_of(&fixture(file), Exit::Code(1), "");
        assert_eq!(v.class, Class::Outage(cause), "{file}: {v:?}");
    }
    // The CLI's text mode, no result object: its own lines, on either stream.
    for (stdout, stderr, cause) in [
        ("API Error: Unable to connect to API (ConnectionRefused)\n", "", Cause::Network),
        ("", "API Error: Unable to connect to API (FailedToOpenSocket)\n", Cause::Network),
        ("API Error: 529 Overloaded\n", "", Cause::Service),
        ("Not logged in · Please run /login\n", "", Cause::Credential),
        (
            "API Error: Can't reach the API server — check your internet or DNS (ENOTFOUND)\n",
            "",
            Cause::Network,
        ),
    ] {
        let v = class_of(stdout, Exit::Code(1), stderr);
        assert_eq!(v.class, Class::Outage(cause), "{stdout}{stderr}");
    }
}

#[test]
fn the_words_of_the_agents_tools_are_not_its_api_state() {
    for stderr in [
        "fatal: memory limit reached\n",
        "You are not logged into any GitHub hosts. To log in, run: gh auth login\n",
        "Error: connect ECONNREFUSED 127.0.0.1:5432\n",
        "warning: rate limit exceeded, retrying\n",
    ] {
        let v = class_of("", Exit::Code(1), stderr);
        assert_eq!(v.class, Class::Failed(Reason::ExitCode), "{stderr}");
    }
    // The model's own words in an error result of the run are not the CLI's either.
    let err = r#"{"type":"result","subtype":"error_during_execution","is_error":true,"result":"gh says: You are not logged into any GitHub hosts; the memory limit reached 2 GB"}"#;
    assert_eq!(class_of(err, Exit::Code(1), "").class, Class::Failed(Reason::ExitCode));
}

#[test]
fn generic_failures() {
    let v = class_of("", Exit::Code(3), "boom\n");
    assert_eq!(v.class, Class::Failed(Reason::ExitCode));
    assert_eq!(v.message, "the agent exited with status 3: boom");
    let v = class_of("", Exit::Signal(9), "");
    assert_eq!(v.reason(), Some(Reason::Signal));
    let err =
        r#"{"type":"result","subtype":"error_during_execution","is_error":true,"result":"tool crashed"}"#;
    let v = class_of(err, Exit::Code(0), "");
    assert_eq!(v.class, Class::Failed(Reason::AgentError));
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
    assert_eq!(classify(&run, EmptyOutput::Warn).reason(), Some(Reason::Timeout));
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
    assert_eq!(
        classify(&run(Duration::from_millis(50)), EmptyOutput::Fail).reason(),
        Some(Reason::EmptyOutput)
    );
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
    // 1_800_000_000 is 2027-01-15T08:00:00Z.
    let at = |h: u64, m: u64| {
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_799_971_200 + h * 3600 + m * 60))
    };
    let text = |t: &str| format!("You've hit your 5-hour limit · resets {t} (UTC)");
    assert_eq!(reset_time(None, &text("9:40am"), now), at(9, 40));
    assert_eq!(reset_time(None, &text("12pm"), now), at(12, 0));
    assert_eq!(reset_time(None, &text("7:55am"), now), at(7, 55), "just passed: in the past");
    assert_eq!(reset_time(None, &text("12:30am"), now), at(0, 30), "16 h ahead is no 5-hour limit");
    assert_eq!(reset_time(None, &text("1:15pm"), now), at(13, 15));
    assert_eq!(reset_time(None, "resets 9:40pm (Europe/Paris)", now), None);
}

#[test]
fn first_line_skips_blanks() {
    assert_eq!(first_line("\n  \n  boom \nmore"), "boom");
    assert_eq!(first_line(""), "");
}
