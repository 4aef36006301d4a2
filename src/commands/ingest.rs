//! `once` and `run`: wire the configured source, ledger and Kafka into the
//! engine and drive it.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use cdr_state::{FileStatus, Ledger};

use crate::backoff::backoff;
use crate::cli::{IngestCommand, RunCommand};
use crate::group::topic::ensure_assignment_topic;
use crate::group::Group;
use crate::ingest::decide::needs_fetch;
use crate::ingest::engine::PassSummary;
use crate::ingest::park::Stuck;
use crate::ingest::workers::Workers;
use crate::ingest::{now_ms, park, OnChanged, Shutdown};
use crate::metrics::{server, HEALTH, METRICS};
use crate::schema::RecordKind;
use crate::sink::limits::{self, RecordLimits};
use crate::sink::probe::BrokerProbe;
use crate::sink::topics::{ensure_topics, TopicError};
use crate::sink::KafkaConfig;
use crate::source::select::Selector;
use crate::source::{RemoteFile, Source, SourceError};

/// Opens the ledger, applies pending `retry` requests, and starts `slots`
/// worker slots, each with its own source.
fn start_workers(
    args: &IngestCommand,
    slots: u32,
    shutdown: &Shutdown,
    limits: &RecordLimits,
    group: Option<Group>,
) -> anyhow::Result<Workers> {
    let ledger = super::open_ledger(&args.ledger.ledger_dir)
        .with_context(|| format!("opening the ledger in {}", args.ledger.ledger_dir.display()))?;
    apply_retry_requests(args, &ledger)?;
    let mut settings = args.ingest.settings(&args.kafka, &args.ledger);
    let build = |n: u32| {
        (0..n)
            .map(|_| args.source.build())
            .collect::<Result<Vec<_>, _>>()
            .context("configuring the source")
    };
    let sources = build(slots)?;
    // Sessions open on first use: the read-ahead ones at the first file.
    let ahead = build(if settings.read_ahead { slots } else { 0 })?;
    tracing::info!(source = %sources[0].describe(), slots, read_ahead = settings.read_ahead, "source configured");
    settings.shutdown = shutdown.clone();
    settings.limits = limits.clone();
    let mut kafka = args.kafka.kafka_config();
    kafka.batch_bytes = limits.batch_bytes(kafka.batch_bytes);
    Ok(Workers::start(&kafka, ledger, sources, ahead, settings, group)?)
}

/// Releases what `retry` asked for since the last look. The ledger is
/// unwritable if this fails: that stops the service.
fn apply_retry_requests(args: &IngestCommand, ledger: &Ledger) -> anyhow::Result<()> {
    park::apply_pending(&args.ledger.ledger_dir, ledger).context("applying retry requests")?;
    Ok(())
}

/// The admin client is async; its requests are driven on a small runtime.
fn admin_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Creates missing topics, then learns how large a record each accepts.
fn prepare_topics(rt: &tokio::runtime::Runtime, args: &IngestCommand) -> Result<RecordLimits, TopicError> {
    let created = rt.block_on(ensure_topics(&args.kafka.kafka_config(), &args.kafka.topics()))?;
    if !created.is_empty() {
        tracing::info!(topics = ?created, "topics created");
    }
    learn_limits(rt, args)
}

fn learn_limits(rt: &tokio::runtime::Runtime, args: &IngestCommand) -> Result<RecordLimits, TopicError> {
    let t = args.kafka.topics();
    let topics = [t.data.as_str(), t.voice.as_str(), t.dlq.as_str()];
    let limits = rt.block_on(limits::learn(&args.kafka.kafka_config(), &topics))?;
    tracing::debug!(?limits, "record size limits");
    Ok(limits)
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
        committed = s.committed,
        skipped = s.skipped,
        failed = s.failed,
        retrying = s.retrying,
        parked = s.parked,
        conflicts = s.conflicts,
        duplicates = s.duplicates,
        deferred = s.deferred,
        interrupted = s.interrupted,
        rows = s.rows,
        invalid_rows = s.invalid_rows,
        seconds = format_args!("{:.2}", took.as_secs_f64()),
        "pass finished"
    );
}

/// One pass: two listings a settle interval apart, so only files that stood
/// still in between are taken.
pub fn once(args: &IngestCommand) -> anyhow::Result<ExitCode> {
    let limits = prepare_topics(&admin_runtime()?, args).context("preparing topics")?;
    let mut workers = start_workers(args, 1, &Shutdown::default(), &limits, None)?;
    let mut selector = Selector::new(args.source.select_config());
    let first = list(workers.source_mut())?;
    selector.ready(&first, now_ms());
    std::thread::sleep(selector.config().settle);
    // Files too young or still changing are left for the next run.
    let ready = selector.ready(&list(workers.source_mut())?, now_ms());
    let started = Instant::now();
    let names: Vec<String> = ready.iter().map(|f| f.name.clone()).collect();
    let summary = workers.pass(ready)?;
    log_summary(&summary, started.elapsed());
    // What this pass or an earlier one left stuck, as the ledger has it now.
    let stuck = Stuck::of(workers.ledger(), names.iter().map(String::as_str), now_ms())?;
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
    Ok(if stuck.total() + summary.deferred > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// How often the daemon asks the cluster again for the topics' record limits.
const LIMITS_REFRESH: Duration = Duration::from_secs(60);

/// Sleeps up to `d`, returning early (false) once shutdown is requested.
fn sleep_unless_stopped(d: Duration, shutdown: &Shutdown) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if shutdown.requested() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
    }
    !shutdown.requested()
}

/// Retries `op` with backoff while it fails with a transient error, logging
/// each wait; a permanent error is returned. False if shutdown came first.
fn wait_for<E: std::fmt::Display>(
    what: &str,
    shutdown: &Shutdown,
    mut op: impl FnMut() -> Result<(), E>,
    transient: impl Fn(&E) -> bool,
) -> Result<bool, E> {
    let mut attempt = 0;
    loop {
        match op() {
            Ok(()) => {
                if attempt > 0 {
                    tracing::info!("{what} reachable");
                }
                return Ok(true);
            }
            Err(e) if transient(&e) => {
                let wait = backoff(attempt);
                tracing::warn!(error = %e, retry_in = ?wait, attempt = attempt + 1, "waiting for {what}");
                if !sleep_unless_stopped(wait, shutdown) {
                    return Ok(false);
                }
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Keeps `HEALTH`'s broker flag current: one metadata request every
/// `BROKER_PROBE_INTERVAL`, independent of what the slots are doing.
fn spawn_broker_probe(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<()> {
    const BROKER_PROBE_INTERVAL: Duration = Duration::from_secs(3);
    let probe = BrokerProbe::new(kafka, topic).context("creating the broker probe")?;
    std::thread::Builder::new()
        .name("broker-probe".into())
        .spawn(move || loop {
            let ok = probe.brokers(BROKER_PROBE_INTERVAL).is_ok_and(|n| n > 0);
            HEALTH.set_brokers_ok(ok);
            std::thread::sleep(BROKER_PROBE_INTERVAL);
        })?;
    Ok(())
}

/// The waiting-files gauges: listed files of a known kind that the ledger
/// has not settled (what the next passes still have to do). In a group, only
/// the files of this instance's shards count, and each shard's are counted
/// apart too.
fn update_waiting(listing: &[RemoteFile], ledger: &Ledger, on_changed: OnChanged, group: Option<&Group>) {
    let mut per_shard: BTreeMap<u32, u64> =
        group.map_or_else(BTreeMap::new, |g| g.owned().into_iter().map(|s| (s, 0)).collect());
    let mut waiting = 0u64;
    let mut oldest: Option<i64> = None;
    for f in listing.iter().filter(|f| RecordKind::from_file_name(&f.name).is_some()) {
        let shard = group.map(|g| g.shard_of(&f.name));
        if shard.is_some_and(|s| !per_shard.contains_key(&s)) {
            continue;
        }
        let Ok(rec) = ledger.file(&f.name) else { continue };
        if needs_fetch(f, rec.as_ref(), on_changed, now_ms()) {
            waiting += 1;
            oldest = Some(oldest.map_or(f.mtime, |o| o.min(f.mtime)));
            if let Some(n) = shard.and_then(|s| per_shard.get_mut(&s)) {
                *n += 1;
            }
        }
    }
    METRICS.files_waiting.set(waiting as f64);
    if group.is_some() {
        METRICS
            .group_shard_files_waiting
            .replace(per_shard.into_iter().map(|(s, n)| (s.to_string(), n as f64)));
    }
    if let Ok(counts) = ledger.counts() {
        METRICS
            .files_parked
            .set(counts.get(&FileStatus::Parked).copied().unwrap_or(0) as f64);
    }
    let age = oldest.map_or(0, |m| (now_ms() / 1000 - m).max(0));
    METRICS.oldest_waiting_age_seconds.set(age as f64);
}

/// The daemon. The first SIGTERM/SIGINT stops taking new files and ends
/// the current chunk early; it commits, the file stays in progress, and the
/// process exits 0 (or 1 if that takes longer than the shutdown deadline). A
/// second signal exits at once (still safe: the ledger and the broker
/// recover on the next start).
pub fn run(args: &RunCommand) -> anyhow::Result<ExitCode> {
    let shutdown = Shutdown::default();
    watch_signals(shutdown.clone(), Duration::from_secs(args.shutdown_timeout_seconds))?;
    if let Some(addr) = &args.metrics_addr {
        server::serve(addr)?;
    }
    if args.workers > 2 && args.group.group.is_none() {
        tracing::warn!(
            workers = args.workers,
            "files of one kind are ingested one at a time in name order: slots beyond 2 (data, voice) stay idle"
        );
    }
    let common = &args.common;
    let kafka = common.kafka.kafka_config();
    // Brokers first (the topics must exist before anything is produced),
    // then the source; both waited for, so the order of container starts
    // does not matter. Permanent errors (too few brokers, refused login)
    // stop here with their reason.
    let rt = admin_runtime()?;
    let mut limits = RecordLimits::default();
    let reached = wait_for(
        "brokers",
        &shutdown,
        || prepare_topics(&rt, common).map(|l| limits = l),
        |e| matches!(e, TopicError::Kafka(_)),
    )
    .context("preparing topics")?;
    if !reached {
        return stopped();
    }
    HEALTH.set_brokers_ok(true);
    let mut probe_source = common.source.build().context("configuring the source")?;
    let reached = wait_for(
        "the source",
        &shutdown,
        || probe_source.list().map(|_| ()),
        SourceError::is_transient,
    )
    .context("listing the source")?;
    drop(probe_source);
    if !reached {
        return stopped();
    }
    HEALTH.set_source_ok(true);
    let group = match &args.group.group {
        Some(name) => Some(join_group(&rt, args, name)?),
        None => None,
    };
    let mut workers = start_workers(common, args.workers, &shutdown, &limits, group)?;
    if let Some(g) = workers.group() {
        // So that `status --group` on this ledger knows which member it is.
        workers.ledger().set_group_member(g.name(), g.member_name())?;
    }
    spawn_broker_probe(&kafka, &common.kafka.checkpoint_topic)?;
    HEALTH.set_started();
    tracing::info!("running");
    let mut selector = Selector::new(common.source.select_config());
    let interval = Duration::from_secs(args.poll_interval_seconds.max(1));
    let mut limits_learned = Instant::now();
    while !shutdown.requested() {
        apply_retry_requests(common, workers.ledger())?;
        match workers.take_over_shards() {
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "taking shards over failed; tried again at the next poll");
            }
            other => other.context("following the group's assignment")?,
        }
        match list(workers.source_mut()) {
            Ok(listing) => {
                HEALTH.set_source_ok(true);
                update_waiting(&listing, workers.ledger(), common.ingest.on_changed, workers.group());
                let ready = selector.ready(&listing, now_ms());
                if !ready.is_empty() {
                    // A topic's limit may have changed since it was learned.
                    // Asked only while the brokers answer the probe, so an
                    // outage does not stall the loop; failing, the last
                    // answer stands.
                    if HEALTH.brokers_ok() && limits_learned.elapsed() >= LIMITS_REFRESH {
                        match learn_limits(&rt, common) {
                            Ok(l) => workers.set_limits(&l),
                            Err(e) => tracing::warn!(error = %e, "could not refresh record size limits"),
                        }
                        limits_learned = Instant::now();
                    }
                    let started = Instant::now();
                    let summary = workers.pass(ready)?;
                    if summary.committed
                        + summary.failed
                        + summary.retrying
                        + summary.parked
                        + summary.deferred
                        + summary.interrupted
                        > 0
                    {
                        log_summary(&summary, started.elapsed());
                    }
                }
            }
            Err(e) => {
                HEALTH.set_source_ok(false);
                tracing::warn!(error = %e, "source unavailable; will retry");
            }
        }
        sleep_unless_stopped(interval, &shutdown);
    }
    stopped()
}

/// Creates the assignment topic if needed and joins the group.
fn join_group(rt: &tokio::runtime::Runtime, args: &RunCommand, name: &str) -> anyhow::Result<Group> {
    let common = &args.common;
    let kafka = common.kafka.kafka_config();
    let shards = rt
        .block_on(ensure_assignment_topic(
            &kafka,
            &args.group.group_topic,
            args.group.group_shards,
            common.kafka.replication_factor,
        ))
        .context("preparing the group's assignment topic")?;
    Ok(Group::join(
        &kafka,
        &args.group,
        name,
        shards,
        &common.kafka.checkpoint_topic,
    )?)
}

fn stopped() -> anyhow::Result<ExitCode> {
    tracing::info!("stopped on signal");
    Ok(ExitCode::SUCCESS)
}

/// First signal: request shutdown and arm the deadline. Second: exit now.
fn watch_signals(shutdown: Shutdown, deadline: Duration) -> anyhow::Result<()> {
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
                        tracing::info!(deadline = ?deadline, "signal received: committing the current chunk, then exiting (signal again to exit now)");
                        shutdown.request();
                        arm_deadline(deadline);
                    } else {
                        tracing::warn!("second signal: exiting now");
                        std::process::exit(130);
                    }
                }
            });
        })?;
    Ok(())
}

/// Exits 1 if the orderly shutdown has not finished after `deadline`; the
/// open transaction (if any) is settled by recovery at the next start.
fn arm_deadline(deadline: Duration) {
    let spawned = std::thread::Builder::new().name("shutdown-deadline".into()).spawn(move || {
        std::thread::sleep(deadline);
        tracing::error!(deadline = ?deadline, "shutdown deadline passed before the current chunk committed; exiting now");
        std::process::exit(1);
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot arm the shutdown deadline");
    }
}
