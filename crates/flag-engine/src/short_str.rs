//! Equality of the short strings evaluation compares all the time — context keys, variant
//! names, country codes, e-mail domains.
//!
//! `==` on strings calls `memcmp`, whose call and length-dependent branches cost more than
//! comparing a dozen bytes, and mispredict when lengths vary from one context to the next.
//! Up to 16 bytes, two overlapping word loads from each side decide instead. The context's key
//! hash reads keys with the same word loads.

/// Whether `a` and `b` are the same string.
#[inline]
pub(crate) fn equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let length = a.len();
    if length != b.len() {
        return false;
    }
    match length {
        0 => true,
        // `&`, not `&&`: both halves are cheap, and one branch predicts better than two.
        1..=3 => (a[0] == b[0]) & (a[length / 2] == b[length / 2]) & (a[length - 1] == b[length - 1]),
        4..=7 => (word32(a, 0) == word32(b, 0)) & (word32(a, length - 4) == word32(b, length - 4)),
        8..=16 => (word64(a, 0) == word64(b, 0)) & (word64(a, length - 8) == word64(b, length - 8)),
        _ => a == b,
    }
}

/// Whether `text` ends with `suffix`.
#[inline]
pub(crate) fn ends_with(text: &str, suffix: &str) -> bool {
    text.len() >= suffix.len()
        && text.is_char_boundary(text.len() - suffix.len())
        && equal(&text[text.len() - suffix.len()..], suffix)
}

/// Whether `text` starts with `prefix`.
#[inline]
pub(crate) fn starts_with(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len() && text.is_char_boundary(prefix.len()) && equal(&text[..prefix.len()], prefix)
}

/// The four bytes at `at` as one word.
pub(crate) fn word32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_ne_bytes(word)
}

/// The eight bytes at `at` as one word.
pub(crate) fn word64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_ne_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_standard_comparisons_at_every_length() {
        let text = "abcdefghijklmnopqrstuvwxyz-0123456789-ünïcødé";
        let mut checked = 0;
        for length in 0..=text.len() {
            for start in 0..=text.len() - length {
                let Some(a) = text.get(start..start + length) else {
                    continue;
                };
                for other in 0..=text.len() - length {
                    let Some(b) = text.get(other..other + length) else {
                        continue;
                    };
                    assert_eq!(equal(a, b), a == b, "{a:?} {b:?}");
                    checked += 1;
                }
                // One differing byte anywhere is seen.
                for position in 0..length {
                    let mut changed = a.as_bytes().to_vec();
                    changed[position] ^= 1;
                    if let Ok(changed) = std::str::from_utf8(&changed) {
                        assert!(!equal(a, changed), "{a:?} {changed:?}");
                    }
                }
            }
        }
        assert!(checked > 10_000);
        for (text, affix) in [
            ("ana@shop.com", "@shop.com"),
            ("shop.com", "@shop.com"),
            ("ü", "\u{bc}"),
            ("", ""),
        ] {
            assert_eq!(ends_with(text, affix), text.ends_with(affix), "{text:?} {affix:?}");
            assert_eq!(starts_with(text, affix), text.starts_with(affix), "{text:?} {affix:?}");
        }
        assert!(starts_with("ana@shop.com", "ana@"));
    }
}
