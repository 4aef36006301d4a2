//! Audit throughput next to ingest throughput, on the local stack.
//!
//! Generates CDR files (1 % bad rows), ingests them with the release binary
//! into fresh topics, audits them, and prints both rates in records/s.
//!
//! ```sh
//! eval "$(scripts/stack.sh env)"
//! cargo build --release --bin cdr-to-redpanda
//! cargo run --release --example audit_bench -- [ROWS] [FILES]   # default 1000000 rows in 10 files
//! ```
//!
//! `CDR_BIN` overrides the binary (default `target/release/cdr-to-redpanda`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("audit_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args
        .next()
        .map_or(Ok(1_000_000), |a| a.parse())
        .map_err(|e| format!("ROWS: {e}"))?;
    let files: u64 = args
        .next()
        .map_or(Ok(10), |a| a.parse())
        .map_err(|e| format!("FILES: {e}"))?;
    let brokers =
        std::env::var("KAFKA_BROKERS").map_err(|_| "KAFKA_BROKERS is not set: eval \"$(scripts/stack.sh env)\"")?;
    let bin = std::env::var_os("CDR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/cdr-to-redpanda"));
    if !bin.exists() {
        return Err(format!(
            "{} missing: cargo build --release --bin cdr-to-redpanda",
            bin.display()
        ));
    }
    let work = std::env::temp_dir().join(format!("cdr-audit-bench-{}", std::process::id()));
    let (dir, ledger) = (work.join("files"), work.join("ledger"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let base = format!("bench-audit-{}-{}", std::process::id(), epoch_secs());
    let result = bench(&bin, &brokers, &base, &dir, &ledger, rows, files);
    let _ = std::fs::remove_dir_all(&work);
    // The topics hold gigabytes at 10M rows: give the space back.
    if let Err(e) = delete_topics(&brokers, &base) {
        eprintln!("audit_bench: topics {base}-* not deleted: {e}");
    }
    result
}

fn delete_topics(brokers: &str, base: &str) -> Result<(), String> {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = ["data", "voice", "dlq", "ckpt"]
        .iter()
        .map(|t| format!("{base}-{t}"))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(admin.delete_topics(&names, &AdminOptions::new()))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn bench(
    bin: &Path,
    brokers: &str,
    base: &str,
    dir: &Path,
    ledger: &Path,
    rows: u64,
    files: u64,
) -> Result<(), String> {
    // `generate --files N` writes N data and N voice files.
    let pairs = (files / 2).max(1);
    let per_file = rows.div_ceil(pairs * 2);
    let out = Command::new(bin)
        .args(["generate", "--bad-rate", "0.01", "--seed", "42", "--out"])
        .arg(dir)
        .args(["--files", &pairs.to_string(), "--rows", &per_file.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    check(&out, "generate")?;
    let total = per_file * pairs * 2;

    let with_env = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.args(args)
            .env("KAFKA_BROKERS", brokers)
            .env("CDR_LOCAL_DIR", dir)
            .env("CDR_LEDGER_DIR", ledger)
            .env("CDR_DATA_TOPIC", format!("{base}-data"))
            .env("CDR_VOICE_TOPIC", format!("{base}-voice"))
            .env("CDR_DLQ_TOPIC", format!("{base}-dlq"))
            .env("CDR_CHECKPOINT_TOPIC", format!("{base}-ckpt"))
            .env("CDR_TRANSACTIONAL_ID_PREFIX", base)
            .env("CDR_TOPIC_PARTITIONS", "12")
            .env("CDR_TOPIC_REPLICATION", "1")
            .env("CDR_SETTLE_SECONDS", "0")
            .env("CDR_MIN_AGE_SECONDS", "0")
            .env("RUST_LOG", "warn");
        c
    };
    println!("{total} rows in {} files", pairs * 2);

    let started = Instant::now();
    let out = with_env(&["once"]).output().map_err(|e| e.to_string())?;
    check(&out, "ingest")?;
    let ingest_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let out = with_env(&["audit", "--json"]).output().map_err(|e| e.to_string())?;
    let audit_secs = started.elapsed().as_secs_f64();
    check(&out, "audit")?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("audit report: {e}"))?;
    let s = &report["summary"];
    let scanned = s["records_scanned"].as_u64().unwrap_or(0);
    if scanned != total {
        return Err(format!("audit scanned {scanned} records, {total} were ingested"));
    }
    println!(
        "ingest: {total} records in {ingest_secs:.2} s = {:.0} records/s (once, transactions, SHA-256, parse, validate)",
        total as f64 / ingest_secs
    );
    println!(
        "audit:  {scanned} records in {audit_secs:.2} s = {:.0} records/s end to end (topic scan alone: {:.2} s = {:.0} records/s)",
        scanned as f64 / audit_secs,
        s["scan_seconds"].as_f64().unwrap_or(0.0),
        s["records_per_second"].as_f64().unwrap_or(0.0)
    );
    Ok(())
}

fn check(out: &std::process::Output, what: &str) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Seconds since the epoch, to keep topic names unique across runs.
fn epoch_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
