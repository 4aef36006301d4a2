//! The engine of one worker slot: its producer and source, with the ledger
//! and the checkpoints shared by every slot, taking one ready file at a time.
//! `workers` decides which slot takes which file.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use cdr_state::{FileRecord, FileStatus, Ledger, LedgerError};

use super::ahead::ReadAhead;
use super::decide::{needs_fetch, plan, Facts, Plan};
use super::file::{check_whole_stream, extends_previous, produce_file, IngestError, Job};
use super::park::{self, Verdict};
use super::turn::Turn;
use super::{now_ms, staging_path, AfterIngest, IngestSettings};
use crate::backoff::backoff;
use crate::encode;
use crate::metrics::METRICS;
use crate::schema::RecordKind;
use crate::sink::checkpoint::CheckpointError;
use crate::sink::{CheckpointStore, SinkError, TransactionalSink};
use crate::source::{Fetched, RemoteFile, Source, SourceError};

/// Errors that stop the engine (the caller exits non-zero).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Checkpoints(#[from] CheckpointError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("starting a worker thread: {0}")]
    Thread(std::io::Error),
    #[error("a worker slot panicked while ingesting {0}")]
    SlotPanicked(String),
    #[error("staging directory {path}: {source}")]
    Staging {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What happened to one file in a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    Committed {
        rows: u64,
        invalid: u64,
    },
    /// Nothing to do: done before, or already recorded as conflict/duplicate/failed.
    Skipped,
    Conflict,
    Duplicate,
    Failed(String),
    /// A transient cause stopped it while the rest of the pipeline worked:
    /// counted against the file, which is tried again after a back-off.
    Retrying {
        reason: String,
        attempt: u32,
    },
    /// Its counted failures reached the limit: set aside until its content
    /// changes or `retry` releases it.
    Parked(String),
    /// An outage stopped it (the source or the brokers unreachable): not the
    /// file's fault and not counted. The pass ends, since the next file would
    /// meet the same outage; the next pass tries again.
    Deferred(String),
    /// Stopped mid-file by a shutdown, left in progress after `rows_done` rows.
    Interrupted {
        rows_done: u64,
    },
}

impl FileOutcome {
    /// The `outcome` label of the files metric.
    pub fn label(&self) -> &'static str {
        match self {
            FileOutcome::Committed { .. } => "committed",
            FileOutcome::Skipped => "skipped",
            FileOutcome::Conflict => "conflict",
            FileOutcome::Duplicate => "duplicate",
            FileOutcome::Failed(_) => "failed",
            FileOutcome::Retrying { .. } => "retrying",
            FileOutcome::Parked(_) => "parked",
            FileOutcome::Deferred(_) => "deferred",
            FileOutcome::Interrupted { .. } => "interrupted",
        }
    }
}

/// Tally of one pass.
#[derive(Debug, Default, Clone)]
pub struct PassSummary {
    pub committed: u64,
    pub skipped: u64,
    pub conflicts: u64,
    pub duplicates: u64,
    pub failed: u64,
    pub retrying: u64,
    pub parked: u64,
    pub deferred: u64,
    pub interrupted: u64,
    pub rows: u64,
    pub invalid_rows: u64,
}

impl PassSummary {
    pub(super) fn add(&mut self, o: &FileOutcome) {
        match o {
            FileOutcome::Committed { rows, invalid } => {
                self.committed += 1;
                self.rows += rows;
                self.invalid_rows += invalid;
            }
            FileOutcome::Skipped => self.skipped += 1,
            FileOutcome::Conflict => self.conflicts += 1,
            FileOutcome::Duplicate => self.duplicates += 1,
            FileOutcome::Failed(_) => self.failed += 1,
            FileOutcome::Retrying { .. } => self.retrying += 1,
            FileOutcome::Parked(_) => self.parked += 1,
            FileOutcome::Deferred(_) => self.deferred += 1,
            FileOutcome::Interrupted { .. } => self.interrupted += 1,
        }
    }
}

pub struct Engine {
    ledger: Arc<Ledger>,
    source: Box<dyn Source>,
    /// The next file's download on a session of its own, if enabled.
    ahead: Option<ReadAhead>,
    checkpoints: Arc<Mutex<CheckpointStore>>,
    settings: IngestSettings,
}

/// Source fetch attempts (with reconnects) before the failure is sorted.
const FETCH_ATTEMPTS: u32 = 6;

/// What a transient failure of one file needed.
#[derive(Debug, Clone, Copy)]
enum Dependency {
    Source,
    Brokers,
    /// Our own staging disk: always there to blame, so a failure counts
    /// against the file (backs off, then parks) but never fails it.
    Staging,
}

impl Engine {
    /// One slot over shared state; `workers::Workers::start` builds them in
    /// the order recovery needs. The producer is lent per file (`ingest_one`):
    /// a slot's own, or in a group the producer of the file's shard.
    pub(super) fn new(
        ledger: Arc<Ledger>,
        source: Box<dyn Source>,
        ahead: Option<ReadAhead>,
        checkpoints: Arc<Mutex<CheckpointStore>>,
        settings: IngestSettings,
    ) -> Self {
        Engine {
            ledger,
            source,
            ahead,
            checkpoints,
            settings,
        }
    }

    /// At the end of a pass: a read-ahead nobody will claim is thrown away.
    pub(super) fn end_pass(&mut self) {
        if let Some(a) = &mut self.ahead {
            a.discard();
        }
    }

    /// Whether `file` would be fetched if taken now: read-ahead of a file
    /// already settled would only waste a download.
    fn worth_fetching(&self, file: &RemoteFile) -> bool {
        self.settings.topics.kinds.for_file(&file.name).is_some()
            && match self.ledger.file(&file.name) {
                Ok(existing) => needs_fetch(file, existing.as_ref(), self.settings.on_changed, now_ms()),
                Err(_) => false,
            }
    }

    pub(super) fn set_limits(&mut self, limits: &crate::sink::limits::RecordLimits) {
        self.settings.limits = limits.clone();
    }

    pub fn source_mut(&mut self) -> &mut dyn Source {
        self.source.as_mut()
    }

    /// The checkpoints every slot shares. A panic in another slot while it
    /// held the lock leaves the map as consistent as any single insert.
    fn checkpoints(&self) -> MutexGuard<'_, CheckpointStore> {
        self.checkpoints.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One file, start to finish. Only fatal errors are returned as Err.
    /// `turn` orders its commits after the lane's previous file (held by
    /// another slot); once it says the shard went to another instance, the
    /// file stops at the next chunk boundary and is left in progress.
    ///
    /// `next` is the file this slot expects to take after this one: with
    /// read-ahead on, it downloads while this one is produced.
    pub fn ingest_one(
        &mut self,
        producer: &mut dyn TransactionalSink,
        file: &RemoteFile,
        next: Option<&RemoteFile>,
        turn: &dyn Turn,
    ) -> Result<FileOutcome, EngineError> {
        let ahead = self.ahead.as_mut().and_then(|a| a.claim(file));
        if let Some(next) = next.filter(|n| self.worth_fetching(n)) {
            if let Some(a) = &mut self.ahead {
                a.start(next);
            }
        }
        let ahead_path = ahead.as_ref().map(|f| f.path.clone());
        let outcome = self.ingest_claimed(producer, file, ahead, turn);
        if let Some(path) = ahead_path {
            let _ = std::fs::remove_file(path);
        }
        outcome
    }

    fn ingest_claimed(
        &mut self,
        producer: &mut dyn TransactionalSink,
        file: &RemoteFile,
        ahead: Option<Fetched>,
        turn: &dyn Turn,
    ) -> Result<FileOutcome, EngineError> {
        let Some(kind) = self.settings.topics.kinds.for_file(&file.name).cloned() else {
            return Ok(FileOutcome::Skipped);
        };
        let existing = self.ledger.file(&file.name)?;
        if !needs_fetch(file, existing.as_ref(), self.settings.on_changed, now_ms()) {
            if let Some(rec) = &existing {
                self.after_outcome(rec);
            }
            return Ok(FileOutcome::Skipped);
        }
        let outcome = self.fetch_and_ingest(producer, file, kind, existing, ahead, turn);
        let _ = std::fs::remove_file(self.staged_path(file));
        outcome
    }

    /// Where this slot fetches `file` to.
    fn staged_path(&self, file: &RemoteFile) -> PathBuf {
        staging_path(&self.settings.staging_dir, &file.name, "staging")
    }

    fn fetch_and_ingest(
        &mut self,
        producer: &mut dyn TransactionalSink,
        file: &RemoteFile,
        kind: RecordKind,
        existing: Option<FileRecord>,
        ahead: Option<Fetched>,
        turn: &dyn Turn,
    ) -> Result<FileOutcome, EngineError> {
        let mut rec = existing.clone().unwrap_or_else(|| new_record(file, &kind));
        if rec.size != file.size || rec.mtime != file.mtime {
            // New content under the name: earlier failures say nothing of it.
            park::fresh_start(&mut rec);
        }
        rec.size = file.size;
        rec.mtime = file.mtime;
        let read_ahead = ahead.is_some();
        let fetched = match ahead.map_or_else(|| self.fetch(file, &self.staged_path(file)), Ok) {
            Ok(f) => f,
            Err(SourceError::Changed { what, .. }) => {
                return self.fail(rec, format!("changed while being read ({what}); retried once stable"));
            }
            Err(SourceError::Gone { .. }) => return Ok(FileOutcome::Skipped),
            Err(e @ SourceError::Staging { .. }) => {
                return self.transient_failure(producer, rec, e.to_string(), Dependency::Staging)
            }
            Err(e) => {
                return self.transient_failure(producer, rec, format!("download failed: {e}"), Dependency::Source)
            }
        };
        METRICS.bytes_downloaded.add(fetched.size);
        let sha_hex = encode::hex(&fetched.sha256);
        match check_whole_stream(&fetched.path, &file.name) {
            Ok(()) => {}
            Err(e @ IngestError::Staging { .. }) => {
                return self.transient_failure(producer, rec, e.to_string(), Dependency::Staging)
            }
            Err(e) => {
                rec.sha256 = sha_hex;
                return self.fail(rec, e.to_string());
            }
        }
        let same_bytes_as = self.same_bytes_elsewhere(&sha_hex, &file.name)?;
        let checkpoint = self.checkpoints().get(&file.name).cloned();
        let decision = plan(&Facts {
            sha256: &sha_hex,
            record: existing.as_ref(),
            checkpoint: checkpoint.as_ref(),
            same_bytes_as: same_bytes_as.as_deref(),
            on_changed: self.settings.on_changed,
            allow_duplicate_content: self.settings.allow_duplicate_content,
        });
        let decision = match decision {
            Plan::Conflict {
                previous_sha256,
                grown: Some(g),
            } => match extends_previous(&fetched.path, g.previous_bytes, &previous_sha256, &file.name) {
                // The uploader appended to a file already taken (it stalled
                // longer than the settle interval): the rows after the last
                // committed one are new, under this version's hash.
                Ok(true) => {
                    tracing::info!(
                        file = %file.name, previous_sha256 = %previous_sha256, sha256 = %sha_hex,
                        after_row = g.progress.rows_done, version = g.version,
                        "the file grew after ingest with its ingested bytes unchanged: continuing after its last committed row"
                    );
                    Plan::Ingest {
                        version: g.version,
                        progress: g.progress,
                    }
                }
                Ok(false) => Plan::Conflict {
                    previous_sha256,
                    grown: None,
                },
                Err(e) => return self.transient_failure(producer, rec, e.to_string(), Dependency::Staging),
            },
            other => other,
        };
        match decision {
            Plan::AlreadyDone { version, progress } => {
                if rec.status != FileStatus::Committed || rec.sha256 != sha_hex {
                    tracing::info!(file = %file.name, "already committed in Kafka; ledger brought up to date");
                }
                rec.sha256 = sha_hex;
                rec.version = version;
                rec.bytes = fetched.size;
                progress.apply_to(&mut rec);
                rec.status = FileStatus::Committed;
                rec.error = None;
                park::fresh_start(&mut rec);
                rec.finished_ms.get_or_insert_with(now_ms);
                self.ledger.put_file(&rec)?;
                self.after_outcome(&rec);
                Ok(FileOutcome::Skipped)
            }
            Plan::Conflict { previous_sha256, .. } => {
                tracing::warn!(
                    file = %file.name, previous_sha256 = %previous_sha256, sha256 = %sha_hex,
                    "file was ingested before with different content; not ingested (use --on-changed reingest to ingest it as a new version)"
                );
                if rec.status != FileStatus::Conflict {
                    // Keep the committed record's hash: it is what Kafka holds.
                    rec.status = FileStatus::Conflict;
                    rec.error = Some(format!(
                        "content changed after ingest: sha256 {sha_hex}, ingested {previous_sha256}"
                    ));
                    rec.updated_ms = now_ms();
                    self.ledger.put_file(&rec)?;
                }
                self.after_outcome(&rec);
                Ok(FileOutcome::Conflict)
            }
            Plan::Duplicate { of } => {
                tracing::warn!(file = %file.name, duplicate_of = %of, "same content as an already ingested file; not ingested (use --allow-duplicate-content to ingest it anyway)");
                rec.sha256 = sha_hex;
                rec.status = FileStatus::Duplicate;
                rec.error = Some(format!("same content as {of}"));
                rec.duplicate_of = Some(of);
                rec.updated_ms = now_ms();
                self.ledger.put_file(&rec)?;
                self.after_outcome(&rec);
                Ok(FileOutcome::Duplicate)
            }
            Plan::Ingest { version, progress } => {
                if version != rec.version {
                    tracing::info!(file = %file.name, version, "ingesting changed content as a new version");
                    rec.started_ms = None;
                    rec.finished_ms = None;
                }
                rec.sha256 = sha_hex;
                rec.version = version;
                rec.bytes = fetched.size;
                rec.error = None;
                rec.duplicate_of = None;
                progress.apply_to(&mut rec);
                let next_seq = self.next_seq(&rec.name, checkpoint.as_ref())?;
                let job = Job {
                    record: rec,
                    kind,
                    staged: &fetched.path,
                    sha256: &fetched.sha256,
                    progress,
                    next_seq,
                    turn,
                };
                self.produce(producer, job, read_ahead)
            }
        }
    }

    /// `read_ahead`: the bytes came from the read-ahead (for the log).
    fn produce(
        &mut self,
        producer: &mut dyn TransactionalSink,
        job: Job<'_>,
        read_ahead: bool,
    ) -> Result<FileOutcome, EngineError> {
        let started = Instant::now();
        let resumed_at = job.progress.rows_done;
        let bytes = job.record.bytes;
        tracing::info!(file = %job.record.name, bytes, sha256 = %job.record.sha256, resume_after_row = resumed_at, read_ahead, "ingest started");
        let fallback = job.record.clone();
        match produce_file(producer, &self.ledger, &self.checkpoints, &self.settings, job) {
            Ok(done) => {
                let secs = started.elapsed().as_secs_f64();
                let rows = done.rows_done - resumed_at;
                tracing::info!(
                    file = %done.name, rows = done.rows_done, invalid = done.invalid_rows,
                    bytes, seconds = format_args!("{secs:.2}"),
                    rows_per_sec = format_args!("{:.0}", rows as f64 / secs.max(1e-9)),
                    "ingest committed"
                );
                self.after_outcome(&done);
                Ok(FileOutcome::Committed {
                    rows: done.rows_done,
                    invalid: done.invalid_rows,
                })
            }
            Err(IngestError::Bad(bad)) => {
                let rec = self.ledger.file(&fallback.name)?.unwrap_or(fallback);
                self.fail(rec, bad.to_string())
            }
            Err(e @ IngestError::Staging { .. }) => {
                let rec = self.ledger.file(&fallback.name)?.unwrap_or(fallback);
                self.transient_failure(producer, rec, e.to_string(), Dependency::Staging)
            }
            Err(IngestError::Fatal(e)) => Err(EngineError::Sink(e)),
            Err(IngestError::Ledger(e)) => Err(EngineError::Ledger(e)),
            Err(IngestError::Stopped { rows_done }) => {
                if self.settings.shutdown.requested() {
                    tracing::info!(file = %fallback.name, rows_done, "shutdown: file left in progress; the next start resumes it");
                } else {
                    tracing::info!(file = %fallback.name, rows_done, "shard handed off: file left in progress at a chunk boundary; its new owner resumes it");
                }
                Ok(FileOutcome::Interrupted { rows_done })
            }
            Err(e @ IngestError::Exhausted { .. }) => {
                let rec = self.ledger.file(&fallback.name)?.unwrap_or(fallback);
                self.transient_failure(producer, rec, e.to_string(), Dependency::Brokers)
            }
        }
    }

    /// Sorts a transient failure of one file by its blast radius. When the
    /// dependency it needed answers now, the cause lies with this file: the
    /// failure is counted and the file backs off or is parked. When it does
    /// not, it is an outage, which every other file would meet too: nothing
    /// is counted and the pass ends.
    fn transient_failure(
        &mut self,
        producer: &dyn TransactionalSink,
        mut rec: FileRecord,
        reason: String,
        dependency: Dependency,
    ) -> Result<FileOutcome, EngineError> {
        let reachable = match dependency {
            Dependency::Source => self.source.list().is_ok(),
            Dependency::Brokers => producer.brokers_reachable(),
            Dependency::Staging => true,
        };
        if !reachable {
            tracing::warn!(file = %rec.name, reason = %reason, ?dependency, "outage: not counted against the file; the pass ends and the next one tries again");
            return Ok(FileOutcome::Deferred(reason));
        }
        rec.error = Some(reason.clone());
        let verdict = self.settings.park.count_failure(&mut rec, now_ms());
        self.ledger.put_file(&rec)?;
        Ok(match verdict {
            Verdict::RetryAt {
                attempt,
                next_attempt_ms,
            } => {
                let in_s = (next_attempt_ms - now_ms()).max(0) / 1000;
                tracing::warn!(file = %rec.name, reason = %reason, attempt, max_attempts = self.settings.park.max_attempts, retry_in_s = in_s, "file failed; trying it again after a back-off");
                FileOutcome::Retrying { reason, attempt }
            }
            Verdict::Parked { attempts } => {
                tracing::error!(file = %rec.name, reason = %reason, attempts, "file parked after repeated failures; `cdr-to-redpanda retry {}` releases it", rec.name);
                FileOutcome::Parked(reason)
            }
        })
    }

    fn fail(&mut self, mut rec: FileRecord, reason: String) -> Result<FileOutcome, EngineError> {
        tracing::error!(file = %rec.name, reason = %reason, "file failed; nothing of it is committed");
        rec.status = FileStatus::Failed;
        rec.error = Some(reason.clone());
        rec.updated_ms = now_ms();
        self.ledger.put_file(&rec)?;
        self.after_outcome(&rec);
        Ok(FileOutcome::Failed(reason))
    }

    /// Downloads into staging, reconnecting with backoff on transient errors.
    fn fetch(&mut self, file: &RemoteFile, staged: &std::path::Path) -> Result<Fetched, SourceError> {
        let mut attempt = 0;
        loop {
            match self.source.fetch(file, staged) {
                Ok(f) => return Ok(f),
                Err(e) if e.is_transient() && attempt + 1 < FETCH_ATTEMPTS => {
                    attempt += 1;
                    let wait = backoff(attempt);
                    tracing::warn!(file = %file.name, error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "download failed; reconnecting");
                    std::thread::sleep(wait);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Another file name holding these exact bytes, per ledger or checkpoints.
    fn same_bytes_elsewhere(&self, sha_hex: &str, name: &str) -> Result<Option<String>, LedgerError> {
        if let Some(r) = self.ledger.file_by_sha256(sha_hex)? {
            if r.name != name {
                return Ok(Some(r.name));
            }
        }
        Ok(self
            .checkpoints()
            .iter()
            .find(|c| c.sha256 == sha_hex && c.file != name)
            .map(|c| c.file.clone()))
    }

    /// Transaction seqs only grow for a file, across restarts and ledger loss.
    fn next_seq(&self, name: &str, cp: Option<&crate::sink::Checkpoint>) -> Result<u64, LedgerError> {
        let from_ledger = self.ledger.transactions(name)?.iter().map(|t| t.seq).max().unwrap_or(0);
        Ok(from_ledger.max(cp.map_or(0, |c| c.seq)) + 1)
    }

    /// The configured keep/delete/move, once the file's outcome is durable.
    fn after_outcome(&mut self, rec: &FileRecord) {
        let action = match rec.status {
            FileStatus::Committed => self.settings.after_success.clone(),
            FileStatus::Failed | FileStatus::Conflict | FileStatus::Duplicate => match &self.settings.error_dir {
                Some(dir) => AfterIngest::Move(dir.clone()),
                None => AfterIngest::Keep,
            },
            _ => AfterIngest::Keep,
        };
        crate::failpoint::hit("after-ledger-before-action");
        let result = match &action {
            AfterIngest::Keep => return,
            AfterIngest::Delete => self.source.delete(&rec.name).map(|_| "deleted".to_string()),
            AfterIngest::Move(dir) => self.source.move_to(&rec.name, dir),
        };
        match result {
            Ok(to) => tracing::info!(file = %rec.name, status = %rec.status, to = %to, "after-ingest action done"),
            Err(SourceError::Gone { .. }) => {}
            Err(e) => {
                tracing::warn!(file = %rec.name, error = %e, "after-ingest action failed; will retry at the next pass")
            }
        }
    }
}

fn new_record(file: &RemoteFile, kind: &RecordKind) -> FileRecord {
    FileRecord::seen(&file.name, kind.as_str(), file.size, file.mtime, now_ms())
}

#[cfg(test)]
mod tests;
