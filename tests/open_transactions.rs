//! Reads that decide what is done see every committed record while another
//! writer holds a transaction open on the same partitions (in a group, every
//! other instance does, all the time). A read_committed client is told the
//! last stable offset as the partition's end: a partition whose first record
//! belongs to an open transaction looks empty although committed records lie
//! behind it. Proven on the real broker and sshd: a group takeover behind
//! such a transaction ingests no committed file again, and `audit` beside one
//! counts every committed row, or fails loudly, never reporting rows missing.

mod common;
mod daemon_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use cdr_to_redpanda::group::shard::shard_of;
use common::*;
use daemon_support::*;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

/// Another transactional writer with one record in each partition of some
/// topics, its transaction left open until `end`.
struct ForeignTxn {
    producer: ThreadedProducer<DefaultProducerContext>,
}

impl ForeignTxn {
    fn open(topics: &[&str], partitions: i32) -> ForeignTxn {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("transactional.id", unique("foreign-writer"))
            .set("transaction.timeout.ms", "300000")
            .create()
            .unwrap();
        producer.init_transactions(Duration::from_secs(30)).unwrap();
        producer.begin_transaction().unwrap();
        for topic in topics {
            for p in 0..partitions {
                let record = BaseRecord::to(topic).partition(p).key("foreign").payload("not ours");
                producer.send(record).map_err(|(e, _)| e).unwrap();
            }
        }
        producer.flush(Duration::from_secs(30)).unwrap();
        ForeignTxn { producer }
    }

    /// Aborts the transaction: its records never show in read_committed.
    fn end(self) {
        self.producer.abort_transaction(Duration::from_secs(30)).unwrap();
    }
}

fn group_instance(topics: &Topics, work: &Path, remote: &str, group: &str, tag: &str) -> Daemon {
    let mut cmd = bin();
    cmd.arg("run").args(["--workers", "2"]);
    topics.apply(&mut cmd, &work.join(format!("ledger-{tag}")));
    sftp_env(&mut cmd, remote);
    cmd.env("CDR_GROUP", group)
        .env("CDR_GROUP_TOPIC", format!("{group}-shards"))
        .env("CDR_GROUP_SHARDS", "4")
        .env("CDR_GROUP_SESSION_TIMEOUT_SECONDS", "6");
    Daemon::spawn(cmd, work, tag)
}

fn committed_files(d: &Daemon) -> usize {
    d.log_text().lines().filter(|l| l.contains("ingest committed")).count()
}

/// Waits until `d` has committed `files` files in all (60 s at most).
fn wait_committed(d: &mut Daemon, files: usize, what: &str) {
    let until = Instant::now() + Duration::from_secs(60);
    while committed_files(d) < files {
        assert!(d.child.try_wait().unwrap().is_none(), "exited:\n{}", d.log_text());
        assert!(Instant::now() < until, "{what} were not committed:\n{}", d.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_takeover_behind_another_writers_open_transaction_ingests_no_committed_file_again() {
    let work = tempfile::tempdir().unwrap();
    let topics = Topics::new();
    let group = unique("open-txn");
    let (local, remote) = sftp_subdir(&unique("open-txn"));

    // A takes every shard over before the foreign transaction opens on every
    // checkpoint partition: a shard is taken over when it first has a file,
    // so A first commits warm-up files that cover the 4 shards.
    let warm_up = generate(&local, 4, 50, 30, "2024-06-01T00:00:00", 0.0);
    let covered: BTreeSet<u32> = warm_up["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| shard_of(f["name"].as_str().unwrap(), 4))
        .collect();
    assert_eq!(covered.len(), 4, "the warm-up files cover every shard");
    let mut a = group_instance(&topics, work.path(), &remote, &group, "a");
    wait_committed(&mut a, 8, "the warm-up files");
    let foreign = ForeignTxn::open(&[&topics.checkpoints], 3);

    // A commits two more files, their checkpoints behind the open transaction
    // (their shards are A's already: no takeover reads the checkpoints).
    generate(&local, 1, 2_000, 31, "2024-07-01T00:00:00", 0.02);
    wait_committed(&mut a, 10, "both files");
    a.child.kill().unwrap();
    a.child.wait().unwrap();

    // B, with an empty ledger, takes the shards over while the foreign
    // transaction is still open: it has to wait for it, not read past it.
    let mut b = group_instance(&topics, work.path(), &remote, &group, "b");
    let until = Instant::now() + Duration::from_secs(60);
    while !["waiting for transactions of other writers to end", "shards taken over"]
        .iter()
        .any(|l| b.log_text().contains(l))
    {
        assert!(b.child.try_wait().unwrap().is_none(), "b exited:\n{}", b.log_text());
        assert!(
            Instant::now() < until,
            "b never reached the takeover:\n{}",
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    foreign.end();
    b.wait_log("shards taken over", Duration::from_secs(90));
    // A few polls after the takeover: time enough to ingest both files again.
    std::thread::sleep(Duration::from_secs(4));

    assert_exactly_once(&topics, &local);
    assert_eq!(
        committed_files(&b),
        0,
        "b ingested committed files again:\n{}",
        b.log_text()
    );
    let status = b.child.try_wait().unwrap();
    assert!(status.is_none(), "b exited ({status:?}):\n{}", b.log_text());
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn audit_beside_another_writers_open_transaction_counts_every_committed_row_or_fails_loudly() {
    let topics = Topics::new();
    let (dir, empty, ledger) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let generated = generate_files(dir.path(), &["--files", "2", "--rows", "3000", "--bad-rate", "0.02"]);
    // A pass over an empty directory creates the topics, so the foreign
    // transaction opens ahead of every record of ours.
    let out = local_command(&topics, empty.path(), ledger.path(), &["once"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let foreign = ForeignTxn::open(&[&topics.data, &topics.voice, &topics.dlq], 3);
    let out = local_command(&topics, dir.path(), ledger.path(), &["once"]);
    assert!(out.status.success(), "{}", output_text(&out));

    // The transaction outlasts the audit's timeout: the audit fails (exit 2)
    // and says why; it never reports rows missing.
    let out = local_command(
        &topics,
        dir.path(),
        ledger.path(),
        &["audit", "--json", "--timeout-seconds", "3"],
    );
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("a transaction of another writer was still open"),
        "{text}"
    );

    // The transaction ends while the audit waits: every committed row counted.
    let ender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        foreign.end();
    });
    let out = local_command(
        &topics,
        dir.path(),
        ledger.path(),
        &["audit", "--json", "--timeout-seconds", "60"],
    );
    ender.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["summary"]["files"],
        generated["files"].as_array().unwrap().len(),
        "{:#}",
        report["summary"]
    );
    assert_exactly_once(&topics, dir.path());
}
