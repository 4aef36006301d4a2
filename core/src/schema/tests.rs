use super::declare::{from_json, parse_zone};
use super::*;

const SMS: &str = r#"{"sms": {
    "files": ["cdr_sms_*.csv", "cdr_sms_*.csv.gz"],
    "topic": "cdr-sms",
    "time-column": "sent_time",
    "columns": [
        {"name": "msisdn", "type": "digits", "min": 6, "max": 15},
        {"name": "sms_type", "type": "enum", "symbols": ["mo", "mt"]},
        {"name": "message_bytes", "type": "unsigned"},
        {"name": "note", "type": "text", "optional": true},
        {"name": "sent_time", "type": "timestamp", "precision": 3, "zone": "+02:00"}
    ]}}"#;

fn catalog_with(json: &str) -> Result<Catalog, SchemaError> {
    let mut specs: Vec<KindSpec> = Catalog::builtin().iter().map(|k| k.spec().clone()).collect();
    specs.extend(from_json(json)?);
    Catalog::new(specs)
}

fn refusal(json: &str) -> String {
    catalog_with(json)
        .expect_err("the declaration must be refused")
        .to_string()
}

#[test]
fn routing_is_by_the_kinds_globs_and_the_builtins_by_prefix_not_substring() {
    let c = catalog_with(SMS).unwrap();
    let kind = |n: &str| c.for_file(n).map(RecordKind::as_str);
    assert_eq!(kind("cdr_data_20240101_000000.csv"), Some("data"));
    assert_eq!(kind("cdr_voice_20240101_000000.csv.gz"), Some("voice"));
    assert_eq!(kind("cdr_sms_20240101_000000.csv"), Some("sms"));
    assert_eq!(kind("cdr_sms_20240101_000000.txt"), None);
    assert_eq!(kind("old_cdr_data_20240101.csv"), None);
    assert_eq!(kind("cdr_voicemail.csv"), None);
}

#[test]
fn a_declared_kind_reads_every_setting_of_its_table() {
    let c = catalog_with(SMS).unwrap();
    let sms = c.get("sms").unwrap().spec();
    assert_eq!(sms.topic, "cdr-sms");
    assert_eq!(sms.dead_letter_topic, None);
    assert_eq!(
        sms.columns.iter().map(|c| c.ty.to_string()).collect::<Vec<_>>(),
        [
            "digits 6..=15",
            "enum mo|mt",
            "unsigned",
            "text",
            "timestamp(3) at +02:00"
        ]
    );
    assert!(sms.columns[3].optional && !sms.columns[0].optional);
}

#[test]
fn a_bad_declaration_is_refused_naming_the_kind_and_the_column() {
    let base = SMS.to_owned();
    for (from, to, expected) in [
        (
            r#""type": "unsigned""#,
            r#""type": "number""#,
            r#"kind "sms": column "message_bytes": unknown type "number""#,
        ),
        (
            r#""type": "unsigned""#,
            r#""type": "unsigned", "scale": 2"#,
            r#"column "message_bytes": `scale` does not apply"#,
        ),
        (
            r#""symbols": ["mo", "mt"]"#,
            r#""symbols": ["mo", "mo"]"#,
            r#"column "sms_type": enum symbol "mo" is listed twice"#,
        ),
        (
            r#""name": "note""#,
            r#""name": "_note""#,
            r#"column "_note": a column name is ASCII letters"#,
        ),
        (
            r#""name": "note""#,
            r#""name": "msisdn""#,
            r#"column "msisdn" is declared twice"#,
        ),
        (
            r#""time-column": "sent_time""#,
            r#""time-column": "msisdn""#,
            r#"time-column "msisdn" must be of type timestamp, not digits"#,
        ),
        (
            r#""time-column": "sent_time""#,
            r#""time-column": "when""#,
            r#"time-column "when" is not one of its columns"#,
        ),
        (
            r#""zone": "+02:00""#,
            r#""zone": "CET""#,
            r#"column "sent_time": zone "CET": expected UTC or +HH:MM"#,
        ),
        (
            r#""precision": 3"#,
            r#""precision": 9"#,
            r#"timestamp precision is 0 to 6 fraction digits, got 9"#,
        ),
        (r#""min": 6"#, r#""min": 16"#, r#"digits needs 1 <= min <= max <= 64"#),
        (
            r#""topic": "cdr-sms""#,
            r#""topic": "cdr-sms", "colour": "red""#,
            r#"kind "sms": unknown field `colour`"#,
        ),
        (r#""sms": {"#, r#""data": {"#, r#"kind "data": declared twice"#),
    ] {
        assert!(base.contains(from), "{from}");
        let got = refusal(&base.replacen(from, to, 1));
        assert!(got.contains(expected), "{to}: {got}");
    }
    assert!(
        refusal(&SMS.replace(
            r#""topic": "cdr-sms","#,
            r#""topic": "cdr-sms", "partition-by": "msisdn","#
        ))
        .contains("unknown field `partition-by`"),
        "not built yet, so refused rather than ignored"
    );
}

#[test]
fn zones_are_utc_or_a_signed_offset() {
    assert_eq!(parse_zone("UTC"), Ok(0));
    assert_eq!(parse_zone("Z"), Ok(0));
    assert_eq!(parse_zone("+05:30"), Ok(19_800));
    assert_eq!(parse_zone("-03:00"), Ok(-10_800));
    for bad in ["+5:30", "05:30", "+24:00", "+05:60", "Europe/Berlin", ""] {
        assert!(parse_zone(bad).is_err(), "{bad}");
    }
}

#[test]
fn kinds_compare_by_name_so_a_rebuilt_catalog_is_the_same() {
    assert_eq!(data(), Catalog::builtin().get("data").unwrap().clone());
    assert!(data() < voice());
}
