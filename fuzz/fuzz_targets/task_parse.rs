//! Task files are outside input: any bytes must give a task or an `Invalid` whose message
//! can be printed, never a panic. A valid task must survive the daemon's rewrite of it
//! (`to_bytes`, then `parse` again, as after a failed attempt or a reclaim) unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use worker_watcher::format::task::Task;

fuzz_target!(|data: &[u8]| {
    match Task::parse(data, "fuzz-1", "marie") {
        Err(why) => {
            let _ = why.to_string();
        }
        Ok(task) => {
            let bytes = task.to_bytes();
            let again = Task::parse(&bytes, "other-stem", "marie").expect("a rewritten task stays valid");
            assert_eq!(again.id, task.id);
            assert_eq!(again.description, task.description);
            assert_eq!(again.timeout, task.timeout);
            assert_eq!(again.max_retries, task.max_retries);
            assert_eq!(again.state, task.state);
            assert_eq!(again.to_bytes(), bytes, "the rewrite is stable");
        }
    }
});
