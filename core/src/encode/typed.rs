//! A valid row's text read as the typed values its declaration promises:
//! what the `json-typed` and `avro` formats write. Validation has already
//! accepted every value, so reading one fails only where the target type is
//! narrower than the rule (an unsigned above `i64::MAX` in Avro's `long`).

use std::sync::{Mutex, OnceLock};

use crate::parse::time_micros;
use crate::schema::{ColumnType, RecordKind};

/// How each declared column of a kind becomes a typed value, prepared once.
#[derive(Debug, Clone)]
pub(super) struct Typing {
    pub(super) columns: Vec<TypedColumn>,
}

/// One declared column: its name and how its text is read.
#[derive(Debug, Clone)]
pub(super) struct TypedColumn {
    pub(super) name: String,
    pub(super) optional: bool,
    pub(super) ty: Typed,
}

/// The value type a column's text is read as.
#[derive(Debug, Clone)]
pub(super) enum Typed {
    /// Text, digits kept as text (leading zeros matter), IP addresses, URLs.
    Text,
    /// An unsigned 64-bit integer.
    Unsigned,
    /// A signed 64-bit integer.
    Signed,
    /// A decimal with at most `scale` fraction digits.
    Decimal { scale: u8 },
    /// One of `symbols`; interned so that serializers needing `'static` names get them.
    Enum { symbols: Vec<&'static str> },
    /// A local time at `offset_secs` east of UTC.
    Timestamp { offset_secs: i32 },
}

/// A column's value, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value<'a> {
    /// An optional column's empty value.
    Null,
    Text(&'a str),
    Unsigned(u64),
    Signed(i64),
    /// `unscaled / 10^scale`.
    Decimal {
        unscaled: i128,
        scale: u8,
    },
    /// The symbol's position in the declaration, and the symbol.
    Symbol(u32, &'static str),
    /// UTC epoch microseconds, with the text and zone it was read from.
    Timestamp {
        micros: i64,
        text: &'a str,
        offset_secs: i32,
    },
}

impl Typing {
    /// The typing of `kind`'s columns; timestamps without a zone of their own
    /// are read at `default_offset_secs` (the `--time-offset` of all files).
    pub(super) fn new(kind: &RecordKind, default_offset_secs: i32) -> Typing {
        let columns = kind
            .columns()
            .iter()
            .map(|c| TypedColumn {
                name: c.name.clone(),
                optional: c.optional,
                ty: match &c.ty {
                    ColumnType::Text | ColumnType::Url | ColumnType::Digits { .. } | ColumnType::Ip => Typed::Text,
                    ColumnType::Unsigned => Typed::Unsigned,
                    ColumnType::Signed => Typed::Signed,
                    ColumnType::Decimal { scale } => Typed::Decimal { scale: *scale },
                    ColumnType::Enum { symbols } => Typed::Enum {
                        symbols: symbols.iter().map(|s| intern(s)).collect(),
                    },
                    ColumnType::Timestamp { offset_secs, .. } => Typed::Timestamp {
                        offset_secs: offset_secs.unwrap_or(default_offset_secs),
                    },
                },
            })
            .collect();
        Typing { columns }
    }
}

impl TypedColumn {
    /// Reads `text`, which validation accepted for this column.
    pub(super) fn read<'a>(&self, text: &'a str) -> Value<'a> {
        if text.is_empty() && self.optional {
            return Value::Null;
        }
        let accepted = "validation accepted the value for its column";
        match &self.ty {
            Typed::Text => Value::Text(text),
            Typed::Unsigned => Value::Unsigned(text.parse().expect(accepted)),
            Typed::Signed => Value::Signed(text.parse().expect(accepted)),
            Typed::Decimal { scale } => Value::Decimal {
                unscaled: unscaled(text, *scale).expect(accepted),
                scale: *scale,
            },
            Typed::Enum { symbols } => {
                let (i, s) = symbols.iter().enumerate().find(|(_, s)| **s == text).expect(accepted);
                Value::Symbol(i as u32, s)
            }
            Typed::Timestamp { offset_secs } => Value::Timestamp {
                micros: time_micros(text.as_bytes(), *offset_secs).expect(accepted),
                text,
                offset_secs: *offset_secs,
            },
        }
    }
}

/// The unscaled integer of a decimal text with at most `scale` fraction
/// digits: `-12.5` at scale 2 is `-1250`. At most 38 digits (validation's
/// bound), so it fits an `i128`.
fn unscaled(text: &str, scale: u8) -> Option<i128> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut n: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        n = n
            .checked_mul(10)?
            .checked_add(i128::from(b.checked_sub(b'0').filter(|d| *d < 10)?))?;
    }
    for _ in frac.len()..usize::from(scale) {
        n = n.checked_mul(10)?;
    }
    Some(if neg { -n } else { n })
}

/// A `'static` copy of `s`, made once per distinct string for the process:
/// Avro's serializer names enum symbols as `&'static str`, and the symbols
/// are a handful of words declared at start.
fn intern(s: &str) -> &'static str {
    static SEEN: OnceLock<Mutex<Vec<&'static str>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = seen.iter().find(|k| **k == s) {
        return known;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    seen.push(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decimal_is_read_as_its_unscaled_integer_at_the_declared_scale() {
        assert_eq!(unscaled("12.5", 2), Some(1250));
        assert_eq!(unscaled("-0.07", 2), Some(-7));
        assert_eq!(unscaled("3", 0), Some(3));
        assert_eq!(unscaled("007.10", 3), Some(7100));
        assert_eq!(unscaled(&"9".repeat(38), 0), Some(10i128.pow(38) - 1));
    }

    #[test]
    fn interning_returns_one_copy_per_distinct_symbol() {
        let a = intern("voice");
        let b = intern(&String::from("voice"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(intern("video"), "video");
    }
}
