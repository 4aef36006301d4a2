//! Settles what a crash left in doubt.
//!
//! A transaction is in doubt when the ledger holds its intent but no outcome:
//! the process died somewhere between writing the intent and recording the
//! commit. The checkpoint topic, read with read_committed after every slot's
//! `init_transactions` fenced the dead instance, says whether it committed:
//! the checkpoint of a committed transaction carries its seq.

use cdr_state::{FileStatus, Ledger, LedgerError};

use super::decide::Progress;
use super::now_ms;
use crate::sink::CheckpointStore;

/// Resolves every in-doubt transaction; returns how many there were.
pub fn settle_in_doubt(ledger: &Ledger, checkpoints: &CheckpointStore) -> Result<usize, LedgerError> {
    settle_in_doubt_of(ledger, checkpoints, |_| true)
}

/// Resolves the in-doubt transactions of the files `mine` accepts: in a
/// group, only a shard this instance has just fenced and re-read has a
/// checkpoint that is final for its files.
pub fn settle_in_doubt_of(
    ledger: &Ledger,
    checkpoints: &CheckpointStore,
    mine: impl Fn(&str) -> bool,
) -> Result<usize, LedgerError> {
    let in_doubt: Vec<_> = ledger
        .in_doubt()?
        .into_iter()
        .filter(|(file, _)| mine(&file.name))
        .collect();
    for (file, txn) in &in_doubt {
        let cp = checkpoints
            .get(&file.name)
            .filter(|c| c.sha256 == file.sha256 && c.version == file.version);
        let committed = cp.is_some_and(|c| c.seq >= txn.seq);
        let mut rec = file.clone();
        let row_end = match cp {
            Some(c) if committed => {
                Progress::of_checkpoint(c).apply_to(&mut rec);
                if c.done {
                    rec.status = FileStatus::Committed;
                    rec.finished_ms.get_or_insert_with(now_ms);
                }
                c.rows_done
            }
            _ => txn.row_start.saturating_sub(1),
        };
        tracing::info!(
            file = %file.name,
            seq = txn.seq,
            outcome = if committed { "committed" } else { "aborted" },
            rows_done = rec.rows_done,
            "settled a transaction left in doubt by an earlier run"
        );
        // Failure contract: durable on return; a crash before it leaves the
        // transaction in doubt and the next start settles it the same way.
        ledger.resolve_in_doubt(&rec, txn.seq, committed, row_end)?;
    }
    Ok(in_doubt.len())
}
