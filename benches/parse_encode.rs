//! Throughput of the hot path, one thread: parse + validate + encode (key and
//! value) over ~100 MB of data rows and ~100 MB of voice rows held in memory.
//!
//! `cargo bench --bench parse_encode` (release profile). The target is at least
//! 500 MB/s of CSV per core. Each kind is measured in each output format
//! (`json`, `json-typed`, `avro`; the avro value framed with a dummy schema
//! id), side by side in one run; the value bytes per row are printed too. `CDR_BENCH_MB` sets the input size per kind (100),
//! `CDR_BENCH_RUNS` the runs of which the best is reported (3).
//!
//! Besides wall-clock time it reports the thread's own CPU time (Linux
//! `/proc/thread-self/schedstat`): on a shared machine the wall clock also
//! counts the time other processes had the core, CPU time does not.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cdr_to_redpanda::encode::{self, FileContext, ValueFormat};
use cdr_to_redpanda::parse::{CdrReader, Row, Validation};
use cdr_to_redpanda::schema::{self, RecordKind};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn main() {
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (mb, n_runs) = (env("CDR_BENCH_MB", 100), env("CDR_BENCH_RUNS", 3));
    for kind in [schema::data(), schema::voice()] {
        let input = generate(&kind, mb << 20);
        let formats = [
            ValueFormat::json(),
            ValueFormat::json_typed(&kind, 0),
            ValueFormat::avro(&kind, 0, 1),
        ];
        for format in formats {
            let name = format!("{kind} {}", format.format());
            let runs: Vec<Run> = (0..n_runs).map(|_| run(kind.clone(), &format, &input)).collect();
            let best = |f: fn(&Run) -> Option<Duration>| runs.iter().filter_map(f).min();
            let mb = input.len() as f64 / 1e6;
            let (rows, value_bytes) = runs.first().map_or((0, 0), |r| (r.rows, r.value_bytes));
            for (clock, time) in [("wall", best(|r| Some(r.wall))), ("cpu", best(|r| r.cpu))] {
                let Some(time) = time else { continue };
                let secs = time.as_secs_f64();
                println!(
                    "{name:>16} ({clock:>4}): {mb:.1} MB, {rows} rows in {secs:.3} s (best of {n_runs}): {:.0} MB/s, {:.2} M rows/s, {:.1} value bytes/row",
                    mb / secs,
                    rows as f64 / 1e6 / secs,
                    value_bytes as f64 / rows.max(1) as f64,
                );
            }
        }
    }
}

struct Run {
    wall: Duration,
    cpu: Option<Duration>,
    rows: u64,
    value_bytes: usize,
}

/// CPU time of the calling thread so far, where Linux tells it.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Reads every row, encoding keys and values as the ingest loop does.
fn run(kind: RecordKind, format: &ValueFormat, input: &[u8]) -> Run {
    let ctx = FileContext::new("cdr_bench_20240101_000000.csv", kind.clone(), &[7; 32]).with_format(format.clone());
    let ts = encode::ingestion_timestamp(chrono::Utc::now());
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut out_bytes = 0usize;
    let mut value_bytes = 0usize;
    let mut invalid = 0u64;
    let cpu_start = thread_cpu_time();
    let start = Instant::now();
    let mut reader = match CdrReader::new(kind, "bench.csv", input, &Validation::default()) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    loop {
        match reader.next_row() {
            Ok(Some(Row::Valid(row))) => {
                encode::write_key(&ctx, row.index, &mut key);
                encode::write_value(&ctx, &row, &ts, &mut value).expect("generated values fit every format");
                value_bytes += value.len();
            }
            Ok(Some(Row::Invalid(row))) => {
                invalid += 1;
                encode::write_key(&ctx, row.index, &mut key);
                let hv = [&key[..], ctx.file_name().as_bytes(), b"", ctx.sha256_hex().as_bytes()];
                encode::encode_invalid_row(&ctx, &row, "dlq", usize::MAX, &hv, &ts, &mut value).unwrap();
            }
            Ok(None) => break,
            Err(e) => panic!("{e}"),
        }
        out_bytes += black_box(&key).len() + black_box(&value).len();
    }
    let wall = start.elapsed();
    let cpu = thread_cpu_time().zip(cpu_start).map(|(end, start)| end - start);
    black_box(out_bytes);
    assert_eq!(invalid, 0, "generated rows must all be valid");
    Run {
        wall,
        cpu,
        rows: reader.rows_read(),
        value_bytes,
    }
}

/// About `bytes` of CSV shaped like the contract's examples.
fn generate(kind: &RecordKind, bytes: usize) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(42);
    let mut out = Vec::with_capacity(bytes + 256);
    out.extend_from_slice(kind.header().as_bytes());
    out.push(b'\n');
    let mut secs = 1_704_067_200i64; // 2024-01-01 00:00:00
    let urls = [
        "http://example.com",
        "https://www.example.org/search?q=cdr",
        "http://news.example.net/a/b/c.html",
    ];
    while out.len() < bytes {
        secs += rng.random_range(0..3);
        let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
        let ts = format!(
            "{}.{:06}",
            t.format("%Y-%m-%d %H:%M:%S"),
            rng.random_range(0..1_000_000)
        );
        let msisdn = rng.random_range(1_000_000_000_000u64..10_000_000_000_000);
        let tower = rng.random_range(1..5000);
        let line = match kind.as_str() {
            "data" => format!(
                "{msisdn},{tower},{},{},{},{}.{}.{}.{},{},{ts}\n",
                rng.random_range(0..2_000_000),
                rng.random_range(0..2_000_000),
                ["application", "text", "image", "video"][rng.random_range(0..4)],
                rng.random_range(1..256),
                rng.random_range(0..256),
                rng.random_range(0..256),
                rng.random_range(1..256),
                urls[rng.random_range(0..urls.len())],
            ),
            _ => format!(
                "{msisdn},{tower},{},{},{},{ts}\n",
                ["voice", "video"][rng.random_range(0..2)],
                rng.random_range(1_000_000_000_000u64..10_000_000_000_000),
                rng.random_range(0..3600),
            ),
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}
