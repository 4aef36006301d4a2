//! `once` and `run`: the service driven from the command line (`crate::service`),
//! its outcome turned into output and an exit status.

use std::process::ExitCode;

use crate::cli::{IngestCommand, RunCommand};
use crate::service;

/// One pass; exit 1 while a file it took is stuck (failed, parked, backing
/// off, in conflict) or an outage deferred one.
pub fn once(args: &IngestCommand) -> anyhow::Result<ExitCode> {
    let outcome = service::once(args)?;
    let (summary, stuck) = (&outcome.summary, &outcome.stuck);
    println!(
        "committed {} file(s), {} row(s) ({} invalid); skipped {}, duplicates {}, deferred {}; \
         stuck: failed {}, parked {}, backing off {}, conflicts {}",
        summary.committed,
        summary.rows,
        summary.invalid_rows,
        summary.skipped,
        summary.duplicates,
        summary.deferred,
        stuck.failed,
        stuck.parked,
        stuck.backing_off,
        stuck.conflicts
    );
    Ok(if outcome.needs_attention() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The daemon, until a signal stops it (exit 0).
pub fn run(args: &RunCommand) -> anyhow::Result<ExitCode> {
    service::run(args)?;
    Ok(ExitCode::SUCCESS)
}
