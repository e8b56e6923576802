//! Agents that are not processes: each start asks a script what the run does (exit at once
//! with some output, or run until it is signalled), and the loop is woken through a mio
//! `Waker` when one ends, as SIGCHLD wakes it for a process.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Instant;

use mio::{Registry, Token, Waker};

use crate::runner::agents::Agents;
use crate::runner::supervise::Signal;
use crate::runner::{Captured, Exit, Pipe, Spec};

/// What one run does.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    /// `None`: it runs until it is signalled.
    pub(super) exit: Option<Exit>,
    /// It survives SIGTERM (only SIGKILL ends it).
    pub(super) ignores_term: bool,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

impl Plan {
    pub(super) fn exit(code: i32, stdout: &str) -> Plan {
        Plan {
            exit: Some(Exit::Code(code)),
            ignores_term: false,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    /// Runs until a signal ends it; `ignores_term`: only SIGKILL does.
    pub(super) fn hang(ignores_term: bool) -> Plan {
        Plan { exit: None, ignores_term, stdout: String::new(), stderr: String::new() }
    }
}

/// A start, as the agents saw it.
#[derive(Clone, Debug)]
pub(super) struct Started {
    pub(super) task_id: String,
    pub(super) attempt: u32,
    pub(super) at: Instant,
    /// The agent's arguments, after the program.
    pub(super) args: Vec<String>,
}

impl Started {
    /// The value of option `flag` among the arguments.
    pub(super) fn option(&self, flag: &str) -> Option<&str> {
        let i = self.args.iter().position(|a| a == flag)?;
        self.args.get(i + 1).map(String::as_str)
    }
}

type Script = Box<dyn FnMut(&str, u32) -> Plan>;

/// The agents' shared state: the test's script, the runs by slot, the starts so far.
pub(super) struct Runs {
    script: Script,
    slots: Vec<Option<(Plan, Option<Exit>)>>,
    waker: Option<Waker>,
    pub(super) started: Vec<Started>,
    /// Signals sent, by slot.
    pub(super) signals: Vec<(usize, Signal)>,
}

impl Runs {
    /// Runs started from now on do what `script` says.
    pub(super) fn set_script(&mut self, script: impl FnMut(&str, u32) -> Plan + 'static) {
        self.script = Box::new(script);
    }

    pub(super) fn starts_of(&self, task_id: &str) -> Vec<&Started> {
        self.started.iter().filter(|s| s.task_id == task_id).collect()
    }

    fn wake(&self) {
        if let Some(w) = &self.waker {
            let _ = w.wake();
        }
    }
}

#[derive(Clone)]
pub(super) struct FakeAgents {
    pub(super) runs: Rc<RefCell<Runs>>,
}

impl FakeAgents {
    pub(super) fn new(script: impl FnMut(&str, u32) -> Plan + 'static) -> FakeAgents {
        let runs = Runs {
            script: Box::new(script),
            slots: Vec::new(),
            waker: None,
            started: Vec::new(),
            signals: Vec::new(),
        };
        FakeAgents { runs: Rc::new(RefCell::new(runs)) }
    }
}

fn env<'a>(spec: &'a Spec, name: &str) -> Option<&'a std::ffi::OsStr> {
    spec.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_os_str())
}

impl Agents for FakeAgents {
    fn register(&mut self, registry: &Registry, exits: Token) -> io::Result<()> {
        self.runs.borrow_mut().waker = Some(Waker::new(registry, exits)?);
        Ok(())
    }

    fn start(&mut self, slot: usize, spec: Spec, _: &Registry, _: &dyn Fn(Pipe) -> Token) -> io::Result<i32> {
        let mut runs = self.runs.borrow_mut();
        let task_id =
            env(&spec, "WATCHER_TASK_ID").map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
        let attempt = env(&spec, "WATCHER_ATTEMPT").and_then(|v| v.to_str()?.parse().ok()).unwrap_or(0);
        let description = String::from_utf8_lossy(&spec.stdin).into_owned();
        let args = spec.argv.iter().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
        runs.started.push(Started { task_id, attempt, at: Instant::now(), args });
        let plan = (runs.script)(&description, attempt);
        let exit = plan.exit;
        if runs.slots.len() <= slot {
            runs.slots.resize(slot + 1, None);
        }
        runs.slots[slot] = Some((plan, exit));
        if exit.is_some() {
            runs.wake();
        }
        Ok(10_000 + slot as i32)
    }

    fn ready(&mut self, _: usize, _: Pipe, _: &Registry, _: &mut [u8]) {}

    fn signal(&mut self, slot: usize, signal: Signal) {
        let mut runs = self.runs.borrow_mut();
        let Some(Some((plan, exit))) = runs.slots.get_mut(slot) else { return };
        if exit.is_none() && !(plan.ignores_term && signal == Signal::Term) {
            let number = if signal == Signal::Term { libc::SIGTERM } else { libc::SIGKILL };
            *exit = Some(Exit::Signal(number));
        }
        runs.signals.push((slot, signal));
        runs.wake();
    }

    fn try_exit(&mut self, slot: usize) -> io::Result<Option<Exit>> {
        Ok(self.runs.borrow().slots.get(slot).and_then(|r| r.as_ref()).and_then(|(_, exit)| *exit))
    }

    fn finish(&mut self, slot: usize, _: &Registry, _: &mut [u8]) -> Captured {
        let taken = self.runs.borrow_mut().slots.get_mut(slot).and_then(Option::take);
        let Some((plan, _)) = taken else { return Captured::default() };
        Captured {
            stdout_bytes: plan.stdout.len() as u64,
            stdout: plan.stdout.into_bytes(),
            stderr_tail: plan.stderr,
            ..Captured::default()
        }
    }
}
