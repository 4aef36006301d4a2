//! `avro` values: Avro binary of a schema generated from the kind's
//! declaration, in the Confluent wire format (a zero byte, the registry's
//! 4-byte big-endian schema id, then the datum), so that any consumer that
//! follows the registry decodes it.
//!
//! The schema: a record `cdr_<kind>` in namespace `cdr_to_redpanda` with one
//! field per declared column, then `_source_file`, `_ingestion_timestamp`
//! (timestamp-micros) and `_record_type`. Column types map as:
//!
//! | declared                         | Avro                                         |
//! |----------------------------------|----------------------------------------------|
//! | text, url, digits, ip            | `string`                                     |
//! | unsigned, signed                 | `long` (an unsigned above `i64::MAX` is dead-lettered) |
//! | decimal with scale `s`           | `bytes`, logical `decimal`, precision 38, scale `s` |
//! | enum                             | `enum` `cdr_<kind>_<column>` (`string` if a symbol is not an Avro name) |
//! | timestamp                        | `long`, logical `timestamp-micros` (UTC)     |
//!
//! An optional column is `["null", T]` with default `null`, so adding one is
//! a backward-compatible change. Columns a file has beyond the declaration
//! are not in the schema and not written.

use apache_avro::Schema;
use serde_json::{json, Value as Json};

use super::format::ValueError;
use super::typed::{TypedColumn, Typing, Value};
use super::FileContext;
use crate::parse::{time_micros, ValidRow};
use crate::schema::{ColumnType, RecordKind};

/// The Confluent wire format's first byte.
pub const MAGIC: u8 = 0;

/// The namespace of every generated schema.
pub const NAMESPACE: &str = "cdr_to_redpanda";

/// The Avro schema of `kind`'s valid rows, as the JSON text registered.
pub fn schema_text(kind: &RecordKind) -> String {
    schema_json(kind).to_string()
}

fn record_name(kind: &RecordKind) -> String {
    format!("cdr_{}", kind.as_str().replace('-', "_"))
}

fn schema_json(kind: &RecordKind) -> Json {
    let record = record_name(kind);
    let mut fields: Vec<Json> = kind
        .columns()
        .iter()
        .map(|c| {
            let ty = match &c.ty {
                ColumnType::Text | ColumnType::Url | ColumnType::Digits { .. } | ColumnType::Ip => json!("string"),
                ColumnType::Unsigned | ColumnType::Signed => json!("long"),
                ColumnType::Decimal { scale } => {
                    json!({"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": scale})
                }
                ColumnType::Enum { symbols } if is_avro_enum(&c.ty) => {
                    json!({"type": "enum", "name": format!("{record}_{}", c.name), "symbols": symbols})
                }
                ColumnType::Enum { .. } => json!("string"),
                ColumnType::Timestamp { .. } => json!({"type": "long", "logicalType": "timestamp-micros"}),
            };
            if c.optional {
                json!({"name": c.name, "type": ["null", ty], "default": null})
            } else {
                json!({"name": c.name, "type": ty})
            }
        })
        .collect();
    fields.push(json!({"name": "_source_file", "type": "string"}));
    fields.push(json!({"name": "_ingestion_timestamp", "type": {"type": "long", "logicalType": "timestamp-micros"}}));
    fields.push(json!({"name": "_record_type", "type": "string"}));
    json!({
        "type": "record",
        "name": record,
        "namespace": NAMESPACE,
        "doc": format!("CDR kind {:?} (cdr-to-redpanda)", kind.as_str()),
        "fields": fields,
    })
}

/// Whether a column of type `ty` is an Avro `enum` (else a `string`): an
/// enum whose every symbol Avro allows.
fn is_avro_enum(ty: &ColumnType) -> bool {
    matches!(ty, ColumnType::Enum { symbols } if symbols.iter().all(|s| is_avro_name(s)))
}

/// `[A-Za-z_][A-Za-z0-9_]*`: what Avro allows as a name or enum symbol.
fn is_avro_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_') && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Why readers of one schema cannot read data of the other, naming the
/// field: `None` if the check passes. `backward`: the `new` schema must read
/// data written with `old` (Confluent's BACKWARD); `forward`: `old` must read
/// data written with `new` (FORWARD); both for FULL. A schema text that does
/// not parse is reported as such.
pub fn incompatibility(old: &str, new: &str, backward: bool, forward: bool) -> Option<String> {
    use apache_avro::schema_compatibility::SchemaCompatibility;
    let (old, new) = match (Schema::parse_str(old), Schema::parse_str(new)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) => return Some(format!("the registered schema does not parse: {e}")),
        (_, Err(e)) => return Some(format!("the new schema does not parse: {e}")),
    };
    let explain = |e: apache_avro::error::CompatibilityError| {
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text = format!("{text}: {c}");
            cause = c.source();
        }
        text
    };
    if backward {
        if let Err(e) = SchemaCompatibility::can_read(&old, &new) {
            return Some(format!(
                "the new schema cannot read data of the registered one: {}",
                explain(e)
            ));
        }
    }
    if forward {
        if let Err(e) = SchemaCompatibility::can_read(&new, &old) {
            return Some(format!(
                "the registered schema cannot read data of the new one: {}",
                explain(e)
            ));
        }
    }
    None
}

/// Writes one kind's rows in its Avro schema, framed with its schema id.
#[derive(Debug)]
pub(super) struct AvroWriter {
    id: u32,
    typing: Typing,
    /// Per declared column: whether its schema is an Avro enum (else a string).
    enums: Vec<bool>,
}

impl AvroWriter {
    /// The writer of `kind`'s rows under the registry's `id` for
    /// [`schema_text`]; timestamps without a zone of their own are read at
    /// `default_offset_secs` east of UTC.
    pub(super) fn new(kind: &RecordKind, default_offset_secs: i32, id: u32) -> AvroWriter {
        let enums = kind.columns().iter().map(|c| is_avro_enum(&c.ty)).collect();
        AvroWriter {
            id,
            typing: Typing::new(kind, default_offset_secs),
            enums,
        }
    }

    /// The registry's id of the schema.
    pub(super) fn schema_id(&self) -> u32 {
        self.id
    }

    /// Writes the framed Avro value of `row` into `out`, replacing its content.
    ///
    /// The datum is written straight from the typed values in the schema's
    /// field order, as the specification's binary encoding has it (a union
    /// as its branch index then the value, long and int zig-zag varints,
    /// strings and bytes length-prefixed, an enum as its symbol's index):
    /// apache-avro's schema-aware serializer, which looks every field up by
    /// name, took three quarters of the stage's time. Its reader decodes
    /// what this writes in the tests, and fastavro does against the stack.
    pub(super) fn write(
        &self,
        ctx: &FileContext,
        row: &ValidRow<'_>,
        ingestion_ts: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), ValueError> {
        let ingested = ingestion_micros(ingestion_ts).ok_or_else(|| ValueError {
            column: "_ingestion_timestamp".into(),
            reason: format!("{ingestion_ts:?} is not YYYY-MM-DDTHH:MM:SS.ffffff"),
        })?;
        out.clear();
        out.push(MAGIC);
        out.extend_from_slice(&self.id.to_be_bytes());
        let columns = &self.typing.columns;
        for ((col, text), &as_enum) in columns.iter().zip(row.values()).zip(&self.enums) {
            put_field(out, col, col.read(text), as_enum)?;
        }
        put_bytes(out, ctx.file_name().as_bytes());
        put_long(out, ingested);
        put_bytes(out, ctx.kind().as_str().as_bytes());
        Ok(())
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff` (UTC) as epoch microseconds.
fn ingestion_micros(ts: &str) -> Option<i64> {
    let mut text: [u8; 26] = ts.as_bytes().try_into().ok()?;
    if text[10] != b'T' {
        return None;
    }
    text[10] = b' ';
    time_micros(&text, 0)
}

/// A value of `col`: an optional column's union branch (0 `null`, 1 its
/// type), then the value as its type.
fn put_field(out: &mut Vec<u8>, col: &TypedColumn, value: Value<'_>, as_enum: bool) -> Result<(), ValueError> {
    if col.optional {
        put_long(out, i64::from(value != Value::Null));
    }
    match value {
        // The branch said it all.
        Value::Null => {}
        Value::Text(t) => put_bytes(out, t.as_bytes()),
        Value::Unsigned(n) => match i64::try_from(n) {
            Ok(n) => put_long(out, n),
            Err(_) => {
                return Err(ValueError {
                    column: col.name.clone(),
                    reason: format!("{n} does not fit Avro's long (at most {})", i64::MAX),
                })
            }
        },
        Value::Signed(n) | Value::Timestamp { micros: n, .. } => put_long(out, n),
        Value::Decimal { unscaled, .. } => put_bytes(out, &twos_complement(unscaled)),
        Value::Symbol(i, _) if as_enum => put_long(out, i64::from(i)),
        Value::Symbol(_, sym) => put_bytes(out, sym.as_bytes()),
    }
    Ok(())
}

/// An Avro `long` (and `int`): zig-zag, then a little-endian base-128 varint.
fn put_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Avro `bytes` and `string`: the length as a `long`, then the bytes.
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// The shortest big-endian two's complement of `n`: Avro's decimal bytes.
fn twos_complement(n: i128) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let sign = if n < 0 { 0xff } else { 0x00 };
    // Drop a leading sign byte while the next byte still carries the sign bit.
    let skip = bytes
        .windows(2)
        .take_while(|w| w[0] == sign && (w[1] & 0x80) == (sign & 0x80))
        .count();
    bytes[skip..].to_vec()
}

#[cfg(test)]
mod tests;
