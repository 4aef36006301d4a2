//! Encoding of stored values: a JSON object whose first key `"v"` is the
//! envelope version, followed by the body's fields, e.g.
//! `{"v":1,"name":"cdr_data_20240102_224000.csv",...}`.
//!
//! JSON so that a ledger can be inspected with any redb viewer and a bad value
//! says what is wrong with it. Every value carries its own version, so a later
//! build can read old values lazily, without rewriting the whole table.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::LedgerError;

/// The envelope version this build writes. v2 added the file record's retry
/// fields (`attempts`, `next_attempt_ms`) and the `parked` status; a v1 value
/// is a v2 value without them, so one decoder reads both (pinned by the golden
/// tests). An older build refuses a v2 value instead of misreading it.
pub(crate) const VALUE_VERSION: u32 = 2;

#[derive(Serialize)]
struct Envelope<'a, T> {
    v: u32,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// Encodes `body` in the current envelope. `what` names the value in errors.
pub(crate) fn encode<T: Serialize>(what: impl FnOnce() -> String, body: &T) -> Result<Vec<u8>, LedgerError> {
    serde_json::to_vec(&Envelope { v: VALUE_VERSION, body })
        .map_err(|source| LedgerError::Encode { what: what(), source })
}

/// Decodes a stored value of any supported envelope version. `what` names the
/// value (table and key) in the error.
pub(crate) fn decode<T: DeserializeOwned>(what: impl FnOnce() -> String, bytes: &[u8]) -> Result<T, LedgerError> {
    let corrupt = |what: String, detail: String| LedgerError::Corrupt { what, detail };
    let version = match serde_json::from_slice::<VersionOnly>(bytes) {
        Ok(VersionOnly { v }) => v,
        Err(e) => return Err(corrupt(what(), format!("no readable envelope version: {e}"))),
    };
    match version {
        1 | 2 => serde_json::from_slice(bytes).map_err(|e| corrupt(what(), format!("bad v{version} value: {e}"))),
        other => Err(corrupt(
            what(),
            format!("envelope version {other}; this build reads version {VALUE_VERSION}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileRecord, FileStatus};

    fn what() -> String {
        "test value".to_owned()
    }

    #[test]
    fn envelope_puts_version_first() {
        let status = FileStatus::Committed;
        #[derive(Serialize)]
        struct Body {
            status: FileStatus,
        }
        let bytes = encode(what, &Body { status }).unwrap();
        assert_eq!(bytes, br#"{"v":2,"status":"committed"}"#);
    }

    #[test]
    fn unknown_envelope_version_is_corrupt_with_detail() {
        let err = decode::<FileRecord>(what, br#"{"v":9,"name":"x"}"#).unwrap_err();
        match err {
            LedgerError::Corrupt { what, detail } => {
                assert_eq!(what, "test value");
                assert!(detail.contains("envelope version 9"), "{detail}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn value_without_envelope_is_corrupt() {
        let err = decode::<FileRecord>(what, br#"{"name":"x"}"#).unwrap_err();
        assert!(matches!(err, LedgerError::Corrupt { .. }), "{err:?}");
        let err = decode::<FileRecord>(what, b"\xff\x00").unwrap_err();
        assert!(matches!(err, LedgerError::Corrupt { .. }), "{err:?}");
    }
}
