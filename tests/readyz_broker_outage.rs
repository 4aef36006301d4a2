//! Readiness follows the brokers, and startup waits for them: the daemon is
//! started while its only broker is down, waits (alive, not ready), goes
//! ready when the broker comes up, ingests, and turns not ready again when
//! the broker goes away; a shutdown that cannot commit (the broker is gone)
//! ends at the shutdown deadline with exit 1. Runs a private one-broker stack of its own (no
//! sshd: a local-directory source), and is alone in its test binary because
//! it stops brokers.

mod common;
mod daemon_support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use daemon_support::*;

fn wait_status(d: &mut Daemon, path: &str, want: u16, limit: Duration) {
    let until = Instant::now() + limit;
    loop {
        if d.get(path).map(|r| r.0) == Some(want) {
            return;
        }
        assert!(
            Instant::now() < until,
            "{path} never answered {want} within {limit:?}:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn spawn(brokers: &str, dir: &Path, work: &Path) -> Daemon {
    let topics = Topics::new();
    let mut cmd = bin();
    cmd.args(["run", "--shutdown-timeout-seconds", "3", "--local-dir"])
        .arg(dir);
    topics.apply(&mut cmd, &work.join("ledger"));
    cmd.env("KAFKA_BROKERS", brokers);
    Daemon::spawn(cmd, work, "daemon")
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn readyz_follows_the_broker_and_a_shutdown_stuck_on_it_ends_at_the_deadline() {
    // Fails loudly without the toolchain scripts/test.sh provides.
    env("KAFKA_BROKERS");
    let stack = PrivateStack::up(&["--no-sftp"]);
    let brokers = stack.brokers();
    stack.sh(&["kafka-stop", "1"]);

    let work = tempfile::tempdir().unwrap();
    let files = work.path().join("in");
    std::fs::create_dir_all(&files).unwrap();
    let mut d = spawn(&brokers, &files, work.path());
    d.wait_log(&format!("waiting for the brokers {brokers}"), Duration::from_secs(30));
    wait_status(&mut d, "/healthz", 200, Duration::from_secs(5));
    let (status, why) = d.get("/readyz").unwrap();
    assert_eq!(status, 503);
    assert!(why.contains("starting"), "{why}");

    stack.sh(&["kafka-start", "1"]);
    d.wait_log("running", Duration::from_secs(90));
    wait_status(&mut d, "/readyz", 200, Duration::from_secs(10));
    generate(&files, 1, 100, 5, "2024-09-01T00:00:00", 0.0);
    d.wait_metrics("two files committed", Duration::from_secs(60), |m| {
        metric(m, "cdr_files_total{outcome=\"committed\"}") >= 2.0
    });

    stack.sh(&["kafka-kill", "1"]);
    wait_status(&mut d, "/readyz", 503, Duration::from_secs(15));
    assert!(d.get("/readyz").unwrap().1.contains("brokers"));
    assert_eq!(d.get("/healthz").map(|r| r.0), Some(200), "still alive");

    // A file whose chunk cannot commit: SIGTERM waits for it only until
    // the deadline, then exits 1 (recovery settles it at the next start).
    generate(&files, 1, 100, 6, "2024-09-02T00:00:00", 0.0);
    d.wait_line(&["ingest started", "cdr_data_20240902"], Duration::from_secs(30));
    let signalled = Instant::now();
    d.signal("TERM");
    let status = d.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{}", d.log_text());
    assert!(signalled.elapsed() < Duration::from_secs(10));
    assert!(d.log_text().contains("shutdown deadline passed"), "{}", d.log_text());
    // The outage's connection failures, reported by librdkafka through both
    // its log and its error callback at every reconnect: each said once.
    let log = d.log_text();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("librdkafka") && l.contains("Connection refused"))
        .collect();
    assert!(!refused.is_empty(), "the outage is logged:\n{log}");
    let mut said = std::collections::BTreeSet::new();
    for line in refused {
        // `<broker thread>: Connect to <address> failed`
        let start = line.find("127.0.0.1:").unwrap();
        let failure = line[start..].split(" (after ").next().unwrap();
        let failure = failure.split_once("]: ").map_or(failure, |(_, f)| f);
        assert!(said.insert(failure.to_owned()), "said twice: {failure}\n{log}");
    }
}
