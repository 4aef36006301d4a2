//! Properties of the parse -> validate -> encode stages over generated CSV.

use cdr_to_redpanda::encode::{self, FileContext};
use cdr_to_redpanda::parse::{decode, CdrReader, FileError, Row, RowError, Validation};
use cdr_to_redpanda::schema::{self, RecordKind};
use proptest::prelude::*;
use serde_json::{Map, Value};

const TS: &str = "2025-12-06T20:55:06.123456";

/// A generated row: its values in canonical column order.
type Values = Vec<String>;

fn digits(min: usize, max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[0-9]{{{min},{max}}}")).unwrap()
}

fn u64_text() -> impl Strategy<Value = String> {
    prop_oneof![digits(1, 19), any::<u64>().prop_map(|n| n.to_string())]
}

fn timestamp() -> impl Strategy<Value = String> {
    // Any instant from 1900 to 2100, with 0 to 6 fraction digits.
    (-2_208_988_800i64..4_102_444_800, 0u32..1_000_000, 0usize..=6).prop_map(|(secs, micros, n)| {
        let t = chrono::DateTime::from_timestamp(secs, 0).unwrap();
        let frac = format!("{micros:06}");
        let base = t.format("%Y-%m-%d %H:%M:%S").to_string();
        if n == 0 {
            base
        } else {
            format!("{base}.{}", &frac[..n])
        }
    })
}

fn ip() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<std::net::Ipv4Addr>().prop_map(|a| a.to_string()),
        any::<std::net::Ipv6Addr>().prop_map(|a| a.to_string()),
    ]
}

/// Any non-empty text, weighted towards what breaks CSV: commas, quotes,
/// newlines, CRs, non-ASCII.
fn url() -> impl Strategy<Value = String> {
    prop_oneof![
        "http://[a-z]{1,12}\\.example\\.com/[a-z0-9/?=&]{0,20}",
        "[a-z,\"\n\r é😀\\\\\t]{1,30}",
        any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
    ]
}

fn one_of(list: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(list).prop_map(String::from)
}

fn valid_values(kind: &RecordKind) -> BoxedStrategy<Values> {
    match kind.as_str() {
        "data" => (
            digits(6, 15),
            u64_text(),
            u64_text(),
            u64_text(),
            one_of(&["application", "text", "image", "video"]),
            ip(),
            url(),
            timestamp(),
        )
            .prop_map(|(a, b, c, d, e, f, g, h)| vec![a, b, c, d, e, f, g, h])
            .boxed(),
        _ => (
            digits(6, 15),
            u64_text(),
            one_of(&["voice", "video"]),
            digits(6, 15),
            u64_text(),
            timestamp(),
        )
            .prop_map(|(a, b, c, d, e, f)| vec![a, b, c, d, e, f])
            .boxed(),
    }
}

/// CSV text of one field: quoted when it must be, and sometimes when it need not be.
fn csv_field(v: &str, force_quotes: bool) -> String {
    if force_quotes || v.contains([',', '"', '\n', '\r']) || v.is_empty() {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

fn csv_line(values: &[String], quote_mask: u8) -> String {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| csv_field(v, quote_mask & (1 << (i % 8)) != 0))
        .collect::<Vec<_>>()
        .join(",")
}

fn kind() -> impl Strategy<Value = RecordKind> {
    prop_oneof![Just(schema::data()), Just(schema::voice())]
}

/// A file of valid rows: kind, rows, per-row quoting mask, line ending.
fn valid_file() -> impl Strategy<Value = (Vec<(Values, u8)>, RecordKind, &'static str)> {
    kind().prop_flat_map(|k| {
        (
            proptest::collection::vec((valid_values(&k), any::<u8>()), 1..20),
            Just(k),
            proptest::sample::select(&["\n", "\r\n"][..]),
        )
    })
}

fn physical_lines(s: &str) -> u64 {
    // Universal newlines: CRLF, LF, bare CR.
    s.replace("\r\n", "\n").replace('\r', "\n").matches('\n').count() as u64
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn valid_rows_survive_csv_parse_and_json_encode_intact((rows, kind, eol) in valid_file()) {
        let mut text = kind.header();
        text.push_str(eol);
        let mut expected_lines = Vec::new();
        for (values, mask) in &rows {
            expected_lines.push(1 + physical_lines(&text));
            text.push_str(&csv_line(values, *mask));
            text.push_str(eol);
        }
        let ctx = FileContext::new("cdr_x.csv", kind.clone(), &[0xab; 32]);
        let mut reader = CdrReader::new(kind.clone(), "cdr_x.csv", text.as_bytes(), &Validation::default()).unwrap();
        let (mut key, mut value) = (Vec::new(), Vec::new());
        let mut n = 0;
        while let Some(row) = reader.next_row().unwrap() {
            let Row::Valid(row) = row else { panic!("rejected a valid row: {row:?}") };
            let (values, _) = &rows[n];
            n += 1;
            prop_assert_eq!(row.index, n as u64);
            prop_assert_eq!(row.line, expected_lines[n - 1]);
            encode::write_key(&ctx, row.index, &mut key);
            prop_assert_eq!(String::from_utf8(key.clone()).unwrap(), format!("abababababababab-{n}"));
            encode::write_value(&ctx, &row, TS, &mut value).unwrap();
            prop_assert!(value.is_ascii());
            let json: Map<String, Value> = serde_json::from_slice(&value).unwrap();
            prop_assert_eq!(json.len(), values.len() + 3);
            for (col, v) in kind.columns().iter().zip(values) {
                prop_assert_eq!(json[&col.name].as_str(), Some(v.as_str()), "column {}", col.name);
            }
            prop_assert_eq!(json["_record_type"].as_str(), Some(kind.as_str()));
            prop_assert_eq!(json["_source_file"].as_str(), Some("cdr_x.csv"));
            prop_assert_eq!(json["_ingestion_timestamp"].as_str(), Some(TS));
            // The Kafka timestamp is the time column read as UTC.
            let t = values.last().unwrap();
            let fmt = if t.len() > 19 { "%Y-%m-%d %H:%M:%S%.f" } else { "%Y-%m-%d %H:%M:%S" };
            let expected = chrono::NaiveDateTime::parse_from_str(t, fmt).unwrap().and_utc().timestamp_millis();
            prop_assert_eq!(row.event_time_ms, expected);
        }
        prop_assert_eq!(n, rows.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_reader(kind in kind(), header in any::<bool>(), bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut input = Vec::new();
        if header {
            input.extend_from_slice(kind.header().as_bytes());
            input.push(b'\n');
        }
        input.extend_from_slice(&bytes);
        let plain = read_everything(kind.clone(), &input).map_err(|e| e.to_string());
        // With a good header nothing in the body can fail the file.
        prop_assert!(!header || plain.is_ok(), "{:?}", plain);
        // Compressed, the same bytes give the same outcome.
        let unzipped = read_everything(kind.clone(), &gzip(&input)).map_err(|e| e.to_string());
        prop_assert_eq!(plain, unzipped);
        // Garbage behind the gzip magic is at most a file error.
        let mut garbage = vec![0x1f, 0x8b];
        garbage.extend_from_slice(&bytes);
        let _ = read_everything(kind.clone(), &garbage);
    }

    #[test]
    fn csv_like_noise_never_panics_and_counts_every_row(kind in kind(), lines in proptest::collection::vec("[0-9a-z,\"\r\n .:-]{0,40}", 0..30)) {
        let mut input = kind.header();
        input.push('\n');
        input.push_str(&lines.join("\n"));
        let rows = read_everything(kind.clone(), input.as_bytes()).unwrap();
        // Indices are 1, 2, 3, ... whatever the rows' validity.
        prop_assert!(rows.iter().enumerate().all(|(i, &(index, _))| index == i as u64 + 1));
        // Lines never go backwards.
        prop_assert!(rows.windows(2).all(|w| w[0].1 < w[1].1));
    }

    #[test]
    fn each_invalid_class_is_caught_with_its_field_named((values, kind) in kind().prop_flat_map(|k| (valid_values(&k), Just(k))), class in 0usize..8, mask in any::<u8>()) {
        let mut values = values;
        let column_pos = |name: &str| kind.columns().iter().position(|c| c.name == name);
        let (expect, line): (Expected, Vec<u8>) = match class {
            0 => {
                values.push("extra".into());
                (Expected::FieldCount, csv_line(&values, mask).into_bytes())
            }
            1 => {
                values.pop();
                (Expected::FieldCount, csv_line(&values, mask).into_bytes())
            }
            2 => {
                let i = kind.columns().len() - 1;
                let mut line = csv_line(&values[..i], mask).into_bytes();
                line.extend_from_slice(b",\xff");
                line.extend_from_slice(values[i].as_bytes());
                (Expected::Utf8(kind.time_column().to_owned()), line)
            }
            3 => {
                values[0] = "12345".into();
                (Expected::Field("msisdn".into()), csv_line(&values, mask).into_bytes())
            }
            4 => {
                values[1] = "12x4".into();
                (Expected::Field("tower_id".into()), csv_line(&values, mask).into_bytes())
            }
            5 => {
                let i = values.len() - 1;
                values[i] = values[i].replace(' ', "T");
                (Expected::Field(kind.time_column().to_owned()), csv_line(&values, mask).into_bytes())
            }
            6 => {
                let (col, bad) = match kind.as_str() {
                    "data" => ("ip_address", "1.2.3.256"),
                    _ => ("dest_nr", "+123456789"),
                };
                values[column_pos(col).unwrap()] = bad.into();
                (Expected::Field(col.into()), csv_line(&values, mask).into_bytes())
            }
            _ => {
                let (col, bad) = match kind.as_str() {
                    "data" => ("website_url", ""),
                    _ => ("call_type", "Voice"),
                };
                values[column_pos(col).unwrap()] = bad.into();
                (Expected::Field(col.into()), csv_line(&values, mask).into_bytes())
            }
        };
        let mut input = kind.header().into_bytes();
        input.push(b'\n');
        input.extend_from_slice(&line);
        input.push(b'\n');
        let mut reader = CdrReader::new(kind.clone(), "f.csv", &input[..], &Validation::default()).unwrap();
        let row = reader.next_row().unwrap().unwrap();
        let Row::Invalid(row) = row else { panic!("accepted an invalid row ({expect:?}): {row:?}") };
        prop_assert_eq!(row.index, 1);
        prop_assert_eq!(row.line, 2);
        prop_assert_eq!(row.raw, &line[..]);
        match (&expect, &row.error) {
            (Expected::FieldCount, RowError::FieldCount { .. }) => {}
            (Expected::Utf8(c), RowError::InvalidUtf8 { column }) => prop_assert_eq!(c, column),
            (Expected::Field(c), RowError::Field { column, .. }) => prop_assert_eq!(c, column),
            (e, got) => prop_assert!(false, "expected {:?}, got {:?}", e, got),
        }
        // And its dead-letter value is JSON carrying the error and the raw line.
        let ctx = FileContext::new("f.csv", kind.clone(), &[1; 32]);
        let mut value = Vec::new();
        let hv = [&b"k"[..], b"f.csv", b"1", ctx.sha256_hex().as_bytes()];
        encode::encode_invalid_row(&ctx, &row, "dlq", usize::MAX, &hv, TS, &mut value).unwrap();
        let json: Map<String, Value> = serde_json::from_slice(&value).unwrap();
        let (error, raw) = (row.error.to_string(), String::from_utf8_lossy(&line));
        prop_assert_eq!(json["_error"].as_str(), Some(error.as_str()));
        prop_assert_eq!(json["_raw"].as_str(), Some(raw.as_ref()));
        prop_assert!(reader.next_row().unwrap().is_none());
    }
}

#[derive(Debug)]
enum Expected {
    FieldCount,
    Utf8(String),
    Field(String),
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Reads (and encodes) every row; returns (index, line) of each, or the file error.
fn read_everything(kind: RecordKind, input: &[u8]) -> Result<Vec<(u64, u64)>, FileError> {
    let decoded = decode(input).unwrap();
    let mut reader = CdrReader::new(kind.clone(), "f.csv", decoded, &Validation::default())?;
    let ctx = FileContext::new("f.csv", kind, &[0; 32]);
    let mut out = Vec::new();
    let mut seen = Vec::new();
    while let Some(row) = reader.next_row()? {
        seen.push((row.index(), row.line()));
        match row {
            Row::Valid(r) => encode::write_value(&ctx, &r, TS, &mut out).unwrap(),
            Row::Invalid(r) => {
                let hv = [&b"k"[..], b"f.csv", b"1", ctx.sha256_hex().as_bytes()];
                encode::encode_invalid_row(&ctx, &r, "dlq", usize::MAX, &hv, TS, &mut out).unwrap()
            }
        }
        assert!(serde_json::from_slice::<Value>(&out).is_ok());
    }
    Ok(seen)
}
