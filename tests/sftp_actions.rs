//! Which SFTP files are taken and what happens to them afterwards, through
//! the binary against the real sshd and broker: delete and move actions only
//! after commit, failed files moved to the error directory, marker-file mode,
//! and a file still being written left alone until it settles.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

fn once(topics: &Topics, remote: &str, ledger: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = bin();
    cmd.arg("once").args(extra);
    topics.apply(&mut cmd, ledger);
    sftp_key_env(&mut cmd, remote);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn committed_files_are_moved_and_bad_files_go_to_the_error_dir() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("move"));
    generate_files(&local, &["--files", "2", "--rows", "20", "--kinds", "data"]);
    std::fs::write(local.join("cdr_voice_20240101_000000.csv"), "msisdn,tower_id\n1,2\n").unwrap();
    let ledger = tempfile::tempdir().unwrap();
    let done = format!("{remote}/done");
    let out = once(
        &topics,
        &remote,
        ledger.path(),
        &["--after-ingest", &format!("move:{done}"), "--error-dir", "rejected"],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "the bad file fails the pass: {}",
        output_text(&out)
    );
    assert_eq!(names(&local.join("done")).len(), 2, "{:?}", names(&local));
    assert_eq!(names(&local.join("rejected")), vec!["cdr_voice_20240101_000000.csv"]);
    assert_eq!(read_committed(&brokers(), &topics.data).len(), 40);
    assert!(
        names(&local).iter().all(|n| !n.starts_with("cdr_")),
        "{:?}",
        names(&local)
    );
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn delete_action_removes_only_committed_files() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("delete"));
    generate_files(&local, &["--files", "1", "--rows", "15", "--kinds", "data,voice"]);
    let ledger = tempfile::tempdir().unwrap();
    let out = once(&topics, &remote, ledger.path(), &["--after-ingest", "delete"], &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(names(&local).is_empty(), "{:?}", names(&local));
    assert_eq!(read_committed(&brokers(), &topics.data).len(), 15);
    assert_eq!(read_committed(&brokers(), &topics.voice).len(), 15);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn marker_mode_takes_only_files_whose_marker_exists() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("marker"));
    generate_files(&local, &["--files", "2", "--rows", "10", "--kinds", "voice"]);
    let files = names(&local);
    std::fs::write(local.join(format!("{}.done", files[0])), "").unwrap();
    let ledger = tempfile::tempdir().unwrap();
    let out = once(&topics, &remote, ledger.path(), &["--marker-suffix", ".done"], &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    let voice = read_committed(&brokers(), &topics.voice);
    assert_eq!(voice.len(), 10);
    assert!(voice.iter().all(|r| r.headers["cdr-source-file"] == files[0]));
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_file_younger_than_the_minimum_age_is_not_taken_and_part_files_are_ignored() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("young"));
    generate_files(&local, &["--files", "1", "--rows", "10", "--kinds", "data"]);
    std::fs::copy(
        local.join(&names(&local)[0]),
        local.join("cdr_data_20250101_000000.csv.part"),
    )
    .unwrap();
    let ledger = tempfile::tempdir().unwrap();
    // Everything was just written: with a one-hour minimum age nothing is ready.
    let out = once(&topics, &remote, ledger.path(), &[], &[("CDR_MIN_AGE_SECONDS", "3600")]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(read_committed(&brokers(), &topics.data).is_empty());
    let out = once(&topics, &remote, ledger.path(), &[], &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    let data = read_committed(&brokers(), &topics.data);
    assert_eq!(data.len(), 10, "the .part copy is never taken");
}
