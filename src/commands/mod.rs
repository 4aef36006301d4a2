//! What each subcommand does. `anyhow` lives here and in main only.

pub mod audit;
pub mod check_config;
/// `generate`.
pub mod generate;
pub mod healthcheck;
pub mod ingest;
pub mod retry;
pub mod status;

use std::path::Path;

use anyhow::Context;
use cdr_state::{Ledger, LedgerError, LedgerReader};

/// Opens the ledger for reading beside a writer; a damaged one is an error
/// that says what a writer does about it.
fn read_ledger(dir: &Path) -> anyhow::Result<LedgerReader> {
    Ledger::open_read_only(dir)
        .map_err(|e| match e {
            LedgerError::Damaged { .. } => anyhow::Error::new(e).context(
                "`run` or `once` moves a damaged ledger aside at its next start and rebuilds it from the checkpoint topic",
            ),
            e => anyhow::Error::new(e),
        })
        .with_context(|| format!("opening the ledger in {}", dir.display()))
}
