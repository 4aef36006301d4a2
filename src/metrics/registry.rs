//! The service's metrics and their Prometheus text rendering (format 0.0.4).
//!
//! Hand-rolled on atomics: a dozen metrics do not justify a dependency, and
//! every update on the hot path is one relaxed atomic add.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// A monotonically increasing count.
pub struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    /// Counts `n` more.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down; stored as f64 bits.
pub struct Gauge(AtomicU64);

impl Gauge {
    const fn new() -> Self {
        Gauge(AtomicU64::new(0))
    }

    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    /// The value last set.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Counters keyed by one label (outcome, topic). Labels are few and added
/// rarely, so a mutex around a map costs nothing that matters.
// A panic elsewhere poisons a lock; its values are still the last ones set,
// so every access goes on with them rather than dropping the metric.
pub struct LabeledCounter {
    values: Mutex<BTreeMap<String, u64>>,
    /// Labels exported from the start, at 0 until counted: an alert on a
    /// rate of `failed` files needs the series before the first failure.
    known: &'static [&'static str],
}

impl LabeledCounter {
    const fn new() -> Self {
        Self::with_labels(&[])
    }

    const fn with_labels(known: &'static [&'static str]) -> Self {
        LabeledCounter {
            values: Mutex::new(BTreeMap::new()),
            known,
        }
    }

    /// Counts `n` more under `label`.
    pub fn add(&self, label: &str, n: u64) {
        let mut m = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        match m.get_mut(label) {
            Some(v) => *v += n,
            None => {
                m.insert(label.to_string(), n);
            }
        }
    }

    /// The count under `label` (0 if never counted).
    pub fn get(&self, label: &str) -> u64 {
        let m = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        m.get(label).copied().unwrap_or(0)
    }

    fn snapshot(&self) -> Vec<(String, u64)> {
        let mut m = self.values.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for label in self.known {
            m.entry((*label).to_owned()).or_insert(0);
        }
        m.into_iter().collect()
    }
}

/// Gauges keyed by one label (shard), replaced as a whole so that a label
/// gone from the set (a shard given up) stops being exported.
pub struct LabeledGauge {
    values: Mutex<BTreeMap<String, f64>>,
}

impl LabeledGauge {
    const fn new() -> Self {
        LabeledGauge {
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// Replaces every label's value; a label left out stops being exported.
    pub fn replace(&self, values: impl IntoIterator<Item = (String, f64)>) {
        *self.values.lock().unwrap_or_else(PoisonError::into_inner) = values.into_iter().collect();
    }

    fn snapshot(&self) -> Vec<(String, f64)> {
        let m = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        m.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// Upper bounds of the chunk latency buckets, seconds: a chunk commits in
/// tens of milliseconds on a healthy local cluster and takes up to
/// `--chunk-seconds` plus the commit when rows keep flowing.
const CHUNK_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A fixed-bucket histogram.
pub struct Histogram {
    buckets: [AtomicU64; CHUNK_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; CHUNK_BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // Buckets are stored non-cumulative; rendering sums them up.
        if let Some(i) = CHUNK_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Durations recorded so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Every metric the service exports.
pub struct Metrics {
    /// Files by outcome: committed, skipped, failed, conflict, duplicate,
    /// retrying (a transient failure counted against the file), parked,
    /// deferred (an outage, not counted against the file), interrupted
    /// (stopped mid-file by a shutdown).
    pub files: LabeledCounter,
    /// Records committed per topic (data, voice and dead-letter topics).
    pub rows_produced: LabeledCounter,
    /// Invalid rows committed to the dead-letter topic.
    pub invalid_rows: Counter,
    /// Bytes copied from the source into staging.
    pub bytes_downloaded: Counter,
    /// Read-ahead downloads (`ingest::ahead`): used, or discarded (failed,
    /// or the slot took another file).
    pub read_ahead: LabeledCounter,
    /// Kafka transactions by outcome: committed, aborted.
    pub transactions: LabeledCounter,
    /// From a chunk's begin to its commit returning.
    pub chunk_seconds: Histogram,
    /// Listed files of a known kind that are not settled in the ledger yet.
    pub files_waiting: Gauge,
    /// Age (by mtime) of the oldest of those, seconds; 0 when none wait.
    pub oldest_waiting_age_seconds: Gauge,
    /// Entries of the latest listing that are never taken, per reason
    /// (`source::ignored`); every reason exported, 0 when none.
    pub files_ignored: LabeledGauge,
    /// Files parked in the ledger (see `ingest::park`), waiting for `retry`.
    pub files_parked: Gauge,
    /// Valid rows dead-lettered because their record exceeds the topic's limit.
    pub oversized_rows: Counter,
    /// Unix time of the last file committed.
    pub last_success_timestamp_seconds: Gauge,
    /// 1 while `/readyz` would answer 200, else 0: alerts see readiness
    /// without probing it. Set at each scrape.
    pub ready: Gauge,
    /// Unix time the process started serving metrics: a restart loop (a
    /// fenced instance, a refused login under a restart policy) shows as
    /// this changing.
    pub process_start_time_seconds: Gauge,
    /// SFTP sessions opened after the first one.
    pub sftp_reconnects: Counter,
    /// In a group: shards assigned to this instance.
    pub group_shards_owned: Gauge,
    /// In a group: transactional producers open, one per shard taken over
    /// with a file within `--group-idle-seconds`.
    pub group_producers_open: Gauge,
    /// In a group: files waiting per shard this instance owns.
    pub group_shard_files_waiting: LabeledGauge,
    /// In a group: files committed per shard by this instance.
    pub group_shard_files_committed: LabeledCounter,
}

impl Metrics {
    /// Every metric at zero.
    pub const fn new() -> Self {
        Metrics {
            files: LabeledCounter::with_labels(&[
                "committed",
                "skipped",
                "conflict",
                "duplicate",
                "failed",
                "retrying",
                "parked",
                "deferred",
                "interrupted",
            ]),
            rows_produced: LabeledCounter::new(),
            invalid_rows: Counter::new(),
            bytes_downloaded: Counter::new(),
            read_ahead: LabeledCounter::with_labels(&["used", "discarded"]),
            transactions: LabeledCounter::with_labels(&["committed", "aborted"]),
            chunk_seconds: Histogram::new(),
            files_waiting: Gauge::new(),
            oldest_waiting_age_seconds: Gauge::new(),
            files_ignored: LabeledGauge::new(),
            files_parked: Gauge::new(),
            oversized_rows: Counter::new(),
            last_success_timestamp_seconds: Gauge::new(),
            ready: Gauge::new(),
            process_start_time_seconds: Gauge::new(),
            sftp_reconnects: Counter::new(),
            group_shards_owned: Gauge::new(),
            group_producers_open: Gauge::new(),
            group_shard_files_waiting: LabeledGauge::new(),
            group_shard_files_committed: LabeledCounter::new(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The process-wide registry.
pub static METRICS: Metrics = Metrics::new();

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value as the text format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labeled(out: &mut String, name: &str, label: &str, help: &str, c: &LabeledCounter) {
    header(out, name, "counter", help);
    for (k, v) in c.snapshot() {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", escape(&k));
    }
}

fn labeled_gauge(out: &mut String, name: &str, label: &str, help: &str, g: &LabeledGauge) {
    header(out, name, "gauge", help);
    for (k, v) in g.snapshot() {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", escape(&k));
    }
}

fn counter(out: &mut String, name: &str, help: &str, c: &Counter) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {}", c.get());
}

fn gauge(out: &mut String, name: &str, help: &str, g: &Gauge) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {}", g.get());
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        labeled(
            &mut out,
            "cdr_files_total",
            "outcome",
            "Files handled, by outcome.",
            &self.files,
        );
        labeled(
            &mut out,
            "cdr_rows_produced_total",
            "topic",
            "Records committed, by topic.",
            &self.rows_produced,
        );
        counter(
            &mut out,
            "cdr_invalid_rows_total",
            "Invalid rows committed to the dead-letter topic.",
            &self.invalid_rows,
        );
        counter(
            &mut out,
            "cdr_bytes_downloaded_total",
            "Bytes copied from the source into staging.",
            &self.bytes_downloaded,
        );
        labeled(
            &mut out,
            "cdr_read_ahead_files_total",
            "outcome",
            "Files downloaded ahead while the one before was produced: used or discarded.",
            &self.read_ahead,
        );
        labeled(
            &mut out,
            "cdr_transactions_total",
            "outcome",
            "Kafka transactions, by outcome.",
            &self.transactions,
        );
        let h = &self.chunk_seconds;
        header(
            &mut out,
            "cdr_chunk_seconds",
            "histogram",
            "Time from a chunk's begin to its commit.",
        );
        let mut cumulative = 0;
        for (bound, n) in CHUNK_BUCKETS.iter().zip(&h.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "cdr_chunk_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = h.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "cdr_chunk_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "cdr_chunk_seconds_sum {sum}");
        let _ = writeln!(out, "cdr_chunk_seconds_count {count}");
        gauge(
            &mut out,
            "cdr_files_waiting",
            "Listed files not settled in the ledger yet.",
            &self.files_waiting,
        );
        gauge(
            &mut out,
            "cdr_oldest_waiting_file_age_seconds",
            "Age of the oldest waiting file (by mtime).",
            &self.oldest_waiting_age_seconds,
        );
        labeled_gauge(
            &mut out,
            "cdr_files_ignored",
            "reason",
            "Entries of the latest listing that are never taken, by reason.",
            &self.files_ignored,
        );
        gauge(
            &mut out,
            "cdr_files_parked",
            "Files parked after repeated transient failures, waiting for `retry`.",
            &self.files_parked,
        );
        counter(
            &mut out,
            "cdr_oversized_rows_total",
            "Valid rows dead-lettered because their record exceeds the topic's size limit.",
            &self.oversized_rows,
        );
        gauge(
            &mut out,
            "cdr_last_success_timestamp_seconds",
            "Unix time of the last committed file.",
            &self.last_success_timestamp_seconds,
        );
        gauge(
            &mut out,
            "cdr_ready",
            "1 while /readyz answers 200 (started, source listed, brokers probed), else 0.",
            &self.ready,
        );
        gauge(
            &mut out,
            "process_start_time_seconds",
            "Unix time the process started serving metrics.",
            &self.process_start_time_seconds,
        );
        counter(
            &mut out,
            "cdr_sftp_reconnects_total",
            "SFTP sessions opened after the first.",
            &self.sftp_reconnects,
        );
        gauge(
            &mut out,
            "cdr_group_shards_owned",
            "Shards assigned to this instance (0 without --group).",
            &self.group_shards_owned,
        );
        gauge(
            &mut out,
            "cdr_group_producers_open",
            "Transactional producers this instance holds open: one per shard with a recent file (0 without --group).",
            &self.group_producers_open,
        );
        labeled_gauge(
            &mut out,
            "cdr_group_shard_files_waiting",
            "shard",
            "Files waiting per shard this instance owns.",
            &self.group_shard_files_waiting,
        );
        labeled(
            &mut out,
            "cdr_group_shard_files_committed_total",
            "shard",
            "Files committed per shard by this instance.",
            &self.group_shard_files_committed,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_renders_cumulative_buckets_and_labels_are_escaped() {
        let m = Metrics::new();
        m.chunk_seconds.observe(Duration::from_millis(3));
        m.chunk_seconds.observe(Duration::from_millis(40));
        m.chunk_seconds.observe(Duration::from_secs(100));
        m.rows_produced.add("a\"b", 2);
        m.rows_produced.add("a\"b", 3);
        let text = m.render();
        assert!(text.contains("cdr_chunk_seconds_bucket{le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("cdr_chunk_seconds_bucket{le=\"0.05\"} 2\n"), "{text}");
        assert!(text.contains("cdr_chunk_seconds_bucket{le=\"30\"} 2\n"), "{text}");
        assert!(text.contains("cdr_chunk_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("cdr_chunk_seconds_count 3\n"));
        assert!(text.contains("cdr_rows_produced_total{topic=\"a\\\"b\"} 5\n"), "{text}");
    }

    #[test]
    fn outcome_series_exist_at_zero_before_their_first_event() {
        let m = Metrics::new();
        m.files.add("committed", 2);
        let text = m.render();
        for series in [
            "cdr_files_total{outcome=\"committed\"} 2\n",
            "cdr_files_total{outcome=\"failed\"} 0\n",
            "cdr_files_total{outcome=\"parked\"} 0\n",
            "cdr_transactions_total{outcome=\"aborted\"} 0\n",
            "cdr_read_ahead_files_total{outcome=\"discarded\"} 0\n",
        ] {
            assert!(text.contains(series), "{series} in {text}");
        }
    }

    #[test]
    fn a_labeled_gauge_exports_only_its_latest_set() {
        let m = Metrics::new();
        m.group_shard_files_waiting
            .replace([("1".to_string(), 4.0), ("7".to_string(), 0.0)]);
        m.group_shard_files_waiting.replace([("7".to_string(), 2.0)]);
        let text = m.render();
        assert!(
            text.contains("cdr_group_shard_files_waiting{shard=\"7\"} 2\n"),
            "{text}"
        );
        assert!(
            !text.contains("cdr_group_shard_files_waiting{shard=\"1\"}"),
            "a shard given up is gone: {text}"
        );
    }
}
