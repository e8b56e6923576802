//! Env files are read from /etc and from the spool root: any bytes must give variables with
//! valid names (what systemd would set) and problems that can be printed, never a panic; a
//! file without problems gives the same variables when read again as systemd writes them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use worker_watcher::config::envfile::parse;

fuzz_target!(|data: &[u8]| {
    let parsed = parse(data);
    for p in &parsed.problems {
        let _ = p.to_string();
    }
    for (k, _) in &parsed.vars {
        assert!(!k.is_empty() && !k.starts_with(|c: char| c.is_ascii_digit()));
        assert!(k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'), "{k:?}");
    }
    if !parsed.problems.is_empty() {
        return;
    }
    let mut text = String::new();
    for (k, v) in &parsed.vars {
        text.push_str(k);
        text.push_str("=\"");
        for c in v.chars() {
            if "\"\\`$".contains(c) {
                text.push('\\');
            }
            text.push(c);
        }
        text.push_str("\"\n");
    }
    let again = parse(text.as_bytes());
    assert!(again.problems.is_empty(), "{text:?}");
    assert_eq!(again.vars, parsed.vars, "{text:?}");
});
