//! `check-config` against the real broker: a replication factor above the
//! broker count fails the check (before, it said ok and `once` then exited 2
//! creating the topics).

mod common;

use common::*;

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_replication_factor_above_the_broker_count_fails_check_config() {
    let topics = Topics::new();
    let (files, ledger) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let nodes: usize = env("KAFKA_NODES").parse().unwrap();
    let too_many = (nodes + 1).to_string();
    let mut cmd = bin();
    cmd.arg("check-config");
    topics.apply(&mut cmd, ledger.path());
    cmd.env("CDR_LOCAL_DIR", files.path())
        .env("CDR_TOPIC_REPLICATION", &too_many);
    let out = cmd.output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        shown.contains(&format!("kafka: FAILED: replication factor {too_many}"))
            && shown.contains(&format!("exceeds the {nodes} broker(s)")),
        "{shown}"
    );

    let ok = local_command(&topics, files.path(), ledger.path(), &["check-config"]);
    assert!(
        ok.status.success(),
        "within the broker count it passes: {}",
        output_text(&ok)
    );
}
