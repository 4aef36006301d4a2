//! The broker goes down in the middle of a file and comes back: the ingest
//! rides it out (aborting and replaying chunks as needed) and every row lands
//! exactly once. Alone in its test binary: it restarts the stack's broker.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

fn stack(cmd: &str) {
    stack_sh(None, &cmd.split(' ').collect::<Vec<_>>());
}

fn high_watermark(topic: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    (0..3)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(5))
                .map(|(_, hi)| hi)
                .unwrap_or(0)
        })
        .sum()
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn broker_restart_mid_file_still_lands_every_row_exactly_once() {
    let topics = Topics::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    let summary = generate_files(
        dir.path(),
        &[
            "--files",
            "1",
            "--rows",
            "100000",
            "--kinds",
            "data",
            "--bad-rate",
            "0.01",
        ],
    );
    let rows = summary["files"][0]["rows"].as_u64().unwrap();

    let mut cmd = bin();
    cmd.args(["once", "--chunk-rows", "5000"]);
    topics.apply(&mut cmd, ledger.path());
    cmd.env("CDR_LOCAL_DIR", dir.path());
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // Wait until part of the file is in, then take the broker away.
    let until = Instant::now() + Duration::from_secs(120);
    while high_watermark(&topics.data) < 10_000 {
        assert!(Instant::now() < until, "ingest never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "ingest ended before the broker restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stack("kafka-stop 1");
    std::thread::sleep(Duration::from_secs(3));
    stack("kafka-start 1");

    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in read_committed(&brokers(), &topics.data)
        .iter()
        .chain(&read_committed(&brokers(), &topics.dlq))
    {
        *counts.entry(r.key.clone()).or_default() += 1;
    }
    assert_eq!(counts.len() as u64, rows, "every row landed");
    assert!(counts.values().all(|&n| n == 1), "no row landed twice");
}
