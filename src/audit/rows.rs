//! Per-file bookkeeping of the topic scan: which row indices were seen, as a
//! bitset sized by the ledger's row count, and how record keys are read.
//!
//! One bit per row keeps a nightly audit of millions of rows in a few MiB,
//! where a map of every key seen would grow with the whole topic.

/// How a row index fared when it was marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// First time this row was seen.
    New,
    /// The row was seen before: a duplicate key.
    Again,
    /// Row 0 or a row past the set's capacity (more rows than the ledger knows).
    Beyond,
}

/// Row indices first..=capacity seen so far, one bit each (rows before
/// `first` belong to an earlier version of the file, under its hash). The words are
/// allocated at the first mark, so a file with no record in the topics costs
/// nothing.
#[derive(Debug, Clone, Default)]
pub struct RowSet {
    words: Vec<u64>,
    first: u64,
    capacity: u64,
    seen: u64,
}

impl RowSet {
    /// Rows `first..=capacity`.
    pub fn from_row(first: u64, capacity: u64) -> Self {
        RowSet {
            words: Vec::new(),
            first: first.max(1),
            capacity,
            seen: 0,
        }
    }

    /// Distinct rows marked.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Marks 1-based row `row`.
    pub fn mark(&mut self, row: u64) -> Mark {
        if row < self.first || row > self.capacity {
            return Mark::Beyond;
        }
        if self.words.is_empty() {
            self.words = vec![0; self.capacity.div_ceil(64) as usize];
        }
        let bit = row - 1;
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        if self.words[word] & mask != 0 {
            return Mark::Again;
        }
        self.words[word] |= mask;
        self.seen += 1;
        Mark::New
    }

    /// Rows of first..=capacity never marked, as inclusive ranges in order.
    pub fn missing(&self) -> MissingRanges<'_> {
        MissingRanges {
            set: self,
            next: self.first,
        }
    }
}

/// Iterator over the unmarked ranges of a [`RowSet`]; skips whole words at a
/// time, so a complete set of millions of rows is walked in microseconds.
pub struct MissingRanges<'a> {
    set: &'a RowSet,
    next: u64,
}

impl MissingRanges<'_> {
    /// The first row >= `from` whose bit equals `marked`, or capacity + 1.
    fn next_with(&self, from: u64, marked: bool) -> u64 {
        let cap = self.set.capacity;
        let mut row = from;
        while row <= cap {
            let bit = row - 1;
            let word_ix = (bit / 64) as usize;
            let word = self.set.words.get(word_ix).copied().unwrap_or(0);
            let word = if marked { word } else { !word };
            // Bits of this word at or after `row`.
            let pending = word & (u64::MAX << (bit % 64));
            if pending != 0 {
                let found = word_ix as u64 * 64 + u64::from(pending.trailing_zeros()) + 1;
                return found.min(cap + 1);
            }
            row = (word_ix as u64 + 1) * 64 + 1;
        }
        cap + 1
    }
}

impl Iterator for MissingRanges<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        let cap = self.set.capacity;
        if self.next > cap {
            return None;
        }
        let start = self.next_with(self.next, false);
        if start > cap {
            self.next = start;
            return None;
        }
        let end = self.next_with(start, true) - 1;
        self.next = end + 1;
        Some((start, end))
    }
}

/// Splits a record key `<16 lowercase hex>-<row>` into the hash prefix (as a
/// number, for a cheap map lookup) and the row index. Anything else, including
/// a row with a leading zero (which the service never writes), is `None`.
pub fn parse_key(key: &[u8]) -> Option<(u64, u64)> {
    if key.len() < 18 || key[16] != b'-' || key[17] == b'0' {
        return None;
    }
    let mut prefix = 0u64;
    for &b in &key[..16] {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        prefix = prefix << 4 | u64::from(d);
    }
    let mut row = 0u64;
    for &b in &key[17..] {
        if !b.is_ascii_digit() {
            return None;
        }
        row = row.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some((prefix, row))
}

/// The numeric prefix of a hex SHA-256, as [`parse_key`] reads it from keys.
pub fn sha_prefix(sha256_hex: &str) -> Option<u64> {
    let head = sha256_hex.get(..16)?;
    let mut key = [b'-'; 18];
    key[..16].copy_from_slice(head.as_bytes());
    key[17] = b'1';
    parse_key(&key).map(|(p, _)| p)
}

/// The hex form of a key prefix, as it appears in keys.
pub fn prefix_hex(prefix: u64) -> String {
    format!("{prefix:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_report_new_again_and_beyond() {
        let mut s = RowSet::from_row(1, 10);
        assert_eq!(s.mark(1), Mark::New);
        assert_eq!(s.mark(1), Mark::Again);
        assert_eq!(s.mark(10), Mark::New);
        assert_eq!(s.mark(11), Mark::Beyond);
        assert_eq!(s.mark(0), Mark::Beyond);
        assert_eq!(s.seen(), 2);
    }

    #[test]
    fn missing_ranges_cover_exactly_the_unmarked_rows() {
        let mut s = RowSet::from_row(1, 200);
        for row in (1..=200).filter(|r| !(5..=7).contains(r) && !(64..=130).contains(r) && *r != 200) {
            s.mark(row);
        }
        assert_eq!(s.missing().collect::<Vec<_>>(), vec![(5, 7), (64, 130), (200, 200)]);
        let empty = RowSet::from_row(1, 3);
        assert_eq!(empty.missing().collect::<Vec<_>>(), vec![(1, 3)]);
        let mut full = RowSet::from_row(1, 128);
        (1..=128).for_each(|r| {
            full.mark(r);
        });
        assert_eq!(full.missing().count(), 0);
        assert_eq!(RowSet::from_row(1, 0).missing().count(), 0);
    }

    #[test]
    fn a_set_from_a_later_row_ignores_the_rows_before_it() {
        let mut s = RowSet::from_row(6, 10);
        assert_eq!(s.mark(5), Mark::Beyond, "an earlier version's row");
        assert_eq!(s.mark(6), Mark::New);
        assert_eq!(s.missing().collect::<Vec<_>>(), vec![(7, 10)]);
    }

    #[test]
    fn keys_parse_strictly() {
        assert_eq!(parse_key(b"00000000000000ff-12"), Some((255, 12)));
        assert_eq!(parse_key(b"00000000000000ff-012"), None);
        assert_eq!(parse_key(b"00000000000000FF-1"), None);
        assert_eq!(parse_key(b"00000000000000ff-"), None);
        assert_eq!(parse_key(b"00000000000000ff_1"), None);
        assert_eq!(parse_key(b"00000000000000ff-99999999999999999999999"), None);
        assert_eq!(sha_prefix("00000000000000ffab"), Some(255));
        assert_eq!(prefix_hex(255), "00000000000000ff");
    }
}
