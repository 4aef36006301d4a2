//! One staged file through parse -> validate -> encode -> chunked Kafka
//! transactions, with the ledger written around every transaction.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdr_state::{FileRecord, FileStatus, Ledger, LedgerError};
use rdkafka::message::{Header, OwnedHeaders};

use super::decide::Progress;
use super::turn::Turn;
use super::{now_ms, IngestSettings};
use crate::backoff::Backoff;
use crate::encode::record::{record_size, HeaderValues, HEADER_NAMES};
use crate::encode::DeadLetterTooLarge;
use crate::encode::{self, partition, DeadLetter, FileContext};
use crate::failpoint;
use crate::metrics::METRICS;
use crate::parse::{self, CdrReader, Decoded, FileError, Row};

/// The reader over a staged file, gzip decoded when it starts with the magic.
type StagedReader = CdrReader<Decoded<BufReader<Counted>>>;

/// The staged file, counting the bytes read from it (shared with the
/// progress lines: how far into the file the reader is).
struct Counted {
    file: File,
    read: Arc<AtomicU64>,
}

impl io::Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
use crate::schema::RecordKind;
use crate::sink::producer::OutRecord;
use crate::sink::{Action, Checkpoint, CheckpointStore, SinkError, TransactionalSink};
use crate::source::{percent, PROGRESS_EVERY};

/// What is wrong with a file's bytes: it can never be ingested as it is.
#[derive(Debug, thiserror::Error)]
pub enum BadFile {
    /// The header, a record or the compressed stream (file, line and why).
    #[error(transparent)]
    Parse(#[from] FileError),
    /// A dead-letter row that fits its topic with no cut.
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterTooLarge),
    /// The broker refuses a record of the rows from `first_row` and always will.
    #[error("{file}: the broker refused a record of rows {first_row}..: {source}")]
    Refused {
        /// The file.
        file: String,
        /// The first row of the refused chunk.
        first_row: u64,
        /// The broker's answer.
        source: SinkError,
    },
    /// Fewer rows than were committed from it before.
    #[error("{file}: has {rows} rows but {committed} were already committed")]
    Shorter {
        /// The file.
        file: String,
        /// Rows it has now.
        rows: u64,
        /// Rows committed before.
        committed: u64,
    },
}

/// Why a file's ingest stopped short.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The file itself is bad: record it as failed.
    #[error(transparent)]
    Bad(Box<BadFile>),
    /// Our own disk could not read the staged copy (I/O error, permission,
    /// a name or space problem): the file is not to blame; it backs off and
    /// is tried again, then parked.
    #[error("{file}: reading the staged copy: {source}")]
    Staging {
        /// The file.
        file: String,
        /// The local error.
        #[source]
        source: io::Error,
    },
    /// Kafka said stop: fenced, unauthorized, or the outcome of a commit is
    /// unknown. The service exits non-zero; a restart recovers.
    #[error("fatal: {0}")]
    Fatal(SinkError),
    /// A chunk kept failing (broker down?); the file is left in progress and
    /// tried again at the next pass.
    #[error("giving up on this pass after {attempts} attempts: {last}")]
    Exhausted { attempts: u32, last: SinkError },
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// Shutdown was requested, or the file's shard handed off: the last
    /// chunk is committed and the file is left in progress at `rows_done`,
    /// resumed by the next start or the shard's new owner.
    #[error("stopped at a chunk boundary after {rows_done} rows")]
    Stopped { rows_done: u64 },
}

impl From<BadFile> for IngestError {
    fn from(bad: BadFile) -> Self {
        IngestError::Bad(Box::new(bad))
    }
}

/// A file ready to be produced.
pub struct Job<'a> {
    pub record: FileRecord,
    pub kind: RecordKind,
    pub staged: &'a Path,
    pub sha256: &'a [u8; 32],
    pub progress: Progress,
    pub next_seq: u64,
    /// Its place after the lane's previous file; whether its shard is gone.
    pub turn: &'a dyn Turn,
}

/// Whether an I/O error while reading a staged copy says the bytes are bad
/// (a corrupt or truncated compressed stream) rather than our disk.
fn is_content_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof
    )
}

/// Sorts an error reading the staged copy of `file`: bad bytes, or our disk.
fn read_error(file: &str, e: io::Error) -> IngestError {
    if is_content_error(&e) {
        BadFile::Parse(FileError::Read {
            file: file.to_string(),
            line: 0,
            source: e,
        })
        .into()
    } else {
        staging_error(file, e)
    }
}

/// Sorts a parse error of `file`: a read failure may be our disk's.
fn parse_error(e: FileError) -> IngestError {
    match e {
        FileError::Read { file, source, .. } if !is_content_error(&source) => IngestError::Staging { file, source },
        other => BadFile::Parse(other).into(),
    }
}

fn open_reader(
    job: &Job<'_>,
    validation: &parse::Validation,
    read: &Arc<AtomicU64>,
) -> Result<StagedReader, IngestError> {
    let name = &job.record.name;
    let file = File::open(job.staged).map_err(|e| read_error(name, e))?;
    read.store(0, Ordering::Relaxed);
    let counted = Counted {
        file,
        read: Arc::clone(read),
    };
    let decoded = parse::decode(BufReader::with_capacity(1 << 20, counted)).map_err(|e| read_error(name, e))?;
    CdrReader::new(job.kind.clone(), name, decoded, validation).map_err(parse_error)
}

/// Opens the reader positioned after `rows_done` rows.
fn reader_at(
    job: &Job<'_>,
    validation: &parse::Validation,
    rows_done: u64,
    read: &Arc<AtomicU64>,
) -> Result<StagedReader, IngestError> {
    let mut reader = open_reader(job, validation, read)?;
    let skipped = reader.skip_rows(rows_done).map_err(parse_error)?;
    if skipped < rows_done {
        return Err(BadFile::Shorter {
            file: job.record.name.clone(),
            rows: skipped,
            committed: rows_done,
        }
        .into());
    }
    Ok(reader)
}

/// Reads a gzip file through to its end before anything is produced, so a
/// truncated or corrupt stream fails the file with nothing committed.
pub fn check_whole_stream(path: &Path, name: &str) -> Result<(), IngestError> {
    let file = File::open(path).map_err(|e| read_error(name, e))?;
    let mut decoded = parse::decode(BufReader::with_capacity(1 << 20, file)).map_err(|e| read_error(name, e))?;
    if !decoded.is_gzip() {
        return Ok(());
    }
    io::copy(&mut decoded, &mut io::sink())
        .map(|_| ())
        .map_err(|e| read_error(name, e))
}

/// Whether the staged file extends the bytes a previous version committed:
/// longer than `previous_bytes`, its first `previous_bytes` bytes hashing to
/// `previous_sha256` (hex) and ending a line, so that the rows after that
/// version's last start exactly there. A gzip file never does (appended
/// members would change how its last row ends).
pub fn extends_previous(
    path: &Path,
    previous_bytes: u64,
    previous_sha256: &str,
    name: &str,
) -> Result<bool, IngestError> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let file = File::open(path).map_err(|e| staging_error(name, e))?;
    let size = file.metadata().map_err(|e| staging_error(name, e))?.len();
    if size <= previous_bytes || previous_bytes == 0 {
        return Ok(false);
    }
    let mut prefix = BufReader::with_capacity(1 << 20, file).take(previous_bytes);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let (mut first, mut last): (Vec<u8>, u8) = (Vec::with_capacity(2), 0);
    loop {
        let n = prefix.read(&mut buf).map_err(|e| staging_error(name, e))?;
        if n == 0 {
            break;
        }
        if first.len() < 2 {
            first.extend(buf[..n].iter().take(2 - first.len()));
        }
        last = buf[n - 1];
        hasher.update(&buf[..n]);
    }
    let sha256: [u8; 32] = hasher.finalize().into();
    Ok(first != [0x1f, 0x8b] && last == b'\n' && encode::hex(&sha256) == previous_sha256)
}

fn staging_error(name: &str, source: io::Error) -> IngestError {
    IngestError::Staging {
        file: name.to_string(),
        source,
    }
}

/// Aborts the open transaction, retrying while the broker is unreachable
/// (a restart takes longer than one abort's timeout). Still failing after
/// that, or fenced, the outcome is for the next start to settle: fatal.
fn abort_with_retries(producer: &mut dyn TransactionalSink, backoff: Backoff) -> Result<(), IngestError> {
    let mut attempt = 0;
    loop {
        match producer.abort() {
            Ok(()) => return Ok(()),
            Err(e) if e.action() != Action::Fatal && attempt < 5 => {
                tracing::warn!(error = %e, attempt, "abort failed; retrying");
                std::thread::sleep(backoff.delay(attempt));
                attempt += 1;
            }
            Err(e) => return Err(IngestError::Fatal(e)),
        }
    }
}

/// Buffers reused across rows: no allocation per row on the hot path.
struct Scratch {
    key: Vec<u8>,
    value: Vec<u8>,
    row: itoa::Buffer,
    ingestion_ts: String,
}

enum ChunkEnd {
    Full,
    EndOfFile,
}

enum ChunkError {
    Sink(SinkError),
    /// The file cannot be read on (bad bytes, or our disk).
    File(IngestError),
}

/// What the file's loop does after a chunk failed.
#[derive(Debug)]
enum AfterError {
    /// The file cannot be read on (bad bytes: it fails; our disk: it is
    /// tried again later): abort the chunk and stop the file.
    EndFile(IngestError),
    /// The sink is unusable or the commit's outcome unknown: stop the
    /// service, leaving the chunk in doubt for the next start.
    Stop(SinkError),
    /// Abort the chunk and produce it again from its first row.
    Replay(SinkError),
}

/// Sorts a chunk's failure (of rows from `first_row` of file `name`) by the
/// action its error calls for.
fn after_chunk_error(err: ChunkError, name: &str, first_row: u64) -> AfterError {
    match err {
        ChunkError::File(e) => AfterError::EndFile(e),
        ChunkError::Sink(e) => match e.action() {
            Action::Refused => AfterError::EndFile(
                BadFile::Refused {
                    file: name.to_string(),
                    first_row,
                    source: e,
                }
                .into(),
            ),
            Action::Fatal => AfterError::Stop(e),
            Action::AbortAndReplay | Action::Retry => AfterError::Replay(e),
        },
    }
}

impl From<SinkError> for ChunkError {
    fn from(e: SinkError) -> Self {
        ChunkError::Sink(e)
    }
}

/// Produces the job's rows from `job.progress.rows_done + 1` to the end.
///
/// Per chunk: ledger intent (durable) -> the turn to begin -> begin -> rows
/// and checkpoint -> the turn to commit -> commit -> ledger outcome
/// (durable). The turns wait for the file another slot holds before this one
/// in its lane (`turn`), so that commits keep the lane's order. A crash
/// between the intent and the outcome leaves the transaction in doubt in the
/// ledger; recovery settles it from the checkpoint topic, which committed (or
/// not) atomically with the rows.
pub fn produce_file(
    producer: &mut dyn TransactionalSink,
    ledger: &Ledger,
    checkpoints: &Mutex<CheckpointStore>,
    settings: &IngestSettings,
    job: Job<'_>,
) -> Result<FileRecord, IngestError> {
    let ctx =
        FileContext::new(&job.record.name, job.kind.clone(), job.sha256).with_format(settings.value_format(&job.kind));
    let topic = job.kind.topic();
    let mut rec = job.record.clone();
    rec.status = FileStatus::InProgress;
    rec.started_ms.get_or_insert_with(now_ms);
    let mut progress = job.progress;
    let mut seq = job.next_seq;
    // The future bound is taken from the clock once per file, so replaying a
    // chunk judges its rows as the first attempt did.
    let validation = parse::Validation {
        latest_event_ms: Some(now_ms() + settings.max_future.as_millis() as i64),
        ..settings.validation.clone()
    };
    let bytes_read = Arc::new(AtomicU64::new(0));
    let mut reader = reader_at(&job, &validation, progress.rows_done, &bytes_read)?;
    let mut scratch = Scratch {
        key: Vec::with_capacity(64),
        value: Vec::with_capacity(1024),
        row: itoa::Buffer::new(),
        ingestion_ts: String::new(),
    };
    let mut attempts = 0u32;
    let mut last_log = Instant::now();
    let stop = || settings.shutdown.requested() || job.turn.handed_off();
    loop {
        let start = progress;
        start.apply_to(&mut rec);
        // Failure contract: durable on return. A crash from here until
        // txn_committed leaves this seq InDoubt, settled by `recover`.
        ledger.txn_intent(&rec, seq, start.rows_done + 1)?;
        failpoint::hit("after-intent-before-begin");
        job.turn.await_begin();
        let chunk_started = Instant::now();
        // The three steps of a chunk, for seeing slots overlap in the log.
        tracing::debug!(file = %rec.name, seq, "chunk producing");
        let result = produce_chunk(
            producer,
            &mut reader,
            &ctx,
            settings,
            &stop,
            &mut progress,
            &mut scratch,
        )
        .and_then(|end| {
            if matches!(end, ChunkEnd::EndOfFile) {
                job.turn.last_chunk();
            }
            let cp = Checkpoint {
                v: crate::sink::checkpoint::CHECKPOINT_VERSION,
                file: rec.name.clone(),
                sha256: rec.sha256.clone(),
                version: rec.version,
                seq,
                rows_done: progress.rows_done,
                valid: progress.valid,
                invalid: progress.invalid,
                done: matches!(end, ChunkEnd::EndOfFile),
                first_event_ms: progress.first_event_ms,
                last_event_ms: progress.last_event_ms,
                first_row: progress.first_row,
                bytes: Some(rec.bytes),
            };
            producer.send(OutRecord {
                topic: &settings.topics.checkpoints,
                key: rec.name.as_bytes(),
                value: &cp.encode(),
                timestamp_ms: None,
                partition: None,
                headers: None,
            })?;
            failpoint::hit("after-produce-before-commit");
            job.turn.await_commit();
            tracing::debug!(file = %rec.name, seq, "chunk committing");
            // Failure contract: Ok means rows and checkpoint are durable
            // and visible together; Err means neither is, or (Fatal) that
            // the outcome is unknown until the next start.
            producer.commit()?;
            tracing::debug!(file = %rec.name, seq, "chunk committed");
            Ok((end, cp))
        });
        match result {
            Ok((end, cp)) => {
                failpoint::hit("after-commit-before-ledger");
                let dlq = settings.topics.dlq_for(&job.kind);
                record_chunk_metrics(chunk_started.elapsed(), topic, dlq, &start, &progress);
                // Shared with the other slots; a slot that panicked holding
                // the lock left the map as consistent as any single insert.
                checkpoints.lock().unwrap_or_else(|p| p.into_inner()).record(cp);
                progress.apply_to(&mut rec);
                let done = matches!(end, ChunkEnd::EndOfFile);
                if done {
                    rec.status = FileStatus::Committed;
                    rec.finished_ms = Some(now_ms());
                    rec.error = None;
                    super::park::fresh_start(&mut rec);
                }
                // Failure contract: durable on return; the seq is Committed.
                ledger.txn_committed(&rec, seq, progress.rows_done)?;
                seq += 1;
                attempts = 0;
                if done {
                    return Ok(rec);
                }
                if stop() {
                    return Err(IngestError::Stopped {
                        rows_done: progress.rows_done,
                    });
                }
                if last_log.elapsed() >= PROGRESS_EVERY {
                    // Bytes of the staged file (compressed, for gzip) read so far.
                    let bytes = bytes_read.load(Ordering::Relaxed);
                    tracing::info!(
                        file = %rec.name, rows = progress.rows_done, invalid = progress.invalid,
                        bytes, of = rec.size, percent = %percent(bytes, rec.size), "progress"
                    );
                    last_log = Instant::now();
                }
            }
            Err(err) => match after_chunk_error(err, &rec.name, start.rows_done + 1) {
                AfterError::EndFile(e) => return Err(end_chunk(producer, settings, ledger, &rec.name, seq, e)),
                // Not aborted here: a fenced producer cannot, and the outcome
                // stays InDoubt in the ledger for recovery to settle.
                AfterError::Stop(e) => return Err(IngestError::Fatal(e)),
                AfterError::Replay(e) => {
                    tracing::warn!(file = %rec.name, seq, attempt = attempts + 1, error = %e, "aborting the chunk to replay it");
                    METRICS.transactions.add("aborted", 1);
                    abort_with_retries(producer, settings.replay_backoff)?;
                    ledger.txn_aborted(&rec.name, seq, &e.to_string())?;
                    seq += 1;
                    attempts += 1;
                    if attempts >= settings.max_chunk_attempts {
                        return Err(IngestError::Exhausted { attempts, last: e });
                    }
                    std::thread::sleep(settings.replay_backoff.delay(attempts));
                    progress = start;
                    reader = reader_at(&job, &validation, start.rows_done, &bytes_read)?;
                }
            },
        }
    }
}

/// Aborts the open chunk for `why` the file cannot go on, and records the
/// abort; the error to return (a failed abort or ledger write wins).
fn end_chunk(
    producer: &mut dyn TransactionalSink,
    settings: &IngestSettings,
    ledger: &Ledger,
    name: &str,
    seq: u64,
    why: IngestError,
) -> IngestError {
    METRICS.transactions.add("aborted", 1);
    if let Err(e) = abort_with_retries(producer, settings.replay_backoff) {
        return e;
    }
    match ledger.txn_aborted(name, seq, &why.to_string()) {
        Ok(()) => why,
        Err(e) => IngestError::Ledger(e),
    }
}

/// Counts one committed chunk: its latency and the records it made visible.
fn record_chunk_metrics(took: Duration, topic: &str, dlq: &str, start: &Progress, end: &Progress) {
    METRICS.transactions.add("committed", 1);
    METRICS.chunk_seconds.observe(took);
    METRICS.rows_produced.add(topic, end.valid - start.valid);
    let invalid = end.invalid - start.invalid;
    if invalid > 0 {
        METRICS.rows_produced.add(dlq, invalid);
        METRICS.invalid_rows.add(invalid);
    }
}

fn headers(values: HeaderValues<'_>) -> OwnedHeaders {
    HEADER_NAMES
        .iter()
        .zip(values)
        .fold(OwnedHeaders::new_with_capacity(4), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        })
}

/// Produces rows until the chunk is full (rows or time) or the file ends.
fn produce_chunk(
    producer: &mut dyn TransactionalSink,
    reader: &mut StagedReader,
    ctx: &FileContext,
    settings: &IngestSettings,
    stop: &dyn Fn() -> bool,
    progress: &mut Progress,
    s: &mut Scratch,
) -> Result<ChunkEnd, ChunkError> {
    let topic = ctx.kind().topic();
    let dlq = settings.topics.dlq_for(ctx.kind());
    let dlq_limit = settings.limits.limit(dlq);
    let partitioner = settings.partitioner(ctx.kind());
    producer.begin()?;
    let deadline = Instant::now() + settings.chunk_time;
    s.ingestion_ts = encode::ingestion_timestamp(chrono::Utc::now());
    let mut n = 0u64;
    let half = settings.chunk_rows / 2;
    loop {
        if n >= settings.chunk_rows {
            return Ok(ChunkEnd::Full);
        }
        if n % 4096 == 4095 {
            producer.poll();
            s.ingestion_ts = encode::ingestion_timestamp(chrono::Utc::now());
            // A shutdown or a handoff ends the chunk early, so it commits
            // within the shutdown deadline (or the rebalance goes on) rather
            // than after --chunk-seconds.
            if Instant::now() >= deadline || stop() {
                return Ok(ChunkEnd::Full);
            }
        }
        if n == half {
            failpoint::hit("mid-chunk");
        }
        let row = match reader.next_row() {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(ChunkEnd::EndOfFile),
            Err(e) => return Err(ChunkError::File(parse_error(e))),
        };
        let index = match &row {
            Row::Valid(r) => r.index,
            Row::Invalid(r) => r.index,
        };
        encode::write_key(ctx, index, &mut s.key);
        let hv: HeaderValues<'_> = [
            &s.key,
            ctx.file_name().as_bytes(),
            s.row.format(index).as_bytes(),
            ctx.sha256_hex().as_bytes(),
        ];
        let dlq = OutRecord {
            topic: dlq,
            key: &s.key,
            value: &[],
            timestamp_ms: None,
            partition: None,
            headers: None,
        };
        match row {
            Row::Valid(r) => {
                // A value its format cannot hold, or a record no broker of
                // this cluster accepts: the row is dead-lettered with its
                // neighbours' transaction.
                let refused = match encode::write_value(ctx, &r, &s.ingestion_ts, &mut s.value) {
                    Ok(()) => {
                        let size = record_size(&s.key, &s.value, &hv);
                        settings.limits.check(topic, size).err().map(|over| {
                            METRICS.oversized_rows.add(1);
                            format!(
                                "record of {size} bytes exceeds the limit of {} for topic {topic}",
                                over.limit
                            )
                        })
                    }
                    Err(e) => Some(e.to_string()),
                };
                match refused {
                    None => {
                        progress.saw_event(r.event_time_ms);
                        progress.valid += 1;
                        let partition = partitioner.map(|(column, count)| {
                            let value = r.values().nth(column).expect("a valid row has every declared column");
                            partition::partition_of(value.as_bytes(), count)
                        });
                        producer.send(OutRecord {
                            topic,
                            key: &s.key,
                            value: &s.value,
                            timestamp_ms: Some(r.event_time_ms),
                            partition,
                            headers: Some(headers(hv)),
                        })?;
                    }
                    Some(error) => {
                        tracing::warn!(file = %ctx.file_name(), row = r.index, line = r.line, "{error}; sent to the dead-letter topic");
                        let letter = DeadLetter {
                            index: r.index,
                            line: r.line,
                            error: &error,
                            raw: r.raw,
                            cut: None,
                        };
                        encode::encode_dead_letter(
                            ctx,
                            letter,
                            dlq.topic,
                            dlq_limit,
                            &hv,
                            &s.ingestion_ts,
                            &mut s.value,
                        )
                        .map_err(|e| ChunkError::File(BadFile::from(e).into()))?;
                        progress.invalid += 1;
                        producer.send(OutRecord {
                            value: &s.value,
                            headers: Some(headers(hv)),
                            ..dlq
                        })?;
                    }
                }
            }
            Row::Invalid(r) => {
                encode::encode_invalid_row(ctx, &r, dlq.topic, dlq_limit, &hv, &s.ingestion_ts, &mut s.value)
                    .map_err(|e| ChunkError::File(BadFile::from(e).into()))?;
                progress.invalid += 1;
                producer.send(OutRecord {
                    value: &s.value,
                    headers: Some(headers(hv)),
                    ..dlq
                })?;
            }
        }
        progress.rows_done += 1;
        n += 1;
    }
}

#[cfg(test)]
mod tests;
