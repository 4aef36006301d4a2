//! Kafka record keys and JSON values for valid rows and dead-letter rows.
//!
//! Exact bytes matter: the values must stay what the original Python streamer's
//! consumers read, and keys must be the same for the same file on every run.
//!
//! **Value of a valid row** (compact JSON, keys in this order):
//! the row's fields as strings, exactly as in the file, the kind's required
//! columns in the canonical order of `schema.rs` then any other header columns
//! in header order; then `_source_file`, `_ingestion_timestamp`, `_record_type`:
//!
//! ```json
//! {"msisdn":"9724515726732",…,"event_datetime":"2024-01-01 01:01:15.291148","_source_file":"cdr_data_20240102_224000.csv","_ingestion_timestamp":"2025-12-06T20:55:06.123456","_record_type":"data"}
//! ```
//!
//! **Value of a dead-letter row**:
//!
//! ```json
//! {"_source_file":"cdr_data_x.csv","_row":7,"_line":8,"_record_type":"data","_error":"field \"up_bytes\": expected an unsigned 64-bit integer, found \"12x4\"","_raw":"…","_raw_base64":"…","_ingestion_timestamp":"2025-12-06T20:55:06.123456"}
//! ```
//!
//! - `_row`: the row index from 1 (as in the key); `_line`: the physical line the
//!   record starts on (the header is line 1); both JSON numbers.
//! - `_error`: the [`RowError`](crate::parse::RowError) message (field and reason).
//! - `_raw`: the record's original bytes, quotes included, line terminator
//!   excluded, as UTF-8 with invalid sequences replaced by U+FFFD.
//! - `_raw_base64`: present only when the record was not valid UTF-8: the exact
//!   bytes, standard base64 with padding, so nothing is lost to the replacement.
//! - A record too large for its topic (see `sink::limits`) keeps only the start
//!   of its line in `_raw`, followed by `"_raw_truncated":true`, `"_raw_bytes"`
//!   (the whole record's length) and `"_raw_sha256"` (hex), so an operator can
//!   find the line in the source file.
//!
//! **Key**: `<first 16 hex digits of the file's SHA-256>-<row index>`, for valid
//! and dead-letter rows alike.
//!
//! Strings are escaped as Python's `json.dumps` does by default
//! (`ensure_ascii=True`): `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other
//! control characters and DEL as `\u00XX`, non-ASCII as `\uXXXX` (lowercase hex;
//! a surrogate pair above the BMP). Output is pure ASCII.

pub mod avro;
mod dead_letter;
mod format;
mod json;
mod json_typed;
pub mod partition;
pub mod record;
mod typed;

use base64::Engine as _;
use chrono::{DateTime, Utc};

use crate::parse::{InvalidRow, ValidRow};
use crate::schema::RecordKind;
pub use dead_letter::{encode_dead_letter, DeadLetterTooLarge, CUT_KEEP};
use format::Prepared;
pub use format::{Format, UnknownFormat, ValueError, ValueFormat};
use json::{push_str, push_u64, write_field_value, Piece, Writer, KEY_BLOCK};

/// Block size of the piece after a row's fields: its 44 fixed bytes and a file
/// name of up to 84 (CDR names are about 30; a longer one is copied the slow way).
const TAIL_BLOCK: usize = 128;

/// What every record of one file shares, with its JSON pieces prepared once.
#[derive(Debug, Clone)]
pub struct FileContext {
    file_name: String,
    kind: RecordKind,
    sha256_hex: String,
    /// `<key prefix>-`: how every key starts (a fixed-size array, so copied inline).
    key_head: [u8; 17],
    /// `","_source_file":"<name>","_ingestion_timestamp":"`: what follows the
    /// last field value of a valid row.
    value_tail: Piece<TAIL_BLOCK>,
    /// What precedes each declared column's value (see [`json::declared_keys`]).
    keys: Vec<Piece<KEY_BLOCK>>,
    /// `","_record_type":"<kind>"}`: what ends a valid row.
    value_end: Piece<KEY_BLOCK>,
    /// `{"_source_file":"<name>","_row":`: how a dead-letter value starts.
    dlq_head: Vec<u8>,
    /// How valid rows are written.
    format: ValueFormat,
}

impl FileContext {
    /// The context of file `file_name` of `kind`, whose bytes hash to `sha256`.
    pub fn new(file_name: &str, kind: RecordKind, sha256: &[u8; 32]) -> Self {
        let sha256_hex = hex(sha256);
        let mut key_head = [b'-'; 17];
        key_head[..16].copy_from_slice(&sha256_hex.as_bytes()[..16]);
        let mut name = Vec::with_capacity(file_name.len() + 2);
        push_str(&mut name, file_name);
        let join = |parts: &[&[u8]]| parts.concat();
        FileContext {
            value_tail: Piece::new(&join(&[
                b"\",\"_source_file\":\"",
                &name,
                b"\",\"_ingestion_timestamp\":\"",
            ])),
            value_end: Piece::new(&join(&[b"\",\"_record_type\":\"", kind.as_str().as_bytes(), b"\"}"])),
            dlq_head: join(&[b"{\"_source_file\":\"", &name, b"\",\"_row\":"]),
            file_name: file_name.to_owned(),
            keys: json::declared_keys(&kind),
            kind,
            sha256_hex,
            key_head,
            format: ValueFormat::json(),
        }
    }

    /// The same context, writing valid rows in `format` (prepared for this
    /// file's kind) instead of `json`.
    pub fn with_format(mut self, format: ValueFormat) -> Self {
        self.format = format;
        self
    }

    /// The file's name: `_source_file` and the `cdr-source-file` header.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The file's record kind.
    pub fn kind(&self) -> &RecordKind {
        &self.kind
    }

    /// The file's SHA-256, 64 lowercase hex digits (the `cdr-file-sha256` header).
    pub fn sha256_hex(&self) -> &str {
        &self.sha256_hex
    }

    /// The first 16 hex digits of the file's SHA-256: every key's prefix.
    pub fn key_prefix(&self) -> &str {
        &self.sha256_hex[..16]
    }
}

/// Writes the record key `<key prefix>-<index>` into `out`, replacing its content.
pub fn write_key(ctx: &FileContext, index: u64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&ctx.key_head);
    push_u64(out, index);
}

/// `_ingestion_timestamp` for records produced at `now`: UTC,
/// `YYYY-MM-DDTHH:MM:SS.ffffff`, always 6 fraction digits. Computed once per
/// batch by the caller, not per row.
pub fn ingestion_timestamp(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// Writes the value of a valid row into `out` in its context's format,
/// replacing its content. Keys and values come from the row; `_source_file`
/// and `_record_type` from `ctx`. `ingestion_ts` is normally what
/// [`ingestion_timestamp`] returned, computed once per batch rather than per
/// row. Only a typed format can fail, for a value its type cannot hold.
pub fn write_value(
    ctx: &FileContext,
    row: &ValidRow<'_>,
    ingestion_ts: &str,
    out: &mut Vec<u8>,
) -> Result<(), ValueError> {
    match &ctx.format.0 {
        Prepared::Json => {
            write_json(ctx, row, ingestion_ts, out);
            Ok(())
        }
        Prepared::JsonTyped(typing) => {
            json_typed::write(ctx, typing, row, ingestion_ts, out);
            Ok(())
        }
        Prepared::Avro(writer) => writer.write(ctx, row, ingestion_ts, out),
    }
}

/// The `json` value: every field a string, as in the file (see the module doc).
fn write_json(ctx: &FileContext, row: &ValidRow<'_>, ingestion_ts: &str, out: &mut Vec<u8>) {
    let mut w = Writer::new(out);
    let mut fields = row.json_fields();
    // The row's first fields are its kind's declared columns, in order (a
    // guarantee of `ValidRow`), whose key pieces are prepared once per file.
    for (key, f) in ctx.keys.iter().zip(fields.by_ref()) {
        key.write(&mut w);
        write_field_value(&mut w, f.value, f.padded, f.plain);
    }
    for f in fields {
        w.bytes(b"\",\"");
        w.append(|out| push_str(out, f.column));
        w.bytes(b"\":\"");
        write_field_value(&mut w, f.value, f.padded, f.plain);
    }
    ctx.value_tail.write(&mut w);
    match ingestion_ts.as_bytes().first_chunk::<TIMESTAMP_LEN>() {
        // The usual case: one fixed-size copy of what `ingestion_timestamp` made.
        Some(ts) if ingestion_ts.len() == TIMESTAMP_LEN && json::is_plain(ts) => w.block(ts, TIMESTAMP_LEN),
        _ => w.append(|out| push_str(out, ingestion_ts)),
    }
    ctx.value_end.write(&mut w);
    w.finish();
}

/// Length of what [`ingestion_timestamp`] returns, `YYYY-MM-DDTHH:MM:SS.ffffff`.
const TIMESTAMP_LEN: usize = 26;

/// Encodes an invalid row for the dead-letter topic `dlq` (records of at
/// most `limit` wire bytes, headers `hv`) into `out`, replacing its content:
/// [`encode_dead_letter`] with the row's own error.
pub fn encode_invalid_row(
    ctx: &FileContext,
    row: &InvalidRow<'_>,
    dlq: &str,
    limit: usize,
    hv: &record::HeaderValues<'_>,
    ingestion_ts: &str,
    out: &mut Vec<u8>,
) -> Result<(), DeadLetterTooLarge> {
    let letter = DeadLetter {
        index: row.index,
        line: row.line,
        error: &row.error.to_string(),
        raw: row.raw,
        cut: None,
    };
    encode_dead_letter(ctx, letter, dlq, limit, hv, ingestion_ts, out)
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A row bound for the dead-letter topic, with what is known of it.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// `_row`: the row's index from 1, as in its key.
    pub index: u64,
    /// `_line`: the physical line the row starts on.
    pub line: u64,
    /// `_error`: field and reason.
    pub error: &'a str,
    /// The record's bytes as in the file.
    pub raw: &'a [u8],
    /// Set when the whole record would not fit the topic: `_raw` keeps only
    /// the start of it.
    pub cut: Option<Cut<'a>>,
}

/// How a too-large record's `_raw` is cut, and what lets an operator find the
/// whole line in the source file.
#[derive(Debug, Clone, Copy)]
pub struct Cut<'a> {
    /// `_raw` keeps at most this many bytes of the record (fewer, to end on a
    /// character boundary).
    pub keep: usize,
    /// Lowercase hex SHA-256 of the whole record (`_raw_sha256`).
    pub sha256_hex: &'a str,
}

/// Writes the JSON value of a dead-letter row into `out`, replacing its
/// content. With a [`Cut`], `_raw` is the record's first bytes and
/// `"_raw_truncated":true,"_raw_bytes":<whole length>,"_raw_sha256":"<hex>"`
/// follow it (before `_ingestion_timestamp`); `_raw_base64`, when present,
/// holds the kept bytes only.
pub fn write_dead_letter(ctx: &FileContext, letter: &DeadLetter<'_>, ingestion_ts: &str, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&ctx.dlq_head);
    push_u64(out, letter.index);
    out.extend_from_slice(b",\"_line\":");
    push_u64(out, letter.line);
    out.extend_from_slice(b",\"_record_type\":\"");
    out.extend_from_slice(ctx.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"_error\":\"");
    push_str(out, letter.error);
    out.extend_from_slice(b"\",\"_raw\":\"");
    let kept = match letter.cut {
        Some(cut) => &letter.raw[..char_floor(letter.raw, cut.keep)],
        None => letter.raw,
    };
    let text = String::from_utf8_lossy(kept);
    push_str(out, &text);
    if let std::borrow::Cow::Owned(_) = text {
        // Lossy conversion replaced something: keep the exact bytes too.
        out.extend_from_slice(b"\",\"_raw_base64\":\"");
        out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(kept).as_bytes());
    }
    out.push(b'"');
    if let Some(cut) = letter.cut {
        out.extend_from_slice(b",\"_raw_truncated\":true,\"_raw_bytes\":");
        push_u64(out, letter.raw.len() as u64);
        out.extend_from_slice(b",\"_raw_sha256\":\"");
        push_str(out, cut.sha256_hex);
        out.push(b'"');
    }
    out.extend_from_slice(b",\"_ingestion_timestamp\":\"");
    push_str(out, ingestion_ts);
    out.extend_from_slice(b"\"}");
}

/// The largest `n <= max` such that `bytes[..n]` does not end inside a UTF-8
/// sequence (judged by continuation bytes, so invalid input still terminates).
fn char_floor(bytes: &[u8], max: usize) -> usize {
    let mut n = max.min(bytes.len());
    while n > 0 && n < bytes.len() && bytes[n] & 0xC0 == 0x80 {
        n -= 1;
    }
    n
}

#[cfg(test)]
mod tests;
