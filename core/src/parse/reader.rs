//! The record loop: one large buffer refilled from the reader, a fast path for
//! plain lines, and `csv_core` (the csv crate's own state machine) for the rest.
//!
//! Almost every CDR line has no quotes: for those the fast path ([`scan_line`])
//! finds the line's end and its commas in one pass, eight bytes at a time, and
//! the fields stay where they lie in the buffer, copied nowhere. A line with a
//! `"` or a bare CR goes to `csv_core`, which unquotes its fields into `out`.
//! Either way the record's original bytes stay in `buf` for the dead-letter
//! topic, which the `csv` crate's reader cannot give back.
//!
//! Both paths agree on the dialect: without quotes or bare CRs, `csv_core`'s
//! parse of a line is exactly "split on commas", and blank lines are skipped by
//! both. The tests read every input a second time one byte per `read`, which
//! moves the buffer boundary, and so the choice of path, across every record.

use std::io::{self, Read};
use std::ops::Range;

use csv_core::ReadRecordResult;

use super::validate::Rule;
use super::{FileError, InvalidRow, Row, RowError, ValidRow, Validation};
use crate::schema::RecordKind;

/// Initial buffer: large enough that refills (and the move of a partial record
/// to the front that each one does) are rare.
const INITIAL_BUF_BYTES: usize = 512 * 1024;

/// The largest record the reader accepts. Beyond it the file is rejected
/// ([`FileError::RecordTooLong`]) rather than buffered whole: a stray quote
/// would otherwise turn the rest of a multi-gigabyte file into one record.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// Where the current record's field spans point.
#[derive(Debug, Clone, Copy)]
enum Text {
    /// No quotes: the spans index the record's raw bytes in `buf`.
    Raw,
    /// Quoted: `csv_core` unquoted the fields into `out[..len]`.
    Unquoted(usize),
}

#[derive(Debug)]
struct Record {
    /// The record's bytes in `buf`, line terminator excluded.
    raw: Range<usize>,
    text: Text,
    /// Number of fields; `spans` holds them only if it is at most `width`.
    fields: usize,
    /// Whether the record is known to be pure ASCII (and so valid UTF-8).
    ascii: bool,
    line: u64,
}

/// A declared column's check, with where its value is in the header order.
#[derive(Debug)]
struct Check {
    header_pos: usize,
    column: Box<str>,
    rule: Rule,
    /// An empty value passes without its rule.
    optional: bool,
    /// The kind's time column: its instant is the row's event time.
    event_time: bool,
}

/// Reads the rows of one CDR file. See the [module doc](super) for the dialect,
/// the positions and the order of checks.
#[derive(Debug)]
pub struct CdrReader<R: Read> {
    rdr: R,
    file: String,
    kind: RecordKind,
    /// `buf[pos..end]` is read but not yet parsed; `buf.len()` is its capacity.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    core: csv_core::Reader,
    /// Unquoted fields of a quoted record, and their ends, as `csv_core` writes them.
    out: Vec<u8>,
    ends: Vec<usize>,
    /// Field spans of the current record, in header order.
    spans: Vec<(usize, usize)>,
    /// Physical line of `buf[pos]` (1-based).
    line: u64,
    /// Whether the last byte consumed was a CR, so that a following LF belongs to it.
    prev_cr: bool,
    /// Records read so far (valid, invalid or skipped).
    index: u64,
    /// The header's field count; `usize::MAX` while the header is being read.
    width: usize,
    /// For each output position, the header position of its field.
    order: Vec<usize>,
    /// Column names in output order: required columns, then the others.
    columns: Vec<Box<str>>,
    /// For each output position, whether validation proves its values plain
    /// (see `Rule::admits_only_plain`).
    plain: Vec<bool>,
    checks: Vec<Check>,
    latest_event_ms: Option<i64>,
    /// Whether an optional column is absent from the header: each record's
    /// spans then get an empty one at position `width` for it.
    absent_columns: bool,
}

impl<R: Read> CdrReader<R> {
    /// Reads and checks the header line: every required column of `kind` present
    /// (matched by name, in any order), no column name twice.
    pub fn new(kind: RecordKind, file_name: &str, rdr: R, validation: &Validation) -> Result<Self, FileError> {
        let mut r = CdrReader {
            rdr,
            file: file_name.to_owned(),
            kind,
            buf: vec![0; INITIAL_BUF_BYTES],
            pos: 0,
            end: 0,
            eof: false,
            core: csv_core::Reader::new(),
            out: vec![0; 64 * 1024],
            ends: vec![0; 64],
            spans: Vec::new(),
            line: 1,
            prev_cr: false,
            index: 0,
            width: usize::MAX,
            order: Vec::new(),
            columns: Vec::new(),
            plain: Vec::new(),
            checks: Vec::new(),
            latest_event_ms: validation.latest_event_ms,
            absent_columns: false,
        };
        // csv_core strips a UTF-8 BOM only if its first call sees all three
        // bytes, and takes an input empty after the BOM for the end of the file.
        while r.end < 4 && !r.eof {
            r.fill()?;
        }
        // The header always goes through csv_core, which strips the BOM there
        // (and only there: its first call).
        let header = match r.read_quoted()? {
            Some(h) => h,
            None => return Err(FileError::Empty { file: r.file }),
        };
        let text = r.text(&header);
        let names: Vec<String> = r
            .spans
            .iter()
            .map(|&(a, b)| String::from_utf8_lossy(&text[a..b]).into_owned())
            .collect();
        r.set_columns(&names, header.line, validation)?;
        Ok(r)
    }

    fn set_columns(&mut self, names: &[String], line: u64, validation: &Validation) -> Result<(), FileError> {
        let mut seen = std::collections::HashSet::with_capacity(names.len());
        if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(FileError::DuplicateColumn {
                file: self.file.clone(),
                line,
                column: dup.clone(),
            });
        }
        let kind = self.kind.clone();
        let declared = kind.columns();
        let position = |col: &str| names.iter().position(|n| n == col);
        // An optional column the file lacks reads as empty in every row (a
        // file written before the column was declared), from a span past the
        // file's own fields that each record gets appended.
        let missing: Vec<String> = declared
            .iter()
            .filter(|c| position(&c.name).is_none() && !c.optional)
            .map(|c| c.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(FileError::MissingColumn {
                file: self.file.clone(),
                line,
                columns: missing,
            });
        }
        let offset_secs = validation.time_offset.local_minus_utc();
        for col in declared {
            let header_pos = position(&col.name).unwrap_or_else(|| {
                self.absent_columns = true;
                names.len()
            });
            self.order.push(header_pos);
            self.columns.push(col.name.as_str().into());
            let rule = Rule::for_type(&col.ty, offset_secs);
            // An optional column's empty value is copied as it is: "" is plain.
            self.plain.push(rule.admits_only_plain());
            self.checks.push(Check {
                header_pos,
                column: col.name.as_str().into(),
                rule,
                optional: col.optional,
                event_time: col.name == kind.time_column(),
            });
        }
        for (pos, name) in names.iter().enumerate() {
            if !declared.iter().any(|c| &c.name == name) {
                self.order.push(pos);
                self.columns.push(name.as_str().into());
                self.plain.push(false);
            }
        }
        self.width = names.len();
        Ok(())
    }

    /// The file name errors are reported with.
    pub fn file_name(&self) -> &str {
        &self.file
    }

    /// The kind of file being read.
    pub fn kind(&self) -> &RecordKind {
        &self.kind
    }

    /// Column names in output order: the kind's required columns in canonical
    /// order, then the file's other columns in header order.
    pub fn columns(&self) -> impl ExactSizeIterator<Item = &str> {
        self.columns.iter().map(|c| &**c)
    }

    /// Rows read or skipped so far: the index of the last row returned.
    pub fn rows_read(&self) -> u64 {
        self.index
    }

    /// The next row, parsed and validated, borrowing the reader's buffers.
    /// `Ok(None)` at the end of the file. `Err` only for a failure of the file
    /// as a whole (an I/O or gzip error, a record over [`MAX_RECORD_BYTES`]);
    /// a bad row is `Ok(Some(Row::Invalid(..)))`.
    pub fn next_row(&mut self) -> Result<Option<Row<'_>>, FileError> {
        let Some(rec) = self.next_record()? else {
            return Ok(None);
        };
        self.index += 1;
        if self.absent_columns && rec.fields == self.width {
            self.spans.push((0, 0));
        }
        let (index, line) = (self.index, rec.line);
        Ok(Some(match self.validate(&rec) {
            Ok(event_time_ms) => Row::Valid(ValidRow {
                index,
                line,
                event_time_ms,
                raw: &self.buf[rec.raw.clone()],
                kind: &self.kind,
                text: self.text(&rec),
                padded: self.padded(&rec),
                spans: &self.spans,
                order: &self.order,
                columns: &self.columns,
                plain: &self.plain,
            }),
            Err(error) => Row::Invalid(InvalidRow {
                index,
                line,
                error,
                raw: &self.buf[rec.raw],
            }),
        }))
    }

    /// Skips up to `n` rows without validating them (to resume a file part-way);
    /// returns how many were skipped, fewer than `n` only at the end of the file.
    /// Skipped rows count in the index, so the next row keeps its number.
    pub fn skip_rows(&mut self, n: u64) -> Result<u64, FileError> {
        let mut skipped = 0;
        while skipped < n && self.next_record()?.is_some() {
            self.index += 1;
            skipped += 1;
        }
        Ok(skipped)
    }

    /// Runs the checks in the documented order; on success returns the
    /// record's event time.
    fn validate(&self, rec: &Record) -> Result<i64, RowError> {
        if rec.fields != self.width {
            return Err(RowError::FieldCount {
                expected: self.width,
                found: rec.fields,
            });
        }
        let bytes = self.text(rec);
        let utf8 = match rec.text {
            Text::Raw => rec.ascii || std::str::from_utf8(bytes).is_ok(),
            // Unquoting can join the halves of a character split by a comma or a
            // quote, so each field is checked on its own.
            Text::Unquoted(_) => self.first_non_utf8_column(bytes).is_none(),
        };
        if !utf8 {
            return Err(self.non_utf8_error(bytes));
        }
        let mut event_time_ms = 0;
        for check in &self.checks {
            let (a, b) = self.spans[check.header_pos];
            if check.optional && a == b {
                continue;
            }
            match check.rule.check(&bytes[a..b]) {
                Ok(Some(ms)) if check.event_time => {
                    if self.latest_event_ms.is_some_and(|latest| ms > latest) {
                        let value = String::from_utf8_lossy(&bytes[a..b]);
                        let reason = "event time is too far in the future for the broker to accept";
                        return Err(RowError::field(&check.column, &value, reason.into()));
                    }
                    event_time_ms = ms;
                }
                Ok(_) => {}
                Err(reason) => {
                    let value = String::from_utf8_lossy(&bytes[a..b]);
                    return Err(RowError::field(&check.column, &value, reason));
                }
            }
        }
        Ok(event_time_ms)
    }

    fn first_non_utf8_column(&self, text: &[u8]) -> Option<&str> {
        self.order.iter().zip(&self.columns).find_map(|(&h, name)| {
            let (a, b) = self.spans[h];
            std::str::from_utf8(&text[a..b]).is_err().then_some(&**name)
        })
    }

    fn non_utf8_error(&self, text: &[u8]) -> RowError {
        // A record is valid UTF-8 exactly when all its fields are (the bytes
        // between them are ASCII), so some column is always found.
        let column = self
            .first_non_utf8_column(text)
            .expect("a record that is not UTF-8 has a field that is not");
        RowError::InvalidUtf8 {
            column: column.to_owned(),
        }
    }

    /// The bytes the record's spans index.
    fn text(&self, rec: &Record) -> &[u8] {
        match rec.text {
            Text::Raw => &self.buf[rec.raw.clone()],
            Text::Unquoted(len) => &self.out[..len],
        }
    }

    /// [`text`](Self::text) followed by the rest of its buffer (see `ValidRow::padded`).
    fn padded(&self, rec: &Record) -> &[u8] {
        match rec.text {
            Text::Raw => &self.buf[rec.raw.start..self.end],
            Text::Unquoted(_) => &self.out,
        }
    }

    /// The next record's position and field spans; `None` at the end of the file.
    fn next_record(&mut self) -> Result<Option<Record>, FileError> {
        loop {
            let rest = &self.buf[self.pos..self.end];
            let scan = scan_line(rest, self.width, &mut self.spans);
            // Where the line's content ends, and where the next line starts.
            let (len, next) = match scan.stop.map(|at| (at, rest[at])) {
                Some((at, b'\n')) => (at, at + 1),
                Some((at, b'\r')) => match rest.get(at + 1) {
                    Some(b'\n') => (at, at + 2),
                    // A CR whose LF may be in the next read.
                    None if !self.eof => {
                        self.fill_more()?;
                        continue;
                    }
                    // A bare CR ends a record too: csv_core knows how.
                    _ => return self.read_quoted(),
                },
                Some(_) => return self.read_quoted(),
                None if !self.eof => {
                    self.fill_more()?;
                    continue;
                }
                None if rest.is_empty() => return Ok(None),
                // The last line, without a terminator.
                None => (rest.len(), rest.len()),
            };
            if len == 0 {
                // A blank line; or the LF of a CRLF whose CR ended the previous
                // (quoted) record, which was counted with that CR.
                if !(next == 1 && self.prev_cr) {
                    self.line += 1;
                }
                self.prev_cr = false;
                self.pos += next;
                continue;
            }
            if scan.fields <= self.width {
                self.spans.push((scan.last_start, len));
            }
            let rec = Record {
                raw: self.pos..self.pos + len,
                text: Text::Raw,
                fields: scan.fields,
                ascii: scan.ascii,
                line: self.line,
            };
            self.line += u64::from(next > len);
            self.prev_cr = false;
            self.pos += next;
            return Ok(Some(rec));
        }
    }

    /// Reads the record at `pos` with `csv_core`: quoted fields, embedded
    /// newlines, bare CRs, and anything the fast path leaves to it.
    fn read_quoted(&mut self) -> Result<Option<Record>, FileError> {
        // Offsets from `pos`, which `fill` may move.
        let mut scanned = 0;
        let (mut nout, mut nends) = (0, 0);
        // Ends dropped once a record has shown more fields than the header.
        let mut dropped = 0;
        let result = loop {
            let at = self.pos + scanned;
            if at == self.end && !self.eof {
                self.fill()?;
                continue;
            }
            let (res, nin, o, e) =
                self.core
                    .read_record(&self.buf[at..self.end], &mut self.out[nout..], &mut self.ends[nends..]);
            scanned += nin;
            nout += o;
            nends += e;
            match res {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => self.out.resize(self.out.len() * 2, 0),
                ReadRecordResult::OutputEndsFull if nends > self.width => {
                    dropped += nends;
                    nends = 0;
                }
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record | ReadRecordResult::End => break res,
            }
        };
        let consumed = &self.buf[self.pos..self.pos + scanned];
        let is_break = |b: &&u8| matches!(b, b'\r' | b'\n');
        // What csv_core skipped before the record: blank lines, the LF of a CRLF.
        let lead = consumed.iter().take_while(is_break).count();
        let trail = consumed[lead..].iter().rev().take_while(is_break).count();
        self.line += count_line_breaks(&consumed[..lead], &mut self.prev_cr);
        let line = self.line;
        self.line += count_line_breaks(&consumed[lead..], &mut self.prev_cr);
        let raw = self.pos + lead..self.pos + scanned - trail;
        self.pos += scanned;
        if matches!(result, ReadRecordResult::End) {
            return Ok(None);
        }
        self.spans.clear();
        let mut start = 0;
        for &end in &self.ends[..nends] {
            self.spans.push((start, end));
            start = end;
        }
        Ok(Some(Record {
            raw,
            text: Text::Unquoted(nout),
            fields: dropped + nends,
            ascii: false,
            line,
        }))
    }

    /// Reads until the unparsed input has at least doubled (or the file ends).
    /// The line scan starts over after a refill, so growing the input
    /// geometrically keeps a long line linear to read even from a reader that
    /// returns a few bytes at a time.
    fn fill_more(&mut self) -> Result<(), FileError> {
        // Capped, so that a record just under the limit is not refused.
        let want = (2 * (self.end - self.pos)).clamp(4096, MAX_RECORD_BYTES);
        while !self.eof && self.end - self.pos < want {
            self.fill()?;
        }
        Ok(())
    }

    /// Reads more input after `buf[pos..end]`, moving that to the front first
    /// and growing the buffer if a single record fills it.
    fn fill(&mut self) -> Result<(), FileError> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_RECORD_BYTES {
                return Err(FileError::RecordTooLong {
                    file: self.file.clone(),
                    line: self.line,
                    limit: MAX_RECORD_BYTES,
                });
            }
            let grown = (self.buf.len() * 2).min(MAX_RECORD_BYTES);
            self.buf.resize(grown, 0);
        }
        loop {
            match self.rdr.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(FileError::Read {
                        file: self.file.clone(),
                        line: self.line,
                        source,
                    })
                }
            }
            return Ok(());
        }
    }
}

/// What [`scan_line`] found.
#[derive(Debug)]
struct Scan {
    /// Position of the first LF, CR or `"`, if any.
    stop: Option<usize>,
    /// Fields before `stop` (commas + 1).
    fields: usize,
    /// Where the last field before `stop` starts.
    last_start: usize,
    /// Whether every byte before `stop` is ASCII.
    ascii: bool,
}

/// Scans `bytes` up to the first LF, CR or `"`, pushing onto `spans` the span
/// of each field that a comma ends (the caller adds the last field once it
/// knows where the line ends). Spans beyond `width` are only counted: the row
/// is invalid anyway, and a line of a million commas must not grow `spans`.
///
/// One pass, eight bytes at a time: newline, quote and CR are all below 0x23,
/// so most words need only the comma test; the one holding the line's end (or
/// a timestamp's space) takes the exact tests.
fn scan_line(bytes: &[u8], width: usize, spans: &mut Vec<(usize, usize)>) -> Scan {
    spans.clear();
    let mut start = 0;
    let mut fields = 1;
    let mut on_comma = |at: usize| {
        if fields <= width {
            spans.push((start, at));
        }
        start = at + 1;
        fields += 1;
    };
    let mut words = bytes.chunks_exact(8);
    let mut base = 0;
    // The OR of the bytes seen: its high bits say whether any is not ASCII.
    let mut any = 0u64;
    let mut stop = None;
    for word in words.by_ref().filter_map(<[u8]>::first_chunk::<8>) {
        let x = u64::from_le_bytes(*word);
        let mut commas = byte_mask(x, b',');
        let mut seen = x;
        if has_byte_below_0x23(x) {
            let stops = byte_mask(x, b'\n') | byte_mask(x, b'\r') | byte_mask(x, b'"');
            if stops != 0 {
                // Keep only what lies before the first stop byte.
                let at = stops.trailing_zeros() as usize / 8;
                let before = (1u64 << (at * 8)) - 1;
                commas &= before;
                seen &= before;
                stop = Some(base + at);
            }
        }
        any |= seen;
        while commas != 0 {
            on_comma(base + commas.trailing_zeros() as usize / 8);
            commas &= commas - 1;
        }
        if stop.is_some() {
            break;
        }
        base += 8;
    }
    if stop.is_none() {
        for (i, &b) in words.remainder().iter().enumerate() {
            match b {
                b'\n' | b'\r' | b'"' => {
                    stop = Some(base + i);
                    break;
                }
                b',' => on_comma(base + i),
                _ => {}
            }
            any |= u64::from(b);
        }
    }
    Scan {
        stop,
        fields,
        last_start: start,
        ascii: any & 0x8080_8080_8080_8080 == 0,
    }
}

/// Whether some byte of `x` is below 0x23 (exact: the classic "has less than" test).
#[inline]
fn has_byte_below_0x23(x: u64) -> bool {
    x.wrapping_sub(0x2323_2323_2323_2323) & !x & 0x8080_8080_8080_8080 != 0
}

/// The high bit of each byte of `x` that equals `b`, and no other bit.
/// (Adding 0x7f to the low seven bits carries into the high bit for every
/// non-zero byte of `x ^ b`, and never across bytes.)
#[inline]
fn byte_mask(x: u64, b: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let y = x ^ (0x0101_0101_0101_0101 * u64::from(b));
    !(((y & LOW7) + LOW7) | y | LOW7)
}

/// Line breaks in `bytes` as universal newlines count them: LF, CRLF and a bare
/// CR are one each. `prev_cr` carries a CR at the end of one slice over to an
/// LF at the start of the next.
fn count_line_breaks(bytes: &[u8], prev_cr: &mut bool) -> u64 {
    let mut n = 0;
    for &b in bytes {
        n += u64::from(b == b'\r' || (b == b'\n' && !*prev_cr));
        *prev_cr = b == b'\r';
    }
    n
}

#[cfg(test)]
mod tests;
