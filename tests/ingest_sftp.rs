//! End to end against the real sshd and the real broker: generated files with
//! bad rows mixed in land exactly once, byte-exact, with the contract's keys,
//! timestamps and headers; invalid rows land once in the dead-letter topic.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use chrono::NaiveDateTime;
use common::*;
use sha2::{Digest, Sha256};

/// A generated file as an independent reader (the csv crate) sees it.
struct Expected {
    name: String,
    kind: &'static str,
    sha256: String,
    header: Vec<String>,
    /// Row index (from 1) -> raw fields.
    rows: BTreeMap<u64, Vec<Vec<u8>>>,
}

fn expected_files(dir: &Path) -> Vec<Expected> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("cdr_") && n.ends_with(".csv"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).unwrap();
            let sha256 = format!("{:x}", Sha256::digest(&bytes));
            let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(&bytes[..]);
            let header = rdr.headers().unwrap().iter().map(str::to_string).collect();
            let rows = rdr
                .byte_records()
                .enumerate()
                .map(|(i, r)| (i as u64 + 1, r.unwrap().iter().map(<[u8]>::to_vec).collect()))
                .collect();
            Expected {
                kind: if name.starts_with("cdr_data_") { "data" } else { "voice" },
                name,
                sha256,
                header,
                rows,
            }
        })
        .collect()
}

fn sftp_once(topics: &Topics, remote: &str, ledger: &Path, extra: &[&str]) -> std::process::Output {
    let mut cmd = bin();
    cmd.arg("once").args(extra);
    topics.apply(&mut cmd, ledger);
    sftp_env(&mut cmd, remote);
    cmd.output().unwrap()
}

fn kcat_count(topic: &str) -> usize {
    let out = Command::new("kcat")
        .args([
            "-C",
            "-b",
            &brokers(),
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k\\n",
        ])
        .args(["-X", "isolation.level=read_committed"])
        .output()
        .expect("kcat is installed by scripts/bootstrap.sh");
    assert!(out.status.success(), "kcat: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .count()
}

fn event_ms(s: &str) -> i64 {
    let fmt = if s.contains('.') {
        "%Y-%m-%d %H:%M:%S%.f"
    } else {
        "%Y-%m-%d %H:%M:%S"
    };
    NaiveDateTime::parse_from_str(s, fmt)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn sftp_files_land_exactly_once_with_contract_keys_values_and_headers() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("happy"));
    let summary = generate_files(
        &local,
        &["--files", "3", "--rows", "700", "--seed", "11", "--bad-rate", "0.05"],
    );
    let ledger = tempfile::tempdir().unwrap();

    let out = sftp_once(&topics, &remote, ledger.path(), &["--chunk-rows", "250"]);
    assert!(out.status.success(), "{}", output_text(&out));

    let files = expected_files(&local);
    assert_eq!(files.len(), 6);
    let data = read_committed(&brokers(), &topics.data);
    let voice = read_committed(&brokers(), &topics.voice);
    let dlq = read_committed(&brokers(), &topics.dlq);

    // Every row of every file lands once: valid rows in their kind's topic,
    // invalid ones in the dead-letter topic, never both, never twice.
    assert_each_key_once(data.iter().chain(&voice).chain(&dlq), &files);

    let invalid_generated = summary["invalid_rows"].as_u64().unwrap();
    assert!(invalid_generated > 0);
    assert_eq!(dlq.len() as u64, invalid_generated);

    // Valid rows: byte-exact JSON, built here independently of the encoder.
    let by_name: BTreeMap<&str, &Expected> = files.iter().map(|f| (f.name.as_str(), f)).collect();
    for (topic_records, kind) in [(&data, "data"), (&voice, "voice")] {
        for r in topic_records.iter() {
            let file = by_name[r.headers["cdr-source-file"].as_str()];
            assert_eq!(file.kind, kind);
            let row: u64 = r.headers["cdr-row"].parse().unwrap();
            assert_eq!(r.headers["cdr-id"], r.key);
            assert_eq!(r.key, format!("{}-{row}", &file.sha256[..16]));
            assert_eq!(r.headers["cdr-file-sha256"], file.sha256);
            let fields = &file.rows[&row];
            let value = String::from_utf8(r.value.clone()).unwrap();
            let ts_at = value.find("\"_ingestion_timestamp\":\"").unwrap() + 24;
            let ts = &value[ts_at..ts_at + 26];
            assert!(
                chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%dT%H:%M:%S%.6f").is_ok(),
                "{ts}"
            );
            let mut want = String::from("{");
            for (col, v) in file.header.iter().zip(fields) {
                want += &format!("\"{col}\":\"{}\",", String::from_utf8(v.clone()).unwrap());
            }
            want += &format!(
                "\"_source_file\":\"{}\",\"_ingestion_timestamp\":\"{ts}\",\"_record_type\":\"{kind}\"}}",
                file.name
            );
            assert_eq!(value, want);
            let time_col = if kind == "data" { "event_datetime" } else { "start_time" };
            let at = file.header.iter().position(|c| c == time_col).unwrap();
            assert_eq!(
                r.timestamp_ms,
                Some(event_ms(std::str::from_utf8(&fields[at]).unwrap()))
            );
        }
    }

    // Dead letters name the file, row, line, field and reason, and keep the raw line.
    for r in &dlq {
        let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
        let file = by_name[v["_source_file"].as_str().unwrap()];
        let row = v["_row"].as_u64().unwrap();
        assert_eq!(r.key, format!("{}-{row}", &file.sha256[..16]));
        assert!(v["_line"].as_u64().unwrap() > row);
        assert!(!v["_error"].as_str().unwrap().is_empty());
        assert!(v.get("_raw").is_some());
    }

    // An independent client agrees.
    assert_eq!(kcat_count(&topics.data), data.len());
    assert_eq!(kcat_count(&topics.voice), voice.len());
    assert_eq!(kcat_count(&topics.dlq), dlq.len());

    // A second pass ingests nothing again.
    let again = sftp_once(&topics, &remote, ledger.path(), &[]);
    assert!(again.status.success(), "{}", output_text(&again));
    assert_eq!(read_committed(&brokers(), &topics.data).len(), data.len());
}

/// Each `ingest started` line's file and whether its bytes came from the
/// read-ahead, in log order.
fn started_with_read_ahead(out: &std::process::Output) -> Vec<(String, bool)> {
    let field = |line: &str, name: &str| -> Option<String> {
        Some(
            line.split(&format!(" {name}="))
                .nth(1)?
                .split_whitespace()
                .next()?
                .to_string(),
        )
    };
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("ingest started"))
        .map(|l| (field(l, "file").unwrap(), field(l, "read_ahead").unwrap() == "true"))
        .collect()
}

/// The read_committed records of the data, voice and dead-letter topics.
fn read_all(topics: &Topics) -> Vec<Seen> {
    [&topics.data, &topics.voice, &topics.dlq]
        .iter()
        .flat_map(|t| read_committed(&brokers(), t))
        .collect()
}

/// Every key of every file is among `records` exactly once.
fn assert_each_key_once<'a>(records: impl IntoIterator<Item = &'a Seen>, files: &[Expected]) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for r in records {
        *seen.entry(r.key.as_str()).or_default() += 1;
    }
    let expected: BTreeSet<String> = files
        .iter()
        .flat_map(|f| f.rows.keys().map(move |i| format!("{}-{i}", &f.sha256[..16])))
        .collect();
    assert_eq!(seen.keys().map(|k| k.to_string()).collect::<BTreeSet<_>>(), expected);
    assert!(seen.values().all(|&n| n == 1), "a key landed more than once");
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn each_next_file_downloads_while_the_one_before_is_produced_and_every_row_lands_once() {
    let (local, remote) = sftp_subdir(&unique("ahead"));
    generate_files(
        &local,
        &["--files", "3", "--rows", "3000", "--seed", "12", "--bad-rate", "0.01"],
    );
    let files = expected_files(&local);
    let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();

    // Into topics of its own, from an empty ledger: every key lands once.
    let ingest = |flags: &[&str]| {
        let topics = Topics::new();
        let ledger = tempfile::tempdir().unwrap();
        let out = sftp_once(&topics, &remote, ledger.path(), flags);
        assert!(out.status.success(), "{}", output_text(&out));
        assert_each_key_once(&read_all(&topics), &files);
        (ledger, out)
    };

    let (ledger, out) = ingest(&["--chunk-rows", "1000", "--workers", "1", "--read-ahead", "true"]);
    let started = started_with_read_ahead(&out);
    // One slot, name order: every file after the first was downloaded ahead.
    assert_eq!(started.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), names);
    let flags: Vec<bool> = started.iter().map(|(_, a)| *a).collect();
    assert_eq!(flags, [false, true, true, true, true, true], "{}", output_text(&out));
    let left: Vec<_> = std::fs::read_dir(ledger.path().join("staging")).unwrap().collect();
    assert!(left.is_empty(), "staging files left behind: {left:?}");

    // Two slots (the default), one per kind: each kind's files after its
    // first were downloaded ahead by the slot that took them.
    let (_, out) = ingest(&["--chunk-rows", "1000", "--read-ahead", "true"]);
    for kind in ["cdr_data_", "cdr_voice_"] {
        let flags: Vec<bool> = started_with_read_ahead(&out)
            .into_iter()
            .filter(|(n, _)| n.starts_with(kind))
            .map(|(_, a)| a)
            .collect();
        assert_eq!(flags, [false, true, true], "{kind}: {}", output_text(&out));
    }

    // Off by default: the same files go the same way with no read-ahead.
    let (_, out) = ingest(&[]);
    assert!(
        started_with_read_ahead(&out).iter().all(|(_, a)| !a),
        "{}",
        output_text(&out)
    );
}
