//! Before READY=1: the agent command must resolve to an executable (else exit 78 saying what
//! was looked for and in which PATH), and with AGENT_PREFLIGHT=true one canary run must
//! succeed, so a broken agent leaves the unit failed instead of filling the dead-letter queue.
//! A canary that failed for a reason that passes (the agent's service overloaded, rate-limited
//! or out of reach; no answer in time) is not a configuration error: exit 75, and systemd
//! tries again.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use super::Daemon;
use crate::agent::classify::{self, Cause, Class};
use crate::agent::interpret_captured;
use crate::error::Fatal;
use crate::format::task::Task;
use crate::runner::agents::Agents;
use crate::runner::supervise::Signal;
use crate::runner::{Exit, Pipe, Spec};

/// What the canary run is asked.
const CANARY_PROMPT: &str = "This is a health check of the worker. Reply with the single word OK.";
/// How long the canary may take.
const CANARY_TIMEOUT: Duration = Duration::from_secs(300);

fn executable(p: &Path) -> bool {
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where `program` is found: itself when it has a slash, else the first match in `path`.
pub fn resolve(program: &str, path: Option<&str>) -> Result<PathBuf, String> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return if executable(&p) { Ok(p) } else { Err(format!("{program} is not an executable file")) };
    }
    let path = path.unwrap_or("");
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| executable(p))
        .ok_or_else(|| format!("{program:?} was not found in PATH={path}"))
}

impl Daemon {
    /// Checks the agent command (always) and runs the canary (AGENT_PREFLIGHT=true).
    pub(super) fn preflight(&mut self) -> Result<(), Fatal> {
        let program = self.cfg.tuning.agent_argv.first().cloned().unwrap_or_default();
        let path = self.layers.env.get("PATH").map(String::as_str);
        resolve(&program, path).map_err(|e| Fatal::Config(format!("CLAUDE_COMMAND: {e}")))?;
        if !self.cfg.tuning.policy.preflight {
            return Ok(());
        }
        self.log.info("preflight: one canary run of the agent", &[]);
        let doc = serde_json::json!({"task_id": "preflight", "description": CANARY_PROMPT});
        let task = Task::parse(doc.to_string().as_bytes(), "preflight", &self.cfg.worker)
            .map_err(|e| Fatal::Other(format!("preflight task: {e}")))?;
        let spec = self.spec(&task, 1, None, None);
        let started = Instant::now();
        let ran = run_to_end(self.agents.as_mut(), spec, CANARY_TIMEOUT, &mut self.scratch);
        // Nothing else runs yet: whatever the canary left goes now.
        self.agents.sweep_soon();
        self.agents.sweep();
        self.contain_warnings();
        let (exit, timed_out, captured) =
            ran.map_err(|e| Fatal::io(format!("AGENT_PREFLIGHT: the agent could not run: {e}"), &e))?;
        let output = interpret_captured(&captured);
        let run = classify::Run {
            exit,
            timed_out,
            output: &output,
            stdout_bytes: captured.stdout_bytes,
            stderr_tail: &captured.stderr_tail,
            duration: started.elapsed(),
        };
        let verdict = classify::classify(&run, self.cfg.tuning.policy.empty_output);
        let reason = verdict.reason().map_or("", |r| r.as_str());
        let message = format!("AGENT_PREFLIGHT: the canary run failed ({reason}): {}", verdict.message);
        match verdict.class {
            Class::Success => {}
            // The agent's service is down, overloaded or rate-limited, or did not answer: not a
            // setting to change; systemd tries again later.
            Class::Outage(Cause::Network | Cause::Service) | Class::RateLimited { .. } => {
                return Err(Fatal::Unavailable(message))
            }
            _ if timed_out => return Err(Fatal::Unavailable(message)),
            Class::Outage(Cause::Credential) | Class::Failed(_) | Class::Permanent(_) => {
                return Err(Fatal::Config(message))
            }
        }
        self.log.info("preflight: the agent answered", &[("DURATION_MS", &started.elapsed().as_millis())]);
        Ok(())
    }
}

/// Runs `spec` to its end in the first slot of `agents` (the loop runs nothing yet), on a poll
/// of its own, killing its group after `timeout`.
fn run_to_end(
    agents: &mut dyn Agents,
    spec: Spec,
    timeout: Duration,
    scratch: &mut [u8],
) -> std::io::Result<(Exit, bool, crate::runner::Captured)> {
    const SLOT: usize = 0;
    let mut poll = Poll::new()?;
    agents.start(SLOT, spec, poll.registry(), &|p| Token(p as usize))?;
    let mut events = Events::with_capacity(8);
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    loop {
        // The agent's exit is polled: this runs before the loop and its SIGCHLD handling.
        match poll.poll(&mut events, Some(Duration::from_millis(50))) {
            Err(e) if e.kind() != std::io::ErrorKind::Interrupted => return Err(e),
            _ => {}
        }
        for e in events.iter() {
            if let Some(pipe) = Pipe::from_index(e.token().0) {
                agents.ready(SLOT, pipe, poll.registry(), scratch);
            }
        }
        if let Some(exit) = agents.try_exit(SLOT)? {
            return Ok((exit, timed_out, agents.finish(SLOT, poll.registry(), scratch)));
        }
        if !timed_out && Instant::now() >= deadline {
            timed_out = true;
            agents.signal(SLOT, Signal::Kill);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_execvp() {
        assert_eq!(resolve("sh", Some("/nonexistent:/bin")), Ok(PathBuf::from("/bin/sh")));
        assert!(resolve("/bin/sh", None).is_ok());
        let e = resolve("claude-nope", Some("/usr/bin:/bin")).expect_err("missing");
        assert_eq!(e, "\"claude-nope\" was not found in PATH=/usr/bin:/bin");
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("agent");
        std::fs::write(&plain, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(resolve(&plain.display().to_string(), None).is_err(), "not executable");
        assert!(resolve("/nonexistent/claude", None).is_err());
    }
}
