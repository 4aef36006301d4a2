//! Crash torture over a group: three `run` instances with one `--group` name
//! share one SFTP directory while files keep arriving, and again and again a
//! random one is SIGKILLed (its ledger deleted now and then) and started
//! again, so shards keep moving between live, dead and new members. At the
//! end every file is done and every row is in Kafka exactly once
//! (read_committed). CDR_GROUP_TORTURE_KILLS sets the kills (default 20).

mod common;
mod daemon_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use daemon_support::*;
use rand::{Rng, SeedableRng};

fn instance(topics: &Topics, remote: &str, group: &str, work: &std::path::Path, tag: &str, life: u32) -> Daemon {
    let mut cmd = bin();
    cmd.arg("run").args(["--workers", "2", "--chunk-rows", "10"]);
    topics.apply(&mut cmd, &work.join(format!("ledger-{tag}")));
    sftp_env(&mut cmd, remote);
    cmd.env("CDR_GROUP", group)
        .env("CDR_GROUP_TOPIC", format!("{group}-shards"))
        .env("CDR_GROUP_SHARDS", "12")
        .env("CDR_GROUP_SESSION_TIMEOUT_SECONDS", "6");
    Daemon::spawn(cmd, work, &format!("{tag}-{life}"))
}

fn done_files(topics: &Topics) -> usize {
    let latest: BTreeMap<String, serde_json::Value> = read_committed(&brokers(), &topics.checkpoints)
        .into_iter()
        .filter_map(|r| Some((r.key, serde_json::from_slice(&r.value).ok()?)))
        .collect();
    latest.values().filter(|c| c["done"] == true).count()
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn random_kills_across_a_group_never_lose_or_duplicate_a_row() {
    let kills: u32 = std::env::var("CDR_GROUP_TORTURE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("CDR_TORTURE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("group torture seed {seed} (set CDR_TORTURE_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let topics = Topics::new();
    let group = unique("gt");
    let (local, remote) = sftp_subdir(&unique("group-torture"));
    let work = tempfile::tempdir().unwrap();
    generate(&local, 20, 30, 7, "2024-05-01T00:00:00", 0.03);
    let mut files = 40;

    let tags = ["a", "b", "c"];
    let mut lives = [0u32; 3];
    let mut daemons: Vec<Daemon> = tags
        .iter()
        .map(|t| instance(&topics, &remote, &group, work.path(), t, 0))
        .collect();
    daemons[0].wait_log("shards taken over", Duration::from_secs(60));
    for k in 0..kills {
        // New files keep arriving, a day apart so names never collide.
        let start = (chrono::NaiveDate::from_ymd_opt(2024, 6, 1).unwrap() + chrono::Days::new(k.into()))
            .format("%Y-%m-%dT00:00:00")
            .to_string();
        generate(&local, 1, 30, 100 + u64::from(k), &start, 0.03);
        files += 2;
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1500)));
        let i = rng.random_range(0..3);
        let _ = daemons[i].child.kill();
        let _ = daemons[i].child.wait();
        if k % 5 == 4 {
            // An empty disk: the checkpoint topic alone must be enough.
            let _ = std::fs::remove_dir_all(work.path().join(format!("ledger-{}", tags[i])));
        }
        lives[i] += 1;
        daemons[i] = instance(&topics, &remote, &group, work.path(), tags[i], lives[i]);
    }
    let until = Instant::now() + Duration::from_secs(180);
    loop {
        let done = done_files(&topics);
        if done >= files {
            break;
        }
        for d in &mut daemons {
            if let Some(s) = d.child.try_wait().unwrap() {
                panic!("an instance exited ({s}):\n{}", d.log_text());
            }
        }
        assert!(Instant::now() < until, "{done} of {files} files done after the kills");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_exactly_once(&topics, &local);
}
