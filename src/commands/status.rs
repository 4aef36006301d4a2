//! `status`: the ledger at a glance, read-only. It opens the ledger with
//! `Ledger::open_read_only`, which reads beside a running daemon (or a
//! private snapshot of a crashed writer's file), so it works while the
//! service runs and on a copied ledger directory alike. With `--group`, the
//! group's view follows (`group::view`).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context;
use cdr_state::{FileRecord, FileStatus, LedgerReader};
use serde::Serialize;

use crate::cli::StatusCommand;
use crate::escape::escape_controls as shown;
use crate::group::topic::partition_count;
use crate::group::view::{self, GroupView};
use crate::ingest::now_ms;
use crate::sink::CheckpointStore;
use crate::source::ignored::IgnoreReason;
use crate::source::select::glob_match;

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
    /// Entries of the daemon's latest listing that are never taken, per
    /// reason (every reason present): how many, and a few of their names.
    ignored: BTreeMap<&'static str, IgnoredReport>,
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

#[derive(Serialize, Default)]
struct IgnoredReport {
    count: u64,
    /// The first names in name order, at most [`IGNORED_EXAMPLES`].
    examples: Vec<String>,
}

/// Names shown per reason: enough to find the culprits, bounded for a
/// directory full of strays.
const IGNORED_EXAMPLES: usize = 5;

#[derive(Serialize)]
struct Waiting<'a> {
    name: &'a str,
    status: FileStatus,
    rows_done: u64,
    first_seen_ms: i64,
    waiting_seconds: f64,
}

/// Prints the ledger's summary (and the group's), as text or JSON.
pub fn status(args: &StatusCommand) -> anyhow::Result<ExitCode> {
    let dir = &args.ledger.ledger_dir;
    // A group view may run where no instance keeps its ledger.
    let reader = if args.group.is_some() && !dir.exists() {
        None
    } else {
        Some(super::read_ledger(dir)?)
    };
    let files = reader.as_ref().map(|r| r.files()).transpose()?.unwrap_or_default();
    let instance = reader
        .as_ref()
        .map(|r| ledger_report(r, &files, args.recent))
        .transpose()?;
    let group = match args.group.as_deref() {
        Some(g) => {
            let member = reader.as_ref().map(|r| r.group_member(g)).transpose()?.flatten();
            Some(group_view(args, g, member.as_deref())?)
        }
        None => None,
    };
    let mut out = std::io::stdout().lock();
    match (args.json, &instance, &group) {
        (true, Some(r), None) => serde_json::to_writer_pretty(&mut out, r)?,
        (true, _, _) => {
            serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "instance": instance, "group": group }))?
        }
        (false, _, _) => {
            if let Some(r) = &instance {
                write_human(r, &mut out)?;
            }
            if let Some(g) = &group {
                if instance.is_some() {
                    writeln!(out)?;
                }
                write_group(g, &mut out)?;
            }
        }
    }
    if args.json {
        writeln!(out)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn ledger_report<'a>(
    reader: &LedgerReader,
    files: &'a [FileRecord],
    recent_count: usize,
) -> anyhow::Result<Report<'a>> {
    let counts = reader.counts()?;
    let of = |wanted: &'static [FileStatus]| files.iter().filter(move |f| wanted.contains(&f.status));
    let committed = || of(&[FileStatus::Committed]);
    let mut recent: Vec<&FileRecord> = committed().collect();
    recent.sort_by_key(|f| std::cmp::Reverse(f.finished_ms));
    let now = now_ms();
    Ok(Report {
        counts,
        rows_committed: committed().map(|f| f.valid_rows).sum(),
        invalid_rows_committed: committed().map(|f| f.invalid_rows).sum(),
        in_progress: of(&[FileStatus::InProgress]).collect(),
        recent: recent
            .into_iter()
            .take(recent_count)
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
                    || matches!(
                        f.status,
                        FileStatus::Failed | FileStatus::Conflict | FileStatus::Duplicate | FileStatus::Parked
                    )
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
        ignored: ignored_report(reader.ignored()?),
        in_doubt_transactions: reader.in_doubt()?.len(),
        live: reader.follows_writer(),
    })
}

fn ignored_report(entries: Vec<(String, String)>) -> BTreeMap<&'static str, IgnoredReport> {
    let mut report: BTreeMap<&'static str, IgnoredReport> = IgnoreReason::ALL
        .iter()
        .map(|r| (r.as_str(), IgnoredReport::default()))
        .collect();
    for (name, label) in entries {
        // A label from a newer build is shown as it is stored.
        let key = IgnoreReason::parse(&label).map_or("other", IgnoreReason::as_str);
        let r = report.entry(key).or_default();
        r.count += 1;
        if r.examples.len() < IGNORED_EXAMPLES {
            r.examples.push(name);
        }
    }
    report
}

/// How long the group view waits for the coordinator and the checkpoint topic.
const GROUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The group from the coordinator, the lag from the source's listing against
/// the checkpoint topic. An unreadable source leaves the lag unknown, not the
/// view: the members are what an operator looks for first.
fn group_view(args: &StatusCommand, group: &str, this_member: Option<&str>) -> anyhow::Result<GroupView> {
    let kafka = args.kafka.kafka_config();
    let shard_count = partition_count(&kafka, &args.group_topic)?.with_context(|| {
        format!(
            "no assignment topic {}: no instance of a group has started with it",
            args.group_topic
        )
    })?;
    let description = view::describe(&kafka, group, &args.group_topic, this_member, GROUP_TIMEOUT)?;
    let listing = args.source.build().and_then(|mut s| s.list());
    let lag = match listing {
        Ok(listing) => {
            let checkpoints = CheckpointStore::load(&kafka, &args.kafka.checkpoint_topic, GROUP_TIMEOUT)?;
            let kinds = args.kafka.topics()?.kinds;
            let patterns = args.source.select_config(&kinds).patterns;
            let names = listing
                .files
                .iter()
                .map(|f| f.name.as_str())
                .filter(|n| kinds.for_file(n).is_some() && patterns.iter().any(|p| glob_match(p, n)));
            Some(view::lag_per_shard(names, &checkpoints, shard_count))
        }
        Err(e) => {
            tracing::warn!(error = %e, "listing the source failed: the files waiting per shard are unknown");
            None
        }
    };
    Ok(GroupView::new(description, shard_count, lag))
}

fn write_group(g: &GroupView, out: &mut impl Write) -> std::io::Result<()> {
    let d = &g.membership;
    let waiting = g
        .files_waiting
        .map_or("unknown (the source could not be listed)".into(), |n| n.to_string());
    writeln!(
        out,
        "group {}: {}, {} member(s), {} shard(s), files waiting: {waiting}",
        d.group,
        d.state,
        d.members.len(),
        g.shard_count
    )?;
    if !d.members.is_empty() {
        writeln!(
            out,
            "  {:<36} {:<16} {:>6} {:>8}  shards",
            "member", "address", "shards", "waiting"
        )?;
        for m in &d.members {
            let here = match (m.this_instance, m.this_host) {
                (true, _) => " (this instance)",
                (false, true) => " (this host)",
                (false, false) => "",
            };
            let waiting = m.files_waiting.map_or("-".into(), |n| n.to_string());
            writeln!(
                out,
                "  {:<36} {:<16} {:>6} {:>8}  {}{here}",
                m.client_id,
                m.host,
                m.shards.len(),
                waiting,
                ranges(&m.shards)
            )?;
        }
    }
    if !g.unassigned.is_empty() {
        writeln!(
            out,
            "  unassigned shards: {} (a rebalance in progress, or no member)",
            ranges(&g.unassigned)
        )?;
    }
    if !g.lagging_shards.is_empty() {
        writeln!(out, "\nfiles waiting per shard:")?;
        writeln!(out, "  {:>5} {:<36} {:>7}  first waiting", "shard", "owner", "files")?;
        for l in &g.lagging_shards {
            let first = shown(l.lag.first_waiting.as_deref().unwrap_or(""));
            writeln!(
                out,
                "  {:>5} {:<36} {:>7}  {first}",
                l.shard,
                l.owner.as_deref().unwrap_or("(nobody)"),
                l.lag.files_waiting
            )?;
        }
    }
    Ok(())
}

/// `0-3,7,9-10`: shard lists stay one short line.
fn ranges(shards: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < shards.len() {
        let mut j = i;
        while j + 1 < shards.len() && shards[j + 1] == shards[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            shards[i].to_string()
        } else {
            format!("{}-{}", shards[i], shards[j])
        });
        i = j + 1;
    }
    parts.join(",")
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
        writeln!(
            out,
            "(the last writer crashed: this is its last durable commit, read from a private copy)"
        )?;
    }
    match &r.oldest_waiting {
        Some(w) => writeln!(
            out,
            "oldest waiting: {} ({}, {} rows done), seen {:.0} s ago",
            shown(w.name),
            w.status,
            w.rows_done,
            w.waiting_seconds
        )?,
        None => writeln!(out, "oldest waiting: none")?,
    }
    let ignored: u64 = r.ignored.values().map(|i| i.count).sum();
    if ignored > 0 {
        writeln!(out, "\nignored (in the directory, never taken): {ignored}")?;
        writeln!(out, "  {:<20} {:>6}  examples", "reason", "files")?;
        for (reason, i) in r.ignored.iter().filter(|(_, i)| i.count > 0) {
            let examples: Vec<String> = i.examples.iter().map(|n| shown(n).to_string()).collect();
            writeln!(out, "  {:<20} {:>6}  {}", reason, i.count, examples.join(", "))?;
        }
    }
    if !r.in_progress.is_empty() {
        writeln!(out, "\nin progress:")?;
        writeln!(out, "  {:<40} {:>10}", "file", "rows done")?;
        for f in &r.in_progress {
            writeln!(out, "  {:<40} {:>10}", shown(&f.name), f.rows_done)?;
        }
    }
    if !r.recent.is_empty() {
        writeln!(out, "\nrecent:")?;
        writeln!(out, "  {:<40} {:>10} {:>8} {:>9}", "file", "rows", "invalid", "seconds")?;
        for f in &r.recent {
            let secs = f.seconds.map_or("-".into(), |s| format!("{s:.2}"));
            writeln!(
                out,
                "  {:<40} {:>10} {:>8} {:>9}",
                shown(f.name),
                f.rows,
                f.invalid_rows,
                secs
            )?;
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
            writeln!(
                out,
                "  {:<40} {:<11} {:>8} {}",
                shown(&f.name),
                status,
                f.attempts,
                shown(f.error.as_deref().unwrap_or(""))
            )?;
        }
        if r.problems
            .iter()
            .any(|f| matches!(f.status, FileStatus::Parked | FileStatus::Failed))
        {
            writeln!(
                out,
                "  (`cdr-to-redpanda retry FILE...` or `retry --all-parked` tries parked or failed files again)"
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn shard_lists_print_as_ranges() {
        assert_eq!(super::ranges(&[0, 1, 2, 3, 7, 9, 10]), "0-3,7,9-10");
        assert_eq!(super::ranges(&[]), "");
    }
}
