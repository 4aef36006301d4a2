//! The topic scan: every partition of the record topics and the dead-letter
//! topic, read with read_committed from the beginning to the end, each record
//! folded into the tally of its key's hash prefix.
//!
//! The partitions are shared out among a few consumers, each on its own
//! thread with its own broker connection: a single connection's fetch round
//! trips cap one consumer at about a quarter of what the broker serves (on
//! the local stack, 260k against 800k records/s with three). Each thread
//! parses keys into a batch and folds the batch into the shared tallies
//! under one lock, so the lock is taken once per few thousand records.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::Message;
use serde::Serialize;

use super::rows::{parse_key, Mark, RowSet};
use super::AuditError;
use crate::sink::topic_end::{log_ends, read_to_end, wait_stable, PartitionEnd, ReadToEndContext};
use crate::sink::topics::TopicLayout;
use crate::sink::KafkaConfig;

/// How many example rows or keys a finding keeps; the counts are exact.
pub const EXAMPLES: usize = 10;

/// Which topic a record was found in: its place in [`TopicSet::names`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place(pub usize);

/// The topics scanned: every kind's topic and every dead-letter topic, once
/// each, and which of them each kind writes.
#[derive(Debug, Clone)]
pub struct TopicSet {
    /// Topic names; a [`Place`] indexes them.
    pub names: Vec<String>,
    /// Per kind name: its topic and its dead-letter topic.
    pub kinds: BTreeMap<String, (Place, Place)>,
    /// The dead-letter topic of kinds without one of their own.
    pub dlq: Place,
}

impl TopicSet {
    /// The record topics of a layout.
    pub fn of(layout: &TopicLayout) -> TopicSet {
        let names: Vec<String> = layout.record_topics().into_iter().map(String::from).collect();
        let place = |t: &str| {
            Place(
                names
                    .iter()
                    .position(|n| n == t)
                    .expect("record_topics lists every kind's topics"),
            )
        };
        let kinds = layout
            .kinds
            .iter()
            .map(|k| (k.as_str().to_owned(), (place(k.topic()), place(layout.dlq_for(k)))))
            .collect();
        TopicSet {
            dlq: place(&layout.dlq),
            names,
            kinds,
        }
    }

    /// The topic at `place`.
    pub fn name(&self, place: Place) -> &str {
        &self.names[place.0]
    }

    /// Every place, in order.
    pub fn places(&self) -> impl Iterator<Item = Place> {
        (0..self.names.len()).map(Place)
    }
}

/// Record counts per topic, by [`Place`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PerTopic(Vec<u64>);

impl PerTopic {
    /// Records found at `place`.
    pub fn get(&self, place: Place) -> u64 {
        self.0.get(place.0).copied().unwrap_or(0)
    }

    fn add(&mut self, place: Place) {
        if self.0.len() <= place.0 {
            self.0.resize(place.0 + 1, 0);
        }
        self.0[place.0] += 1;
    }

    /// Records found in every topic.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
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
    /// Rows `first..=capacity` of one version of a file.
    pub fn new(first: u64, capacity: u64) -> Self {
        Tally {
            rows: RowSet::from_row(first, capacity),
            ..Tally::default()
        }
    }

    pub(super) fn add(&mut self, place: Place, row: u64) {
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

/// One record, as a consumer thread classified it.
enum Item {
    Audited {
        tally: usize,
        place: Place,
        row: u64,
    },
    /// `first` is set for the first record of the prefix this thread saw.
    Orphan {
        prefix: u64,
        place: Place,
        first: Option<Box<(String, Option<String>)>>,
    },
    Malformed {
        place: Place,
        key: String,
    },
}

/// What the consumer threads fold their batches into.
struct Found<'a> {
    tallies: &'a mut [Tally],
    orphans: &'a mut BTreeMap<u64, Orphan>,
    malformed: &'a mut Malformed,
    records: u64,
}

impl Found<'_> {
    fn fold(&mut self, batch: &mut Vec<Item>, records: u64) {
        self.records += records;
        for item in batch.drain(..) {
            match item {
                Item::Audited { tally, place, row } => self.tallies[tally].add(place, row),
                Item::Orphan { prefix, place, first } => {
                    let orphan = self.orphans.entry(prefix).or_insert_with(|| Orphan {
                        prefix: super::rows::prefix_hex(prefix),
                        records: PerTopic::default(),
                        example_key: String::new(),
                        source_file: None,
                    });
                    if let (Some(first), true) = (first, orphan.example_key.is_empty()) {
                        (orphan.example_key, orphan.source_file) = *first;
                    }
                    orphan.records.add(place);
                }
                Item::Malformed { place, key } => {
                    self.malformed.records.add(place);
                    keep_example(&mut self.malformed.examples, key);
                }
            }
        }
    }
}

/// Records a thread classifies before it takes the lock to fold them.
const BATCH: usize = 8192;

/// Reads every partition of the record topics from the beginning up to the end
/// (see `sink::topic_end`: transactions other writers had open when the scan
/// began are waited out, so nothing committed before it is missed), with up
/// to `consumers` consumers in parallel. A topic that does not exist reads as
/// empty. Fails when a read gets no record or end for `idle_timeout`, or an
/// open transaction does not end within it.
pub fn scan(
    cfg: &KafkaConfig,
    topics: &TopicSet,
    scan: &mut Scan,
    idle_timeout: Duration,
    consumers: usize,
) -> Result<(), AuditError> {
    let started = Instant::now();
    let probe = consumer(cfg)?;
    let mut partitions: Vec<(&str, PartitionEnd, Place)> = Vec::new();
    for place in topics.places() {
        let topic = topics.name(place);
        // Empty partitions are left out: they may never report EOF.
        let ends = log_ends(cfg, topic, idle_timeout)?;
        wait_stable(&probe, topic, &ends, Instant::now() + idle_timeout)?;
        partitions.extend(ends.into_iter().map(|e| (topic, e, place)));
    }
    drop(probe);
    let consumers = consumers.clamp(1, partitions.len().max(1));
    let shares: Vec<Vec<(&str, PartitionEnd, Place)>> = (0..consumers)
        .map(|i| partitions.iter().skip(i).step_by(consumers).copied().collect())
        .collect();
    let found = Mutex::new(Found {
        tallies: &mut scan.tallies,
        orphans: &mut scan.orphans,
        malformed: &mut scan.malformed,
        records: 0,
    });
    let (owners, collect) = (&scan.owners, scan.collect_orphans);
    let results: Vec<Result<(), AuditError>> = std::thread::scope(|s| {
        let handles: Vec<_> = shares
            .iter()
            .filter(|share| !share.is_empty())
            .map(|share| s.spawn(|| read_share(cfg, share, owners, collect, &found, idle_timeout)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(AuditError::ScanPanicked)))
            .collect()
    });
    results.into_iter().collect::<Result<(), AuditError>>()?;
    scan.records = found.into_inner().unwrap_or_else(|p| p.into_inner()).records;
    scan.elapsed = started.elapsed();
    Ok(())
}

fn consumer(cfg: &KafkaConfig) -> Result<BaseConsumer<ReadToEndContext>, AuditError> {
    let mut c = cfg.client_config();
    c.set("group.id", "cdr-to-redpanda-audit")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        // Fetch sizes: big enough to keep the broker streaming, small enough
        // that a consumer's buffers stay at a few tens of MiB.
        .set("fetch.max.bytes", "16777216")
        .set("max.partition.fetch.bytes", "4194304")
        .set("queued.max.messages.kbytes", "16384")
        // The last fetch of each partition returns at once with its EOF
        // instead of waiting the default 500 ms for more data.
        .set("fetch.wait.max.ms", "50");
    // The operator's --kafka-config still wins over these defaults.
    for p in &cfg.overrides {
        c.set(&p.key, &p.value);
    }
    c.create_with_context(ReadToEndContext)
        .map_err(|source| AuditError::Kafka {
            what: "creating an audit consumer".into(),
            source,
        })
}

/// One thread's partitions, read to their ends one topic at a time (an end
/// event names only its partition, so a consumer reads one topic).
fn read_share(
    cfg: &KafkaConfig,
    share: &[(&str, PartitionEnd, Place)],
    owners: &HashMap<u64, Owner>,
    collect_orphans: bool,
    found: &Mutex<Found<'_>>,
    idle_timeout: Duration,
) -> Result<(), AuditError> {
    let mut seen_orphans = HashSet::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut records = 0u64;
    let fold = |batch: &mut Vec<Item>, records: &mut u64| {
        found.lock().unwrap_or_else(|p| p.into_inner()).fold(batch, *records);
        *records = 0;
    };
    let mut topics: Vec<(&str, Place)> = share.iter().map(|(t, _, place)| (*t, *place)).collect();
    topics.dedup();
    for (topic, place) in topics {
        let ends: Vec<PartitionEnd> = share
            .iter()
            .filter(|(t, _, _)| *t == topic)
            .map(|(_, e, _)| *e)
            .collect();
        let consumer = consumer(cfg)?;
        read_to_end(&consumer, topic, &ends, idle_timeout, |m| {
            records += 1;
            if let Some(item) = classify(m, place, owners, collect_orphans, &mut seen_orphans) {
                batch.push(item);
                if batch.len() >= BATCH {
                    fold(&mut batch, &mut records);
                }
            }
            Ok::<(), AuditError>(())
        })?;
    }
    fold(&mut batch, &mut records);
    Ok(())
}

/// What one record means for the audit; `None` for records of files outside
/// the audit's scope.
fn classify(
    m: &BorrowedMessage<'_>,
    place: Place,
    owners: &HashMap<u64, Owner>,
    collect_orphans: bool,
    seen_orphans: &mut HashSet<u64>,
) -> Option<Item> {
    let key = m.key().unwrap_or_default();
    let Some((prefix, row)) = parse_key(key) else {
        return collect_orphans.then(|| Item::Malformed {
            place,
            key: String::from_utf8_lossy(key).into_owned(),
        });
    };
    match owners.get(&prefix) {
        Some(Owner::Audited(tally)) => Some(Item::Audited {
            tally: *tally,
            place,
            row,
        }),
        Some(Owner::Outside) => None,
        None if collect_orphans => {
            // Key and headers are copied only for a prefix's first record.
            let first = seen_orphans.insert(prefix).then(|| {
                let source_file = m.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == "cdr-source-file")
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                });
                Box::new((String::from_utf8_lossy(key).into_owned(), source_file))
            });
            Some(Item::Orphan { prefix, place, first })
        }
        None => None,
    }
}
