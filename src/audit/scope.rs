//! Which files an audit looks at: one name, a name pattern, a time range.

use cdr_state::FileRecord;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde::Serialize;

use crate::source::select::glob_match;

/// Which of a file's times a `--since/--until` range applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TimeBasis {
    /// The CDRs' event times (first to last event of the file).
    Event,
    /// When the service ingested the file (start to end of its ingest).
    Ingest,
}

/// The files an audit covers. The default covers everything, and only then
/// are records and checkpoints that belong to no ledger file reported: with a
/// narrower scope they may belong to a file outside it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scope {
    pub file: Option<String>,
    pub pattern: Option<String>,
    /// Inclusive bounds, ms since the Unix epoch.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub basis: Option<TimeBasis>,
}

impl Scope {
    pub fn is_everything(&self) -> bool {
        self.file.is_none() && self.pattern.is_none() && self.since_ms.is_none() && self.until_ms.is_none()
    }

    /// Whether the name filters (not the time range) accept `name`.
    pub fn selects_name(&self, name: &str) -> bool {
        self.file.as_deref().is_none_or(|f| f == name) && self.pattern.as_deref().is_none_or(|p| glob_match(p, name))
    }

    pub fn selects(&self, rec: &FileRecord) -> bool {
        if !self.selects_name(&rec.name) {
            return false;
        }
        if self.since_ms.is_none() && self.until_ms.is_none() {
            return true;
        }
        let span = match self.basis.unwrap_or(TimeBasis::Ingest) {
            TimeBasis::Event => rec.first_event_ms.zip(rec.last_event_ms),
            TimeBasis::Ingest => rec
                .started_ms
                .map(|s| (s, rec.finished_ms.unwrap_or(rec.updated_ms).max(s))),
        };
        // A file is in range when its span overlaps the range at all.
        span.is_some_and(|(first, last)| {
            self.since_ms.is_none_or(|since| last >= since) && self.until_ms.is_none_or(|until| first <= until)
        })
    }
}

/// Parses a `--since/--until` time: RFC 3339 (`2024-01-01T00:00:00Z`), or
/// `YYYY-MM-DD[ HH:MM[:SS]]` read as UTC. Returns ms since the Unix epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| format!("expected RFC 3339 or YYYY-MM-DD[ HH:MM[:SS]] (UTC), got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdr_state::FileStatus;

    fn rec(name: &str, events: (i64, i64), ingest: (i64, i64)) -> FileRecord {
        FileRecord {
            name: name.into(),
            size: 1,
            mtime: 1,
            sha256: String::new(),
            kind: "data".into(),
            status: FileStatus::Committed,
            rows_done: 0,
            valid_rows: 0,
            invalid_rows: 0,
            first_event_ms: Some(events.0),
            last_event_ms: Some(events.1),
            first_seen_ms: 0,
            updated_ms: ingest.1,
            started_ms: Some(ingest.0),
            finished_ms: Some(ingest.1),
            error: None,
            duplicate_of: None,
            version: 1,
            bytes: 1,
            attempts: 0,
            next_attempt_ms: None,
            first_row: 1,
        }
    }

    #[test]
    fn names_patterns_and_time_ranges_select_files() {
        let r = rec("cdr_data_20240101_000000.csv", (100, 200), (1000, 2000));
        assert!(Scope::default().selects(&r));
        let by_pattern = Scope {
            pattern: Some("cdr_voice_*".into()),
            ..Scope::default()
        };
        assert!(!by_pattern.selects(&r));
        let events = |since, until| Scope {
            since_ms: since,
            until_ms: until,
            basis: Some(TimeBasis::Event),
            ..Scope::default()
        };
        assert!(events(Some(150), None).selects(&r));
        assert!(!events(Some(201), None).selects(&r));
        assert!(events(None, Some(100)).selects(&r));
        assert!(!events(None, Some(99)).selects(&r));
        let ingest = Scope {
            since_ms: Some(1500),
            until_ms: Some(1600),
            ..Scope::default()
        };
        assert!(ingest.selects(&r));
        assert!(!Scope {
            since_ms: Some(2001),
            ..Scope::default()
        }
        .selects(&r));
    }

    #[test]
    fn times_parse_in_the_documented_forms() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_time("1970-01-01 00:00:01.5"), Ok(1500));
        assert_eq!(parse_time("1970-01-02"), Ok(86_400_000));
        assert_eq!(parse_time("1970-01-01 00:01"), Ok(60_000));
        assert!(parse_time("yesterday").is_err());
    }
}
