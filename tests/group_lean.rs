//! A group instance's producers, threads and connections follow its files in
//! flight, not the shards it owns. Proven on the real broker and sshd: an
//! instance owning 256 shards of an empty directory holds no producer and
//! few threads; files arriving take over only their own shards; a shard
//! already taken over gets its producer again without another takeover; and
//! once the files are in, every producer is closed and every row landed
//! exactly once.

mod common;
mod daemon_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use cdr_to_redpanda::group::shard::shard_of;
use common::*;
use daemon_support::*;

const SHARDS: u32 = 256;

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

fn instance(topics: &Topics, work: &Path, remote: &str, group: &str) -> Daemon {
    let mut cmd = bin();
    cmd.arg("run").args(["--workers", "2"]);
    topics.apply(&mut cmd, &work.join("ledger"));
    sftp_env(&mut cmd, remote);
    cmd.env("CDR_GROUP", group)
        .env("CDR_GROUP_TOPIC", format!("{group}-shards"))
        .env("CDR_GROUP_SHARDS", SHARDS.to_string())
        .env("CDR_POLL_INTERVAL_SECONDS", "1");
    Daemon::spawn(cmd, work, "lean")
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn producers_follow_the_files_in_flight_not_the_shards_owned() {
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

    // More files, one renamed into a shard of the first: a shard taken over
    // is not taken over again while this instance keeps it; its producer is
    // opened again for the file.
    // Beside the watched directory: the same filesystem, so a rename is atomic.
    let pool = local.with_file_name(format!("{group}-pool"));
    let mut second = names(&generate(&pool, 3, 200, 42, "2024-08-02T00:00:00", 0.02));
    let data = second.iter().position(|f| f.starts_with("cdr_data_")).unwrap();
    let renamed = (0..86_400)
        .map(|s| format!("cdr_data_20240803_{:02}{:02}{:02}.csv", s / 3600, s / 60 % 60, s % 60))
        .find(|n| first_shards.contains(&shard_of(n, SHARDS)))
        .unwrap();
    std::fs::rename(pool.join(&second[data]), pool.join(&renamed)).unwrap();
    second[data] = renamed;
    for name in &second {
        std::fs::rename(pool.join(name), local.join(name)).unwrap();
    }
    let second_shards: BTreeSet<u32> = second.iter().map(|f| shard_of(f, SHARDS)).collect();
    wait_committed(&mut d, first.len() + second.len());
    let again: BTreeSet<u32> = taken_over(&d)[takeovers.len()..].iter().flatten().copied().collect();
    assert_eq!(
        again,
        &second_shards - &first_shards,
        "only the shards new to this instance"
    );
    assert_eq!(committed(&d), first.len() + second.len());

    // Every producer is closed once the files are in.
    d.wait_metrics("every producer closed", Duration::from_secs(30), |m| {
        metric(m, "cdr_group_producers_open") == 0.0
    });
    assert_exactly_once(&topics, &local);
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(60)).success(), "{}", d.log_text());
}
