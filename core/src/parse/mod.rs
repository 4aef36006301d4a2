//! CSV parsing and validation of CDR files: bytes in, rows or positioned errors out.
//!
//! The stage is pure: it reads only from the `std::io::Read` it is handed and
//! knows nothing of SFTP or Kafka, so it is tested and fuzzed on bytes in memory.
//!
//! - [`decode()`] recognises gzip by its magic bytes and decompresses it.
//! - [`CdrReader`] reads the header (columns are matched by name), then yields
//!   one [`Row`] per CSV record: [`ValidRow`] with the field values and the
//!   event time, or [`InvalidRow`] with the [`RowError`] and the record's original
//!   bytes for the dead-letter topic. A failure of the file as a whole (no
//!   header, missing or duplicated column, I/O or gzip error, a record over
//!   [`MAX_RECORD_BYTES`]) is a [`FileError`], whose message names file and line.
//!
//! It is the hot path: no allocation per row (the reader's buffers are reused
//! and rows borrow them), and ASCII records are split, checked and handed on
//! without a second pass. `benches/parse_encode.rs` measures it.
//!
//! CSV dialect: the one Python's `csv` module reads by default (and so the
//! original streamer's `csv.DictReader`): comma-separated, `"` quotes with `""`
//! as an escaped quote, fields may span lines inside quotes, records end with
//! LF, CRLF or CR, blank lines are skipped and are not rows, a UTF-8 BOM before
//! the header is ignored. Values are the unquoted field contents, never trimmed.
//! One departure: a header naming a column twice is a [`FileError`] (a dict
//! would keep the last value; a JSON value must not have the key twice).
//!
//! Positions: a row's `index` counts data rows from 1 (valid and invalid alike,
//! the header and blank lines excluded); its `line` is the physical line it starts
//! on, the header being line 1 and newlines inside quoted fields counted.
//!
//! A row's checks, and the first failure is the one reported:
//! 1. the same number of fields as the header ([`RowError::FieldCount`]);
//! 2. the whole record valid UTF-8 ([`RowError::InvalidUtf8`] naming the first
//!    column, in output order, that is not);
//! 3. each required column's rule, in the canonical order of `schema.rs`
//!    ([`RowError::Field`]).
//!
//! Field count comes first because with the wrong number of fields the
//! columns cannot be told apart, so no per-column error would be trustworthy.

pub mod decode;
mod reader;
#[cfg(test)]
mod trickle;
mod validate;

pub(crate) use validate::time_micros;

use std::borrow::Cow;
use std::io;

use chrono::Offset as _;

pub use decode::{decode, Decoded};
pub use reader::{CdrReader, MAX_RECORD_BYTES};

use crate::schema::RecordKind;

/// The configurable parts of validation beyond the kinds' declarations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// The zone the files' timestamps are written in; UTC unless configured.
    pub time_offset: chrono::FixedOffset,
    /// Event times after this instant (UTC epoch ms) are invalid rows. Kafka
    /// rejects a record whose timestamp is too far ahead of the broker's clock
    /// (`message.timestamp.after.max.ms`, one hour by default in Kafka 4), so
    /// such a row could never be produced. Set by the caller from its clock:
    /// parsing itself reads no clock.
    pub latest_event_ms: Option<i64>,
}

impl Default for Validation {
    /// UTC, no bound on event times.
    fn default() -> Self {
        Validation {
            time_offset: chrono::Utc.fix(),
            latest_event_ms: None,
        }
    }
}

/// One CSV record of a file, after validation. Borrows the reader's buffers, so
/// it lives until the next call on the reader.
#[derive(Debug)]
pub enum Row<'r> {
    /// Every field passed its rule: bound for the kind's topic.
    Valid(ValidRow<'r>),
    /// A field broke its rule, or the field count is off: bound for the
    /// dead-letter topic with the reason.
    Invalid(InvalidRow<'r>),
}

impl Row<'_> {
    /// Data row index from 1, counting valid and invalid rows.
    pub fn index(&self) -> u64 {
        match self {
            Row::Valid(r) => r.index,
            Row::Invalid(r) => r.index,
        }
    }

    /// Physical line the record starts on (the header is line 1).
    pub fn line(&self) -> u64 {
        match self {
            Row::Valid(r) => r.line,
            Row::Invalid(r) => r.line,
        }
    }
}

/// A row that passed every check.
///
/// Its fields are, in order: the kind's required columns in the canonical order
/// of `schema.rs` (whatever their order in the file), then any other header
/// columns in header order. Values are exactly as in the file (unquoted, not trimmed).
#[derive(Debug, Clone, Copy)]
pub struct ValidRow<'r> {
    /// Data row index from 1 (header excluded), counting valid and invalid rows.
    pub index: u64,
    /// Physical line number where the row starts; the header is line 1.
    pub line: u64,
    /// The time column as UTC epoch milliseconds: the record's Kafka timestamp.
    pub event_time_ms: i64,
    /// The record's bytes as they were in the file (as [`InvalidRow::raw`]),
    /// for a row that must be dead-lettered after all (too large to produce).
    pub raw: &'r [u8],
    kind: &'r RecordKind,
    /// The bytes the field spans index: the record itself, or the unquoted copy
    /// of it when the record had quoted fields. Checked to be valid UTF-8 (kept
    /// as bytes so that a pure-ASCII record needs no second pass to become `str`).
    text: &'r [u8],
    /// `text` followed by whatever the reader's buffer holds after it, which is
    /// not part of the row: it lets the encoder copy short values as fixed-size blocks.
    padded: &'r [u8],
    /// Byte spans of the fields in `text`, in header order.
    spans: &'r [(usize, usize)],
    /// For each output position, the header position of its field.
    order: &'r [usize],
    /// Column names in output order.
    columns: &'r [Box<str>],
    /// For each output position, whether its value is known to be plain:
    /// printable ASCII other than `"` and `\\`.
    plain: &'r [bool],
}

/// A field of a [`ValidRow`] as the encoder wants it (see [`ValidRow::json_fields`]).
pub(crate) struct JsonField<'r> {
    pub column: &'r str,
    pub value: &'r [u8],
    /// The value followed by the rest of the reader's buffer (at least the value).
    pub padded: &'r [u8],
    /// Printable ASCII other than `"` and `\\`: no escaping needed.
    pub plain: bool,
}

impl<'r> ValidRow<'r> {
    /// The kind of file the row came from; its required columns are the first
    /// `kind.columns().len()` fields.
    pub fn kind(&self) -> &'r RecordKind {
        self.kind
    }

    /// Number of fields: the header's column count.
    pub fn field_count(&self) -> usize {
        self.order.len()
    }

    /// `(column name, value)` pairs in output order (see the type's doc).
    pub fn fields(&self) -> impl ExactSizeIterator<Item = (&'r str, &'r str)> + '_ {
        self.columns.iter().map(|c| &**c).zip(self.values())
    }

    /// The values in output order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &'r str> + '_ {
        self.order.iter().map(|&h| {
            let (a, b) = self.spans[h];
            std::str::from_utf8(&self.text[a..b]).expect("every field was checked to be UTF-8 when the row was read")
        })
    }

    /// The value of `column`, if the file has that column.
    pub fn get(&self, column: &str) -> Option<&'r str> {
        self.fields().find(|(c, _)| *c == column).map(|(_, v)| v)
    }

    /// The fields in output order as the encoder wants them: bytes (valid
    /// UTF-8), what follows them in the buffer, and whether validation proved
    /// them plain, so that most values are copied into JSON unexamined.
    pub(crate) fn json_fields(&self) -> impl Iterator<Item = JsonField<'r>> + '_ {
        self.columns
            .iter()
            .zip(self.order)
            .zip(self.plain)
            .map(|((c, &h), &plain)| {
                let (a, b) = self.spans[h];
                JsonField {
                    column: c,
                    value: &self.text[a..b],
                    padded: &self.padded[a..],
                    plain,
                }
            })
    }
}

/// A row that failed a check; it goes to the dead-letter topic.
#[derive(Debug, Clone)]
pub struct InvalidRow<'r> {
    /// Data row index from 1 (header excluded), counting valid and invalid rows.
    pub index: u64,
    /// Physical line number where the row starts; the header is line 1.
    pub line: u64,
    /// The first check that failed.
    pub error: RowError,
    /// The record's bytes as they were in the file, quotes included and the line
    /// terminator excluded (a quoted field's embedded newlines are kept).
    pub raw: &'r [u8],
}

/// Why a row is invalid. The message names the column, the rule and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// The record has another number of fields than the header.
    #[error("expected {expected} fields as in the header, found {found}")]
    FieldCount {
        /// Fields in the header.
        expected: usize,
        /// Fields in the record.
        found: usize,
    },
    /// A field is not valid UTF-8.
    #[error("field {column:?}: invalid UTF-8")]
    InvalidUtf8 {
        /// The field's column.
        column: String,
    },
    /// A field's value breaks its column's rule.
    #[error("field {column:?}: {reason}, found {value_excerpt:?}")]
    Field {
        /// The field's column.
        column: String,
        /// The value, cut to [`RowError::EXCERPT_CHARS`] characters (then `…`).
        value_excerpt: String,
        /// The rule, as what was expected.
        reason: Cow<'static, str>,
    },
}

impl RowError {
    /// How much of a bad value an error message quotes: enough to see the
    /// problem, bounded so a huge field cannot bloat the dead-letter record.
    pub const EXCERPT_CHARS: usize = 64;

    fn field(column: &str, value: &str, reason: Cow<'static, str>) -> RowError {
        let value_excerpt = match value.char_indices().nth(Self::EXCERPT_CHARS) {
            Some((cut, _)) => format!("{}…", &value[..cut]),
            None => value.to_owned(),
        };
        RowError::Field {
            column: column.to_owned(),
            value_excerpt,
            reason,
        }
    }

    /// The column the error is about, if it is about one.
    pub fn column(&self) -> Option<&str> {
        match self {
            RowError::FieldCount { .. } => None,
            RowError::InvalidUtf8 { column } => Some(column),
            RowError::Field { column, .. } => Some(column),
        }
    }
}

/// A failure of the file as a whole: nothing of it may be committed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not even a header line.
    #[error("{file}: empty file, no header line")]
    Empty {
        /// The file.
        file: String,
    },
    /// The header lacks columns the kind requires.
    #[error("{file} line {line}: header lacks required column(s) {}", columns.join(", "))]
    MissingColumn {
        /// The file.
        file: String,
        /// The header's line.
        line: u64,
        /// The columns missing.
        columns: Vec<String>,
    },
    /// The header names a column twice.
    #[error("{file} line {line}: header has column {column:?} more than once")]
    DuplicateColumn {
        /// The file.
        file: String,
        /// The header's line.
        line: u64,
        /// The column named twice.
        column: String,
    },
    /// A record longer than any CDR row (an unbalanced quote swallowing lines).
    #[error("{file} line {line}: a record exceeds {limit} bytes (unbalanced quote?)")]
    RecordTooLong {
        /// The file.
        file: String,
        /// The line the record starts on.
        line: u64,
        /// The bound it exceeds.
        limit: usize,
    },
    /// The bytes could not be read (a corrupt or truncated compressed stream,
    /// or the disk).
    #[error("{file} line {line}: read failed: {source}")]
    Read {
        /// The file.
        file: String,
        /// The line reached.
        line: u64,
        /// The read's error.
        #[source]
        source: io::Error,
    },
}

impl FileError {
    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            FileError::Empty { file }
            | FileError::MissingColumn { file, .. }
            | FileError::DuplicateColumn { file, .. }
            | FileError::RecordTooLong { file, .. }
            | FileError::Read { file, .. } => file,
        }
    }

    /// The line the error was found at (0 for an empty file).
    pub fn line(&self) -> u64 {
        match self {
            FileError::Empty { .. } => 0,
            FileError::MissingColumn { line, .. }
            | FileError::DuplicateColumn { line, .. }
            | FileError::RecordTooLong { line, .. }
            | FileError::Read { line, .. } => *line,
        }
    }
}
