//! The reconciliation rules, without a broker: what the ledger, a checkpoint
//! and a tally must look like for a file to agree.

use super::scan::Place;
use super::*;
use crate::sink::topics::TopicLayout;

fn rec(name: &str, status: FileStatus, sha: &str, rows: u64, invalid: u64) -> FileRecord {
    FileRecord {
        name: name.into(),
        size: 1,
        mtime: 1,
        sha256: sha.into(),
        kind: "data".into(),
        status,
        rows_done: rows,
        valid_rows: rows - invalid,
        invalid_rows: invalid,
        first_event_ms: None,
        last_event_ms: None,
        first_seen_ms: 0,
        updated_ms: 0,
        started_ms: None,
        finished_ms: None,
        error: None,
        duplicate_of: None,
        version: 1,
        bytes: 1,
        attempts: 0,
        next_attempt_ms: None,
        first_row: 1,
    }
}

fn cp(r: &FileRecord, rows: u64, done: bool) -> Checkpoint {
    Checkpoint {
        v: 1,
        file: r.name.clone(),
        sha256: r.sha256.clone(),
        version: r.version,
        seq: 1,
        rows_done: rows,
        valid: rows - r.invalid_rows.min(rows),
        invalid: r.invalid_rows.min(rows),
        done,
        first_event_ms: None,
        last_event_ms: None,
        first_row: 1,
        bytes: None,
    }
}

fn topics() -> TopicSet {
    TopicSet::of(&TopicLayout::default())
}

/// Where the data kind's, the voice kind's and the dead-letter records are found.
const DATA: Place = Place(0);
const VOICE: Place = Place(1);
const DLQ: Place = Place(2);

const SHA: &str = "00000000000000aa00000000000000000000000000000000000000000000000";

fn tally(rows: u64, valid_rows: &[u64], dlq_rows: &[u64]) -> Tally {
    let mut t = Tally::new(1, rows);
    valid_rows.iter().for_each(|r| t.add(DATA, *r));
    dlq_rows.iter().for_each(|r| t.add(DLQ, *r));
    t
}

fn group(rows: u64) -> Group {
    Group {
        owner: 0,
        first: 1,
        capacity: rows,
        audited: true,
    }
}

#[test]
fn a_complete_committed_file_agrees() {
    let r = rec("f", FileStatus::Committed, SHA, 4, 1);
    let mut findings = Vec::new();
    check_checkpoint(&r, Some(&cp(&r, 4, true)), &mut findings);
    let found = check_topics(
        &r,
        &group(4),
        &tally(4, &[1, 2, 4], &[3]),
        &topics(),
        &mut findings,
        &mut Vec::new(),
    );
    assert_eq!(findings, vec![]);
    assert_eq!((found.valid, found.dlq, found.distinct_rows), (3, 1, 4));
}

#[test]
fn lost_duplicate_and_stray_records_are_each_named() {
    let r = rec("f", FileStatus::Committed, SHA, 4, 0);
    let mut t = tally(4, &[1, 1, 4, 9, 10], &[]);
    t.add(VOICE, 2);
    let mut findings = Vec::new();
    check_topics(&r, &group(4), &t, &topics(), &mut findings, &mut Vec::new());
    let kinds: Vec<&str> = findings
        .iter()
        .map(|f| match f {
            Finding::MissingRows { ranges, .. } => {
                assert_eq!(ranges, &vec![(3, 3)]);
                "missing"
            }
            Finding::DuplicateKeys { keys, .. } => {
                assert_eq!(keys, &vec!["00000000000000aa-1".to_string()]);
                "dup"
            }
            Finding::WrongTopic { .. } => "wrong",
            Finding::RowsBeyondLedger { .. } => "beyond",
            Finding::CountMismatch { .. } => "count",
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(kinds, vec!["missing", "dup", "wrong", "beyond", "count"]);
}

#[test]
fn a_file_in_progress_may_run_ahead_of_the_ledger_but_not_behind_it() {
    let r = rec("f", FileStatus::InProgress, SHA, 100, 0);
    let mut findings = Vec::new();
    // The checkpoint (and the topics) hold a chunk the ledger has not recorded yet.
    check_checkpoint(&r, Some(&cp(&r, 200, false)), &mut findings);
    let rows: Vec<u64> = (1..=250).collect();
    check_topics(
        &r,
        &group(200),
        &tally(200, &rows, &[]),
        &topics(),
        &mut findings,
        &mut Vec::new(),
    );
    assert_eq!(findings, vec![]);
    // A ledger ahead of the checkpoint counts rows Kafka never committed.
    check_checkpoint(&r, Some(&cp(&r, 50, false)), &mut findings);
    assert!(matches!(&findings[..], [Finding::CheckpointMismatch { field, .. }] if field == "rows_done"));
}

#[test]
fn committed_rows_without_a_matching_checkpoint_are_findings() {
    let r = rec("f", FileStatus::Committed, SHA, 4, 0);
    let mut findings = Vec::new();
    check_checkpoint(&r, None, &mut findings);
    assert_eq!(findings, vec![Finding::CheckpointMissing { file: "f".into() }]);
    findings.clear();
    check_checkpoint(&r, Some(&cp(&r, 4, false)), &mut findings);
    assert!(matches!(&findings[..], [Finding::CheckpointMismatch { field, .. }] if field == "done"));
    // Nothing committed of a failed file: no checkpoint needed.
    findings.clear();
    check_checkpoint(&rec("g", FileStatus::Failed, SHA, 0, 0), None, &mut findings);
    assert_eq!(findings, vec![]);
}

#[test]
fn a_duplicate_shares_its_originals_prefix_and_the_original_owns_the_records() {
    let all = vec![
        rec("a", FileStatus::Duplicate, SHA, 0, 0),
        rec("b", FileStatus::Committed, SHA, 10, 0),
        rec("c", FileStatus::Seen, "", 0, 0),
    ];
    let plan = Plan::new(&all, &Scope::default(), &CheckpointStore::default());
    assert_eq!(plan.groups.len(), 1);
    assert_eq!(plan.group_of(0), Some((0, false)));
    assert_eq!(plan.group_of(1), Some((0, true)));
    assert_eq!(plan.group_of(2), None);
    assert_eq!(plan.groups[0].capacity, 10);
    // Scoped to the duplicate alone, the shared prefix is still tallied.
    let only_a = Scope {
        file: Some("a".into()),
        ..Scope::default()
    };
    assert!(Plan::new(&all, &only_a, &CheckpointStore::default()).groups[0].audited);
}
