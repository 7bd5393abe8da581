//! Small, fast byte-level parsing helpers shared by the loaders.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a: fast for the short keys (ids, titles) the loaders map.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Maps raw byte ids to dense indices in order of first appearance.
#[derive(Default)]
pub(crate) struct IdMap {
    map: HashMap<Vec<u8>, u32, BuildHasherDefault<Fnv>>,
    /// Raw id per index.
    pub ids: Vec<String>,
}

impl IdMap {
    /// The index of `key`, inserting it if new.
    pub fn index(&mut self, key: &[u8]) -> u32 {
        if let Some(&i) = self.map.get(key) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.map.insert(key.to_vec(), i);
        self.ids.push(String::from_utf8_lossy(key).into_owned());
        i
    }

    /// The index of `key` if present.
    pub fn get(&self, key: &[u8]) -> Option<u32> {
        self.map.get(key).copied()
    }
}

/// Lines of a byte buffer without their `\n` / `\r\n` endings, numbered from 1.
pub(crate) fn lines(buf: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    buf.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
}

/// Parse a decimal integer (optionally signed, optionally with a `.0…` fraction as RecBole's
/// float-typed timestamps have).
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    let mut i = 0;
    while i < digits.len() && digits[i].is_ascii_digit() {
        v = v
            .checked_mul(10)?
            .checked_add(i64::from(digits[i] - b'0'))?;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    if i < digits.len() {
        // allow "123.0", "123.000"
        if digits[i] != b'.' || !digits[i + 1..].iter().all(|&b| b == b'0') {
            return None;
        }
    }
    Some(if neg { -v } else { v })
}

/// Parse a finite float; the common `d` / `d.d` forms take a fast path.
pub(crate) fn parse_f64(s: &[u8]) -> Option<f64> {
    if s.len() == 1 && s[0].is_ascii_digit() {
        return Some(f64::from(s[0] - b'0'));
    }
    let v: f64 = std::str::from_utf8(s).ok()?.trim().parse().ok()?;
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_i64(b"978300760"), Some(978300760));
        assert_eq!(parse_i64(b"-5"), Some(-5));
        assert_eq!(parse_i64(b"12.000"), Some(12));
        assert_eq!(parse_i64(b"12.5"), None);
        assert_eq!(parse_i64(b"x"), None);
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_f64(b"4"), Some(4.0));
        assert_eq!(parse_f64(b"3.5"), Some(3.5));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b"abc"), None);
    }

    #[test]
    fn id_map_is_first_appearance() {
        let mut m = IdMap::default();
        assert_eq!(m.index(b"b"), 0);
        assert_eq!(m.index(b"a"), 1);
        assert_eq!(m.index(b"b"), 0);
        assert_eq!(m.get(b"a"), Some(1));
        assert_eq!(m.ids, vec!["b", "a"]);
    }

    #[test]
    fn line_endings() {
        let v: Vec<_> = lines(b"a\r\nb\n").collect();
        assert_eq!(v, vec![(1, &b"a"[..]), (2, &b"b"[..]), (3, &b""[..])]);
    }
}
