//! Never idle on a commit: with two files in flight (`--workers 2`), `once`
//! over data and voice files produces one kind's chunk while the other
//! kind's commit is in flight (seen in the engine's debug log, from two
//! slots), and every row still lands exactly once.

mod common;
mod daemon_support;

use std::collections::BTreeMap;

use common::*;
use daemon_support::*;

/// One chunk's steps, as logged: when it began producing, began its commit,
/// and finished it (RFC 3339 UTC timestamps of one width: they order as text).
#[derive(Default, Debug)]
struct Chunk {
    producing: String,
    committing: String,
    committed: String,
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn one_kinds_chunk_is_produced_while_the_other_kinds_commit_is_in_flight() {
    env("KAFKA_BROKERS");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    let ledger = work.path().join("ledger");
    generate(&dir, 3, 20_000, 61, "2024-12-01T00:00:00", 0.01);
    let topics = Topics::new();
    let mut cmd = bin();
    cmd.arg("once");
    topics.apply(&mut cmd, &ledger);
    cmd.env("CDR_LOCAL_DIR", &dir)
        .env("CDR_WORKERS", "2")
        .env("CDR_CHUNK_ROWS", "5000")
        .env("CDR_LOG_FORMAT", "json")
        .env("RUST_LOG", "info,cdr_to_redpanda::ingest::file=debug");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));

    let mut chunks: BTreeMap<(String, u64), Chunk> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(file), Some(seq)) = (v["fields"]["file"].as_str(), v["fields"]["seq"].as_u64()) else {
            continue;
        };
        let at = v["timestamp"].as_str().unwrap().to_owned();
        let chunk = chunks.entry((file.to_owned(), seq)).or_default();
        match v["fields"]["message"].as_str() {
            Some("chunk producing") => chunk.producing = at,
            Some("chunk committing") => chunk.committing = at,
            Some("chunk committed") => chunk.committed = at,
            _ => {}
        }
    }
    assert!(chunks.len() >= 24, "4 chunks per file, 6 files: {chunks:?}");
    let kind = |file: &str| file.split('_').nth(1).unwrap_or_default().to_owned();
    // B produced while A's commit was in flight: B began producing before A's
    // commit ended, and began its own commit after A's began.
    let overlaps = chunks
        .iter()
        .flat_map(|(a, ca)| chunks.iter().map(move |(b, cb)| (a, ca, b, cb)))
        .filter(|(a, ca, b, cb)| {
            kind(&a.0) != kind(&b.0) && cb.producing < ca.committed && cb.committing > ca.committing
        })
        .count();
    assert!(overlaps > 0, "no chunk produced during another's commit: {chunks:#?}");
    assert_exactly_once(&topics, &dir);
}
