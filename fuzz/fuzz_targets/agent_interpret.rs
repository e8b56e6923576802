//! The agent's stdout is outside input: whatever it prints, complete or cut short, is read
//! into a value and maybe a report without a panic, and the value can be written out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use worker_watcher::agent::interpret;

fuzz_target!(|data: &[u8]| {
    for complete in [true, false] {
        let out = interpret(data, complete);
        let _ = serde_json::to_vec(&out.value).expect("the output value serializes");
        if let Some(report) = out.report {
            let _ = serde_json::to_vec(&report).expect("the report serializes");
        }
    }
});
