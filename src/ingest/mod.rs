//! The ingest engine: decides what to do with each ready file, produces it in
//! transactions, and keeps the ledger and the checkpoint topic in step.
//!
//! - `ahead`: the next file downloads while this one is produced.
//! - `decide`: ledger + checkpoints + listing -> skip, resume, conflict, ...
//! - `engine`: one worker slot taking one file at a time: fetch, decide,
//!   produce, and sort the outcome by blast radius.
//! - `file`: one staged file through parse -> encode -> chunked transactions.
//! - `park`: back-off and parking of files that keep failing; `retry` requests.
//! - `recover`: settles transactions a crash left in doubt.
//! - `turn`: commit order between two slots holding files of one kind.
//! - `workers`: N worker slots sharing the ledger, name order kept per kind.

pub(crate) mod ahead;
pub(crate) mod decide;
pub(crate) mod engine;
pub(crate) mod file;
pub(crate) mod park;
pub(crate) mod recover;
pub(crate) mod turn;
pub(crate) mod workers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::encode::ValueFormat;
use crate::parse::Validation;
use crate::schema::RecordKind;
use crate::sink::limits::RecordLimits;
use crate::sink::topics::TopicLayout;
use park::ParkPolicy;

/// What to do when a file name seen before arrives with different bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnChanged {
    /// Record it as a conflict and leave it alone (default).
    Conflict,
    /// Ingest it as a new version: new keys, since the hash differs.
    Reingest,
}

/// What to do with a source file once its outcome is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterIngest {
    /// Leave it where it is (the ledger remembers it).
    Keep,
    /// Remove it from the source.
    Delete,
    /// Move into this directory on the source side.
    Move(String),
}

/// Default rows per transaction.
pub const DEFAULT_CHUNK_ROWS: u64 = 100_000;
/// Default longest time a transaction stays open, seconds.
pub const DEFAULT_CHUNK_SECONDS: u64 = 10;
/// Default: event times further ahead of the clock than this many seconds
/// are invalid rows.
pub const DEFAULT_MAX_FUTURE_SECONDS: u64 = 3300;

/// Everything the engine needs besides its connections.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Where records go.
    pub topics: TopicLayout,
    /// Each kind's value format, prepared (by kind name; `json` if absent).
    pub values: BTreeMap<String, ValueFormat>,
    /// Partition counts of the topics of kinds partitioned by a column.
    pub partition_counts: BTreeMap<String, i32>,
    /// A transaction holds at most this many rows...
    pub chunk_rows: u64,
    /// ...and stays open at most this long, so it commits well inside the
    /// broker's transaction timeout.
    pub chunk_time: Duration,
    /// The lists and time zone the rows are checked with.
    pub validation: Validation,
    /// What a file that changed after its ingest gets.
    pub on_changed: OnChanged,
    /// Ingest a file whose bytes equal an ingested one under another name.
    pub allow_duplicate_content: bool,
    /// Where fetched files are staged while they are ingested.
    pub staging_dir: PathBuf,
    /// Download each slot's next file while it produces the current one.
    pub read_ahead: bool,
    /// What happens to an ingested file on the source.
    pub after_success: AfterIngest,
    /// Failed, conflicting and duplicate files are moved here, if set.
    pub error_dir: Option<String>,
    /// Attempts at one chunk (abort and replay) before the file is left for
    /// the next pass.
    pub max_chunk_attempts: u32,
    /// Waits between a chunk's attempts, and between tries of a failing abort.
    pub replay_backoff: Backoff,
    /// Event times further ahead of the clock than this are invalid rows.
    pub max_future: Duration,
    /// The largest record each output topic accepts, as last learned.
    pub limits: RecordLimits,
    /// Back-off and parking of files that keep failing.
    pub park: ParkPolicy,
    /// Set by the daemon's signal handler; every clone shares it.
    pub shutdown: Shutdown,
}

/// A shutdown request, shared by the signal handler and every worker slot:
/// no new file is taken and the current chunk ends early and commits.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// Asks every slot to stop after its current chunk.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl IngestSettings {
    /// The defaults, staging in `staging_dir`.
    pub fn new(staging_dir: PathBuf) -> Self {
        IngestSettings {
            topics: TopicLayout::default(),
            values: BTreeMap::new(),
            partition_counts: BTreeMap::new(),
            chunk_rows: DEFAULT_CHUNK_ROWS,
            chunk_time: Duration::from_secs(DEFAULT_CHUNK_SECONDS),
            validation: Validation::default(),
            on_changed: OnChanged::Conflict,
            allow_duplicate_content: false,
            staging_dir,
            read_ahead: true,
            after_success: AfterIngest::Keep,
            error_dir: None,
            max_chunk_attempts: 20,
            replay_backoff: Backoff::TRANSIENT,
            max_future: Duration::from_secs(DEFAULT_MAX_FUTURE_SECONDS),
            limits: RecordLimits::default(),
            park: ParkPolicy::default(),
            shutdown: Shutdown::default(),
        }
    }
}

impl IngestSettings {
    /// For a kind partitioned by a column: the column's position among the
    /// declared ones and its topic's partition count.
    pub fn partitioner(&self, kind: &RecordKind) -> Option<(usize, i32)> {
        let column = *self.topics.partition_by.get(kind.as_str())?;
        Some((column, *self.partition_counts.get(kind.topic())?))
    }

    /// The prepared format of `kind`'s values.
    pub fn value_format(&self, kind: &RecordKind) -> ValueFormat {
        self.values.get(kind.as_str()).cloned().unwrap_or_default()
    }
}

/// Where a copy of the file `name` is staged (`what`: `staging` for a slot's
/// own copy, `ahead-N` for slot N's read-ahead). Named by a hash of the name,
/// not the name: any name the server can list (up to 255 bytes, any bytes)
/// gives a short, plain staging name, so no legal file can fail on our disk
/// for its name.
pub fn staging_path(dir: &Path, name: &str, what: &str) -> PathBuf {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(name.as_bytes());
    dir.join(format!("{}.{what}", &crate::encode::hex(&digest)[..32]))
}

/// Milliseconds since the Unix epoch, for ledger timestamps.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_listable_name_gets_a_short_plain_staging_name_of_its_own() {
        let dir = Path::new("/staging");
        let longest = format!("cdr_data_{}.csv", "x".repeat(255 - 13));
        assert_eq!(longest.len(), 255);
        for name in [longest.as_str(), "cdr_data_20240910..csv", "cdr_data_\u{1F4DE}\n.csv"] {
            let path = staging_path(dir, name, "ahead-12");
            let file = path.file_name().unwrap().to_str().unwrap();
            assert_eq!(path.parent(), Some(dir));
            assert!(file.len() <= 41 && file.ends_with(".ahead-12"), "{file}");
            assert!(
                file.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'),
                "{file}"
            );
        }
        assert_ne!(
            staging_path(dir, "a.csv", "staging"),
            staging_path(dir, "b.csv", "staging")
        );
        assert_ne!(
            staging_path(dir, "a.csv", "staging"),
            staging_path(dir, "a.csv", "ahead-0")
        );
    }
}
