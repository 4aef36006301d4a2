//! What both targets do with a file's bytes: read every row, encode it, and
//! check the invariants that must hold for any input.

use std::io::{self, Read};

use cdr_core::encode::{self, FileContext};
use cdr_core::parse::{CdrReader, Row, Validation};
use cdr_core::schema::RecordKind;

/// The dead-letter topic's record limit in the fuzz runs.
const DLQ_LIMIT: usize = 8192;

/// A row reduced to what two reads of the same bytes must agree on.
#[derive(Debug, PartialEq)]
pub struct Seen {
    index: u64,
    line: u64,
    value: Vec<u8>,
}

/// Reads `rdr` as a `kind` file, encoding every row; panics if an invariant
/// breaks. Returns the rows, or the file error's message.
pub fn read_all(kind: &RecordKind, rdr: impl Read) -> Result<Vec<Seen>, String> {
    let mut reader =
        CdrReader::new(kind.clone(), "fuzz.csv", rdr, &Validation::default()).map_err(|e| e.to_string())?;
    let ctx = FileContext::new("fuzz.csv", kind.clone(), &[0x5a; 32]);
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut seen: Vec<Seen> = Vec::new();
    loop {
        let row = match reader.next_row() {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(seen),
            Err(e) => return Err(e.to_string()),
        };
        let (index, line) = (row.index(), row.line());
        assert_eq!(index, seen.len() as u64 + 1, "indices are consecutive from 1");
        assert!(seen.last().is_none_or(|s| s.line < line), "lines increase");
        encode::write_key(&ctx, index, &mut key);
        assert_eq!(key, format!("{}-{index}", ctx.key_prefix()).as_bytes());
        match row {
            Row::Valid(r) => {
                assert_eq!(r.field_count(), r.fields().count());
                encode::write_value(&ctx, &r, "2025-01-01T00:00:00.000000", &mut value)
                    .expect("json values always encode");
            }
            Row::Invalid(r) => {
                // The service's dead-letter path, with a limit low enough
                // that long lines take the cut.
                let hv = [&key[..], ctx.file_name().as_bytes(), b"", ctx.sha256_hex().as_bytes()];
                let ts = "2025-01-01T00:00:00.000000";
                if let Err(e) = encode::encode_invalid_row(&ctx, &r, "dlq", DLQ_LIMIT, &hv, ts, &mut value) {
                    panic!("a dead letter did not fit {DLQ_LIMIT} bytes: {e}");
                }
            }
        }
        assert!(value.is_ascii(), "values are pure ASCII JSON");
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&value) {
            panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(&value));
        }
        seen.push(Seen {
            index,
            line,
            value: value.clone(),
        });
    }
}

/// Hands out one byte per `read`, so that a buffer boundary falls at every
/// position of every record.
pub struct Trickle<'a>(pub &'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

/// The input with a valid header of `kind` in front, so that the fuzzer's bytes
/// are rows rather than mostly rejected headers.
pub fn with_header(kind: &RecordKind, data: &[u8]) -> Vec<u8> {
    let mut v = kind.header().into_bytes();
    v.push(b'\n');
    v.extend_from_slice(data);
    v
}
