//! worker-watcher on its own: tasks in and results out, and everything that can go wrong
//! between (see host/ for the machine failing under it).

mod activation; // where the metrics endpoint listens: socket activation, port 0, a busy address
mod agent_aware; // each class of Claude result handled as it should be; runaway guards, spend cap, preflight
mod breaker; // the circuit breaker opens, holds new tasks, half-opens, closes
mod crash; // kill -9 at any moment loses nothing: every task ends with exactly one result
mod envfile; // env files read as systemd reads them: a secret reaches the agent byte for byte
mod escape; // what an agent leaves behind (setsid, double fork) is killed at its run's end
mod hostile; // careless clients of the metrics endpoint: connections bounded, tasks still run
mod inplace; // producers that write a task in place are never punished
mod invalid; // every malformed input lands in the dead-letter queue with its reason
mod metrics; // the worker's families and values after known outcomes, /healthz, HTTP errors
mod outage; // outages of the agent's service hold the queue without charging any task
mod pipe; // the named-pipe intake: lines in, tasks run; bad lines dead-lettered
mod running; // tasks in, results out: retries, agent errors, output limits
mod sessions; // the agent's session: named, resumed by a retry and a reclaim, replaced when lost
mod settings; // bad settings stop the daemon at start-up: one line naming the variable, status 78
mod signals; // SIGTERM drains and loses nothing; SIGHUP reloads; one process per worker
mod timeouts; // agents that do not finish are ended by the timeout, with nothing of theirs left
