//! The `json-typed` format end to end against the real broker: numbers are
//! JSON numbers, timestamps ISO-8601 with their zone (`--time-offset`),
//! text stays text; keys and exactly-once as with `json`.

mod common;

use common::*;
use serde_json::Value;

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn json_typed_values_carry_numbers_and_zoned_timestamps_exactly_once() {
    let topics = Topics::new();
    let (files, ledger) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate_files(files.path(), &["--files", "1", "--rows", "200", "--bad-rate", "0"]);
    let out = local_command(
        &topics,
        files.path(),
        ledger.path(),
        &["once", "--format", "json-typed", "--time-offset", "+02:00"],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let data = read_committed(&brokers(), &topics.data);
    let voice = read_committed(&brokers(), &topics.voice);
    assert_eq!((data.len(), voice.len()), (200, 200));
    assert_eq!(key_counts(&data).len(), 200, "no key twice");
    for r in &data {
        let v: Value = serde_json::from_slice(&r.value).unwrap();
        assert!(v["tower_id"].is_u64() && v["up_bytes"].is_u64(), "{v}");
        assert!(v["msisdn"].is_string(), "digits stay text (leading zeros): {v}");
        let at = v["event_datetime"].as_str().unwrap();
        assert!(at.contains('T') && at.ends_with("+02:00"), "{at}");
        let parsed = chrono::DateTime::parse_from_rfc3339(at).unwrap();
        assert_eq!(
            Some(parsed.timestamp_millis()),
            r.timestamp_ms,
            "the Kafka timestamp is the same instant"
        );
        assert!(v["_ingestion_timestamp"].as_str().unwrap().ends_with('Z'));
    }
    for r in &voice {
        let v: Value = serde_json::from_slice(&r.value).unwrap();
        assert!(v["call_duration_sec"].is_u64(), "{v}");
        assert!(v["start_time"].as_str().unwrap().ends_with("+02:00"), "{v}");
    }
}
