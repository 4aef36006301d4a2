//! The daemon as operators run it, against the real sshd and broker:
//! signals, crashes under a continuous file drop, metrics against the ledger
//! and the topics, topic layout, env-only and file configuration.

mod common;
mod daemon_support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use daemon_support::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

fn run_cmd(topics: &Topics, remote: &str, ledger: &Path, extra: &[&str]) -> Command {
    let mut cmd = bin();
    cmd.arg("run").args(extra);
    topics.apply(&mut cmd, ledger);
    sftp_env(&mut cmd, remote);
    cmd
}

fn committed_files(ledger: &Path) -> u64 {
    status_json(ledger)["counts"]["committed"].as_u64().unwrap_or(0)
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn sigterm_mid_file_exits_zero_and_the_next_start_completes_the_file_exactly_once() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("sigterm"));
    let work = tempfile::tempdir().unwrap();
    let ledger = work.path().join("ledger");
    generate(&local, 1, 30_000, 7, "2024-05-01T00:00:00", 0.01);

    let cmd = run_cmd(&topics, &remote, &ledger, &["--chunk-rows", "100"]);
    let mut d = Daemon::spawn(cmd, work.path(), "first");
    d.wait_log("ingest started", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(400));
    d.signal("TERM");
    let status = d.wait_exit(Duration::from_secs(20));
    let log = d.log_text();
    assert!(status.success(), "exit {status}:\n{log}");
    assert!(
        log.contains("shutdown: file left in progress"),
        "not stopped mid-file:\n{log}"
    );
    let st = status_json(&ledger);
    // Two slots by default: the data and the voice file each stop mid-file
    // (or one of them had not begun).
    let in_progress = st["in_progress"].as_array().unwrap();
    assert!((1..=2).contains(&in_progress.len()), "{st}");
    for file in in_progress {
        let rows_done = file["rows_done"].as_u64().unwrap();
        assert!(rows_done < 30_000, "rows_done {rows_done}");
    }
    let most = in_progress.iter().map(|f| f["rows_done"].as_u64().unwrap()).max();
    assert!(most > Some(0), "{st}");
    assert_eq!(st["in_doubt_transactions"], 0, "the last chunk was committed: {st}");

    let cmd = run_cmd(&topics, &remote, &ledger, &["--chunk-rows", "5000"]);
    let mut d = Daemon::spawn(cmd, work.path(), "second");
    d.wait_metrics("both files committed", Duration::from_secs(90), |m| {
        metric(m, "cdr_files_total{outcome=\"committed\"}") >= 2.0
    });
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(20)).success(), "{}", d.log_text());
    assert_eq!(committed_files(&ledger), 2);
    assert_exactly_once(&topics, &local);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn sigkill_under_a_continuous_file_drop_loses_and_duplicates_nothing() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("drop"));
    let work = tempfile::tempdir().unwrap();
    let ledger = work.path().join("ledger");
    let spool = work.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();

    // The producer side: a batch every 300 ms, written aside and renamed in,
    // as a well-behaved CDR producer does.
    let stop = Arc::new(AtomicBool::new(false));
    let dropper = {
        let (stop, local, spool) = (stop.clone(), local.clone(), spool.clone());
        std::thread::spawn(move || {
            let mut batch = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let dir = spool.join(batch.to_string());
                let start = format!("2024-06-{:02}T{:02}:00:00", 1 + batch / 24, batch % 24);
                generate(&dir, 1, 400, u64::from(batch), &start, 0.02);
                for e in std::fs::read_dir(&dir).unwrap() {
                    let e = e.unwrap();
                    std::fs::rename(e.path(), local.join(e.file_name())).unwrap();
                }
                batch += 1;
                std::thread::sleep(Duration::from_millis(300));
            }
            batch
        })
    };
    let mut rng_ms = [1700u64, 900, 2300, 1300].into_iter();
    for round in 0..4 {
        let cmd = run_cmd(&topics, &remote, &ledger, &["--chunk-rows", "50", "--workers", "2"]);
        let mut d = Daemon::spawn(cmd, work.path(), &format!("kill{round}"));
        d.wait_log("running", Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(rng_ms.next().unwrap_or(1000)));
        d.child.kill().unwrap();
        d.child.wait().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let batches = dropper.join().unwrap();
    let files = u64::from(batches) * 2;

    let cmd = run_cmd(&topics, &remote, &ledger, &["--chunk-rows", "50", "--workers", "2"]);
    let mut d = Daemon::spawn(cmd, work.path(), "final");
    d.wait_log("running", Duration::from_secs(60));
    let until = std::time::Instant::now() + Duration::from_secs(120);
    while committed_files(&ledger) < files {
        assert!(
            std::time::Instant::now() < until,
            "not all {files} files committed:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(20)).success(), "{}", d.log_text());
    assert_exactly_once(&topics, &local);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_young_file_is_taken_one_settle_interval_after_it_is_seen_not_one_poll_interval() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("relist"));
    let work = tempfile::tempdir().unwrap();
    let ledger = work.path().join("ledger");
    generate(&local, 1, 200, 5, "2024-08-01T00:00:00", 0.0);
    // Written just now: the first listing sees them younger than the settle
    // interval, so they wait for a second look.
    for entry in std::fs::read_dir(&local).unwrap() {
        let file = std::fs::File::options()
            .write(true)
            .open(entry.unwrap().path())
            .unwrap();
        file.set_modified(std::time::SystemTime::now()).unwrap();
    }

    let cmd = run_cmd(
        &topics,
        &remote,
        &ledger,
        &["--poll-interval-seconds", "300", "--settle-seconds", "5"],
    );
    let mut d = Daemon::spawn(cmd, work.path(), "relist");
    d.wait_metrics(
        "both files committed, long before the second poll",
        Duration::from_secs(60),
        |m| metric(m, "cdr_files_total{outcome=\"committed\"}") >= 2.0,
    );
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(20)).success(), "{}", d.log_text());
    assert_exactly_once(&topics, &local);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn metrics_scraped_during_a_run_agree_with_the_ledger_and_the_topics() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("metrics"));
    let work = tempfile::tempdir().unwrap();
    let ledger = work.path().join("ledger");
    let summary = generate(&local, 3, 700, 11, "2024-07-01T00:00:00", 0.05);
    let invalid = summary["invalid_rows"].as_u64().unwrap();
    let bytes: u64 = std::fs::read_dir(&local)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();

    let cmd = run_cmd(&topics, &remote, &ledger, &["--chunk-rows", "300", "--workers", "2"]);
    let mut d = Daemon::spawn(cmd, work.path(), "metrics");
    d.wait_log("serving /metrics", Duration::from_secs(10));
    assert_eq!(d.get("/healthz").map(|r| r.0), Some(200));
    d.wait_metrics("six files committed", Duration::from_secs(90), |m| {
        metric(m, "cdr_files_total{outcome=\"committed\"}") >= 6.0
    });
    // The gauges come from the next listing.
    d.wait_metrics("nothing waiting", Duration::from_secs(10), |m| {
        metric(m, "cdr_files_waiting") == 0.0
    });
    let m = d.scrape();
    assert_eq!(d.get("/readyz").map(|r| r.0), Some(200), "ready while both ends are up");

    let data = read_committed(&brokers(), &topics.data).len() as f64;
    let voice = read_committed(&brokers(), &topics.voice).len() as f64;
    let dlq = read_committed(&brokers(), &topics.dlq).len() as f64;
    let checkpoints = read_committed(&brokers(), &topics.checkpoints).len() as f64;
    assert_eq!(
        metric(&m, &format!("cdr_rows_produced_total{{topic=\"{}\"}}", topics.data)),
        data
    );
    assert_eq!(
        metric(&m, &format!("cdr_rows_produced_total{{topic=\"{}\"}}", topics.voice)),
        voice
    );
    assert_eq!(
        metric(&m, &format!("cdr_rows_produced_total{{topic=\"{}\"}}", topics.dlq)),
        dlq
    );
    assert_eq!(metric(&m, "cdr_invalid_rows_total"), invalid as f64);
    assert_eq!(dlq, invalid as f64);
    // One checkpoint record per committed transaction.
    assert_eq!(metric(&m, "cdr_transactions_total{outcome=\"committed\"}"), checkpoints);
    assert_eq!(metric(&m, "cdr_chunk_seconds_count"), checkpoints);
    assert_eq!(metric(&m, "cdr_bytes_downloaded_total"), bytes as f64);
    assert!(metric(&m, "cdr_last_success_timestamp_seconds") > 1.7e9);

    let st = status_json(&ledger);
    assert_eq!(st["counts"]["committed"].as_u64(), Some(6));
    assert_eq!(st["rows_committed"].as_f64(), Some(data + voice));
    assert_eq!(st["invalid_rows_committed"].as_f64(), Some(dlq));
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(20)).success());

    // Restarted with nothing new to do: the last success is the ledger's,
    // not 0, and every outcome series is there at 0.
    let last = metric(&m, "cdr_last_success_timestamp_seconds");
    let cmd = run_cmd(&topics, &remote, &ledger, &[]);
    let mut again = Daemon::spawn(cmd, work.path(), "metrics-again");
    again.wait_log("running", Duration::from_secs(60));
    let m = again.scrape();
    let restored = metric(&m, "cdr_last_success_timestamp_seconds");
    assert!(
        restored > last - 60.0 && restored <= last,
        "last success {restored} after a restart, {last} before"
    );
    for series in [
        "cdr_files_total{outcome=\"failed\"}",
        "cdr_transactions_total{outcome=\"aborted\"}",
    ] {
        assert_eq!(m.get(series), Some(&0.0), "{series} exported at 0 from the start");
    }
    again.signal("TERM");
    assert!(again.wait_exit(Duration::from_secs(20)).success());
}

fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap()
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn topics_are_created_with_the_configured_layout() {
    let topics = Topics::new();
    let work = tempfile::tempdir().unwrap();
    let empty = work.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut cmd = bin();
    cmd.args(["once", "--partitions", "5", "--local-dir"]).arg(&empty);
    topics.apply(&mut cmd, &work.path().join("ledger"));
    cmd.env_remove("CDR_TOPIC_PARTITIONS");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));

    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let md = probe.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    let layout = |name: &str| {
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        (t.partitions().len(), t.partitions()[0].replicas().len())
    };
    for t in [&topics.data, &topics.voice, &topics.dlq] {
        assert_eq!(layout(t), (5, 1), "{t}");
    }
    assert_eq!(layout(&topics.checkpoints), (1, 1));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let specs: Vec<_> = [&topics.data, &topics.dlq, &topics.checkpoints]
        .iter()
        .map(|t| ResourceSpecifier::Topic(t.as_str()))
        .collect();
    let configs = rt
        .block_on(admin().describe_configs(&specs, &AdminOptions::new()))
        .unwrap();
    let get = |i: usize, key: &str| {
        let r = configs[i].as_ref().unwrap();
        r.get(key).and_then(|e| e.value.clone()).unwrap_or_default()
    };
    assert_eq!(get(0, "retention.ms"), "-1");
    assert_eq!(get(1, "retention.ms"), "-1");
    assert_eq!(get(2, "cleanup.policy"), "compact");

    // More replicas than brokers: one clear line, non-zero exit.
    let other = Topics::new();
    let mut cmd = bin();
    cmd.args(["once", "--local-dir"]).arg(&empty);
    other.apply(&mut cmd, &work.path().join("ledger2"));
    cmd.env("CDR_TOPIC_REPLICATION", "3");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("replication factor 3 asked for, but the cluster has 1 broker(s)"),
        "{stderr}"
    );
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn env_only_configuration_as_in_the_python_streamers_compose_file_works() {
    // The names of the Python streamer's compose file and nothing else but
    // SFTP_KNOWN_HOSTS; defaults for the rest. Our default replication (3)
    // needs three brokers: the operator of this one-broker stack creates
    // the two topics whose names the compose file does not set.
    let (local, remote) = sftp_subdir(&unique("envonly"));
    let base = unique("py");
    let (data, voice) = (format!("{base}-data"), format!("{base}-voice"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let new: Vec<_> = ["cdr-dlq", "cdr-ingest-checkpoints"]
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .map(|t| {
            if t.name == "cdr-ingest-checkpoints" {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .chain([&data, &voice].map(|t| NewTopic::new(t, 3, TopicReplication::Fixed(1))))
        .collect();
    rt.block_on(admin().create_topics(&new, &AdminOptions::new())).unwrap();
    // The default checkpoint topic outlives this run: names and bytes new
    // to it every time (else the file is rightly "already done").
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // In the past: brokers refuse timestamps more than an hour ahead.
    let start = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        + chrono::TimeDelta::seconds((nanos / 1000 % 300_000_000) as i64 * 2);
    generate(
        &local,
        1,
        200,
        nanos as u64,
        &start.format("%Y-%m-%dT%H:%M:%S").to_string(),
        0.0,
    );
    // Old enough to pass the default minimum age at once.
    for e in std::fs::read_dir(&local).unwrap() {
        let ok = Command::new("touch")
            .args(["-d", "1 hour ago"])
            .arg(e.unwrap().path())
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.arg("once")
        .env_clear()
        .current_dir(cwd.path())
        .env("PATH", std::env::var("PATH").unwrap());
    for v in [
        "SFTP_HOST",
        "SFTP_PORT",
        "SFTP_USER",
        "SFTP_PASSWORD",
        "KAFKA_BROKERS",
        "SFTP_KNOWN_HOSTS",
    ] {
        cmd.env(v, env(v));
    }
    cmd.env("SFTP_REMOTE_PATH", &remote)
        .env("CDR_DATA_TOPIC", &data)
        .env("CDR_VOICE_TOPIC", &voice);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let expected = expected_keys(&local);
    let mut got: Vec<String> = read_committed(&brokers(), &data).into_iter().map(|r| r.key).collect();
    got.extend(read_committed(&brokers(), &voice).into_iter().map(|r| r.key));
    got.sort();
    assert_eq!(got, expected.into_iter().collect::<Vec<_>>(), "{}", output_text(&out));
    assert!(
        cwd.path().join(".cdr-to-redpanda").is_dir(),
        "default ledger dir under the working directory"
    );
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn config_file_settings_apply_below_env_and_check_config_masks_secrets_and_tests_both_ends() {
    let work = tempfile::tempdir().unwrap();
    let (_local, remote) = sftp_subdir(&unique("checkcfg"));
    let file = work.path().join("cdr.toml");
    std::fs::write(
        &file,
        format!("chunk-rows = 1234\nsftp-remote-path = \"{remote}\"\nkafka-brokers-unused = 1\n"),
    )
    .unwrap();
    // An unknown key is refused, naming it.
    let mut cmd = bin();
    cmd.args(["check-config", "--config"]).arg(&file);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kafka-brokers-unused"));

    std::fs::write(
        &file,
        format!(
            "chunk-rows = 1234\nsftp-remote-path = \"{remote}\"\nsftp-host = \"not-used\"\n\
             [kafka-config]\n\"sasl.password\" = \"hunter2\"\n\"socket.timeout.ms\" = \"30000\"\n"
        ),
    )
    .unwrap();
    let check = |brokers: &str| {
        let mut cmd = bin();
        cmd.args(["check-config", "--config"])
            .arg(&file)
            .args(["--transactional-id-prefix", "flagged"]);
        // The file names the remote path: the environment's is removed.
        sftp_env(&mut cmd, "");
        cmd.env("KAFKA_BROKERS", brokers)
            .env_remove("SFTP_REMOTE_PATH")
            .env_remove("CDR_CHUNK_ROWS");
        cmd.output().unwrap()
    };
    let out = check(&brokers());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", output_text(&out));
    let line = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        line("chunk-rows").contains("1234") && line("chunk-rows").ends_with("(file)"),
        "{text}"
    );
    assert!(line("sftp-host ").ends_with("(env)"), "env wins over the file: {text}");
    assert!(line("transactional-id-prefix").contains("flagged") && line("transactional-id-prefix").ends_with("(flag)"));
    assert!(
        line("sftp-password ").contains("***") && !text.contains(&env("SFTP_PASSWORD")),
        "{text}"
    );
    assert!(
        text.contains("sasl.password=***") && !text.contains("hunter2"),
        "{text}"
    );
    assert!(text.contains("source: ok") && text.contains("kafka: ok"), "{text}");

    let out = check("127.0.0.1:1");
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("kafka: FAILED"));
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn startup_waits_for_an_unreachable_source_not_ready_and_sigterm_ends_the_wait_with_exit_zero() {
    let topics = Topics::new();
    let work = tempfile::tempdir().unwrap();
    let mut cmd = run_cmd(&topics, "/nowhere", &work.path().join("ledger"), &[]);
    // Nothing listens there: a refused connection is transient, so waited for.
    cmd.env("SFTP_PORT", free_port().to_string());
    let mut d = Daemon::spawn(cmd, work.path(), "nosource");
    d.wait_log("waiting for the source", Duration::from_secs(30));
    assert_eq!(d.get("/healthz").map(|r| r.0), Some(200));
    let (status, why) = d.get("/readyz").unwrap();
    assert_eq!(status, 503);
    assert!(why.contains("source"), "{why}");
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(10)).success(), "{}", d.log_text());
}
