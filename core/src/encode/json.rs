//! The JSON writing primitives: Python-compatible string escaping, integers,
//! and the block writer values are assembled with.

use crate::schema::RecordKind;

/// Appends `s` as a JSON string body (no surrounding quotes), escaped as
/// Python's `json.dumps(ensure_ascii=True)` escapes it.
#[inline]
pub(super) fn push_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Nearly every CDR value is plain printable ASCII: copy it whole.
    if is_plain(bytes) {
        out.extend_from_slice(bytes);
    } else {
        push_escaped(out, s);
    }
}

/// Whether no byte needs escaping: all in `0x20..=0x7e` except `"` and `\`.
/// Eight bytes at a time with the classic SWAR byte tests (exact for
/// "is there such a byte"), the tail one byte at a time.
#[inline]
pub(super) fn is_plain(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Bytes of x that are zero, or below n for `less(x, n)`, have their high bit set.
    let less = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut bad = 0u64;
    for chunk in chunks.by_ref().filter_map(<[u8]>::first_chunk::<8>) {
        let x = u64::from_le_bytes(*chunk);
        bad |= less(x, 0x20)
            | less(x ^ (ONES * 0x22), 1)
            | less(x ^ (ONES * 0x5c), 1)
            | less(x ^ (ONES * 0x7f), 1)
            | (x & HIGHS);
    }
    bad == 0 && chunks.remainder().iter().all(|&b| is_plain_byte(b))
}

#[inline]
fn is_plain_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

/// [`push_escaped`] for a value known to be UTF-8 (so nothing is replaced).
#[cold]
#[inline(never)]
fn push_escaped_utf8(out: &mut Vec<u8>, value: &[u8]) {
    push_escaped(out, &String::from_utf8_lossy(value));
}

#[cold]
fn push_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let push_u = |out: &mut Vec<u8>, unit: u16| {
        out.extend_from_slice(b"\\u");
        for shift in [12, 8, 4, 0] {
            out.push(HEX[usize::from((unit >> shift) & 0xf)]);
        }
    };
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            ' '..='~' => out.push(c as u8),
            _ => {
                let mut units = [0u16; 2];
                for &unit in c.encode_utf16(&mut units).iter() {
                    push_u(out, unit);
                }
            }
        }
    }
}

/// Appends the decimal digits of `n`.
#[inline]
pub(super) fn push_u64(out: &mut Vec<u8>, n: u64) {
    const E16: u64 = 10_000_000_000_000_000;
    if n < E16 {
        push_digits(out, n, digit_count(n));
    } else {
        let high = n / E16;
        push_digits(out, high, digit_count(high));
        push_digits(out, n % E16, 16);
    }
}

fn digit_count(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// Appends `n` as exactly `len` digits (`n < 10^len`, `len <= 16`), zero-padded.
///
/// The digits are computed in registers, eight at a time, and stored as one
/// 16-byte block that is then cut back: no division loop, and no digit-by-digit
/// stores that the block copy would have to wait for.
#[inline]
fn push_digits(out: &mut Vec<u8>, n: u64, len: usize) {
    // Both halves are below 10^8, so the casts cannot truncate.
    let high = eight_digits((n / 100_000_000) as u32);
    let low = eight_digits((n % 100_000_000) as u32);
    // Byte 0 is the first digit; dropping the leading zeros is a shift.
    let digits = (u128::from(high) | u128::from(low) << 64) >> (8 * (16 - len));
    let end = out.len() + len;
    out.extend_from_slice(&digits.to_le_bytes());
    out.truncate(end);
}

/// The eight ASCII digits of `n < 10^8`, zero-padded, the first in the lowest
/// byte. Splits into 4-, 2- and 1-digit lanes with multiply-shift divisions
/// that are exact in these ranges (x/100 as x*10486>>20 for x < 10^4, x/10 as
/// x*103>>10 for x < 100), all lanes at once.
#[inline]
fn eight_digits(n: u32) -> u64 {
    let x = u64::from(n / 10_000) | u64::from(n % 10_000) << 32;
    let hundreds = ((x * 10_486) >> 20) & 0x0000_007f_0000_007f;
    let x = hundreds | (x - hundreds * 100) << 16;
    let tens = ((x * 103) >> 10) & 0x000f_000f_000f_000f;
    let x = tens | (x - tens * 10) << 8;
    x | 0x3030_3030_3030_3030
}

/// Writes a JSON value into a `Vec` through a cursor, in fixed-size blocks.
///
/// A value is some twenty short pieces. Appending each with
/// `Vec::extend_from_slice` costs a `memcpy` call (the length is known only at
/// run time) and the Vec's length bookkeeping, which together cost more than
/// the copying. The writer keeps the Vec's length ahead of the cursor
/// (zero-filled room), copies whole constant-size blocks at the cursor, advances
/// it by the piece's true length, and cuts the Vec back in [`Writer::finish`].
pub(super) struct Writer<'a> {
    out: &'a mut Vec<u8>,
    at: usize,
}

impl<'a> Writer<'a> {
    /// Starts replacing the content of `out`.
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out, at: 0 }
    }

    /// The next `n` bytes at the cursor, growing the Vec if needed.
    #[inline(always)]
    fn room(&mut self, n: usize) -> &mut [u8] {
        let end = self.at + n;
        if self.out.len() < end {
            self.grow(end);
        }
        &mut self.out[self.at..end]
    }

    /// Geometric growth: a value takes a resize or two, not one per piece.
    /// Out of line, so that the piece writers stay small enough to inline.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, end: usize) {
        let len = end.max(2 * self.out.len()).max(512);
        self.out.resize(len, 0);
    }

    /// Writes `block[..len]`.
    #[inline(always)]
    pub(super) fn block<const N: usize>(&mut self, block: &[u8; N], len: usize) {
        if let Some(dst) = self.room(N).first_chunk_mut::<N>() {
            *dst = *block;
        }
        self.at += len;
    }

    #[inline(always)]
    pub(super) fn bytes(&mut self, bytes: &[u8]) {
        self.room(bytes.len()).copy_from_slice(bytes);
        self.at += bytes.len();
    }

    /// Lets `f` append to the Vec, cut back to what was written: for the rare
    /// pieces that need escaping.
    pub(super) fn append(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        self.out.truncate(self.at);
        f(self.out);
        self.at = self.out.len();
    }

    /// Leaves the Vec holding exactly what was written.
    pub(super) fn finish(self) {
        self.out.truncate(self.at);
    }
}

/// Block size for copying values (most are shorter).
const VALUE_BLOCK: usize = 32;

/// Writes a field value known to be UTF-8 (a validated row's), escaped unless
/// `plain` (validation proved it needs no escaping) or it turns out to need
/// none. `padded` starts with `value` and goes on with whatever follows it in
/// its buffer, so a short value can be copied as one block.
#[inline(always)]
pub(super) fn write_field_value(w: &mut Writer<'_>, value: &[u8], padded: &[u8], plain: bool) {
    if plain || is_plain(value) {
        match padded.first_chunk::<VALUE_BLOCK>() {
            Some(block) if value.len() <= VALUE_BLOCK => w.block(block, value.len()),
            _ => w.bytes(value),
        }
    } else {
        w.append(|out| push_escaped_utf8(out, value));
    }
}

/// A constant piece of JSON, written with one block copy when it fits in `N` bytes.
#[derive(Debug, Clone)]
pub(super) enum Piece<const N: usize> {
    Short { block: [u8; N], len: usize },
    Long(Box<[u8]>),
}

impl<const N: usize> Piece<N> {
    pub(super) fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= N {
            let mut block = [0; N];
            block[..bytes.len()].copy_from_slice(bytes);
            Piece::Short {
                block,
                len: bytes.len(),
            }
        } else {
            Piece::Long(bytes.into())
        }
    }

    #[inline(always)]
    pub(super) fn write(&self, w: &mut Writer<'_>) {
        match self {
            Piece::Short { block, len } => w.block(block, *len),
            Piece::Long(bytes) => w.bytes(bytes),
        }
    }
}

/// Size of the blocks key pieces are copied in: `","call_duration_sec":"` is 23.
pub(super) const KEY_BLOCK: usize = 32;

/// For each declared column of `kind`, what precedes its value in a JSON
/// value: `{"msisdn":"` for the first, then `","tower_id":"` and so on. Built
/// once per file; column names are plain ASCII (the catalog checks them).
pub(super) fn declared_keys(kind: &RecordKind) -> Vec<Piece<KEY_BLOCK>> {
    kind.columns()
        .iter()
        .enumerate()
        .map(|(i, col)| {
            let lead: &[u8] = if i == 0 { b"{\"" } else { b"\",\"" };
            Piece::new(&[lead, col.name.as_bytes(), b"\":\""].concat())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escaping_matches_python_json_dumps() {
        // Expected strings are what CPython's json.dumps prints (without the quotes).
        assert_eq!(esc("http://example.com"), "http://example.com");
        assert_eq!(esc("a\"b\\c"), r#"a\"b\\c"#);
        assert_eq!(esc("\n\r\t\u{8}\u{c}"), r"\n\r\t\b\f");
        assert_eq!(esc("\u{0}\u{1f}\u{7f}"), r"\u0000\u001f\u007f");
        assert_eq!(esc("é日"), r"\u00e9\u65e5");
        assert_eq!(esc("😀"), r"\ud83d\ude00");
        assert_eq!(esc("\u{fffd}"), r"\ufffd");
        assert_eq!(
            esc("long plain ascii text, longer than eight bytes ~"),
            "long plain ascii text, longer than eight bytes ~"
        );
    }

    #[test]
    fn plain_check_agrees_with_the_byte_rule_at_every_position() {
        for b in 0..=255u8 {
            for len in 1..20 {
                for at in 0..len {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    assert_eq!(is_plain(&v), is_plain_byte(b), "byte {b:#x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn eight_digit_groups_are_exact() {
        for n in (0..100_000_000u32)
            .step_by(997)
            .chain([0, 9, 10, 99, 100, 9_999, 10_000, 99_999_999])
        {
            assert_eq!(eight_digits(n).to_le_bytes(), *format!("{n:08}").as_bytes(), "{n}");
        }
    }

    #[test]
    fn integers_are_written_in_decimal() {
        let mut n = 1u64;
        while let Some(next) = n.checked_mul(10) {
            for m in [n - 1, n, n + 1, next - 1] {
                let mut out = b"x".to_vec();
                push_u64(&mut out, m);
                assert_eq!(out, format!("x{m}").as_bytes());
            }
            n = next;
        }
        for n in [
            0,
            1,
            7,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            12345,
            1 << 40,
            9_999_999_999_999_999,
            10_000_000_000_000_000,
            10_000_000_000_000_001,
            u64::MAX,
        ] {
            let mut out = b"x".to_vec();
            push_u64(&mut out, n);
            assert_eq!(out, format!("x{n}").as_bytes());
        }
    }

    #[test]
    fn schema_column_names_need_no_escaping() {
        for kind in [crate::schema::data(), crate::schema::voice()] {
            for col in kind.columns() {
                assert!(is_plain(col.name.as_bytes()), "{}", col.name);
            }
        }
    }
}
