//! `audit`: reconcile ledger, topics, checkpoints (and the source), print the
//! report, and turn the verdict into the exit status.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::audit::scan::TopicSet;
use crate::audit::scope::Scope;
use crate::audit::{audit as run_audit, AuditSettings};
use crate::cli::AuditCommand;

/// Exit status when the audit ran and found a discrepancy; errors exit 2 from main.
const DISCREPANCY: u8 = 1;

/// Runs the audit and prints its report; exit 1 on a discrepancy.
pub fn audit(args: &AuditCommand) -> anyhow::Result<ExitCode> {
    let dir = &args.ledger.ledger_dir;
    let ledger = if args.group.is_some() && !dir.exists() {
        None
    } else {
        Some(super::read_ledger(dir)?)
    };
    let mut source = if args.rehash {
        Some(args.source.build().context("configuring the source for --rehash")?)
    } else {
        None
    };
    let layout = args.kafka.topics()?;
    let settings = AuditSettings {
        topics: TopicSet::of(&layout),
        kinds: layout.kinds,
        checkpoint_topic: args.kafka.checkpoint_topic.clone(),
        scope: Scope {
            file: args.file.clone(),
            pattern: args.pattern.clone(),
            since_ms: args.since,
            until_ms: args.until,
            basis: Some(args.time),
        },
        timeout: Duration::from_secs(args.timeout_seconds.max(1)),
        consumers: args.consumers,
        across_group: args.group.is_some(),
    };
    let report = run_audit(
        ledger.as_ref(),
        &args.kafka.kafka_config(),
        &settings,
        source.as_deref_mut().map(|s| s as &mut dyn crate::source::Source),
    )?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        report.write_human(&mut out)?;
    }
    out.flush()?;
    Ok(if report.summary.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(DISCREPANCY)
    })
}
