//! Is the cluster reachable? One metadata request, for readiness, the
//! startup wait and `check-config`.

use super::client_log::Logged;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;

use super::producer::KafkaConfig;

/// A client kept open between probes, so each probe is one request on an
/// existing connection rather than a new handshake.
pub struct BrokerProbe {
    client: BaseConsumer<Logged>,
    topic: String,
}

impl BrokerProbe {
    /// `topic` is the one asked about: asking for every topic would make
    /// each probe as large as the cluster's metadata.
    pub fn new(cfg: &KafkaConfig, topic: &str) -> Result<Self, KafkaError> {
        Ok(BrokerProbe {
            client: cfg.client_config().create_with_context(Logged)?,
            topic: topic.to_string(),
        })
    }

    /// The number of brokers in the cluster, if one answered within `timeout`.
    pub fn brokers(&self, timeout: Duration) -> Result<usize, KafkaError> {
        let md = self.client.fetch_metadata(Some(&self.topic), timeout)?;
        Ok(md.brokers().len())
    }
}
