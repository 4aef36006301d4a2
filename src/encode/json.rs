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

/// [`push_str`] for a value known to be UTF-8 (a validated row's), with what
/// follows it in its buffer as for [`push_plain`].
#[inline]
pub(super) fn push_utf8(out: &mut Vec<u8>, value: &[u8], padded: &[u8]) {
    if is_plain(value) {
        push_plain(out, value, padded);
    } else {
        // The value is UTF-8, so nothing is replaced.
        push_escaped(out, &String::from_utf8_lossy(value));
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
pub(super) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    // Two digits per division, written backwards to end at byte 20 (u64::MAX
    // has 20 digits); then the 20-byte block starting at the first digit is
    // appended whole and cut back to the digits (see `push_block`).
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut digits = [0u8; 40];
    let mut i = 20;
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        digits[i] = b'0' + n as u8;
    }
    match digits[i..].first_chunk::<20>() {
        Some(block) => push_block(out, block, 20 - i),
        None => out.extend_from_slice(&digits[i..20]),
    }
}

/// Appends `block[..len]` by copying the whole block and cutting it back.
/// `Vec::extend_from_slice` of a run-time length is a call to `memcpy`, which
/// costs more than the copy itself for the short pieces a JSON value is made of;
/// a block of constant size is copied inline.
#[inline]
fn push_block<const N: usize>(out: &mut Vec<u8>, block: &[u8; N], len: usize) {
    let end = out.len() + len;
    out.extend_from_slice(block);
    out.truncate(end);
}

/// Block size for copying values (most are shorter).
const VALUE_BLOCK: usize = 32;

/// Appends a value that needs no escaping. `padded` starts with `value` and
/// goes on with whatever follows it in its buffer, so a short value can be
/// copied as one block.
#[inline]
pub(super) fn push_plain(out: &mut Vec<u8>, value: &[u8], padded: &[u8]) {
    match padded.first_chunk::<VALUE_BLOCK>() {
        Some(block) if value.len() <= VALUE_BLOCK => push_block(out, block, value.len()),
        _ => out.extend_from_slice(value),
    }
}

/// A constant piece of JSON, appended with one block copy (see [`push_block`])
/// when it fits in `N` bytes.
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

    #[inline]
    pub(super) fn push(&self, out: &mut Vec<u8>) {
        match self {
            Piece::Short { block, len } => push_block(out, block, *len),
            Piece::Long(bytes) => out.extend_from_slice(bytes),
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
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
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
