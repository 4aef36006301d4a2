//! How large a record each output topic accepts, learned from the cluster,
//! and the check every encoded record passes before it is produced (its wire
//! size: `encode::record`).
//!
//! A record over the limit can never be written: the broker (or librdkafka
//! before it) refuses it however often the transaction is replayed. Checking
//! first lets the ingest loop send such a row to the dead-letter topic, cut to
//! fit, inside the same transaction as its neighbours.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::admin::{AdminOptions, ResourceSpecifier};
use rdkafka::error::KafkaError;

use super::producer::KafkaConfig;

/// librdkafka's default `message.max.bytes`: the producer's own bound.
pub const PRODUCER_DEFAULT_MAX: usize = 1_000_000;

/// A record that does not fit its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversize {
    /// The record's size on the wire.
    pub size: usize,
    /// The topic's limit.
    pub limit: usize,
}

/// The effective record size limit of each output topic: the smaller of the
/// topic's `max.message.bytes` and the producer's `message.max.bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLimits {
    producer_max: usize,
    by_topic: HashMap<String, usize>,
}

impl Default for RecordLimits {
    /// Before anything is learned: the producer's default bound only.
    fn default() -> Self {
        RecordLimits::new(PRODUCER_DEFAULT_MAX)
    }
}

impl RecordLimits {
    /// No topic limit known yet; every topic gets the producer's.
    pub fn new(producer_max: usize) -> Self {
        RecordLimits {
            producer_max,
            by_topic: HashMap::new(),
        }
    }

    /// Records `topic`'s `max.message.bytes`.
    pub fn set_topic(&mut self, topic: &str, max_message_bytes: usize) {
        self.by_topic.insert(topic.to_string(), max_message_bytes);
    }

    /// The largest record `topic` accepts, as far as known.
    pub fn limit(&self, topic: &str) -> usize {
        self.by_topic
            .get(topic)
            .map_or(self.producer_max, |&t| t.min(self.producer_max))
    }

    /// Ok when a record of `size` wire bytes fits `topic`.
    pub fn check(&self, topic: &str, size: usize) -> Result<(), Oversize> {
        let limit = self.limit(topic);
        if size <= limit {
            Ok(())
        } else {
            Err(Oversize { size, limit })
        }
    }

    /// The producer's `batch.size`: `wanted`, lowered to the smallest limit
    /// so that a batch of small records is never larger than a topic accepts.
    pub fn batch_bytes(&self, wanted: usize) -> usize {
        self.by_topic
            .keys()
            .map(|t| self.limit(t))
            .fold(wanted.min(self.producer_max), usize::min)
    }
}

/// The producer's `message.max.bytes`, from the pass-through settings or
/// librdkafka's default.
pub fn producer_max(cfg: &KafkaConfig) -> usize {
    cfg.overrides
        .iter()
        .rev()
        .find(|p| p.key == "message.max.bytes")
        .and_then(|p| p.value.parse().ok())
        .unwrap_or(PRODUCER_DEFAULT_MAX)
}

/// Asks the cluster for each topic's effective `max.message.bytes` (the
/// topic's own setting, or the broker default it inherits). A topic whose
/// configuration cannot be read keeps the producer's bound, with a warning:
/// the broker still refuses what does not fit, and that fails the file
/// rather than the service.
pub async fn learn(cfg: &KafkaConfig, topics: &[&str]) -> Result<RecordLimits, KafkaError> {
    let admin = cfg.admin()?;
    let specs: Vec<ResourceSpecifier<'_>> = topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(5)));
    let mut limits = RecordLimits::new(producer_max(cfg));
    for (topic, result) in topics.iter().zip(admin.describe_configs(&specs, &opts).await?) {
        let value = result
            .as_ref()
            .ok()
            .and_then(|r| r.get("max.message.bytes"))
            .and_then(|e| e.value.as_deref())
            .and_then(|v| v.parse::<usize>().ok());
        match value {
            Some(v) => limits.set_topic(topic, v),
            None => {
                tracing::warn!(topic, result = ?result.as_ref().err(), "cannot read the topic's max.message.bytes; checking records against the producer's message.max.bytes only")
            }
        }
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Property;

    #[test]
    fn the_smaller_of_topic_and_producer_limits_binds() {
        let mut l = RecordLimits::new(1_000_000);
        l.set_topic("cdr-data", 1_048_588);
        l.set_topic("cdr-dlq", 50_000);
        assert_eq!(l.limit("cdr-data"), 1_000_000);
        assert_eq!(l.limit("cdr-dlq"), 50_000);
        assert_eq!(l.limit("unknown"), 1_000_000);
        assert_eq!(l.check("cdr-dlq", 50_000), Ok(()));
        assert_eq!(
            l.check("cdr-dlq", 50_001),
            Err(Oversize {
                size: 50_001,
                limit: 50_000
            })
        );
    }

    #[test]
    fn batches_never_exceed_the_smallest_topic_limit() {
        let mut l = RecordLimits::new(1_000_000);
        assert_eq!(l.batch_bytes(262_144), 262_144);
        l.set_topic("cdr-voice", 100_000);
        assert_eq!(l.batch_bytes(262_144), 100_000);
    }

    #[test]
    fn producer_max_comes_from_pass_through_settings() {
        let mut cfg = KafkaConfig::new("127.0.0.1:9092");
        assert_eq!(producer_max(&cfg), PRODUCER_DEFAULT_MAX);
        cfg.overrides.push(Property::new("message.max.bytes", "2000000"));
        assert_eq!(producer_max(&cfg), 2_000_000);
    }
}
