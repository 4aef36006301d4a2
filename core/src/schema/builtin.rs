//! The contract's two kinds, declared as any other kind is. Their topics and
//! enum lists are settings (`--data-topic`, `--data-types`, ...), so each is
//! a function of them; [`data`] and [`voice`] give the contract's defaults.

use super::{Column, ColumnType, KindSpec, RecordKind};

/// The contract's `data_type` values.
pub const DATA_TYPES: [&str; 4] = ["application", "text", "image", "video"];
/// The contract's `call_type` values.
pub const CALL_TYPES: [&str; 2] = ["voice", "video"];
/// The data kind's default topic.
pub const DATA_TOPIC: &str = "cdr-data";
/// The voice kind's default topic.
pub const VOICE_TOPIC: &str = "cdr-voice";

/// E.164: at most 15 digits; fewer than 6 is no subscriber number.
const PHONE: ColumnType = ColumnType::Digits { min: 6, max: 15 };
/// `YYYY-MM-DD HH:MM:SS[.ffffff]` in the zone configured for all files.
const EVENT_TIME: ColumnType = ColumnType::Timestamp {
    precision: 6,
    offset_secs: None,
};

fn symbols(list: &[impl AsRef<str>]) -> ColumnType {
    ColumnType::Enum {
        symbols: list.iter().map(|s| s.as_ref().to_owned()).collect(),
    }
}

/// Data sessions: `cdr_data_*` files.
pub fn data_spec(topic: &str, data_types: &[impl AsRef<str>]) -> KindSpec {
    KindSpec {
        name: "data".into(),
        files: vec!["cdr_data_*".into()],
        topic: topic.into(),
        columns: vec![
            Column::required("msisdn", PHONE),
            Column::required("tower_id", ColumnType::Unsigned),
            Column::required("up_bytes", ColumnType::Unsigned),
            Column::required("down_bytes", ColumnType::Unsigned),
            Column::required("data_type", symbols(data_types)),
            Column::required("ip_address", ColumnType::Ip),
            Column::required("website_url", ColumnType::Url),
            Column::required("event_datetime", EVENT_TIME),
        ],
        time_column: "event_datetime".into(),
        dead_letter_topic: None,
    }
}

/// Voice calls: `cdr_voice_*` files.
pub fn voice_spec(topic: &str, call_types: &[impl AsRef<str>]) -> KindSpec {
    KindSpec {
        name: "voice".into(),
        files: vec!["cdr_voice_*".into()],
        topic: topic.into(),
        columns: vec![
            Column::required("msisdn", PHONE),
            Column::required("tower_id", ColumnType::Unsigned),
            Column::required("call_type", symbols(call_types)),
            Column::required("dest_nr", PHONE),
            Column::required("call_duration_sec", ColumnType::Unsigned),
            Column::required("start_time", EVENT_TIME),
        ],
        time_column: "start_time".into(),
        dead_letter_topic: None,
    }
}

/// The data kind as the contract defines it.
pub fn data() -> RecordKind {
    RecordKind::new(data_spec(DATA_TOPIC, &DATA_TYPES))
}

/// The voice kind as the contract defines it.
pub fn voice() -> RecordKind {
    RecordKind::new(voice_spec(VOICE_TOPIC, &CALL_TYPES))
}

/// Whether `kind` is one of the two the contract defines.
pub fn is_builtin(kind: &RecordKind) -> bool {
    matches!(kind.as_str(), "data" | "voice")
}
