//! The JSON writing primitives: Python-compatible string escaping and integers.

use std::sync::OnceLock;

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

/// The decimal digits of `n`, left-aligned in a block, and how many there are.
#[inline]
pub(super) fn u64_digits(mut n: u64) -> ([u8; 20], usize) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let len = n.checked_ilog10().map_or(1, |l| l as usize + 1);
    let mut digits = [b'0'; 20];
    // Two digits per division, from the last one back.
    let mut i = len;
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        digits[..2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        digits[0] = b'0' + n as u8;
    }
    (digits, len)
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

/// For each required column of `kind`, what precedes its value in a JSON value:
/// `{"msisdn":"` for the first, then `","tower_id":"` and so on. Built once
/// from `schema.rs`; column names are plain ASCII (a unit test checks it).
pub(super) fn required_keys(kind: RecordKind) -> &'static [Piece<KEY_BLOCK>] {
    static KEYS: [OnceLock<Vec<Piece<KEY_BLOCK>>>; 2] = [OnceLock::new(), OnceLock::new()];
    let slot = match kind {
        RecordKind::Data => &KEYS[0],
        RecordKind::Voice => &KEYS[1],
    };
    slot.get_or_init(|| {
        kind.columns()
            .iter()
            .enumerate()
            .map(|(i, col)| {
                let lead: &[u8] = if i == 0 { b"{\"" } else { b"\",\"" };
                Piece::new(&[lead, col.as_bytes(), b"\":\""].concat())
            })
            .collect()
    })
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
                    assert_eq!(
                        is_plain(&v),
                        is_plain_byte(b),
                        "byte {b:#x} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for n in [
            0,
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
            u64::MAX,
        ] {
            let (digits, len) = u64_digits(n);
            assert_eq!(&digits[..len], n.to_string().as_bytes());
        }
    }

    #[test]
    fn schema_column_names_need_no_escaping() {
        for kind in RecordKind::ALL {
            for col in kind.columns() {
                assert!(is_plain(col.as_bytes()), "{col}");
            }
        }
    }
}
