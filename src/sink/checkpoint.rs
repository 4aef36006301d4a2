//! Checkpoint records: the truth of record for how far each file got.
//!
//! Every transaction writes one checkpoint to a compacted topic (key = file
//! name), so the checkpoint commits or vanishes together with the rows it
//! describes. After a crash, or with the ledger lost, reading this topic with
//! read_committed says exactly which rows of which file are in Kafka.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::Message;
use serde::{Deserialize, Serialize};

use super::detached::Detached;
use super::producer::KafkaConfig;
use super::topic_end::{log_ends, read_to_end, wait_stable, EndError, ReadToEndContext};

/// Version of the stored checkpoint value; readers accept this and older.
pub const CHECKPOINT_VERSION: u32 = 1;

/// One file's progress after a committed transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version of this value.
    pub v: u32,
    /// The file's name (also the record's key).
    pub file: String,
    /// Hex SHA-256 of the file's bytes; a checkpoint only applies to the
    /// same bytes.
    pub sha256: String,
    /// Ingest version of this file name (2+ after `--on-changed reingest`).
    pub version: u32,
    /// Sequence number of the transaction that wrote this checkpoint.
    pub seq: u64,
    /// Data rows (valid + invalid) committed so far, from the file's start.
    pub rows_done: u64,
    /// Of those, rows produced to the kind's topic.
    pub valid: u64,
    /// Of those, rows produced to the dead-letter topic.
    pub invalid: u64,
    /// True when the file is complete.
    pub done: bool,
    /// Earliest event time of the valid rows so far, Unix millis.
    pub first_event_ms: Option<i64>,
    /// Latest event time of the valid rows so far, Unix millis.
    pub last_event_ms: Option<i64>,
    /// The first row of this version: 1, or for a file that grew after a
    /// version of it was committed, with those bytes unchanged, the row after
    /// that version's last (whose records carry that version's hash).
    /// `valid` and `invalid` count from here. Absent (1) in older values.
    #[serde(default = "first_row")]
    pub first_row: u64,
    /// Size of this version's bytes, so that a grown file can be checked to
    /// extend them. Absent in older values (such a file is a conflict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

fn first_row() -> u64 {
    1
}

/// Why the checkpoints could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The topic could not be read to its end.
    #[error("reading the checkpoint topic: {0}")]
    Read(#[from] EndError),
    /// A value that is not a checkpoint of a known version.
    #[error("undecodable checkpoint for key {key:?}: {detail}")]
    Corrupt {
        /// The record's key (a file name).
        key: String,
        /// What the decoder said.
        detail: String,
    },
}

impl Checkpoint {
    /// The record value written to the checkpoint topic.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a struct of strings and integers always serializes")
    }

    /// Reads a value written by [`Checkpoint::encode`] (this version or an older one).
    pub fn decode(key: &str, bytes: &[u8]) -> Result<Self, CheckpointError> {
        let cp: Checkpoint = serde_json::from_slice(bytes).map_err(|e| CheckpointError::Corrupt {
            key: key.to_string(),
            detail: e.to_string(),
        })?;
        if cp.v > CHECKPOINT_VERSION {
            return Err(CheckpointError::Corrupt {
                key: key.to_string(),
                detail: format!("version {} is newer than this build reads ({CHECKPOINT_VERSION})", cp.v),
            });
        }
        Ok(cp)
    }
}

/// The latest committed checkpoint of every file, read from the topic.
#[derive(Debug, Default, Clone)]
pub struct CheckpointStore {
    by_file: HashMap<String, Checkpoint>,
}

impl CheckpointStore {
    /// Reads the whole topic with read_committed and keeps the last value per
    /// key. Call after `init_transactions` of every slot: that aborts what a
    /// dead instance left open. Transactions of other writers (the rest of a
    /// group) are waited out up to `timeout`, so the store holds every
    /// checkpoint committed before the call, or the call fails: a partial
    /// store would have files that are done taken for new.
    pub fn load(cfg: &KafkaConfig, topic: &str, timeout: Duration) -> Result<Self, CheckpointError> {
        let consumer: Detached<BaseConsumer<ReadToEndContext>> = Detached::new(
            cfg.client_config()
                // Never joins or commits, but librdkafka assigns partitions only
                // with a group id: on a secured cluster it needs READ on it (the
                // README's prefixed `cdr-to-redpanda-` group ACL).
                .set("group.id", "cdr-to-redpanda-checkpoint-reader")
                .set("enable.auto.commit", "false")
                .set("enable.partition.eof", "true")
                .set("isolation.level", "read_committed")
                .create_with_context(ReadToEndContext)
                .map_err(EndError::kafka("creating a reader", topic))?,
        );
        let started = Instant::now();
        // A topic created a moment ago may have no leader yet (and a broker
        // may be failing over): retry until the deadline, then give up.
        let ends = loop {
            match log_ends(cfg, topic, timeout) {
                Ok(ends) => break ends,
                Err(e) if started.elapsed() < timeout => {
                    tracing::debug!(topic, error = %e, "checkpoint topic not readable yet; retrying");
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(e.into()),
            }
        };
        wait_stable(&consumer, topic, &ends, started + timeout)?;
        let mut store = CheckpointStore::default();
        read_to_end(&consumer, topic, &ends, timeout, |m| {
            let Some(key) = m.key().map(|k| String::from_utf8_lossy(k).into_owned()) else {
                return Ok(());
            };
            match m.payload() {
                Some(p) => {
                    let cp = Checkpoint::decode(&key, p)?;
                    store.by_file.insert(key, cp);
                }
                // A tombstone forgets the file.
                None => {
                    store.by_file.remove(&key);
                }
            }
            Ok::<(), CheckpointError>(())
        })?;
        Ok(store)
    }

    /// The latest checkpoint of `file`.
    pub fn get(&self, file: &str) -> Option<&Checkpoint> {
        self.by_file.get(file)
    }

    /// Records a checkpoint this process just committed.
    pub fn record(&mut self, cp: Checkpoint) {
        self.by_file.insert(cp.file.clone(), cp);
    }

    /// Every file's latest checkpoint, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Checkpoint> {
        self.by_file.values()
    }

    /// Files with a checkpoint.
    pub fn len(&self) -> usize {
        self.by_file.len()
    }

    /// No file has a checkpoint.
    pub fn is_empty(&self) -> bool {
        self.by_file.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_v1_golden_decodes() {
        let golden = br#"{"v":1,"file":"cdr_data_20240101_000000.csv","sha256":"ab","version":1,"seq":3,"rows_done":200,"valid":198,"invalid":2,"done":true,"first_event_ms":1,"last_event_ms":2}"#;
        let cp = Checkpoint::decode("k", golden).unwrap();
        assert_eq!(cp.rows_done, 200);
        assert!(cp.done);
        assert_eq!(Checkpoint::decode("k", &cp.encode()).unwrap(), cp);
    }

    #[test]
    fn newer_checkpoint_version_is_refused() {
        let v2 = br#"{"v":2,"file":"f","sha256":"ab","version":1,"seq":3,"rows_done":200,"valid":198,"invalid":2,"done":true,"first_event_ms":null,"last_event_ms":null}"#;
        assert!(matches!(
            Checkpoint::decode("f", v2),
            Err(CheckpointError::Corrupt { .. })
        ));
    }
}
