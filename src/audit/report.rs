//! What an audit found, for people (a summary line first, then the details)
//! and for scripts (`--json`, the same structs serialized).

use std::fmt;
use std::io::{self, Write};

use cdr_state::FileStatus;
use serde::Serialize;

use super::scan::{Malformed, Orphan};
use super::scope::Scope;

/// One disagreement between the ledger, the topics, the checkpoint topic and
/// the source. Any finding makes the audit fail (exit status 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A topic holds another number of a file's records than the ledger says
    /// were committed.
    CountMismatch {
        file: String,
        topic: String,
        ledger: u64,
        found: u64,
    },
    /// Row indices the ledger counts as committed with no record in any topic.
    MissingRows {
        file: String,
        count: u64,
        ranges: Vec<(u64, u64)>,
    },
    /// Keys found more than once; `count` is the number of extra copies.
    DuplicateKeys {
        file: String,
        count: u64,
        keys: Vec<String>,
    },
    /// Keys with a row index past the rows the ledger counts.
    RowsBeyondLedger {
        file: String,
        count: u64,
        keys: Vec<String>,
    },
    /// Records of a data file in the voice topic, or the other way round.
    WrongTopic { file: String, topic: String, count: u64 },
    /// Records whose key prefix names no file in the ledger.
    UnknownPrefix {
        prefix: String,
        records: u64,
        example_key: String,
        source_file: Option<String>,
    },
    /// Records whose key is not `<16 hex>-<row>`.
    MalformedKeys { records: u64, examples: Vec<String> },
    /// A file with committed rows has no checkpoint.
    CheckpointMissing { file: String },
    /// The checkpoint topic and the ledger disagree on a field.
    CheckpointMismatch {
        file: String,
        field: String,
        ledger: String,
        checkpoint: String,
    },
    /// A checkpoint names a file the ledger does not know.
    CheckpointWithoutFile { file: String, rows_done: u64 },
    /// `--rehash`: the file on the source no longer has the ingested bytes.
    ShaMismatch {
        file: String,
        ledger: String,
        source: String,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::CountMismatch {
                file,
                topic,
                ledger,
                found,
            } => {
                write!(f, "{file}: {found} records in {topic}, the ledger says {ledger}")
            }
            Finding::MissingRows { file, count, ranges } => {
                write!(
                    f,
                    "{file}: {count} committed rows missing from the topics: rows {}",
                    ranges_text(ranges, *count)
                )
            }
            Finding::DuplicateKeys { file, count, keys } => {
                write!(f, "{file}: {count} duplicate record(s), key(s) {}", keys.join(", "))
            }
            Finding::RowsBeyondLedger { file, count, keys } => {
                write!(
                    f,
                    "{file}: {count} record(s) past the ledger's row count, key(s) {}",
                    keys.join(", ")
                )
            }
            Finding::WrongTopic { file, topic, count } => {
                write!(f, "{file}: {count} record(s) in the wrong topic {topic}")
            }
            Finding::UnknownPrefix {
                prefix,
                records,
                example_key,
                source_file,
            } => {
                write!(
                    f,
                    "{records} record(s) with key prefix {prefix} naming no known file (e.g. {example_key}"
                )?;
                match source_file {
                    Some(s) => write!(f, ", header cdr-source-file {s})"),
                    None => write!(f, ", no cdr-source-file header)"),
                }
            }
            Finding::MalformedKeys { records, examples } => {
                write!(
                    f,
                    "{records} record(s) with a key that is not <sha16>-<row>: {}",
                    examples.join(", ")
                )
            }
            Finding::CheckpointMissing { file } => {
                write!(f, "{file}: committed rows but no checkpoint in the checkpoint topic")
            }
            Finding::CheckpointMismatch {
                file,
                field,
                ledger,
                checkpoint,
            } => {
                write!(
                    f,
                    "{file}: checkpoint {field} is {checkpoint}, the ledger says {ledger}"
                )
            }
            Finding::CheckpointWithoutFile { file, rows_done } => {
                write!(
                    f,
                    "{file}: checkpoint ({rows_done} rows) for a file the ledger does not know"
                )
            }
            Finding::ShaMismatch { file, ledger, source } => {
                write!(
                    f,
                    "{file}: bytes on the source changed: sha256 {source}, ingested {ledger}"
                )
            }
        }
    }
}

fn ranges_text(ranges: &[(u64, u64)], count: u64) -> String {
    let shown: u64 = ranges.iter().map(|(a, b)| b - a + 1).sum();
    let mut parts: Vec<String> = ranges
        .iter()
        .map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
        .collect();
    if shown < count {
        parts.push("...".into());
    }
    parts.join(", ")
}

/// Row counts as one of the three sources states them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub rows: u64,
    pub valid: u64,
    pub invalid: u64,
}

/// What the topics hold of one file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InTopics {
    /// Records in the file's own record topic (data or voice).
    pub valid: u64,
    pub dlq: u64,
    pub distinct_rows: u64,
    pub missing_rows: u64,
    pub duplicates: u64,
}

/// The checkpoint of one file, as read from the checkpoint topic.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointView {
    pub counts: Counts,
    pub done: bool,
    pub seq: u64,
}

/// `--rehash` of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Rehash {
    Same,
    Changed {
        sha256: String,
    },
    /// Not in the source listing (moved or deleted after ingest).
    NotOnSource,
    /// The file changed or vanished while it was read.
    Unreadable {
        reason: String,
    },
}

/// Everything the audit compared for one ledger file.
#[derive(Debug, Clone, Serialize)]
pub struct FileAudit {
    pub name: String,
    pub kind: String,
    pub status: FileStatus,
    pub version: u32,
    pub sha256: String,
    pub ledger: Counts,
    /// None when the file's records are counted under another file (same bytes).
    pub topics: Option<InTopics>,
    pub checkpoint: Option<CheckpointView>,
    pub rehash: Option<Rehash>,
    /// Findings about this file, counted in the report's findings too.
    pub findings: usize,
    pub notes: Vec<String>,
}

/// The counts a person reads first.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub ok: bool,
    pub files: usize,
    pub files_with_findings: usize,
    pub findings: usize,
    /// Records of the audited files found in the topics.
    pub valid_records: u64,
    pub dlq_records: u64,
    pub checkpoints: usize,
    /// Every record read, audited or not.
    pub records_scanned: u64,
    pub scan_seconds: f64,
    pub records_per_second: f64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub summary: Summary,
    pub scope: Scope,
    pub findings: Vec<Finding>,
    pub files: Vec<FileAudit>,
    /// Records of an earlier version of a re-ingested file: expected, not findings.
    pub earlier_versions: Vec<Orphan>,
    pub malformed: Option<Malformed>,
    pub notes: Vec<String>,
}

impl AuditReport {
    /// The summary line: verdict and scale at a glance.
    pub fn headline(&self) -> String {
        let s = &self.summary;
        let verdict = if s.ok {
            format!(
                "audit OK: {} file(s) agree across ledger, topics and checkpoints",
                s.files
            )
        } else {
            format!(
                "audit FAILED: {} discrepancy(ies), {} of {} file(s) affected",
                s.findings, s.files_with_findings, s.files
            )
        };
        format!(
            "{verdict}; {} valid + {} dead-letter records; scanned {} records in {:.2} s ({:.0} records/s)",
            s.valid_records, s.dlq_records, s.records_scanned, s.scan_seconds, s.records_per_second
        )
    }

    /// The human report: headline, discrepancies, notes, then a table of files.
    pub fn write_human(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(out, "{}", self.headline())?;
        if !self.findings.is_empty() {
            writeln!(out, "\ndiscrepancies:")?;
            for f in &self.findings {
                writeln!(out, "  {f}")?;
            }
        }
        let notes: Vec<String> = self
            .notes
            .iter()
            .cloned()
            .chain(
                self.files
                    .iter()
                    .flat_map(|f| f.notes.iter().map(move |n| format!("{}: {n}", f.name))),
            )
            .chain(self.earlier_versions.iter().map(|o| {
                format!(
                    "{} records under key prefix {} belong to an earlier version of {}",
                    o.records.total(),
                    o.prefix,
                    o.source_file.as_deref().unwrap_or("?")
                )
            }))
            .collect();
        if !notes.is_empty() {
            writeln!(out, "\nnotes:")?;
            for n in notes {
                writeln!(out, "  {n}")?;
            }
        }
        if self.files.is_empty() {
            return Ok(());
        }
        let groups = format!(
            "  {:<49}{:^27}  {:^31}  {:^15}",
            "files:", "ledger", "topics", "checkpoint"
        );
        writeln!(out, "\n{}", groups.trim_end())?;
        writeln!(
            out,
            "  {:<36} {:<11} {:>9} {:>9} {:>7}  {:>9} {:>7} {:>7} {:>5}  {:>9} {:<5} rehash",
            "file", "status", "rows", "valid", "invalid", "valid", "dlq", "missing", "dups", "rows", "done"
        )?;
        for f in &self.files {
            let t = f.topics.as_ref();
            let num = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
            let rehash = match &f.rehash {
                None => "-".to_string(),
                Some(Rehash::Same) => "same".into(),
                Some(Rehash::Changed { .. }) => "CHANGED".into(),
                Some(Rehash::NotOnSource) => "not on source".into(),
                Some(Rehash::Unreadable { .. }) => "unreadable".into(),
            };
            writeln!(
                out,
                "  {:<36} {:<11} {:>9} {:>9} {:>7}  {:>9} {:>7} {:>7} {:>5}  {:>9} {:<5} {}",
                f.name,
                f.status.as_str(),
                f.ledger.rows,
                f.ledger.valid,
                f.ledger.invalid,
                num(t.map(|t| t.valid)),
                num(t.map(|t| t.dlq)),
                num(t.map(|t| t.missing_rows)),
                num(t.map(|t| t.duplicates)),
                num(f.checkpoint.as_ref().map(|c| c.counts.rows)),
                f.checkpoint.as_ref().map_or("-", |c| if c.done { "yes" } else { "no" }),
                rehash
            )?;
        }
        Ok(())
    }
}
