//! What to do with a ready file, from what the ledger and the checkpoint
//! topic know about it. Pure: no I/O, so every case is unit-tested.

use cdr_state::{FileRecord, FileStatus};

use super::OnChanged;
use crate::sink::Checkpoint;
use crate::source::RemoteFile;

/// How far a file got, as counted in committed transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Rows done, counted from the file's first row.
    pub rows_done: u64,
    /// Valid and invalid rows of this version (from `first_row` on).
    pub valid: u64,
    pub invalid: u64,
    pub first_event_ms: Option<i64>,
    pub last_event_ms: Option<i64>,
    /// The first row of this version (see `FileRecord::first_row`).
    pub first_row: u64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            rows_done: 0,
            valid: 0,
            invalid: 0,
            first_event_ms: None,
            last_event_ms: None,
            first_row: 1,
        }
    }
}

impl Progress {
    pub fn of_record(r: &FileRecord) -> Self {
        Progress {
            rows_done: r.rows_done,
            valid: r.valid_rows,
            invalid: r.invalid_rows,
            first_event_ms: r.first_event_ms,
            last_event_ms: r.last_event_ms,
            first_row: r.first_row,
        }
    }

    pub fn of_checkpoint(c: &Checkpoint) -> Self {
        Progress {
            rows_done: c.rows_done,
            valid: c.valid,
            invalid: c.invalid,
            first_event_ms: c.first_event_ms,
            last_event_ms: c.last_event_ms,
            first_row: c.first_row,
        }
    }

    /// A version that continues one which got to `rows_done`: its own
    /// counts start at the next row.
    pub fn continuing(rows_done: u64) -> Self {
        Progress {
            rows_done,
            first_row: rows_done + 1,
            ..Progress::default()
        }
    }

    /// Copies the counts into a ledger record.
    pub fn apply_to(&self, rec: &mut FileRecord) {
        rec.rows_done = self.rows_done;
        rec.valid_rows = self.valid;
        rec.invalid_rows = self.invalid;
        rec.first_event_ms = self.first_event_ms;
        rec.last_event_ms = self.last_event_ms;
        rec.first_row = self.first_row;
        rec.updated_ms = super::now_ms();
    }

    /// Folds one row's event time in.
    pub fn saw_event(&mut self, ms: i64) {
        self.first_event_ms = Some(self.first_event_ms.map_or(ms, |f| f.min(ms)));
        self.last_event_ms = Some(self.last_event_ms.map_or(ms, |l| l.max(ms)));
    }
}

/// Before downloading: can the listing alone settle it (at `now_ms`)?
pub fn needs_fetch(file: &RemoteFile, rec: Option<&FileRecord>, on_changed: OnChanged, now_ms: i64) -> bool {
    match rec {
        // Same size and mtime as when we settled it: no need to touch the
        // remote file again. A file that failed or was parked is retried once
        // it changes (or `retry` releases it); a conflict is taken again once
        // the operator asks for a re-ingest; a file backing off waits its turn.
        Some(r) if r.size == file.size && r.mtime == file.mtime => match r.status {
            FileStatus::Conflict => on_changed == OnChanged::Reingest,
            FileStatus::Committed | FileStatus::Duplicate | FileStatus::Failed | FileStatus::Parked => false,
            FileStatus::Seen | FileStatus::InProgress => r.next_attempt_ms.is_none_or(|t| t <= now_ms),
        },
        _ => true,
    }
}

/// Whether a listed file is done for good as it stands: committed or a
/// duplicate, with the size and mtime it had then, and no after-ingest
/// action left to retry on it (`acts_on(status)`: a move or delete that
/// failed is tried again at each pass). A directory that keeps its files is
/// mostly these; they are dropped right after each listing, so a poll costs
/// one ledger lookup per kept file and nothing more.
pub fn is_settled(file: &RemoteFile, rec: &FileRecord, acts_on: impl Fn(FileStatus) -> bool) -> bool {
    rec.size == file.size
        && rec.mtime == file.mtime
        && matches!(rec.status, FileStatus::Committed | FileStatus::Duplicate)
        && !acts_on(rec.status)
}

/// After downloading and hashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The same bytes are already committed (ledger or checkpoint says so).
    AlreadyDone { version: u32, progress: Progress },
    /// Produce from `progress.rows_done + 1` on, as ingest `version`.
    Ingest { version: u32, progress: Progress },
    /// The name was ingested before with other bytes. `grown`: when those
    /// bytes may be a prefix of the new ones, how to continue if they are.
    Conflict {
        previous_sha256: String,
        grown: Option<Growth>,
    },
    /// These bytes were ingested under another name.
    Duplicate { of: String },
}

/// A file that may have grown after a version of it was committed: if its
/// first `previous_bytes` bytes still hash to the previous SHA-256 and end
/// a line, it is ingested as `version` from `progress` on (the rows after
/// the previous version's last), instead of being a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Growth {
    pub previous_bytes: u64,
    pub version: u32,
    pub progress: Progress,
}

/// The facts `plan` weighs.
pub struct Facts<'a> {
    pub sha256: &'a str,
    pub record: Option<&'a FileRecord>,
    pub checkpoint: Option<&'a Checkpoint>,
    /// Another file name whose committed (or started) bytes have this hash.
    pub same_bytes_as: Option<&'a str>,
    pub on_changed: OnChanged,
    pub allow_duplicate_content: bool,
}

/// What earlier runs left of this name: the ledger's view, corrected by the
/// checkpoint topic (the truth of record) where it knows the same version.
struct Prior {
    sha256: String,
    version: u32,
    progress: Progress,
    done: bool,
    /// Size of those bytes, when known.
    bytes: Option<u64>,
}

fn prior(f: &Facts<'_>) -> Option<Prior> {
    let from_record = f.record.filter(|r| !r.sha256.is_empty()).map(|r| Prior {
        sha256: r.sha256.clone(),
        version: r.version,
        progress: Progress::of_record(r),
        done: r.status == FileStatus::Committed,
        bytes: Some(r.bytes).filter(|b| *b > 0),
    });
    let from_checkpoint = f.checkpoint.map(|c| Prior {
        sha256: c.sha256.clone(),
        version: c.version,
        progress: Progress::of_checkpoint(c),
        done: c.done,
        bytes: c.bytes,
    });
    match (from_record, from_checkpoint) {
        (Some(r), Some(c)) if c.version >= r.version => Some(c),
        (Some(r), _) => Some(r),
        (None, c) => c,
    }
}

pub fn plan(f: &Facts<'_>) -> Plan {
    let Some(p) = prior(f) else {
        return fresh(f, 1);
    };
    if p.sha256 == f.sha256 {
        return if p.done {
            Plan::AlreadyDone {
                version: p.version,
                progress: p.progress,
            }
        } else {
            Plan::Ingest {
                version: p.version,
                progress: p.progress,
            }
        };
    }
    let committed_any = p.done || p.progress.rows_done > 0;
    if !committed_any {
        // Nothing of the old bytes reached Kafka: the new bytes simply replace them.
        return fresh(f, p.version);
    }
    match f.on_changed {
        OnChanged::Conflict => Plan::Conflict {
            grown: p.bytes.map(|previous_bytes| Growth {
                previous_bytes,
                version: p.version + 1,
                progress: Progress::continuing(p.progress.rows_done),
            }),
            previous_sha256: p.sha256,
        },
        OnChanged::Reingest => fresh(f, p.version + 1),
    }
}

fn fresh(f: &Facts<'_>, version: u32) -> Plan {
    match f.same_bytes_as {
        Some(of) if !f.allow_duplicate_content => Plan::Duplicate { of: of.to_string() },
        _ => Plan::Ingest {
            version,
            progress: Progress::default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: FileStatus, sha: &str, rows_done: u64) -> FileRecord {
        FileRecord {
            sha256: sha.into(),
            status,
            rows_done,
            valid_rows: rows_done,
            bytes: 10,
            ..FileRecord::seen("cdr_data_20240101_000000.csv", "data", 10, 100, 0)
        }
    }

    fn checkpoint(sha: &str, rows_done: u64, done: bool) -> Checkpoint {
        Checkpoint {
            v: 1,
            file: "cdr_data_20240101_000000.csv".into(),
            sha256: sha.into(),
            version: 1,
            seq: 1,
            rows_done,
            valid: rows_done,
            invalid: 0,
            done,
            first_event_ms: None,
            last_event_ms: None,
            first_row: 1,
            bytes: Some(10),
        }
    }

    fn facts<'a>(sha: &'a str, r: Option<&'a FileRecord>, c: Option<&'a Checkpoint>) -> Facts<'a> {
        Facts {
            sha256: sha,
            record: r,
            checkpoint: c,
            same_bytes_as: None,
            on_changed: OnChanged::Conflict,
            allow_duplicate_content: false,
        }
    }

    #[test]
    fn unchanged_committed_file_is_not_fetched_again() {
        let r = record(FileStatus::Committed, "aa", 5);
        let listing = RemoteFile {
            name: r.name.clone(),
            size: 10,
            mtime: 100,
        };
        assert!(!needs_fetch(&listing, Some(&r), OnChanged::Conflict, 0));
        let touched = RemoteFile {
            mtime: 101,
            ..listing.clone()
        };
        assert!(needs_fetch(&touched, Some(&r), OnChanged::Conflict, 0));
        let conflict = record(FileStatus::Conflict, "aa", 5);
        assert!(!needs_fetch(&listing, Some(&conflict), OnChanged::Conflict, 0));
        assert!(needs_fetch(&listing, Some(&conflict), OnChanged::Reingest, 0));
    }

    #[test]
    fn only_files_done_for_good_as_listed_are_settled() {
        let listing = RemoteFile {
            name: "cdr_data_20240101_000000.csv".into(),
            size: 10,
            mtime: 100,
        };
        let keep = |_| false;
        assert!(is_settled(&listing, &record(FileStatus::Committed, "aa", 5), keep));
        assert!(is_settled(&listing, &record(FileStatus::Duplicate, "aa", 0), keep));
        // Changed since, or still to be acted on: the pass must see it.
        let touched = RemoteFile {
            mtime: 101,
            ..listing.clone()
        };
        assert!(!is_settled(&touched, &record(FileStatus::Committed, "aa", 5), keep));
        let moves_committed = |s| s == FileStatus::Committed;
        assert!(!is_settled(
            &listing,
            &record(FileStatus::Committed, "aa", 5),
            moves_committed
        ));
        // Stuck files stay in view: `once` reports them.
        for status in [
            FileStatus::Failed,
            FileStatus::Parked,
            FileStatus::Conflict,
            FileStatus::InProgress,
        ] {
            assert!(!is_settled(&listing, &record(status, "aa", 0), keep), "{status:?}");
        }
    }

    #[test]
    fn backing_off_files_wait_their_turn_and_parked_files_wait_for_a_change() {
        let listing = RemoteFile {
            name: "cdr_data_20240101_000000.csv".into(),
            size: 10,
            mtime: 100,
        };
        let backing_off = FileRecord {
            next_attempt_ms: Some(5_000),
            ..record(FileStatus::Seen, "", 0)
        };
        assert!(!needs_fetch(&listing, Some(&backing_off), OnChanged::Conflict, 4_999));
        assert!(needs_fetch(&listing, Some(&backing_off), OnChanged::Conflict, 5_000));
        let parked = record(FileStatus::Parked, "", 0);
        assert!(!needs_fetch(&listing, Some(&parked), OnChanged::Conflict, i64::MAX));
        let changed = RemoteFile { size: 11, ..listing };
        assert!(needs_fetch(&changed, Some(&parked), OnChanged::Conflict, 0));
    }

    #[test]
    fn new_file_is_ingested_from_the_start() {
        assert_eq!(
            plan(&facts("aa", None, None)),
            Plan::Ingest {
                version: 1,
                progress: Progress::default()
            }
        );
    }

    #[test]
    fn lost_ledger_resumes_from_the_checkpoint_topic() {
        let c = checkpoint("aa", 300, false);
        assert_eq!(
            plan(&facts("aa", None, Some(&c))),
            Plan::Ingest {
                version: 1,
                progress: Progress::of_checkpoint(&c)
            }
        );
        let done = checkpoint("aa", 300, true);
        assert!(matches!(
            plan(&facts("aa", None, Some(&done))),
            Plan::AlreadyDone { .. }
        ));
    }

    #[test]
    fn checkpoint_wins_over_a_ledger_that_missed_the_last_commit() {
        let r = record(FileStatus::InProgress, "aa", 100);
        let c = checkpoint("aa", 200, false);
        assert_eq!(
            plan(&facts("aa", Some(&r), Some(&c))),
            Plan::Ingest {
                version: 1,
                progress: Progress::of_checkpoint(&c)
            }
        );
    }

    #[test]
    fn changed_bytes_under_a_committed_name_conflict_or_reingest_as_new_version() {
        let r = record(FileStatus::Committed, "aa", 5);
        assert_eq!(
            plan(&facts("bb", Some(&r), None)),
            Plan::Conflict {
                previous_sha256: "aa".into(),
                grown: Some(Growth {
                    previous_bytes: 10,
                    version: 2,
                    progress: Progress {
                        rows_done: 5,
                        first_row: 6,
                        ..Progress::default()
                    },
                }),
            }
        );
        let mut f = facts("bb", Some(&r), None);
        f.on_changed = OnChanged::Reingest;
        assert_eq!(
            plan(&f),
            Plan::Ingest {
                version: 2,
                progress: Progress::default()
            }
        );
    }

    #[test]
    fn a_grown_file_continues_the_version_the_checkpoint_knows_and_its_size_must_be_known() {
        // The checkpoint knows a later version (a continuation already) than
        // the ledger: the growth continues that one, after its last row.
        let r = record(FileStatus::Committed, "aa", 5);
        let c = Checkpoint {
            version: 2,
            first_row: 6,
            bytes: Some(25),
            ..checkpoint("cc", 9, true)
        };
        let Plan::Conflict { grown: Some(g), .. } = plan(&facts("dd", Some(&r), Some(&c))) else {
            panic!("a conflict that may be growth");
        };
        assert_eq!((g.previous_bytes, g.version), (25, 3));
        assert_eq!(
            (g.progress.rows_done, g.progress.first_row, g.progress.valid),
            (9, 10, 0)
        );
        // A checkpoint written before sizes were recorded: a plain conflict.
        let old = Checkpoint {
            bytes: None,
            version: 2,
            ..checkpoint("cc", 9, true)
        };
        assert!(matches!(
            plan(&facts("dd", None, Some(&old))),
            Plan::Conflict { grown: None, .. }
        ));
    }

    #[test]
    fn changed_bytes_before_anything_was_committed_just_replace_the_old() {
        let r = record(FileStatus::Failed, "aa", 0);
        assert_eq!(
            plan(&facts("bb", Some(&r), None)),
            Plan::Ingest {
                version: 1,
                progress: Progress::default()
            }
        );
    }

    #[test]
    fn same_bytes_under_another_name_are_a_duplicate_unless_allowed() {
        let mut f = facts("aa", None, None);
        f.same_bytes_as = Some("cdr_data_20230101_000000.csv");
        assert_eq!(
            plan(&f),
            Plan::Duplicate {
                of: "cdr_data_20230101_000000.csv".into()
            }
        );
        f.allow_duplicate_content = true;
        assert!(matches!(plan(&f), Plan::Ingest { .. }));
    }
}
