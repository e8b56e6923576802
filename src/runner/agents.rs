//! The seam between the worker's loop and the agent processes: the loop says which slot runs
//! what, forwards readiness of the agents' pipes, sends stop signals and asks for exits;
//! [`Agents`] does the rest. [`Processes`] runs real children ([`Child`]); a test can run the
//! loop against agents that are not processes at all.

use std::io;

use mio::{Registry, Token};

use super::supervise::Signal;
use super::{Captured, Child, Exit, Pipe, Spec};

/// The agents of one loop, by slot.
pub trait Agents {
    /// Registers what tells the loop that an agent may have exited (`exits`). Real processes
    /// are told by SIGCHLD, through the loop's own signal pipe, so they register nothing.
    fn register(&mut self, registry: &Registry, exits: Token) -> io::Result<()>;
    /// Starts `spec` in the free `slot`, its pipes registered with `registry` under
    /// `token(pipe)`. Returns its process id. On an error nothing runs in `slot`.
    fn start(
        &mut self,
        slot: usize,
        spec: Spec,
        registry: &Registry,
        token: &dyn Fn(Pipe) -> Token,
    ) -> io::Result<i32>;
    /// A pipe of the agent in `slot` is ready; `scratch` is a reusable read buffer.
    fn ready(&mut self, slot: usize, pipe: Pipe, registry: &Registry, scratch: &mut [u8]);
    /// Sends `signal` to the process group of the agent in `slot`.
    fn signal(&mut self, slot: usize, signal: Signal);
    /// How the agent in `slot` ended, once it has (it is reaped then).
    fn try_exit(&mut self, slot: usize) -> io::Result<Option<Exit>>;
    /// After its exit: what the agent in `slot` printed; the slot is free again.
    fn finish(&mut self, slot: usize, registry: &Registry, scratch: &mut [u8]) -> Captured;
}

/// Agents as child processes.
#[derive(Debug, Default)]
pub struct Processes {
    children: Vec<Option<Child>>,
}

impl Processes {
    fn child(&mut self, slot: usize) -> Option<&mut Child> {
        self.children.get_mut(slot).and_then(Option::as_mut)
    }
}

impl Agents for Processes {
    fn register(&mut self, _registry: &Registry, _exits: Token) -> io::Result<()> {
        Ok(())
    }

    fn start(
        &mut self,
        slot: usize,
        spec: Spec,
        registry: &Registry,
        token: &dyn Fn(Pipe) -> Token,
    ) -> io::Result<i32> {
        let child = Child::spawn(spec)?;
        if let Err(e) = child.register(registry, token) {
            child.signal_group(libc::SIGKILL);
            let _ = child.finish(registry, &mut []);
            return Err(e);
        }
        let pid = child.pid();
        if self.children.len() <= slot {
            self.children.resize_with(slot + 1, || None);
        }
        self.children[slot] = Some(child);
        Ok(pid)
    }

    fn ready(&mut self, slot: usize, pipe: Pipe, registry: &Registry, scratch: &mut [u8]) {
        if let Some(child) = self.child(slot) {
            child.on_ready(pipe, registry, scratch);
        }
    }

    fn signal(&mut self, slot: usize, signal: Signal) {
        if let Some(child) = self.child(slot) {
            child.signal_group(signal.number());
        }
    }

    fn try_exit(&mut self, slot: usize) -> io::Result<Option<Exit>> {
        match self.child(slot) {
            Some(child) => child.try_exit(),
            None => Ok(None),
        }
    }

    fn finish(&mut self, slot: usize, registry: &Registry, scratch: &mut [u8]) -> Captured {
        match self.children.get_mut(slot).and_then(Option::take) {
            Some(child) => child.finish(registry, scratch),
            None => Captured::default(),
        }
    }
}
