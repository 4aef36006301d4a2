//! The output formats a kind's valid rows can be written in, chosen per kind.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::avro::AvroWriter;
use super::typed::Typing;
use crate::schema::RecordKind;

/// The name of an output format, as settings spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Format {
    /// Every value a JSON string, as in the file: the Python streamer's format.
    #[default]
    Json,
    /// Numbers as JSON numbers, timestamps as ISO-8601 with their zone, an
    /// optional column's empty value as `null`.
    JsonTyped,
    /// Avro binary of the kind's generated schema, in the Confluent wire format.
    Avro,
}

impl Format {
    /// Every format, in the order help texts list them.
    pub const ALL: [Format; 3] = [Format::Json, Format::JsonTyped, Format::Avro];

    /// The name settings use.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::JsonTyped => "json-typed",
            Format::Avro => "avro",
        }
    }

    /// Whether values of this format need a schema registry.
    pub fn needs_registry(self) -> bool {
        self == Format::Avro
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name that is not one of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?}: expected json, json-typed or avro")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// A kind's format, prepared once at start: what [`write_value`](super::write_value)
/// needs beyond the row. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ValueFormat(pub(super) Prepared);

/// What each format prepares once.
#[derive(Debug, Clone, Default)]
pub(super) enum Prepared {
    #[default]
    Json,
    JsonTyped(Arc<Typing>),
    Avro(Arc<AvroWriter>),
}

impl ValueFormat {
    /// `json`: nothing to prepare.
    pub fn json() -> ValueFormat {
        ValueFormat(Prepared::Json)
    }

    /// `json-typed` for `kind`; timestamps without a zone of their own are in
    /// the zone `default_offset_secs` east of UTC.
    pub fn json_typed(kind: &RecordKind, default_offset_secs: i32) -> ValueFormat {
        ValueFormat(Prepared::JsonTyped(Arc::new(Typing::new(kind, default_offset_secs))))
    }

    /// `avro` for `kind`, framed with the registry's `schema_id` for the
    /// schema [`avro::schema_text`](super::avro::schema_text) gave.
    pub fn avro(kind: &RecordKind, default_offset_secs: i32, schema_id: u32) -> ValueFormat {
        ValueFormat(Prepared::Avro(Arc::new(AvroWriter::new(
            kind,
            default_offset_secs,
            schema_id,
        ))))
    }

    /// Which format this is.
    pub fn format(&self) -> Format {
        match self.0 {
            Prepared::Json => Format::Json,
            Prepared::JsonTyped(_) => Format::JsonTyped,
            Prepared::Avro(_) => Format::Avro,
        }
    }

    /// The registry's schema id, for `avro`.
    pub fn schema_id(&self) -> Option<u32> {
        match &self.0 {
            Prepared::Avro(w) => Some(w.schema_id()),
            _ => None,
        }
    }
}

/// A valid row whose value cannot be written in its kind's format (an
/// unsigned above `i64::MAX` for Avro's `long`): it goes to the dead-letter
/// topic with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {column:?}: {reason}")]
pub struct ValueError {
    /// The column whose value does not fit.
    pub column: String,
    /// Why.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip_and_unknown_ones_are_refused() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
        }
        let err = "protobuf".parse::<Format>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown format \"protobuf\": expected json, json-typed or avro"
        );
    }
}
