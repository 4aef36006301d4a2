//! Cost of the ledger writes around one Kafka transaction: `txn_intent` +
//! `txn_committed`, two durable commits (two fsyncs).
//!
//! `cargo run --release -p cdr-state --example ledger_bench [DIR] [PAIRS]`
//!
//! DIR defaults to a temporary directory under the current one (not /tmp, which
//! may be a tmpfs where fsync costs nothing); PAIRS to 1000. The ledger is
//! pre-filled with 10 000 committed files so the trees are not trivially small.

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use cdr_state::{FileRecord, FileStatus, Ledger};

const PREFILL_FILES: u64 = 10_000;

fn record(i: u64) -> FileRecord {
    let name = format!("cdr_data_{:08}_{:06}.csv", 20240101 + i / 86_400, i % 86_400);
    FileRecord {
        sha256: format!("{i:064x}"),
        bytes: 150_000_000,
        ..FileRecord::seen(&name, "data", 150_000_000, 1_704_067_200 + i as i64, 1_704_067_200_000)
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (dir, _guard) = match args.next() {
        Some(dir) => (PathBuf::from(dir), None),
        None => {
            let tmp = tempfile::tempdir_in(".")?;
            (tmp.path().to_owned(), Some(tmp))
        }
    };
    let pairs: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1000);
    let ledger = Ledger::open(&dir)?;

    let start = Instant::now();
    for i in 0..PREFILL_FILES {
        ledger.put_file(&FileRecord {
            status: FileStatus::Committed,
            ..record(PREFILL_FILES + i)
        })?;
    }
    let prefill = start.elapsed();

    // One file, `pairs` transactions of 10 000 rows each: the ingest loop's pattern.
    let mut file = record(0);
    let start = Instant::now();
    for seq in 0..pairs {
        let row_start = seq * 10_000;
        ledger.txn_intent(&file, seq, row_start)?;
        file.status = FileStatus::InProgress;
        file.rows_done = row_start + 10_000;
        file.valid_rows = file.rows_done;
        ledger.txn_committed(&file, seq, file.rows_done)?;
    }
    let elapsed = start.elapsed();

    println!("ledger at {}", dir.display());
    println!(
        "put_file (prefill, {PREFILL_FILES} files): {:.0} us per call",
        prefill.as_secs_f64() * 1e6 / PREFILL_FILES as f64
    );
    println!(
        "txn_intent + txn_committed: {:.0} us per pair ({pairs} pairs, {:.0} pairs/s)",
        elapsed.as_secs_f64() * 1e6 / pairs as f64,
        pairs as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
