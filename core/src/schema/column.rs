//! A column of a record kind: its name and the type its values must have.

use std::fmt;

/// What a column's values must be. Each type is one rule of validation and,
/// in the typed output formats, one value type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    /// Any text. Required: not empty.
    Text,
    /// A URL, kept as text. Required: not empty.
    Url,
    /// ASCII digits only, from `min` to `max` of them (phone numbers: E.164
    /// allows at most 15). Kept as text: leading zeros matter.
    Digits {
        /// Fewest digits.
        min: u8,
        /// Most digits.
        max: u8,
    },
    /// An unsigned 64-bit integer, digits only (no sign, no spaces).
    Unsigned,
    /// A signed 64-bit integer: an optional `-`, then digits.
    Signed,
    /// A decimal number: an optional `-`, digits, and at most `scale`
    /// fraction digits after a `.`.
    Decimal {
        /// Most fraction digits.
        scale: u8,
    },
    /// Exactly one of `symbols`, case-sensitive.
    Enum {
        /// The values allowed, in declaration order.
        symbols: Vec<String>,
    },
    /// An IPv4 or IPv6 address, as `std::net::IpAddr` parses it.
    Ip,
    /// `YYYY-MM-DD HH:MM:SS` with at most `precision` fraction digits, read
    /// at `offset_secs` east of UTC (`None`: the zone configured for all files).
    Timestamp {
        /// Most fraction digits (0 to 6).
        precision: u8,
        /// The column's own zone, seconds east of UTC.
        offset_secs: Option<i32>,
    },
}

impl ColumnType {
    /// The name a declaration gives this type (`type = "digits"`).
    pub fn name(&self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Url => "url",
            ColumnType::Digits { .. } => "digits",
            ColumnType::Unsigned => "unsigned",
            ColumnType::Signed => "signed",
            ColumnType::Decimal { .. } => "decimal",
            ColumnType::Enum { .. } => "enum",
            ColumnType::Ip => "ip",
            ColumnType::Timestamp { .. } => "timestamp",
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Digits { min, max } => write!(f, "digits {min}..={max}"),
            ColumnType::Decimal { scale } => write!(f, "decimal scale {scale}"),
            ColumnType::Enum { symbols } => write!(f, "enum {}", symbols.join("|")),
            ColumnType::Timestamp { precision, offset_secs } => {
                write!(f, "timestamp({precision})")?;
                match offset_secs {
                    Some(s) => write!(f, " at {}", offset_text(*s)),
                    None => Ok(()),
                }
            }
            other => f.write_str(other.name()),
        }
    }
}

/// `+HH:MM` / `-HH:MM` of an offset in seconds east of UTC.
pub(crate) fn offset_text(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
}

/// One column of a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The header name the column is found by; also its key in the output.
    pub name: String,
    /// What its values must be.
    pub ty: ColumnType,
    /// An optional column's value may be empty (null in the typed formats);
    /// a required one's may not. Either way the header must name it.
    pub optional: bool,
}

impl Column {
    /// A required column.
    pub fn required(name: &str, ty: ColumnType) -> Self {
        Column {
            name: name.to_owned(),
            ty,
            optional: false,
        }
    }
}
