//! A small open-addressing hash map from unit id to a dense slot, tuned for the event loop.

const EMPTY: u32 = u32::MAX;

/// Map u64 unit ids → u32 values with linear probing and Fibonacci hashing.
#[derive(Debug, Clone)]
pub struct UnitIndex {
    slots: Vec<(u64, u32)>,
    shift: u32,
    len: usize,
}

impl Default for UnitIndex {
    fn default() -> Self {
        Self::with_capacity(1024)
    }
}

impl UnitIndex {
    /// An index sized for about `n` units.
    pub fn with_capacity(n: usize) -> Self {
        let cap = (n.max(8) * 2).next_power_of_two();
        UnitIndex {
            slots: vec![(0, EMPTY); cap],
            shift: 64 - cap.trailing_zeros(),
            len: 0,
        }
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Value of `key`, if present.
    #[inline]
    pub fn get(&self, key: u64) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let (k, v) = self.slots[i];
            if v == EMPTY {
                return None;
            }
            if k == key {
                return Some(v);
            }
            i = (i + 1) & mask;
        }
    }

    /// Insert or overwrite; `value` must not be `u32::MAX`.
    pub fn insert(&mut self, key: u64, value: u32) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let (k, v) = self.slots[i];
            if v == EMPTY {
                self.slots[i] = (key, value);
                self.len += 1;
                return;
            }
            if k == key {
                self.slots[i].1 = value;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        let cap = old.len() * 2;
        self.slots = vec![(0, EMPTY); cap];
        self.shift = 64 - cap.trailing_zeros();
        self.len = 0;
        for (k, v) in old {
            if v != EMPTY {
                self.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_and_finds_many_keys() {
        let mut idx = UnitIndex::with_capacity(4);
        for k in 0..10_000u64 {
            idx.insert(k * 7919, k as u32);
        }
        assert_eq!(idx.len(), 10_000);
        for k in 0..10_000u64 {
            assert_eq!(idx.get(k * 7919), Some(k as u32));
        }
        assert_eq!(idx.get(1), None);
        idx.insert(0, 5);
        assert_eq!(idx.get(0), Some(5));
        assert_eq!(idx.len(), 10_000);
    }
}

/// The first membership of a unit with its exposure time, stored inline in the hash slot so
/// that the event loop touches one cache line per event for single-membership units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Unit id.
    pub key: u64,
    /// First exposure time of the head membership.
    pub first_ts: i64,
    /// Head membership index (`u32::MAX` marks an empty slot).
    pub membership: u32,
    /// Non-zero when the unit has further memberships (other experiments).
    pub more: u32,
}

/// Read-only open-addressing table of [`Head`]s, built once all exposures are known.
#[derive(Debug, Clone)]
pub struct HeadTable {
    slots: Vec<Head>,
    shift: u32,
}

impl HeadTable {
    /// Build from a unit index; `describe(membership)` gives (first_ts, has_more).
    pub fn build(index: &UnitIndex, describe: impl Fn(u32) -> (i64, bool)) -> Self {
        let cap = (index.len().max(8) * 2).next_power_of_two();
        let empty = Head {
            key: 0,
            first_ts: 0,
            membership: EMPTY,
            more: 0,
        };
        let mut t = HeadTable {
            slots: vec![empty; cap],
            shift: 64 - cap.trailing_zeros(),
        };
        let mask = cap - 1;
        for &(key, m) in &index.slots {
            if m == EMPTY {
                continue;
            }
            let (first_ts, more) = describe(m);
            let mut i = t.home(key);
            while t.slots[i].membership != EMPTY {
                i = (i + 1) & mask;
            }
            t.slots[i] = Head {
                key,
                first_ts,
                membership: m,
                more: u32::from(more),
            };
        }
        t
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// The head of `key`, if the unit was exposed.
    #[inline]
    pub fn get(&self, key: u64) -> Option<&Head> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let h = &self.slots[i];
            if h.membership == EMPTY {
                return None;
            }
            if h.key == key {
                return Some(h);
            }
            i = (i + 1) & mask;
        }
    }
}

/// Read-only map from unit id to its first membership, chosen for the ids at hand: a direct
/// array when the ids are dense (most logs number their units), else a [`HeadTable`].
#[derive(Debug, Clone)]
pub enum UnitLookup {
    /// `heads[unit_id - base]`.
    Direct {
        /// Smallest unit id.
        base: u64,
        /// One entry per id in `base..base + len` (`membership == u32::MAX`: not exposed).
        heads: Vec<(i64, u32, u32)>,
    },
    /// Open addressing over the ids.
    Hashed(HeadTable),
}

impl UnitLookup {
    /// Build from a unit index; `describe(membership)` gives (first_ts, has_more).
    pub fn build(index: &UnitIndex, describe: impl Fn(u32) -> (i64, bool)) -> Self {
        let live = || index.slots.iter().filter(|(_, m)| *m != EMPTY);
        let (lo, hi) = live().fold((u64::MAX, 0u64), |(lo, hi), &(k, _)| (lo.min(k), hi.max(k)));
        let span = hi.saturating_sub(lo).saturating_add(1);
        let dense = !index.is_empty() && span <= (index.len() as u64).saturating_mul(4) + 4096;
        if !dense || span > (1 << 28) {
            return UnitLookup::Hashed(HeadTable::build(index, describe));
        }
        let mut heads = vec![(0i64, EMPTY, 0u32); span as usize];
        for &(k, m) in live() {
            let (first_ts, more) = describe(m);
            heads[(k - lo) as usize] = (first_ts, m, u32::from(more));
        }
        UnitLookup::Direct { base: lo, heads }
    }

    /// (first exposure time, head membership, has more memberships) of `unit`.
    #[inline(always)]
    pub fn get(&self, unit: u64) -> Option<(i64, u32, bool)> {
        match self {
            UnitLookup::Direct { base, heads } => {
                let i = unit.wrapping_sub(*base);
                if i >= heads.len() as u64 {
                    return None;
                }
                let (ts, m, more) = heads[i as usize];
                if m == EMPTY {
                    None
                } else {
                    Some((ts, m, more != 0))
                }
            }
            UnitLookup::Hashed(t) => t.get(unit).map(|h| (h.first_ts, h.membership, h.more != 0)),
        }
    }
}

#[cfg(test)]
mod lookup_tests {
    use super::*;

    #[test]
    fn direct_and_hashed_lookups_agree() {
        for spread in [1u64, 1_000_003] {
            let mut idx = UnitIndex::default();
            for k in 0..5_000u64 {
                idx.insert(10 + k * spread, k as u32);
            }
            let l = UnitLookup::build(&idx, |m| (i64::from(m) * 3, m.is_multiple_of(7)));
            assert_eq!(matches!(l, UnitLookup::Direct { .. }), spread == 1);
            for k in 0..5_000u64 {
                let m = k as u32;
                assert_eq!(
                    l.get(10 + k * spread),
                    Some((i64::from(m) * 3, m, m.is_multiple_of(7)))
                );
            }
            assert_eq!(l.get(9), None);
            assert_eq!(l.get(u64::MAX), None);
        }
    }
}
