//! Horizontal scale: instances started with the same `--group` name share
//! one source directory, with the Kafka cluster as their only coordinator.
//!
//! - `shard`: a file's shard, a pure function of its name.
//! - `topic`: the assignment topic, whose partitions are the shards.
//! - `membership`: the consumer-group member that owns shards, rebalanced by
//!   the group coordinator (cooperative-sticky).
//! - `owner` (this file): what working on a shard takes: its own
//!   transactional producer (`<prefix>-<group>-shard-<n>`, so a new owner
//!   fences the old), and the checkpoint topic re-read after that fencing.
//!   Both happen when an owned shard has files to ingest, not when it is
//!   assigned, and the producer is closed once the shard has had no file for
//!   `--group-idle-seconds`, which makes its next file take it over again:
//!   an instance's producers, threads and connections follow its recent
//!   files, not the shards it owns, and no producer is ever opened without
//!   the checkpoint read that makes its fencing safe.
//! - `view`: the group as `status --group` shows it.

pub(crate) mod membership;
pub mod shard;
pub(crate) mod topic;
pub(crate) mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cdr_state::LedgerError;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::metrics::METRICS;
use crate::sink::checkpoint::CheckpointError;
use crate::sink::{CheckpointStore, KafkaConfig, SinkError, TxnProducer};
use membership::{JoinSettings, Membership, Shards};

/// Default assignment topic of a group.
pub const DEFAULT_GROUP_TOPIC: &str = "cdr-ingest-shards";

/// Settings of group mode (`run` only).
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Group")]
pub struct GroupArgs {
    /// Share the source directory with every instance of this group name:
    /// each file is ingested by the one instance owning its shard. Off: this
    /// instance takes every file (the single-instance layout)
    #[arg(long, env = "CDR_GROUP")]
    pub group: Option<String>,
    /// Topic whose partitions are the group's shards (created if missing;
    /// holds no records)
    #[arg(long, env = "CDR_GROUP_TOPIC", default_value = DEFAULT_GROUP_TOPIC)]
    pub group_topic: String,
    /// Shards when the assignment topic is created; an existing topic's
    /// partition count wins. Keep it well above the most instances you will run
    #[arg(long, env = "CDR_GROUP_SHARDS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub group_shards: u32,
    /// A member silent this long loses its shards to the others, seconds
    /// (the broker's group.min.session.timeout.ms, 6 by default, is the floor)
    #[arg(long, env = "CDR_GROUP_SESSION_TIMEOUT_SECONDS", default_value_t = 10)]
    pub group_session_timeout_seconds: u64,
    /// A shard with no file this long closes its producer, seconds; its next
    /// file takes it over again (fencing, and a read of the checkpoint topic
    /// that waits for other instances' open transactions to end)
    #[arg(long, env = "CDR_GROUP_IDLE_SECONDS", default_value_t = 30)]
    pub group_idle_seconds: u64,
}

impl GroupError {
    /// A takeover that failed on the cluster (a broker down, a coordinator
    /// moving) is tried again at the next poll; its shards stay unworked
    /// meanwhile. Only a ledger failure stops the service.
    pub fn is_transient(&self) -> bool {
        // A missing ACL is service-wide: no retry grants it.
        !matches!(
            self,
            GroupError::Ledger(_) | GroupError::Producer(SinkError::Fenced { .. }) | GroupError::Denied(_)
        ) && !self.to_string().contains("AuthorizationFailed")
    }
}

/// Why joining, or working in, a group failed.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// The group consumer failed.
    #[error("group membership: {0}")]
    Kafka(KafkaError),
    /// The coordinator refused this member (a missing ACL on the group or
    /// the assignment topic).
    #[error("group membership refused: {0}")]
    Denied(String),
    /// The broker refused to create the assignment topic.
    #[error("creating the assignment topic {topic}: {code}")]
    CreateTopic {
        /// The assignment topic.
        topic: String,
        /// The broker's error.
        code: RDKafkaErrorCode,
    },
    /// Created, but the metadata never showed it.
    #[error("the assignment topic {0} does not show up in the metadata after its creation")]
    TopicMissing(String),
    /// More shards than an assignment can describe.
    #[error("{0} shards: too many")]
    Shards(u32),
    /// The OS refused a thread.
    #[error("starting the group membership thread: {0}")]
    Thread(std::io::Error),
    /// A shard's producer could not fence the previous owner.
    #[error("taking over a shard: {0}")]
    Producer(#[from] SinkError),
    /// The checkpoint topic could not be read to its end.
    #[error("reading checkpoints after a takeover: {0}")]
    Checkpoints(#[from] CheckpointError),
    /// The ledger could not record what the takeover settled.
    #[error("settling in-doubt transactions after a takeover: {0}")]
    Ledger(#[from] LedgerError),
    /// `status --group` named a group the coordinator does not know.
    #[error("the group coordinator knows no group {0}")]
    Unknown(String),
    /// A member's assignment bytes could not be decoded.
    #[error("the assignment of member {member} is malformed at byte {at}")]
    Assignment {
        /// The member whose assignment it is.
        member: String,
        /// Where decoding stopped.
        at: usize,
    },
}

/// How long reading the checkpoint topic may take at a takeover.
const CHECKPOINT_LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// A revoke waits this long for a slot to stop its file at a chunk boundary:
/// longer than any chunk (`--chunk-seconds` plus a commit), well under the
/// group's rebalance timeout (librdkafka's max.poll.interval.ms, 300 s).
const REVOKE_LIMIT: Duration = Duration::from_secs(120);

/// Shards whose producers a takeover initialises at once.
const INIT_BATCH: usize = 16;

/// This instance's part of the group.
pub struct Group {
    name: String,
    /// This instance's client id in the group (`<host name>-<pid>`).
    member_name: String,
    shard_count: u32,
    kafka: KafkaConfig,
    checkpoint_topic: String,
    shards: Arc<Shards>,
    /// The producer of every shard taken over (and not released since),
    /// lent to one slot at a time.
    producers: Mutex<BTreeMap<u32, ShardProducer>>,
    /// How long a shard's producer stays open without a file.
    idle_limit: Duration,
    /// Declared last: dropped last, after the producers, so the group is left
    /// only once nothing of this instance can produce any more.
    _membership: Membership,
}

impl Group {
    /// Joins the group `args.group` (Some) over an assignment topic of
    /// `shard_count` partitions. No shard is worked on before `take_over`.
    pub fn join(
        kafka: &KafkaConfig,
        args: &GroupArgs,
        name: &str,
        shard_count: u32,
        checkpoint_topic: &str,
    ) -> Result<Self, GroupError> {
        let shards = Arc::new(Shards::default());
        let member_name = format!(
            "{}-{}",
            hostname().unwrap_or_else(|| "cdr-to-redpanda".into()),
            std::process::id()
        );
        let membership = Membership::join(
            kafka,
            &JoinSettings {
                group: name,
                topic: &args.group_topic,
                member_name: &member_name,
                session_timeout: Duration::from_secs(args.group_session_timeout_seconds),
                revoke_limit: REVOKE_LIMIT,
            },
            shards.clone(),
        )?;
        // So that the first poll finds its shards owned. A lone instance has
        // them within a heartbeat or two; a member joining others may get
        // none in the first round, or none at all (more members than
        // shards): it goes on after the session timeout.
        let assigned = shards.wait_assigned(Duration::from_secs(args.group_session_timeout_seconds));
        tracing::info!(group = name, member = %member_name, shards = shard_count, topic = %args.group_topic, assigned, "joined the group");
        Ok(Group {
            name: name.to_string(),
            member_name,
            shard_count,
            kafka: kafka.clone(),
            checkpoint_topic: checkpoint_topic.to_string(),
            shards,
            producers: Mutex::new(BTreeMap::new()),
            idle_limit: Duration::from_secs(args.group_idle_seconds),
            _membership: membership,
        })
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This instance's name among the members.
    pub fn member_name(&self) -> &str {
        &self.member_name
    }

    /// The shard a file belongs to.
    pub fn shard_of(&self, file_name: &str) -> u32 {
        shard::shard_of(file_name, self.shard_count)
    }

    /// Depends on the group and the shard only, never on the instance: the
    /// instance that takes a shard over fences whoever had it.
    pub fn transactional_id(&self, shard: u32) -> String {
        format!("{}-{}-shard-{shard}", self.kafka.transactional_id_prefix, self.name)
    }

    /// Whether this instance owns `shard` and has finished taking it over.
    pub fn is_ready(&self, shard: u32) -> bool {
        self.shards.is_ready(shard)
    }

    /// The shards assigned to this instance.
    pub fn owned(&self) -> BTreeSet<u32> {
        self.shards.assigned()
    }

    fn producers(&self) -> MutexGuard<'_, BTreeMap<u32, ShardProducer>> {
        self.producers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` with the producer of `shard` if this instance has taken the
    /// shard over and no other slot works on it; None otherwise (the file
    /// waits for its owner, or for the next pass).
    ///
    /// A producer is never opened again without a takeover: opening one
    /// fences whoever holds the id, and an instance that was paused past its
    /// session timeout (a zombie that has not yet heard of the revoke) would
    /// fence the shard's new owner and write from checkpoints read before
    /// that owner's commits. Only a checkpoint read after the fencing makes
    /// it safe, and a takeover does that read.
    pub fn with_producer<R>(&self, shard: u32, f: impl FnOnce(&mut TxnProducer) -> R) -> Option<R> {
        let _busy = self.shards.begin(shard)?;
        let mut producer = self.producers().remove(&shard)?;
        let result = f(&mut producer.producer);
        producer.used = Instant::now();
        self.producers().insert(shard, producer);
        Some(result)
    }

    /// Closes the producers of shards without a file for `idle_limit`, and
    /// releases those shards: their next file takes them over again.
    fn close_idle(&self) {
        let idle: Vec<u32> = self
            .producers()
            .iter()
            .filter(|(_, p)| p.used.elapsed() >= self.idle_limit)
            .map(|(&s, _)| s)
            .collect();
        // Between passes no slot holds a shard; `begin` makes sure of it.
        let closed: Vec<u32> = idle
            .into_iter()
            .filter(|&shard| {
                let Some(_busy) = self.shards.begin(shard) else {
                    return false;
                };
                self.producers().remove(&shard);
                self.shards.release(shard);
                true
            })
            .collect();
        if !closed.is_empty() {
            tracing::info!(shards = ?closed, "closed the producers of idle shards; their next file takes them over again");
        }
    }

    fn open_producer(&self, shard: u32) -> Result<ShardProducer, SinkError> {
        let started = Instant::now();
        let producer = TxnProducer::with_id(&self.kafka, self.transactional_id(shard))?;
        tracing::debug!(
            shard,
            ms = started.elapsed().as_millis() as u64,
            "shard producer opened"
        );
        Ok(ShardProducer::new(producer))
    }

    /// Follows the assignment: drops the producers of shards given up and of
    /// idle ones, and takes over the assigned shards of `wanted` (the shards
    /// of the files the next pass takes) not taken over yet. Called between
    /// passes. A shard with no file is not taken over: nothing of it
    /// is ingested until it is, and a file a fenced-too-late owner left open
    /// is a file in the listing, which makes its shard wanted.
    ///
    /// Takeover, in this order: (1) `init_transactions` on each shard's id,
    /// which fences the previous owner (alive or not) and has the broker
    /// abort what it left open; (2) the checkpoint topic read again with
    /// read_committed, now final for these shards' files, and merged into
    /// `checkpoints`; (3) `settle` called with the merged checkpoints and
    /// which files belong to the shards taken over, for the caller to settle
    /// its in-doubt transactions of those files (the ingest's recovery: the
    /// group does not know it); (4) the shards marked ready. Reading before fencing
    /// could miss a commit of the old owner still on its way. A revoke of
    /// one of them meanwhile waits for the takeover to end, so the shard's
    /// next owner initialises after this instance and fences it, never the
    /// other way round.
    pub fn take_over(
        &self,
        checkpoints: &Mutex<CheckpointStore>,
        wanted: &BTreeSet<u32>,
        settle: impl FnOnce(&CheckpointStore, &dyn Fn(&str) -> bool) -> Result<usize, LedgerError>,
    ) -> Result<(), GroupError> {
        if let Some(why) = self.shards.denied() {
            return Err(GroupError::Denied(why));
        }
        let assigned = self.shards.assigned();
        let released: Vec<u32> = {
            let mut producers = self.producers();
            let gone: Vec<u32> = producers.keys().filter(|s| !assigned.contains(s)).copied().collect();
            for s in &gone {
                producers.remove(s);
            }
            gone
        };
        if !released.is_empty() {
            tracing::info!(shards = ?released, "released the producers of shards given up");
        }
        METRICS.group_shards_owned.set(assigned.len() as f64);
        self.close_idle();
        let pending: BTreeSet<u32> = self.shards.pending().intersection(wanted).copied().collect();
        if pending.is_empty() {
            return Ok(());
        }
        let _held = self.shards.hold_for_takeover(&pending);
        let started = Instant::now();
        let (fenced, settled) = match self.fence_and_read(&pending, checkpoints, settle) {
            Ok(done) => done,
            Err(e) => {
                // Not ready, so no slot would use them and no idle check
                // would close them: the next attempt fences again.
                let mut producers = self.producers();
                for s in &pending {
                    producers.remove(s);
                }
                return Err(e);
            }
        };
        let ready = self.shards.mark_ready(&pending);
        tracing::info!(
            group = %self.name, shards = ?ready, settled, taken_over = self.shards.ready().len(), owned = assigned.len(),
            fence_ms = fenced.as_millis() as u64, total_ms = started.elapsed().as_millis() as u64,
            "shards taken over: previous owners fenced, checkpoints read"
        );
        Ok(())
    }

    /// Steps (1) to (3) of a takeover of `pending`; how long the fencing
    /// took and how many in-doubt transactions were settled.
    fn fence_and_read(
        &self,
        pending: &BTreeSet<u32>,
        checkpoints: &Mutex<CheckpointStore>,
        settle: impl FnOnce(&CheckpointStore, &dyn Fn(&str) -> bool) -> Result<usize, LedgerError>,
    ) -> Result<(Duration, usize), GroupError> {
        let started = Instant::now();
        self.init_producers(pending)?;
        let fenced = started.elapsed();
        let fresh = CheckpointStore::load(&self.kafka, &self.checkpoint_topic, CHECKPOINT_LOAD_TIMEOUT)?;
        let store = {
            let mut store = checkpoints.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for cp in fresh.iter() {
                // Taken-over shards: the topic is the truth. Others: what this
                // instance does not know yet (other owners' work, for
                // duplicate detection); its own shards' entries are current.
                if pending.contains(&self.shard_of(&cp.file)) || store.get(&cp.file).is_none() {
                    store.record(cp.clone());
                }
            }
            store.clone()
        };
        let settled = settle(&store, &|name| pending.contains(&self.shard_of(name)))?;
        Ok((fenced, settled))
    }

    /// A transactional producer per shard of `shards`, initialised (and so
    /// fencing the shard's previous owner) a batch at a time in parallel:
    /// each `init_transactions` is a few round trips to the transaction
    /// coordinator, and taking over many shards one by one would leave them
    /// unworked for seconds. On an error, the producers made so far stay
    /// in the map for the caller to drop.
    fn init_producers(&self, shards: &BTreeSet<u32>) -> Result<(), GroupError> {
        let shards: Vec<u32> = shards.iter().copied().collect();
        for batch in shards.chunks(INIT_BATCH) {
            let made: Vec<(u32, Result<ShardProducer, SinkError>)> = std::thread::scope(|scope| {
                let spawned: Vec<_> = batch
                    .iter()
                    .map(|&s| (s, scope.spawn(move || self.open_producer(s))))
                    .collect();
                spawned
                    .into_iter()
                    .map(|(s, h)| (s, h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))))
                    .collect()
            });
            let mut failed = None;
            for (s, made) in made {
                match made {
                    // A slot cannot hold this shard's producer: the shard is not ready.
                    Ok(p) => {
                        self.producers().insert(s, p);
                    }
                    Err(e) => failed = failed.or(Some(e)),
                }
            }
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        Ok(())
    }
}

/// Producers of shards open in this process, for `cdr_group_producers_open`.
static PRODUCERS_OPEN: AtomicUsize = AtomicUsize::new(0);

/// A shard's producer, counted while it is open.
struct ShardProducer {
    producer: TxnProducer,
    /// When its last file ended (or it was opened).
    used: Instant,
}

impl ShardProducer {
    fn new(producer: TxnProducer) -> Self {
        let open = PRODUCERS_OPEN.fetch_add(1, Ordering::Relaxed) + 1;
        METRICS.group_producers_open.set(open as f64);
        ShardProducer {
            producer,
            used: Instant::now(),
        }
    }
}

impl Drop for ShardProducer {
    fn drop(&mut self) {
        let open = PRODUCERS_OPEN.fetch_sub(1, Ordering::Relaxed) - 1;
        METRICS.group_producers_open.set(open as f64);
    }
}

/// The host name, for the member's client.id (what a group view shows).
pub(crate) fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}
