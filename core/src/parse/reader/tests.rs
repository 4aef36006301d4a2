use super::*;
use crate::parse::decode;
use crate::parse::trickle::Trickle;
use std::io::Write;

const DATA_HEADER: &str = "msisdn,tower_id,up_bytes,down_bytes,data_type,ip_address,website_url,event_datetime";
const DATA_ROW: &str =
    "9724515726732,1800,787119,662662,application,221.128.139.195,http://example.com,2024-01-01 01:01:15.291148";
const VOICE_HEADER: &str = "msisdn,tower_id,call_type,dest_nr,call_duration_sec,start_time";
const VOICE_ROW: &str = "5837025539272,724,voice,1693098090050,262,2024-01-01 01:01:29.707413";

/// A row copied out of the reader, for comparing.
#[derive(Debug, Clone, PartialEq)]
enum Got {
    Valid {
        index: u64,
        line: u64,
        ms: i64,
        fields: Vec<(String, String)>,
    },
    Invalid {
        index: u64,
        line: u64,
        error: RowError,
        raw: Vec<u8>,
    },
}

impl Got {
    fn index_line(&self) -> (u64, u64) {
        match self {
            Got::Valid { index, line, .. } | Got::Invalid { index, line, .. } => (*index, *line),
        }
    }
    fn error(&self) -> &RowError {
        match self {
            Got::Invalid { error, .. } => error,
            Got::Valid { .. } => panic!("expected an invalid row, got {self:?}"),
        }
    }
    fn value(&self, column: &str) -> &str {
        match self {
            Got::Valid { fields, .. } => &fields.iter().find(|(c, _)| c == column).unwrap().1,
            Got::Invalid { .. } => panic!("expected a valid row, got {self:?}"),
        }
    }
}

fn collect<R: Read>(mut r: CdrReader<R>) -> Result<Vec<Got>, FileError> {
    let mut out = Vec::new();
    while let Some(row) = r.next_row()? {
        out.push(match row {
            Row::Valid(v) => Got::Valid {
                index: v.index,
                line: v.line,
                ms: v.event_time_ms,
                fields: v.fields().map(|(c, v)| (c.to_owned(), v.to_owned())).collect(),
            },
            Row::Invalid(i) => Got::Invalid {
                index: i.index,
                line: i.line,
                error: i.error,
                raw: i.raw.to_vec(),
            },
        });
    }
    Ok(out)
}

fn read(kind: RecordKind, input: &[u8]) -> Result<Vec<Got>, FileError> {
    let whole = collect(CdrReader::new(kind.clone(), "f.csv", input, &Validation::default())?);
    // The same input handed out one byte per read must give the same rows: this
    // puts a buffer boundary at every position of every record.
    let trickled = CdrReader::new(kind, "f.csv", Trickle(input), &Validation::default()).and_then(collect);
    assert_eq!(
        format!("{whole:?}"),
        format!("{trickled:?}"),
        "byte-by-byte reading differs"
    );
    whole
}

fn data(body: &str) -> Vec<Got> {
    read(crate::schema::data(), format!("{DATA_HEADER}\n{body}").as_bytes()).unwrap()
}

fn voice(body: &str) -> Vec<Got> {
    read(crate::schema::voice(), format!("{VOICE_HEADER}\n{body}").as_bytes()).unwrap()
}

fn field_error(got: &Got) -> (&str, &str, &str) {
    match got.error() {
        RowError::Field {
            column,
            value_excerpt,
            reason,
        } => (column, value_excerpt, reason),
        e => panic!("expected a field error, got {e:?}"),
    }
}

/// The data row with one field replaced.
fn data_with(column: &str, value: &str) -> String {
    let pos = names(crate::schema::data()).iter().position(|c| c == column).unwrap();
    let mut fields: Vec<&str> = DATA_ROW.split(',').collect();
    fields[pos] = value;
    fields.join(",")
}

fn voice_with(column: &str, value: &str) -> String {
    let pos = names(crate::schema::voice()).iter().position(|c| c == column).unwrap();
    let mut fields: Vec<&str> = VOICE_ROW.split(',').collect();
    fields[pos] = value;
    fields.join(",")
}

/// The declared column names of a kind, in output order.
fn names(kind: crate::schema::RecordKind) -> Vec<String> {
    kind.columns().iter().map(|c| c.name.clone()).collect()
}

#[test]
fn contract_example_rows_are_valid_with_values_as_in_the_file() {
    let rows = data(&format!("{DATA_ROW}\n"));
    let expected: Vec<(String, String)> = names(crate::schema::data())
        .iter()
        .zip(DATA_ROW.split(','))
        .map(|(c, v)| (c.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        rows,
        vec![Got::Valid {
            index: 1,
            line: 2,
            ms: 1_704_070_875_291,
            fields: expected
        }]
    );
    let rows = voice(&format!("{VOICE_ROW}\n"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].value("dest_nr"), "1693098090050");
    assert!(matches!(
        rows[0],
        Got::Valid {
            ms: 1_704_070_889_707,
            ..
        }
    ));
}

#[test]
fn each_data_rule_rejects_with_its_column_and_reason() {
    for (column, value, reason) in [
        ("msisdn", "12345", "expected 6 to 15 digits"),
        ("msisdn", "1234567890123456", "expected 6 to 15 digits"),
        ("msisdn", "+97245157267", "expected 6 to 15 digits"),
        ("tower_id", "", "expected an unsigned 64-bit integer"),
        ("tower_id", "-1", "expected an unsigned 64-bit integer"),
        ("up_bytes", "12x4", "expected an unsigned 64-bit integer"),
        (
            "down_bytes",
            "18446744073709551616",
            "expected an unsigned 64-bit integer",
        ),
        (
            "data_type",
            "Application",
            "expected one of application, text, image, video",
        ),
        ("data_type", "", "expected one of application, text, image, video"),
        ("ip_address", "221.128.139", "expected an IPv4 or IPv6 address"),
        ("ip_address", " 1.2.3.4", "expected an IPv4 or IPv6 address"),
        ("website_url", "", "must not be empty"),
        (
            "event_datetime",
            "2024-02-30 00:00:00",
            "expected YYYY-MM-DD HH:MM:SS[.ffffff]",
        ),
        (
            "event_datetime",
            "2024-01-01T01:01:15",
            "expected YYYY-MM-DD HH:MM:SS[.ffffff]",
        ),
    ] {
        let rows = data(&format!("{}\n", data_with(column, value)));
        assert_eq!(field_error(&rows[0]), (column, value, reason), "{column}={value:?}");
    }
}

#[test]
fn each_voice_rule_rejects_with_its_column_and_reason() {
    for (column, value, reason) in [
        ("msisdn", "abcdefg", "expected 6 to 15 digits"),
        ("tower_id", "7.5", "expected an unsigned 64-bit integer"),
        ("call_type", "sms", "expected one of voice, video"),
        ("dest_nr", "12345", "expected 6 to 15 digits"),
        ("call_duration_sec", "1e3", "expected an unsigned 64-bit integer"),
        (
            "start_time",
            "2024-01-01 01:01:29.1234567",
            "expected YYYY-MM-DD HH:MM:SS[.ffffff]",
        ),
    ] {
        let rows = voice(&format!("{}\n", voice_with(column, value)));
        assert_eq!(field_error(&rows[0]), (column, value, reason), "{column}={value:?}");
    }
}

#[test]
fn error_display_names_field_reason_and_value() {
    let rows = data(&format!("{}\n", data_with("up_bytes", "12x4")));
    assert_eq!(
        rows[0].error().to_string(),
        r#"field "up_bytes": expected an unsigned 64-bit integer, found "12x4""#
    );
}

#[test]
fn the_first_failing_field_in_canonical_order_is_reported() {
    // Header order puts website_url first, but msisdn comes first canonically.
    let header = "website_url,msisdn,tower_id,up_bytes,down_bytes,data_type,ip_address,event_datetime";
    let input = format!("{header}\n,1,1800,1,1,text,1.2.3.4,2024-01-01 00:00:00\n");
    let rows = read(crate::schema::data(), input.as_bytes()).unwrap();
    assert_eq!(field_error(&rows[0]).0, "msisdn");
}

#[test]
fn long_values_are_cut_in_the_error() {
    let long = "x".repeat(1000);
    let rows = data(&format!("{}\n", data_with("ip_address", &long)));
    let (_, excerpt, _) = field_error(&rows[0]);
    assert_eq!(excerpt.chars().count(), RowError::EXCERPT_CHARS + 1);
    assert!(excerpt.ends_with('…'));
}

#[test]
fn configured_types_and_offset_are_used() {
    let validation = Validation {
        time_offset: chrono::FixedOffset::east_opt(2 * 3600).unwrap(),
        latest_event_ms: None,
    };
    let streams =
        crate::schema::Catalog::new(vec![crate::schema::builtin::data_spec("cdr-data", &["stream"])]).unwrap();
    let kind = streams.get("data").unwrap().clone();
    let input = format!("{DATA_HEADER}\n{}\n{DATA_ROW}\n", data_with("data_type", "stream"));
    let rows = collect(CdrReader::new(kind, "f", input.as_bytes(), &validation).unwrap()).unwrap();
    assert!(
        matches!(
            rows[0],
            Got::Valid {
                ms: 1_704_063_675_291,
                ..
            }
        ),
        "{rows:?}"
    );
    assert_eq!(field_error(&rows[1]).2, "expected one of stream");
}

#[test]
fn wrong_field_count_is_reported_before_anything_else() {
    let rows = data("1,2,3\n\u{0}\u{ff}x,2\n9724515726732,1800,787119,662662,application,221.128.139.195,http://a,b,2024-01-01 01:01:15\n");
    assert_eq!(rows[0].error(), &RowError::FieldCount { expected: 8, found: 3 });
    assert_eq!(rows[1].error(), &RowError::FieldCount { expected: 8, found: 2 });
    assert_eq!(rows[2].error(), &RowError::FieldCount { expected: 8, found: 9 });
    assert_eq!(
        rows[0].error().to_string(),
        "expected 8 fields as in the header, found 3"
    );
}

#[test]
fn a_line_of_many_commas_is_a_field_count_error() {
    let line = ",".repeat(100_000);
    let rows = data(&format!("{line}\n\"{line}\"{line}\n"));
    assert_eq!(
        rows[0].error(),
        &RowError::FieldCount {
            expected: 8,
            found: 100_001
        }
    );
    assert_eq!(
        rows[1].error(),
        &RowError::FieldCount {
            expected: 8,
            found: 100_001
        }
    );
}

#[test]
fn invalid_utf8_names_the_first_bad_column_and_keeps_raw_bytes() {
    let mut input = format!("{DATA_HEADER}\n").into_bytes();
    let bad_row = data_with("website_url", "http://\u{1}x").replace('\u{1}', "\u{7f}");
    let mut bad = bad_row.into_bytes();
    let at = bad.iter().position(|&b| b == 0x7f).unwrap();
    bad[at] = 0xff;
    input.extend(&bad);
    input.extend(b"\n");
    let rows = read(crate::schema::data(), &input).unwrap();
    assert_eq!(
        rows[0].error(),
        &RowError::InvalidUtf8 {
            column: "website_url".into()
        }
    );
    assert_eq!(rows[0].error().to_string(), r#"field "website_url": invalid UTF-8"#);
    match &rows[0] {
        Got::Invalid { raw, .. } => assert_eq!(raw, &bad),
        g => panic!("{g:?}"),
    }
}

#[test]
fn a_character_split_by_quoting_is_invalid_utf8() {
    // "é" is C3 A9; here the two bytes are in one field only once unquoted.
    let mut input = format!("{DATA_HEADER}\n").into_bytes();
    let row = data_with("website_url", "\"http://x\u{1}\"\"\u{2}\"");
    let row: Vec<u8> = row
        .bytes()
        .map(|b| match b {
            1 => 0xc3,
            2 => 0xa9,
            b => b,
        })
        .collect();
    input.extend(&row);
    input.push(b'\n');
    let rows = read(crate::schema::data(), &input).unwrap();
    assert_eq!(
        rows[0].error(),
        &RowError::InvalidUtf8 {
            column: "website_url".into()
        }
    );
}

#[test]
fn non_ascii_utf8_values_are_valid() {
    let rows = data(&format!(
        "{}\n",
        data_with("website_url", "http://bücher.example/ü?q=日本")
    ));
    assert_eq!(rows[0].value("website_url"), "http://bücher.example/ü?q=日本");
}

#[test]
fn quoted_fields_are_unquoted_and_lines_inside_them_counted() {
    let url = "\"http://x/?a=1,b=\"\"2\"\"\nsecond line\r\nthird\"";
    let body = format!("{}\n{}\n{DATA_ROW}\n", data_with("website_url", url), DATA_ROW);
    let rows = data(&body);
    assert_eq!(
        rows[0].value("website_url"),
        "http://x/?a=1,b=\"2\"\nsecond line\r\nthird"
    );
    assert_eq!(
        rows.iter().map(Got::index_line).collect::<Vec<_>>(),
        [(1, 2), (2, 5), (3, 6)]
    );
}

#[test]
fn raw_of_an_invalid_quoted_record_is_the_original_text() {
    let row = data_with("website_url", "\"a,\"\"b\"\"\nc\"").replace("1800", "x");
    let rows = data(&format!("{row}\r\n{DATA_ROW}\r\n"));
    match &rows[0] {
        Got::Invalid {
            raw, line: 2, index: 1, ..
        } => assert_eq!(raw, row.as_bytes()),
        g => panic!("{g:?}"),
    }
    assert_eq!(rows[1].index_line(), (2, 4));
}

#[test]
fn crlf_lf_and_bare_cr_endings_give_the_same_rows_and_lines() {
    for sep in ["\n", "\r\n", "\r"] {
        let input = [DATA_HEADER, DATA_ROW, DATA_ROW, ""].join(sep);
        let rows = read(crate::schema::data(), input.as_bytes()).unwrap();
        assert_eq!(
            rows.iter().map(Got::index_line).collect::<Vec<_>>(),
            [(1, 2), (2, 3)],
            "{sep:?}"
        );
        assert_eq!(rows[1].value("event_datetime"), "2024-01-01 01:01:15.291148", "{sep:?}");
    }
}

#[test]
fn blank_lines_are_skipped_but_counted_as_lines() {
    let body = format!("\n{DATA_ROW}\n\r\n\n{DATA_ROW}\n\n");
    let rows = data(&body);
    assert_eq!(rows.iter().map(Got::index_line).collect::<Vec<_>>(), [(1, 3), (2, 6)]);
    let body = format!("\"{}\r\n\r\n{DATA_ROW}", &data_with("msisdn", "123456\""));
    let rows = data(&body);
    assert_eq!(rows.iter().map(Got::index_line).collect::<Vec<_>>(), [(1, 2), (2, 4)]);
}

#[test]
fn a_last_line_without_newline_is_a_row() {
    let rows = data(DATA_ROW);
    assert_eq!(rows.len(), 1);
    assert!(matches!(rows[0], Got::Valid { index: 1, line: 2, .. }));
    let quoted = data_with("website_url", "\"http://x\"");
    let rows = data(&quoted);
    assert_eq!(rows[0].value("website_url"), "http://x");
}

#[test]
fn header_columns_are_matched_by_name_in_any_order_with_extras_kept() {
    let header = "region,event_datetime,website_url,ip_address,data_type,down_bytes,up_bytes,tower_id,msisdn,note";
    let row = "eu,2024-01-01 01:01:15.291148,http://example.com,221.128.139.195,application,662662,787119,1800,9724515726732,\"a, b\"";
    let input = format!("{header}\n{row}\n");
    let reader = CdrReader::new(crate::schema::data(), "f", input.as_bytes(), &Validation::default()).unwrap();
    let mut expected_cols = names(crate::schema::data());
    expected_cols.extend(["region".to_owned(), "note".to_owned()]);
    assert_eq!(reader.columns().collect::<Vec<_>>(), expected_cols);
    let rows = collect(reader).unwrap();
    let mut expected: Vec<(String, String)> = names(crate::schema::data())
        .iter()
        .zip(DATA_ROW.split(','))
        .map(|(c, v)| (c.to_string(), v.to_string()))
        .collect();
    expected.push(("region".into(), "eu".into()));
    expected.push(("note".into(), "a, b".into()));
    assert_eq!(
        rows,
        vec![Got::Valid {
            index: 1,
            line: 2,
            ms: 1_704_070_875_291,
            fields: expected
        }]
    );
}

#[test]
fn a_bom_before_the_header_is_ignored() {
    let input = format!("\u{feff}{VOICE_HEADER}\r\n{VOICE_ROW}\r\n");
    let rows = read(crate::schema::voice(), input.as_bytes()).unwrap();
    assert!(matches!(rows[..], [Got::Valid { index: 1, line: 2, .. }]));
}

#[test]
fn a_missing_column_is_named_with_file_and_line() {
    let input = "msisdn,tower_id,down_bytes,data_type,ip_address,website_url,event_datetime\n1,2\n";
    let err = CdrReader::new(
        crate::schema::data(),
        "cdr_data_x.csv",
        input.as_bytes(),
        &Validation::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cdr_data_x.csv line 1: header lacks required column(s) up_bytes"
    );
    let err = CdrReader::new(
        crate::schema::voice(),
        "cdr_voice_x.csv",
        input.as_bytes(),
        &Validation::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cdr_voice_x.csv line 1: header lacks required column(s) call_type, dest_nr, call_duration_sec, start_time"
    );
    assert!(matches!(err, FileError::MissingColumn { ref columns, .. } if columns.len() == 4));
    // A voice header is not a data header.
    let err = CdrReader::new(
        crate::schema::data(),
        "f",
        VOICE_HEADER.as_bytes(),
        &Validation::default(),
    )
    .unwrap_err();
    assert!(matches!(err, FileError::MissingColumn { .. }));
}

#[test]
fn a_duplicated_column_is_a_file_error() {
    let input = format!("{VOICE_HEADER},tower_id\n");
    let err = CdrReader::new(
        crate::schema::voice(),
        "v.csv",
        input.as_bytes(),
        &Validation::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "v.csv line 1: header has column \"tower_id\" more than once"
    );
}

#[test]
fn an_empty_file_or_only_blank_lines_is_empty() {
    for input in [&b""[..], b"\n\r\n\n", b"\xef\xbb\xbf"] {
        let err = CdrReader::new(crate::schema::data(), "e.csv", input, &Validation::default()).unwrap_err();
        assert!(matches!(err, FileError::Empty { .. }), "{input:?}");
        assert_eq!(err.to_string(), "e.csv: empty file, no header line");
    }
}

#[test]
fn a_header_only_file_has_no_rows() {
    assert_eq!(data(""), vec![]);
}

#[test]
fn skip_rows_keeps_the_index_and_line_of_later_rows() {
    let body = format!("{DATA_ROW}\nbad\n\"{}\"\n{DATA_ROW}\n", "x\ny");
    let input = format!("{DATA_HEADER}\n{body}");
    let mut r = CdrReader::new(crate::schema::data(), "f", input.as_bytes(), &Validation::default()).unwrap();
    assert_eq!(r.skip_rows(3).unwrap(), 3);
    assert_eq!(r.rows_read(), 3);
    let rows = collect(r).unwrap();
    assert_eq!(rows.iter().map(Got::index_line).collect::<Vec<_>>(), [(4, 6)]);

    let mut r = CdrReader::new(crate::schema::data(), "f", input.as_bytes(), &Validation::default()).unwrap();
    assert_eq!(r.skip_rows(10).unwrap(), 4);
    assert!(r.next_row().unwrap().is_none());
}

#[test]
fn a_record_longer_than_the_buffer_is_read_whole() {
    let url = format!("http://x/{}", "a".repeat(3 * INITIAL_BUF_BYTES));
    let input = format!(
        "{DATA_HEADER}\n{}\n\"{}\"\n",
        data_with("website_url", &url),
        data_with("website_url", &url)
    );
    let rows =
        collect(CdrReader::new(crate::schema::data(), "f", input.as_bytes(), &Validation::default()).unwrap()).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].value("website_url"), url);
    assert_eq!(rows[1].error(), &RowError::FieldCount { expected: 8, found: 1 });
}

#[test]
fn a_record_just_under_the_limit_is_read() {
    let url = "a".repeat(MAX_RECORD_BYTES - DATA_ROW.len());
    let input = format!("{DATA_HEADER}\n{}\n{DATA_ROW}\n", data_with("website_url", &url));
    let rows =
        collect(CdrReader::new(crate::schema::data(), "f", input.as_bytes(), &Validation::default()).unwrap()).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].value("website_url").len(), url.len());
}

#[test]
fn a_record_over_the_limit_fails_the_file() {
    let input = format!("{DATA_HEADER}\n\"{}", "a".repeat(MAX_RECORD_BYTES + 1));
    let mut r = CdrReader::new(
        crate::schema::data(),
        "big.csv",
        input.as_bytes(),
        &Validation::default(),
    )
    .unwrap();
    let err = r.next_row().unwrap_err();
    assert!(matches!(err, FileError::RecordTooLong { line: 2, .. }), "{err:?}");
}

#[test]
fn many_rows_across_buffer_refills_keep_exact_positions() {
    let mut input = format!("{DATA_HEADER}\n");
    let n = 3 * INITIAL_BUF_BYTES / DATA_ROW.len();
    let mut line = 2;
    let mut expected = Vec::new();
    for i in 0..n {
        if i % 7 == 0 {
            input.push_str(&data_with("website_url", "\"a\nb\""));
            expected.push((i as u64 + 1, line));
            line += 2;
        } else {
            input.push_str(DATA_ROW);
            expected.push((i as u64 + 1, line));
            line += 1;
        }
        input.push_str(if i % 3 == 0 { "\r\n" } else { "\n" });
    }
    let rows =
        collect(CdrReader::new(crate::schema::data(), "f", input.as_bytes(), &Validation::default()).unwrap()).unwrap();
    assert!(rows.iter().all(|r| matches!(r, Got::Valid { .. })));
    assert_eq!(rows.iter().map(Got::index_line).collect::<Vec<_>>(), expected);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn gzip_and_plain_files_give_the_same_rows() {
    let text = format!("{VOICE_HEADER}\n{VOICE_ROW}\n{}\n", voice_with("dest_nr", "1"));
    let plain = collect(
        CdrReader::new(
            crate::schema::voice(),
            "v",
            decode(text.as_bytes()).unwrap(),
            &Validation::default(),
        )
        .unwrap(),
    )
    .unwrap();
    let gz = gzip(text.as_bytes());
    let unzipped = collect(
        CdrReader::new(
            crate::schema::voice(),
            "v.gz",
            decode(&gz[..]).unwrap(),
            &Validation::default(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(plain.len(), 2);
    assert_eq!(plain, unzipped);
}

#[test]
fn truncated_gzip_is_a_read_error_with_file_and_line() {
    let text = format!("{VOICE_HEADER}\n{}", format!("{VOICE_ROW}\n").repeat(50_000));
    let gz = gzip(text.as_bytes());
    let cut = &gz[..gz.len() * 2 / 3];
    let result = CdrReader::new(
        crate::schema::voice(),
        "v.csv.gz",
        decode(cut).unwrap(),
        &Validation::default(),
    )
    .and_then(collect);
    match result {
        Err(FileError::Read { file, line, .. }) => {
            assert_eq!(file, "v.csv.gz");
            assert!(line > 1000, "line {line}");
        }
        other => panic!("expected a read error, got {:?}", other.map(|r| r.len())),
    }
}

#[test]
fn line_breaks_count_lf_crlf_and_bare_cr_once_each() {
    let mut prev = false;
    assert_eq!(count_line_breaks(b"a\nb\r\nc\rd", &mut prev), 3);
    assert!(!prev);
    assert_eq!(count_line_breaks(b"x\r", &mut prev), 1);
    assert!(prev);
    assert_eq!(count_line_breaks(b"\n\n", &mut prev), 1);
}

#[test]
fn byte_mask_marks_exactly_the_equal_bytes() {
    for b in [b',', b'"', b'\r', 0, 0x80, 0xff] {
        for other in 0..=255u8 {
            for at in 0..8 {
                let mut w = [other; 8];
                w[at] = b;
                let mask = byte_mask(u64::from_le_bytes(w), b);
                let expected: u64 = (0..8).filter(|&i| w[i] == b).map(|i| 0x80u64 << (8 * i)).sum();
                assert_eq!(mask, expected, "{b:#x} at {at} among {other:#x}");
            }
        }
    }
}

#[test]
fn below_0x23_test_is_exact() {
    for b in 0..=255u8 {
        for at in 0..8 {
            let mut w = [b'a'; 8];
            w[at] = b;
            assert_eq!(has_byte_below_0x23(u64::from_le_bytes(w)), b < 0x23, "{b:#x} at {at}");
        }
    }
}

#[test]
fn event_times_past_the_latest_accepted_instant_are_invalid_rows() {
    let validation = Validation {
        // 2024-01-01 00:00:00 UTC: rows after it are "in the future".
        latest_event_ms: Some(1_704_067_200_000),
        ..Validation::default()
    };
    let input = format!(
        "{DATA_HEADER}\n{}\n{}\n",
        data_with("event_datetime", "2023-12-31 23:59:59"),
        data_with("event_datetime", "2024-01-01 00:00:01")
    );
    let mut reader = CdrReader::new(crate::schema::data(), "f.csv", input.as_bytes(), &validation).unwrap();
    assert!(matches!(reader.next_row().unwrap(), Some(Row::Valid(_))));
    match reader.next_row().unwrap() {
        Some(Row::Invalid(r)) => {
            assert_eq!(r.error.column(), Some("event_datetime"));
            assert!(r.error.to_string().contains("future"), "{}", r.error);
        }
        _ => panic!("a row past the latest instant must be invalid"),
    }
}

#[test]
fn an_optional_column_the_file_lacks_reads_as_empty_and_a_required_one_still_fails() {
    let json = r#"{"sms": {"files": ["cdr_sms_*"], "topic": "t", "time-column": "t", "columns": [
        {"name": "n", "type": "unsigned"},
        {"name": "roaming", "type": "text", "optional": true},
        {"name": "t", "type": "timestamp"}]}}"#;
    let catalog = crate::schema::Catalog::new(crate::schema::declare::from_json(json).unwrap()).unwrap();
    let kind = catalog.get("sms").unwrap().clone();
    let rows = read(kind.clone(), b"t,n,extra\n2024-01-01 00:00:00,5,x\n7\n").unwrap();
    let Got::Valid { fields, .. } = &rows[0] else {
        panic!("{rows:?}")
    };
    let fields: Vec<(&str, &str)> = fields.iter().map(|(c, v)| (c.as_str(), v.as_str())).collect();
    assert_eq!(
        fields,
        [
            ("n", "5"),
            ("roaming", ""),
            ("t", "2024-01-01 00:00:00"),
            ("extra", "x")
        ]
    );
    assert!(
        matches!(rows[1].error(), RowError::FieldCount { expected: 3, found: 1 }),
        "the field count is the file's own: {rows:?}"
    );
    let err = CdrReader::new(kind, "cdr_sms_x.csv", &b"roaming,t\n"[..], &Validation::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cdr_sms_x.csv line 1: header lacks required column(s) n"
    );
}
