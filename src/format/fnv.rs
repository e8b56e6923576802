//! FNV-1a, 64 bits: the hash behind the names of the listener's events and its record of the
//! results it took. Stable across builds and releases (the names must be the same after an
//! upgrade), and enough to tell them apart.

/// FNV-1a over the parts, separated by NUL (so `["ab", "c"]` and `["a", "bc"]` differ).
pub fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        let sep: &[u8] = if i == 0 { b"" } else { b"\0" };
        for b in sep.iter().chain(part.as_bytes()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_the_reference_function() {
        // FNV-1a 64 of "a" and of "foobar" (the published test vectors).
        assert_eq!(fnv1a(&["a"]), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(&["foobar"]), 0x85944171f73967e8);
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
    }
}
