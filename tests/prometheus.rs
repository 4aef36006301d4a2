//! The dashboard and the alerts, proven against a real Prometheus (Debian's
//! package, installed by scripts/bootstrap.sh) scraping a live daemon on the
//! real broker and sshd: every query of every panel of the Grafana dashboard
//! returns series (a metric name with a typo returns none), the alerting
//! rules pass `promtool check rules` and their unit tests, and an alert
//! fires when its condition is provoked.

mod common;
mod daemon_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use daemon_support::*;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rules() -> PathBuf {
    repo().join("deploy/prometheus/alerts.yml")
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let check = Command::new("promtool").arg("check").arg("rules").arg(rules()).output();
    let check = check.expect("promtool (Debian's prometheus package): run scripts/bootstrap.sh");
    assert!(check.status.success(), "{}", output_text(&check));
    let test = Command::new("promtool")
        .args(["test", "rules", "alerts.test.yml"])
        .current_dir(repo().join("deploy/prometheus"))
        .output()
        .unwrap();
    assert!(test.status.success(), "{}", output_text(&test));
}

/// Every query of the dashboard, with its variables bound for a query here.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("deploy/grafana/cdr-to-redpanda.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let bound = expr
                    .replace("$job", "cdr-to-redpanda")
                    .replace("$__rate_interval", "30s");
                out.push((panel["title"].as_str().unwrap_or("?").to_owned(), bound));
            }
        }
    }
    assert!(out.len() > 10, "{out:?}");
    out
}

/// A Prometheus on a free loopback port scraping `target` every second,
/// with the shipped rules evaluated every second.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let mut f = std::fs::File::create(&config).unwrap();
        writeln!(
            f,
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [{rules:?}]\n\
             scrape_configs:\n  - job_name: cdr-to-redpanda\n    static_configs: [{{targets: [{target:?}]}}]",
            rules = rules().display().to_string(),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian's package): run scripts/bootstrap.sh");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    fn api(&self, path: &str, query: Option<&str>) -> Option<Value> {
        let mut req = ureq::get(format!("{}{path}", self.url));
        if let Some(q) = query {
            req = req.query("query", q);
        }
        let mut resp = req.call().ok()?;
        serde_json::from_reader(resp.body_mut().as_reader()).ok()
    }

    /// The series `query` returns now.
    fn series(&self, query: &str) -> Vec<Value> {
        self.api("/api/v1/query", Some(query))
            .and_then(|v| v["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    }

    fn wait(&self, what: &str, limit: Duration, ok: impl Fn(&Prometheus) -> bool) {
        wait_until(what, limit, || ok(self), || self.log());
    }

    fn firing(&self) -> Vec<String> {
        let alerts = self.api("/api/v1/alerts", None);
        alerts
            .and_then(|v| v["data"]["alerts"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|a| a["state"] == "firing")
            .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn broken_gzip(dir: &Path, name: &str) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"msisdn,tower_id\n1,2\n").unwrap();
    let mut bytes = gz.finish().unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn every_dashboard_query_returns_series_and_a_failed_file_fires_its_alert() {
    let topics = Topics::new();
    let group = unique("prom");
    let (local, remote) = sftp_subdir(&group);
    let work = tempfile::tempdir().unwrap();
    generate(&local, 2, 500, 11, "2024-09-01T00:00:00", 0.02);
    let mut cmd = bin();
    cmd.arg("run");
    topics.apply(&mut cmd, &work.path().join("ledger"));
    sftp_env(&mut cmd, &remote);
    // In a group, so that the group panels have series too.
    cmd.env("CDR_GROUP", &group)
        .env("CDR_GROUP_TOPIC", format!("{group}-shards"))
        .env("CDR_GROUP_SHARDS", "4");
    let mut d = Daemon::spawn(cmd, work.path(), "daemon");
    d.wait_metrics("the sample files committed", Duration::from_secs(90), |m| {
        metric(m, "cdr_files_total{outcome=\"committed\"}") >= 4.0
    });
    let target = d.metrics.trim_start_matches("http://").to_owned();
    let prom = Prometheus::start(&target);
    prom.wait("the service scraped", Duration::from_secs(60), |p| {
        !p.series("cdr_ready == 1").is_empty()
    });

    // A broken file after the first scrapes: its `failed` counter goes 0 -> 1.
    std::thread::sleep(Duration::from_secs(3));
    broken_gzip(&local, "cdr_data_20240901_235959.csv.gz");
    d.wait_metrics("the broken file failed", Duration::from_secs(60), |m| {
        metric(m, "cdr_files_total{outcome=\"failed\"}") >= 1.0
    });
    prom.wait("CdrFilesFailed firing", Duration::from_secs(60), |p| {
        p.firing().iter().any(|a| a == "CdrFilesFailed")
    });
    let firing = prom.firing();
    assert!(
        !firing.iter().any(|a| a == "CdrServiceDown" || a == "CdrNotReady"),
        "a healthy service raises neither: {firing:?}"
    );

    // Rates need two samples in their window: give the scrapes time.
    std::thread::sleep(Duration::from_secs(3));
    let mut empty = Vec::new();
    for (panel, query) in dashboard_queries() {
        if prom.series(&query).is_empty() {
            empty.push(format!("{panel}: {query}"));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries with no series:\n{}",
        empty.join("\n")
    );

    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(30)).success());
}
