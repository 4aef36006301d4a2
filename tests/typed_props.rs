//! Properties of the typed formats over generated declarations: for kinds of
//! random columns (every type, required or optional) and random valid values,
//! every row is valid, its `json-typed` value holds each value as its type,
//! and its `avro` value decodes (with apache-avro's reader, against the
//! generated schema) to the same typed values.

use apache_avro::types::Value as Avro;
use cdr_to_redpanda::encode::{self, avro, FileContext, ValueFormat};
use cdr_to_redpanda::parse::{CdrReader, Row, Validation};
use cdr_to_redpanda::schema::{declare, Catalog};
use proptest::prelude::*;
use serde_json::{json, Value};

const TS: &str = "2025-12-06T20:55:06.123456";

/// A column type as declared in JSON, with a strategy for its valid values
/// and their expected typed JSON.
#[derive(Debug, Clone)]
enum Ty {
    Unsigned,
    Signed,
    Decimal(u8),
    Enum,
    Text,
    Digits,
    Timestamp(u8),
}

impl Ty {
    fn declaration(&self) -> Value {
        match self {
            Ty::Unsigned => json!({"type": "unsigned"}),
            Ty::Signed => json!({"type": "signed"}),
            Ty::Decimal(s) => json!({"type": "decimal", "scale": s}),
            Ty::Enum => json!({"type": "enum", "symbols": ["mo", "mt", "x_3"]}),
            Ty::Text => json!({"type": "text"}),
            Ty::Digits => json!({"type": "digits", "min": 1, "max": 12}),
            Ty::Timestamp(p) => json!({"type": "timestamp", "precision": p}),
        }
    }

    /// A valid value's text, its typed JSON in json-typed, and what Avro
    /// holds (as [`plain`] shows it).
    fn value(&self) -> BoxedStrategy<Expect> {
        let same = |text: String, v: Value| (text, v.clone(), v);
        match self.clone() {
            Ty::Unsigned => any::<u64>().prop_map(move |n| same(n.to_string(), json!(n))).boxed(),
            Ty::Signed => any::<i64>().prop_map(move |n| same(n.to_string(), json!(n))).boxed(),
            Ty::Decimal(scale) => (any::<i64>(), 0..=scale)
                .prop_map(move |(n, frac_digits)| {
                    let abs = format!("{:0>w$}", n.unsigned_abs(), w = usize::from(frac_digits) + 1);
                    let sign = if n < 0 { "-" } else { "" };
                    let (int, frac) = abs.split_at(abs.len().saturating_sub(usize::from(frac_digits)));
                    let int = if int.is_empty() { "0" } else { int };
                    let text = if frac.is_empty() {
                        format!("{sign}{int}")
                    } else {
                        format!("{sign}{int}.{frac}")
                    };
                    let unscaled = i128::from(n) * 10i128.pow(u32::from(scale - frac_digits));
                    (
                        text,
                        json!(canonical_decimal(unscaled, scale)),
                        json!(unscaled.to_string()),
                    )
                })
                .boxed(),
            Ty::Enum => prop::sample::select(vec!["mo", "mt", "x_3"])
                .prop_map(move |s| same(s.to_owned(), json!(s)))
                .boxed(),
            Ty::Text => "[a-zA-Z0-9 ,\"é]{1,12}"
                .prop_map(move |s| same(s.clone(), json!(s)))
                .boxed(),
            Ty::Digits => "[0-9]{1,12}".prop_map(move |s| same(s.clone(), json!(s))).boxed(),
            Ty::Timestamp(p) => (0i64..4_102_444_800, 0u32..1_000_000)
                .prop_map(move |(secs, micros)| {
                    let t = chrono::DateTime::from_timestamp(secs, 0).unwrap();
                    let base = t.format("%Y-%m-%d %H:%M:%S").to_string();
                    let frac = format!("{micros:06}")[..usize::from(p)].to_owned();
                    let text = if p == 0 { base } else { format!("{base}.{frac}") };
                    let iso = format!("{}+00:00", text.replacen(' ', "T", 1));
                    let micros = t.format("%Y-%m-%dT%H:%M:%S").to_string()
                        + &format!(".{:0<6}+00:00", format!("{micros:06}")[..usize::from(p)].to_owned());
                    (text, json!(iso), json!(micros))
                })
                .boxed(),
        }
    }
}

/// A value's text, its json-typed JSON, and its Avro value as [`plain`] shows it.
type Expect = (String, Value, Value);

/// `unscaled / 10^scale` written with exactly `scale` fraction digits: the
/// canonical JSON number json-typed writes.
fn canonical_decimal(unscaled: i128, scale: u8) -> serde_json::Number {
    let pow = 10u128.pow(u32::from(scale));
    let abs = unscaled.unsigned_abs();
    let sign = if unscaled < 0 { "-" } else { "" };
    let text = if scale == 0 {
        format!("{sign}{abs}")
    } else {
        format!("{sign}{}.{:0w$}", abs / pow, abs % pow, w = usize::from(scale))
    };
    serde_json::from_str(&text).unwrap()
}

fn ty() -> impl Strategy<Value = Ty> {
    prop_oneof![
        Just(Ty::Unsigned),
        Just(Ty::Signed),
        (0u8..=4).prop_map(Ty::Decimal),
        Just(Ty::Enum),
        Just(Ty::Text),
        Just(Ty::Digits),
        (0u8..=6).prop_map(Ty::Timestamp),
    ]
}

/// Columns (type, optional) and rows of what each column's value is.
fn kind_and_rows() -> impl Strategy<Value = (Vec<(Ty, bool)>, Vec<Vec<Expect>>)> {
    prop::collection::vec((ty(), any::<bool>()), 1..6).prop_flat_map(|cols| {
        let row: Vec<BoxedStrategy<Expect>> = cols
            .iter()
            .map(|(t, optional)| {
                if *optional {
                    prop_oneof![1 => Just((String::new(), Value::Null, Value::Null)), 3 => t.value()].boxed()
                } else {
                    t.value()
                }
            })
            .collect();
        (Just(cols), prop::collection::vec(row, 1..8))
    })
}

/// The avro value apache-avro decodes, as the JSON json-typed writes.
fn plain(v: &Avro) -> Value {
    match v {
        Avro::Null => Value::Null,
        Avro::Union(_, inner) => plain(inner),
        Avro::Long(n) => json!(n),
        Avro::String(s) | Avro::Enum(_, s) => json!(s),
        Avro::TimestampMicros(us) => {
            let t = chrono::DateTime::from_timestamp_micros(*us).unwrap();
            json!(t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string())
        }
        Avro::Decimal(d) => {
            let bytes: Vec<u8> = d.try_into().unwrap();
            let mut n: i128 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
                -1
            } else {
                0
            };
            for b in bytes {
                n = (n << 8) | i128::from(b);
            }
            json!(n.to_string())
        }
        other => panic!("unexpected Avro value {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_declared_type_is_written_as_its_type_in_json_typed_and_avro((cols, rows) in kind_and_rows()) {
        let mut columns: Vec<Value> = cols
            .iter()
            .enumerate()
            .map(|(i, (t, optional))| {
                let mut d = t.declaration();
                d["name"] = json!(format!("c{i}"));
                d["optional"] = json!(optional);
                d
            })
            .collect();
        columns.push(json!({"name": "at", "type": "timestamp"}));
        let decl = json!({"k": {"files": ["k_*"], "topic": "t", "time-column": "at", "columns": columns}});
        let catalog = Catalog::new(declare::from_json(&decl.to_string()).unwrap()).unwrap();
        let kind = catalog.get("k").unwrap().clone();

        let mut csv = csv::Writer::from_writer(Vec::new());
        let header: Vec<String> = (0..cols.len()).map(|i| format!("c{i}")).chain(["at".to_owned()]).collect();
        csv.write_record(&header).unwrap();
        for row in &rows {
            let mut rec: Vec<&str> = row.iter().map(|(text, _, _)| text.as_str()).collect();
            rec.push("2024-01-01 00:00:00");
            csv.write_record(&rec).unwrap();
        }
        let csv = csv.into_inner().unwrap();

        let schema = apache_avro::Schema::parse_str(&avro::schema_text(&kind)).unwrap();
        let typed = FileContext::new("k_1", kind.clone(), &[1; 32]).with_format(ValueFormat::json_typed(&kind, 0));
        let framed = FileContext::new("k_1", kind.clone(), &[1; 32]).with_format(ValueFormat::avro(&kind, 0, 9));
        let mut reader = CdrReader::new(kind.clone(), "k_1", &csv[..], &Validation::default()).unwrap();
        let mut out = Vec::new();
        for row in &rows {
            let Some(Row::Valid(valid)) = reader.next_row().unwrap() else {
                panic!("a row of valid values is valid: {row:?}")
            };
            encode::write_value(&typed, &valid, TS, &mut out).unwrap();
            let v: Value = serde_json::from_slice(&out).unwrap();
            for (i, (_, want, _)) in row.iter().enumerate() {
                prop_assert_eq!(&v[format!("c{i}")], want, "json-typed column c{}", i);
            }

            // An unsigned above i64::MAX has no Avro long: refused naming the column.
            let too_big = cols.iter().zip(row).position(|((t, _), (text, _, _))| {
                matches!(t, Ty::Unsigned) && text.parse::<u64>().is_ok_and(|n| i64::try_from(n).is_err())
            });
            let written = encode::write_value(&framed, &valid, TS, &mut out);
            if let Some(i) = too_big {
                prop_assert_eq!(written.unwrap_err().column, format!("c{i}"));
                continue;
            }
            written.unwrap();
            prop_assert_eq!(&out[..5], &[0, 0, 0, 0, 9][..]);
            let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema).build().unwrap();
            let Avro::Record(fields) = reader.read_value(&mut &out[5..]).unwrap() else {
                panic!("not a record")
            };
            for (i, (_, _, want)) in row.iter().enumerate() {
                let got = plain(&fields[i].1);
                prop_assert_eq!(&got, want, "avro column c{}", i);
            }
        }
    }
}
