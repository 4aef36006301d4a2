//! Horizontal scale over the real 3-broker cluster and the real sshd: several
//! `run` daemons with one `--group` name share one SFTP directory, and every
//! row still lands exactly once. One scenario in phases (one cluster start):
//!
//! 1. three instances on 200 files, one of them killed (SIGKILL) mid-run and
//!    a fourth, with an empty ledger, joining later, a broker killed during
//!    that rebalance and restarted: every file is ingested
//!    by exactly one instance (their `ingest committed` lines), every key is
//!    in the topics once (read_committed);
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
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use daemon_support::*;

/// A private 3-broker cluster, torn down on drop.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn sh(dir: &Path, args: &[&str]) -> String {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/stack.sh");
        let out = Command::new(script).args(args).env("STACK_DIR", dir).output().unwrap();
        assert!(out.status.success(), "stack.sh {args:?}: {}", output_text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn brokers(&self) -> String {
        Self::sh(self.dir.path(), &["env"])
            .lines()
            .find_map(|l| l.strip_prefix("export KAFKA_BROKERS="))
            .expect("KAFKA_BROKERS in stack env")
            .trim_matches(|c| c == '\'' || c == '"')
            .to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/stack.sh"))
            .arg("down")
            .env("STACK_DIR", self.dir.path())
            .output();
    }
}

/// `scripts/stack.sh ARGS` on the cluster in use: the private one, or the stack's.
fn cluster_sh(cluster: &Option<Cluster>, args: &[&str]) {
    let dir = match cluster {
        Some(c) => c.dir.path().to_path_buf(),
        None => PathBuf::from(env("STACK_DIR")),
    };
    Cluster::sh(&dir, args);
}

/// The brokers of a 3-broker cluster, and the private cluster if one was started.
fn three_brokers() -> (String, Option<Cluster>) {
    let stack = brokers();
    if stack.split(',').count() >= 3 {
        return (stack, None);
    }
    let cluster = Cluster { dir: tempfile::tempdir().unwrap() };
    Cluster::sh(cluster.dir.path(), &["up", "--kafka-nodes", "3", "--no-sftp"]);
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
        cmd.arg("run").args(["--workers", "2", "--chunk-rows", "20000"]).args(extra);
        self.topics.apply(&mut cmd, &self.work.path().join(format!("ledger-{tag}")));
        sftp_env(&mut cmd, &self.remote);
        cmd.env("KAFKA_BROKERS", &self.brokers)
            .env("CDR_TOPIC_REPLICATION", "3")
            .env("CDR_GROUP", &self.group)
            .env("CDR_GROUP_TOPIC", format!("{}-shards", self.group))
            .env("CDR_GROUP_SHARDS", "16")
            .env("CDR_GROUP_SESSION_TIMEOUT_SECONDS", "6");
        Daemon::spawn(cmd, self.work.path(), tag)
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
                    assert!(log.contains("fenced: another instance took over transactional id"), "an instance exited ({status}):\n{log}");
                    let tag = d.log.file_stem().unwrap().to_string_lossy().into_owned();
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

/// File names an instance logged as committed.
fn committed_by(d: &Daemon) -> Vec<String> {
    d.log_text()
        .lines()
        .filter(|l| l.contains("ingest committed"))
        .filter_map(|l| l.split("file=").nth(1)?.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
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

    let mut by_file: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (tag, inst) in [("a", &a), ("b", &b), ("c", &c), ("d", &d)] {
        for f in committed_by(inst) {
            by_file.entry(f).or_default().push(tag);
        }
    }
    // A file the killed instance committed just before its log line says so
    // only in the checkpoint topic (all done, per wait_done): at most one per slot.
    assert!(by_file.len() + 2 >= files, "{} of {files} files logged as committed", by_file.len());
    let twice: Vec<_> = by_file.iter().filter(|(_, who)| who.len() > 1).take(5).collect();
    assert!(twice.is_empty(), "files committed by more than one instance: {twice:?}");
    let busy = ["b", "c", "d"].iter().filter(|t| by_file.values().any(|w| w.contains(t))).count();
    assert!(busy >= 2, "the work was shared: {by_file:?}");
    assert_exactly_once_on(&s.brokers, &s.topics, &local);
    eprintln!("phase 1 (kill, join, 200 files) done after {:?}", started.elapsed());

    // Phase 2: the owner of a big file is paused past its session timeout.
    let big = generate(&local, 1, 40_000, 12, "2024-04-01T00:00:00", 0.0);
    let big_files: Vec<String> = big["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_string()).collect();
    let live = [&mut b, &mut c, &mut d];
    let until = Instant::now() + Duration::from_secs(60);
    let owner = loop {
        if let Some(i) = (0..3).find(|&i| live[i].log_text().lines().any(|l| l.contains("ingest started") && big_files.iter().any(|f| l.contains(f.as_str())))) {
            break i;
        }
        assert!(Instant::now() < until, "nobody started the big files");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(300));
    live[owner].signal("STOP");
    let others: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
    let takeovers = |d: &Daemon| d.log_text().matches("shards taken over").count();
    let before: Vec<usize> = others.iter().map(|&i| takeovers(live[i])).collect();
    let until = Instant::now() + Duration::from_secs(60);
    while others.iter().zip(&before).all(|(&i, &n)| takeovers(live[i]) == n) {
        assert!(Instant::now() < until, "nobody took the paused owner's shards over");
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
    let mut rest: Vec<&mut Daemon> = vec![x, y, z].into_iter().enumerate().filter(|(i, _)| *i == first || *i == second).map(|(_, d)| d).collect();
    s.wait_done(files + big_files.len(), Duration::from_secs(150), &mut rest);
    assert_exactly_once_on(&s.brokers, &s.topics, &local);
    eprintln!("phase 2 (fenced zombie) done after {:?}", started.elapsed());
}
