//! Never idle on a commit: with two files in flight (`--workers 2`, the
//! default), one file's chunk is produced while another's commit is in
//! flight (seen in the engine's debug log, from two slots): a kind beside
//! the other kind, and a kind's next file beside its previous file's last
//! commit, still committing after it. Every row lands exactly once.

mod common;
mod daemon_support;

use std::collections::BTreeMap;
use std::path::Path;

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

/// Chunks by (file, seq), from `once` over `dir` with `env` set.
fn once_chunks(topics: &Topics, dir: &Path, ledger: &Path, env: &[(&str, &str)]) -> BTreeMap<(String, u64), Chunk> {
    let mut cmd = bin();
    cmd.arg("once");
    topics.apply(&mut cmd, ledger);
    cmd.env("CDR_LOCAL_DIR", dir)
        .env("CDR_LOG_FORMAT", "json")
        .env("RUST_LOG", "info,cdr_to_redpanda::ingest::file=debug")
        .envs(env.iter().copied());
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
    chunks
}

/// A work directory holding `in/`, with `files` files of 20,000 rows per kind.
fn work_dir(files: u32, seed: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    env("KAFKA_BROKERS");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    generate(&dir, files, 20_000, seed, "2024-12-01T00:00:00", 0.01);
    (work, dir)
}

fn kind(file: &str) -> String {
    file.split('_').nth(1).unwrap_or_default().to_owned()
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn one_kinds_chunk_is_produced_while_the_other_kinds_commit_is_in_flight() {
    let (work, dir) = work_dir(3, 61);
    let topics = Topics::new();
    let chunks = once_chunks(
        &topics,
        &dir,
        &work.path().join("ledger"),
        &[("CDR_CHUNK_ROWS", "5000")],
    );
    assert!(chunks.len() >= 24, "4 chunks per file, 6 files: {chunks:?}");
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

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_kinds_next_file_is_produced_while_the_previous_files_last_commit_is_in_flight_and_commits_after_it() {
    let (work, dir) = work_dir(8, 62);
    // One kind only: overlap can come only from two files of that kind.
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.to_string_lossy().contains("cdr_voice_") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let topics = Topics::new();
    let chunks = once_chunks(&topics, &dir, &work.path().join("ledger"), &[]);
    let mut files: Vec<&String> = chunks.keys().map(|(f, _)| f).collect();
    files.dedup();
    assert_eq!(files.len(), 8, "{chunks:#?}");
    assert!(files.iter().all(|f| kind(f) == "data"));
    let first = |f: &String| chunks.range((f.clone(), 0)..).next().map(|(_, c)| c).unwrap();
    let last = |f: &String| {
        chunks
            .range(..(f.clone(), u64::MAX))
            .next_back()
            .map(|(_, c)| c)
            .unwrap()
    };
    let mut overlapped = 0;
    for pair in files.windows(2) {
        let (earlier, later) = (last(pair[0]), first(pair[1]));
        assert!(
            later.committed > earlier.committed,
            "{} committed before {}: {chunks:#?}",
            pair[1],
            pair[0]
        );
        if later.producing < earlier.committed {
            overlapped += 1;
        }
    }
    // Files download in a few ms and wait for their turn: most pairs overlap.
    assert!(
        overlapped >= 4,
        "{overlapped} of 7 next files produced during a last commit: {chunks:#?}"
    );
    assert_exactly_once(&topics, &dir);
}
