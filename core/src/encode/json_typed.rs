//! `json-typed` values: the `json` layout with each declared column written
//! as its type: integers and decimals as JSON numbers (canonical: no leading
//! zeros), timestamps as ISO-8601 with their zone (`2024-01-01T01:01:15.291+02:00`),
//! an optional column's empty value as `null`; text, digits, IP addresses,
//! URLs and enum symbols as strings. Columns beyond the declaration stay
//! strings; `_ingestion_timestamp` is UTC with a `Z`.

use std::io::Write as _;

use super::json::{push_str, push_u64};
use super::typed::{Typing, Value};
use super::FileContext;
use crate::parse::ValidRow;

/// Writes the `json-typed` value of `row` into `out`, replacing its content.
pub(super) fn write(ctx: &FileContext, typing: &Typing, row: &ValidRow<'_>, ingestion_ts: &str, out: &mut Vec<u8>) {
    out.clear();
    out.push(b'{');
    let declared = typing.columns.len();
    for (i, (col, text)) in typing.columns.iter().zip(row.values()).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_key(out, &col.name);
        push_value(out, col.read(text));
    }
    for (column, text) in row.fields().skip(declared) {
        out.push(b',');
        push_key(out, column);
        push_quoted(out, text);
    }
    out.extend_from_slice(b",\"_source_file\":");
    push_quoted(out, ctx.file_name());
    out.extend_from_slice(b",\"_ingestion_timestamp\":\"");
    push_str(out, ingestion_ts);
    out.extend_from_slice(b"Z\",\"_record_type\":");
    push_quoted(out, ctx.kind().as_str());
    out.push(b'}');
}

fn push_key(out: &mut Vec<u8>, name: &str) {
    push_quoted(out, name);
    out.push(b':');
}

fn push_quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_str(out, s);
    out.push(b'"');
}

fn push_value(out: &mut Vec<u8>, value: Value<'_>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Text(s) => push_quoted(out, s),
        Value::Symbol(_, s) => push_quoted(out, s),
        Value::Unsigned(n) => push_u64(out, n),
        Value::Signed(n) => {
            if n < 0 {
                out.push(b'-');
            }
            push_u64(out, n.unsigned_abs());
        }
        Value::Decimal { unscaled, scale } => push_decimal(out, unscaled, scale),
        Value::Timestamp { text, offset_secs, .. } => {
            // `YYYY-MM-DD HH:MM:SS[.f]`, checked by validation: ASCII, the space at 10.
            out.push(b'"');
            out.extend_from_slice(&text.as_bytes()[..10]);
            out.push(b'T');
            out.extend_from_slice(&text.as_bytes()[11..]);
            push_offset(out, offset_secs);
            out.push(b'"');
        }
    }
}

/// `unscaled / 10^scale` with exactly `scale` fraction digits.
fn push_decimal(out: &mut Vec<u8>, unscaled: i128, scale: u8) {
    let pow = 10u128.pow(u32::from(scale));
    let abs = unscaled.unsigned_abs();
    let sign = if unscaled < 0 { "-" } else { "" };
    // Writing into a Vec cannot fail.
    let _ = if scale == 0 {
        write!(out, "{sign}{abs}")
    } else {
        write!(
            out,
            "{sign}{}.{:0width$}",
            abs / pow,
            abs % pow,
            width = usize::from(scale)
        )
    };
}

/// `+HH:MM` / `-HH:MM` of an offset in seconds east of UTC.
fn push_offset(out: &mut Vec<u8>, secs: i32) {
    let abs = secs.unsigned_abs();
    let (h, m) = (abs / 3600, abs % 3600 / 60);
    let two = |n: u32| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    out.push(if secs < 0 { b'-' } else { b'+' });
    out.extend_from_slice(&two(h));
    out.push(b':');
    out.extend_from_slice(&two(m));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn decimals_are_canonical_json_numbers_at_their_scale() {
        assert_eq!(text(|o| push_decimal(o, 1250, 2)), "12.50");
        assert_eq!(text(|o| push_decimal(o, -7, 2)), "-0.07");
        assert_eq!(text(|o| push_decimal(o, 7100, 0)), "7100");
    }

    #[test]
    fn offsets_are_written_as_iso_8601_zones() {
        assert_eq!(text(|o| push_offset(o, 0)), "+00:00");
        assert_eq!(text(|o| push_offset(o, 5 * 3600 + 1800)), "+05:30");
        assert_eq!(text(|o| push_offset(o, -3 * 3600)), "-03:00");
    }
}
