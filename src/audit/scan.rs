//! The topic scan: every partition of the record topics and the dead-letter
//! topic, read with read_committed from the beginning to the end, each record
//! folded into the tally of its key's hash prefix.
//!
//! One consumer is assigned every partition: librdkafka fetches them
//! concurrently on its own threads, and the per-record work here (parse the
//! key, one map lookup, one bit) is far cheaper than the fetch, so a second
//! consuming thread would only add merging.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use super::rows::{parse_key, Mark, RowSet};
use super::AuditError;
use crate::sink::checkpoint::ReadToEndContext;
use crate::sink::KafkaConfig;

/// How many example rows or keys a finding keeps; the counts are exact.
pub const EXAMPLES: usize = 10;

/// Which topic a record was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    Data,
    Voice,
    Dlq,
}

impl Place {
    pub const ALL: [Place; 3] = [Place::Data, Place::Voice, Place::Dlq];

    fn ix(self) -> usize {
        self as usize
    }
}

/// The topics scanned.
#[derive(Debug, Clone)]
pub struct TopicSet {
    pub data: String,
    pub voice: String,
    pub dlq: String,
}

impl TopicSet {
    pub fn name(&self, place: Place) -> &str {
        match place {
            Place::Data => &self.data,
            Place::Voice => &self.voice,
            Place::Dlq => &self.dlq,
        }
    }

    fn place_of(&self, topic: &str) -> Option<Place> {
        Place::ALL.into_iter().find(|p| self.name(*p) == topic)
    }
}

/// Record counts per topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PerTopic {
    pub data: u64,
    pub voice: u64,
    pub dlq: u64,
}

impl PerTopic {
    pub fn get(&self, place: Place) -> u64 {
        [self.data, self.voice, self.dlq][place.ix()]
    }

    fn add(&mut self, place: Place) {
        match place {
            Place::Data => self.data += 1,
            Place::Voice => self.voice += 1,
            Place::Dlq => self.dlq += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.data + self.voice + self.dlq
    }
}

/// What the scan found under one audited key prefix.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub rows: RowSet,
    pub records: PerTopic,
    /// Records whose row index was seen before (each extra copy counts).
    pub duplicates: u64,
    pub duplicate_rows: Vec<u64>,
    /// Records with row 0 or a row past the expected count.
    pub beyond: u64,
    pub beyond_rows: Vec<u64>,
}

impl Tally {
    pub fn new(capacity: u64) -> Self {
        Tally {
            rows: RowSet::new(capacity),
            ..Tally::default()
        }
    }

    fn add(&mut self, place: Place, row: u64) {
        self.records.add(place);
        match self.rows.mark(row) {
            Mark::New => {}
            Mark::Again => {
                self.duplicates += 1;
                keep_example(&mut self.duplicate_rows, row);
            }
            Mark::Beyond => {
                self.beyond += 1;
                keep_example(&mut self.beyond_rows, row);
            }
        }
    }
}

fn keep_example<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if v.len() < EXAMPLES && !v.contains(&x) {
        v.push(x);
    }
}

/// Records under a key prefix no ledger file has.
#[derive(Debug, Clone, Serialize)]
pub struct Orphan {
    pub prefix: String,
    pub records: PerTopic,
    pub example_key: String,
    /// The `cdr-source-file` header of the first such record, if any.
    pub source_file: Option<String>,
}

/// Keys that are not `<16 hex>-<row>` at all.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Malformed {
    pub records: PerTopic,
    pub examples: Vec<String>,
}

/// Who a key prefix belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Owner {
    /// Tallied into `tallies[i]`.
    Audited(usize),
    /// A ledger file outside the audit's scope: skipped.
    Outside,
}

/// The scan's input (which prefixes to tally) and its result.
#[derive(Debug, Default)]
pub struct Scan {
    pub owners: HashMap<u64, Owner>,
    pub tallies: Vec<Tally>,
    /// Records of unknown prefixes, collected only when `collect_orphans`.
    pub collect_orphans: bool,
    pub orphans: BTreeMap<u64, Orphan>,
    pub malformed: Malformed,
    pub records: u64,
    pub elapsed: Duration,
}

impl Scan {
    fn fold(&mut self, place: Place, m: &BorrowedMessage<'_>) {
        self.records += 1;
        let key = m.key().unwrap_or_default();
        let Some((prefix, row)) = parse_key(key) else {
            if self.collect_orphans {
                self.malformed.records.add(place);
                keep_example(&mut self.malformed.examples, String::from_utf8_lossy(key).into_owned());
            }
            return;
        };
        match self.owners.get(&prefix) {
            Some(Owner::Audited(i)) => self.tallies[*i].add(place, row),
            Some(Owner::Outside) => {}
            None if self.collect_orphans => {
                let orphan = self.orphans.entry(prefix).or_insert_with(|| Orphan {
                    prefix: super::rows::prefix_hex(prefix),
                    records: PerTopic::default(),
                    example_key: String::from_utf8_lossy(key).into_owned(),
                    // Headers are parsed only here, off the hot path.
                    source_file: m.headers().and_then(|h| {
                        h.iter()
                            .find(|h| h.key == "cdr-source-file")
                            .and_then(|h| h.value)
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                    }),
                });
                orphan.records.add(place);
            }
            None => {}
        }
    }
}

/// Reads every partition of the three topics from the beginning up to the end
/// (each partition's EOF, as read_committed sees it: commit markers occupy
/// offsets, so the high watermark alone does not say where the end is). A
/// topic that does not exist reads as empty. Fails when no record or EOF
/// arrives for `idle_timeout`.
pub fn scan(cfg: &KafkaConfig, topics: &TopicSet, scan: &mut Scan, idle_timeout: Duration) -> Result<(), AuditError> {
    let started = Instant::now();
    let kerr = |what: &str| {
        let what = what.to_string();
        move |source| AuditError::Kafka { what, source }
    };
    let consumer: BaseConsumer<ReadToEndContext> = cfg
        .client_config()
        .set("group.id", "cdr-to-redpanda-audit")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        // Bigger fetches: the scan is throughput-bound.
        .set("fetch.max.bytes", "104857600")
        .set("max.partition.fetch.bytes", "16777216")
        .set("queued.max.messages.kbytes", "262144")
        // The last fetch of each partition returns at once with its EOF
        // instead of waiting the default 500 ms for more data.
        .set("fetch.wait.max.ms", "50")
        .create_with_context(ReadToEndContext)
        .map_err(kerr("creating the audit consumer"))?;
    let mut tpl = TopicPartitionList::new();
    for place in Place::ALL {
        let topic = topics.name(place);
        if tpl.elements_for_topic(topic).is_empty() {
            add_partitions(&consumer, topic, &mut tpl, idle_timeout)?;
        }
    }
    let mut open = tpl.count();
    if open > 0 {
        consumer.assign(&tpl).map_err(kerr("assigning partitions"))?;
    }
    let mut last_progress = Instant::now();
    while open > 0 {
        match consumer.poll(Duration::from_millis(200)) {
            None => {
                if last_progress.elapsed() > idle_timeout {
                    return Err(AuditError::Stalled {
                        waited: idle_timeout,
                        open,
                    });
                }
                continue;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(e)) => return Err(AuditError::Kafka { what: "reading the topics".into(), source: e }),
            Some(Ok(m)) => {
                if let Some(place) = topics.place_of(m.topic()) {
                    scan.fold(place, &m);
                }
            }
        }
        last_progress = Instant::now();
    }
    scan.elapsed = started.elapsed();
    Ok(())
}

/// Adds the topic's non-empty partitions, from the beginning. An empty
/// partition is left out: it may never report EOF.
fn add_partitions(
    consumer: &BaseConsumer<ReadToEndContext>,
    topic: &str,
    tpl: &mut TopicPartitionList,
    timeout: Duration,
) -> Result<(), AuditError> {
    let kerr = |source| AuditError::Kafka {
        what: format!("reading the layout of topic {topic}"),
        source,
    };
    let md = consumer.fetch_metadata(Some(topic), timeout).map_err(kerr)?;
    for t in md.topics().iter().filter(|t| t.name() == topic && t.error().is_none()) {
        for p in t.partitions() {
            let (lo, hi) = consumer.fetch_watermarks(topic, p.id(), timeout).map_err(kerr)?;
            if hi > lo {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning).map_err(kerr)?;
            }
        }
    }
    Ok(())
}
