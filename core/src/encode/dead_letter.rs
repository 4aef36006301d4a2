//! A dead-letter record that always fits its topic: when the whole row does
//! not, `_raw` is cut (with the record's length and SHA-256, so an operator
//! finds the line in the file), shorter until it fits.

use sha2::{Digest, Sha256};

use super::record::{record_size, HeaderValues};
use super::{hex, write_dead_letter, Cut, DeadLetter, FileContext};

/// `_raw` keeps at most this much of a record too large for its topic: enough
/// to recognise the line, small enough for any sane topic limit.
pub const CUT_KEEP: usize = 4096;

/// Even with an empty `_raw`, the dead-letter record is over the topic's
/// limit: the file cannot be ingested without losing the row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{file}: row {index} (line {line}): even with its line cut, the dead-letter record of {size} bytes \
     exceeds the limit of {limit} for topic {topic}"
)]
pub struct DeadLetterTooLarge {
    /// The file of the row.
    pub file: String,
    /// The row's index from 1.
    pub index: u64,
    /// The line the row starts on.
    pub line: u64,
    /// The smallest record's wire size.
    pub size: usize,
    /// The topic's limit.
    pub limit: usize,
    /// The dead-letter topic.
    pub topic: String,
}

/// Encodes `letter` for the dead-letter topic `topic`, whose records may be
/// `limit` wire bytes at most, into `value`, replacing its content; `hv` are
/// the record's headers.
pub fn encode_dead_letter(
    ctx: &FileContext,
    letter: DeadLetter<'_>,
    topic: &str,
    limit: usize,
    hv: &HeaderValues<'_>,
    ingestion_ts: &str,
    value: &mut Vec<u8>,
) -> Result<(), DeadLetterTooLarge> {
    write_dead_letter(ctx, &letter, ingestion_ts, value);
    let size = record_size(hv[0], value, hv);
    if size <= limit {
        return Ok(());
    }
    let sha256_hex = hex(&Sha256::digest(letter.raw));
    let error = format!(
        "{}; record of {size} bytes exceeds the limit of {limit} for topic {topic}",
        letter.error
    );
    let mut keep = CUT_KEEP.min(letter.raw.len());
    loop {
        let cut = DeadLetter {
            error: &error,
            cut: Some(Cut {
                keep,
                sha256_hex: &sha256_hex,
            }),
            ..letter
        };
        write_dead_letter(ctx, &cut, ingestion_ts, value);
        let size = record_size(hv[0], value, hv);
        if size <= limit {
            return Ok(());
        }
        if keep == 0 {
            return Err(DeadLetterTooLarge {
                file: ctx.file_name().to_string(),
                index: letter.index,
                line: letter.line,
                size,
                limit,
                topic: topic.to_string(),
            });
        }
        keep /= 2;
    }
}
