//! The ground under the sink: against the stack's real broker, a committed
//! transaction is visible to read_committed readers and an aborted one never
//! is; kcat (an independent client) agrees; a second producer with the same
//! transactional id fences the first.

mod common;

use std::process::Command;

use cdr_to_redpanda::sink::producer::OutRecord;
use cdr_to_redpanda::sink::{Action, KafkaConfig, TxnProducer};
use common::*;

fn send(p: &mut TxnProducer, topic: &str, key: &str) {
    p.send(OutRecord {
        topic,
        key: key.as_bytes(),
        value: b"{}",
        timestamp_ms: None,
        partition: None,
        headers: None,
    })
    .unwrap();
}

fn create_topic(topic: &str) {
    let out = Command::new("kcat")
        .args(["-P", "-b", &brokers(), "-t", topic, "-p", "0"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn committed_records_are_visible_and_aborted_ones_never_are() {
    let topic = unique("txn");
    create_topic(&topic);
    let mut cfg = KafkaConfig::new(brokers());
    cfg.transactional_id_prefix = unique("txn-id");
    let mut p = TxnProducer::new(&cfg, 0).unwrap();

    p.begin().unwrap();
    for i in 0..10 {
        send(&mut p, &topic, &format!("committed-{i}"));
    }
    p.commit().unwrap();
    p.begin().unwrap();
    for i in 0..10 {
        send(&mut p, &topic, &format!("aborted-{i}"));
    }
    p.poll();
    p.abort().unwrap();
    p.begin().unwrap();
    send(&mut p, &topic, "committed-last");
    p.commit().unwrap();

    let seen: Vec<String> = read_committed(&brokers(), &topic).into_iter().map(|r| r.key).collect();
    let mut want: Vec<String> = (0..10).map(|i| format!("committed-{i}")).collect();
    want.push("committed-last".into());
    let mut got = seen.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let kcat = Command::new("kcat")
        .args(["-C", "-b", &brokers(), "-t", &topic, "-e", "-q", "-f", "%k\\n"])
        .args(["-X", "isolation.level=read_committed"])
        .output()
        .unwrap();
    let mut by_kcat: Vec<String> = String::from_utf8_lossy(&kcat.stdout)
        .lines()
        .map(String::from)
        .collect();
    by_kcat.sort();
    assert_eq!(by_kcat, want);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn a_new_producer_with_the_same_transactional_id_fences_the_old_one() {
    let topic = unique("fence");
    create_topic(&topic);
    let mut cfg = KafkaConfig::new(brokers());
    cfg.transactional_id_prefix = unique("fence-id");
    let mut zombie = TxnProducer::new(&cfg, 0).unwrap();
    zombie.begin().unwrap();
    send(&mut zombie, &topic, "zombie");
    zombie.poll();

    // The restarted instance: init_transactions aborts what the zombie left open.
    let mut fresh = TxnProducer::new(&cfg, 0).unwrap();
    fresh.begin().unwrap();
    send(&mut fresh, &topic, "fresh");
    fresh.commit().unwrap();

    let err = zombie.commit().unwrap_err();
    assert_eq!(err.action(), Action::Fatal, "{err}");
    let keys: Vec<String> = read_committed(&brokers(), &topic).into_iter().map(|r| r.key).collect();
    assert_eq!(keys, vec!["fresh".to_string()]);
}
