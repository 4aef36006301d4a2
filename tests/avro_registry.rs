//! The `avro` format against the real broker and a real schema registry
//! (Apicurio's Confluent API), checked with an independent decoder (Python
//! fastavro, fetching each writer schema by id): every row decodes to the
//! typed values of its CSV row, exactly once; a declared kind evolves by a
//! compatible change, and an incompatible one is refused at start naming
//! the field and the rule, with nothing produced.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use serde_json::{json, Value};

fn registry() -> String {
    env("SCHEMA_REGISTRY_URL")
}

/// Each data row of the CSV files in `dir` by its key: file name and the
/// header's columns with their values.
fn rows_by_key(dir: &Path) -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    use sha2::{Digest, Sha256};
    let mut rows = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".csv") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let prefix = format!("{:x}", Sha256::digest(&bytes))[..16].to_string();
        let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(&bytes[..]);
        let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_owned).collect();
        // Bad rows may be any bytes: read as bytes, compared only when valid.
        for (i, rec) in rdr.byte_records().enumerate() {
            let rec = rec.unwrap();
            let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
            let fields = header.iter().cloned().zip(rec.iter().map(text)).collect();
            rows.insert(format!("{prefix}-{}", i + 1), (name.clone(), fields));
        }
    }
    rows
}

/// `YYYY-MM-DD HH:MM:SS[.f]` written at UTC, as fastavro prints a
/// timestamp-micros: ISO-8601 with six fraction digits and `+00:00`.
fn iso_utc(text: &str) -> String {
    let t = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap();
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// The typed value fastavro gives for a CSV value of `column`.
fn typed(kind: &str, column: &str, text: &str) -> Value {
    match (kind, column) {
        (_, "tower_id" | "up_bytes" | "down_bytes" | "call_duration_sec" | "message_bytes") => {
            json!(text.parse::<i64>().unwrap())
        }
        (_, "event_datetime" | "start_time" | "sent_time") => json!(iso_utc(text)),
        _ => json!(text),
    }
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn avro_rows_decode_independently_to_the_typed_values_of_their_csv_rows_exactly_once() {
    let topics = Topics::new();
    let (files, ledger) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let summary = generate_files(files.path(), &["--files", "4", "--rows", "300", "--bad-rate", "0.05"]);
    let invalid = summary["invalid_rows"].as_u64().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = bin();
        cmd.args(args);
        topics.apply(&mut cmd, ledger.path());
        cmd.env("CDR_LOCAL_DIR", files.path())
            .env("CDR_FORMAT", "avro")
            .env("SCHEMA_REGISTRY_URL", registry());
        cmd.output().unwrap()
    };
    let out = run(&["once"]);
    assert!(out.status.success(), "{}", output_text(&out));

    let expected = rows_by_key(files.path());
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut decoded_rows = 0;
    for (topic, kind) in [(&topics.data, "data"), (&topics.voice, "voice")] {
        let records = read_committed(&brokers(), topic);
        let values: Vec<&[u8]> = records.iter().map(|r| &r.value[..]).collect();
        let decoded = avro_decode(&registry(), &values);
        assert_eq!(decoded.len(), records.len());
        let subject = format!("{topic}-value");
        let registered = registry_get(&registry(), &format!("/subjects/{subject}/versions/latest"));
        for (r, d) in records.iter().zip(&decoded) {
            *seen.entry(r.key.clone()).or_default() += 1;
            assert_eq!(d["schema_id"], registered["id"], "framed with the subject's schema id");
            let (file, fields) = &expected[&r.key];
            let record = d["record"].as_object().unwrap();
            for (column, text) in fields {
                assert_eq!(record[column], typed(kind, column, text), "{column} of {}: {d}", r.key);
            }
            assert_eq!(record["_source_file"], json!(file));
            assert_eq!(record["_record_type"], json!(kind));
            assert!(record["_ingestion_timestamp"].as_str().unwrap().ends_with("+00:00"));
            assert_eq!(
                record.len(),
                fields.len() + 3,
                "the declared columns and the metadata: {d}"
            );
            decoded_rows += 1;
        }
        let schema: Value = serde_json::from_str(registered["schema"].as_str().unwrap()).unwrap();
        let enum_field = if kind == "data" { "data_type" } else { "call_type" };
        let field = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == enum_field)
            .unwrap();
        assert_eq!(field["type"]["type"], "enum", "enums are Avro enums: {schema}");
    }
    assert_eq!(decoded_rows as u64, expected.len() as u64 - invalid);
    for r in read_committed(&brokers(), &topics.dlq) {
        let v: Value = serde_json::from_slice(&r.value).expect("dead letters stay JSON");
        assert!(v["_error"].is_string());
        *seen.entry(r.key).or_default() += 1;
    }
    assert!(seen.values().all(|&n| n == 1), "no key twice");
    assert_eq!(seen.len(), expected.len(), "every row once, valid or dead-lettered");

    let checked = run(&["check-config"]);
    let shown = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{}", output_text(&checked));
    assert!(
        shown.contains(&format!("-> {} as avro", topics.data))
            && shown.contains("schema registry: ok")
            && shown.contains(&format!("data: subject {}-value: registered, schema id", topics.data)),
        "check-config shows each kind's format and what the registry holds: {shown}"
    );

    let audit = run(&["audit"]);
    assert!(
        audit.status.success(),
        "audit reconciles Avro topics by key: {}",
        output_text(&audit)
    );
}

/// The sms kind's declaration, written as avro, with `extra` columns.
fn sms_config(dir: &Path, name: &str, topic: &str, extra: &str) -> String {
    let path = dir.join(name);
    let text = format!("format = \"avro\"\n{}", sms_declaration(topic, extra));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_compatible_change_is_version_2_with_both_decodable_and_an_incompatible_one_is_refused() {
    let topics = Topics::new();
    let sms_topic = unique("sms");
    let subject = format!("{sms_topic}-value");
    let (files, ledger, conf) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let v1 = sms_config(conf.path(), "v1.toml", &sms_topic, "");
    let v2 = sms_config(
        conf.path(),
        "v2.toml",
        &sms_topic,
        r#"{ name = "roaming", type = "text", optional = true },"#,
    );
    let v3 = sms_config(
        conf.path(),
        "v3.toml",
        &sms_topic,
        r#"{ name = "roaming", type = "text", optional = true }, { name = "plan", type = "text" },"#,
    );
    let run = |config: &str, args: &[&str]| {
        let mut cmd = bin();
        cmd.arg("--config").arg(config).args(args);
        topics.apply(&mut cmd, ledger.path());
        cmd.env("CDR_LOCAL_DIR", files.path())
            .env("SCHEMA_REGISTRY_URL", registry());
        cmd.output().unwrap()
    };
    let generate = |config: &str, start: &str| {
        let out = run(
            config,
            &[
                "generate",
                "--out",
                files.path().to_str().unwrap(),
                "--kinds",
                "sms",
                "--files",
                "1",
                "--rows",
                "40",
                "--bad-rate",
                "0",
                "--start",
                start,
            ],
        );
        assert!(out.status.success(), "{}", output_text(&out));
    };

    generate(&v1, "2024-05-01T00:00:00");
    let out = run(&v1, &["once"]);
    assert!(out.status.success(), "{}", output_text(&out));
    set_compatibility(&registry(), &subject, "BACKWARD");

    // A file of the old layout (no roaming column) and one of the new, both under v2.
    generate(&v1, "2024-05-02T00:00:00");
    generate(&v2, "2024-05-03T00:00:00");
    let out = run(&v2, &["once"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        registry_get(&registry(), &format!("/subjects/{subject}/versions")),
        json!([1, 2]),
        "the compatible change is version 2"
    );

    let records = read_committed(&brokers(), &sms_topic);
    let values: Vec<&[u8]> = records.iter().map(|r| &r.value[..]).collect();
    let decoded = avro_decode(&registry(), &values);
    let ids: std::collections::BTreeSet<u64> = decoded.iter().map(|d| d["schema_id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 2, "records of both versions: {ids:?}");
    let expected = rows_by_key(files.path());
    for (r, d) in records.iter().zip(&decoded) {
        let (file, fields) = &expected[&r.key];
        let record = &d["record"];
        let v1_record = record.get("roaming").is_none();
        assert_eq!(
            v1_record,
            file.contains("20240501"),
            "only the first file is of version 1: {d}"
        );
        if !v1_record {
            let want = fields
                .get("roaming")
                .filter(|v| !v.is_empty())
                .map_or(Value::Null, |v| json!(v));
            assert_eq!(record["roaming"], want, "{d}");
        }
        assert_eq!(record["msisdn"], json!(fields["msisdn"]));
    }
    let before = records.len();
    assert_eq!(key_counts(&records).values().max(), Some(&1));

    generate(&v2, "2024-05-04T00:00:00");
    let out = run(&v3, &["once"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&subject) && stderr.contains("BACKWARD") && stderr.contains("'plan'"),
        "the refusal names the subject, the rule and the field: {stderr}"
    );
    assert_eq!(read_committed(&brokers(), &sms_topic).len(), before, "nothing produced");
    assert_eq!(
        registry_get(&registry(), &format!("/subjects/{subject}/versions")),
        json!([1, 2]),
        "nothing registered"
    );
}
