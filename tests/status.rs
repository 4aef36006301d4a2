//! `status`: what an operator sees, in text and JSON, and that it reads a
//! ledger the daemon holds open for writing, or a copy of one.

mod common;

use std::path::Path;
use std::process::Output;

use cdr_state::{FileRecord, FileStatus, Ledger};
use common::*;
use serde_json::Value;

fn status(ledger: &Path, json: bool) -> Output {
    let mut c = bin();
    c.arg("status")
        .arg("--ledger-dir")
        .arg(ledger)
        .env_remove("CDR_LEDGER_DIR");
    if json {
        c.arg("--json");
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    out
}

fn status_json(ledger: &Path) -> Value {
    serde_json::from_slice(&status(ledger, true).stdout).unwrap()
}

fn status_text(ledger: &Path) -> String {
    String::from_utf8(status(ledger, false).stdout).unwrap()
}

fn once(topics: &Topics, dir: &Path, ledger: &Path, failpoints: Option<&str>) -> Output {
    let mut c = bin();
    c.args(["once", "--chunk-rows", "100"]);
    topics.apply(&mut c, ledger);
    c.env("CDR_LOCAL_DIR", dir);
    if let Some(f) = failpoints {
        c.env("CDR_FAILPOINTS", f);
    }
    c.output().unwrap()
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn status_shows_counts_progress_recent_files_and_every_problem_in_text_and_json() {
    let topics = Topics::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    let gen = bin()
        .args([
            "generate",
            "--files",
            "1",
            "--rows",
            "250",
            "--seed",
            "31",
            "--bad-rate",
            "0.04",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(gen.status.success(), "{}", output_text(&gen));
    let data = dir.path().join("cdr_data_20240101_000000.csv");
    std::fs::copy(&data, dir.path().join("cdr_data_20240101_000001.csv")).unwrap();
    std::fs::write(
        dir.path().join("cdr_voice_20240101_000000.csv"),
        "msisdn,tower_id\n1,2\n",
    )
    .unwrap();
    let out = once(&topics, dir.path(), ledger.path(), None);
    assert_eq!(out.status.code(), Some(1), "a failed file: {}", output_text(&out));

    // A file whose ingest dies after its first chunk committed: in progress.
    let mut later = std::fs::read(&data).unwrap();
    later.extend_from_slice(b"27831234567,17,100,200,text,10.0.0.1,http://example.com,2024-01-01 00:00:01\n");
    std::fs::write(dir.path().join("cdr_data_20240102_000000.csv"), later).unwrap();
    let out = once(&topics, dir.path(), ledger.path(), Some("after-intent-before-begin=2"));
    assert!(!out.status.success(), "{}", output_text(&out));

    let s = status_json(ledger.path());
    assert_eq!(s["counts"]["committed"], 2, "{s:#}");
    assert_eq!(s["counts"]["failed"], 1);
    assert_eq!(s["counts"]["duplicate"], 1);
    assert_eq!(s["counts"]["in_progress"], 1);
    assert_eq!(s["counts"]["seen"], 0);
    assert_eq!(s["in_progress"][0]["name"], "cdr_data_20240102_000000.csv");
    assert_eq!(s["in_progress"][0]["rows_done"], 100);
    assert_eq!(s["oldest_waiting"]["name"], "cdr_data_20240102_000000.csv");
    assert_eq!(s["in_doubt_transactions"], 1);
    let recent = s["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 2);
    assert!(recent
        .iter()
        .all(|r| r["rows"] == 250 && r["seconds"].as_f64().is_some()));
    let invalid: u64 = recent.iter().map(|r| r["invalid_rows"].as_u64().unwrap()).sum();
    assert_eq!(s["invalid_rows_committed"], invalid);
    assert_eq!(s["rows_committed"], 500 - invalid);
    let problems = s["problems"].as_array().unwrap();
    let problem = |name: &str| {
        problems
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{s:#}"))
    };
    assert_eq!(problem("cdr_data_20240101_000001.csv")["status"], "duplicate");
    assert_eq!(
        problem("cdr_data_20240101_000001.csv")["duplicate_of"],
        "cdr_data_20240101_000000.csv"
    );
    assert_eq!(problem("cdr_voice_20240101_000000.csv")["status"], "failed");
    assert!(problem("cdr_voice_20240101_000000.csv")["error"]
        .as_str()
        .unwrap()
        .contains("call_type"));

    let text = status_text(ledger.path());
    assert!(
        text.starts_with("files: seen 0, in_progress 1, committed 2, failed 1, conflict 0, duplicate 1"),
        "{text}"
    );
    assert!(
        text.contains("oldest waiting: cdr_data_20240102_000000.csv (in_progress, 100 rows done)"),
        "{text}"
    );
    assert!(text.contains("1 transaction(s) in doubt"), "{text}");
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {text}"))
    };
    assert!(line("cdr_data_20240101_000001.csv").contains("same content as cdr_data_20240101_000000.csv"));
    assert!(line("cdr_voice_20240101_000000.csv").contains("failed"));
    assert!(
        line("cdr_voice_20240101_000500.csv").contains("250"),
        "recent files list rows"
    );
    assert!(
        text.contains("the last writer crashed"),
        "the failpoint killed the writer: {text}"
    );
}

fn record(name: &str, status: FileStatus, rows: u64) -> FileRecord {
    FileRecord {
        name: name.into(),
        size: 100,
        mtime: 1,
        sha256: format!("{:064x}", rows + 1),
        kind: "data".into(),
        status,
        rows_done: rows,
        valid_rows: rows,
        invalid_rows: 0,
        first_event_ms: None,
        last_event_ms: None,
        first_seen_ms: 1_000,
        updated_ms: 2_000,
        started_ms: Some(1_000),
        finished_ms: Some(2_000),
        error: None,
        duplicate_of: None,
        version: 1,
        bytes: 100,
        attempts: 0,
        next_attempt_ms: None,
        first_row: 1,
    }
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn status_reads_a_ledger_held_open_for_writing_and_a_copy_of_it() {
    let dir = tempfile::tempdir().unwrap();
    // This process is the writer, as the daemon would be: the ledger stays
    // open (and locked for writing) while `status` runs in another process.
    let writer = Ledger::open(dir.path()).unwrap();
    writer
        .put_file(&record("cdr_data_20240101_000000.csv", FileStatus::Committed, 10))
        .unwrap();
    writer
        .put_file(&record("cdr_data_20240101_001000.csv", FileStatus::Seen, 0))
        .unwrap();
    let s = status_json(dir.path());
    assert_eq!(s["counts"]["committed"], 1);
    assert_eq!(s["counts"]["seen"], 1);
    assert_eq!(s["live"], true);
    assert_eq!(s["oldest_waiting"]["name"], "cdr_data_20240101_001000.csv");

    // A later commit of the writer is seen by the next status.
    writer
        .put_file(&record("cdr_data_20240101_001000.csv", FileStatus::Committed, 7))
        .unwrap();
    assert_eq!(status_json(dir.path())["counts"]["committed"], 2);

    // A copy taken while the writer has it open (as a backup would) reads too.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.path().join(cdr_state::LEDGER_FILE_NAME),
        copy.path().join(cdr_state::LEDGER_FILE_NAME),
    )
    .unwrap();
    let text = status_text(copy.path());
    assert!(text.starts_with("files: seen 0, in_progress 0, committed 2"), "{text}");
    assert!(text.contains("rows committed: 17 valid"), "{text}");
    drop(writer);
}
