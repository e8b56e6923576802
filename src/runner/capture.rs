//! Bounded buffers for a child's output: stdout kept up to a cap (the rest counted, and its
//! last JSON object kept apart, see [`LastObject`]), stderr as a tail of its last bytes.

use super::last_object::LastObject;

/// Keeps the first `max` bytes and counts the rest.
#[derive(Debug)]
pub struct Capture {
    buf: Vec<u8>,
    max: usize,
    total: u64,
    last: LastObject,
}

impl Capture {
    pub fn new(max: usize) -> Capture {
        Capture { buf: Vec::new(), max, total: 0, last: LastObject::default() }
    }

    pub fn push(&mut self, data: &[u8]) {
        let room = self.max.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&data[..room.min(data.len())]);
        self.total += data.len() as u64;
        self.last.push(data);
    }

    /// When the output was cut: its last top-level JSON object (the agent's result), with
    /// long strings shortened, if the output ended with one.
    pub fn last_object(&mut self) -> Option<Vec<u8>> {
        if !self.truncated() {
            return None;
        }
        std::mem::take(&mut self.last).take()
    }

    pub fn truncated(&self) -> bool {
        self.total > self.buf.len() as u64
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Keeps the last `keep` bytes.
#[derive(Debug)]
pub struct Tail {
    buf: Vec<u8>,
    keep: usize,
}

impl Tail {
    pub fn new(keep: usize) -> Tail {
        Tail { buf: Vec::new(), keep }
    }

    pub fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(self.keep)..];
        self.buf.extend_from_slice(data);
        if self.buf.len() > 2 * self.keep {
            let cut = self.buf.len() - self.keep;
            self.buf.drain(..cut);
        }
    }

    /// The tail as text, starting at a character boundary.
    pub fn text(&self) -> String {
        let start = self.buf.len().saturating_sub(self.keep);
        let mut s = &self.buf[start..];
        // Skip UTF-8 continuation bytes cut in half by the window.
        while let Some((&b, rest)) = s.split_first() {
            if b & 0xC0 != 0x80 {
                break;
            }
            s = rest;
        }
        String::from_utf8_lossy(s).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_caps_and_counts() {
        let mut c = Capture::new(5);
        c.push(b"abc");
        assert!(!c.truncated());
        c.push(b"defgh");
        assert!(c.truncated());
        assert_eq!(c.total(), 8);
        assert_eq!(c.into_bytes(), b"abcde");
    }

    #[test]
    fn a_cut_keeps_the_last_object() {
        let mut c = Capture::new(10);
        c.push(b"{\"type\":\"result\",\"is_error\":false}");
        assert_eq!(c.last_object(), Some(b"{\"type\":\"result\",\"is_error\":false}".to_vec()));
        let mut c = Capture::new(100);
        c.push(b"{\"a\":1}");
        assert_eq!(c.last_object(), None, "not cut: the output itself is whole");
    }

    #[test]
    fn zero_cap_keeps_nothing() {
        let mut c = Capture::new(0);
        c.push(b"x");
        assert!(c.truncated());
        assert!(c.into_bytes().is_empty());
    }

    #[test]
    fn tail_keeps_last_bytes() {
        let mut t = Tail::new(4);
        for chunk in [&b"hello "[..], b"world", b"!!"] {
            t.push(chunk);
        }
        assert_eq!(t.text(), "ld!!");
    }

    #[test]
    fn tail_starts_at_a_character() {
        let mut t = Tail::new(3);
        t.push("a\u{e9}".as_bytes());
        t.push(b"z");
        assert_eq!(t.text(), "\u{e9}z");
        t.push(b"y"); // the window now starts inside the two-byte character
        assert_eq!(t.text(), "zy");
    }
}
