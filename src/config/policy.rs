//! The agent-aware settings: what failures mean, runaway guards, budgets.

use std::time::Duration;

use super::{value, ConfigError, Resolver};
use crate::agent::classify::EmptyOutput;

/// How the worker treats what its agent reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub empty_output: EmptyOutput,
    pub rate_limit_pause: Duration,
    /// 0: off.
    pub repeated_failure_limit: u32,
    /// 0: off.
    pub max_task_runs: u32,
    pub max_task_wall_time: Option<Duration>,
    pub max_turns_flag: Option<String>,
    pub max_budget_flag: Option<String>,
    /// AGENT_SESSION_FLAG, AGENT_RESUME_FLAG: `None` off.
    pub session_flag: Option<String>,
    pub resume_flag: Option<String>,
    /// `None`: no spend cap.
    pub worker_budget_usd: Option<f64>,
    pub worker_budget_window: Duration,
    pub preflight: bool,
}

fn flag(s: &str) -> Result<Option<String>, ()> {
    let s = s.trim();
    match s {
        "" => Ok(None),
        _ if s.starts_with('-') && !s.contains(char::is_whitespace) => Ok(Some(s.to_string())),
        _ => Err(()),
    }
}

/// A flag setting that is unset: Claude Code's own flag when the agent is `claude` (by its
/// program name), else off.
fn claude_flag(set: Option<Option<String>>, program: &str, claude: &str) -> Option<String> {
    let is_claude = std::path::Path::new(program).file_name().is_some_and(|n| n == "claude");
    set.unwrap_or_else(|| is_claude.then(|| claude.to_string()))
}

/// The policy settings; `program` is the agent's command (CLAUDE_COMMAND's first word).
pub(super) fn policy(r: &mut Resolver, program: &str) -> Result<Policy, ConfigError> {
    let budget = r.req("WORKER_BUDGET_USD", |s| value::float(s, 0.0, true))?;
    let wall = r.req_secs("MAX_TASK_WALL_TIME")?;
    Ok(Policy {
        empty_output: r.req("EMPTY_OUTPUT", |s| match s.trim().to_ascii_lowercase().as_str() {
            "accept" => Ok(EmptyOutput::Accept),
            "warn" => Ok(EmptyOutput::Warn),
            "fail" => Ok(EmptyOutput::Fail),
            _ => Err(()),
        })?,
        rate_limit_pause: r.req_secs("RATE_LIMIT_PAUSE")?,
        repeated_failure_limit: r.req("REPEATED_FAILURE_LIMIT", |s| value::uint(s, 0, 1000))? as u32,
        max_task_runs: r.req("MAX_TASK_RUNS", |s| value::uint(s, 0, 1_000_000))? as u32,
        max_task_wall_time: Some(wall).filter(|d| !d.is_zero()),
        max_turns_flag: r.req("AGENT_MAX_TURNS_FLAG", flag)?,
        max_budget_flag: r.req("AGENT_MAX_BUDGET_FLAG", flag)?,
        session_flag: claude_flag(r.get("AGENT_SESSION_FLAG", flag)?, program, "--session-id"),
        resume_flag: claude_flag(r.get("AGENT_RESUME_FLAG", flag)?, program, "--resume"),
        worker_budget_usd: Some(budget).filter(|b| *b > 0.0),
        worker_budget_window: r.req_secs("WORKER_BUDGET_WINDOW")?,
        preflight: r.req("AGENT_PREFLIGHT", value::boolean)?,
    })
}
