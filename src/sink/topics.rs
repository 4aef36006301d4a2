//! Creates the topics the service writes to, if missing. Existing topics are
//! checked and never altered: their layout belongs to the operator.

use super::client_log::Logged;
use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::producer::KafkaConfig;
use crate::encode::Format;
use crate::schema::{Catalog, RecordKind};

/// Topic names and the layout of topics the service creates.
#[derive(Debug, Clone)]
pub struct TopicLayout {
    /// The record kinds, each naming its topic (and perhaps a dead-letter
    /// topic of its own).
    pub kinds: Catalog,
    /// Invalid rows of every kind without a dead-letter topic of its own.
    pub dlq: String,
    /// Compacted; key = file name.
    pub checkpoints: String,
    /// Partitions of each topic the service creates.
    pub partitions: i32,
    /// Replication factor of each topic the service creates.
    pub replication: i32,
    /// `retention.ms` of the record topics the service creates. Records carry
    /// their event time as Kafka timestamp, so time-based retention counts
    /// from the call, not from the ingest: a week's default retention would
    /// delete last month's CDRs right after they land. -1 keeps them.
    pub retention_ms: i64,
    /// Each kind's value format, by kind name (`json` for one not listed).
    pub formats: BTreeMap<String, Format>,
    /// Kinds partitioned by a column: the column's position among the
    /// kind's declared columns, by kind name.
    pub partition_by: BTreeMap<String, usize>,
}

impl TopicLayout {
    /// The format `kind`'s valid rows are written in.
    pub fn format_of(&self, kind: &RecordKind) -> Format {
        self.formats.get(kind.as_str()).copied().unwrap_or_default()
    }

    /// The topic of a kind's invalid rows.
    pub fn dlq_for<'a>(&'a self, kind: &'a RecordKind) -> &'a str {
        kind.spec().dead_letter_topic.as_deref().unwrap_or(&self.dlq)
    }

    /// Every record topic: each kind's, then each dead-letter topic, once.
    pub fn record_topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self.kinds.iter().map(RecordKind::topic).collect();
        for t in std::iter::once(self.dlq.as_str()).chain(self.kinds.iter().map(|k| self.dlq_for(k))) {
            if !topics.contains(&t) {
                topics.push(t);
            }
        }
        topics
    }
}

/// Default topic of data CDRs.
pub const DEFAULT_DATA_TOPIC: &str = cdr_core::schema::builtin::DATA_TOPIC;
/// Default topic of voice CDRs.
pub const DEFAULT_VOICE_TOPIC: &str = cdr_core::schema::builtin::VOICE_TOPIC;
/// Default dead-letter topic.
pub const DEFAULT_DLQ_TOPIC: &str = "cdr-dlq";
/// Default checkpoint topic.
pub const DEFAULT_CHECKPOINT_TOPIC: &str = "cdr-ingest-checkpoints";
/// Default partitions of a topic the service creates.
pub const DEFAULT_PARTITIONS: i32 = 12;
/// Default replication factor of a topic the service creates.
pub const DEFAULT_REPLICATION: i32 = 3;
/// Default retention of a topic the service creates: forever.
pub const DEFAULT_RETENTION_MS: i64 = -1;

impl Default for TopicLayout {
    fn default() -> Self {
        TopicLayout {
            kinds: Catalog::builtin(),
            dlq: DEFAULT_DLQ_TOPIC.into(),
            checkpoints: DEFAULT_CHECKPOINT_TOPIC.into(),
            partitions: DEFAULT_PARTITIONS,
            replication: DEFAULT_REPLICATION,
            retention_ms: DEFAULT_RETENTION_MS,
            formats: BTreeMap::new(),
            partition_by: BTreeMap::new(),
        }
    }
}

/// Why the topics could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The admin request itself failed.
    #[error("kafka admin request failed: {0}")]
    Kafka(#[from] KafkaError),
    #[error("replication factor {wanted} asked for, but the cluster has {brokers} broker(s); lower it with --replication-factor / CDR_TOPIC_REPLICATION")]
    /// More replicas asked for than the cluster has brokers.
    TooFewBrokers {
        /// The replication factor.
        wanted: i32,
        /// Brokers in the metadata.
        brokers: usize,
    },
    /// The broker refused to create a topic.
    #[error("creating topic {topic}: {code}")]
    Create {
        /// The topic.
        topic: String,
        /// The broker's error.
        code: RDKafkaErrorCode,
    },
}

/// The partition count of each topic of a kind partitioned by a column,
/// learned once at start (records of one value stay in one partition only
/// while the count does not change).
pub fn partition_counts(cfg: &KafkaConfig, layout: &TopicLayout) -> Result<BTreeMap<String, i32>, TopicError> {
    let mut counts = BTreeMap::new();
    if layout.partition_by.is_empty() {
        return Ok(counts);
    }
    let probe: BaseConsumer<Logged> = cfg.client_config().create_with_context(Logged)?;
    for kind in layout
        .kinds
        .iter()
        .filter(|k| layout.partition_by.contains_key(k.as_str()))
    {
        let md = probe.fetch_metadata(Some(kind.topic()), Duration::from_secs(10))?;
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == kind.topic())
            .map_or(0, |t| t.partitions().len());
        counts.insert(kind.topic().to_owned(), i32::try_from(n).unwrap_or(i32::MAX));
    }
    Ok(counts)
}

/// Creates whatever of the layout is missing; returns the names it created.
pub async fn ensure_topics(cfg: &KafkaConfig, layout: &TopicLayout) -> Result<Vec<String>, TopicError> {
    let probe: BaseConsumer<Logged> = cfg.client_config().create_with_context(Logged)?;
    let md = probe.fetch_metadata(None, Duration::from_secs(10)).inspect_err(|_| {
        // Dispatches what the client logged on the way (why the brokers
        // refused it), which only a poll delivers to the context.
        for _ in 0..5 {
            let _ = probe.poll(Duration::from_millis(50));
        }
    })?;
    let existing: Vec<(String, usize)> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect();
    let wanted = layout
        .record_topics()
        .into_iter()
        .map(|t| (t, layout.partitions, false))
        .chain([(layout.checkpoints.as_str(), 1, true)]);
    let mut to_create = Vec::new();
    for (name, partitions, compacted) in wanted {
        match existing.iter().find(|(n, _)| n == name) {
            Some((_, have)) if *have as i32 != partitions && !compacted => {
                tracing::warn!(topic = %name, have, configured = partitions, "existing topic has a different partition count; left as it is");
            }
            Some(_) => {}
            None => to_create.push((name, partitions, compacted)),
        }
    }
    if to_create.is_empty() {
        return Ok(Vec::new());
    }
    let brokers = md.brokers().len();
    if (brokers as i32) < layout.replication {
        return Err(TopicError::TooFewBrokers {
            wanted: layout.replication,
            brokers,
        });
    }
    let admin = cfg.admin()?;
    let retention = layout.retention_ms.to_string();
    let new_topics: Vec<NewTopic<'_>> = to_create
        .iter()
        .map(|(name, partitions, compacted)| {
            let t = NewTopic::new(name, *partitions, TopicReplication::Fixed(layout.replication));
            if *compacted {
                t.set("cleanup.policy", "compact")
            } else {
                t.set("retention.ms", &retention)
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut created = Vec::new();
    for result in admin.create_topics(&new_topics, &opts).await? {
        match result {
            Ok(name) => {
                tracing::info!(topic = %name, "created topic");
                created.push(name);
            }
            // Another instance won the race: fine.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(TopicError::Create { topic, code }),
        }
    }
    Ok(created)
}
