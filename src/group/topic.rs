//! The assignment topic: its partitions are the group's shards. It holds no
//! records; only its partition count matters, fixed at creation, because the
//! shard of a file is its name's hash modulo that count.

use std::time::Duration;

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::GroupError;
use crate::sink::KafkaConfig;

/// Partitions of `topic`, creating it with `shards` partitions (compacted,
/// `replication` copies) if missing. An existing topic's count wins over
/// `shards`: every member must hash with the same count.
pub async fn ensure_assignment_topic(
    cfg: &KafkaConfig,
    topic: &str,
    shards: u32,
    replication: i32,
) -> Result<u32, GroupError> {
    if let Some(n) = partition_count(cfg, topic)? {
        if n != shards {
            tracing::info!(
                topic,
                partitions = n,
                configured = shards,
                "assignment topic exists: its partition count is the shard count"
            );
        }
        return Ok(n);
    }
    let admin = cfg.admin().map_err(GroupError::Kafka)?;
    let partitions = i32::try_from(shards).map_err(|_| GroupError::Shards(shards))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication)).set("cleanup.policy", "compact");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics([&new], &opts).await.map_err(GroupError::Kafka)? {
        match result {
            Ok(name) => tracing::info!(topic = %name, shards, "created the group's assignment topic"),
            // Another member created it first: its count is the one.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(GroupError::CreateTopic { topic, code }),
        }
    }
    // Metadata can lag the creation for a moment.
    for _ in 0..50 {
        if let Some(n) = partition_count(cfg, topic)? {
            return Ok(n);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(GroupError::TopicMissing(topic.to_string()))
}

/// The partition count of `topic`; None when it does not exist.
pub fn partition_count(cfg: &KafkaConfig, topic: &str) -> Result<Option<u32>, GroupError> {
    let probe: BaseConsumer = cfg.client_config().create().map_err(GroupError::Kafka)?;
    let md = probe
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(GroupError::Kafka)?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len() as u32))
}
