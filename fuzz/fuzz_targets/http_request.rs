//! The metrics endpoint's request heads are outside input (any local client): whatever bytes
//! arrive, the parser asks for more, gives a request, or gives a 4xx to answer, never a
//! panic; a head read in pieces gets the same answer as read at once; and a response written
//! for it keeps its head intact (no line break from the request gets into it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use worker_watcher::http::{parse, Parse};

fuzz_target!(|data: &[u8]| {
    let whole = parse(data, false);
    match &whole {
        Parse::Incomplete => {}
        Parse::Request(r) => {
            assert!(r.path.starts_with('/'), "{r:?}");
            if let Some(resp) = r.read_only() {
                assert_eq!(resp.status, 405);
            }
        }
        Parse::Reject(resp) => {
            assert!((400..500).contains(&resp.status), "{resp:?}");
            let bytes = resp.to_bytes(false);
            let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
            let head = &bytes[..head_end];
            let bare_lf = head.iter().enumerate().any(|(i, b)| *b == b'\n' && (i == 0 || head[i - 1] != b'\r'));
            assert!(!bare_lf, "every line of the head ends in CRLF");
        }
    }
    if matches!(parse(data, true), Parse::Incomplete) {
        panic!("a full buffer is never incomplete");
    }
    // In pieces: a prefix is incomplete, or already the same answer.
    if let Parse::Request(_) = &whole {
        for cut in [data.len() / 3, data.len() / 2, data.len().saturating_sub(1)] {
            match parse(&data[..cut], false) {
                Parse::Incomplete => {}
                other => assert_eq!(other, whole, "a prefix of {cut} bytes answered differently"),
            }
        }
    }
});
