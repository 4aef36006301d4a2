//! Kinds declared in the config file, one table per kind:
//!
//! ```toml
//! [kind.sms]
//! files = ["cdr_sms_*.csv", "cdr_sms_*.csv.gz"]
//! topic = "cdr-sms"
//! time-column = "sent_time"
//! # dead-letter-topic = "cdr-sms-dlq"    (default: the one of all kinds)
//! columns = [
//!   { name = "msisdn", type = "digits", min = 6, max = 15 },
//!   { name = "sms_type", type = "enum", symbols = ["mo", "mt"] },
//!   { name = "message_bytes", type = "unsigned" },
//!   { name = "note", type = "text", optional = true },
//!   { name = "sent_time", type = "timestamp", precision = 6, zone = "+02:00" },
//! ]
//! ```
//!
//! Types: `text`, `url`, `digits` (`min`, `max`), `unsigned`, `signed`,
//! `decimal` (`scale`), `enum` (`symbols`), `ip`, `timestamp` (`precision`,
//! 6 unless given; `zone`, `UTC` or `+HH:MM`, the configured zone unless given).
//! The service hands the tables over as JSON (the config file's tables, or
//! `CDR_KINDS` set directly), so this reads JSON.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Column, ColumnType, KindSpec, SchemaError};

/// One `[kind.<name>]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct KindDecl {
    files: Vec<String>,
    topic: String,
    time_column: String,
    columns: Vec<ColumnDecl>,
    #[serde(default)]
    dead_letter_topic: Option<String>,
}

/// One entry of `columns`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnDecl {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    optional: bool,
    min: Option<u8>,
    max: Option<u8>,
    scale: Option<u8>,
    symbols: Option<Vec<String>>,
    precision: Option<u8>,
    zone: Option<String>,
}

/// The kinds of a JSON object `{"<name>": {<declaration>}, ...}`, in name
/// order, not yet checked as a set (see [`super::Catalog::new`]).
pub fn from_json(text: &str) -> Result<Vec<KindSpec>, SchemaError> {
    let decls: BTreeMap<String, serde_json::Value> = serde_json::from_str(text).map_err(|e| SchemaError {
        kind: String::new(),
        problem: format!("kind declarations are not an object of tables: {e}"),
    })?;
    decls
        .into_iter()
        .map(|(name, value)| {
            let fail = |problem: String| SchemaError {
                kind: name.clone(),
                problem,
            };
            let decl: KindDecl = serde_json::from_value(value).map_err(|e| fail(e.to_string()))?;
            let columns = decl
                .columns
                .into_iter()
                .map(|c| {
                    let column = c.name.clone();
                    column_of(c).map_err(|p| fail(format!("column {column:?}: {p}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(KindSpec {
                name: name.clone(),
                files: decl.files,
                topic: decl.topic,
                columns,
                time_column: decl.time_column,
                dead_letter_topic: decl.dead_letter_topic,
            })
        })
        .collect()
}

fn column_of(c: ColumnDecl) -> Result<Column, String> {
    let allowed: &[&str] = match c.ty.as_str() {
        "digits" => &["min", "max"],
        "decimal" => &["scale"],
        "enum" => &["symbols"],
        "timestamp" => &["precision", "zone"],
        _ => &[],
    };
    let given = [
        ("min", c.min.is_some()),
        ("max", c.max.is_some()),
        ("scale", c.scale.is_some()),
        ("symbols", c.symbols.is_some()),
        ("precision", c.precision.is_some()),
        ("zone", c.zone.is_some()),
    ];
    if let Some((key, _)) = given.iter().find(|(k, set)| *set && !allowed.contains(k)) {
        return Err(format!("`{key}` does not apply to type {:?}", c.ty));
    }
    let ty = match c.ty.as_str() {
        "text" => ColumnType::Text,
        "url" => ColumnType::Url,
        "digits" => ColumnType::Digits {
            min: c.min.unwrap_or(1),
            max: c.max.unwrap_or(64),
        },
        "unsigned" => ColumnType::Unsigned,
        "signed" => ColumnType::Signed,
        "decimal" => ColumnType::Decimal {
            scale: c.scale.ok_or("a decimal needs `scale`")?,
        },
        "enum" => ColumnType::Enum {
            symbols: c.symbols.ok_or("an enum needs `symbols`")?,
        },
        "ip" => ColumnType::Ip,
        "timestamp" => ColumnType::Timestamp {
            precision: c.precision.unwrap_or(6),
            offset_secs: c.zone.as_deref().map(parse_zone).transpose()?,
        },
        other => {
            return Err(format!(
                "unknown type {other:?}: text, url, digits, unsigned, signed, decimal, enum, ip or timestamp"
            ))
        }
    };
    Ok(Column {
        name: c.name,
        ty,
        optional: c.optional,
    })
}

/// `UTC`, `Z` or `+HH:MM` / `-HH:MM`, as seconds east of UTC.
pub fn parse_zone(zone: &str) -> Result<i32, String> {
    if zone.eq_ignore_ascii_case("utc") || zone == "Z" {
        return Ok(0);
    }
    let bad = || format!("zone {zone:?}: expected UTC or +HH:MM / -HH:MM");
    let (sign, rest) = match zone.as_bytes().first() {
        Some(b'+') => (1, &zone[1..]),
        Some(b'-') => (-1, &zone[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return Err(bad());
    }
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}
