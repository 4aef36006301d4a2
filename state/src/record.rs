//! The two things the ledger stores: one [`FileRecord`] per file name and one
//! [`TxnRecord`] per Kafka transaction.
//!
//! Their serde form is the body of the stored envelope (v2; v1 lacked the
//! retry fields) (see `codec`): renaming
//! or retyping a field changes the on-disk format, and the golden test in
//! `tests/ledger.rs` fails until a new envelope version is introduced.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Everything the service knows about one file it has seen on the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// File name on the source (the ledger key); no directory.
    pub name: String,
    /// Size in bytes when it was listed.
    pub size: u64,
    /// Modification time when it was listed, seconds since the Unix epoch.
    pub mtime: i64,
    /// SHA-256 of the file's bytes, lowercase hex; empty until it has been hashed.
    pub sha256: String,
    /// Record kind: `"data"` or `"voice"`.
    pub kind: String,
    /// Where the file is in its life cycle.
    pub status: FileStatus,
    /// Rows (valid and invalid) covered by committed Kafka transactions.
    pub rows_done: u64,
    /// Of `rows_done`, rows published to the record topic.
    pub valid_rows: u64,
    /// Of `rows_done`, rows published to the dead-letter topic.
    pub invalid_rows: u64,
    /// Earliest event time among committed rows, ms since the Unix epoch.
    pub first_event_ms: Option<i64>,
    /// Latest event time among committed rows, ms since the Unix epoch.
    pub last_event_ms: Option<i64>,
    /// When the service first listed this name, ms since the Unix epoch.
    pub first_seen_ms: i64,
    /// When this record was last changed, ms since the Unix epoch.
    pub updated_ms: i64,
    /// When ingest of the current version began.
    pub started_ms: Option<i64>,
    /// When ingest of the current version ended (committed, failed, ...).
    pub finished_ms: Option<i64>,
    /// Why the file failed or conflicted, for people.
    pub error: Option<String>,
    /// For a `Duplicate`: the name of the file that committed the same bytes.
    pub duplicate_of: Option<String>,
    /// 1 for the first content seen under this name, 2.. each time a changed file is
    /// re-ingested under the same name.
    pub version: u32,
    /// Bytes read from the source so far for the current version.
    pub bytes: u64,
    /// Failed attempts at the current content that a transient cause stopped
    /// (since v2; 0 in v1 values). Reset by success, changed content or `retry`.
    #[serde(default)]
    pub attempts: u32,
    /// Not tried again before this instant, ms since the Unix epoch (since v2).
    #[serde(default)]
    pub next_attempt_ms: Option<i64>,
    /// The first row this version produced (1 unless it continues a version
    /// of the same file whose bytes it extends: the rows before it were
    /// committed by that version, under its hash). `valid_rows` and
    /// `invalid_rows` count from here. Absent (1) in values written before.
    #[serde(default = "first_row")]
    pub first_row: u64,
}

fn first_row() -> u64 {
    1
}

impl FileRecord {
    /// A name first listed at `now_ms` (ms since the Unix epoch): status
    /// `Seen`, nothing hashed, committed or attempted yet.
    pub fn seen(name: &str, kind: &str, size: u64, mtime: i64, now_ms: i64) -> Self {
        FileRecord {
            name: name.to_owned(),
            size,
            mtime,
            sha256: String::new(),
            kind: kind.to_owned(),
            status: FileStatus::Seen,
            rows_done: 0,
            valid_rows: 0,
            invalid_rows: 0,
            first_event_ms: None,
            last_event_ms: None,
            first_seen_ms: now_ms,
            updated_ms: now_ms,
            started_ms: None,
            finished_ms: None,
            error: None,
            duplicate_of: None,
            version: 1,
            bytes: 0,
            attempts: 0,
            next_attempt_ms: None,
            first_row: 1,
        }
    }

    /// Whether this record owns its bytes for duplicate detection: the
    /// `sha256 -> name` index holds exactly the records for which this is true.
    pub(crate) fn claims_content(&self) -> bool {
        matches!(self.status, FileStatus::InProgress | FileStatus::Committed)
    }
}

/// Life-cycle state of a file. Ordered as declared (for stable `counts` output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Listed, not yet (completely) ingested: still settling, or waiting its turn.
    Seen,
    /// At least one Kafka transaction has been started for it and it is not done.
    InProgress,
    /// Every row is in committed Kafka transactions.
    Committed,
    /// A file-level error (bad header, broken gzip, changed under us): nothing of
    /// the failing version is committed; `error` says why.
    Failed,
    /// The file changed after (part of) it was committed and the configured policy
    /// refuses to re-ingest it; `error` says what changed.
    Conflict,
    /// Same bytes as a file already committed or in progress (`duplicate_of`).
    Duplicate,
    /// Set aside after `attempts` tries that a transient cause stopped (the file
    /// unreadable, a chunk the brokers kept refusing): not tried again until its
    /// content changes or an operator asks (`retry`); `error` is the last cause.
    /// Rows committed before it stopped stay committed (`rows_done`).
    Parked,
}

impl FileStatus {
    /// Every status, in order.
    pub const ALL: [FileStatus; 7] = [
        FileStatus::Seen,
        FileStatus::InProgress,
        FileStatus::Committed,
        FileStatus::Failed,
        FileStatus::Conflict,
        FileStatus::Duplicate,
        FileStatus::Parked,
    ];

    /// The stored and displayed name, e.g. `"in_progress"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Seen => "seen",
            FileStatus::InProgress => "in_progress",
            FileStatus::Committed => "committed",
            FileStatus::Failed => "failed",
            FileStatus::Conflict => "conflict",
            FileStatus::Duplicate => "duplicate",
            FileStatus::Parked => "parked",
        }
    }
}

impl fmt::Display for FileStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Kafka transaction the service started for a file: the rows it covers and
/// how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRecord {
    /// Name of the file the transaction carries rows of.
    pub file: String,
    /// Transaction number within the file name; unique across the name's versions.
    pub seq: u64,
    /// `FileRecord::version` of the file when the transaction was started.
    pub file_version: u32,
    /// First row the transaction covers, as the caller numbers rows (the ingest
    /// loop: the 1-based row index of the record keys).
    pub row_start: u64,
    /// Last row covered, i.e. the file's `rows_done` once the transaction
    /// committed; `None` unless committed.
    pub row_end: Option<u64>,
    /// How the transaction ended, if known.
    pub outcome: TxnOutcome,
    /// When the intent was recorded, ms since the Unix epoch.
    pub started_ms: i64,
    /// When the outcome was recorded, ms since the Unix epoch.
    pub finished_ms: Option<i64>,
    /// Why it was aborted, or how an in-doubt outcome was resolved.
    pub reason: Option<String>,
}

/// How a Kafka transaction ended, as far as the ledger knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnOutcome {
    /// The intent is recorded but no outcome: the process stopped between the two,
    /// or the transaction is running now. Only the checkpoint topic can tell.
    InDoubt,
    /// `commit_transaction` returned Ok (or the checkpoint topic shows the commit).
    Committed,
    /// The transaction was aborted (or the checkpoint topic shows it never committed).
    Aborted,
}

impl TxnOutcome {
    /// The stored and displayed name, e.g. `"in_doubt"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TxnOutcome::InDoubt => "in_doubt",
            TxnOutcome::Committed => "committed",
            TxnOutcome::Aborted => "aborted",
        }
    }
}

impl fmt::Display for TxnOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_serde_and_display_agree() {
        for status in FileStatus::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{status}\""));
            assert_eq!(serde_json::from_str::<FileStatus>(&json).unwrap(), status);
        }
        for outcome in [TxnOutcome::InDoubt, TxnOutcome::Committed, TxnOutcome::Aborted] {
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{outcome}\""));
        }
    }

    #[test]
    fn status_order_is_declaration_order() {
        let mut sorted = FileStatus::ALL;
        sorted.sort();
        assert_eq!(sorted, FileStatus::ALL);
    }
}
