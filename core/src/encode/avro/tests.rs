use apache_avro::types::Value as Avro;

use super::*;
use crate::encode::{write_value, FileContext, ValueFormat};
use crate::parse::{CdrReader, Row, Validation};
use crate::schema::{declare, Catalog};

const TS: &str = "2025-12-06T20:55:06.123456";

fn sms() -> RecordKind {
    let json = r#"{"sms": {"files": ["cdr_sms_*"], "topic": "cdr-sms", "time-column": "sent_time", "columns": [
        {"name": "msisdn", "type": "digits", "min": 6, "max": 15},
        {"name": "sms_type", "type": "enum", "symbols": ["mo", "mt"]},
        {"name": "message_bytes", "type": "unsigned"},
        {"name": "balance", "type": "decimal", "scale": 2, "optional": true},
        {"name": "delta", "type": "signed"},
        {"name": "band", "type": "enum", "symbols": ["4G", "5G"]},
        {"name": "sent_time", "type": "timestamp", "precision": 3, "zone": "+02:00"}]}}"#;
    let catalog = Catalog::new(declare::from_json(json).unwrap()).unwrap();
    catalog.get("sms").unwrap().clone()
}

/// Encodes the first row of `csv` as Avro under schema id 7.
fn encode(kind: &RecordKind, csv: &str) -> Result<Vec<u8>, ValueError> {
    let ctx = FileContext::new("cdr_sms_1.csv", kind.clone(), &[3; 32]).with_format(ValueFormat::avro(kind, 0, 7));
    let mut r = CdrReader::new(kind.clone(), "cdr_sms_1.csv", csv.as_bytes(), &Validation::default()).unwrap();
    let Some(Row::Valid(row)) = r.next_row().unwrap() else {
        panic!("the row is valid")
    };
    let mut out = Vec::new();
    write_value(&ctx, &row, TS, &mut out)?;
    Ok(out)
}

fn decode(kind: &RecordKind, framed: &[u8]) -> Vec<(String, Avro)> {
    assert_eq!(framed[0], MAGIC);
    assert_eq!(u32::from_be_bytes(framed[1..5].try_into().unwrap()), 7);
    let schema = Schema::parse_str(&schema_text(kind)).unwrap();
    let mut datum = &framed[5..];
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .unwrap();
    match reader.read_value(&mut datum).unwrap() {
        Avro::Record(fields) => {
            assert!(datum.is_empty(), "the datum is read whole");
            fields
        }
        other => panic!("not a record: {other:?}"),
    }
}

const HEADER: &str = "msisdn,sms_type,message_bytes,balance,delta,band,sent_time";

#[test]
fn a_row_is_framed_with_the_schema_id_and_decodes_to_its_typed_values() {
    let kind = sms();
    let framed = encode(
        &kind,
        &format!("{HEADER}\n0049151,mt,140,-12.5,-3,5G,2024-03-01 10:00:00.25\n"),
    )
    .unwrap();
    let fields = decode(&kind, &framed);
    let expected_time = chrono::DateTime::parse_from_rfc3339("2024-03-01T10:00:00.250+02:00").unwrap();
    let ingested = chrono::DateTime::parse_from_rfc3339("2025-12-06T20:55:06.123456Z").unwrap();
    assert_eq!(
        fields,
        vec![
            ("msisdn".into(), Avro::String("0049151".into())),
            ("sms_type".into(), Avro::Enum(1, "mt".into())),
            ("message_bytes".into(), Avro::Long(140)),
            (
                "balance".into(),
                Avro::Union(1, Box::new(Avro::Decimal(apache_avro::Decimal::from(vec![0xfb, 0x1e]))))
            ),
            ("delta".into(), Avro::Long(-3)),
            ("band".into(), Avro::String("5G".into())),
            (
                "sent_time".into(),
                Avro::TimestampMicros(expected_time.timestamp_micros())
            ),
            ("_source_file".into(), Avro::String("cdr_sms_1.csv".into())),
            (
                "_ingestion_timestamp".into(),
                Avro::TimestampMicros(ingested.timestamp_micros())
            ),
            ("_record_type".into(), Avro::String("sms".into())),
        ]
    );
}

#[test]
fn an_optional_columns_empty_value_is_null() {
    let kind = sms();
    let framed = encode(&kind, &format!("{HEADER}\n0049151,mo,0,,0,4G,2024-03-01 10:00:00\n")).unwrap();
    let fields = decode(&kind, &framed);
    assert_eq!(fields[3], ("balance".into(), Avro::Union(0, Box::new(Avro::Null))));
}

#[test]
fn an_unsigned_beyond_avros_long_is_refused_naming_the_column() {
    let kind = sms();
    let err = encode(
        &kind,
        &format!("{HEADER}\n0049151,mo,18446744073709551615,,0,4G,2024-03-01 10:00:00\n"),
    )
    .unwrap_err();
    assert_eq!(err.column, "message_bytes");
    assert_eq!(
        err.to_string(),
        "field \"message_bytes\": 18446744073709551615 does not fit Avro's long (at most 9223372036854775807)"
    );
}

#[test]
fn the_schema_maps_each_declared_type_and_adds_the_metadata_fields() {
    let schema: Json = serde_json::from_str(&schema_text(&sms())).unwrap();
    assert_eq!(schema["name"], "cdr_sms");
    assert_eq!(schema["namespace"], NAMESPACE);
    let fields = schema["fields"].as_array().unwrap();
    let names: Vec<&str> = fields.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "msisdn",
            "sms_type",
            "message_bytes",
            "balance",
            "delta",
            "band",
            "sent_time",
            "_source_file",
            "_ingestion_timestamp",
            "_record_type"
        ]
    );
    assert_eq!(fields[1]["type"]["symbols"], json!(["mo", "mt"]));
    assert_eq!(fields[3]["type"][1]["logicalType"], "decimal");
    assert_eq!(fields[3]["default"], Json::Null, "an optional column defaults to null");
    assert_eq!(
        fields[5]["type"], "string",
        "a symbol that is no Avro name makes a string"
    );
    assert_eq!(fields[6]["type"]["logicalType"], "timestamp-micros");
}

#[test]
fn the_builtin_kinds_schemas_are_valid_avro_with_enums() {
    for kind in [crate::schema::data(), crate::schema::voice()] {
        let schema = Schema::parse_str(&schema_text(&kind)).unwrap();
        let Schema::Record(record) = schema else { panic!() };
        assert!(record.fields.iter().any(|f| matches!(f.schema, Schema::Enum(_))));
    }
}

#[test]
fn decimals_are_the_shortest_twos_complement() {
    assert_eq!(twos_complement(0), [0]);
    assert_eq!(twos_complement(127), [0x7f]);
    assert_eq!(twos_complement(128), [0x00, 0x80]);
    assert_eq!(twos_complement(-1), [0xff]);
    assert_eq!(twos_complement(-128), [0x80]);
    assert_eq!(twos_complement(-129), [0xff, 0x7f]);
}

#[test]
fn an_incompatible_change_is_explained_naming_the_field() {
    let kind = |extra: &str| {
        let json = format!(
            r#"{{"sms": {{"files": ["x*"], "topic": "t", "time-column": "t", "columns": [
            {{"name": "t", "type": "timestamp"}}{extra}]}}}}"#
        );
        Catalog::new(declare::from_json(&json).unwrap())
            .unwrap()
            .get("sms")
            .unwrap()
            .clone()
    };
    let v1 = schema_text(&kind(""));
    let optional = schema_text(&kind(r#", {"name": "roaming", "type": "text", "optional": true}"#));
    let required = schema_text(&kind(r#", {"name": "roaming", "type": "text"}"#));
    assert_eq!(
        incompatibility(&v1, &optional, true, true),
        None,
        "an optional column is a full-compatible change"
    );
    let why = incompatibility(&v1, &required, true, false).unwrap();
    assert!(why.contains("'roaming'") && why.contains("default"), "{why}");
    assert_eq!(
        incompatibility(&v1, &required, false, true),
        None,
        "old readers ignore a new field"
    );
}
