//! Horizontal scale over the real 3-broker cluster and the real sshd: several
//! `run` daemons with one `--group` name share one SFTP directory, and every
//! row still lands exactly once. One scenario in phases (one cluster start):
//!
//! 1. three instances on 200 files, one of them killed (SIGKILL) mid-run and
//!    a fourth, with an empty ledger, joining later, a broker killed during
//!    that rebalance and restarted: every file is ingested
//!    by exactly one instance (their `ingest committed` lines), every key is
//!    in the topics once (read_committed);
//!    `status --group` then lists the three live members, their shards (all
//!    of them, none twice) and no file waiting, or the files waiting per
//!    shard of a directory with new files; each member's per-shard metrics
//!    match its shards and its commits; `audit --group` reconciles all 200
//!    files from one instance's ledger, or from none;
//! 2. a zombie: the owner of a big file is paused (SIGSTOP) mid-file until
//!    the others have taken its shard over, then resumed: its next produce or
//!    commit is refused, it exits naming the fencing and the transactional
//!    id, and the file still lands exactly once.
//!
//! Uses the stack's cluster when it has three brokers, otherwise starts a
//! private 3-broker cluster (the SFTP server is always the stack's).

mod common;
mod daemon_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use cdr_to_redpanda::group::shard::shard_of;
use common::*;
use daemon_support::*;

/// `scripts/stack.sh ARGS` on the cluster in use: the private one, or the stack's.
fn cluster_sh(cluster: &Option<PrivateStack>, args: &[&str]) {
    stack_sh(cluster.as_ref().map(|c| c.dir.path()), args);
}

/// The brokers of a 3-broker cluster, and the private cluster if one was started.
fn three_brokers() -> (String, Option<PrivateStack>) {
    let stack = brokers();
    if stack.split(',').count() >= 3 {
        return (stack, None);
    }
    let cluster = PrivateStack::up(&["--kafka-nodes", "3", "--no-sftp"]);
    (cluster.brokers(), Some(cluster))
}

struct Setup {
    topics: Topics,
    brokers: String,
    remote: String,
    group: String,
    work: tempfile::TempDir,
}

impl Setup {
    fn instance(&self, tag: &str, extra: &[&str]) -> Daemon {
        let mut cmd = bin();
        cmd.arg("run")
            .args(["--workers", "2", "--chunk-rows", "20000"])
            .args(extra);
        self.topics
            .apply(&mut cmd, &self.work.path().join(format!("ledger-{tag}")));
        sftp_env(&mut cmd, &self.remote);
        cmd.env("KAFKA_BROKERS", &self.brokers)
            .env("CDR_TOPIC_REPLICATION", "3")
            .env("CDR_GROUP", &self.group)
            .env("CDR_GROUP_TOPIC", format!("{}-shards", self.group))
            .env("CDR_GROUP_SHARDS", "16")
            .env("CDR_GROUP_SESSION_TIMEOUT_SECONDS", "6");
        Daemon::spawn(cmd, self.work.path(), tag)
    }

    /// A one-shot subcommand against this group's cluster, topics and SFTP
    /// directory (`remote`), with the ledger in `ledger`; `--group` unless
    /// `per_instance`.
    fn command(&self, args: &[&str], ledger: &Path, remote: &str, per_instance: bool) -> Output {
        let mut cmd = bin();
        cmd.args(args);
        self.topics.apply(&mut cmd, ledger);
        sftp_env(&mut cmd, remote);
        cmd.env("KAFKA_BROKERS", &self.brokers)
            .env("CDR_GROUP_TOPIC", format!("{}-shards", self.group));
        if !per_instance {
            cmd.env("CDR_GROUP", &self.group);
        }
        cmd.output().unwrap()
    }

    /// `status --group --json` over `remote`.
    fn group_status(&self, remote: &str) -> serde_json::Value {
        let out = self.command(
            &["status", "--json"],
            &self.work.path().join("no-ledger"),
            remote,
            false,
        );
        assert!(out.status.success(), "status --group: {}", output_text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["group"].clone()
    }

    /// Latest checkpoint per file, read_committed.
    fn checkpoints(&self) -> BTreeMap<String, serde_json::Value> {
        read_committed(&self.brokers, &self.topics.checkpoints)
            .into_iter()
            .filter_map(|r| Some((r.key, serde_json::from_slice(&r.value).ok()?)))
            .collect()
    }

    fn wait_done(&self, files: usize, limit: Duration, daemons: &mut [&mut Daemon]) {
        let until = Instant::now() + limit;
        loop {
            for d in daemons.iter_mut() {
                if let Some(status) = d.child.try_wait().unwrap() {
                    let log = d.log_text();
                    // Fenced while a rebalance raced a broker's death: the
                    // instance exits 2 by design and its restart policy
                    // brings it back; anything else is a failure.
                    assert!(
                        log.contains("fenced: another instance took over transactional id"),
                        "an instance exited ({status}):\n{log}"
                    );
                    let tag = tag_of(d);
                    eprintln!("{tag} was fenced and exited; restarting it as a restart policy would");
                    **d = self.instance(&format!("{tag}r"), &[]);
                }
            }
            let done = self.checkpoints().values().filter(|c| c["done"] == true).count();
            if done >= files {
                return;
            }
            assert!(Instant::now() < until, "{done} of {files} files done within {limit:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// File names an instance logged as committed, over all its incarnations:
/// one fenced and restarted by `wait_done` (tag `<tag>r`) logged what it
/// committed before in the log of its earlier tag.
fn committed_by(d: &Daemon) -> Vec<String> {
    let mut tag = tag_of(d);
    let mut text = d.log_text();
    while let Some(earlier) = tag.strip_suffix('r').map(str::to_string) {
        text += &std::fs::read_to_string(d.log.with_file_name(format!("{earlier}.log"))).unwrap_or_default();
        tag = earlier;
    }
    text.lines()
        .filter(|l| l.contains("ingest committed"))
        .filter_map(|l| l.split("file=").nth(1)?.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_group_of_instances_shares_one_directory_exactly_once_through_kills_joins_and_a_fenced_zombie() {
    let started = Instant::now();
    let (brokers, cluster) = three_brokers();
    let (local, remote) = sftp_subdir(&unique("group"));
    let s = Setup {
        topics: Topics::new(),
        brokers,
        remote,
        group: unique("g"),
        work: tempfile::tempdir().unwrap(),
    };
    generate(&local, 100, 30, 11, "2024-03-01T00:00:00", 0.03);
    let files = 200;

    // Phase 1: three instances; one killed while the files flow; a fourth joins.
    let mut a = s.instance("a", &[]);
    let mut b = s.instance("b", &[]);
    let mut c = s.instance("c", &[]);
    a.wait_log("ingest committed", Duration::from_secs(90));
    let killed_after = committed_by(&a).len();
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let mut d = s.instance("d", &[]);
    // A broker dies while the group rebalances (a member gone, one joining).
    cluster_sh(&cluster, &["kafka-kill", "2"]);
    d.wait_log("shards taken over", Duration::from_secs(90));
    cluster_sh(&cluster, &["kafka-start", "2"]);
    s.wait_done(files, Duration::from_secs(150), &mut [&mut b, &mut c, &mut d]);
    assert!(killed_after < files, "the kill came while files were left");

    // Rows first: a file committed twice must say whether rows doubled.
    assert_exactly_once_on(&s.brokers, &s.topics, &local);
    let mut by_file: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (tag, inst) in [("a", &a), ("b", &b), ("c", &c), ("d", &d)] {
        for f in committed_by(inst) {
            by_file.entry(f).or_default().push(tag);
        }
    }
    // A file the killed instance committed just before its log line says so
    // only in the checkpoint topic (all done, per wait_done): at most one per slot.
    assert!(
        by_file.len() + 2 >= files,
        "{} of {files} files logged as committed",
        by_file.len()
    );
    let twice: Vec<_> = by_file.iter().filter(|(_, who)| who.len() > 1).take(5).collect();
    assert!(twice.is_empty(), "files committed by more than one instance: {twice:?}");
    let busy = ["b", "c", "d"]
        .iter()
        .filter(|t| by_file.values().any(|w| w.contains(t)))
        .count();
    assert!(busy >= 2, "the work was shared: {by_file:?}");
    assert_group_view(&s, &[&b, &c, &d], files);
    eprintln!("phase 1 (kill, join, 200 files) done after {:?}", started.elapsed());

    // Phase 2: the owner of a big file is paused past its session timeout.
    let big = generate(&local, 1, 40_000, 12, "2024-04-01T00:00:00", 0.0);
    let big_files: Vec<String> = big["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    let live = [&mut b, &mut c, &mut d];
    let until = Instant::now() + Duration::from_secs(60);
    let started_big = |d: &Daemon| {
        d.log_text()
            .lines()
            .filter(|l| l.contains("ingest started"))
            .find_map(|l| big_files.iter().find(|f| l.contains(f.as_str())).cloned())
    };
    let (owner, big_file) = loop {
        if let Some(found) = (0..3).find_map(|i| started_big(live[i]).map(|f| (i, f))) {
            break found;
        }
        assert!(Instant::now() < until, "nobody started the big files");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(300));
    live[owner].signal("STOP");
    // Resumed only once another instance has fenced the shard of the file in
    // flight: any other takeover (a rebalance still settling) proves nothing.
    let shard = shard_of(&big_file, 16);
    let others: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
    let takeovers_of_shard = |d: &Daemon| {
        d.log_text()
            .lines()
            .filter(|l| l.contains("shards taken over"))
            .filter(|l| taken_over_shards(l).contains(&shard))
            .count()
    };
    let before: Vec<usize> = others.iter().map(|&i| takeovers_of_shard(live[i])).collect();
    let until = Instant::now() + Duration::from_secs(60);
    while others
        .iter()
        .zip(&before)
        .all(|(&i, &n)| takeovers_of_shard(live[i]) == n)
    {
        assert!(
            Instant::now() < until,
            "nobody took shard {shard} of the paused owner over"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    live[owner].signal("CONT");
    let status = live[owner].wait_exit(Duration::from_secs(60));
    let zombie_log = live[owner].log_text();
    assert!(!status.success(), "the zombie must not go on:\n{zombie_log}");
    assert!(
        zombie_log.contains("fenced: another instance took over transactional id") && zombie_log.contains("-shard-"),
        "the zombie's exit names the fencing:\n{zombie_log}"
    );
    let (first, second) = (others[0], others[1]);
    let [x, y, z] = live;
    let mut rest: Vec<&mut Daemon> = vec![x, y, z]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i == first || *i == second)
        .map(|(_, d)| d)
        .collect();
    s.wait_done(files + big_files.len(), Duration::from_secs(150), &mut rest);
    assert_exactly_once_on(&s.brokers, &s.topics, &local);
    eprintln!("phase 2 (fenced zombie) done after {:?}", started.elapsed());
}

/// Phase 1's operator views: `status --group`, the per-shard metrics and
/// `audit --group`, once all `files` are done and `live` own the shards.
fn assert_group_view(s: &Setup, live: &[&Daemon], files: usize) {
    let shard_count = 16;
    let pids: Vec<String> = live.iter().map(|d| format!("-{}", d.child.id())).collect();
    // A member restarted during phase 1 may still be joining: wait for the
    // three live processes and a full assignment.
    let until = Instant::now() + Duration::from_secs(45);
    let view = loop {
        let view = s.group_status(&s.remote);
        let members = view["members"].as_array().unwrap();
        let ours = members
            .iter()
            .filter(|m| {
                pids.iter()
                    .any(|p| m["client_id"].as_str().unwrap().ends_with(p.as_str()))
            })
            .count();
        if members.len() == live.len() && ours == live.len() && view["unassigned"].as_array().unwrap().is_empty() {
            break view;
        }
        assert!(
            Instant::now() < until,
            "the group view never settled on the live members: {view:#}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(view["shard_count"], shard_count);
    assert_eq!(view["state"], "Stable", "{view:#}");
    assert_eq!(view["files_waiting"], 0, "all files are done: {view:#}");
    let mut owned: Vec<u64> = Vec::new();
    for m in view["members"].as_array().unwrap() {
        owned.extend(m["shards"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()));
        assert_eq!(m["files_waiting"], 0, "{m:#}");
        assert_eq!(m["this_host"], true, "every member runs on this machine: {m:#}");
        assert_eq!(
            m["this_instance"], false,
            "a view without a ledger is no member's: {m:#}"
        );
    }
    owned.sort();
    assert_eq!(
        owned,
        (0..shard_count).collect::<Vec<_>>(),
        "every shard owned by exactly one member"
    );

    // Each member's metrics name the shards the group view gives it, and its
    // per-shard commits add up to the files it logged as committed.
    for d in live {
        let pid = format!("-{}", d.child.id());
        let member = view["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["client_id"].as_str().unwrap().ends_with(pid.as_str()))
            .unwrap();
        let shards: Vec<String> = member["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.to_string())
            .collect();
        let labelled = |metrics: &BTreeMap<String, f64>, name: &str| -> BTreeMap<String, f64> {
            metrics
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.strip_prefix(&format!("{name}{{shard=\""))?
                            .strip_suffix("\"}")?
                            .to_string(),
                        *v,
                    ))
                })
                .collect()
        };
        // The gauges follow at the member's next poll after its takeover,
        // which a member restarted after being fenced may not have reached.
        let until = Instant::now() + Duration::from_secs(30);
        let (metrics, waiting) = loop {
            let metrics = d.scrape();
            let waiting = labelled(&metrics, "cdr_group_shard_files_waiting");
            let mut gauge_shards: Vec<String> = waiting.keys().cloned().collect();
            gauge_shards.sort_by_key(|s| s.parse::<u32>().unwrap());
            if gauge_shards == shards {
                break (metrics, waiting);
            }
            assert!(
                Instant::now() < until,
                "the waiting gauge covers exactly the member's shards: {gauge_shards:?}, {shards:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(waiting.values().all(|v| *v == 0.0), "nothing waits: {waiting:?}");
        let committed: f64 = labelled(&metrics, "cdr_group_shard_files_committed_total")
            .values()
            .sum();
        assert_eq!(
            committed as usize,
            committed_by(d).len(),
            "per-shard commits of {:?}",
            d.log
        );
    }

    // Read from one member's ledger, the view marks that member, and only
    // it, as this instance (all of them run on this host).
    for d in live {
        let pid = format!("-{}", d.child.id());
        let ledger = d.log.with_file_name(format!("ledger-{}", tag_of(d)));
        let out = s.command(&["status", "--json"], &ledger, &s.remote, false);
        assert!(out.status.success(), "status --group: {}", output_text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let marked: Vec<&str> = json["group"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["this_instance"] == true)
            .map(|m| m["client_id"].as_str().unwrap())
            .collect();
        assert!(
            marked.len() == 1 && marked[0].ends_with(pid.as_str()),
            "{}'s ledger marks {marked:?}",
            tag_of(d)
        );
        let human = String::from_utf8(s.command(&["status"], &ledger, &s.remote, false).stdout).unwrap();
        let line = human
            .lines()
            .find(|l| l.contains("(this instance)"))
            .unwrap_or_else(|| panic!("no member marked:\n{human}"));
        assert!(
            line.split_whitespace().next().unwrap().ends_with(pid.as_str()),
            "{line}"
        );
    }

    // New files in a directory of their own: the view counts them per shard
    // and names each lagging shard's owner.
    let (fresh, fresh_remote) = sftp_subdir(&unique("group-lag"));
    generate(&fresh, 3, 5, 13, "2024-05-01T00:00:00", 0.0);
    let lag = s.group_status(&fresh_remote);
    assert_eq!(lag["files_waiting"], 6, "{lag:#}");
    let lagging = lag["lagging_shards"].as_array().unwrap();
    assert_eq!(
        lagging
            .iter()
            .map(|l| l["files_waiting"].as_u64().unwrap())
            .sum::<u64>(),
        6
    );
    assert!(
        lagging.iter().all(|l| l["owner"].is_string()),
        "every lagging shard has an owner: {lag:#}"
    );

    // The audit across the group sees every file, whichever ledger it starts
    // from; one instance's ledger alone lacks the others' files, and says
    // where to look.
    let ledger = live[0].log.with_file_name(format!("ledger-{}", tag_of(live[0])));
    let alone = s.command(&["audit", "--json"], &ledger, &s.remote, true);
    assert_eq!(alone.status.code(), Some(1), "{}", output_text(&alone));
    let report: serde_json::Value = serde_json::from_slice(&alone.stdout).unwrap();
    assert!(
        report["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("--group")),
        "{:#}",
        report["notes"]
    );
    for ledger in [ledger, s.work.path().join("no-ledger")] {
        let out = s.command(&["audit", "--json"], &ledger, &s.remote, false);
        assert_eq!(
            out.status.code(),
            Some(0),
            "audit --group from {}: {}",
            ledger.display(),
            output_text(&out)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["summary"]["files"], files, "{:#}", report["summary"]);
    }
}

/// The shards of a `shards taken over ... shards={1, 4, 7}` log line.
fn taken_over_shards(line: &str) -> Vec<u32> {
    line.split("shards={")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .map(|list| list.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_default()
}

fn tag_of(d: &Daemon) -> String {
    d.log.file_stem().unwrap().to_string_lossy().into_owned()
}
