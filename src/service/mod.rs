//! The service: the configured source, ledger and Kafka wired into the
//! engine and driven, once (`once`) or as a daemon (`run`). The commands
//! only parse, call here and turn the outcome into output and an exit code.
//!
//! - `wait`: sleeps and retries that a shutdown cuts short;
//! - `gauges`: the brokers' reachability for `/readyz`, files waiting;
//! - `signals`: SIGTERM/SIGINT, with the shutdown deadline;
//! - `sources`: the slots' sources, opened while Kafka is prepared.

mod gauges;
mod signals;
mod sources;
mod wait;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cdr_state::{Ledger, LedgerError};

use crate::cli::{IngestCommand, RunCommand};
use crate::encode::ValueFormat;
use crate::group::topic::ensure_assignment_topic;
use crate::group::{Group, GroupError};
use crate::ingest::engine::{EngineError, PassSummary};
use crate::ingest::park::{self, RequestError, Stuck};
use crate::ingest::workers::{Workers, FILES_PER_KIND};
use crate::ingest::{now_ms, Shutdown};
use crate::metrics::server::{self, ServerError};
use crate::metrics::{HEALTH, METRICS};
use crate::registry::{self, RegistryError};
use crate::schema::SchemaError;
use crate::sink::limits::{self, RecordLimits};
use crate::sink::topics::{ensure_topics, partition_counts, TopicError, TopicLayout};
use crate::sink::{client_log, KafkaConfig};
use crate::source::ignored::IgnoredFiles;
use crate::source::select::Selector;
use crate::source::{Listing, Source, SourceError};
use gauges::{spawn_broker_probe, update_ignored, update_waiting};
use signals::watch_signals;
use sources::{build_sources, list_source, open_sources};
use wait::{sleep_unless_stopped, wait_for};

/// Why the service stopped short; each says what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The ledger could not be opened.
    #[error("opening the ledger in {}", dir.display())]
    OpenLedger {
        /// The ledger directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: LedgerError,
    },
    /// The ledger refused a write: the service cannot keep its record.
    #[error("writing the ledger")]
    Ledger(#[from] LedgerError),
    /// A `retry` request could not be applied.
    #[error("applying retry requests")]
    RetryRequests(#[from] RequestError),
    /// The source settings do not make a source.
    #[error("configuring the source")]
    SourceConfig(#[source] SourceError),
    /// The source could not be listed.
    #[error("listing the source")]
    Listing(#[source] SourceError),
    /// A declared record kind cannot be used.
    #[error("the record kinds")]
    Kinds(#[from] SchemaError),
    /// The avro format's schemas could not be looked up or registered.
    #[error("preparing the value formats")]
    Registry(#[from] RegistryError),
    /// The topics could not be created or their limits learned.
    #[error("preparing topics on the brokers {brokers}")]
    Topics {
        /// The bootstrap brokers, as `KafkaArgs::brokers_shown` names them.
        brokers: String,
        /// What failed.
        #[source]
        source: TopicError,
    },
    /// Joining the group or following its assignment failed.
    #[error("following the group's assignment")]
    Group(#[from] GroupError),
    /// The engine stopped (fenced, the ledger, a fatal Kafka error).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The metrics endpoint could not listen.
    #[error(transparent)]
    Metrics(#[from] ServerError),
    /// The broker probe could not be created.
    #[error("creating the broker probe")]
    Probe(#[source] rdkafka::error::KafkaError),
    /// A helper thread or runtime could not start.
    #[error("starting a helper thread")]
    Thread(#[source] std::io::Error),
}

/// Opens the ledger for writing. A damaged one is moved aside, loudly, and a
/// new one opened: the checkpoint topic rebuilds what it knew, so nothing is
/// lost and the service does not crash-loop on a file it cannot read.
pub fn open_ledger(dir: &Path) -> Result<Ledger, LedgerError> {
    let (ledger, healed) = Ledger::open_healing(dir)?;
    if let Some(h) = healed {
        tracing::warn!(
            damage = %h.damage, moved_to = %h.moved_to.display(),
            "the ledger was damaged: moved aside and replaced by a new one; \
             what it knew is rebuilt from the checkpoint topic (nothing is ingested twice)"
        );
    }
    Ok(ledger)
}

/// Opens the ledger, applies pending `retry` requests, and starts a worker
/// slot for each of `sources`.
fn start_workers(
    args: &IngestCommand,
    layout: &TopicLayout,
    sources: Vec<Box<dyn Source>>,
    shutdown: &Shutdown,
    limits: &RecordLimits,
    values: BTreeMap<String, ValueFormat>,
    group: Option<Group>,
) -> Result<Workers, ServiceError> {
    let dir = &args.ledger.ledger_dir;
    let ledger = open_ledger(dir).map_err(|source| ServiceError::OpenLedger {
        dir: dir.clone(),
        source,
    })?;
    park::apply_pending(dir, &ledger)?;
    // The last success survives a restart: an alert on its age must not
    // fire because the process is new.
    if let Some(ms) = ledger.last_committed_ms()? {
        METRICS.last_success_timestamp_seconds.set(ms as f64 / 1000.0);
    }
    let mut settings = args.ingest.settings(layout.clone(), &args.ledger);
    let slots = sources.len() as u32;
    // Sessions open on first use: the read-ahead ones at the first file.
    let ahead = build_sources(&args.source, if settings.read_ahead { slots } else { 0 })?;
    tracing::info!(source = %sources[0].describe(), slots, read_ahead = settings.read_ahead, "source configured");
    settings.shutdown = shutdown.clone();
    settings.limits = limits.clone();
    settings.values = values;
    settings.partition_counts = partition_counts(&args.kafka.kafka_config(), layout).map_err(on_brokers(args))?;
    Ok(Workers::start(
        &producer_kafka(args, limits, slots),
        ledger,
        sources,
        ahead,
        settings,
        group,
    )?)
}

/// The settings of the producers of `slots` files in flight, a group's
/// shard producers included: batches the topics accept, one queue bound
/// shared among them.
fn producer_kafka(args: &IngestCommand, limits: &RecordLimits, slots: u32) -> KafkaConfig {
    let mut kafka = args.kafka.kafka_config();
    kafka.batch_bytes = limits.batch_bytes(kafka.batch_bytes);
    kafka.shared_queue(slots);
    kafka
}

/// The admin client is async; its requests are driven on a small runtime.
fn admin_runtime() -> Result<tokio::runtime::Runtime, ServiceError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServiceError::Thread)
}

/// Creates missing topics, then learns how large a record each accepts.
fn prepare_topics(
    rt: &tokio::runtime::Runtime,
    args: &IngestCommand,
    layout: &TopicLayout,
) -> Result<RecordLimits, TopicError> {
    let created = rt.block_on(ensure_topics(&args.kafka.kafka_config(), layout))?;
    if !created.is_empty() {
        tracing::info!(topics = ?created, "topics created");
    }
    learn_limits(rt, args, layout)
}

fn learn_limits(
    rt: &tokio::runtime::Runtime,
    args: &IngestCommand,
    layout: &TopicLayout,
) -> Result<RecordLimits, TopicError> {
    let limits = rt.block_on(limits::learn(&args.kafka.kafka_config(), &layout.record_topics()))?;
    tracing::debug!(?limits, "record size limits");
    Ok(limits)
}

/// A topic failure as the service reports it: naming the brokers asked.
fn on_brokers(args: &IngestCommand) -> impl Fn(TopicError) -> ServiceError + '_ {
    |source| ServiceError::Topics {
        brokers: args.kafka.brokers_shown(),
        source,
    }
}

/// Lists the source, retrying transient failures a few times, without the
/// files done for good (`Workers::drop_settled`): nothing after this looks
/// at a file the ledger already settled.
fn list(workers: &mut Workers) -> Result<Listing, SourceError> {
    let mut listing = list_source(workers.source_mut())?;
    workers.drop_settled(&mut listing.files);
    Ok(listing)
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

/// What one pass did, and what the ledger says is stuck after it.
#[derive(Debug, Clone)]
pub struct OnceOutcome {
    /// The pass's own counts.
    pub summary: PassSummary,
    /// The files it took that this pass or an earlier one left failed,
    /// parked, backing off or in conflict.
    pub stuck: Stuck,
}

impl OnceOutcome {
    /// Whether anything needs an operator or another pass.
    pub fn needs_attention(&self) -> bool {
        self.stuck.total() + self.summary.deferred > 0
    }
}

/// One pass. Files whose mtime is older than settle + min-age are taken at
/// once; when the listing holds younger ones, a second listing a settle
/// interval later takes those that stood still in between.
pub fn once(args: &IngestCommand) -> Result<OnceOutcome, ServiceError> {
    let layout = args.kafka.topics()?;
    let opening = open_sources(&args.source, args.workers)?;
    let limits = prepare_topics(&admin_runtime()?, args, &layout).map_err(on_brokers(args))?;
    let values = registry::prepare(&layout, &args.kafka.registry, zone_of(args))?;
    let (sources, listing) = opening.join();
    let mut listing = listing.map_err(ServiceError::Listing)?;
    let mut workers = start_workers(args, &layout, sources, &Shutdown::default(), &limits, values, None)?;
    // Listed before the ledger settled what was in doubt: filtered now.
    workers.drop_settled(&mut listing.files);
    let mut selector = Selector::new(args.source.select_config(&layout.kinds));
    let mut ready = selector.ready(&listing.files, now_ms());
    if selector.pending() {
        let settle = selector.config().settle;
        tracing::info!(
            seconds = settle.as_secs(),
            "files younger than settle + min-age are listed: listing again after the settle interval"
        );
        std::thread::sleep(settle);
        // Files too young or still changing are left for the next run.
        listing = list(&mut workers).map_err(ServiceError::Listing)?;
        ready = selector.ready(&listing.files, now_ms());
    }
    update_ignored(&mut IgnoredFiles::default(), &listing, &selector, workers.ledger());
    let started = Instant::now();
    let names: Vec<String> = ready.iter().map(|f| f.name.clone()).collect();
    let summary = workers.pass(ready)?;
    log_summary(&summary, started.elapsed());
    // What this pass or an earlier one left stuck, as the ledger has it now.
    let stuck = Stuck::of(workers.ledger(), names.iter().map(String::as_str), now_ms())?;
    Ok(OnceOutcome { summary, stuck })
}

/// How often the daemon asks the cluster again for the topics' record limits.
const LIMITS_REFRESH: Duration = Duration::from_secs(60);

/// The daemon. The first SIGTERM/SIGINT stops taking new files and ends
/// the current chunk early; it commits, the file stays in progress, and the
/// process exits 0 (or 1 if that takes longer than the shutdown deadline). A
/// second signal exits at once (still safe: the ledger and the broker
/// recover on the next start).
pub fn run(args: &RunCommand) -> Result<(), ServiceError> {
    let shutdown = Shutdown::default();
    watch_signals(shutdown.clone(), Duration::from_secs(args.shutdown_timeout_seconds))?;
    if let Some(addr) = &args.metrics_addr {
        server::serve(addr)?;
    }
    let common = &args.common;
    let layout = common.kafka.topics()?;
    let kinds = layout.kinds.iter().len();
    if common.workers as usize > kinds * FILES_PER_KIND && args.group.group.is_none() {
        tracing::warn!(
            workers = common.workers,
            kinds,
            "at most {FILES_PER_KIND} files of one kind are in flight at once: the slots beyond that stay idle"
        );
    }
    let kafka = common.kafka.kafka_config();
    // Brokers first (the topics must exist before anything is produced),
    // then the source; both waited for, so the order of container starts
    // does not matter. Permanent errors (too few brokers, refused login)
    // stop here with their reason.
    let rt = admin_runtime()?;
    let mut limits = RecordLimits::default();
    let reached = wait_for(
        &format!("the brokers {}", common.kafka.brokers_shown()),
        &shutdown,
        || prepare_topics(&rt, common, &layout).map(|l| limits = l),
        // An outage is waited out; a refused login or certificate is not.
        |e| matches!(e, TopicError::Kafka(_)) && !client_log::refused(),
    )
    .map_err(on_brokers(common))?;
    if !reached {
        stopped();
        return Ok(());
    }
    HEALTH.set_brokers_ok(true);
    // The first slot's source, its session kept for the slot.
    let mut probe_source = common.source.build().map_err(ServiceError::SourceConfig)?;
    let reached = wait_for(
        "the source",
        &shutdown,
        || probe_source.list().map(|_| ()),
        SourceError::is_transient,
    )
    .map_err(ServiceError::Listing)?;
    if !reached {
        stopped();
        return Ok(());
    }
    HEALTH.set_source_ok(true);
    // Schema ids are learned once; ingestion never waits on the registry after this.
    let mut values = BTreeMap::new();
    let reached = wait_for(
        "the schema registry",
        &shutdown,
        || registry::prepare(&layout, &common.kafka.registry, zone_of(common)).map(|v| values = v),
        RegistryError::is_transient,
    )?;
    if !reached {
        stopped();
        return Ok(());
    }
    let group = match &args.group.group {
        Some(name) => Some(join_group(
            &rt,
            args,
            name,
            &producer_kafka(common, &limits, common.workers),
        )?),
        None => None,
    };
    let mut sources = vec![probe_source];
    sources.append(&mut build_sources(&common.source, common.workers - 1)?);
    let mut workers = start_workers(common, &layout, sources, &shutdown, &limits, values, group)?;
    if let Some(g) = workers.group() {
        // So that `status --group` on this ledger knows which member it is.
        workers.ledger().set_group_member(g.name(), g.member_name())?;
    }
    spawn_broker_probe(&kafka, &common.kafka.checkpoint_topic)?;
    HEALTH.set_started();
    tracing::info!("running");
    let mut selector = Selector::new(common.source.select_config(&layout.kinds));
    let mut ignored = IgnoredFiles::default();
    let interval = Duration::from_secs(args.poll_interval_seconds.max(1));
    let mut limits_learned = Instant::now();
    while !shutdown.requested() {
        park::apply_pending(&common.ledger.ledger_dir, workers.ledger())?;
        match list(&mut workers) {
            Ok(listing) => {
                HEALTH.set_source_ok(true);
                update_waiting(
                    &listing.files,
                    workers.ledger(),
                    &layout.kinds,
                    common.ingest.on_changed,
                    workers.group(),
                );
                let ready = selector.ready(&listing.files, now_ms());
                update_ignored(&mut ignored, &listing, &selector, workers.ledger());
                match workers.take_over_shards(&ready) {
                    Err(e) if e.is_transient() => {
                        tracing::warn!(error = %e, "taking shards over failed; tried again at the next poll");
                    }
                    other => other?,
                }
                if !ready.is_empty() {
                    // A topic's limit may have changed since it was learned.
                    // Asked only while the brokers answer the probe, so an
                    // outage does not stall the loop; failing, the last
                    // answer stands.
                    if HEALTH.brokers_ok() && limits_learned.elapsed() >= LIMITS_REFRESH {
                        match learn_limits(&rt, common, &layout) {
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
        sleep_unless_stopped(selector.next_listing(interval), &shutdown);
    }
    stopped();
    Ok(())
}

/// Creates the assignment topic if needed and joins the group, whose shard
/// producers are made with `kafka`.
fn join_group(
    rt: &tokio::runtime::Runtime,
    args: &RunCommand,
    name: &str,
    kafka: &KafkaConfig,
) -> Result<Group, ServiceError> {
    let common = &args.common;
    let shards = rt.block_on(ensure_assignment_topic(
        kafka,
        &args.group.group_topic,
        args.group.group_shards,
        common.kafka.replication_factor,
    ))?;
    Ok(Group::join(
        kafka,
        &args.group,
        name,
        shards,
        &common.kafka.checkpoint_topic,
    )?)
}

/// Seconds east of UTC of the files' timestamps (`--time-offset`).
fn zone_of(args: &IngestCommand) -> i32 {
    args.ingest.time_offset.local_minus_utc()
}

fn stopped() {
    tracing::info!("stopped on signal");
}
