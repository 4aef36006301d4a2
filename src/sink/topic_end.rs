//! Reading a topic to its end while other writers commit to it in
//! transactions (every instance of a group, or anyone else).
//!
//! A read_committed client sees a partition end at its last stable offset:
//! the first offset of the oldest transaction still open. The broker answers
//! that same offset as the high watermark to such a client, so a partition
//! whose first record belongs to an open transaction looks empty although
//! committed records lie behind it, and a read stops short of them. Every
//! read that decides what is done therefore:
//! 1. takes each partition's log end from a read_uncommitted client
//!    ([`log_ends`]);
//! 2. waits until each partition's stable offset has passed that end, i.e.
//!    until every transaction open at the start has ended, and fails when
//!    that does not happen in time ([`wait_stable`]): a partial read would
//!    pass for a complete one;
//! 3. reads with read_committed until every partition reported its end
//!    ([`read_to_end`]).

use super::client_log::Logged;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::client_log;
use super::producer::KafkaConfig;

/// Where one partition's log ends, transactions still open included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionEnd {
    /// The partition.
    pub partition: i32,
    /// The offset after the last record written so far.
    pub end: i64,
}

/// Why a read to the end did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EndError {
    /// The cluster refused or did not answer a request.
    #[error("{what} of topic {topic}: {source}")]
    Kafka {
        /// What was asked.
        what: &'static str,
        /// The topic read.
        topic: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// A transaction open at the start did not end in time: a read now could
    /// miss records committed behind it.
    #[error(
        "topic {topic} partition {partition}: a transaction of another writer was still open after {waited:?} \
         (stable offset {stable} behind the log end {end}); reading now could miss committed records"
    )]
    Unsettled {
        /// The topic read.
        topic: String,
        /// The partition whose transaction stayed open.
        partition: i32,
        /// Its last stable offset when the wait ended.
        stable: i64,
        /// Its log end when the read began.
        end: i64,
        /// How long the read waited.
        waited: Duration,
    },
    /// Neither a record nor a partition's end came for this long.
    #[error("reading topic {topic} made no progress for {waited:?} with {open} partition(s) not read to their end")]
    Stalled {
        /// The topic read.
        topic: String,
        /// How long nothing came.
        waited: Duration,
        /// Partitions whose end was not reached.
        open: usize,
    },
}

impl EndError {
    /// The error of a failed `what` on `topic`, from the client's error.
    pub fn kafka<'a>(what: &'static str, topic: &'a str) -> impl Fn(KafkaError) -> EndError + 'a {
        move |source| EndError::Kafka {
            what,
            topic: topic.to_string(),
            source,
        }
    }
}

/// Context of consumers that read topics to their end: they ask for an
/// end-of-partition event per partition, which librdkafka also reports as a
/// client error; logging those would cry wolf at every read.
pub struct ReadToEndContext;

impl ClientContext for ReadToEndContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            client_log::client_error("reading to the end", &error, reason);
        }
    }
}

impl ConsumerContext for ReadToEndContext {}

/// The log end of every non-empty partition of `topic`, as a read_uncommitted
/// client sees it (records of open transactions included). An absent topic
/// has none.
pub fn log_ends(cfg: &KafkaConfig, topic: &str, timeout: Duration) -> Result<Vec<PartitionEnd>, EndError> {
    let kerr = |what| EndError::kafka(what, topic);
    let uncommitted: BaseConsumer<Logged> = cfg
        .client_config()
        .set("isolation.level", "read_uncommitted")
        .create_with_context(Logged)
        .map_err(kerr("creating a read_uncommitted client"))?;
    let md = uncommitted
        .fetch_metadata(Some(topic), timeout)
        .map_err(kerr("reading the layout"))?;
    let mut ends = Vec::new();
    for t in md.topics().iter().filter(|t| t.name() == topic && t.error().is_none()) {
        for p in t.partitions() {
            let (low, end) = uncommitted
                .fetch_watermarks(topic, p.id(), timeout)
                .map_err(kerr("reading the log end"))?;
            if end > low {
                ends.push(PartitionEnd { partition: p.id(), end });
            }
        }
    }
    Ok(ends)
}

/// Waits until the last stable offset of each of `ends`, as the read_committed
/// client `committed` is told it, reaches the log end taken before: then every
/// transaction that was open has committed or aborted, and a read_committed
/// read to the end sees all that was committed by then. Failed requests are
/// retried until `deadline`; a partition not settled by then fails the read.
pub fn wait_stable<C: ConsumerContext>(
    committed: &BaseConsumer<C>,
    topic: &str,
    ends: &[PartitionEnd],
    deadline: Instant,
) -> Result<(), EndError> {
    let started = Instant::now();
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100))
    };
    let mut told = false;
    for e in ends {
        loop {
            let last = committed.fetch_watermarks(topic, e.partition, left());
            let stable = match last {
                Ok((_, stable)) if stable >= e.end => break,
                Ok((_, stable)) => stable,
                // A leader moving or a broker restarting fails a request now
                // and then.
                Err(source) if Instant::now() >= deadline => {
                    return Err(EndError::kafka("reading the stable offset", topic)(source))
                }
                Err(_) => -1,
            };
            if Instant::now() >= deadline {
                return Err(EndError::Unsettled {
                    topic: topic.to_string(),
                    partition: e.partition,
                    stable,
                    end: e.end,
                    waited: started.elapsed(),
                });
            }
            if !told && stable >= 0 {
                told = true;
                tracing::info!(
                    topic,
                    partition = e.partition,
                    stable,
                    end = e.end,
                    "waiting for transactions of other writers to end before reading to the end"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// Reads `ends`' partitions of `topic` from their beginning with the
/// read_committed consumer `consumer` (made with `enable.partition.eof`)
/// until each reported its end, handing every record to `each`. Call
/// [`wait_stable`] first: then no end comes before the log end taken at the
/// start. The consumer must read this one topic alone, since an end event
/// names only its partition. Fails when nothing comes for `idle`.
pub fn read_to_end<C, E>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    ends: &[PartitionEnd],
    idle: Duration,
    mut each: impl FnMut(&BorrowedMessage<'_>) -> Result<(), E>,
) -> Result<(), E>
where
    C: ConsumerContext,
    E: From<EndError>,
{
    let kerr = |what| EndError::kafka(what, topic);
    let mut open: HashSet<i32> = ends.iter().map(|e| e.partition).collect();
    if open.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for p in &open {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .map_err(kerr("assigning partitions"))?;
    }
    consumer.assign(&tpl).map_err(kerr("assigning partitions"))?;
    let mut last_progress = Instant::now();
    while !open.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            None => {
                if last_progress.elapsed() > idle {
                    return Err(EndError::Stalled {
                        topic: topic.to_string(),
                        waited: idle,
                        open: open.len(),
                    }
                    .into());
                }
                continue;
            }
            // Records written after the end come with a later end event of
            // the same partition: the set counts each partition once.
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => return Err(kerr("reading")(e).into()),
            Some(Ok(m)) => each(&m)?,
        }
        last_progress = Instant::now();
    }
    Ok(())
}
