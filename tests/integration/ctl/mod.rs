//! `watcherctl` against real workers: the binary run as a script would, its output and exit
//! statuses checked.

mod cancel; // `watcherctl tasks` and `cancel`: listed, cancelled queued, running or waiting; announced, counted
mod dlq; // failed tasks, their dead letters, and `dlq retry` running them again
mod status; // `watcherctl status`: live, stale and stopped workers from their heartbeats
mod submit; // `watcherctl submit`: atomic queueing, --wait, ids, stdin, refusals
