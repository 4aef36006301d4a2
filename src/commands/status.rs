//! `status`: the ledger at a glance, read-only. It opens the ledger with
//! `Ledger::open_read_only`, which reads beside a running daemon (or a
//! private snapshot of a crashed writer's file), so it works while the
//! service runs and on a copied ledger directory alike.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use cdr_state::{FileRecord, FileStatus, Ledger};
use serde::Serialize;

use crate::cli::StatusCommand;
use crate::ingest::now_ms;

#[derive(Serialize)]
struct Report<'a> {
    /// Files per status; every status is listed, zero or not.
    counts: BTreeMap<FileStatus, u64>,
    rows_committed: u64,
    invalid_rows_committed: u64,
    in_progress: Vec<&'a FileRecord>,
    /// The last files committed, newest first.
    recent: Vec<Recent<'a>>,
    /// Every failure, conflict, duplicate and parked file, and every file
    /// backing off after a failed attempt, with its reason (`error`), its
    /// `attempts` and `next_attempt_ms`.
    problems: Vec<&'a FileRecord>,
    /// The file seen longest ago that is not done yet.
    oldest_waiting: Option<Waiting<'a>>,
    /// Kafka transactions started and not known to have ended (the one the
    /// daemon runs now, or ones a crash left for recovery).
    in_doubt_transactions: usize,
    /// False when the ledger was left by a crashed writer and a snapshot of
    /// its last durable commit was read.
    live: bool,
}

#[derive(Serialize)]
struct Recent<'a> {
    name: &'a str,
    rows: u64,
    invalid_rows: u64,
    seconds: Option<f64>,
}

#[derive(Serialize)]
struct Waiting<'a> {
    name: &'a str,
    status: FileStatus,
    rows_done: u64,
    first_seen_ms: i64,
    waiting_seconds: f64,
}

pub fn status(args: &StatusCommand) -> anyhow::Result<ExitCode> {
    let reader = Ledger::open_read_only(&args.ledger.ledger_dir)
        .with_context(|| format!("opening the ledger in {}", args.ledger.ledger_dir.display()))?;
    let files = reader.files()?;
    let counts = reader.counts()?;
    let of = |wanted: &'static [FileStatus]| files.iter().filter(move |f| wanted.contains(&f.status));
    let committed = || of(&[FileStatus::Committed]);
    let mut recent: Vec<&FileRecord> = committed().collect();
    recent.sort_by_key(|f| std::cmp::Reverse(f.finished_ms));
    let now = now_ms();
    let report = Report {
        counts,
        rows_committed: committed().map(|f| f.valid_rows).sum(),
        invalid_rows_committed: committed().map(|f| f.invalid_rows).sum(),
        in_progress: of(&[FileStatus::InProgress]).collect(),
        recent: recent
            .into_iter()
            .take(args.recent)
            .map(|f| Recent {
                name: &f.name,
                rows: f.rows_done,
                invalid_rows: f.invalid_rows,
                seconds: f.started_ms.zip(f.finished_ms).map(|(s, e)| (e - s) as f64 / 1000.0),
            })
            .collect(),
        problems: files
            .iter()
            .filter(|f| {
                f.attempts > 0
                    || matches!(f.status, FileStatus::Failed | FileStatus::Conflict | FileStatus::Duplicate | FileStatus::Parked)
            })
            .collect(),
        oldest_waiting: of(&[FileStatus::Seen, FileStatus::InProgress])
            .min_by_key(|f| f.first_seen_ms)
            .map(|f| Waiting {
                name: &f.name,
                status: f.status,
                rows_done: f.rows_done,
                first_seen_ms: f.first_seen_ms,
                waiting_seconds: (now - f.first_seen_ms).max(0) as f64 / 1000.0,
            }),
        in_doubt_transactions: reader.in_doubt()?.len(),
        live: reader.follows_writer(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_human(&report, &mut out)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn write_human(r: &Report<'_>, out: &mut impl Write) -> std::io::Result<()> {
    let counts: Vec<String> = r.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    writeln!(out, "files: {}", counts.join(", "))?;
    writeln!(
        out,
        "rows committed: {} valid, {} invalid (dead-letter); {} transaction(s) in doubt",
        r.rows_committed, r.invalid_rows_committed, r.in_doubt_transactions
    )?;
    if !r.live {
        writeln!(out, "(the last writer crashed: this is its last durable commit, read from a private copy)")?;
    }
    match &r.oldest_waiting {
        Some(w) => writeln!(
            out,
            "oldest waiting: {} ({}, {} rows done), seen {:.0} s ago",
            w.name, w.status, w.rows_done, w.waiting_seconds
        )?,
        None => writeln!(out, "oldest waiting: none")?,
    }
    if !r.in_progress.is_empty() {
        writeln!(out, "\nin progress:")?;
        writeln!(out, "  {:<40} {:>10}", "file", "rows done")?;
        for f in &r.in_progress {
            writeln!(out, "  {:<40} {:>10}", f.name, f.rows_done)?;
        }
    }
    if !r.recent.is_empty() {
        writeln!(out, "\nrecent:")?;
        writeln!(out, "  {:<40} {:>10} {:>8} {:>9}", "file", "rows", "invalid", "seconds")?;
        for f in &r.recent {
            let secs = f.seconds.map_or("-".into(), |s| format!("{s:.2}"));
            writeln!(out, "  {:<40} {:>10} {:>8} {:>9}", f.name, f.rows, f.invalid_rows, secs)?;
        }
    }
    if !r.problems.is_empty() {
        writeln!(out, "\nproblems:")?;
        writeln!(out, "  {:<40} {:<11} {:>8} reason", "file", "status", "attempts")?;
        for f in &r.problems {
            // A file backing off is still seen or in progress: say so.
            let status = match f.status {
                FileStatus::Seen | FileStatus::InProgress => "retrying",
                other => other.as_str(),
            };
            writeln!(out, "  {:<40} {:<11} {:>8} {}", f.name, status, f.attempts, f.error.as_deref().unwrap_or(""))?;
        }
        if r.problems.iter().any(|f| matches!(f.status, FileStatus::Parked | FileStatus::Failed)) {
            writeln!(out, "  (`cdr-to-redpanda retry FILE...` or `retry --all-parked` tries parked or failed files again)")?;
        }
    }
    Ok(())
}
