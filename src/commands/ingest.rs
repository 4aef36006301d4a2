//! `once` and `run`: wire the configured source, ledger and Kafka into the
//! engine and drive it.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cdr_state::Ledger;

use crate::cli::{IngestCommand, RunCommand};
use crate::ingest::now_ms;
use crate::ingest::pass::{Engine, PassSummary};
use crate::sink::topics::ensure_topics;
use crate::source::retry::backoff;
use crate::source::select::Selector;
use crate::source::{RemoteFile, Source, SourceError};

fn start_engine(args: &IngestCommand) -> anyhow::Result<Engine> {
    let kafka = args.kafka.kafka_config();
    let layout = args.kafka.topics();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let created = rt
        .block_on(ensure_topics(&kafka, &layout))
        .context("preparing topics")?;
    if !created.is_empty() {
        tracing::info!(topics = ?created, "topics created");
    }
    let ledger = Ledger::open(&args.ledger.ledger_dir)
        .with_context(|| format!("opening the ledger in {}", args.ledger.ledger_dir.display()))?;
    let source = args.source.build().context("configuring the source")?;
    tracing::info!(source = %source.describe(), "source configured");
    let settings = args.ingest.settings(&args.kafka, &args.ledger);
    Ok(Engine::start(&kafka, 0, ledger, source, settings)?)
}

/// Lists the source, retrying transient failures a few times.
fn list(source: &mut dyn Source) -> Result<Vec<RemoteFile>, SourceError> {
    let mut attempt = 0;
    loop {
        match source.list() {
            Err(e) if e.is_transient() && attempt < 5 => {
                tracing::warn!(error = %e, attempt, "listing failed; retrying");
                std::thread::sleep(backoff(attempt));
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn log_summary(s: &PassSummary, took: Duration) {
    tracing::info!(
        committed = s.committed, skipped = s.skipped, failed = s.failed, conflicts = s.conflicts,
        duplicates = s.duplicates, deferred = s.deferred, rows = s.rows, invalid_rows = s.invalid_rows,
        seconds = format_args!("{:.2}", took.as_secs_f64()),
        "pass finished"
    );
}

/// One pass: two listings a settle interval apart, so only files that stood
/// still in between are taken.
pub fn once(args: &IngestCommand) -> anyhow::Result<ExitCode> {
    let mut engine = start_engine(args)?;
    let mut selector = Selector::new(args.source.select_config());
    let first = list(engine.source_mut())?;
    selector.ready(&first, now_ms());
    std::thread::sleep(selector.config().settle);
    let mut ready = selector.ready(&list(engine.source_mut())?, now_ms());
    // Files too young at the second listing are waited for, once.
    let wait = selector.config().min_age;
    if ready.len() < selector.tracked() && !wait.is_zero() {
        std::thread::sleep(wait);
        ready = selector.ready(&list(engine.source_mut())?, now_ms());
    }
    let started = Instant::now();
    let summary = engine.pass(ready, &|| false)?;
    log_summary(&summary, started.elapsed());
    println!(
        "committed {} file(s), {} row(s) ({} invalid); skipped {}, failed {}, conflicts {}, duplicates {}, deferred {}",
        summary.committed, summary.rows, summary.invalid_rows, summary.skipped, summary.failed,
        summary.conflicts, summary.duplicates, summary.deferred
    );
    Ok(if summary.failed > 0 || summary.deferred > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The daemon. The first SIGTERM/SIGINT stops taking new files and lets the
/// current file's chunk finish; a second one exits at once (still safe: the
/// ledger and the broker recover on the next start).
pub fn run(args: &RunCommand) -> anyhow::Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone())?;
    let mut engine = start_engine(&args.common)?;
    let mut selector = Selector::new(args.common.source.select_config());
    let interval = Duration::from_secs(args.poll_interval_seconds.max(1));
    while !stop.load(Ordering::SeqCst) {
        match list(engine.source_mut()) {
            Ok(listing) => {
                let ready = selector.ready(&listing, now_ms());
                if !ready.is_empty() {
                    let started = Instant::now();
                    let summary = engine.pass(ready, &|| stop.load(Ordering::SeqCst))?;
                    if summary.committed + summary.failed + summary.deferred > 0 {
                        log_summary(&summary, started.elapsed());
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "source unavailable; will retry"),
        }
        let until = Instant::now() + interval;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    tracing::info!("stopped on signal");
    Ok(ExitCode::SUCCESS)
}

fn watch_signals(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let count = AtomicU32::new(0);
            rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                    tracing::error!("cannot install signal handlers");
                    return;
                };
                loop {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    if count.fetch_add(1, Ordering::SeqCst) == 0 {
                        tracing::info!("signal received: finishing the current chunk, then exiting (signal again to exit now)");
                        stop.store(true, Ordering::SeqCst);
                    } else {
                        tracing::warn!("second signal: exiting now");
                        std::process::exit(130);
                    }
                }
            });
        })?;
    Ok(())
}
