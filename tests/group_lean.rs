//! A group instance's producers, threads and connections follow its recent
//! files, not the shards it owns. Proven on the real broker and sshd: an
//! instance owning 256 shards of an empty directory holds no producer and
//! few threads; files arriving take over only their own shards; a shard with
//! a recent file keeps its producer (no second takeover); past
//! `--group-idle-seconds` every producer is closed, and a released shard's
//! next file takes it over again (fenced and read afresh: a producer is never
//! opened without that); every row lands exactly once.

mod common;
mod daemon_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use cdr_to_redpanda::group::shard::shard_of;
use common::*;
use daemon_support::*;

const SHARDS: u32 = 256;

/// Long enough for the second batch to arrive while the first batch's
/// shards still hold their producers.
const IDLE_SECONDS: u64 = 8;

fn names(generated: &serde_json::Value) -> Vec<String> {
    generated["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

/// The shards of every `shards taken over ... shards={1, 4, 7}` line so far.
fn taken_over(d: &Daemon) -> Vec<BTreeSet<u32>> {
    d.log_text()
        .lines()
        .filter(|l| l.contains("shards taken over"))
        .map(|l| {
            let list = l.split("shards={").nth(1).and_then(|r| r.split('}').next()).unwrap();
            list.split(", ").map(|s| s.parse().unwrap()).collect()
        })
        .collect()
}

fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .map(|n| n.trim().parse().unwrap())
        .unwrap()
}

fn committed(d: &Daemon) -> usize {
    d.log_text().lines().filter(|l| l.contains("ingest committed")).count()
}

fn wait_committed(d: &mut Daemon, files: usize) {
    d.wait_metrics(&format!("{files} files committed"), Duration::from_secs(90), |m| {
        metric(m, "cdr_files_total{outcome=\"committed\"}") >= files as f64
    });
}

/// Generates one file per kind beside the watched directory (the same
/// filesystem: renames are atomic), renames the data file into a shard of
/// `shards`, then moves both in; returns their names.
fn move_into_shard(local: &Path, group: &str, seed: u64, start: &str, shards: &BTreeSet<u32>) -> Vec<String> {
    let pool = local.with_file_name(format!("{group}-pool-{seed}"));
    let mut files = names(&generate(&pool, 1, 200, seed, start, 0.02));
    let data = files.iter().position(|f| f.starts_with("cdr_data_")).unwrap();
    let day = &start[..10].replace('-', "");
    let renamed = (0..86_400)
        .map(|s| format!("cdr_data_{day}_{:02}{:02}{:02}.csv", s / 3600, s / 60 % 60, s % 60))
        .find(|n| shards.contains(&shard_of(n, SHARDS)) && !files.contains(n))
        .unwrap();
    std::fs::rename(pool.join(&files[data]), pool.join(&renamed)).unwrap();
    files[data] = renamed;
    for name in &files {
        std::fs::rename(pool.join(name), local.join(name)).unwrap();
    }
    files
}

fn instance(topics: &Topics, work: &Path, remote: &str, group: &str) -> Daemon {
    let mut cmd = bin();
    cmd.arg("run").args(["--workers", "2"]);
    topics.apply(&mut cmd, &work.join("ledger"));
    sftp_env(&mut cmd, remote);
    cmd.env("CDR_GROUP", group)
        .env("CDR_GROUP_TOPIC", format!("{group}-shards"))
        .env("CDR_GROUP_SHARDS", SHARDS.to_string())
        .env("CDR_POLL_INTERVAL_SECONDS", "1")
        .env("CDR_GROUP_IDLE_SECONDS", IDLE_SECONDS.to_string());
    Daemon::spawn(cmd, work, "lean")
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn producers_follow_the_recent_files_not_the_shards_owned() {
    let topics = Topics::new();
    let group = unique("lean");
    let (local, remote) = sftp_subdir(&group);
    let work = tempfile::tempdir().unwrap();

    // 256 shards owned, no file: nothing is fenced, no producer is open.
    let mut d = instance(&topics, work.path(), &remote, &group);
    d.wait_log("shards assigned to this instance", Duration::from_secs(60));
    d.wait_metrics("all shards owned", Duration::from_secs(30), |m| {
        metric(m, "cdr_group_shards_owned") == f64::from(SHARDS)
    });
    // A few polls of the empty directory.
    std::thread::sleep(Duration::from_secs(3));
    let idle = d.scrape();
    assert_eq!(metric(&idle, "cdr_group_producers_open"), 0.0);
    assert!(taken_over(&d).is_empty(), "no file, no takeover:\n{}", d.log_text());
    // One producer per shard was ~4 threads each: over 1,000 here.
    let idle_threads = threads(d.child.id());
    assert!(idle_threads < 40, "{idle_threads} threads in an idle instance");

    // Files arrive: only their shards are taken over.
    let first = names(&generate(&local, 3, 200, 41, "2024-08-01T00:00:00", 0.02));
    wait_committed(&mut d, first.len());
    let first_shards: BTreeSet<u32> = first.iter().map(|f| shard_of(f, SHARDS)).collect();
    let takeovers = taken_over(&d);
    let fenced: BTreeSet<u32> = takeovers.iter().flatten().copied().collect();
    assert_eq!(fenced, first_shards, "exactly the shards of the files are taken over");

    // While a shard had a file within the idle limit, its producer stays
    // open: a file renamed into a shard of the first batch goes in without
    // another takeover.
    let files = first.len();
    let second = move_into_shard(&local, &group, 42, "2024-08-02T00:00:00", &first_shards);
    let second_shards: BTreeSet<u32> = second.iter().map(|f| shard_of(f, SHARDS)).collect();
    wait_committed(&mut d, files + second.len());
    let files = files + second.len();
    let again: BTreeSet<u32> = taken_over(&d)[takeovers.len()..].iter().flatten().copied().collect();
    assert_eq!(
        again,
        &second_shards - &first_shards,
        "only the shards without a producer"
    );
    assert_eq!(committed(&d), files);

    // Idle past the limit, every producer is closed...
    d.wait_metrics("every producer closed", Duration::from_secs(60), |m| {
        metric(m, "cdr_group_producers_open") == 0.0
    });
    assert!(d.log_text().contains("closed the producers of idle shards"));
    // ...and a file in a released shard takes it over again: fenced, and the
    // checkpoints read afresh, before anything is produced.
    let before = taken_over(&d).len();
    let third = move_into_shard(&local, &group, 43, "2024-08-04T00:00:00", &first_shards);
    wait_committed(&mut d, files + third.len());
    let third_shards: BTreeSet<u32> = third.iter().map(|f| shard_of(f, SHARDS)).collect();
    let retaken: BTreeSet<u32> = taken_over(&d)[before..].iter().flatten().copied().collect();
    assert_eq!(retaken, third_shards);
    assert!(retaken.intersection(&first_shards).next().is_some());
    assert_exactly_once(&topics, &local);
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(60)).success(), "{}", d.log_text());
}
