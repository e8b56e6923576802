//! The last top-level JSON object of a stream, kept whatever its size: what a stdout cut at
//! MAX_OUTPUT_BYTES would lose. Claude's result object is the whole document in `json` mode
//! and the last line in `stream-json` mode, and it says whether the run was an error; a cap
//! must never turn an error into a success.
//!
//! The scan is incremental and its memory bounded: every string is kept up to STRING_CAP
//! bytes (cut at a character, and not inside an escape), a member of the object that grows
//! past MEMBER_CAP anyway (deep arrays) is left out, and an object past TOTAL_CAP is given up.
//! What is kept is valid JSON: the object's members with their long strings shortened. Text
//! that is not JSON passes through without effect.

/// The longest string kept (the `result` text of an error is short; its head is enough).
const STRING_CAP: usize = 16 * 1024;
/// The largest member kept.
const MEMBER_CAP: usize = 64 * 1024;
/// The largest summary of an object.
const TOTAL_CAP: usize = 256 * 1024;
/// `escape` right after a backslash.
const AFTER_BACKSLASH: u8 = 5;

#[derive(Debug, Default)]
pub struct LastObject {
    /// The object being read (depth > 0): its summary so far.
    cur: Vec<u8>,
    depth: u32,
    in_string: bool,
    /// Inside an escape: AFTER_BACKSLASH, or the hex digits of `\uXXXX` still to come.
    escape: u8,
    /// Bytes of the current string kept so far.
    string_len: usize,
    /// The rest of the current string is not kept.
    string_cut: bool,
    /// Where the current member starts in `cur`; `None` between members.
    member_start: Option<usize>,
    /// The current member is left out (too big).
    dropping: bool,
    /// The object is too big: read to its end, keep nothing.
    abandoned: bool,
    /// The last complete object, if nothing but white space came after it.
    last: Option<Vec<u8>>,
}

impl LastObject {
    pub fn push(&mut self, data: &[u8]) {
        for &b in data {
            self.byte(b);
        }
    }

    /// The last complete top-level object's summary, if the stream ended with it.
    pub fn take(self) -> Option<Vec<u8>> {
        if self.depth > 0 {
            return None;
        }
        self.last
    }

    fn byte(&mut self, b: u8) {
        if self.depth == 0 {
            return self.outside(b);
        }
        if self.in_string {
            return self.string_byte(b);
        }
        match b {
            b'"' => {
                self.member_begins();
                self.in_string = true;
                self.string_len = 0;
                self.string_cut = false;
                self.keep(b);
            }
            b'{' | b'[' => {
                self.member_begins();
                self.depth += 1;
                self.keep(b);
            }
            b'}' | b']' => {
                self.depth -= 1;
                if self.depth == 0 {
                    return self.object_ends();
                }
                self.keep(b);
            }
            b',' if self.depth == 1 => self.member_start = None,
            b' ' | b'\t' | b'\r' | b'\n' if self.depth == 1 => {}
            _ => {
                self.member_begins();
                self.keep(b);
            }
        }
    }

    fn outside(&mut self, b: u8) {
        match b {
            b'{' => {
                self.last = None;
                self.cur.clear();
                self.cur.push(b);
                self.depth = 1;
                self.in_string = false;
                self.escape = 0;
                self.string_cut = false;
                self.member_start = None;
                self.dropping = false;
                self.abandoned = false;
            }
            b' ' | b'\t' | b'\r' | b'\n' => {}
            // Anything else after the object: it was not the end of the output.
            _ => self.last = None,
        }
    }

    fn string_byte(&mut self, b: u8) {
        // A cut may fall before a character or an escape, never inside one.
        let at_boundary = self.escape == 0 && b & 0xC0 != 0x80;
        match self.escape {
            0 if b == b'"' => {
                self.in_string = false;
                return self.keep(b);
            }
            0 if b == b'\\' => self.escape = AFTER_BACKSLASH,
            0 => {}
            AFTER_BACKSLASH => self.escape = if b == b'u' { 4 } else { 0 },
            _ => self.escape -= 1,
        }
        if self.string_cut {
            return;
        }
        if self.string_len >= STRING_CAP && at_boundary {
            self.string_cut = true;
            return;
        }
        self.string_len += 1;
        self.keep(b);
    }

    /// At depth 1, a byte that is not a separator starts a member.
    fn member_begins(&mut self) {
        if self.depth != 1 || self.member_start.is_some() {
            return;
        }
        self.dropping = false;
        self.member_start = Some(self.cur.len());
        if self.cur.len() > 1 {
            self.keep(b',');
        }
    }

    fn keep(&mut self, b: u8) {
        if self.abandoned || self.dropping {
            return;
        }
        self.cur.push(b);
        self.check_size();
    }

    fn check_size(&mut self) {
        if let Some(start) = self.member_start {
            if self.cur.len() - start > MEMBER_CAP {
                self.cur.truncate(start);
                self.dropping = true;
                return;
            }
        }
        if self.cur.len() > TOTAL_CAP {
            self.abandoned = true;
            self.cur = Vec::new();
        }
    }

    fn object_ends(&mut self) {
        if self.abandoned {
            self.last = None;
            return;
        }
        self.cur.push(b'}');
        self.last = Some(std::mem::take(&mut self.cur));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn last_of(chunks: &[&[u8]]) -> Option<Value> {
        let mut l = LastObject::default();
        for c in chunks {
            l.push(c);
        }
        l.take().map(|b| serde_json::from_slice(&b).expect("the summary is JSON"))
    }

    #[test]
    fn small_objects_whole() {
        let doc =
            json!({"type": "result", "is_error": true, "n": 1.5, "a": [1, {"b": "}"}], "s": "q\"\\u00e9\\n"});
        let text = serde_json::to_vec(&doc).expect("json");
        assert_eq!(last_of(&[&text]), Some(doc.clone()));
        // One byte at a time, and pretty-printed.
        let pretty = serde_json::to_vec_pretty(&doc).expect("json");
        let bytes: Vec<&[u8]> = pretty.chunks(1).collect();
        assert_eq!(last_of(&bytes), Some(doc));
    }

    #[test]
    fn the_last_line_of_a_stream() {
        let s = b"{\"type\":\"system\"}\n{\"type\":\"assistant\",\"x\":\"{\"}\n{\"type\":\"result\",\"is_error\":true}\n";
        assert_eq!(last_of(&[s]), Some(json!({"type": "result", "is_error": true})));
        assert_eq!(last_of(&[b"{\"a\":1}\n{\"b\":"]), None, "cut inside the last object");
        assert_eq!(last_of(&[b"{\"a\":1}\nmore text\n"]), None, "text after it");
        assert_eq!(last_of(&[b"just text, no JSON\n"]), None);
    }

    #[test]
    fn long_strings_are_shortened_keeping_the_fields() {
        let big = "é".repeat(1_000_000) + "\\u00e9";
        let text =
            format!(r#"{{"type":"result","result":"{big}","is_error":true,"usage":{{"output_tokens":7}}}}"#);
        let v = last_of(&[text.as_bytes()]).expect("kept");
        assert_eq!(v["is_error"], true);
        assert_eq!(v["usage"]["output_tokens"], 7);
        let r = v["result"].as_str().expect("string");
        assert!(r.len() <= STRING_CAP && r.len() > STRING_CAP - 4 && r.starts_with("éé"), "{}", r.len());
    }

    #[test]
    fn an_escape_is_never_cut() {
        for pad in 0..8 {
            let s = "a".repeat(STRING_CAP - pad) + &"\\u00e9\\n".repeat(10);
            let text = format!(r#"{{"result":"{s}","is_error":true}}"#);
            let v = last_of(&[text.as_bytes()]).expect("kept");
            assert_eq!(v["is_error"], true, "pad {pad}");
        }
    }

    #[test]
    fn huge_members_are_left_out() {
        let many: Vec<Value> = (0..20_000).map(|i| json!({"i": i})).collect();
        let doc = json!({"type": "result", "permission_denials": many, "is_error": true});
        let v = last_of(&[&serde_json::to_vec(&doc).expect("json")]).expect("kept");
        assert_eq!(v, json!({"type": "result", "is_error": true}));
    }
}
