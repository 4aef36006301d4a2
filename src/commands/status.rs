//! `status`: the ledger at a glance, read-only.

use std::process::ExitCode;

use anyhow::Context;
use cdr_state::{FileRecord, FileStatus, Ledger};
use serde::Serialize;

use crate::cli::StatusCommand;

#[derive(Serialize)]
struct Report<'a> {
    counts: std::collections::BTreeMap<String, u64>,
    in_progress: Vec<&'a FileRecord>,
    recent: Vec<&'a FileRecord>,
    problems: Vec<&'a FileRecord>,
    rows_committed: u64,
    invalid_rows_committed: u64,
}

pub fn status(args: &StatusCommand) -> anyhow::Result<ExitCode> {
    let reader = Ledger::open_read_only(&args.ledger.ledger_dir)
        .with_context(|| format!("opening the ledger in {}", args.ledger.ledger_dir.display()))?;
    let files = reader.files()?;
    let mut counts = std::collections::BTreeMap::new();
    for f in &files {
        *counts.entry(f.status.to_string()).or_insert(0u64) += 1;
    }
    let mut recent: Vec<&FileRecord> = files
        .iter()
        .filter(|f| f.status == FileStatus::Committed)
        .collect();
    recent.sort_by_key(|f| std::cmp::Reverse(f.finished_ms));
    recent.truncate(args.recent);
    let committed = files.iter().filter(|f| f.status == FileStatus::Committed);
    let report = Report {
        counts,
        in_progress: files.iter().filter(|f| f.status == FileStatus::InProgress).collect(),
        recent,
        problems: files
            .iter()
            .filter(|f| matches!(f.status, FileStatus::Failed | FileStatus::Conflict | FileStatus::Duplicate))
            .collect(),
        rows_committed: committed.clone().map(|f| f.valid_rows).sum(),
        invalid_rows_committed: committed.map(|f| f.invalid_rows).sum(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let counts: Vec<String> = report.counts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("files: {}", if counts.is_empty() { "none".into() } else { counts.join(", ") });
    println!(
        "rows committed: {} valid, {} invalid (dead-letter)",
        report.rows_committed, report.invalid_rows_committed
    );
    if !report.in_progress.is_empty() {
        println!("\nin progress:");
        for f in &report.in_progress {
            println!("  {:<40} {:>10} rows done", f.name, f.rows_done);
        }
    }
    if !report.recent.is_empty() {
        println!("\nrecent:");
        println!("  {:<40} {:>10} {:>8} {:>9}", "file", "rows", "invalid", "seconds");
        for f in &report.recent {
            let secs = match (f.started_ms, f.finished_ms) {
                (Some(s), Some(e)) => format!("{:.2}", (e - s) as f64 / 1000.0),
                _ => "-".into(),
            };
            println!("  {:<40} {:>10} {:>8} {:>9}", f.name, f.rows_done, f.invalid_rows, secs);
        }
    }
    if !report.problems.is_empty() {
        println!("\nproblems:");
        for f in &report.problems {
            println!("  {:<40} {:<9} {}", f.name, f.status.to_string(), f.error.as_deref().unwrap_or(""));
        }
    }
    Ok(ExitCode::SUCCESS)
}
