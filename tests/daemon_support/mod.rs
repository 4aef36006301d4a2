//! Drives the real `run` daemon for the operations tests: spawn it with the
//! local stack's settings, read its log, scrape its HTTP endpoints, signal it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cdr_to_redpanda::metrics::probe;

use crate::common::*;

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
    pub metrics: String,
}

impl Daemon {
    /// `run` with `cmd`'s environment, the metrics server on a free port,
    /// a poll a second unless `cmd` sets its own, and its log in `log_dir`.
    pub fn spawn(mut cmd: Command, log_dir: &Path, tag: &str) -> Daemon {
        let port = free_port();
        let log = log_dir.join(format!("{tag}.log"));
        let file = std::fs::File::create(&log).unwrap();
        if !cmd.get_args().any(|a| a == "--poll-interval-seconds") {
            cmd.args(["--poll-interval-seconds", "1"]);
        }
        cmd.args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(file);
        let child = cmd.spawn().unwrap();
        Daemon {
            child,
            log,
            metrics: format!("http://127.0.0.1:{port}"),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&mut self, needle: &str, limit: Duration) {
        let until = Instant::now() + limit;
        while !self.log_text().contains(needle) {
            if let Some(s) = self.child.try_wait().unwrap() {
                panic!("daemon exited ({s}) before logging {needle:?}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < until,
                "no {needle:?} in the log within {limit:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until one log line contains every one of `needles` (fields are
    /// ANSI-styled in the text format, so `key=value` is not matched whole).
    pub fn wait_line(&mut self, needles: &[&str], limit: Duration) {
        let until = Instant::now() + limit;
        while !self.log_text().lines().any(|l| needles.iter().all(|n| l.contains(n))) {
            if let Some(s) = self.child.try_wait().unwrap() {
                panic!("daemon exited ({s}) before logging {needles:?}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < until,
                "no {needles:?} in the log within {limit:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET a path of the daemon's HTTP endpoint; None if it does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        probe::get(&format!("{}{path}", self.metrics), Duration::from_secs(5)).ok()
    }

    /// The scraped metrics as `name{labels}` -> value.
    pub fn scrape(&self) -> BTreeMap<String, f64> {
        let (status, body) = self.get("/metrics").expect("metrics endpoint answers");
        assert_eq!(status, 200);
        parse_metrics(&body)
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the exit, killing the daemon (and failing) after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let until = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!("daemon did not exit within {limit:?}:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls until `f(metrics)` holds.
    pub fn wait_metrics(&mut self, what: &str, limit: Duration, f: impl Fn(&BTreeMap<String, f64>) -> bool) {
        let until = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                panic!("daemon exited ({s}) while waiting for {what}:\n{}", self.log_text());
            }
            if self.get("/metrics").is_some() && f(&self.scrape()) {
                return;
            }
            assert!(
                Instant::now() < until,
                "{what}: not within {limit:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn parse_metrics(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

pub fn metric(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

/// Writes generated files into `dir`; returns the generator's summary.
pub fn generate(dir: &Path, files: u32, rows: u64, seed: u64, start: &str, bad_rate: f64) -> serde_json::Value {
    let out = bin()
        .args(["generate", "--out"])
        .arg(dir)
        .args([
            "--files",
            &files.to_string(),
            "--rows",
            &rows.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(["--start", start, "--bad-rate", &bad_rate.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Asserts that the data, voice and dead-letter topics hold every expected
/// key exactly once (read_committed), and nothing else.
pub fn assert_exactly_once(topics: &Topics, dir: &Path) {
    assert_exactly_once_on(&brokers(), topics, dir)
}

/// `assert_exactly_once` on the cluster at `brokers`.
pub fn assert_exactly_once_on(brokers: &str, topics: &Topics, dir: &Path) {
    assert_exactly_once_with(brokers, &[], topics, dir)
}

/// `assert_exactly_once_on`, reading with these client settings.
pub fn assert_exactly_once_with(brokers: &str, settings: &[(String, String)], topics: &Topics, dir: &Path) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in [&topics.data, &topics.voice, &topics.dlq] {
        for r in read_committed_with(brokers, settings, t) {
            *counts.entry(r.key).or_default() += 1;
        }
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dups.is_empty(), "duplicated keys: {dups:?}");
    let expected = expected_keys(dir);
    let got: std::collections::BTreeSet<String> = counts.into_keys().collect();
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
}

/// `status --json` of a ledger.
pub fn status_json(ledger: &Path) -> serde_json::Value {
    let out = bin()
        .args(["status", "--json", "--ledger-dir"])
        .arg(ledger)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}
