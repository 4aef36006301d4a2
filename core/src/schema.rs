//! The two CDR record kinds and their columns, as the contract defines them.

use std::fmt;

/// Which kind of CDR a file holds; decided by the file name's prefix only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    /// Data sessions: `cdr_data_*` files, the `cdr-data` topic.
    Data,
    /// Voice calls: `cdr_voice_*` files, the `cdr-voice` topic.
    Voice,
}

/// Required columns of a data file, in the order the JSON value lists them.
pub const DATA_COLUMNS: [&str; 8] = [
    "msisdn",
    "tower_id",
    "up_bytes",
    "down_bytes",
    "data_type",
    "ip_address",
    "website_url",
    "event_datetime",
];

/// Required columns of a voice file, in the order the JSON value lists them.
pub const VOICE_COLUMNS: [&str; 6] = [
    "msisdn",
    "tower_id",
    "call_type",
    "dest_nr",
    "call_duration_sec",
    "start_time",
];

impl RecordKind {
    /// Every kind, in a fixed order.
    pub const ALL: [RecordKind; 2] = [RecordKind::Data, RecordKind::Voice];

    /// The value of `_record_type` in every message.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Data => "data",
            RecordKind::Voice => "voice",
        }
    }

    /// The file-name prefix that routes a file to this kind.
    pub fn file_prefix(self) -> &'static str {
        match self {
            RecordKind::Data => "cdr_data_",
            RecordKind::Voice => "cdr_voice_",
        }
    }

    /// The kind's required columns, in the order the JSON value lists them.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            RecordKind::Data => &DATA_COLUMNS,
            RecordKind::Voice => &VOICE_COLUMNS,
        }
    }

    /// The column whose value is the record's event time (and Kafka timestamp).
    pub fn time_column(self) -> &'static str {
        match self {
            RecordKind::Data => "event_datetime",
            RecordKind::Voice => "start_time",
        }
    }

    /// Routes by prefix; `cdr_data_x.csv` is data, `my_cdr_data_x.csv` is nothing.
    pub fn from_file_name(name: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| name.starts_with(k.file_prefix()))
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_by_prefix_not_substring() {
        assert_eq!(
            RecordKind::from_file_name("cdr_data_20240101_000000.csv"),
            Some(RecordKind::Data)
        );
        assert_eq!(
            RecordKind::from_file_name("cdr_voice_20240101_000000.csv.gz"),
            Some(RecordKind::Voice)
        );
        assert_eq!(RecordKind::from_file_name("old_cdr_data_20240101.csv"), None);
        assert_eq!(RecordKind::from_file_name("cdr_voicemail.csv"), None);
    }
}
