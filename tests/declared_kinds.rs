//! A kind declared only in the config file (an SMS CDR), end to end against
//! the real broker: generated, ingested with its own topic, its bad rows
//! dead-lettered with their reasons, audited. No rebuild, no code.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{local_command, output_text, read_committed, unique, Topics};
use serde_json::Value;

/// The declaration as an operator would write it, with this test's topic.
fn config(dir: &Path, topic: &str) -> std::path::PathBuf {
    let path = dir.join("kinds.toml");
    let text = common::sms_declaration(topic, "");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_kind_declared_only_in_the_config_is_generated_ingested_dead_lettered_and_audited() {
    let topics = Topics::new();
    let sms_topic = unique("sms");
    let (files, ledger, conf) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let config = config(conf.path(), &sms_topic);
    let config = config.to_str().unwrap();

    let generated = local_command(
        &topics,
        files.path(),
        ledger.path(),
        &[
            "--config",
            config,
            "generate",
            "--out",
            files.path().to_str().unwrap(),
            "--kinds",
            "sms",
            "--files",
            "3",
            "--rows",
            "200",
            "--bad-rate",
            "0.1",
        ],
    );
    assert!(generated.status.success(), "{}", output_text(&generated));
    let summary: Value = serde_json::from_slice(&generated.stdout).unwrap();
    let invalid = summary["invalid_rows"].as_u64().unwrap();
    assert!(invalid > 0, "{summary}");
    assert_eq!(summary["files"][0]["kind"], "sms");
    assert!(summary["files"][0]["name"].as_str().unwrap().starts_with("cdr_sms_"));

    let checked = local_command(
        &topics,
        files.path(),
        ledger.path(),
        &["--config", config, "check-config"],
    );
    let shown = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{}", output_text(&checked));
    assert!(
        shown.contains(&format!(
            "sms (cdr_sms_*.csv cdr_sms_*.csv.gz) -> {sms_topic} as json, dead letters -> {}",
            topics.dlq
        )) && shown.contains("sms_type                 enum mo|mt"),
        "check-config prints the declared kind: {shown}"
    );

    let out = local_command(&topics, files.path(), ledger.path(), &["--config", config, "once"]);
    assert!(out.status.success(), "{}", output_text(&out));

    let valid = read_committed(&common::brokers(), &sms_topic);
    assert_eq!(valid.len() as u64, 600 - invalid, "every valid row once");
    let mut keys = BTreeMap::new();
    for r in &valid {
        *keys.entry(r.key.clone()).or_insert(0) += 1;
        let v: Value = serde_json::from_slice(&r.value).unwrap();
        let text = String::from_utf8_lossy(&r.value);
        let at: Vec<usize> = [
            "msisdn",
            "dest_nr",
            "tower_id",
            "sms_type",
            "message_bytes",
            "sent_time",
            "_source_file",
            "_ingestion_timestamp",
            "_record_type",
        ]
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} in {text}"))
        })
        .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "declared columns in order, then the metadata: {text}"
        );
        assert_eq!(v.as_object().unwrap().len(), 9, "{text}");
        assert_eq!(v["_record_type"], "sms");
        assert!(["mo", "mt"].contains(&v["sms_type"].as_str().unwrap()));
        let fraction = v["sent_time"].as_str().unwrap().split('.').nth(1).unwrap_or("");
        assert!(fraction.len() <= 3, "precision 3: {v}");
    }
    assert!(keys.values().all(|&n| n == 1), "no key twice");

    let dead = read_committed(&common::brokers(), &topics.dlq);
    assert_eq!(dead.len() as u64, invalid, "every bad row dead-lettered once");
    for r in &dead {
        let v: Value = serde_json::from_slice(&r.value).unwrap();
        assert_eq!(v["_record_type"], "sms");
        let error = v["_error"].as_str().unwrap();
        assert!(
            error.starts_with("field \"") || error.contains("fields") || error.contains("UTF-8"),
            "a reason naming the field or the shape: {error}"
        );
    }
    assert!(
        dead.iter().any(
            |r| String::from_utf8_lossy(&r.value).contains("expected an unsigned 64-bit integer")
                || String::from_utf8_lossy(&r.value).contains("expected 6 to 15 digits")
        ),
        "a value breaking its declared type is named with the type's reason"
    );
    assert!(read_committed(&common::brokers(), &topics.data).is_empty());

    let audit = local_command(&topics, files.path(), ledger.path(), &["--config", config, "audit"]);
    assert!(audit.status.success(), "{}", output_text(&audit));
}

#[test]
fn a_bad_declaration_stops_check_config_naming_the_kind_and_the_column() {
    let conf = tempfile::tempdir().unwrap();
    let path = conf.path().join("bad.toml");
    std::fs::write(
        &path,
        "[kind.sms]\nfiles = [\"cdr_sms_*.csv\"]\ntopic = \"cdr-sms\"\ntime-column = \"sent_time\"\n\
         columns = [{ name = \"sent_time\", type = \"timestamp\" }, { name = \"n\", type = \"number\" }]\n",
    )
    .unwrap();
    let out = common::bin()
        .args([
            "--config",
            path.to_str().unwrap(),
            "generate",
            "--out",
            "x",
            "--kinds",
            "sms",
            "--files",
            "1",
        ])
        .args(["--rows", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"kind "sms": column "n": unknown type "number""#),
        "{stderr}"
    );
}
