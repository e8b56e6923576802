//! Why a task failed, or why a run was not charged: the one closed vocabulary of the `reason`
//! written in results, dead letters and task histories, and of the `reason` label of the
//! metrics. [`Reason::as_str`] is the only place these words are spelled; the docs test reads
//! the lists from here.
//!
//! Most reasons come from an agent run ([`super::classify`]); the others are the worker's
//! own verdicts (a file that is not a task, a runaway guard, a task that keeps dying with the
//! daemon). It lives beside the classifier, the lowest layer that needs it.

use std::fmt;

/// A reason, in the order the metrics list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// No outcome within the task's time limit; the agent was killed.
    Timeout,
    /// A non-zero exit status.
    ExitCode,
    /// Killed by a signal.
    Signal,
    /// The agent could not be started.
    SpawnError,
    /// Exit 0, but the agent reported an error (`is_error`).
    AgentError,
    /// Exit 0 without any output in under a second, with EMPTY_OUTPUT=fail.
    EmptyOutput,
    /// Not a valid task (not JSON, no description, a bad id, a duplicate, …).
    Invalid,
    /// Found in flight after the daemon died more than MAX_RECLAIMS times.
    ReclaimLimit,
    /// The same failure REPEATED_FAILURE_LIMIT times in a row.
    RepeatedFailure,
    /// MAX_TASK_RUNS runs, reclaims included.
    AttemptLimit,
    /// MAX_TASK_WALL_TIME charged to the task.
    TimeLimit,
    /// The agent stopped at its turn limit.
    MaxTurns,
    /// The agent stopped at its spending limit.
    MaxBudget,
    /// The agent could not produce its structured output.
    MaxStructuredOutputRetries,
    /// The agent was denied a tool it needed.
    PermissionDenied,
    /// A usage or rate limit of the agent's service (not charged).
    RateLimited,
    /// The agent's credentials were refused (an outage: not charged).
    Credential,
    /// The agent's API cannot be reached (an outage: not charged).
    Network,
    /// The agent's API fails or is overloaded (an outage: not charged).
    Service,
}

/// What a reason can be the reason of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The end of a task (a failed result, a dead letter); some are also retried first.
    Final { retried: bool },
    /// A run not charged to its task: the whole worker was held.
    Uncharged,
}

impl Reason {
    /// Every reason, in declaration order.
    pub const ALL: [Reason; 19] = [
        Reason::Timeout,
        Reason::ExitCode,
        Reason::Signal,
        Reason::SpawnError,
        Reason::AgentError,
        Reason::EmptyOutput,
        Reason::Invalid,
        Reason::ReclaimLimit,
        Reason::RepeatedFailure,
        Reason::AttemptLimit,
        Reason::TimeLimit,
        Reason::MaxTurns,
        Reason::MaxBudget,
        Reason::MaxStructuredOutputRetries,
        Reason::PermissionDenied,
        Reason::RateLimited,
        Reason::Credential,
        Reason::Network,
        Reason::Service,
    ];

    /// The word written in files and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::ExitCode => "exit_code",
            Reason::Signal => "signal",
            Reason::SpawnError => "spawn_error",
            Reason::AgentError => "agent_error",
            Reason::EmptyOutput => "empty_output",
            Reason::Invalid => "invalid",
            Reason::ReclaimLimit => "reclaim_limit",
            Reason::RepeatedFailure => "repeated_failure",
            Reason::AttemptLimit => "attempt_limit",
            Reason::TimeLimit => "time_limit",
            // Claude's own result subtypes, kept as the agent spells them.
            Reason::MaxTurns => "error_max_turns",
            Reason::MaxBudget => "error_max_budget_usd",
            Reason::MaxStructuredOutputRetries => "error_max_structured_output_retries",
            Reason::PermissionDenied => "permission_denied",
            Reason::RateLimited => "rate_limited",
            Reason::Credential => "credential",
            Reason::Network => "network",
            Reason::Service => "service",
        }
    }

    pub const fn kind(self) -> Kind {
        match self {
            Reason::Timeout
            | Reason::ExitCode
            | Reason::Signal
            | Reason::SpawnError
            | Reason::AgentError
            | Reason::EmptyOutput => Kind::Final { retried: true },
            Reason::Invalid
            | Reason::ReclaimLimit
            | Reason::RepeatedFailure
            | Reason::AttemptLimit
            | Reason::TimeLimit
            | Reason::MaxTurns
            | Reason::MaxBudget
            | Reason::MaxStructuredOutputRetries
            | Reason::PermissionDenied => Kind::Final { retried: false },
            Reason::RateLimited | Reason::Credential | Reason::Network | Reason::Service => Kind::Uncharged,
        }
    }

    /// The reason spelled `word`, if any.
    pub fn parse(word: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == word)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A list of reasons by kind.
#[derive(Clone, Copy)]
enum Pick {
    Final,
    Retried,
    Uncharged,
}

impl Pick {
    const fn takes(self, r: Reason) -> bool {
        match (self, r.kind()) {
            (Pick::Final, Kind::Final { .. }) | (Pick::Uncharged, Kind::Uncharged) => true,
            (Pick::Retried, Kind::Final { retried }) => retried,
            _ => false,
        }
    }

    /// How many reasons the list has.
    const fn count(self) -> usize {
        let (mut i, mut n) = (0, 0);
        while i < Reason::ALL.len() {
            if self.takes(Reason::ALL[i]) {
                n += 1;
            }
            i += 1;
        }
        n
    }

    /// The words of the list, in declaration order.
    const fn words<const N: usize>(self) -> [&'static str; N] {
        let mut out = [""; N];
        let (mut i, mut n) = (0, 0);
        while i < Reason::ALL.len() {
            if self.takes(Reason::ALL[i]) {
                out[n] = Reason::ALL[i].as_str();
                n += 1;
            }
            i += 1;
        }
        out
    }
}

/// Why a task fails: the `reason` of results and dead letters.
pub const FINAL: [&str; Pick::Final.count()] = Pick::Final.words();
/// Why an attempt is retried (a file that is not a task never is).
pub const RETRIED: [&str; Pick::Retried.count()] = Pick::Retried.words();
/// Why a run is not charged as an attempt.
pub const UNCHARGED: [&str; Pick::Uncharged.count()] = Pick::Uncharged.words();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed_once_and_reads_back() {
        for (i, r) in Reason::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i, "ALL is in declaration order");
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reason::Service as usize + 1, Reason::ALL.len(), "the last variant is listed");
        assert_eq!(Reason::parse("no_such_reason"), None);
    }

    #[test]
    fn the_lists_split_the_vocabulary() {
        assert_eq!(FINAL.len() + UNCHARGED.len(), Reason::ALL.len());
        assert!(RETRIED.iter().all(|r| FINAL.contains(r)));
        assert_eq!(
            FINAL,
            [
                "timeout",
                "exit_code",
                "signal",
                "spawn_error",
                "agent_error",
                "empty_output",
                "invalid",
                "reclaim_limit",
                "repeated_failure",
                "attempt_limit",
                "time_limit",
                "error_max_turns",
                "error_max_budget_usd",
                "error_max_structured_output_retries",
                "permission_denied",
            ]
        );
        assert_eq!(RETRIED, ["timeout", "exit_code", "signal", "spawn_error", "agent_error", "empty_output"]);
        assert_eq!(UNCHARGED, ["rate_limited", "credential", "network", "service"]);
    }
}
