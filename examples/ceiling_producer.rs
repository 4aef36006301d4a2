//! The ceiling of `scripts/bench.sh`: what a plain librdkafka producer with our
//! producer settings pushes through the broker when it has nothing else to do.
//!
//! ```text
//! ceiling_producer encode DIR RECORDS    # untimed: parse, validate, encode
//! ceiling_producer topics [KAFKA FLAGS]  # untimed: create the topics
//! ceiling_producer produce RECORDS [KAFKA FLAGS]
//! ```
//!
//! `encode` runs the service's own parse, validate and encode over every CSV
//! file in DIR and writes the records exactly as the ingest produces them
//! (which topic, key, value, event-time timestamp, the four `cdr-*` headers)
//! to the local file RECORDS. The Kafka flags and their environment variables
//! are the service's own (`KAFKA_BROKERS`, `CDR_DATA_TOPIC`, ...,
//! `KAFKA_CONFIG_*`): `topics` creates the layout the service would.
//!
//! `produce` reads RECORDS back and sends every record through [`TxnProducer`]
//! with transactions off: a `BaseProducer` built from the service's
//! `producer_config` (idempotent, acks=all, the same partitioner, compression,
//! batch size, linger and queue bounds, and every override), with the
//! delivery callback that counts failures. One flush at the end, no
//! transactions, no ledger, no parsing: only the producer's own work. Prints
//! a JSON line with the records sent and the delivery failures.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use cdr_to_redpanda::config::KafkaArgs;
use cdr_to_redpanda::encode::record::HEADER_NAMES;
use cdr_to_redpanda::encode::{self, FileContext};
use cdr_to_redpanda::parse::{self, CdrReader, Row, Validation};

use cdr_to_redpanda::sink::producer::OutRecord;
use cdr_to_redpanda::sink::topics::{ensure_topics, TopicLayout};
use cdr_to_redpanda::sink::{SinkError, TxnProducer};
use clap::Parser;
use rdkafka::message::{Header, OwnedHeaders};
use sha2::{Digest, Sha256};

/// How far ahead of now an event may be dated, as the service's default
/// (`--max-future-seconds`), so the same rows go to the dead-letter topic.
const MAX_FUTURE_MS: i64 = 3_300_000;

#[derive(clap::Parser)]
enum Cli {
    /// Encodes every CSV file of DIR into the local file RECORDS.
    Encode { dir: PathBuf, records: PathBuf },
    /// Creates the data, voice and dead-letter topics.
    Topics {
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Produces RECORDS, idempotent, without transactions.
    Produce {
        records: PathBuf,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
}

fn main() -> Result<()> {
    match Cli::parse() {
        Cli::Encode { dir, records } => {
            let n = encode_dir(&dir, &records)?;
            println!("{{\"records\": {n}}}");
            Ok(())
        }
        Cli::Topics { kafka } => create_topics(&kafka),
        Cli::Produce { records, kafka } => produce(&records, &kafka),
    }
}

fn create_topics(kafka: &KafkaArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(ensure_topics(&kafka.kafka_config(), &kafka.topics()?))
        .context("creating topics")?;
    Ok(())
}

/// Encodes every CSV file of `dir` (sorted by name) into `records`; returns
/// the record count.
fn encode_dir(dir: &Path, records: &Path) -> Result<u64> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(records)?);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let validation = Validation {
        latest_event_ms: Some(now_ms + MAX_FUTURE_MS),
        ..Validation::default()
    };
    let ts = encode::ingestion_timestamp(chrono::Utc::now());
    // A record's topic is written as its place among the layout's record
    // topics; `produce` maps it back with the topic names it is given.
    let layout = TopicLayout::default();
    let topics = layout.record_topics();
    let place = |topic: &str| topics.iter().position(|t| *t == topic).map(|p| p as u8);
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut row_number = itoa::Buffer::new();
    let mut n = 0u64;
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .context("file name")?
            .to_owned();
        let Some(kind) = layout.kinds.for_file(&name) else {
            continue;
        };
        let own = place(kind.topic()).context("a kind's topic")?;
        let dlq = place(layout.dlq_for(kind)).context("a dead-letter topic")?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let ctx = FileContext::new(&name, kind.clone(), &Sha256::digest(&bytes).into());
        let mut reader = CdrReader::new(kind.clone(), &name, parse::decode(bytes.as_slice())?, &validation)?;
        while let Some(row) = reader.next_row()? {
            let (topic, index, timestamp) = match &row {
                Row::Valid(r) => {
                    encode::write_key(&ctx, r.index, &mut key);
                    encode::write_value(&ctx, r, &ts, &mut value)?;
                    (own, r.index, r.event_time_ms)
                }
                Row::Invalid(r) => {
                    encode::write_key(&ctx, r.index, &mut key);
                    let hv = [&key[..], name.as_bytes(), b"", ctx.sha256_hex().as_bytes()];
                    encode::encode_invalid_row(&ctx, r, "dlq", usize::MAX, &hv, &ts, &mut value)?;
                    (dlq, r.index, i64::MIN)
                }
            };
            out.write_all(&[topic])?;
            out.write_all(&timestamp.to_le_bytes())?;
            let headers: [&[u8]; 4] = [
                &key,
                name.as_bytes(),
                row_number.format(index).as_bytes(),
                ctx.sha256_hex().as_bytes(),
            ];
            for part in [&key[..], &value[..]].into_iter().chain(headers) {
                write_bytes(&mut out, part)?;
            }
            n += 1;
        }
    }
    out.flush()?;
    Ok(n)
}

fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> Result<()> {
    out.write_all(&u32::try_from(bytes.len())?.to_le_bytes())?;
    out.write_all(bytes)?;
    Ok(())
}

/// Reads one length-prefixed field into `buf`; false at a clean end of file.
fn read_bytes(input: &mut impl Read, buf: &mut Vec<u8>) -> Result<bool> {
    let mut len = [0u8; 4];
    if let Err(e) = input.read_exact(&mut len) {
        return if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Ok(false)
        } else {
            Err(e.into())
        };
    }
    buf.resize(u32::from_le_bytes(len) as usize, 0);
    input.read_exact(buf)?;
    Ok(true)
}

fn produce(records: &Path, kafka: &KafkaArgs) -> Result<()> {
    let mut input = BufReader::with_capacity(1 << 20, File::open(records)?);
    let layout = kafka.topics()?;
    // Indexed by the places `encode_dir` wrote.
    let topics = layout.record_topics();
    let mut cfg = kafka.kafka_config();
    cfg.transactions = false;
    let mut producer = TxnProducer::new(&cfg, 0)?;
    producer.begin()?;
    let mut fields: [Vec<u8>; 6] = Default::default();
    let mut n = 0u64;
    let mut head = [0u8; 9];
    loop {
        match input.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        for f in fields.iter_mut() {
            ensure!(read_bytes(&mut input, f)?, "truncated record {n}");
        }
        let [key, value, h @ ..] = &fields;
        let headers = HEADER_NAMES
            .iter()
            .zip(h)
            .fold(OwnedHeaders::new_with_capacity(4), |hs, (name, v)| {
                hs.insert(Header {
                    key: name,
                    value: Some(v.as_slice()),
                })
            });
        let timestamp = i64::from_le_bytes(head[1..].try_into()?);
        producer.send(OutRecord {
            topic: topics.get(usize::from(head[0])).context("topic index")?,
            key,
            value,
            timestamp_ms: (timestamp != i64::MIN).then_some(timestamp),
            partition: None,
            headers: Some(headers),
        })?;
        n += 1;
        // As often as the ingest serves delivery reports.
        if n.is_multiple_of(4096) {
            producer.poll();
        }
    }
    // Flushes and counts the delivery failures; with transactions off there
    // is nothing to commit.
    let failed = match producer.commit() {
        Ok(()) => 0,
        Err(SinkError::Delivery { failed, first, .. }) => {
            eprintln!("delivery failures: {failed}; first: {first}");
            failed
        }
        Err(e) => return Err(e.into()),
    };
    println!("{{\"records\": {n}, \"delivery_failures\": {failed}}}");
    ensure!(failed == 0, "{failed} records not delivered");
    Ok(())
}
