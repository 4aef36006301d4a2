//! No input wedges the pipeline, against the real broker (its default 1 MiB
//! record limit) and the real sshd: each error is contained by its blast
//! radius. A record the broker can never accept is dead-lettered (record); a
//! broken, unreadable or refused file fails or is parked alone (file); only
//! what every file would meet stops the process (service).

mod common;
mod daemon_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use daemon_support::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use serde_json::Value;
use sha2::{Digest, Sha256};

const DATA_HEADER: &str = "msisdn,tower_id,up_bytes,down_bytes,data_type,ip_address,website_url,event_datetime";
const VOICE_HEADER: &str = "msisdn,tower_id,call_type,dest_nr,call_duration_sec,start_time,note";

fn data_row(i: u64) -> String {
    format!("97245157{i:05},1800,{i},662662,application,221.128.139.195,http://example.com/{i},2024-01-01 01:01:{:02}.291148", i % 60)
}

fn voice_row(i: u64) -> String {
    format!(
        "58370255{i:05},724,voice,1693098090050,{i},2024-01-01 01:02:{:02}.707413,ok",
        i % 60
    )
}

/// A valid data row whose URL alone is 2 MiB: its record exceeds 1 MiB.
fn huge_data_row(i: u64) -> String {
    format!(
        "97245157{i:05},1800,1,2,video,10.0.0.1,http://example.com/{},2024-01-01 02:00:00",
        "a".repeat(2 << 20)
    )
}

/// Lines glued together by a mediation bug: one 2 MiB row with far too many fields.
fn glued_rows(from: u64) -> String {
    let mut s = String::new();
    let mut i = from;
    while s.len() < 2 << 20 {
        s.push_str(&data_row(i));
        i += 1;
    }
    s
}

fn csv(header: &str, rows: &[String]) -> Vec<u8> {
    let mut s = format!("{header}\n");
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s.into_bytes()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn sha_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The keys a file's rows must have: `<sha16 of its bytes as stored>-<row>`.
fn keys_of(stored: &[u8], csv_bytes: &[u8]) -> BTreeSet<String> {
    let rows = ::csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(csv_bytes)
        .byte_records()
        .count() as u64;
    let prefix = &sha_hex(stored)[..16];
    (1..=rows).map(|i| format!("{prefix}-{i}")).collect()
}

fn write_remote(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn ingest_cmd(topics: &Topics, remote: &str, ledger: &Path, sub: &str, extra: &[&str]) -> Command {
    let mut cmd = bin();
    cmd.arg(sub).args(extra);
    topics.apply(&mut cmd, ledger);
    sftp_env(&mut cmd, remote);
    cmd
}

/// Every record of the three topics, by key; asserts none is duplicated.
fn landed_once(topics: &Topics) -> BTreeMap<String, (String, Value)> {
    let mut by_key = BTreeMap::new();
    for t in [&topics.data, &topics.voice, &topics.dlq] {
        for r in read_committed(&brokers(), t) {
            let value = serde_json::from_slice(&r.value).unwrap_or(Value::Null);
            let dup = by_key.insert(r.key.clone(), (t.clone(), value));
            assert!(dup.is_none(), "key {} landed twice", r.key);
        }
    }
    by_key
}

fn audit(topics: &Topics, remote: &str, ledger: &Path) -> (Output, Value) {
    let out = ingest_cmd(topics, remote, ledger, "audit", &["--json"])
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", output_text(&out)));
    (out, report)
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn oversized_rows_are_dead_lettered_cut_to_fit_and_a_broken_file_fails_alone() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("poison"));
    let ledger = tempfile::tempdir().unwrap();

    let good: Vec<String> = (1..=50).map(data_row).collect();
    let glued = glued_rows(1000);
    let huge = huge_data_row(7);
    let mut middle: Vec<String> = (100..120).map(data_row).collect();
    middle.push(glued.clone());
    middle.push(huge.clone());
    middle.extend((120..140).map(data_row));
    let only_huge: Vec<String> = (1..=3).map(huge_data_row).collect();
    let mut voice: Vec<String> = (1..=10).map(voice_row).collect();
    let huge_voice = format!(
        "5837025539272,724,voice,1693098090050,262,2024-01-01 01:01:29.707413,{}",
        "n".repeat(1_500_000)
    );
    voice.insert(5, huge_voice.clone());
    let broken_gz = {
        let mut z = gzip(&csv(DATA_HEADER, &good));
        z.truncate(z.len() / 2);
        z
    };

    let files: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("cdr_data_20240101_000001.csv", csv(DATA_HEADER, &good), Vec::new()),
        ("cdr_data_20240101_000002.csv", csv(DATA_HEADER, &middle), Vec::new()),
        ("cdr_data_20240101_000003.csv", csv(DATA_HEADER, &only_huge), Vec::new()),
        ("cdr_data_20240101_000004.csv.gz", broken_gz, Vec::new()),
        (
            "cdr_voice_20240101_000005.csv.gz",
            gzip(&csv(VOICE_HEADER, &voice)),
            csv(VOICE_HEADER, &voice),
        ),
        (
            "cdr_data_20240101_000006.csv",
            csv(DATA_HEADER, &(200..260).map(data_row).collect::<Vec<_>>()),
            Vec::new(),
        ),
        (
            "cdr_voice_20240101_000007.csv",
            csv(VOICE_HEADER, &(1..=30).map(voice_row).collect::<Vec<_>>()),
            Vec::new(),
        ),
    ];
    let mut expected = BTreeSet::new();
    for (name, stored, plain) in &files {
        write_remote(&local, name, stored);
        if !name.contains("000004") {
            let plain = if plain.is_empty() { stored } else { plain };
            expected.extend(keys_of(stored, plain));
        }
    }

    let out = ingest_cmd(&topics, &remote, ledger.path(), "once", &["--chunk-rows", "25"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "one file failed: {text}");
    assert!(text.contains("committed 6 file(s)"), "{text}");

    let landed = landed_once(&topics);
    let got: BTreeSet<String> = landed.keys().cloned().collect();
    assert_eq!(
        got, expected,
        "every row of every good file exactly once, nothing of the broken one"
    );

    let cut: Vec<&Value> = landed
        .values()
        .filter(|(t, v)| *t == topics.dlq && v["_raw_truncated"] == true)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(cut.len(), 6, "glued line, huge URL, three huge rows, huge voice row");
    for (line, topic) in [
        (&glued, &topics.dlq),
        (&huge, &topics.data),
        (&huge_voice, &topics.voice),
    ] {
        let v = cut
            .iter()
            .find(|v| v["_raw_sha256"] == sha_hex(line.as_bytes()).as_str())
            .unwrap_or_else(|| panic!("no cut dead letter for a line of {} bytes", line.len()));
        assert_eq!(v["_raw_bytes"], line.len());
        let raw = v["_raw"].as_str().unwrap();
        assert!(raw.len() <= 4096 && line.starts_with(raw), "raw is the line's start");
        let error = v["_error"].as_str().unwrap();
        assert!(
            error.contains(&format!("exceeds the limit of 1000000 for topic {topic}")),
            "{error}"
        );
    }
    let huge_v = cut
        .iter()
        .find(|v| v["_raw_sha256"] == sha_hex(huge.as_bytes()).as_str())
        .unwrap();
    assert_eq!(
        (huge_v["_row"].as_u64(), huge_v["_line"].as_u64()),
        (Some(22), Some(23))
    );

    let st = status_json(ledger.path());
    let failed: Vec<&Value> = st["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{st:#}");
    assert_eq!(failed[0]["name"], "cdr_data_20240101_000004.csv.gz");

    let (out, report) = audit(&topics, &remote, ledger.path());
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(
        report["summary"]["dlq_records"].as_u64(),
        Some(6),
        "the six cut rows: {report:#}"
    );
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_record_the_broker_refuses_fails_its_file_and_the_next_files_still_land() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("refused"));
    let ledger = tempfile::tempdir().unwrap();
    // A topic rule the service cannot know of: 2024 CDRs are too old for it.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let topic =
        NewTopic::new(&topics.data, 3, TopicReplication::Fixed(1)).set("message.timestamp.before.max.ms", "3600000");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let created = rt
        .block_on(admin.create_topics([&topic], &AdminOptions::new()))
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");

    let data = csv(DATA_HEADER, &(1..=40).map(data_row).collect::<Vec<_>>());
    let voice = csv(VOICE_HEADER, &(1..=40).map(voice_row).collect::<Vec<_>>());
    write_remote(&local, "cdr_data_20240101_000001.csv", &data);
    write_remote(&local, "cdr_voice_20240101_000002.csv", &voice);

    let out = ingest_cmd(&topics, &remote, ledger.path(), "once", &[])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let landed = landed_once(&topics);
    assert_eq!(
        landed.keys().cloned().collect::<BTreeSet<_>>(),
        keys_of(&voice, &voice),
        "only the voice file's rows"
    );
    let st = status_json(ledger.path());
    let problem = &st["problems"][0];
    assert_eq!(
        (problem["name"].as_str(), problem["status"].as_str()),
        (Some("cdr_data_20240101_000001.csv"), Some("failed")),
        "{st:#}"
    );
    assert!(
        problem["error"].as_str().unwrap().contains("broker refused a record"),
        "{st:#}"
    );
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn unreachable_brokers_stop_the_service_without_blaming_any_file_in_one_line_naming_them() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("nobroker"));
    let ledger = tempfile::tempdir().unwrap();
    write_remote(
        &local,
        "cdr_data_20240101_000001.csv",
        &csv(DATA_HEADER, &[data_row(1)]),
    );
    let nobody = format!("127.0.0.1:{}", free_port());
    let mut cmd = ingest_cmd(&topics, &remote, ledger.path(), "once", &[]);
    cmd.env("KAFKA_BROKERS", &nobody);
    let out = cmd.output().unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let error = text
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        error.contains(&format!("preparing topics on the brokers {nobody}:")),
        "{error}"
    );
    assert_eq!(error.matches("BrokerTransportFailure").count(), 1, "said once: {error}");
    assert!(!error.contains("the default"), "{error}");
    assert!(
        !ledger.path().join("ledger.redb").exists(),
        "no file was touched, so none is blamed"
    );

    // Nothing set: the default brokers (compose's names) are tried, and said to be the default.
    let mut cmd = ingest_cmd(&topics, &remote, ledger.path(), "once", &[]);
    cmd.env_remove("KAFKA_BROKERS");
    let out = cmd.output().unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("on the brokers redpanda-0:9092,redpanda-1:9092,redpanda-2:9092 (the default; set --brokers or KAFKA_BROKERS)"),
        "{text}"
    );
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn the_daemon_keeps_serving_past_poison_files_and_retry_releases_a_parked_one() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("parked"));
    let work = tempfile::tempdir().unwrap();
    let ledger = work.path().join("ledger");
    let unreadable = "cdr_data_20240101_000001.csv";
    write_remote(
        &local,
        unreadable,
        &csv(DATA_HEADER, &(1..=30).map(data_row).collect::<Vec<_>>()),
    );
    // Owned by root, readable by nobody else: the SFTP user is refused.
    std::fs::set_permissions(local.join(unreadable), std::fs::Permissions::from_mode(0o000)).unwrap();
    write_remote(
        &local,
        "cdr_data_20240101_000002.csv",
        &csv(DATA_HEADER, &[data_row(1), huge_data_row(2), data_row(3)]),
    );

    let cmd = ingest_cmd(
        &topics,
        &remote,
        &ledger,
        "run",
        &["--file-attempts", "2", "--file-backoff-seconds", "1"],
    );
    let mut d = Daemon::spawn(cmd, work.path(), "daemon");
    d.wait_metrics("the unreadable file parked", Duration::from_secs(60), |m| {
        metric(m, "cdr_files_parked") == 1.0
    });
    assert_eq!(
        d.get("/readyz").map(|(code, _)| code),
        Some(200),
        "ready while a file is parked"
    );
    let st = status_json(&ledger);
    let parked = st["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == unreadable)
        .cloned()
        .unwrap();
    assert_eq!(
        (parked["status"].as_str(), parked["attempts"].as_u64()),
        (Some("parked"), Some(2)),
        "{st:#}"
    );
    assert!(
        parked["error"].as_str().unwrap().contains("permission denied"),
        "{parked}"
    );
    assert_eq!(
        st["counts"]["committed"], 1,
        "the oversized file committed beside it: {st:#}"
    );

    // Files dropped later are still ingested.
    write_remote(
        &local,
        "cdr_voice_20240101_000003.csv",
        &csv(VOICE_HEADER, &(1..=20).map(voice_row).collect::<Vec<_>>()),
    );
    d.wait_metrics("the later file committed", Duration::from_secs(60), |m| {
        metric(m, "cdr_files_total{outcome=\"committed\"}") >= 2.0
    });
    // Parked stays parked: no more attempts without an operator.
    std::fs::set_permissions(local.join(unreadable), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(status_json(&ledger)["counts"]["parked"], 1);

    let out = bin()
        .args(["retry", unreadable, "--ledger-dir"])
        .arg(&ledger)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success() && text.contains("queued"), "{text}");
    d.wait_metrics("the released file committed", Duration::from_secs(60), |m| {
        metric(m, "cdr_files_total{outcome=\"committed\"}") >= 3.0 && metric(m, "cdr_files_parked") == 0.0
    });
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(20)).success(), "{}", d.log_text());
    assert_exactly_once(&topics, &local);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn once_exits_one_on_every_pass_while_a_file_is_failed_backing_off_or_in_conflict() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("exit-status"));
    let ledger = tempfile::tempdir().unwrap();
    let rows: Vec<String> = (1..=20).map(data_row).collect();
    let once = |expect: i32, stuck: &str| {
        let out = ingest_cmd(&topics, &remote, ledger.path(), "once", &[])
            .output()
            .unwrap();
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(expect), "{text}");
        assert!(text.contains(&format!("stuck: {stuck}")), "{text}");
    };
    write_remote(&local, "cdr_data_20240101_000001.csv", &csv(DATA_HEADER, &rows));
    once(0, "failed 0, parked 0, backing off 0, conflicts 0");

    // A broken file fails, and is still failed on the next pass.
    let mut broken = gzip(&csv(DATA_HEADER, &rows));
    broken.truncate(broken.len() / 2);
    write_remote(&local, "cdr_data_20240101_000002.csv.gz", &broken);
    once(1, "failed 1, parked 0, backing off 0, conflicts 0");
    once(1, "failed 1, parked 0, backing off 0, conflicts 0");

    // A file the SFTP user cannot read backs off, and still does on the next pass.
    let unreadable = "cdr_data_20240101_000003.csv";
    write_remote(&local, unreadable, &csv(DATA_HEADER, &rows[..5]));
    std::fs::set_permissions(local.join(unreadable), std::fs::Permissions::from_mode(0o000)).unwrap();
    once(1, "failed 1, parked 0, backing off 1, conflicts 0");
    once(1, "failed 1, parked 0, backing off 1, conflicts 0");

    // The committed file changes: a conflict, on this pass and the next.
    write_remote(&local, "cdr_data_20240101_000001.csv", &csv(DATA_HEADER, &rows[..10]));
    once(1, "failed 1, parked 0, backing off 1, conflicts 1");
    once(1, "failed 1, parked 0, backing off 1, conflicts 1");
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn legal_names_land_whatever_their_length_or_dots() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("names"));
    let ledger = tempfile::tempdir().unwrap();
    let longest = format!("cdr_data_{}.csv", "7".repeat(255 - 13));
    assert_eq!(longest.len(), 255, "the longest name a Linux file system holds");
    let names = [longest.as_str(), "cdr_data_20240910..csv"];
    let mut expected = BTreeSet::new();
    for (i, name) in names.iter().enumerate() {
        let rows: Vec<String> = (1..=10).map(|r| data_row(100 * i as u64 + r)).collect();
        let bytes = csv(DATA_HEADER, &rows);
        expected.extend(keys_of(&bytes, &bytes));
        write_remote(&local, name, &bytes);
    }
    let out = ingest_cmd(&topics, &remote, ledger.path(), "once", &[])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("committed 2 file(s)"), "{text}");
    let landed: BTreeSet<String> = landed_once(&topics).into_keys().collect();
    assert_eq!(landed, expected);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn every_file_never_taken_shows_in_status_the_metric_and_one_log_line_while_it_stays() {
    use std::os::unix::ffi::OsStrExt;
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("ignored"));
    let work = tempfile::tempdir().unwrap();
    let ledger = work.path().join("ledger");
    let good = "cdr_data_20240101_000001.csv";
    write_remote(&local, good, &csv(DATA_HEADER, &[data_row(1), data_row(2)]));
    std::os::unix::fs::symlink(local.join(good), local.join("cdr_data_20240101_000002.csv")).unwrap();
    write_remote(&local, "readme.txt", b"not a CDR");
    write_remote(&local, "cdr_data_20240101_000003.csv.part", b"uploading");
    std::fs::write(local.join(std::ffi::OsStr::from_bytes(b"cdr_data_\xe9t\xe9.csv")), b"x").unwrap();
    let fifo = local.join("cdr_data_20240101_000004.csv");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());

    let mut d = Daemon::spawn(ingest_cmd(&topics, &remote, &ledger, "run", &[]), work.path(), "daemon");
    let ignored = |reason: &str| format!("cdr_files_ignored{{reason=\"{reason}\"}}");
    d.wait_metrics("the good file committed", Duration::from_secs(60), |m| {
        metric(m, "cdr_files_total{outcome=\"committed\"}") == 1.0
    });
    // Several polls later: still one line per file, not one per poll.
    std::thread::sleep(Duration::from_secs(4));
    let m = d.scrape();
    for (reason, n) in [
        ("symlink", 1.0),
        ("not-utf8", 1.0),
        ("not-a-regular-file", 1.0),
        ("no-pattern", 1.0),
        ("temporary", 1.0),
        ("unsafe-name", 0.0),
        ("no-size-or-mtime", 0.0),
    ] {
        assert_eq!(metric(&m, &ignored(reason)), n, "{reason}");
    }
    let log = d.log_text();
    for name in [
        "cdr_data_20240101_000002.csv",
        "cdr_data_\u{fffd}t\u{fffd}.csv",
        "cdr_data_20240101_000004.csv",
        "readme.txt",
    ] {
        let lines = log
            .lines()
            .filter(|l| l.contains("not taking a file") && l.contains(name));
        assert_eq!(lines.count(), 1, "one line for {name}:\n{log}");
    }

    let st = status_json(&ledger);
    assert_eq!(st["ignored"]["symlink"]["count"], 1, "{st}");
    assert_eq!(st["ignored"]["symlink"]["examples"][0], "cdr_data_20240101_000002.csv");
    assert_eq!(st["ignored"]["not-utf8"]["count"], 1);
    assert_eq!(st["ignored"]["unsafe-name"]["count"], 0);
    let text = bin().arg("status").arg("--ledger-dir").arg(&ledger).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("ignored (in the directory, never taken): 5"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("not-a-regular-file") && l.contains("cdr_data_20240101_000004.csv")),
        "{text}"
    );

    // A file that leaves the directory leaves the set.
    std::fs::remove_file(local.join("readme.txt")).unwrap();
    d.wait_metrics("readme.txt gone", Duration::from_secs(30), |m| {
        metric(m, &ignored("no-pattern")) == 0.0
    });
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(30)).success());
    assert_eq!(status_json(&ledger)["ignored"]["no-pattern"]["count"], 0);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn once_takes_files_older_than_settle_plus_min_age_without_a_second_listing() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("old-files"));
    let ledger = tempfile::tempdir().unwrap();
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for i in 1..=3 {
        let name = format!("cdr_data_20240101_00000{i}.csv");
        write_remote(&local, &name, &csv(DATA_HEADER, &[data_row(i)]));
        std::fs::File::options()
            .write(true)
            .open(local.join(&name))
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
    }
    let settle = ["--settle-seconds", "5", "--min-age-seconds", "10"];
    let out = ingest_cmd(&topics, &remote, ledger.path(), "once", &settle)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("committed 3 file(s)"), "{text}");
    assert!(
        !text.contains("listing again"),
        "old files need no second listing: {text}"
    );

    // A young file asks for the second listing, and is left for the next run
    // while it is younger than the minimum age.
    write_remote(
        &local,
        "cdr_data_20240101_000004.csv",
        &csv(DATA_HEADER, &[data_row(4)]),
    );
    let out = ingest_cmd(&topics, &remote, ledger.path(), "once", &settle)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(text.contains("listing again"), "{text}");
    assert!(text.contains("committed 0 file(s)"), "{text}");
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_file_that_grows_after_ingest_continues_after_its_last_committed_row() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("grown"));
    let ledger = tempfile::tempdir().unwrap();
    let name = "cdr_data_20240101_000001.csv";
    let once = || {
        let out = ingest_cmd(&topics, &remote, ledger.path(), "once", &[])
            .output()
            .unwrap();
        (out.status.code(), output_text(&out))
    };
    // The uploader writes in bursts further apart than the settle interval:
    // each burst ends a line, and each pass takes what is there.
    let mut expected = BTreeSet::new();
    let mut rows: Vec<String> = Vec::new();
    for (burst, upto) in [10u64, 25, 31].into_iter().enumerate() {
        let from = rows.len() as u64 + 1;
        rows.extend((from..=upto).map(data_row));
        let bytes = csv(DATA_HEADER, &rows);
        write_remote(&local, name, &bytes);
        // This version's rows carry this version's hash.
        let prefix = sha_hex(&bytes)[..16].to_owned();
        expected.extend((from..=upto).map(|r| format!("{prefix}-{r}")));
        let (code, text) = once();
        assert_eq!(code, Some(0), "burst {burst}: {text}");
        assert!(text.contains("committed 1 file(s)"), "burst {burst}: {text}");
        if burst > 0 {
            assert!(
                text.contains("continuing after its last committed row")
                    && text.contains(&format!("after_row={}", from - 1)),
                "burst {burst}: {text}"
            );
        }
    }
    let landed: BTreeSet<String> = landed_once(&topics).into_keys().collect();
    assert_eq!(landed, expected, "every row once, none of the earlier bursts again");
    let (out, report) = audit(&topics, &remote, ledger.path());
    assert_eq!(out.status.code(), Some(0), "{report:#}");

    // Bytes already ingested that change are still a conflict.
    let mut changed = csv(DATA_HEADER, &rows);
    changed[DATA_HEADER.len() + 3] ^= 1;
    changed.extend_from_slice(format!("{}\n", data_row(32)).as_bytes());
    write_remote(&local, name, &changed);
    let (code, text) = once();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("conflicts 1"), "{text}");
    assert_eq!(landed_once(&topics).len(), expected.len(), "nothing of it produced");
}
