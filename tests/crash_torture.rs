//! Crash torture: the real binary is killed again and again (SIGKILL at
//! random moments, aborts at every failpoint between durable steps, the
//! ledger deleted now and then) while it ingests over the real sshd into the
//! real broker. At the end every row of every file is in Kafka exactly once.
//!
//! Run with the `json` values of the Python streamer and again with `avro`
//! values under the real schema registry (decoded at the end by fastavro).
//! CDR_TORTURE_KILLS sets how many kills (default 50 with json, 20 with
//! avro; try 500 for a long run).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};

fn spawn_once(topics: &Topics, format: &str, remote: &str, ledger: &Path, failpoints: Option<String>) -> Child {
    let mut cmd = bin();
    cmd.args(["once", "--chunk-rows", "150", "--format", format]);
    topics.apply(&mut cmd, ledger);
    if format == "avro" {
        cmd.env("SCHEMA_REGISTRY_URL", env("SCHEMA_REGISTRY_URL"));
    }
    sftp_key_env(&mut cmd, remote);
    match failpoints {
        Some(f) => cmd.env("CDR_FAILPOINTS", f),
        None => cmd.env_remove("CDR_FAILPOINTS"),
    };
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

fn wait_max(child: &mut Child, limit: Duration) -> ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("ingest run did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn generate_batch(dir: &Path, batch: u32, invalid: &mut u64) {
    // Each batch starts a day later, so names never collide (calendar
    // arithmetic: a long run makes more than 28 batches).
    let start = (chrono::NaiveDate::from_ymd_opt(2024, 2, 1).unwrap() + chrono::Days::new(batch.into()))
        .format("%Y-%m-%dT00:00:00")
        .to_string();
    let seed = (1000 + batch).to_string();
    let summary = generate_files(
        dir,
        &[
            "--files",
            "2",
            "--rows",
            "900",
            "--bad-rate",
            "0.03",
            "--start",
            &start,
            "--seed",
            &seed,
        ],
    );
    for f in summary["files"].as_array().unwrap() {
        *invalid += f["invalid_rows"].as_u64().unwrap();
    }
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn repeated_sigkills_and_failpoint_aborts_never_lose_or_duplicate_a_row() {
    torture("json", 50);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn repeated_sigkills_and_failpoint_aborts_never_lose_or_duplicate_an_avro_row() {
    let (topics, data) = torture("avro", 20);
    let values: Vec<&[u8]> = data.iter().map(|r| &r.value[..]).collect();
    let decoded = avro_decode(&env("SCHEMA_REGISTRY_URL"), &values);
    assert_eq!(decoded.len(), data.len());
    assert!(decoded.iter().all(|d| d["record"]["_record_type"] == "data"));
    let ids: BTreeSet<u64> = decoded.iter().map(|d| d["schema_id"].as_u64().unwrap()).collect();
    assert_eq!(
        ids.len(),
        1,
        "one schema across every crash and restart: {ids:?} ({})",
        topics.data
    );
}

/// Tortures ingests writing `format` values; returns the topics and the
/// data topic's records.
fn torture(format: &str, default_kills: u32) -> (Topics, Vec<Seen>) {
    let target: u32 = std::env::var("CDR_TORTURE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_kills);
    let seed: u64 = std::env::var("CDR_TORTURE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("torture seed {seed} (set CDR_TORTURE_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("torture"));
    let ledger_root = tempfile::tempdir().unwrap();
    let ledger = ledger_root.path().join("ledger");
    let mut invalid = 0u64;
    let mut batch = 0;
    generate_batch(&local, batch, &mut invalid);

    let mut kills = 0u32;
    let mut by_point: BTreeMap<String, u32> = BTreeMap::new();
    let mut runs = 0u32;
    while kills < target {
        runs += 1;
        assert!(runs < target * 4 + 20, "too many runs without being killed");
        if runs.is_multiple_of(12) {
            // The ledger is lost: recovery rebuilds what it needs from the checkpoint topic.
            let _ = std::fs::remove_dir_all(&ledger);
        }
        let (mut child, how) = if rng.random_bool(0.6) {
            let point = cdr_to_redpanda::failpoint::ALL[rng.random_range(0..cdr_to_redpanda::failpoint::ALL.len())];
            let nth = rng.random_range(1..=4);
            (
                spawn_once(&topics, format, &remote, &ledger, Some(format!("{point}={nth}"))),
                point.to_string(),
            )
        } else {
            let child = spawn_once(&topics, format, &remote, &ledger, None);
            (child, "sigkill".to_string())
        };
        let status = if how == "sigkill" {
            std::thread::sleep(Duration::from_millis(rng.random_range(100..2500)));
            let _ = child.kill();
            wait_max(&mut child, Duration::from_secs(60))
        } else {
            wait_max(&mut child, Duration::from_secs(180))
        };
        if status.success() {
            // Everything so far is in: drop more files so there is work to crash in.
            batch += 1;
            generate_batch(&local, batch, &mut invalid);
        } else if status.code().is_none() {
            kills += 1;
            *by_point.entry(how).or_default() += 1;
        } else {
            panic!("ingest exited with {status} (not a crash) on run {runs}");
        }
    }
    eprintln!("{kills} kills in {runs} runs: {by_point:?}");

    // A last clean run finishes whatever the last crash interrupted.
    let mut clean = spawn_once(&topics, format, &remote, &ledger, None);
    let status = wait_max(&mut clean, Duration::from_secs(300));
    assert!(status.success(), "final clean run failed: {status}");

    let data = read_committed(&brokers(), &topics.data);
    let voice = read_committed(&brokers(), &topics.voice);
    let dlq = read_committed(&brokers(), &topics.dlq);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in data.iter().chain(&voice).chain(&dlq) {
        *counts.entry(r.key.clone()).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dups.is_empty(), "duplicated keys: {dups:?}");
    let expected = expected_keys(&local);
    let got: BTreeSet<String> = counts.into_keys().collect();
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    assert_eq!(dlq.len() as u64, invalid);

    // The service's own audit agrees with this independent check.
    let mut audit = bin();
    audit.arg("audit");
    topics.apply(&mut audit, &ledger);
    let out = audit.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "audit after the torture: {}",
        output_text(&out)
    );
    (topics, data)
}
