//! A shard revoked while its file is in flight is handed off at a chunk
//! boundary, not after the whole file: on the real broker and sshd, one
//! instance works on a big file in every shard at once, a second one joins,
//! and the shards that move stop at their next commit; the newcomer resumes
//! those files after the last committed row. Every file is committed by one
//! instance and every row lands exactly once.

mod common;
mod daemon_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use cdr_to_redpanda::group::shard::shard_of;
use common::*;
use daemon_support::*;

const SHARDS: u32 = 8;

fn instance(topics: &Topics, work: &Path, remote: &str, group: &str, tag: &str, workers: usize) -> Daemon {
    let mut cmd = bin();
    cmd.arg("run")
        .args(["--workers", &workers.to_string(), "--chunk-rows", "2000"]);
    topics.apply(&mut cmd, &work.join(format!("ledger-{tag}")));
    sftp_env(&mut cmd, remote);
    cmd.env("CDR_GROUP", group)
        .env("CDR_GROUP_TOPIC", format!("{group}-shards"))
        .env("CDR_GROUP_SHARDS", SHARDS.to_string())
        .env("CDR_GROUP_SESSION_TIMEOUT_SECONDS", "6");
    Daemon::spawn(cmd, work, tag)
}

/// `field=value` of the log lines saying `message`, per file.
fn logged(d: &Daemon, message: &str, field: &str) -> BTreeMap<String, String> {
    let value = |line: &str, name: &str| -> Option<String> {
        Some(
            line.split(&format!("{name}="))
                .nth(1)?
                .split_whitespace()
                .next()?
                .to_string(),
        )
    };
    d.log_text()
        .lines()
        .filter(|l| l.contains(message))
        .filter_map(|l| Some((value(l, "file")?, value(l, field)?)))
        .collect()
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_revoked_shard_stops_at_a_chunk_boundary_and_its_new_owner_resumes_the_file() {
    let work = tempfile::tempdir().unwrap();
    let topics = Topics::new();
    let group = unique("handoff");
    let (local, remote) = sftp_subdir(&unique("handoff"));
    // One big file per shard: names are generated first, then one per shard kept.
    let pool = local.with_file_name(format!("{}-pool", local.file_name().unwrap().to_string_lossy()));
    generate(&pool, 8, 100_000, 21, "2024-06-01T00:00:00", 0.01);
    let mut per_shard: BTreeMap<u32, String> = BTreeMap::new();
    let mut names: Vec<String> = std::fs::read_dir(&pool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names.into_iter().filter(|n| n.starts_with("cdr_")) {
        per_shard.entry(shard_of(&name, SHARDS)).or_insert(name);
    }
    assert!(
        per_shard.len() >= 6,
        "the generated names cover most shards: {per_shard:?}"
    );
    for name in per_shard.values() {
        std::fs::rename(pool.join(name), local.join(name)).unwrap();
    }
    std::fs::remove_dir_all(&pool).unwrap();
    let files: BTreeSet<String> = per_shard.values().cloned().collect();

    let mut a = instance(&topics, work.path(), &remote, &group, "a", files.len());
    let until = Instant::now() + Duration::from_secs(90);
    while logged(&a, "ingest started", "resume_after_row").len() < files.len() {
        assert!(a.child.try_wait().unwrap().is_none(), "a exited:\n{}", a.log_text());
        assert!(Instant::now() < until, "a did not start every file:\n{}", a.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut b = instance(&topics, work.path(), &remote, &group, "b", files.len());
    b.wait_log("shards taken over", Duration::from_secs(90));

    // Done when every file is committed by one of the two.
    let until = Instant::now() + Duration::from_secs(240);
    loop {
        for d in [&mut a, &mut b] {
            assert!(
                d.child.try_wait().unwrap().is_none(),
                "an instance exited:\n{}",
                d.log_text()
            );
        }
        let done: BTreeSet<String> = logged(&a, "ingest committed", "rows")
            .into_keys()
            .chain(logged(&b, "ingest committed", "rows").into_keys())
            .collect();
        if done == files {
            break;
        }
        assert!(
            Instant::now() < until,
            "{} of {} files committed",
            done.len(),
            files.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let stopped = logged(&a, "shard handed off: file left in progress", "rows_done");
    assert!(
        !stopped.is_empty(),
        "a finished every revoked file whole instead of stopping at a chunk boundary:\n{}",
        a.log_text()
    );
    let by_a = logged(&a, "ingest committed", "rows");
    let resumed = logged(&b, "ingest started", "resume_after_row");
    let by_b = logged(&b, "ingest committed", "rows");
    for (file, rows_done) in &stopped {
        assert!(!by_a.contains_key(file), "{file} stopped by a and still committed by a");
        assert_eq!(
            resumed.get(file),
            Some(rows_done),
            "b resumes {file} after a's last committed row"
        );
        assert!(
            rows_done.parse::<u64>().unwrap() < 100_000,
            "{file} stopped before its end"
        );
        assert!(by_b.contains_key(file), "b commits {file}");
    }
    let twice: Vec<&String> = by_a.keys().filter(|f| by_b.contains_key(*f)).collect();
    assert!(twice.is_empty(), "files committed by both: {twice:?}");
    assert_exactly_once(&topics, &local);
}
