//! `retry`: releases parked or failed files for another attempt, safely beside
//! a running daemon (see `ingest::park` for why it goes through a request).

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::RetryCommand;
use crate::ingest::park::{apply_pending, submit, RetryRequest};

/// Applies the retry at once, or queues it for the daemon holding the ledger.
pub fn retry(args: &RetryCommand) -> anyhow::Result<ExitCode> {
    let dir = &args.ledger.ledger_dir;
    submit(dir, &RetryRequest::new(args.files.clone(), args.all_parked)).context("queueing the retry request")?;
    match crate::service::open_ledger(dir) {
        Ok(ledger) => {
            let released = apply_pending(dir, &ledger).context("applying retry requests")?;
            for rec in &released {
                println!("released {} ({}); the next pass ingests it", rec.name, rec.status);
            }
            if released.is_empty() {
                println!("nothing released: no such parked or failed file");
                return Ok(ExitCode::from(1));
            }
        }
        Err(e) if e.is_held_by_another_writer() => {
            println!("a running daemon holds the ledger: the request is queued and applied at its next poll");
        }
        Err(e) => return Err(e).with_context(|| format!("opening the ledger in {}", dir.display())),
    }
    Ok(ExitCode::SUCCESS)
}
