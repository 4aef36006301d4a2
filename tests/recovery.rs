//! Ledger loss, changed files, duplicate content and bad files, against the
//! real broker (local-directory source, so each case is quick).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use common::*;

fn once(topics: &Topics, dir: &Path, ledger: &Path, extra: &[&str]) -> Output {
    local_command(topics, dir, ledger, &[&["once"], extra].concat())
}

fn status_json(ledger: &Path) -> serde_json::Value {
    let out = bin()
        .arg("status")
        .arg("--json")
        .env("CDR_LEDGER_DIR", ledger)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn keys(topic: &str) -> Vec<String> {
    read_committed(&brokers(), topic).into_iter().map(|r| r.key).collect()
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn deleted_ledger_is_rebuilt_from_the_checkpoint_topic_and_nothing_is_ingested_twice() {
    let topics = Topics::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    generate_files(
        dir.path(),
        &["--files", "2", "--rows", "400", "--seed", "3", "--bad-rate", "0.02"],
    );
    let first = once(&topics, dir.path(), ledger.path(), &["--chunk-rows", "100"]);
    assert!(first.status.success(), "{}", output_text(&first));
    let before = (
        keys(&topics.data).len(),
        keys(&topics.voice).len(),
        keys(&topics.dlq).len(),
    );
    assert!(before.0 > 0 && before.1 > 0);

    std::fs::remove_dir_all(ledger.path()).unwrap();
    let second = once(&topics, dir.path(), ledger.path(), &[]);
    assert!(second.status.success(), "{}", output_text(&second));
    let after = (
        keys(&topics.data).len(),
        keys(&topics.voice).len(),
        keys(&topics.dlq).len(),
    );
    assert_eq!(before, after);
    assert_eq!(status_json(ledger.path())["counts"]["committed"], 4);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn changed_content_under_an_ingested_name_is_a_conflict_or_a_new_version() {
    let topics = Topics::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    generate_files(
        dir.path(),
        &["--files", "1", "--rows", "50", "--seed", "5", "--bad-rate", "0.0"],
    );
    let out = once(&topics, dir.path(), ledger.path(), &["--kafka-config", "linger.ms=5"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let original: BTreeSet<String> = keys(&topics.data).into_iter().collect();
    assert_eq!(original.len(), 50);

    // Same name, other bytes: a digit of the first row's MSISDN changed
    // (bytes already ingested: not a file that only grew), and a row appended.
    let data_file = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("cdr_data_"))
        .unwrap();
    let mut bytes = std::fs::read(&data_file).unwrap();
    let digit = bytes.iter().position(|b| *b == b'\n').unwrap() + 3;
    assert!(bytes[digit].is_ascii_digit());
    bytes[digit] = if bytes[digit] == b'9' { b'8' } else { b'9' };
    bytes.extend_from_slice(b"27831234567,17,100,200,text,10.0.0.1,http://example.com,2024-01-01 00:00:01\n");
    std::fs::write(&data_file, &bytes).unwrap();

    // A conflict needs an operator: `once` says so with exit 1.
    let out = once(&topics, dir.path(), ledger.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("conflicts 1"),
        "{}",
        output_text(&out)
    );
    assert_eq!(keys(&topics.data).len(), 50, "a conflicting file must not be ingested");
    let status = status_json(ledger.path());
    assert_eq!(status["counts"]["conflict"], 1);
    assert!(status["problems"][0]["error"].as_str().unwrap().contains("changed"));

    let out = once(&topics, dir.path(), ledger.path(), &["--on-changed", "reingest"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let all = keys(&topics.data);
    assert_eq!(all.len(), 50 + 51);
    let new: BTreeSet<String> = all.into_iter().filter(|k| !original.contains(k)).collect();
    assert_eq!(new.len(), 51, "the new version has new keys, each once");
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn same_bytes_under_another_name_are_recorded_as_duplicate_and_not_ingested() {
    let topics = Topics::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    generate_files(
        dir.path(),
        &["--files", "1", "--rows", "30", "--seed", "9", "--bad-rate", "0.0"],
    );
    let out = once(&topics, dir.path(), ledger.path(), &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    let voice = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("cdr_voice_"))
        .unwrap();
    std::fs::copy(&voice, dir.path().join("cdr_voice_20991231_235959.csv")).unwrap();
    let out = once(&topics, dir.path(), ledger.path(), &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(keys(&topics.voice).len(), 30);
    let status = status_json(ledger.path());
    assert_eq!(status["counts"]["duplicate"], 1);
    let dup = &status["problems"][0];
    assert_eq!(
        dup["duplicate_of"].as_str().unwrap(),
        voice.file_name().unwrap().to_string_lossy()
    );
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn bad_files_fail_with_the_reason_and_nothing_of_them_is_committed() {
    let topics = Topics::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    // A header without up_bytes.
    std::fs::write(
        dir.path().join("cdr_data_20240101_000000.csv"),
        "msisdn,tower_id,down_bytes,data_type,ip_address,website_url,event_datetime\n27831234567,1,2,text,10.0.0.1,http://x,2024-01-01 00:00:00\n",
    )
    .unwrap();
    // A gzip stream cut short, after enough rows for several chunks.
    let mut csv = String::from("msisdn,tower_id,call_type,dest_nr,call_duration_sec,start_time\n");
    for i in 0..5000 {
        csv += &format!(
            "2783123{i:04},1,voice,2783765{i:04},{},2024-01-01 00:00:00.{i:06}\n",
            i % 600
        );
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, csv.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(
        dir.path().join("cdr_voice_20240101_000000.csv.gz"),
        &gz[..gz.len() * 2 / 3],
    )
    .unwrap();

    let out = once(&topics, dir.path(), ledger.path(), &["--chunk-rows", "500"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cdr_data_20240101_000000.csv"), "{stderr}");
    assert!(stderr.contains("up_bytes"), "the missing column is named: {stderr}");
    assert!(keys(&topics.data).is_empty() && keys(&topics.voice).is_empty());
    let status = status_json(ledger.path());
    assert_eq!(status["counts"]["failed"], 2);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn rows_dated_beyond_what_the_broker_accepts_go_to_the_dead_letter_topic() {
    let topics = Topics::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cdr_voice_20240101_000000.csv"),
        "msisdn,tower_id,call_type,dest_nr,call_duration_sec,start_time\n\
         27831234567,1,voice,27837654321,60,2024-01-01 00:00:00\n\
         27831234567,1,voice,27837654321,60,2099-01-01 00:00:00\n",
    )
    .unwrap();
    let out = once(&topics, dir.path(), ledger.path(), &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(keys(&topics.voice).len(), 1);
    let dlq = read_committed(&brokers(), &topics.dlq);
    assert_eq!(dlq.len(), 1);
    let v: serde_json::Value = serde_json::from_slice(&dlq[0].value).unwrap();
    assert!(v["_error"].as_str().unwrap().contains("start_time"), "{v}");
}

/// Overwrites 2 KiB every 8 KiB from offset 8192, as a failing disk might.
fn damage_pages(ledger_file: &Path) {
    let mut bytes = std::fs::read(ledger_file).unwrap();
    let mut at = 8192;
    while at < bytes.len() {
        let end = (at + 2048).min(bytes.len());
        bytes[at..end].fill(0xAB);
        at += 8192;
    }
    std::fs::write(ledger_file, bytes).unwrap();
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_damaged_ledger_never_crashes_a_command_and_is_healed_with_every_row_still_once() {
    let topics = Topics::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    generate_files(
        dir.path(),
        &["--files", "20", "--rows", "200", "--seed", "8", "--bad-rate", "0.02"],
    );
    let first = once(&topics, dir.path(), ledger.path(), &[]);
    assert!(first.status.success(), "{}", output_text(&first));
    let ledger_file = ledger.path().join("ledger.redb");
    damage_pages(&ledger_file);

    // The readers say it is damaged and what a writer does; no panic.
    for args in [&["status"][..], &["audit"][..]] {
        let out = local_command(&topics, dir.path(), ledger.path(), args);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(
            text.contains("is damaged") && text.contains("moves a damaged ledger aside"),
            "{text}"
        );
        assert!(!text.contains("panicked"), "{text}");
    }

    // A writer moves it aside, rebuilds from the checkpoint topic and ingests
    // the new files only.
    generate_files(
        dir.path(),
        &[
            "--files",
            "1",
            "--rows",
            "100",
            "--seed",
            "9",
            "--start",
            "2025-01-01T00:00:00",
        ],
    );
    let healed = once(&topics, dir.path(), ledger.path(), &[]);
    let text = output_text(&healed);
    assert_eq!(healed.status.code(), Some(0), "{text}");
    assert!(text.contains("the ledger was damaged: moved aside"), "{text}");
    assert!(
        text.contains("committed 2 file(s)"),
        "only the new files are ingested: {text}"
    );
    let kept: Vec<_> = std::fs::read_dir(ledger.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ledger.redb.damaged-"))
        .collect();
    assert_eq!(kept.len(), 1, "the damaged file is kept for inspection");
    let mut all = Vec::new();
    for t in [&topics.data, &topics.voice, &topics.dlq] {
        all.extend(keys(t));
    }
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "every row exactly once");
    assert_eq!(unique.len(), expected_keys(dir.path()).len());
    let out = local_command(&topics, dir.path(), ledger.path(), &["audit"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_file_name_with_a_newline_cannot_forge_a_log_or_status_line() {
    let topics = Topics::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    generate_files(dir.path(), &["--files", "1", "--rows", "10", "--kinds", "data"]);
    let generated = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    let forged = "cdr_data_1\n2026-12-04T18:00:00.000000Z ERROR cdr_to_redpanda: FORGED LINE\r.csv";
    std::fs::rename(&generated, dir.path().join(forged)).unwrap();
    let out = once(&topics, dir.path(), ledger.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(stderr.contains("ingest committed"), "{stderr}");
    assert!(
        stderr
            .lines()
            .all(|l| !l.starts_with("2026-12-04T18:00:00.000000Z ERROR")),
        "a forged line: {stderr}"
    );
    assert!(
        stderr.contains("cdr_data_1\\n2026-12-04T18:00:00.000000Z ERROR cdr_to_redpanda: FORGED LINE\\r.csv"),
        "{stderr}"
    );
    let status = bin()
        .arg("status")
        .env("CDR_LEDGER_DIR", ledger.path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table
            .lines()
            .all(|l| !l.contains("FORGED") || l.contains("cdr_data_1\\n")),
        "{table}"
    );
    assert!(!table.contains('\r'), "{table}");
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn once_takes_its_workers_from_the_config_file_and_lands_every_row_once() {
    let topics = Topics::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    generate_files(dir.path(), &["--files", "3", "--rows", "300", "--seed", "12"]);
    let config = ledger.path().join("cdr.toml");
    std::fs::write(&config, "workers = 2\n").unwrap();
    let out = local_command(
        &topics,
        dir.path(),
        ledger.path(),
        &["--config", config.to_str().unwrap(), "once"],
    );
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("slots=2"), "two slots, as the file says: {text}");
    assert!(text.contains("committed 6 file(s)"), "{text}");
    let mut all = Vec::new();
    for t in [&topics.data, &topics.voice, &topics.dlq] {
        all.extend(keys(t));
    }
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(
        (unique.len(), all.len()),
        (expected_keys(dir.path()).len(), unique.len())
    );
}
