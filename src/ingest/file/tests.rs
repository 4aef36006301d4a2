//! The chunk loop's every branch, against a scripted sink: each error is
//! sorted into replay, fail the file or stop, and every row is committed once.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use cdr_state::{FileRecord, FileStatus, Ledger, TxnOutcome};
use sha2::{Digest, Sha256};

use super::*;
use crate::backoff::Backoff;
use crate::ingest::turn::Alone;
use crate::sink::txn::fake::{Op, ScriptedSink};
use crate::sink::Action;

const NAME: &str = "cdr_data_20240101_000000.csv";
const HEADER: &str = "msisdn,tower_id,up_bytes,down_bytes,data_type,ip_address,website_url,event_datetime";

/// `rows` data rows, every `bad_every`-th one invalid (a letter in `up_bytes`).
fn csv(rows: u64, bad_every: u64) -> Vec<u8> {
    let mut out = format!("{HEADER}\n");
    for i in 1..=rows {
        let up = if bad_every > 0 && i % bad_every == 0 {
            "12x4".to_string()
        } else {
            i.to_string()
        };
        out += &format!(
            "97245157{i:05},1800,{up},662662,application,221.128.139.195,http://example.com,2024-01-01 01:01:15.291148\n"
        );
    }
    out.into_bytes()
}

struct Fixture {
    _dir: tempfile::TempDir,
    ledger: Ledger,
    staged: PathBuf,
    sha256: [u8; 32],
    settings: IngestSettings,
    checkpoints: Mutex<CheckpointStore>,
}

impl Fixture {
    /// A staged file of these bytes, chunks of `chunk_rows`, no waits.
    fn new(bytes: &[u8], chunk_rows: u64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("staged");
        std::fs::write(&staged, bytes).unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger")).unwrap();
        let mut settings = IngestSettings::new(dir.path().join("staging"));
        settings.chunk_rows = chunk_rows;
        settings.max_chunk_attempts = 3;
        settings.replay_backoff = Backoff::NONE;
        Fixture {
            _dir: dir,
            ledger,
            staged,
            sha256: Sha256::digest(bytes).into(),
            settings,
            checkpoints: Mutex::new(CheckpointStore::default()),
        }
    }

    fn run(&self, sink: &mut ScriptedSink) -> Result<FileRecord, IngestError> {
        self.run_in_turn(sink, &Alone)
    }

    fn run_in_turn(&self, sink: &mut dyn TransactionalSink, turn: &dyn Turn) -> Result<FileRecord, IngestError> {
        let mut record = FileRecord::seen(NAME, "data", 0, 0, now_ms());
        record.sha256 = encode::hex(&self.sha256);
        record.version = 1;
        self.ledger.put_file(&record).unwrap();
        let job = Job {
            record,
            kind: crate::schema::data(),
            staged: &self.staged,
            sha256: &self.sha256,
            progress: Progress::default(),
            next_seq: 1,
            turn,
        };
        produce_file(sink, &self.ledger, &self.checkpoints, &self.settings, job)
    }

    fn status(&self) -> FileStatus {
        self.ledger.file(NAME).unwrap().unwrap().status
    }

    fn txn_statuses(&self) -> Vec<TxnOutcome> {
        self.ledger
            .transactions(NAME)
            .unwrap()
            .iter()
            .map(|t| t.outcome)
            .collect()
    }
}

/// Committed row records per key (checkpoints left out), and the committed
/// checkpoints in order.
fn committed(sink: &ScriptedSink, settings: &IngestSettings) -> (BTreeMap<String, usize>, Vec<Checkpoint>) {
    let mut rows = BTreeMap::new();
    let mut checkpoints = Vec::new();
    for (topic, key, value) in &sink.committed {
        if *topic == settings.topics.checkpoints {
            checkpoints.push(Checkpoint::decode(NAME, value).unwrap());
        } else {
            *rows.entry(String::from_utf8(key.clone()).unwrap()).or_default() += 1;
        }
    }
    (rows, checkpoints)
}

/// Every row of a `rows`-row file committed exactly once.
fn assert_each_row_once(sink: &ScriptedSink, f: &Fixture, rows: u64) {
    let (keys, checkpoints) = committed(sink, &f.settings);
    assert_eq!(keys.len() as u64, rows, "{keys:?}");
    assert!(keys.values().all(|n| *n == 1), "a row committed twice: {keys:?}");
    let last = checkpoints.last().expect("a checkpoint");
    assert!(last.done && last.rows_done == rows, "{last:?}");
}

#[test]
fn a_clean_file_commits_every_row_once_with_a_checkpoint_per_chunk() {
    let f = Fixture::new(&csv(10, 4), 4);
    let mut sink = ScriptedSink::default();
    let rec = f.run(&mut sink).unwrap();
    assert_eq!(rec.status, FileStatus::Committed);
    assert_each_row_once(&sink, &f, 10);
    let (_, checkpoints) = committed(&sink, &f.settings);
    assert_eq!(checkpoints.iter().map(|c| c.rows_done).collect::<Vec<_>>(), [4, 8, 10]);
    assert_eq!((checkpoints[2].valid, checkpoints[2].invalid), (8, 2));
    assert_eq!(sink.calls(Op::Abort), 0);
    assert_eq!(f.status(), FileStatus::Committed);
    assert_eq!(f.txn_statuses(), [TxnOutcome::Committed; 3]);
}

#[test]
fn an_abort_and_replay_error_at_commit_replays_the_chunk_and_lands_every_row_once() {
    let f = Fixture::new(&csv(10, 4), 4);
    let mut sink = ScriptedSink::default().fail_with(Op::Commit, 2, Action::AbortAndReplay);
    let rec = f.run(&mut sink).unwrap();
    assert_eq!(rec.status, FileStatus::Committed);
    assert_each_row_once(&sink, &f, 10);
    assert_eq!(sink.calls(Op::Abort), 1);
    assert_eq!(
        f.txn_statuses(),
        [
            TxnOutcome::Committed,
            TxnOutcome::Aborted,
            TxnOutcome::Committed,
            TxnOutcome::Committed
        ]
    );
}

#[test]
fn a_retriable_error_at_begin_replays_the_chunk() {
    let f = Fixture::new(&csv(6, 0), 4);
    let mut sink = ScriptedSink::default().fail_with(Op::Begin, 1, Action::Retry);
    f.run(&mut sink).unwrap();
    assert_each_row_once(&sink, &f, 6);
    assert_eq!((sink.calls(Op::Abort), sink.calls(Op::Begin)), (1, 3));
}

#[test]
fn a_refused_record_aborts_the_chunk_and_fails_the_file_naming_its_rows() {
    let f = Fixture::new(&csv(10, 0), 4);
    let mut sink = ScriptedSink::default().fail_with(Op::Send, 7, Action::Refused);
    let err = f.run(&mut sink).unwrap_err();
    let IngestError::Bad(bad) = err else {
        panic!("not a refused file: {err:?}")
    };
    let reason = bad.to_string();
    assert!(
        reason.starts_with(&format!("{NAME}: the broker refused a record of rows 5..")),
        "{reason}"
    );
    // The first chunk stands; the refused one is aborted, never replayed.
    let (keys, _) = committed(&sink, &f.settings);
    assert_eq!(keys.len(), 4);
    assert_eq!((sink.calls(Op::Abort), sink.calls(Op::Commit)), (1, 1));
    assert_eq!(f.txn_statuses(), [TxnOutcome::Committed, TxnOutcome::Aborted]);
}

#[test]
fn a_fatal_error_at_commit_stops_without_an_abort_and_leaves_the_chunk_in_doubt() {
    let f = Fixture::new(&csv(10, 0), 4);
    let mut sink = ScriptedSink::default().fail_with(Op::Commit, 2, Action::Fatal);
    let err = f.run(&mut sink).unwrap_err();
    assert!(matches!(err, IngestError::Fatal(_)), "{err:?}");
    assert_eq!(sink.calls(Op::Abort), 0, "a fenced producer cannot abort");
    let in_doubt = f.ledger.in_doubt().unwrap();
    assert_eq!(
        in_doubt.iter().map(|(_, t)| t.seq).collect::<Vec<_>>(),
        [2],
        "recovery settles it"
    );
}

#[test]
fn a_fatal_error_while_sending_stops_the_service() {
    let f = Fixture::new(&csv(10, 0), 4);
    let mut sink = ScriptedSink::default().fail_with(Op::Send, 2, Action::Fatal);
    let err = f.run(&mut sink).unwrap_err();
    assert!(matches!(err, IngestError::Fatal(_)), "{err:?}");
    assert!(sink.committed.is_empty());
    assert_eq!(f.ledger.in_doubt().unwrap().len(), 1);
}

#[test]
fn a_chunk_failing_every_attempt_gives_up_after_the_attempts_allowed() {
    let f = Fixture::new(&csv(10, 0), 4);
    let mut sink = ScriptedSink::default();
    for n in 1..=3 {
        sink = sink.fail_with(Op::Commit, n, Action::AbortAndReplay);
    }
    let err = f.run(&mut sink).unwrap_err();
    assert!(matches!(err, IngestError::Exhausted { attempts: 3, .. }), "{err:?}");
    assert!(sink.committed.is_empty());
    assert_eq!(sink.calls(Op::Abort), 3);
    assert_eq!(f.txn_statuses(), [TxnOutcome::Aborted; 3]);
    assert!(f.ledger.in_doubt().unwrap().is_empty());
}

#[test]
fn an_abort_that_keeps_failing_is_fatal_and_the_chunk_stays_in_doubt() {
    let f = Fixture::new(&csv(10, 0), 4);
    let mut sink = ScriptedSink::default().fail_with(Op::Commit, 1, Action::AbortAndReplay);
    for n in 1..=6 {
        sink = sink.fail_with(Op::Abort, n, Action::AbortAndReplay);
    }
    let err = f.run(&mut sink).unwrap_err();
    assert!(matches!(err, IngestError::Fatal(_)), "{err:?}");
    assert_eq!(sink.calls(Op::Abort), 6, "five retries after the first try");
    assert_eq!(f.ledger.in_doubt().unwrap().len(), 1);
}

#[test]
fn an_abort_that_fails_once_is_retried_and_the_chunk_replayed() {
    let f = Fixture::new(&csv(6, 0), 4);
    let mut sink = ScriptedSink::default()
        .fail_with(Op::Commit, 1, Action::AbortAndReplay)
        .fail_with(Op::Abort, 1, Action::Retry);
    f.run(&mut sink).unwrap();
    assert_each_row_once(&sink, &f, 6);
    assert_eq!(sink.calls(Op::Abort), 2);
}

#[test]
fn a_file_unreadable_mid_chunk_aborts_the_chunk_and_fails_the_file() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&csv(2_000, 0)).unwrap();
    let mut bytes = gz.finish().unwrap();
    bytes.truncate(bytes.len() / 2);
    let f = Fixture::new(&bytes, 100_000);
    let mut sink = ScriptedSink::default();
    let err = f.run(&mut sink).unwrap_err();
    let IngestError::Bad(bad) = err else {
        panic!("not a bad file: {err:?}")
    };
    let BadFile::Parse(parse) = *bad else {
        panic!("not a parse error: {bad:?}")
    };
    assert!(parse.to_string().contains(NAME), "{parse}");
    assert!(sink.committed.is_empty(), "nothing of a half-read chunk is committed");
    assert_eq!(sink.calls(Op::Abort), 1);
    assert_eq!(f.txn_statuses(), [TxnOutcome::Aborted]);
}

#[test]
fn a_shutdown_stops_the_file_at_the_next_chunk_boundary() {
    let f = Fixture::new(&csv(10, 0), 4);
    f.settings.shutdown.request();
    let mut sink = ScriptedSink::default();
    let err = f.run(&mut sink).unwrap_err();
    assert!(matches!(err, IngestError::Stopped { rows_done: 4 }), "{err:?}");
    let (keys, checkpoints) = committed(&sink, &f.settings);
    assert_eq!((keys.len(), checkpoints.len()), (4, 1));
    assert!(!checkpoints[0].done);
    assert_eq!(f.txn_statuses(), [TxnOutcome::Committed]);
}

#[test]
fn each_action_of_a_chunk_error_is_sorted_into_its_own_course() {
    let err = |action| {
        ChunkError::Sink(SinkError::Delivery {
            failed: 1,
            first: "x".into(),
            action,
        })
    };
    assert!(matches!(
        after_chunk_error(err(Action::Retry), NAME, 1),
        AfterError::Replay(_)
    ));
    assert!(matches!(
        after_chunk_error(err(Action::AbortAndReplay), NAME, 1),
        AfterError::Replay(_)
    ));
    assert!(matches!(
        after_chunk_error(err(Action::Refused), NAME, 7),
        AfterError::EndFile(IngestError::Bad(ref b)) if matches!(**b, BadFile::Refused { first_row: 7, .. })
    ));
    assert!(matches!(
        after_chunk_error(err(Action::Fatal), NAME, 1),
        AfterError::Stop(_)
    ));
    let staging = IngestError::Staging {
        file: NAME.into(),
        source: io::Error::other("disk"),
    };
    let file = after_chunk_error(ChunkError::File(staging), NAME, 1);
    assert!(
        matches!(file, AfterError::EndFile(IngestError::Staging { .. })),
        "{file:?}"
    );
}

#[test]
fn a_staged_copy_our_disk_cannot_read_is_a_staging_fault_not_a_bad_file() {
    let f = Fixture::new(&csv(10, 0), 4);
    // A directory where the staged file should be: reading it fails with
    // EISDIR, an error of our disk, whatever the file's bytes are.
    std::fs::remove_file(&f.staged).unwrap();
    std::fs::create_dir(&f.staged).unwrap();
    let mut sink = ScriptedSink::default();
    let err = f.run(&mut sink).unwrap_err();
    assert!(matches!(err, IngestError::Staging { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{NAME}: reading the staged copy:")),
        "{err}"
    );
    assert!(sink.log.is_empty(), "nothing was begun");
    assert!(matches!(
        check_whole_stream(&f.staged, NAME),
        Err(IngestError::Staging { .. })
    ));
}

#[test]
fn corrupt_or_truncated_compressed_bytes_are_a_bad_file() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&csv(2_000, 0)).unwrap();
    let whole = gz.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    let err = check_whole_stream(&path, NAME).unwrap_err();
    assert!(
        matches!(err, IngestError::Bad(ref b) if matches!(**b, BadFile::Parse(_))),
        "{err:?}"
    );
    let mut corrupt = whole.clone();
    corrupt[20..60].fill(0xff);
    std::fs::write(&path, &corrupt).unwrap();
    let err = check_whole_stream(&path, NAME).unwrap_err();
    assert!(
        matches!(err, IngestError::Bad(ref b) if matches!(**b, BadFile::Parse(_))),
        "{err:?}"
    );
}

/// The calls on a sink and a turn, in one order.
#[derive(Default)]
struct Calls(std::cell::RefCell<Vec<&'static str>>);

impl Calls {
    fn push(&self, call: &'static str) {
        self.0.borrow_mut().push(call);
    }
}

impl Turn for Calls {
    fn await_begin(&self) {
        self.push("await_begin");
    }
    fn await_commit(&self) {
        self.push("await_commit");
    }
    fn last_chunk(&self) {
        self.push("last_chunk");
    }
}

/// A scripted sink whose transaction calls (not its sends) go to `calls` too.
struct Logged<'a> {
    sink: ScriptedSink,
    calls: &'a Calls,
}

impl TransactionalSink for Logged<'_> {
    fn begin(&mut self) -> Result<(), SinkError> {
        self.calls.push("begin");
        self.sink.begin()
    }
    fn send(&mut self, rec: OutRecord<'_>) -> Result<(), SinkError> {
        self.sink.send(rec)
    }
    fn poll(&self) {}
    fn commit(&mut self) -> Result<(), SinkError> {
        self.calls.push("commit");
        self.sink.commit()
    }
    fn abort(&mut self) -> Result<(), SinkError> {
        self.calls.push("abort");
        self.sink.abort()
    }
    fn brokers_reachable(&self) -> bool {
        true
    }
}

#[test]
fn each_chunk_begins_after_its_turn_and_commits_after_it_and_the_last_chunk_says_so_before_committing() {
    let f = Fixture::new(&csv(10, 4), 4);
    let calls = Calls::default();
    let mut sink = Logged {
        sink: ScriptedSink::default(),
        calls: &calls,
    };
    f.run_in_turn(&mut sink, &calls).unwrap();
    let chunk = ["await_begin", "begin", "await_commit", "commit"];
    let last = ["await_begin", "begin", "last_chunk", "await_commit", "commit"];
    let expected: Vec<&str> = chunk.iter().chain(&chunk).chain(&last).copied().collect();
    assert_eq!(*calls.0.borrow(), expected);
    assert_each_row_once(&sink.sink, &f, 10);
}
