//! What an agent run says about the agent's service (its API, its credentials, the network),
//! as opposed to the task: the Claude result object's structured fields first
//! (`api_error_status`, `api_error_type`, `api_error`, `terminal_reason`), then, only when they
//! say nothing, the CLI's own phrasing, anchored where the CLI puts it (the `result` text of an
//! error result; the start of a line of its output). Text that merely mentions a limit or a
//! login, as the output of a tool the agent ran may, never matches.

use serde_json::Value;

/// What the service did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiState {
    /// Not logged in, a bad or expired key or token, no permission, no credit.
    Credential,
    /// A usage or rate limit (HTTP 429).
    RateLimited,
    /// The API could not be reached: refused, unresolvable, reset, timed out.
    Network,
    /// The API answered with a server error: 5xx, overloaded (529).
    Service,
}

/// The state the structured fields of an error result name, if any.
pub fn structured(obj: &Value) -> Option<ApiState> {
    if obj.get("is_error").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let status = obj.get("api_error_status").and_then(Value::as_u64);
    if let Some(state) = status.and_then(of_status) {
        return Some(state);
    }
    let kind = obj.get("api_error_type").and_then(Value::as_str);
    if let Some(state) = kind.and_then(of_error_type) {
        return Some(state);
    }
    // 2.1.3xx: `"api_error": "connection_failed"` (or another word) when no answer came.
    match obj.get("api_error") {
        Some(Value::String(s)) if !s.is_empty() => Some(of_api_error_word(s)),
        Some(Value::Object(o)) => o
            .get("status")
            .and_then(Value::as_u64)
            .and_then(of_status)
            .or_else(|| o.get("type").and_then(Value::as_str).and_then(of_error_type)),
        _ => None,
    }
}

fn of_status(status: u64) -> Option<ApiState> {
    match status {
        401 | 403 => Some(ApiState::Credential),
        429 => Some(ApiState::RateLimited),
        500..=599 => Some(ApiState::Service),
        _ => None,
    }
}

/// The API's error types (`error.type` of its error body).
fn of_error_type(kind: &str) -> Option<ApiState> {
    match kind {
        "authentication_error" | "permission_error" | "billing_error" => Some(ApiState::Credential),
        "rate_limit_error" => Some(ApiState::RateLimited),
        "api_error" | "overloaded_error" | "timeout_error" => Some(ApiState::Service),
        _ => None,
    }
}

fn of_api_error_word(word: &str) -> ApiState {
    let w = word.to_ascii_lowercase();
    if w.contains("auth") || w.contains("login") || w.contains("credential") {
        ApiState::Credential
    } else if w.contains("rate") || w.contains("limit") {
        ApiState::RateLimited
    } else if w.contains("overload") || w.contains("server") {
        ApiState::Service
    } else {
        ApiState::Network
    }
}

/// Phrases the CLI starts its own error messages with.
const CREDENTIAL_STARTS: &[&str] = &[
    "Not logged in",
    "Invalid API key",
    "Failed to authenticate",
    "OAuth token has expired",
    "OAuth token revoked",
    "OAuth authentication",
    "Credit balance is too low",
    "Your credit balance is too low",
    "Please run /login",
];

/// The CLI's words for an API it could not reach, after "API Error: ".
const NETWORK_WORDS: &[&str] = &[
    "Unable to connect to API",
    "Connection refused",
    "Can't reach the API server",
    "Connection error",
    "Request timed out",
    "fetch failed",
    "Network error",
];

/// The state named by one message of the CLI: a line of its output, or an error result's
/// `result` text.
pub fn phrase(text: &str) -> Option<ApiState> {
    let text = text.trim_start();
    if CREDENTIAL_STARTS.iter().any(|p| text.starts_with(p)) {
        return Some(ApiState::Credential);
    }
    if text.starts_with("Claude AI usage limit reached") || is_limit_notice(text) {
        return Some(ApiState::RateLimited);
    }
    // "API Error: 529 …", "Failed to authenticate. API Error: 401 …" (checked above),
    // "API Error: Request rejected (429) · …", "API Error: Unable to connect to API (…)".
    let rest = text.split_once("API Error: ").map(|(before, rest)| (before.trim(), rest));
    let (before, rest) = rest?;
    // Only the CLI's own prefix: at the start, or after a sentence of its own.
    if !(before.is_empty() || before.ends_with('.')) || before.contains('\n') {
        return None;
    }
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let status = if digits.len() == 3 {
        digits.parse().ok()
    } else {
        rest.strip_prefix("Request rejected (").and_then(|r| r.get(..3)).and_then(|d| d.parse().ok())
    };
    if let Some(state) = status.and_then(of_status) {
        return Some(state);
    }
    if NETWORK_WORDS.iter().any(|w| rest.starts_with(w)) {
        return Some(ApiState::Network);
    }
    if rest.starts_with("Overloaded")
        || rest.starts_with("Repeated 529")
        || rest.starts_with("Internal server error")
    {
        return Some(ApiState::Service);
    }
    None
}

/// The CLI's usage-limit notices: "5-hour limit reached ∙ resets 3am", "Weekly limit reached ·
/// resets Mon 9am", "You've hit your limit · resets 3am".
fn is_limit_notice(text: &str) -> bool {
    let first = text.lines().next().unwrap_or("");
    let resets = first.contains("∙ resets") || first.contains("· resets");
    resets && (first.contains("limit reached") || first.starts_with("You've hit your"))
}

/// The state named by any line of free output (stdout that was not a result object, or
/// stderr), each line read as a message of the CLI.
pub fn lines(text: &str) -> Option<ApiState> {
    text.lines().find_map(|l| phrase(l.trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_type_fields() {
        let obj = |v: Value| structured(&v);
        assert_eq!(
            obj(serde_json::json!({"is_error": true, "api_error_status": 401})),
            Some(ApiState::Credential)
        );
        assert_eq!(
            obj(serde_json::json!({"is_error": true, "api_error_status": 529})),
            Some(ApiState::Service)
        );
        assert_eq!(
            obj(serde_json::json!({"is_error": true, "api_error_status": 429})),
            Some(ApiState::RateLimited)
        );
        assert_eq!(obj(serde_json::json!({"is_error": true, "api_error_status": 400})), None);
        assert_eq!(
            obj(
                serde_json::json!({"is_error": true, "api_error_status": null, "api_error_type": "overloaded_error"})
            ),
            Some(ApiState::Service)
        );
        assert_eq!(
            obj(serde_json::json!({"is_error": true, "api_error": "connection_failed"})),
            Some(ApiState::Network)
        );
        assert_eq!(
            obj(serde_json::json!({"is_error": true, "api_error": "usage_limit_reached"})),
            Some(ApiState::RateLimited)
        );
        assert_eq!(
            obj(serde_json::json!({"is_error": false, "api_error_status": 500})),
            None,
            "a success is a success"
        );
    }

    #[test]
    fn anchored_phrases() {
        assert_eq!(phrase("Not logged in · Please run /login"), Some(ApiState::Credential));
        assert_eq!(
            phrase("API Error: Unable to connect to API (ConnectionRefused)"),
            Some(ApiState::Network)
        );
        assert_eq!(phrase("API Error: 500 {\"type\":\"error\"}"), Some(ApiState::Service));
        assert_eq!(phrase("API Error: Request rejected (429) · slow down"), Some(ApiState::RateLimited));
        assert_eq!(phrase("Failed to authenticate. API Error: 401 expired"), Some(ApiState::Credential));
        assert_eq!(phrase("5-hour limit reached ∙ resets 3am (Europe/Paris)"), Some(ApiState::RateLimited));
        assert_eq!(phrase("Claude AI usage limit reached|1800000000"), Some(ApiState::RateLimited));
        assert_eq!(
            phrase("You've hit your session limit · resets 9:40pm (UTC)"),
            Some(ApiState::RateLimited)
        );
    }

    #[test]
    fn other_programs_words_do_not_match() {
        for text in [
            "You are not logged into any GitHub hosts. Run gh auth login to authenticate.",
            "fatal: memory limit reached",
            "error: rate limit exceeded for the GitHub API",
            "Error: connect ECONNREFUSED 127.0.0.1:5432",
            "curl: (6) Could not resolve host: example.invalid",
            "the test printed: API Error: 500 while mocking",
            "HTTP 503 Service Unavailable",
            "npm ERR! 429 Too Many Requests",
        ] {
            assert_eq!(lines(text), None, "{text}");
        }
    }
}
