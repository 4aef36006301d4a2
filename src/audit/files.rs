//! Which files an audit knows. One instance: its ledger's. A group: every
//! file the checkpoint topic names as well, since each shard's owner writes
//! its files' checkpoints in the same transactions as their rows, and an
//! instance's ledger holds only the files it worked on itself.

use std::collections::HashMap;

use cdr_state::{FileRecord, FileStatus};

use crate::schema::{Catalog, RecordKind};
use crate::sink::{Checkpoint, CheckpointStore};

/// The files to audit: `ledger`'s, and with `across_group` every file of
/// `checkpoints` too. A file both know keeps its ledger record unless the
/// checkpoint is further along (another instance took it on from there, or a
/// newer version of it): then the checkpoint stands for the file.
pub fn known_files(
    ledger: Vec<FileRecord>,
    checkpoints: &CheckpointStore,
    kinds: &Catalog,
    across_group: bool,
) -> Vec<FileRecord> {
    if !across_group {
        return ledger;
    }
    let mut by_name: HashMap<String, FileRecord> = ledger.into_iter().map(|r| (r.name.clone(), r)).collect();
    for cp in checkpoints.iter() {
        match by_name.get(&cp.file) {
            Some(rec) if !is_ahead(cp, rec) => {}
            _ => {
                by_name.insert(cp.file.clone(), record_of(cp, kinds));
            }
        }
    }
    let mut files: Vec<FileRecord> = by_name.into_values().collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

/// Whether the checkpoint describes more of the file than the ledger record.
/// A ledger ahead of its checkpoint is left to the audit to report.
fn is_ahead(cp: &Checkpoint, rec: &FileRecord) -> bool {
    let ledger_done = rec.status == FileStatus::Committed;
    (cp.version, cp.rows_done, cp.done) > (rec.version, rec.rows_done, ledger_done)
}

/// A file as its checkpoint describes it. What only a ledger knows (size,
/// mtime, ingest times) stays empty, so `--time ingest` ranges leave it out.
fn record_of(cp: &Checkpoint, kinds: &Catalog) -> FileRecord {
    let kind = kinds.for_file(&cp.file).map_or("", RecordKind::as_str);
    let mut rec = FileRecord::seen(&cp.file, kind, 0, 0, 0);
    rec.sha256 = cp.sha256.clone();
    rec.version = cp.version;
    rec.status = if cp.done {
        FileStatus::Committed
    } else {
        FileStatus::InProgress
    };
    rec.rows_done = cp.rows_done;
    rec.valid_rows = cp.valid;
    rec.invalid_rows = cp.invalid;
    rec.first_event_ms = cp.first_event_ms;
    rec.last_event_ms = cp.last_event_ms;
    rec.first_row = cp.first_row;
    rec.bytes = cp.bytes.unwrap_or(0);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(file: &str, version: u32, rows: u64, done: bool) -> Checkpoint {
        Checkpoint {
            v: 1,
            file: file.into(),
            sha256: format!("{version:064}"),
            version,
            seq: 1,
            rows_done: rows,
            valid: rows.saturating_sub(1),
            invalid: rows.min(1),
            done,
            first_event_ms: Some(5),
            last_event_ms: Some(9),
            first_row: 1,
            bytes: None,
        }
    }

    fn ledger_record(cp: &Checkpoint, status: FileStatus, rows: u64) -> FileRecord {
        let mut rec = record_of(cp, &Catalog::builtin());
        rec.status = status;
        rec.rows_done = rows;
        rec.size = 123;
        rec
    }

    fn store(cps: &[&Checkpoint]) -> CheckpointStore {
        let mut s = CheckpointStore::default();
        cps.iter().for_each(|c| s.record((*c).clone()));
        s
    }

    #[test]
    fn one_instance_audits_its_ledger_only() {
        let other = checkpoint("cdr_data_1.csv", 1, 10, true);
        assert!(known_files(Vec::new(), &store(&[&other]), &Catalog::builtin(), false).is_empty());
    }

    #[test]
    fn a_group_audit_adds_the_files_other_instances_committed() {
        let mine = checkpoint("cdr_data_1.csv", 1, 10, true);
        let theirs = checkpoint("cdr_voice_2.csv", 1, 7, false);
        let files = known_files(
            vec![ledger_record(&mine, FileStatus::Committed, 10)],
            &store(&[&mine, &theirs]),
            &Catalog::builtin(),
            true,
        );
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].size, 123, "the ledger's own record is kept");
        let t = &files[1];
        assert_eq!(
            (t.name.as_str(), t.kind.as_str(), t.status),
            ("cdr_voice_2.csv", "voice", FileStatus::InProgress)
        );
        assert_eq!(
            (t.rows_done, t.valid_rows, t.invalid_rows, t.sha256.as_str()),
            (7, 6, 1, theirs.sha256.as_str())
        );
        assert_eq!((t.first_event_ms, t.last_event_ms), (Some(5), Some(9)));
    }

    #[test]
    fn a_checkpoint_further_along_than_the_ledger_stands_for_the_file() {
        let done = checkpoint("cdr_data_1.csv", 1, 10, true);
        let stale = ledger_record(&done, FileStatus::InProgress, 4);
        let files = known_files(vec![stale], &store(&[&done]), &Catalog::builtin(), true);
        assert_eq!(
            (files[0].status, files[0].rows_done, files[0].size),
            (FileStatus::Committed, 10, 0)
        );

        let newer = checkpoint("cdr_data_1.csv", 2, 3, false);
        let old = ledger_record(&checkpoint("cdr_data_1.csv", 1, 10, true), FileStatus::Committed, 10);
        assert_eq!(
            known_files(vec![old], &store(&[&newer]), &Catalog::builtin(), true)[0].version,
            2
        );

        let behind = checkpoint("cdr_data_1.csv", 1, 4, false);
        let ahead = ledger_record(&behind, FileStatus::InProgress, 9);
        assert_eq!(
            known_files(vec![ahead], &store(&[&behind]), &Catalog::builtin(), true)[0].rows_done,
            9,
            "a ledger ahead is audited, not hidden"
        );
    }
}
