//! One transactional producer per worker slot.
//!
//! `BaseProducer` with a delivery callback that only counts: a future per
//! message (FutureProducer) costs more than the whole encode stage. Delivery
//! failures are checked once per transaction, before commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::classify::{classify, classify_code, Action};
use super::client_log::Logged;
use super::detached::Detached;
use super::{certificate, client_log};
use crate::backoff::Backoff;
use crate::secret::Property;

/// `batch.size` unless a topic accepts less: a chunk spreads over 12+
/// partitions, and a batch that cannot fill waits out `linger.ms` while the
/// full queue stops the producer.
pub const DEFAULT_BATCH_BYTES: usize = 262_144;

/// Undelivered records all producers of an instance hold at once, KiB.
pub const DEFAULT_QUEUE_KBYTES: usize = 8192;

/// A producer's queue must hold a full batch for each of a chunk's
/// partitions, or batches leave half empty: 12+ partitions of 256 KiB.
const MIN_QUEUE_KBYTES: usize = 4096;

/// Default prefix of the transactional ids (`<prefix>-<slot>`).
pub const DEFAULT_TRANSACTIONAL_ID_PREFIX: &str = "cdr-to-redpanda";
/// Default producer transaction timeout, seconds: under the brokers'
/// `transaction.max.timeout.ms` (15 minutes by default).
pub const DEFAULT_TRANSACTION_TIMEOUT_SECONDS: u64 = 60;

/// How to reach the brokers and how to produce.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// `transactional.id` is `<prefix>-<slot>`: stable across restarts, so a
    /// restarted instance fences its zombie and the broker aborts what the
    /// zombie left open.
    pub transactional_id_prefix: String,
    /// Exactly-once (default). Off only to measure what transactions cost:
    /// then the producer is idempotent and a crash can duplicate a chunk.
    pub transactions: bool,
    /// Must stay under the broker's `transaction.max.timeout.ms` (15 min on
    /// Kafka, Redpanda's default is similar); chunks commit well inside it.
    pub transaction_timeout: Duration,
    /// Bound on one commit/abort/init call; a retriable timeout is retried.
    pub operation_timeout: Duration,
    /// `batch.size`: lowered to the smallest topic's record limit once that is
    /// learned (`sink::limits`), so no batch is larger than a topic accepts.
    pub batch_bytes: usize,
    /// `queue.buffering.max.kbytes`: the records a producer holds
    /// undelivered. The files in flight share `DEFAULT_QUEUE_KBYTES`
    /// (`shared_queue`), down to `MIN_QUEUE_KBYTES` each.
    pub queue_kbytes: usize,
    /// librdkafka properties passed through verbatim (SASL, TLS, tuning).
    /// Applied last, so they win over the defaults above.
    pub overrides: Vec<Property>,
}

impl KafkaConfig {
    /// Defaults for everything but the brokers.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            transactional_id_prefix: DEFAULT_TRANSACTIONAL_ID_PREFIX.into(),
            transactions: true,
            transaction_timeout: Duration::from_secs(DEFAULT_TRANSACTION_TIMEOUT_SECONDS),
            operation_timeout: Duration::from_secs(60),
            batch_bytes: DEFAULT_BATCH_BYTES,
            queue_kbytes: DEFAULT_QUEUE_KBYTES,
            overrides: Vec::new(),
        }
    }

    /// Client settings shared by producers, consumers and the admin client.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", "cdr-to-redpanda")
            .set_log_level(RDKafkaLogLevel::Warning);
        self.apply_overrides(&mut c);
        c
    }

    /// An admin client with these settings, closed off its owner's thread
    /// (`Detached`): every admin request the service makes goes through one.
    pub fn admin(&self) -> KafkaResult<Detached<AdminClient<Logged>>> {
        Ok(Detached::new(self.client_config().create_with_context(Logged)?))
    }

    /// The pass-through properties, last so they win; a certificate failure
    /// is later explained with the same trust anchors.
    fn apply_overrides(&self, c: &mut ClientConfig) {
        for p in &self.overrides {
            c.set(&p.key, &p.value);
        }
        certificate::remember(c);
    }

    /// Each of `in_flight` producers' share of the instance's queue bound.
    pub fn shared_queue(&mut self, in_flight: u32) {
        self.queue_kbytes = (DEFAULT_QUEUE_KBYTES / in_flight.max(1) as usize).max(MIN_QUEUE_KBYTES);
    }

    /// The transactional id of worker slot `slot` (the single-instance layout).
    pub fn slot_transactional_id(&self, slot: u32) -> String {
        format!("{}-{slot}", self.transactional_id_prefix)
    }

    fn producer_config(&self, transactional_id: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", transactional_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Java-compatible placement: every client agrees where a key lives.
            .set("partitioner", "murmur2_random")
            .set("compression.type", "lz4")
            .set("linger.ms", "20")
            // Bounded queue: memory stays flat whatever the file size. Each
            // queued record costs about twice its counted bytes (the message
            // and its four headers are separate allocations), so 8 MiB of
            // records (`DEFAULT_QUEUE_KBYTES`, shared by the files in
            // flight) is ~20 MiB of memory and peak RSS stays under 64 MiB;
            // at 32 MiB it was ~100 MiB. The bytes bound is the one that
            // binds; the message bound only caps tiny records.
            .set("queue.buffering.max.messages", "100000")
            .set("queue.buffering.max.kbytes", self.queue_kbytes.to_string())
            // A batch must fill well before the queue does (DEFAULT_BATCH_BYTES).
            .set("batch.size", self.batch_bytes.to_string())
            .set("message.timeout.ms", self.transaction_timeout.as_millis().to_string())
            .set_log_level(RDKafkaLogLevel::Warning);
        if self.transactions {
            c.set("transactional.id", transactional_id).set(
                "transaction.timeout.ms",
                self.transaction_timeout.as_millis().to_string(),
            );
        }
        self.apply_overrides(&mut c);
        c
    }
}

/// A sink failure with the action `classify` chose for it.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A call to the broker failed.
    #[error("kafka {op} failed: {source}")]
    Kafka {
        /// The producer call.
        op: &'static str,
        /// What the engine does about it.
        action: Action,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    #[error("{failed} record(s) of the transaction were not delivered; first error: {first}")]
    /// Records of the transaction were refused or timed out.
    Delivery {
        /// How many.
        failed: u64,
        /// The first one's error.
        first: String,
        /// What the engine does about it.
        action: Action,
    },
    /// Another producer called `init_transactions` with our transactional
    /// id: another instance (or a restart of this one) owns it now. Always
    /// fatal; the message says so, so that two replicas fighting over one id
    /// show in the first log line.
    #[error("fenced: another instance took over transactional id {transactional_id} ({op}: {reason})")]
    Fenced {
        /// Our transactional id.
        transactional_id: String,
        /// The producer call that found out.
        op: &'static str,
        /// The broker's words.
        reason: String,
    },
}

impl SinkError {
    /// What the engine does about this failure.
    pub fn action(&self) -> Action {
        match self {
            SinkError::Kafka { action, .. } | SinkError::Delivery { action, .. } => *action,
            SinkError::Fenced { .. } => Action::Fatal,
        }
    }

    fn kafka(op: &'static str, source: KafkaError) -> Self {
        SinkError::Kafka {
            op,
            action: classify(&source),
            source,
        }
    }
}

/// Counts delivery failures of the current transaction. Every record carries
/// the generation (transaction number) it was sent in, so a late report of a
/// record purged by an earlier abort never counts against a later transaction.
#[derive(Default)]
pub struct DeliveryTracker {
    generation: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<(RDKafkaErrorCode, String)>>,
}

impl ClientContext for DeliveryTracker {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        client_log::forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_log::client_error("producer", &error, reason);
    }
}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, generation: usize) {
        if generation as u64 != self.generation.load(Ordering::Relaxed) {
            return;
        }
        if let Err((err, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = self.first_error.lock() {
                if first.is_none() {
                    let code = err.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                    *first = Some((code, err.to_string()));
                }
            }
        }
    }
}

impl DeliveryTracker {
    /// Starts a new generation with no failures; returns its number.
    fn next_generation(&self) -> usize {
        self.failed.store(0, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            *first = None;
        }
        (self.generation.fetch_add(1, Ordering::Relaxed) + 1) as usize
    }

    fn take(&self) -> Option<(u64, RDKafkaErrorCode, String)> {
        let failed = self.failed.swap(0, Ordering::Relaxed);
        let first = self.first_error.lock().ok().and_then(|mut f| f.take());
        match (failed, first) {
            (0, _) => None,
            (n, Some((code, msg))) => Some((n, code, msg)),
            (n, None) => Some((n, RDKafkaErrorCode::Fail, "unknown".into())),
        }
    }
}

/// A record to produce; every borrowed buffer may be reused after `send`
/// returns (librdkafka copies key and value).
pub struct OutRecord<'a> {
    /// Where it goes.
    pub topic: &'a str,
    /// The record id.
    pub key: &'a [u8],
    /// The encoded value.
    pub value: &'a [u8],
    /// The row's event time, Unix millis; `None` lets the broker stamp it.
    pub timestamp_ms: Option<i64>,
    /// The partition; `None`: the producer's partitioner, by key.
    pub partition: Option<i32>,
    /// The contract's headers.
    pub headers: Option<OwnedHeaders>,
}

/// The transactional producer of one worker slot.
pub struct TxnProducer {
    producer: BaseProducer<DeliveryTracker>,
    transactions: bool,
    operation_timeout: Duration,
    /// The delivery generation records are sent in (see `DeliveryTracker`).
    generation: usize,
    /// Transactional id, for log lines.
    id: String,
}

/// Retriable operations are tried this many times before giving up as
/// abort-and-replay (commit) or fatal (init).
const RETRIES: u32 = 5;

impl TxnProducer {
    /// Creates the producer and, with transactions on, calls
    /// `init_transactions`: this fences any earlier instance with the same
    /// transactional id and makes the broker abort what it left open.
    pub fn new(cfg: &KafkaConfig, slot: u32) -> Result<Self, SinkError> {
        Self::with_id(cfg, cfg.slot_transactional_id(slot))
    }

    /// As `new`, with the transactional id given whole (a group's shard).
    pub fn with_id(cfg: &KafkaConfig, id: String) -> Result<Self, SinkError> {
        let producer: BaseProducer<DeliveryTracker> = cfg
            .producer_config(&id)
            .create_with_context(DeliveryTracker::default())
            .map_err(|e| SinkError::kafka("create producer", e))?;
        let p = TxnProducer {
            producer,
            transactions: cfg.transactions,
            operation_timeout: cfg.operation_timeout,
            generation: 0,
            id,
        };
        if p.transactions {
            // librdkafka looks the transaction coordinator up only through a
            // broker connection already up, and otherwise tries again after a
            // fixed 500 ms: one metadata round trip first makes a connection
            // up, and `init_transactions` takes milliseconds instead. Its
            // failure is left to `init_transactions` to report.
            let _ = p.producer.client().fetch_metadata(None, p.operation_timeout);
            p.retrying("init_transactions", |p| {
                p.producer.init_transactions(p.operation_timeout)
            })?;
        }
        Ok(p)
    }

    /// The id this producer fences with.
    pub fn transactional_id(&self) -> &str {
        &self.id
    }

    /// Sorts an error of this producer; fencing is named as such.
    fn fail(&self, op: &'static str, e: KafkaError) -> SinkError {
        let code = e.rdkafka_error_code();
        let err = SinkError::kafka(op, e);
        if err.action() != Action::Fatal {
            return err;
        }
        self.fenced(op, code).unwrap_or(err)
    }

    /// `Fenced` if the error (`code`) or the producer's fatal error is a
    /// fencing one. librdkafka reports fencing as a fatal error raised on
    /// the producer while the failing call itself only says "Fatal".
    fn fenced(&self, op: &'static str, code: Option<RDKafkaErrorCode>) -> Option<SinkError> {
        let is_fencing = |c: RDKafkaErrorCode| {
            matches!(
                c,
                RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::Fenced | RDKafkaErrorCode::InvalidProducerEpoch
            )
        };
        let reason = match self.producer.client().fatal_error() {
            Some((fatal, reason)) if is_fencing(fatal) => reason,
            _ => match code {
                Some(c) if is_fencing(c) => c.to_string(),
                _ => return None,
            },
        };
        Some(SinkError::Fenced {
            transactional_id: self.id.clone(),
            op,
            reason,
        })
    }

    fn retrying(&self, op: &'static str, f: impl Fn(&Self) -> Result<(), KafkaError>) -> Result<(), SinkError> {
        let mut attempt = 0;
        loop {
            match f(self) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let err = self.fail(op, e);
                    attempt += 1;
                    if err.action() != Action::Retry || attempt >= RETRIES {
                        return Err(err);
                    }
                    tracing::warn!(producer = %self.id, attempt, error = %err, "retrying {op}");
                    std::thread::sleep(Backoff::IN_CALL.delay(attempt - 1));
                }
            }
        }
    }

    /// Opens a transaction (a no-op without transactions).
    pub fn begin(&mut self) -> Result<(), SinkError> {
        self.generation = self.producer.context().next_generation();
        if self.transactions {
            self.producer
                .begin_transaction()
                .map_err(|e| self.fail("begin_transaction", e))?;
        }
        Ok(())
    }

    /// Enqueues one record. A full local queue is drained by polling, which
    /// is the backpressure that keeps memory flat.
    pub fn send(&mut self, rec: OutRecord<'_>) -> Result<(), SinkError> {
        let mut record = BaseRecord::with_opaque_to(rec.topic, self.generation)
            .key(rec.key)
            .payload(rec.value);
        if let Some(ts) = rec.timestamp_ms {
            record = record.timestamp(ts);
        }
        if let Some(p) = rec.partition {
            record = record.partition(p);
        }
        if let Some(h) = rec.headers {
            record = record.headers(h);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(self.fail("produce", e)),
            }
        }
    }

    /// Whether a broker answers a metadata request now: tells an outage from
    /// a failure of one file's records.
    pub fn brokers_reachable(&self) -> bool {
        self.producer
            .client()
            .fetch_metadata(None, Duration::from_secs(5))
            .is_ok_and(|md| !md.brokers().is_empty())
    }

    /// Serves delivery callbacks without blocking; call now and then while producing.
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Flushes, checks that every record was delivered, then commits.
    /// Ok means the chunk is durable and visible to read_committed consumers.
    pub fn commit(&mut self) -> Result<(), SinkError> {
        self.producer
            .flush(self.operation_timeout)
            .map_err(|e| self.fail("flush", e))?;
        if let Some((failed, code, first)) = self.producer.context().take() {
            // After a fatal error (e.g. fenced) librdkafka purges what is
            // queued; those reports say "purged", the fatal error says why.
            if let Some(fenced) = self.fenced("commit_transaction", None) {
                return Err(fenced);
            }
            if let Some((fatal, reason)) = self.producer.client().fatal_error() {
                return Err(SinkError::Delivery {
                    failed,
                    first: format!("{reason} ({fatal})"),
                    action: Action::Fatal,
                });
            }
            // Records purged because the broker refused the transaction
            // itself (a topic it may not write): the refusal is the error,
            // and no replay can get past it.
            if code == RDKafkaErrorCode::PurgeQueue {
                if let Some(denied) = client_log::denial() {
                    return Err(SinkError::Delivery {
                        failed,
                        first: denied,
                        action: Action::Fatal,
                    });
                }
            }
            return Err(SinkError::Delivery {
                failed,
                first,
                action: classify_code(code),
            });
        }
        if !self.transactions {
            return Ok(());
        }
        self.retrying("commit_transaction", |p| {
            p.producer.commit_transaction(p.operation_timeout)
        })
        .map_err(|e| match e {
            // Still retriable after every retry: whether the commit landed is
            // unknown here. Stop; on restart init_transactions settles it and
            // recovery reads the outcome from the checkpoint topic.
            SinkError::Kafka {
                op,
                action: Action::Retry,
                source,
            } => SinkError::Kafka {
                op,
                action: Action::Fatal,
                source,
            },
            other => other,
        })
    }

    /// Aborts the open transaction: none of its records will ever be visible
    /// to read_committed consumers.
    pub fn abort(&mut self) -> Result<(), SinkError> {
        if !self.transactions {
            return Ok(());
        }
        // abort_transaction purges what is queued and then waits for the
        // delivery reports of what is in flight; with a BaseProducer only our
        // own polling serves them. So: short abort calls (resumable when they
        // time out), with polling in between, until it completes.
        let deadline = std::time::Instant::now() + self.operation_timeout;
        loop {
            match self.producer.abort_transaction(Duration::from_millis(500)) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let err = self.fail("abort_transaction", e);
                    if err.action() != Action::Retry || std::time::Instant::now() >= deadline {
                        return Err(err);
                    }
                    self.producer.poll(Duration::from_millis(100));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_in_flight_share_one_queue_bound_down_to_a_floor() {
        let mut cfg = KafkaConfig::new("b:9092");
        cfg.shared_queue(1);
        assert_eq!(cfg.queue_kbytes, DEFAULT_QUEUE_KBYTES);
        cfg.shared_queue(2);
        assert_eq!(cfg.queue_kbytes, DEFAULT_QUEUE_KBYTES / 2);
        cfg.shared_queue(64);
        assert_eq!(cfg.queue_kbytes, MIN_QUEUE_KBYTES);
        let c = cfg.producer_config("id");
        assert_eq!(
            c.get("queue.buffering.max.kbytes"),
            Some(MIN_QUEUE_KBYTES.to_string().as_str())
        );
    }
}
