//! `audit` against the real broker (and the real sshd for `--rehash`): a
//! clean ingest audits clean with the generator's numbers, and every kind of
//! damage done from outside the service is found and named.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

fn generate(dir: &Path, files: u32, rows: u64, seed: u64, bad_rate: f64) -> Value {
    let out = bin()
        .args(["generate", "--out"])
        .arg(dir)
        .args(["--files", &files.to_string(), "--rows", &rows.to_string()])
        .args(["--seed", &seed.to_string(), "--bad-rate", &bad_rate.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The service binary with the test's topics, ledger and a local source dir.
fn cmd(topics: &Topics, dir: &Path, ledger: &Path, args: &[&str]) -> Command {
    let mut c = bin();
    c.args(args);
    topics.apply(&mut c, ledger);
    c.env("CDR_LOCAL_DIR", dir);
    c
}

fn ingest(topics: &Topics, dir: &Path, ledger: &Path) {
    let out = cmd(topics, dir, ledger, &["once", "--chunk-rows", "150"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
}

fn audit_json(c: &mut Command) -> (Output, Value) {
    let out = c.arg("--json").output().unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", output_text(&out)));
    (out, report)
}

fn findings_of<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

/// Produces one record from outside the service, as an operator's stray
/// script would: plain kcat, no transaction.
fn kcat_produce(topic: &str, key: &str, value: &str, headers: &[&str]) {
    let mut c = Command::new("kcat");
    c.args(["-P", "-b", &brokers(), "-t", topic, "-k", key]);
    for h in headers {
        c.args(["-H", h]);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat is installed by scripts/bootstrap.sh");
    child.stdin.take().unwrap().write_all(value.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
}

fn file_named<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap()
}

fn first_key_of(topic: &str, file: &str) -> String {
    read_committed(&brokers(), topic)
        .into_iter()
        .find(|r| r.headers["cdr-source-file"] == file)
        .unwrap()
        .key
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn clean_ingest_with_bad_rows_audits_clean_with_the_ledger_and_generator_counts() {
    let topics = Topics::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 2, 400, 21, 0.05);
    ingest(&topics, dir.path(), ledger.path());

    let (out, report) = audit_json(&mut cmd(&topics, dir.path(), ledger.path(), &["audit"]));
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(report["summary"]["ok"], true);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0);
    let files = generated["files"].as_array().unwrap();
    assert_eq!(report["summary"]["files"], files.len());
    let mut invalid_total = 0;
    for g in files {
        let f = file_named(&report, g["name"].as_str().unwrap());
        let (rows, invalid) = (g["rows"].as_u64().unwrap(), g["invalid_rows"].as_u64().unwrap());
        invalid_total += invalid;
        assert_eq!(f["ledger"]["rows"], rows);
        assert_eq!(f["ledger"]["invalid"], invalid);
        assert_eq!(f["topics"]["valid"], rows - invalid);
        assert_eq!(f["topics"]["dlq"], invalid);
        assert_eq!(f["topics"]["distinct_rows"], rows);
        assert_eq!(f["topics"]["missing_rows"], 0);
        assert_eq!(f["checkpoint"]["counts"]["rows"], rows);
        assert_eq!(f["checkpoint"]["done"], true);
    }
    assert!(invalid_total > 0, "the generator mixed bad rows in");
    assert_eq!(report["summary"]["dlq_records"], invalid_total);
    assert_eq!(report["summary"]["valid_records"], 4 * 400 - invalid_total);

    // The human report starts with the verdict.
    let out = cmd(&topics, dir.path(), ledger.path(), &["audit"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("audit OK: 4 file(s)"), "{text}");
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_key_produced_again_from_outside_is_named_as_a_duplicate_of_its_file() {
    let topics = Topics::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    generate(dir.path(), 1, 200, 22, 0.02);
    ingest(&topics, dir.path(), ledger.path());
    let victim = "cdr_data_20240101_000000.csv";
    let key = first_key_of(&topics.data, victim);
    kcat_produce(&topics.data, &key, "{\"stray\":true}", &[]);

    let out = cmd(&topics, dir.path(), ledger.path(), &["audit"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("audit FAILED"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("duplicate"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(victim) && line.contains(&key), "{line}");

    let (_, report) = audit_json(&mut cmd(&topics, dir.path(), ledger.path(), &["audit"]));
    let dups = findings_of(&report, "duplicate_keys");
    assert_eq!(dups.len(), 1);
    assert_eq!(dups[0]["file"], victim);
    assert_eq!(dups[0]["count"], 1);
    assert_eq!(dups[0]["keys"][0], key.as_str());
    // One extra record in the data topic also breaks the count.
    assert_eq!(findings_of(&report, "count_mismatch")[0]["file"], victim);

    // Scoped to the other file, the audit is clean.
    let out = cmd(
        &topics,
        dir.path(),
        ledger.path(),
        &["audit", "--file", "cdr_voice_20240101_000500.csv"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_record_whose_key_names_no_known_file_is_reported() {
    let topics = Topics::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    generate(dir.path(), 1, 100, 23, 0.0);
    ingest(&topics, dir.path(), ledger.path());
    kcat_produce(
        &topics.dlq,
        "deadbeefdeadbeef-7",
        "{}",
        &["cdr-source-file=cdr_data_19990101_000000.csv"],
    );

    let (out, report) = audit_json(&mut cmd(&topics, dir.path(), ledger.path(), &["audit"]));
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let unknown = findings_of(&report, "unknown_prefix");
    assert_eq!(unknown.len(), 1, "{report:#}");
    assert_eq!(unknown[0]["prefix"], "deadbeefdeadbeef");
    assert_eq!(unknown[0]["records"], 1);
    assert_eq!(unknown[0]["source_file"], "cdr_data_19990101_000000.csv");
    assert_eq!(
        report["findings"].as_array().unwrap().len(),
        1,
        "the ingested files still agree"
    );
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn records_deleted_from_the_topic_are_reported_as_missing_rows() {
    let topics = Topics::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    generate(dir.path(), 1, 300, 24, 0.0);
    ingest(&topics, dir.path(), ledger.path());
    let victim = "cdr_voice_20240101_000500.csv";
    let lost = read_committed(&brokers(), &topics.voice)
        .into_iter()
        .filter(|r| r.partition == 0)
        .count();
    assert!(lost > 0);

    // What retention does: drop partition 0 of the voice topic up to its end.
    let config = {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers());
        c
    };
    let probe: BaseConsumer = config.create().unwrap();
    let (_, high) = probe
        .fetch_watermarks(&topics.voice, 0, Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topics.voice, 0, Offset::Offset(high))
        .unwrap();
    let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deleted = rt.block_on(admin.delete_records(&tpl, &AdminOptions::new())).unwrap();
    assert!(deleted.elements().iter().all(|e| e.error().is_ok()));

    let (out, report) = audit_json(&mut cmd(&topics, dir.path(), ledger.path(), &["audit"]));
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let missing = findings_of(&report, "missing_rows");
    assert_eq!(missing.len(), 1, "{report:#}");
    assert_eq!(missing[0]["file"], victim);
    assert_eq!(missing[0]["count"], lost as u64);
    assert_eq!(file_named(&report, victim)["topics"]["missing_rows"], lost as u64);
    assert_eq!(file_named(&report, "cdr_data_20240101_000000.csv")["findings"], 0);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn bytes_changed_on_sftp_after_ingest_are_reported_by_rehash() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("audit-rehash"));
    let ledger = tempfile::tempdir().unwrap();
    generate(&local, 1, 100, 25, 0.02);
    let sftp = |args: &[&str]| {
        let mut c = bin();
        c.args(args);
        topics.apply(&mut c, ledger.path());
        sftp_env(&mut c, &remote);
        c.env_remove("CDR_LOCAL_DIR");
        c
    };
    let out = sftp(&["once"]).output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let (out, report) = audit_json(&mut sftp(&["audit", "--rehash"]));
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(
        file_named(&report, "cdr_data_20240101_000000.csv")["rehash"]["result"],
        "same"
    );

    let victim = local.join("cdr_data_20240101_000000.csv");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes.extend_from_slice(b"27831234567,17,100,200,text,10.0.0.1,http://example.com,2024-01-01 00:00:01\n");
    std::fs::write(&victim, &bytes).unwrap();

    let (out, report) = audit_json(&mut sftp(&["audit", "--rehash"]));
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let changed = findings_of(&report, "sha_mismatch");
    assert_eq!(changed.len(), 1, "{report:#}");
    assert_eq!(changed[0]["file"], "cdr_data_20240101_000000.csv");
    assert_eq!(
        changed[0]["ledger"],
        file_named(&report, "cdr_data_20240101_000000.csv")["sha256"]
    );
    // Without --rehash the topics alone still agree with the ledger.
    let out = sftp(&["audit"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn an_unreachable_broker_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    let topics = Topics::new();
    generate(dir.path(), 1, 10, 26, 0.0);
    // A ledger to read, made without a broker: status never needs one.
    drop(cdr_state::Ledger::open(ledger.path()).unwrap());
    let out = cmd(&topics, dir.path(), ledger.path(), &["audit", "--timeout-seconds", "2"])
        .env("KAFKA_BROKERS", "127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
}
