//! `audit`: proves from the topics themselves that every file landed, all of
//! it, once. Three sources of truth are reconciled, and with `--rehash` a fourth:
//!
//! 1. the ledger: rows, valid and invalid rows and SHA-256 per file (across a
//!    group, the checkpoint topic's files too: `files`);
//! 2. the record topics and the dead-letter topic, read with read_committed:
//!    per file (by its key's hash prefix) the records in each topic, duplicate
//!    keys, missing row indices, and records whose prefix names no known file;
//! 3. the checkpoint topic: each file's committed progress;
//! 4. the source: the files re-read and re-hashed.
//!
//! Memory stays bounded on any volume: a bitset of row indices per audited
//! file (sized by its row count in the ledger), never a set of every key.

pub mod files;
pub mod report;
pub mod rows;
pub mod scan;
pub mod scope;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cdr_state::{FileRecord, FileStatus, LedgerError, LedgerReader};
use rdkafka::error::KafkaError;

use crate::encode::hex;
use crate::schema::Catalog;
use crate::sink::checkpoint::CheckpointError;
use crate::sink::topic_end::EndError;
use crate::sink::{Checkpoint, CheckpointStore, KafkaConfig};
use crate::source::{RemoteFile, Source, SourceError};
use report::{AuditReport, CheckpointView, Counts, FileAudit, Finding, InTopics, Rehash, Summary};
use rows::sha_prefix;
use scan::{Owner, Scan, Tally, TopicSet, EXAMPLES};
use scope::Scope;

/// Why an audit could not run (exit status 2). Discrepancies are not errors:
/// they are findings in the report.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("reading the ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Checkpoints(#[from] CheckpointError),
    #[error("{what}: {source}")]
    Kafka {
        what: String,
        #[source]
        source: KafkaError,
    },
    #[error("scanning the topics: {0}")]
    Read(#[from] EndError),
    #[error("a topic scan thread panicked")]
    ScanPanicked,
    #[error("re-reading the source: {0}")]
    Source(#[from] SourceError),
    #[error("staging directory {}: {source}", path.display())]
    Staging {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What to audit and where.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    pub topics: TopicSet,
    /// The record kinds, for the files only the checkpoint topic names.
    pub kinds: Catalog,
    pub checkpoint_topic: String,
    pub scope: Scope,
    /// How long a read may stall before the audit gives up.
    pub timeout: Duration,
    /// Consumers reading the topics in parallel.
    pub consumers: usize,
    /// Audit every instance's work: the files are the checkpoint topic's as
    /// well as the ledger's.
    pub across_group: bool,
}

/// Runs the audit. `ledger` may be None only `across_group` (an auditor with
/// no instance's disk); `rehash`, when given, is the source to re-read the
/// files from.
pub fn audit(
    ledger: Option<&LedgerReader>,
    kafka: &KafkaConfig,
    settings: &AuditSettings,
    rehash: Option<&mut dyn Source>,
) -> Result<AuditReport, AuditError> {
    let started = Instant::now();
    let scope = &settings.scope;
    // Ledger first, then checkpoints, then topics: each later read sees at
    // least what the earlier one described, so a running daemon can only make
    // the topics look ahead of the ledger (handled per status below).
    let ledger_files = || -> Result<Vec<FileRecord>, LedgerError> { ledger.map_or(Ok(Vec::new()), |l| l.files()) };
    let mine = ledger_files()?;
    let checkpoints = CheckpointStore::load(kafka, &settings.checkpoint_topic, settings.timeout)?;
    let in_ledger = mine.len();
    let all = files::known_files(mine, &checkpoints, &settings.kinds, settings.across_group);
    let plan = Plan::new(&all, scope, &checkpoints);
    let mut scan = plan.scan(scope.is_everything());
    scan::scan(kafka, &settings.topics, &mut scan, settings.timeout, settings.consumers)?;

    let mut findings = Vec::new();
    let mut notes = Vec::new();
    if settings.across_group {
        notes.push(format!(
            "across the group: {} file(s), {} of them in this instance's ledger",
            all.len(),
            in_ledger
        ));
    }
    let mut files = Vec::new();
    for (i, rec) in all.iter().enumerate().filter(|(_, r)| scope.selects(r)) {
        let cp = checkpoints.get(&rec.name);
        let before = findings.len();
        let mut file_notes = Vec::new();
        check_checkpoint(rec, cp, &mut findings);
        let topics = match plan.group_of(i) {
            Some((g, true)) => Some(check_topics(
                rec,
                &plan.groups[g],
                &scan.tallies[g],
                &settings.topics,
                &mut findings,
                &mut file_notes,
            )),
            Some((g, false)) => {
                file_notes.push(format!(
                    "same bytes as {}: its records are counted there",
                    all[plan.groups[g].owner].name
                ));
                None
            }
            None => None,
        };
        files.push(FileAudit {
            name: rec.name.clone(),
            kind: rec.kind.clone(),
            status: rec.status,
            version: rec.version,
            sha256: rec.sha256.clone(),
            ledger: Counts {
                rows: rec.rows_done,
                valid: rec.valid_rows,
                invalid: rec.invalid_rows,
            },
            topics,
            checkpoint: cp.map(|c| CheckpointView {
                counts: Counts {
                    rows: c.rows_done,
                    valid: c.valid,
                    invalid: c.invalid,
                },
                done: c.done,
                seq: c.seq,
            }),
            rehash: None,
            findings: findings.len() - before,
            notes: file_notes,
        });
    }

    if let Some(source) = rehash {
        rehash_files(source, &mut files, &mut findings)?;
    }

    let mut earlier_versions = Vec::new();
    let mut malformed = None;
    if scan.collect_orphans {
        checkpoints_without_file(&all, &checkpoints, &mut findings);
        let orphans = std::mem::take(&mut scan.orphans);
        // Files committed while the topics were read have prefixes the first
        // ledger read did not know: read the ledger again before blaming them.
        let late: HashMap<u64, String> = if orphans.is_empty() {
            HashMap::new()
        } else {
            let checkpoints = match settings.across_group {
                true => CheckpointStore::load(kafka, &settings.checkpoint_topic, settings.timeout)?,
                false => CheckpointStore::default(),
            };
            files::known_files(ledger_files()?, &checkpoints, &settings.kinds, settings.across_group)
                .into_iter()
                .filter_map(|r| sha_prefix(&r.sha256).map(|p| (p, r.name)))
                .collect()
        };
        let versions: HashMap<&str, u32> = all.iter().map(|r| (r.name.as_str(), r.version)).collect();
        for (prefix, orphan) in orphans {
            let named = orphan.source_file.as_deref();
            if let Some(name) = late.get(&prefix) {
                notes.push(format!(
                    "{} record(s) of {name}, ingested while the audit ran, not audited",
                    orphan.records.total()
                ));
            } else if named.and_then(|n| versions.get(n)).is_some_and(|v| *v > 1) {
                earlier_versions.push(orphan);
            } else {
                findings.push(Finding::UnknownPrefix {
                    prefix: orphan.prefix,
                    records: orphan.records.total(),
                    example_key: orphan.example_key,
                    source_file: orphan.source_file,
                });
            }
        }
        if scan.malformed.records.total() > 0 {
            findings.push(Finding::MalformedKeys {
                records: scan.malformed.records.total(),
                examples: scan.malformed.examples.clone(),
            });
            malformed = Some(scan.malformed.clone());
        }
    } else {
        notes.push("scope is narrowed: records and checkpoints of no known file are not looked for".into());
    }

    // One instance's ledger knows only its own share of a group's files.
    if !settings.across_group
        && findings
            .iter()
            .any(|f| matches!(f, Finding::CheckpointWithoutFile { .. }))
    {
        notes.push(
            "checkpoints name files this ledger does not know: if it is one instance of a group, audit with --group"
                .into(),
        );
    }
    let audited = files.iter().filter_map(|f| f.topics.as_ref());
    let scan_seconds = scan.elapsed.as_secs_f64();
    let summary = Summary {
        ok: findings.is_empty(),
        files: files.len(),
        files_with_findings: files.iter().filter(|f| f.findings > 0).count(),
        findings: findings.len(),
        valid_records: audited.clone().map(|t| t.valid).sum(),
        dlq_records: audited.map(|t| t.dlq).sum(),
        checkpoints: checkpoints.len(),
        records_scanned: scan.records,
        scan_seconds,
        records_per_second: scan.records as f64 / scan_seconds.max(1e-9),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(AuditReport {
        summary,
        scope: scope.clone(),
        findings,
        files,
        earlier_versions,
        malformed,
        notes,
    })
}

/// Ledger files sharing one key prefix (the same bytes under several names:
/// a duplicate and its original). Records are tallied once per prefix and
/// checked against the owner: the member with the most committed rows.
struct Group {
    owner: usize,
    /// The owner's first row (a version continuing a grown file starts later).
    first: u64,
    /// Rows the tally's bitset covers.
    capacity: u64,
    audited: bool,
}

struct Plan {
    groups: Vec<Group>,
    by_prefix: HashMap<u64, usize>,
    group_of_file: Vec<Option<usize>>,
}

impl Plan {
    fn new(all: &[FileRecord], scope: &Scope, checkpoints: &CheckpointStore) -> Self {
        let mut plan = Plan {
            groups: Vec::new(),
            by_prefix: HashMap::new(),
            group_of_file: vec![None; all.len()],
        };
        for (i, rec) in all.iter().enumerate() {
            let Some(prefix) = sha_prefix(&rec.sha256) else {
                continue;
            };
            let g = *plan.by_prefix.entry(prefix).or_insert_with(|| {
                plan.groups.push(Group {
                    owner: i,
                    first: rec.first_row,
                    capacity: 0,
                    audited: false,
                });
                plan.groups.len() - 1
            });
            plan.group_of_file[i] = Some(g);
            let group = &mut plan.groups[g];
            group.audited |= scope.selects(rec);
            if rec.rows_done > all[group.owner].rows_done {
                group.owner = i;
                group.first = rec.first_row;
            }
            group.capacity = group.capacity.max(expected_rows(rec, checkpoints.get(&rec.name)));
        }
        plan
    }

    /// The tallies to fill: one per audited group, others skipped.
    fn scan(&self, collect_orphans: bool) -> Scan {
        let mut scan = Scan {
            collect_orphans,
            ..Scan::default()
        };
        for (prefix, g) in &self.by_prefix {
            let group = &self.groups[*g];
            scan.owners.insert(
                *prefix,
                if group.audited {
                    Owner::Audited(*g)
                } else {
                    Owner::Outside
                },
            );
        }
        // Tally i belongs to group i; unaudited groups get an empty one,
        // whose bitset is never allocated.
        scan.tallies = self
            .groups
            .iter()
            .map(|g| Tally::new(g.first, if g.audited { g.capacity } else { 0 }))
            .collect();
        scan
    }

    /// The file's group and whether the file owns its records.
    fn group_of(&self, file: usize) -> Option<(usize, bool)> {
        self.group_of_file[file].map(|g| (g, self.groups[g].owner == file))
    }
}

/// Rows that must be in the topics: the ledger's count, or for a file still in
/// progress the checkpoint's when it is ahead (the ledger may lag a commit).
fn expected_rows(rec: &FileRecord, cp: Option<&Checkpoint>) -> u64 {
    match cp {
        Some(c) if rec.status == FileStatus::InProgress && c.sha256 == rec.sha256 => rec.rows_done.max(c.rows_done),
        _ => rec.rows_done,
    }
}

fn key(rec: &FileRecord, row: u64) -> String {
    format!("{}-{row}", rec.sha256.get(..16).unwrap_or_default())
}

/// Compares the topics' records of one file with the ledger.
fn check_topics(
    rec: &FileRecord,
    group: &Group,
    tally: &Tally,
    topics: &TopicSet,
    findings: &mut Vec<Finding>,
    notes: &mut Vec<String>,
) -> InTopics {
    // A kind no longer declared has no topic of its own: all its valid
    // records then count as found elsewhere.
    let (own, dlq) = match topics.kinds.get(&rec.kind) {
        Some(&(own, dlq)) => (Some(own), dlq),
        None => (None, topics.dlq),
    };
    let missing: Vec<(u64, u64)> = tally.rows.missing().collect();
    let missing_rows: u64 = missing.iter().map(|(a, b)| b - a + 1).sum();
    let found = InTopics {
        valid: own.map_or(0, |p| tally.records.get(p)),
        dlq: tally.records.get(dlq),
        distinct_rows: tally.rows.seen(),
        missing_rows,
        duplicates: tally.duplicates,
    };
    let file = || rec.name.clone();
    if missing_rows > 0 {
        findings.push(Finding::MissingRows {
            file: file(),
            count: missing_rows,
            ranges: missing.into_iter().take(EXAMPLES).collect(),
        });
    }
    if tally.duplicates > 0 {
        findings.push(Finding::DuplicateKeys {
            file: file(),
            count: tally.duplicates,
            keys: tally.duplicate_rows.iter().map(|r| key(rec, *r)).collect(),
        });
    }
    for other in topics.places().filter(|&p| Some(p) != own && p != dlq) {
        if tally.records.get(other) > 0 {
            findings.push(Finding::WrongTopic {
                file: file(),
                topic: topics.name(other).to_string(),
                count: tally.records.get(other),
            });
        }
    }
    if rec.status == FileStatus::InProgress {
        // Rows of transactions committed after the ledger was read show up
        // past its count, and the counts are still moving: only missing and
        // duplicate rows are discrepancies here.
        notes.push(format!(
            "in progress: {} of its rows committed so far ({} records found)",
            group.capacity,
            tally.records.total()
        ));
        return found;
    }
    if tally.beyond > 0 {
        findings.push(Finding::RowsBeyondLedger {
            file: file(),
            count: tally.beyond,
            keys: tally.beyond_rows.iter().map(|r| key(rec, *r)).collect(),
        });
    }
    let own_topic = own.map_or_else(
        || format!("(the topic of kind {:?})", rec.kind),
        |p| topics.name(p).to_string(),
    );
    for (topic, count, ledger) in [
        (own_topic, found.valid, rec.valid_rows),
        (topics.name(dlq).to_string(), found.dlq, rec.invalid_rows),
    ] {
        if count != ledger {
            findings.push(Finding::CountMismatch {
                file: file(),
                topic,
                ledger,
                found: count,
            });
        }
    }
    found
}

/// Compares a file's checkpoint with its ledger record.
fn check_checkpoint(rec: &FileRecord, cp: Option<&Checkpoint>, findings: &mut Vec<Finding>) {
    let must_have = rec.rows_done > 0 || rec.status == FileStatus::Committed;
    let Some(cp) = cp else {
        if must_have {
            findings.push(Finding::CheckpointMissing { file: rec.name.clone() });
        }
        return;
    };
    if !must_have && cp.sha256 != rec.sha256 {
        // Nothing of these bytes was committed: the checkpoint is of other
        // bytes under this name that the ledger no longer describes.
        return;
    }
    let mut differ = |field: &str, ledger: String, checkpoint: String| {
        if ledger != checkpoint {
            findings.push(Finding::CheckpointMismatch {
                file: rec.name.clone(),
                field: field.to_string(),
                ledger,
                checkpoint,
            });
        }
    };
    differ("sha256", rec.sha256.clone(), cp.sha256.clone());
    differ("version", rec.version.to_string(), cp.version.to_string());
    if rec.status == FileStatus::InProgress {
        // The ledger may lag the checkpoint by the commit a crash interrupted;
        // the other way round, rows the ledger counts were never committed.
        if cp.rows_done < rec.rows_done {
            differ("rows_done", rec.rows_done.to_string(), cp.rows_done.to_string());
        }
        return;
    }
    differ("rows_done", rec.rows_done.to_string(), cp.rows_done.to_string());
    differ("valid", rec.valid_rows.to_string(), cp.valid.to_string());
    differ("invalid", rec.invalid_rows.to_string(), cp.invalid.to_string());
    if rec.status == FileStatus::Committed {
        differ("done", "true".into(), cp.done.to_string());
    }
}

fn checkpoints_without_file(all: &[FileRecord], checkpoints: &CheckpointStore, findings: &mut Vec<Finding>) {
    let known: BTreeMap<&str, ()> = all.iter().map(|r| (r.name.as_str(), ())).collect();
    let mut orphans: Vec<&Checkpoint> = checkpoints
        .iter()
        .filter(|c| !known.contains_key(c.file.as_str()))
        .collect();
    orphans.sort_by(|a, b| a.file.cmp(&b.file));
    findings.extend(orphans.into_iter().map(|c| Finding::CheckpointWithoutFile {
        file: c.file.clone(),
        rows_done: c.rows_done,
    }));
}

/// Re-reads every audited file whose bytes reached Kafka and compares hashes.
fn rehash_files(
    source: &mut dyn Source,
    files: &mut [FileAudit],
    findings: &mut Vec<Finding>,
) -> Result<(), AuditError> {
    let listing: HashMap<String, RemoteFile> = source.list()?.files.into_iter().map(|f| (f.name.clone(), f)).collect();
    let dir = std::env::temp_dir().join(format!("cdr-to-redpanda-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| AuditError::Staging {
        path: dir.clone(),
        source,
    })?;
    let result = (|| {
        for f in files.iter_mut() {
            if !matches!(
                f.status,
                FileStatus::Committed | FileStatus::InProgress | FileStatus::Conflict
            ) {
                continue;
            }
            let Some(remote) = listing.get(&f.name) else {
                f.rehash = Some(Rehash::NotOnSource);
                continue;
            };
            let staged = dir.join(&f.name);
            let outcome = match source.fetch(remote, &staged) {
                Ok(fetched) => {
                    let sha = hex(&fetched.sha256);
                    if sha == f.sha256 {
                        Rehash::Same
                    } else {
                        findings.push(Finding::ShaMismatch {
                            file: f.name.clone(),
                            ledger: f.sha256.clone(),
                            source: sha.clone(),
                        });
                        f.findings += 1;
                        Rehash::Changed { sha256: sha }
                    }
                }
                Err(e @ (SourceError::Changed { .. } | SourceError::Gone { .. })) => {
                    Rehash::Unreadable { reason: e.to_string() }
                }
                Err(e) => return Err(AuditError::Source(e)),
            };
            let _ = std::fs::remove_file(&staged);
            f.rehash = Some(outcome);
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests;
