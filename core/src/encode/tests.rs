use super::*;
use crate::parse::{CdrReader, Row, Validation};
use chrono::TimeZone;
use serde_json::{json, Map, Value};

const DATA_HEADER: &str = "msisdn,tower_id,up_bytes,down_bytes,data_type,ip_address,website_url,event_datetime";
const DATA_ROW: &str =
    "9724515726732,1800,787119,662662,application,221.128.139.195,http://example.com,2024-01-01 01:01:15.291148";
const TS: &str = "2025-12-06T20:55:06.123456";

fn sha() -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(17).wrapping_add(0xa0);
    }
    s
}

/// Encodes every row of `csv` (valid rows as values, invalid ones as
/// dead-letter values) and returns them with their keys.
fn encode_all(kind: RecordKind, file: &str, csv: &[u8]) -> Vec<(String, Vec<u8>)> {
    let ctx = FileContext::new(file, kind.clone(), &sha());
    let mut r = CdrReader::new(kind, file, csv, &Validation::default()).unwrap();
    let mut out = Vec::new();
    let (mut key, mut value) = (Vec::new(), Vec::new());
    while let Some(row) = r.next_row().unwrap() {
        write_key(&ctx, row.index(), &mut key);
        match row {
            Row::Valid(v) => write_value(&ctx, &v, TS, &mut value).unwrap(),
            Row::Invalid(i) => {
                let hv = [&key[..], ctx.file_name().as_bytes(), b"", ctx.sha256_hex().as_bytes()];
                encode_invalid_row(&ctx, &i, "dlq", usize::MAX, &hv, TS, &mut value).unwrap()
            }
        }
        out.push((String::from_utf8(key.clone()).unwrap(), value.clone()));
    }
    out
}

fn parse_map(value: &[u8]) -> Vec<(String, Value)> {
    // serde_json's Map keeps sorted keys without preserve_order, so the order
    // is checked on the raw text separately; here every key must be unique.
    let v: Map<String, Value> = serde_json::from_slice(value).unwrap();
    let keys_in_text = String::from_utf8(value.to_vec()).unwrap().matches("\":").count();
    assert!(keys_in_text >= v.len());
    v.into_iter().collect()
}

#[test]
fn the_contract_example_encodes_byte_for_byte() {
    let csv = format!("{DATA_HEADER}\n{DATA_ROW}\n");
    let got = encode_all(crate::schema::data(), "cdr_data_20240102_224000.csv", csv.as_bytes());
    let expected = r#"{"msisdn":"9724515726732","tower_id":"1800","up_bytes":"787119","down_bytes":"662662","data_type":"application","ip_address":"221.128.139.195","website_url":"http://example.com","event_datetime":"2024-01-01 01:01:15.291148","_source_file":"cdr_data_20240102_224000.csv","_ingestion_timestamp":"2025-12-06T20:55:06.123456","_record_type":"data"}"#;
    assert_eq!(got.len(), 1);
    assert_eq!(String::from_utf8(got[0].1.clone()).unwrap(), expected);
    assert_eq!(got[0].0, "a0b1c2d3e4f50617-1");
}

#[test]
fn voice_values_carry_every_field_and_the_metadata() {
    let csv = "msisdn,tower_id,call_type,dest_nr,call_duration_sec,start_time\n5837025539272,724,voice,1693098090050,262,2024-01-01 01:01:29.707413\n";
    let got = encode_all(crate::schema::voice(), "cdr_voice_1.csv", csv.as_bytes());
    let value: Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(
        value,
        json!({
            "msisdn": "5837025539272", "tower_id": "724", "call_type": "voice",
            "dest_nr": "1693098090050", "call_duration_sec": "262",
            "start_time": "2024-01-01 01:01:29.707413",
            "_source_file": "cdr_voice_1.csv", "_ingestion_timestamp": TS, "_record_type": "voice"
        })
    );
}

#[test]
fn escaped_values_and_extra_columns_round_trip_through_serde_json() {
    let header =
        "note,msisdn,tower_id,up_bytes,down_bytes,data_type,ip_address,website_url,event_datetime,\"we\"\"ird\"";
    let url = "http://x/?q=\"a\",b\\c\n\tü😀\u{7f}";
    let quoted = format!("\"{}\"", url.replace('"', "\"\""));
    let row = format!(
        "n1,{},{quoted},2024-01-01 01:01:15.291148,w",
        &DATA_ROW[..DATA_ROW.find(",http").unwrap()]
    );
    let csv = format!("{header}\n{row}\n");
    let got = encode_all(crate::schema::data(), "cdr_data_\"odd\"\\é.csv", csv.as_bytes());
    let text = String::from_utf8(got[0].1.clone()).unwrap();
    assert!(text.is_ascii(), "{text}");
    let order: Vec<usize> = [
        "\"msisdn\"",
        "\"event_datetime\"",
        "\"note\"",
        "\"we\\\"ird\"",
        "\"_source_file\"",
        "\"_ingestion_timestamp\"",
        "\"_record_type\"",
    ]
    .iter()
    .map(|k| text.find(k).unwrap_or_else(|| panic!("{k} in {text}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    let map = parse_map(&got[0].1);
    let get = |k: &str| map.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("website_url"), json!(url));
    assert_eq!(get("note"), json!("n1"));
    assert_eq!(get("we\"ird"), json!("w"));
    assert_eq!(get("_source_file"), json!("cdr_data_\"odd\"\\é.csv"));
    assert_eq!(map.len(), 8 + 2 + 3);
}

#[test]
fn keys_are_the_hash_prefix_and_the_row_index() {
    let ctx = FileContext::new("f", crate::schema::data(), &sha());
    assert_eq!(ctx.sha256_hex().len(), 64);
    assert!(ctx.sha256_hex().starts_with(ctx.key_prefix()));
    let mut key = b"stale".to_vec();
    write_key(&ctx, 1_234_567, &mut key);
    assert_eq!(key, b"a0b1c2d3e4f50617-1234567");
}

#[test]
fn ingestion_timestamps_always_have_six_fraction_digits() {
    let t = Utc.with_ymd_and_hms(2025, 12, 6, 20, 55, 6).unwrap();
    assert_eq!(ingestion_timestamp(t), "2025-12-06T20:55:06.000000");
    let t = t + chrono::Duration::microseconds(123_456) + chrono::Duration::nanoseconds(789);
    assert_eq!(ingestion_timestamp(t), "2025-12-06T20:55:06.123456");
}

#[test]
fn dead_letter_values_have_position_error_and_raw_line() {
    let csv = format!("{DATA_HEADER}\n{}\r\n", DATA_ROW.replace("787119", "12x4"));
    let got = encode_all(crate::schema::data(), "cdr_data_x.csv", csv.as_bytes());
    let expected = format!(
        r#"{{"_source_file":"cdr_data_x.csv","_row":1,"_line":2,"_record_type":"data","_error":"field \"up_bytes\": expected an unsigned 64-bit integer, found \"12x4\"","_raw":"{}","_ingestion_timestamp":"{TS}"}}"#,
        DATA_ROW.replace("787119", "12x4")
    );
    assert_eq!(String::from_utf8(got[0].1.clone()).unwrap(), expected);
    assert_eq!(got[0].0, "a0b1c2d3e4f50617-1");
}

#[test]
fn dead_letter_values_of_non_utf8_rows_keep_the_exact_bytes_in_base64() {
    let mut csv = format!("{DATA_HEADER}\n\"a\nb\",+-placeholder\n").into_bytes();
    let at = csv.iter().position(|&b| b == b'+').unwrap();
    csv[at] = 0xff;
    csv[at + 1] = 0xfe;
    let raw: Vec<u8> = csv[DATA_HEADER.len() + 1..csv.len() - 1].to_vec();
    let got = encode_all(crate::schema::data(), "d.csv", &csv);
    let v: Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(v["_row"], json!(1));
    assert_eq!(v["_line"], json!(2));
    assert_eq!(v["_error"], json!("expected 8 fields as in the header, found 2"));
    assert_eq!(v["_raw"], json!(String::from_utf8_lossy(&raw)));
    let b64 = v["_raw_base64"].as_str().unwrap();
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(b64).unwrap(), raw);
    assert!(String::from_utf8(got[0].1.clone())
        .unwrap()
        .contains("\"_raw_base64\":\""));
    // Valid UTF-8 rows have no base64 copy.
    let csv = format!("{DATA_HEADER}\nbad\n");
    let got = encode_all(crate::schema::data(), "d.csv", csv.as_bytes());
    let v: Value = serde_json::from_slice(&got[0].1).unwrap();
    assert!(v.get("_raw_base64").is_none());
    assert_eq!(v.as_object().unwrap().len(), 7);
}

#[test]
fn output_buffers_are_replaced_not_appended() {
    let csv = format!("{DATA_HEADER}\n{DATA_ROW}\n{DATA_ROW}\n");
    let got = encode_all(crate::schema::data(), "f", csv.as_bytes());
    assert_eq!(got[0].1, got[1].1);
}

#[test]
fn long_file_names_and_values_encode_intact() {
    let name = format!("cdr_data_{}.csv", "n".repeat(300));
    let url = format!("http://x/{}é\"{}", "a".repeat(5000), "b".repeat(40));
    let row = DATA_ROW.replace("http://example.com", &format!("\"{}\"", url.replace('"', "\"\"")));
    let csv = format!("{DATA_HEADER}\n{row}\n{DATA_ROW}\n");
    let got = encode_all(crate::schema::data(), &name, csv.as_bytes());
    for (i, expected_url) in [url.as_str(), "http://example.com"].into_iter().enumerate() {
        let v: Value = serde_json::from_slice(&got[i].1).unwrap();
        assert_eq!(v["website_url"], json!(expected_url));
        assert_eq!(v["_source_file"], json!(name));
        assert_eq!(v["event_datetime"], json!("2024-01-01 01:01:15.291148"));
        assert_eq!(v["_ingestion_timestamp"], json!(TS));
    }
}

#[test]
fn an_unusual_ingestion_timestamp_is_still_escaped() {
    let csv = format!("{DATA_HEADER}\n{DATA_ROW}\n");
    let ctx = FileContext::new("f", crate::schema::data(), &sha());
    let mut r = CdrReader::new(crate::schema::data(), "f", csv.as_bytes(), &Validation::default()).unwrap();
    let Some(Row::Valid(row)) = r.next_row().unwrap() else {
        panic!()
    };
    let mut out = Vec::new();
    for ts in ["2025-12-06T20:55:06.12345\"", "now", ""] {
        write_value(&ctx, &row, ts, &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["_ingestion_timestamp"], json!(ts));
    }
}

fn data_context() -> FileContext {
    FileContext::new("cdr_data_20240101_000000.csv", crate::schema::data(), &[7; 32])
}

#[test]
fn a_dead_letter_over_the_topic_limit_is_cut_to_fit_with_length_and_sha256() {
    let ctx = data_context();
    let raw = vec![b'x'; 10_000];
    let letter = DeadLetter {
        index: 3,
        line: 4,
        error: "field \"msisdn\": too long",
        raw: &raw,
        cut: None,
    };
    let hv: record::HeaderValues<'_> = [b"k", b"f", b"3", b"s"];
    let mut value = Vec::new();
    encode_dead_letter(&ctx, letter, "dlq", 2_000, &hv, TS, &mut value).unwrap();
    assert!(record::record_size(b"k", &value, &hv) <= 2_000);
    let v: Value = serde_json::from_slice(&value).unwrap();
    assert_eq!(v["_raw_truncated"], true);
    assert_eq!(v["_raw_bytes"], 10_000);
    assert_eq!(
        v["_raw_sha256"].as_str().unwrap(),
        hex(&<sha2::Sha256 as sha2::Digest>::digest(&raw))
    );
    assert!(
        v["_error"]
            .as_str()
            .unwrap()
            .ends_with("exceeds the limit of 2000 for topic dlq"),
        "{v}"
    );
    assert!(v["_raw"].as_str().unwrap().len() < 2_000);

    // Within the limit, the record is whole.
    encode_dead_letter(&ctx, letter, "dlq", usize::MAX, &hv, TS, &mut value).unwrap();
    let v: Value = serde_json::from_slice(&value).unwrap();
    assert_eq!(v["_raw"].as_str().unwrap().len(), 10_000);
    assert!(v.get("_raw_truncated").is_none());
}

#[test]
fn a_dead_letter_that_fits_no_cut_fails_naming_file_row_line_and_topic() {
    let ctx = data_context();
    let letter = DeadLetter {
        index: 3,
        line: 4,
        error: "bad",
        raw: b"a,b,c",
        cut: None,
    };
    let hv: record::HeaderValues<'_> = [b"k", b"f", b"3", b"s"];
    let err = encode_dead_letter(&ctx, letter, "dlq", 150, &hv, TS, &mut Vec::new()).unwrap_err();
    assert_eq!((err.index, err.line, err.limit, err.topic.as_str()), (3, 4, 150, "dlq"));
    assert!(
        err.to_string()
            .starts_with("cdr_data_20240101_000000.csv: row 3 (line 4): even with its line cut"),
        "{err}"
    );
}

#[test]
fn json_typed_writes_numbers_as_numbers_and_times_with_their_zone() {
    let kind = crate::schema::data();
    let csv = format!("{DATA_HEADER},cell_note\n007,0018,787119,662662,application,221.128.139.195,http://e.com/?a=\"b\",2024-01-01 01:01:15.291148,n1\n");
    let csv = csv.replace("007,", "9724515726732,");
    let ctx =
        FileContext::new("cdr_data_x.csv", kind.clone(), &sha()).with_format(ValueFormat::json_typed(&kind, 7200));
    let mut r = CdrReader::new(kind, "cdr_data_x.csv", csv.as_bytes(), &Validation::default()).unwrap();
    let Some(Row::Valid(row)) = r.next_row().unwrap() else {
        panic!("the row is valid")
    };
    let mut out = Vec::new();
    write_value(&ctx, &row, TS, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        concat!(
            r#"{"msisdn":"9724515726732","tower_id":18,"up_bytes":787119,"down_bytes":662662,"data_type":"application","#,
            r#""ip_address":"221.128.139.195","website_url":"http://e.com/?a=\"b\"","#,
            r#""event_datetime":"2024-01-01T01:01:15.291148+02:00","cell_note":"n1","#,
            r#""_source_file":"cdr_data_x.csv","_ingestion_timestamp":"2025-12-06T20:55:06.123456Z","_record_type":"data"}"#
        )
    );
}
