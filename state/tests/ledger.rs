//! Behaviour of the ledger through its public API, plus the on-disk format pinned
//! by hand-written v1 values.

use std::path::Path;
use std::process::Command;

use cdr_state::{FileRecord, FileStatus, Ledger, LedgerError, TxnOutcome, TxnRecord, LEDGER_FILE_NAME, SCHEMA_VERSION};
use redb::{Database, MultimapTableDefinition, ReadableDatabase, ReadableTable, TableDefinition};

/// The v1 layout, declared independently of the crate so that a change to the
/// crate's table names or key/value types fails these tests.
const META: TableDefinition<&str, u32> = TableDefinition::new("meta");
const FILES: TableDefinition<&str, &[u8]> = TableDefinition::new("files");
const TXNS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("txns");
const SHA256_INDEX: MultimapTableDefinition<&str, &str> = MultimapTableDefinition::new("files_by_sha256");
const IN_DOUBT: TableDefinition<(&str, u64), ()> = TableDefinition::new("txns_in_doubt");
const GROUP_MEMBERS: TableDefinition<&str, &str> = TableDefinition::new("group_members");

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn rec(name: &str, sha256: &str, status: FileStatus) -> FileRecord {
    FileRecord {
        name: name.to_owned(),
        size: 4096,
        mtime: 1_704_234_000,
        sha256: sha256.to_owned(),
        kind: "data".to_owned(),
        status,
        rows_done: 0,
        valid_rows: 0,
        invalid_rows: 0,
        first_event_ms: None,
        last_event_ms: None,
        first_seen_ms: 1_704_234_100_000,
        updated_ms: 1_704_234_100_000,
        started_ms: None,
        finished_ms: None,
        error: None,
        duplicate_of: None,
        version: 1,
        bytes: 4096,
        attempts: 0,
        next_attempt_ms: None,
        first_row: 1,
    }
}

/// `file` after a transaction covering rows `..row_end` committed.
fn progressed(file: &FileRecord, row_end: u64, status: FileStatus) -> FileRecord {
    FileRecord {
        status,
        rows_done: row_end,
        valid_rows: row_end - 1,
        invalid_rows: 1,
        first_event_ms: Some(1_704_067_275_291),
        last_event_ms: Some(1_704_067_275_291 + row_end as i64),
        updated_ms: file.updated_ms + 1,
        ..file.clone()
    }
}

fn names(files: &[FileRecord]) -> Vec<&str> {
    files.iter().map(|f| f.name.as_str()).collect()
}

#[test]
fn put_file_round_trips_and_files_come_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.path(), dir.path().join(LEDGER_FILE_NAME));
    assert_eq!(ledger.file("cdr_data_20240101_000000.csv").unwrap(), None);

    let b = rec("cdr_voice_20240101_000000.csv", "", FileStatus::Seen);
    let a = FileRecord {
        error: Some("line 1: missing column msisdn".to_owned()),
        finished_ms: Some(7),
        ..rec("cdr_data_20240101_000000.csv", SHA_A, FileStatus::Failed)
    };
    ledger.put_file(&b).unwrap();
    ledger.put_file(&a).unwrap();
    assert_eq!(ledger.file(&a.name).unwrap(), Some(a.clone()));
    assert_eq!(ledger.file(&b.name).unwrap(), Some(b.clone()));
    assert_eq!(names(&ledger.files().unwrap()), [&a.name, &b.name]);

    // A put replaces the whole record.
    let b2 = FileRecord {
        kind: "voice".to_owned(),
        ..rec(&b.name, SHA_B, FileStatus::Conflict)
    };
    ledger.put_file(&b2).unwrap();
    assert_eq!(ledger.file(&b.name).unwrap(), Some(b2.clone()));
    assert_eq!(ledger.files().unwrap(), [a, b2]);
}

#[test]
fn intent_marks_the_file_in_progress_and_records_an_in_doubt_txn() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let file = rec("cdr_data_20240102_224000.csv", SHA_A, FileStatus::Seen);

    ledger.txn_intent(&file, 0, 0).unwrap();

    let stored = ledger.file(&file.name).unwrap().unwrap();
    assert_eq!(stored.status, FileStatus::InProgress);
    assert_eq!(
        stored,
        FileRecord {
            status: FileStatus::InProgress,
            ..file.clone()
        }
    );
    let txns = ledger.transactions(&file.name).unwrap();
    assert_eq!(txns.len(), 1);
    let txn = &txns[0];
    assert!(txn.started_ms > 1_700_000_000_000, "{txn:?}");
    assert_eq!(
        txn,
        &TxnRecord {
            file: file.name.clone(),
            seq: 0,
            file_version: 1,
            row_start: 0,
            row_end: None,
            outcome: TxnOutcome::InDoubt,
            started_ms: txn.started_ms,
            finished_ms: None,
            reason: None,
        }
    );
    assert_eq!(ledger.in_doubt().unwrap(), [(stored, txn.clone())]);
}

#[test]
fn committed_txns_record_rows_and_are_no_longer_in_doubt() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let file = rec("cdr_data_20240102_224000.csv", SHA_A, FileStatus::Seen);

    ledger.txn_intent(&file, 0, 0).unwrap();
    let half = progressed(&file, 500, FileStatus::InProgress);
    ledger.txn_committed(&half, 0, 500).unwrap();
    assert_eq!(ledger.file(&file.name).unwrap(), Some(half.clone()));
    assert!(ledger.in_doubt().unwrap().is_empty());

    ledger.txn_intent(&half, 1, 500).unwrap();
    let done = FileRecord {
        finished_ms: Some(9),
        ..progressed(&half, 1000, FileStatus::Committed)
    };
    ledger.txn_committed(&done, 1, 1000).unwrap();

    assert_eq!(ledger.file(&file.name).unwrap(), Some(done));
    assert!(ledger.in_doubt().unwrap().is_empty());
    let txns = ledger.transactions(&file.name).unwrap();
    let summary: Vec<_> = txns
        .iter()
        .map(|t| (t.seq, t.row_start, t.row_end, t.outcome, t.reason.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (0, 0, Some(500), TxnOutcome::Committed, None),
            (1, 500, Some(1000), TxnOutcome::Committed, None),
        ]
    );
    assert!(txns.iter().all(|t| t.finished_ms >= Some(t.started_ms)));
    // Another file's transactions are not mixed in.
    assert!(ledger.transactions("cdr_data_20240102_224001.csv").unwrap().is_empty());
}

#[test]
fn aborted_txn_keeps_its_reason_and_leaves_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let file = rec("cdr_voice_20240102_224000.csv", SHA_A, FileStatus::Seen);

    ledger.txn_intent(&file, 4, 0).unwrap();
    ledger.txn_aborted(&file.name, 4, "broker fenced the producer").unwrap();

    let txn = &ledger.transactions(&file.name).unwrap()[0];
    assert_eq!(txn.outcome, TxnOutcome::Aborted);
    assert_eq!(txn.row_end, None);
    assert_eq!(txn.reason.as_deref(), Some("broker fenced the producer"));
    assert!(txn.finished_ms.is_some());
    assert!(ledger.in_doubt().unwrap().is_empty());
    assert_eq!(ledger.file(&file.name).unwrap().unwrap().status, FileStatus::InProgress);
}

#[test]
fn intent_without_outcome_is_in_doubt_after_reopen_until_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let a = rec("cdr_data_20240102_224000.csv", SHA_A, FileStatus::Seen);
    let b = rec("cdr_data_20240102_224100.csv", SHA_B, FileStatus::Seen);
    {
        let ledger = Ledger::open(dir.path()).unwrap();
        ledger.txn_intent(&a, 0, 0).unwrap();
        ledger
            .txn_committed(&progressed(&a, 100, FileStatus::InProgress), 0, 100)
            .unwrap();
        ledger
            .txn_intent(&progressed(&a, 100, FileStatus::InProgress), 1, 100)
            .unwrap();
        ledger.txn_intent(&b, 0, 0).unwrap();
        // The process "dies" here: no outcome for a/1 and b/0.
    }

    let ledger = Ledger::open(dir.path()).unwrap();
    let in_doubt: Vec<_> = ledger
        .in_doubt()
        .unwrap()
        .into_iter()
        .map(|(f, t)| (f.name, f.status, f.rows_done, t.seq, t.row_start))
        .collect();
    assert_eq!(
        in_doubt,
        [
            (a.name.clone(), FileStatus::InProgress, 100, 1, 100),
            (b.name.clone(), FileStatus::InProgress, 0, 0, 0),
        ]
    );

    // The checkpoint topic says a/1 committed and b/0 did not.
    let a_done = progressed(&a, 200, FileStatus::Committed);
    ledger.resolve_in_doubt(&a_done, 1, true, 200).unwrap();
    let b_back = FileRecord {
        status: FileStatus::Seen,
        ..b.clone()
    };
    ledger.resolve_in_doubt(&b_back, 0, false, 123).unwrap();

    assert!(ledger.in_doubt().unwrap().is_empty());
    assert_eq!(ledger.file(&a.name).unwrap(), Some(a_done));
    assert_eq!(ledger.file(&b.name).unwrap(), Some(b_back));
    let a1 = &ledger.transactions(&a.name).unwrap()[1];
    assert_eq!((a1.outcome, a1.row_end), (TxnOutcome::Committed, Some(200)));
    assert!(a1.reason.as_deref().unwrap().contains("checkpoint topic"), "{a1:?}");
    let b0 = &ledger.transactions(&b.name).unwrap()[0];
    assert_eq!((b0.outcome, b0.row_end), (TxnOutcome::Aborted, None));
    assert!(b0.reason.as_deref().unwrap().contains("checkpoint topic"), "{b0:?}");
}

#[test]
fn outcomes_need_an_in_doubt_intent_and_a_refused_call_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let file = rec("cdr_data_20240102_224000.csv", SHA_A, FileStatus::Seen);

    let err = ledger.txn_committed(&file, 0, 10).unwrap_err();
    assert!(matches!(err, LedgerError::UnknownTxn { seq: 0, .. }), "{err:?}");
    assert_eq!(ledger.file(&file.name).unwrap(), None, "refused commit stored the file");

    ledger.txn_intent(&file, 0, 0).unwrap();
    ledger
        .txn_committed(&progressed(&file, 10, FileStatus::InProgress), 0, 10)
        .unwrap();
    let before = ledger.file(&file.name).unwrap();

    let err = ledger
        .txn_committed(&progressed(&file, 99, FileStatus::Committed), 0, 99)
        .unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::TxnNotInDoubt {
                outcome: TxnOutcome::Committed,
                ..
            }
        ),
        "{err:?}"
    );
    let err = ledger.txn_aborted(&file.name, 0, "late").unwrap_err();
    assert!(matches!(err, LedgerError::TxnNotInDoubt { .. }), "{err:?}");
    let err = ledger.resolve_in_doubt(&file, 0, false, 0).unwrap_err();
    assert!(matches!(err, LedgerError::TxnNotInDoubt { .. }), "{err:?}");
    let err = ledger
        .txn_intent(&rec(&file.name, SHA_B, FileStatus::Seen), 0, 10)
        .unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::TxnExists {
                seq: 0,
                outcome: TxnOutcome::Committed,
                ..
            }
        ),
        "{err:?}"
    );
    let err = ledger.txn_aborted("cdr_data_20991231_000000.csv", 0, "x").unwrap_err();
    assert!(matches!(err, LedgerError::UnknownTxn { .. }), "{err:?}");

    assert_eq!(ledger.file(&file.name).unwrap(), before);
    assert_eq!(ledger.file_by_sha256(SHA_B).unwrap(), None);
    let txn = &ledger.transactions(&file.name).unwrap()[0];
    assert_eq!(
        (txn.outcome, txn.row_end, txn.reason.as_deref()),
        (TxnOutcome::Committed, Some(10), None)
    );
}

#[test]
fn sha256_index_finds_the_claiming_file_and_follows_a_reingest() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let name = "cdr_data_20240102_224000.csv";

    // Only in-progress and committed files claim their bytes.
    ledger.put_file(&rec(name, SHA_A, FileStatus::Seen)).unwrap();
    assert_eq!(ledger.file_by_sha256(SHA_A).unwrap(), None);
    ledger.txn_intent(&rec(name, SHA_A, FileStatus::Seen), 0, 0).unwrap();
    assert_eq!(ledger.file_by_sha256(SHA_A).unwrap().unwrap().name, name);
    let v1 = progressed(&rec(name, SHA_A, FileStatus::Seen), 10, FileStatus::Committed);
    ledger.txn_committed(&v1, 0, 10).unwrap();
    assert_eq!(ledger.file_by_sha256(SHA_A).unwrap(), Some(v1.clone()));

    // A later file with the same bytes is a duplicate and does not take over.
    let dup = FileRecord {
        duplicate_of: Some(name.to_owned()),
        ..rec("cdr_data_20240103_000000.csv", SHA_A, FileStatus::Duplicate)
    };
    ledger.put_file(&dup).unwrap();
    assert_eq!(ledger.file_by_sha256(SHA_A).unwrap().unwrap().name, name);

    // The file changes and is re-ingested as version 2 under the same name.
    let v2 = FileRecord {
        version: 2,
        ..rec(name, SHA_B, FileStatus::Seen)
    };
    ledger.put_file(&v2).unwrap();
    assert_eq!(ledger.file_by_sha256(SHA_A).unwrap(), None, "old bytes still claimed");
    assert_eq!(
        ledger.file_by_sha256(SHA_B).unwrap(),
        None,
        "a seen file claims nothing"
    );
    ledger.txn_intent(&v2, 1, 0).unwrap();
    let found = ledger.file_by_sha256(SHA_B).unwrap().unwrap();
    assert_eq!((found.name.as_str(), found.version), (name, 2));
    assert_eq!(ledger.transactions(name).unwrap()[1].file_version, 2);

    // A failed ingest gives the bytes up.
    ledger.txn_aborted(name, 1, "gzip stream truncated").unwrap();
    ledger
        .put_file(&FileRecord {
            status: FileStatus::Failed,
            ..v2
        })
        .unwrap();
    assert_eq!(ledger.file_by_sha256(SHA_B).unwrap(), None);
}

#[test]
fn sha256_index_with_two_claimants_returns_the_first_and_then_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let first = rec("cdr_data_20240101_000000.csv", SHA_A, FileStatus::Committed);
    let second = rec("cdr_data_20240102_000000.csv", SHA_A, FileStatus::Committed);
    ledger.put_file(&second).unwrap();
    ledger.put_file(&first).unwrap();
    assert_eq!(ledger.file_by_sha256(SHA_A).unwrap(), Some(first.clone()));

    ledger
        .put_file(&FileRecord {
            version: 2,
            ..rec(&first.name, SHA_B, FileStatus::Seen)
        })
        .unwrap();
    assert_eq!(ledger.file_by_sha256(SHA_A).unwrap(), Some(second));
}

#[test]
fn the_last_commit_is_the_latest_finish_of_a_committed_file() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.last_committed_ms().unwrap(), None);
    for (i, (status, finished)) in [
        (FileStatus::Committed, 2_000),
        (FileStatus::Failed, 9_000),
        (FileStatus::Committed, 5_000),
        (FileStatus::Duplicate, 7_000),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = rec(&format!("cdr_data_2024010{i}_000000.csv"), "", status);
        r.finished_ms = Some(finished);
        ledger.put_file(&r).unwrap();
    }
    assert_eq!(ledger.last_committed_ms().unwrap(), Some(5_000));
}

#[test]
fn counts_cover_every_status() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let empty = ledger.counts().unwrap();
    assert_eq!(empty.keys().copied().collect::<Vec<_>>(), FileStatus::ALL);
    assert!(empty.values().all(|&n| n == 0));

    for (i, status) in [
        FileStatus::Seen,
        FileStatus::Seen,
        FileStatus::Committed,
        FileStatus::Failed,
        FileStatus::Duplicate,
        FileStatus::Committed,
        FileStatus::Committed,
    ]
    .into_iter()
    .enumerate()
    {
        ledger
            .put_file(&rec(&format!("cdr_data_2024010{i}_000000.csv"), "", status))
            .unwrap();
    }
    ledger
        .txn_intent(&rec("cdr_voice_20240101_000000.csv", SHA_B, FileStatus::Seen), 0, 0)
        .unwrap();

    let counts = ledger.counts().unwrap();
    let got: Vec<_> = counts.iter().map(|(s, n)| (s.to_string(), *n)).collect();
    let want = [
        ("seen", 2),
        ("in_progress", 1),
        ("committed", 3),
        ("failed", 1),
        ("conflict", 0),
        ("duplicate", 1),
        ("parked", 0),
    ];
    assert_eq!(got, want.map(|(s, n)| (s.to_owned(), n)));
}

#[test]
fn the_group_member_is_absent_until_recorded_then_read_beside_the_writer_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Ledger::open(dir.path()).unwrap();
    let reader = Ledger::open_read_only(dir.path()).unwrap();
    // A ledger written before the table existed has none: no member, no error.
    assert_eq!(reader.group_member("billing").unwrap(), None);

    writer.set_group_member("billing", "host-a-41").unwrap();
    writer.set_group_member("fraud", "host-a-41").unwrap();
    writer.set_group_member("billing", "host-a-57").unwrap();
    let member = |group: &str| reader.group_member(group).unwrap();
    assert_eq!(member("billing").as_deref(), Some("host-a-57"));
    assert_eq!(member("fraud").as_deref(), Some("host-a-41"));
    assert_eq!(member("other"), None);
    drop((reader, writer));

    // The layout: group name -> client id, in `group_members`, version 1.
    let db = Database::open(dir.path().join(LEDGER_FILE_NAME)).unwrap();
    let r = db.begin_read().unwrap();
    let members = r.open_table(GROUP_MEMBERS).unwrap();
    let billing = members.get("billing").unwrap().unwrap();
    assert_eq!(billing.value(), "host-a-57");
    let meta = r.open_table(META).unwrap();
    assert_eq!(meta.get("schema_version").unwrap().unwrap().value(), 1);
}

#[test]
fn the_ignored_set_is_replaced_whole_and_read_beside_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Ledger::open(dir.path()).unwrap();
    let reader = Ledger::open_read_only(dir.path()).unwrap();
    // A ledger written before the table existed: nothing ignored, no error.
    assert!(reader.ignored().unwrap().is_empty());

    writer
        .set_ignored([("link.csv", "symlink"), ("notes.txt", "no-pattern")])
        .unwrap();
    writer.set_ignored([("notes.txt", "no-pattern")]).unwrap();
    assert_eq!(
        reader.ignored().unwrap(),
        [("notes.txt".to_owned(), "no-pattern".to_owned())],
        "a name gone from the listing is gone from the ledger"
    );
    writer.set_ignored([]).unwrap();
    assert!(reader.ignored().unwrap().is_empty());
}

#[test]
fn read_only_open_beside_a_writer_follows_its_commits() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Ledger::open(dir.path()).unwrap();
    let a = rec("cdr_data_20240101_000000.csv", SHA_A, FileStatus::Seen);
    writer.put_file(&a).unwrap();

    let reader = Ledger::open_read_only(dir.path()).unwrap();
    assert!(reader.follows_writer());
    assert_eq!(reader.files().unwrap(), std::slice::from_ref(&a));

    // Commits made after the reader opened are visible to its next call.
    let b = rec("cdr_data_20240102_000000.csv", SHA_B, FileStatus::Seen);
    writer.txn_intent(&b, 0, 0).unwrap();
    assert_eq!(names(&reader.files().unwrap()), [&a.name, &b.name]);
    assert_eq!(reader.in_doubt().unwrap().len(), 1);
    assert_eq!(reader.file_by_sha256(SHA_B).unwrap().unwrap().name, b.name);
    assert_eq!(reader.counts().unwrap()[&FileStatus::InProgress], 1);
    writer
        .txn_committed(&progressed(&b, 5, FileStatus::Committed), 0, 5)
        .unwrap();
    assert_eq!(reader.file(&b.name).unwrap().unwrap().status, FileStatus::Committed);
    assert_eq!(reader.transactions(&b.name).unwrap()[0].row_end, Some(5));
    assert!(reader.in_doubt().unwrap().is_empty());

    // A second writer is refused, whoever else has the ledger open.
    let err = Ledger::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::Open {
                source: redb::DatabaseError::DatabaseAlreadyOpen,
                ..
            }
        ),
        "{err:?}"
    );

    // The daemon restarts while the reader stays open.
    drop(writer);
    let writer = Ledger::open(dir.path()).unwrap();
    writer
        .put_file(&FileRecord {
            status: FileStatus::Failed,
            ..a.clone()
        })
        .unwrap();
    assert_eq!(reader.file(&a.name).unwrap().unwrap().status, FileStatus::Failed);
}

#[test]
fn read_only_open_of_a_missing_ledger_says_so_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let err = Ledger::open_read_only(dir.path()).unwrap_err();
    assert!(
        matches!(&err, LedgerError::Missing { path } if path.ends_with(LEDGER_FILE_NAME)),
        "{err:?}"
    );
    assert!(!dir.path().join(LEDGER_FILE_NAME).exists());
}

#[test]
fn open_creates_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("state/ledger");
    Ledger::open(&nested).unwrap();
    assert!(nested.join(LEDGER_FILE_NAME).is_file());
}

fn raw(dir: &Path) -> Database {
    Database::create(dir.join(LEDGER_FILE_NAME)).unwrap()
}

#[test]
fn newer_schema_version_is_refused_by_writer_and_reader() {
    let dir = tempfile::tempdir().unwrap();
    drop(Ledger::open(dir.path()).unwrap());
    {
        let db = raw(dir.path());
        let w = db.begin_write().unwrap();
        assert_eq!(
            w.open_table(META)
                .unwrap()
                .get("schema_version")
                .unwrap()
                .unwrap()
                .value(),
            SCHEMA_VERSION
        );
        w.open_table(META)
            .unwrap()
            .insert("schema_version", SCHEMA_VERSION + 1)
            .unwrap();
        w.commit().unwrap();
    }
    let err = Ledger::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, LedgerError::UnsupportedVersion { found: 2, supported: 1 }),
        "{err:?}"
    );
    let err = Ledger::open_read_only(dir.path()).unwrap_err();
    assert!(
        matches!(err, LedgerError::UnsupportedVersion { found: 2, supported: 1 }),
        "{err:?}"
    );
    // The refused open left the version alone.
    let db = raw(dir.path());
    let r = db.begin_read().unwrap();
    assert_eq!(
        r.open_table(META)
            .unwrap()
            .get("schema_version")
            .unwrap()
            .unwrap()
            .value(),
        2
    );
}

/// Values as a v1 build writes them. A later envelope version must keep
/// reading these bytes into the same records.
const GOLDEN_FILE_V1: &str = r#"{"v":1,"name":"cdr_data_20240102_224000.csv","size":151234,"mtime":1704235200,"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","kind":"data","status":"in_progress","rows_done":1000,"valid_rows":998,"invalid_rows":2,"first_event_ms":1704070875291,"last_event_ms":1704157199000,"first_seen_ms":1704235260000,"updated_ms":1704235300000,"started_ms":1704235290000,"finished_ms":null,"error":null,"duplicate_of":null,"version":2,"bytes":151234}"#;
const GOLDEN_TXN_V1: &str = r#"{"v":1,"file":"cdr_data_20240102_224000.csv","seq":3,"file_version":2,"row_start":1000,"row_end":null,"outcome":"in_doubt","started_ms":1704235301000,"finished_ms":null,"reason":null}"#;
const GOLDEN_TXN_DONE_V1: &str = r#"{"v":1,"file":"cdr_data_20240102_224000.csv","seq":2,"file_version":2,"row_start":0,"row_end":1000,"outcome":"committed","started_ms":1704235290000,"finished_ms":1704235299000,"reason":"resolved"}"#;

#[test]
fn reads_values_written_in_the_v1_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let name = "cdr_data_20240102_224000.csv";
    let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    {
        let db = raw(dir.path());
        let w = db.begin_write().unwrap();
        w.open_table(META).unwrap().insert("schema_version", 1).unwrap();
        w.open_table(FILES)
            .unwrap()
            .insert(name, GOLDEN_FILE_V1.as_bytes())
            .unwrap();
        let mut txns = w.open_table(TXNS).unwrap();
        txns.insert((name, 2), GOLDEN_TXN_DONE_V1.as_bytes()).unwrap();
        txns.insert((name, 3), GOLDEN_TXN_V1.as_bytes()).unwrap();
        drop(txns);
        w.open_table(IN_DOUBT).unwrap().insert((name, 3), ()).unwrap();
        w.open_multimap_table(SHA256_INDEX).unwrap().insert(sha, name).unwrap();
        w.commit().unwrap();
    }
    let file = FileRecord {
        name: name.to_owned(),
        size: 151_234,
        mtime: 1_704_235_200,
        sha256: sha.to_owned(),
        kind: "data".to_owned(),
        status: FileStatus::InProgress,
        rows_done: 1000,
        valid_rows: 998,
        invalid_rows: 2,
        first_event_ms: Some(1_704_070_875_291),
        last_event_ms: Some(1_704_157_199_000),
        first_seen_ms: 1_704_235_260_000,
        updated_ms: 1_704_235_300_000,
        started_ms: Some(1_704_235_290_000),
        finished_ms: None,
        error: None,
        duplicate_of: None,
        version: 2,
        bytes: 151_234,
        attempts: 0,
        next_attempt_ms: None,
        // Absent from a value written before it existed: the default.
        first_row: 1,
    };
    let done = TxnRecord {
        file: name.to_owned(),
        seq: 2,
        file_version: 2,
        row_start: 0,
        row_end: Some(1000),
        outcome: TxnOutcome::Committed,
        started_ms: 1_704_235_290_000,
        finished_ms: Some(1_704_235_299_000),
        reason: Some("resolved".to_owned()),
    };
    let in_doubt = TxnRecord {
        file: name.to_owned(),
        seq: 3,
        file_version: 2,
        row_start: 1000,
        row_end: None,
        outcome: TxnOutcome::InDoubt,
        started_ms: 1_704_235_301_000,
        finished_ms: None,
        reason: None,
    };

    let reader = Ledger::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.file(name).unwrap(), Some(file.clone()));
    assert_eq!(reader.transactions(name).unwrap(), [done.clone(), in_doubt.clone()]);
    drop(reader);

    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.file(name).unwrap(), Some(file.clone()));
    assert_eq!(ledger.file_by_sha256(sha).unwrap(), Some(file.clone()));
    assert_eq!(ledger.in_doubt().unwrap(), [(file.clone(), in_doubt)]);
    // And the v1 records can be carried on with.
    ledger
        .resolve_in_doubt(
            &FileRecord {
                status: FileStatus::Committed,
                ..file
            },
            3,
            true,
            1500,
        )
        .unwrap();
    assert!(ledger.in_doubt().unwrap().is_empty());
}

#[test]
fn writes_values_in_the_v2_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let file = rec("cdr_data_20240102_224000.csv", SHA_A, FileStatus::Seen);
    {
        let ledger = Ledger::open(dir.path()).unwrap();
        ledger.txn_intent(&file, 0, 0).unwrap();
    }
    let db = raw(dir.path());
    let r = db.begin_read().unwrap();
    let files = r.open_table(FILES).unwrap();
    let stored = files.get(file.name.as_str()).unwrap().unwrap();
    let value: serde_json::Value = serde_json::from_slice(stored.value()).unwrap();
    assert_eq!(value["v"], 2);
    assert_eq!(value["status"], "in_progress");
    assert_eq!(value["attempts"], 0);
    assert!(stored.value().starts_with(br#"{"v":2,"name":"#));
    let txns = r.open_table(TXNS).unwrap();
    let stored = txns.get((file.name.as_str(), 0)).unwrap().unwrap();
    assert!(stored.value().starts_with(br#"{"v":2,"file":"#));
    assert!(r
        .open_table(IN_DOUBT)
        .unwrap()
        .get((file.name.as_str(), 0))
        .unwrap()
        .is_some());
}

/// A parked file as a v2 build writes it.
const GOLDEN_FILE_V2: &str = r#"{"v":2,"name":"cdr_voice_20240102_224000.csv","size":99,"mtime":1704235200,"sha256":"","kind":"voice","status":"parked","rows_done":0,"valid_rows":0,"invalid_rows":0,"first_event_ms":null,"last_event_ms":null,"first_seen_ms":1704235260000,"updated_ms":1704235300000,"started_ms":null,"finished_ms":null,"error":"permission denied","duplicate_of":null,"version":1,"bytes":0,"attempts":5,"next_attempt_ms":1704235400000}"#;

#[test]
fn reads_a_parked_file_written_in_the_v2_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let name = "cdr_voice_20240102_224000.csv";
    {
        let db = raw(dir.path());
        let w = db.begin_write().unwrap();
        w.open_table(META).unwrap().insert("schema_version", 1).unwrap();
        w.open_table(FILES)
            .unwrap()
            .insert(name, GOLDEN_FILE_V2.as_bytes())
            .unwrap();
        w.commit().unwrap();
    }
    let reader = Ledger::open_read_only(dir.path()).unwrap();
    let file = reader.file(name).unwrap().unwrap();
    assert_eq!(file.status, FileStatus::Parked);
    assert_eq!(file.attempts, 5);
    assert_eq!(file.next_attempt_ms, Some(1_704_235_400_000));
    assert_eq!(file.error.as_deref(), Some("permission denied"));
}

#[test]
fn release_clears_attempts_of_parked_and_failed_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let parked = FileRecord {
        attempts: 5,
        next_attempt_ms: Some(1),
        error: Some("permission denied".into()),
        ..rec("cdr_data_20240101_000001.csv", "", FileStatus::Parked)
    };
    let failed_part_way = FileRecord {
        rows_done: 10,
        ..rec("cdr_data_20240101_000002.csv", SHA_A, FileStatus::Failed)
    };
    let committed = rec("cdr_data_20240101_000003.csv", SHA_B, FileStatus::Committed);
    for r in [&parked, &failed_part_way, &committed] {
        ledger.put_file(r).unwrap();
    }
    let released = ledger.release(&parked.name).unwrap().unwrap();
    assert_eq!(
        (released.status, released.attempts, released.next_attempt_ms),
        (FileStatus::Seen, 0, None)
    );
    assert_eq!(ledger.file(&parked.name).unwrap(), Some(released));
    // Rows already committed: resumed after them, so it claims its bytes again.
    let released = ledger.release(&failed_part_way.name).unwrap().unwrap();
    assert_eq!(released.status, FileStatus::InProgress);
    assert_eq!(
        ledger.file_by_sha256(SHA_A).unwrap().map(|r| r.name),
        Some(failed_part_way.name)
    );
    assert_eq!(ledger.release(&committed.name).unwrap(), None);
    assert_eq!(ledger.file(&committed.name).unwrap(), Some(committed));
    assert_eq!(ledger.release("cdr_data_unknown.csv").unwrap(), None);
}

const CHILD_DIR_ENV: &str = "CDR_STATE_TEST_CRASH_DIR";

/// Run by `read_only_open_after_a_writer_crash_reads_a_repaired_snapshot` in a
/// child process: records an intent and exits without closing the ledger.
#[test]
#[ignore = "child process of another test"]
fn child_exits_after_intent_without_closing() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let ledger = Ledger::open(Path::new(&dir)).unwrap();
    ledger
        .txn_intent(&rec("cdr_data_20240102_224000.csv", SHA_A, FileStatus::Seen), 0, 0)
        .unwrap();
    // No destructors: the database is left as a crash leaves it.
    std::process::exit(3);
}

#[test]
fn read_only_open_after_a_writer_crash_reads_a_repaired_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_exits_after_intent_without_closing",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .output()
        .unwrap();
    assert_eq!(
        child.status.code(),
        Some(3),
        "the child did not get to its exit:\n{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );

    let reader = Ledger::open_read_only(dir.path()).unwrap();
    assert!(
        !reader.follows_writer(),
        "expected a snapshot of a ledger needing repair"
    );
    let in_doubt = reader.in_doubt().unwrap();
    assert_eq!(in_doubt.len(), 1);
    assert_eq!((in_doubt[0].0.status, in_doubt[0].1.seq), (FileStatus::InProgress, 0));

    // The snapshot does not hold the ledger: the daemon can restart beside it.
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.in_doubt().unwrap(), in_doubt);
    drop(reader);
    // Once a writer has repaired it, readers read the live file again.
    assert!(Ledger::open_read_only(dir.path()).unwrap().follows_writer());
}

/// A ledger of `files` committed files with a transaction each.
fn filled_ledger(dir: &Path, files: usize) {
    let ledger = Ledger::open(dir).unwrap();
    for i in 0..files {
        let name = format!("cdr_data_20240101_{i:06}.csv");
        let r = rec(&name, &format!("{i:064x}"), FileStatus::InProgress);
        ledger.put_file(&r).unwrap();
        ledger.txn_intent(&r, 1, 1).unwrap();
        ledger.txn_committed(&r, 1, 100).unwrap();
    }
}

/// Overwrites `len` bytes every `every` bytes from `from`, as a failing disk might.
fn damage(path: &Path, from: usize, len: usize, every: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let mut at = from;
    while at < bytes.len() {
        let end = (at + len).min(bytes.len());
        bytes[at..end].fill(0xAB);
        at += every;
    }
    std::fs::write(path, bytes).unwrap();
}

fn damaged_copies(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{LEDGER_FILE_NAME}.damaged-")))
        .collect()
}

#[test]
fn a_ledger_with_damaged_pages_is_moved_aside_and_a_new_one_opened() {
    let dir = tempfile::tempdir().unwrap();
    filled_ledger(dir.path(), 300);
    let path = dir.path().join(LEDGER_FILE_NAME);
    let original = std::fs::read(&path).unwrap();
    damage(&path, 8192, 2048, 8192);
    let (ledger, healed) = Ledger::open_healing(dir.path()).unwrap();
    let healed = healed.expect("the damage is found");
    assert!(!healed.damage.is_empty());
    assert!(ledger.files().unwrap().is_empty(), "a new, empty ledger");
    assert_eq!(damaged_copies(dir.path()).len(), 1);
    let kept = std::fs::read(&healed.moved_to).unwrap();
    assert_eq!(kept.len(), original.len(), "the damaged file is kept as it was");
    drop(ledger);
    // The new ledger is sound: opened again, nothing to heal.
    let (_, again) = Ledger::open_healing(dir.path()).unwrap();
    assert!(again.is_none());
}

#[test]
fn a_ledger_whose_header_is_overwritten_is_moved_aside_too() {
    let dir = tempfile::tempdir().unwrap();
    filled_ledger(dir.path(), 10);
    damage(&dir.path().join(LEDGER_FILE_NAME), 0, 512, usize::MAX);
    let (ledger, healed) = Ledger::open_healing(dir.path()).unwrap();
    assert!(healed.is_some());
    assert!(ledger.files().unwrap().is_empty());
}

#[test]
fn a_sound_ledger_opens_as_it_is_and_one_held_by_another_writer_is_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    filled_ledger(dir.path(), 20);
    let (ledger, healed) = Ledger::open_healing(dir.path()).unwrap();
    assert!(healed.is_none());
    assert_eq!(ledger.files().unwrap().len(), 20);
    let second = Ledger::open_healing(dir.path()).unwrap_err();
    assert!(second.is_held_by_another_writer(), "{second}");
    assert!(damaged_copies(dir.path()).is_empty());
}

#[test]
fn a_read_only_open_of_a_damaged_ledger_says_so_and_leaves_it_in_place() {
    let dir = tempfile::tempdir().unwrap();
    filled_ledger(dir.path(), 300);
    damage(&dir.path().join(LEDGER_FILE_NAME), 8192, 2048, 8192);
    let err = Ledger::open_read_only(dir.path()).unwrap_err();
    assert!(matches!(err, LedgerError::Damaged { .. }), "{err:?}");
    assert!(err.to_string().contains("is damaged"), "{err}");
    assert!(damaged_copies(dir.path()).is_empty(), "a reader moves nothing");
}
