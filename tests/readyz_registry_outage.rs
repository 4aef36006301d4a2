//! A registry that is down at start is waited out like the brokers: the
//! daemon stays alive and not ready (`/readyz` 503) until the registry
//! answers, then registers its schemas and ingests. With the ids learned, a
//! registry outage does not stop ingestion. Runs a registry of its own
//! (a private stack with nothing else), which it stops and starts.

mod common;
mod daemon_support;

use std::time::{Duration, Instant};

use common::*;
use daemon_support::*;

fn wait_status(d: &mut Daemon, path: &str, want: u16, limit: Duration) {
    let until = Instant::now() + limit;
    while d.get(path).map(|r| r.0) != Some(want) {
        assert!(
            Instant::now() < until,
            "{path} never answered {want} within {limit:?}:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn the_daemon_waits_for_the_registry_then_ingests_and_an_outage_later_does_not_stop_it() {
    env("KAFKA_BROKERS");
    let stack = PrivateStack::up(&["--no-kafka", "--no-sftp", "--schema-registry"]);
    let registry = stack.env_var("SCHEMA_REGISTRY_URL");
    stack.sh(&["registry-stop"]);

    let topics = Topics::new();
    let work = tempfile::tempdir().unwrap();
    let files = work.path().join("in");
    std::fs::create_dir_all(&files).unwrap();
    let mut cmd = bin();
    cmd.args(["run", "--local-dir"]).arg(&files);
    topics.apply(&mut cmd, &work.path().join("ledger"));
    cmd.env("CDR_FORMAT", "avro").env("SCHEMA_REGISTRY_URL", &registry);
    let mut d = Daemon::spawn(cmd, work.path(), "daemon");

    d.wait_log("waiting for the schema registry", Duration::from_secs(60));
    let (status, why) = d.get("/readyz").unwrap();
    assert_eq!(status, 503, "not ready while the registry is down: {why}");
    assert_eq!(d.get("/healthz").map(|r| r.0), Some(200), "alive");

    stack.sh(&["registry-start"]);
    d.wait_log("running", Duration::from_secs(90));
    wait_status(&mut d, "/readyz", 200, Duration::from_secs(10));
    generate(&files, 1, 100, 7, "2024-10-01T00:00:00", 0.0);
    d.wait_metrics("two files committed", Duration::from_secs(60), |m| {
        metric(m, "cdr_files_total{outcome=\"committed\"}") >= 2.0
    });

    // Ids are cached: the registry gone, files still land.
    stack.sh(&["registry-stop"]);
    generate(&files, 1, 100, 8, "2024-10-02T00:00:00", 0.0);
    d.wait_metrics("four files committed", Duration::from_secs(60), |m| {
        metric(m, "cdr_files_total{outcome=\"committed\"}") >= 4.0
    });
    assert_exactly_once(&topics, &files);
    let data = read_committed(&brokers(), &topics.data);
    assert_eq!(data.len(), 200);
    assert!(data.iter().all(|r| r.value[0] == 0), "Confluent-framed Avro values");
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(30)).code(), Some(0), "{}", d.log_text());
}
