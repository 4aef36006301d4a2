//! Partition by subscriber: with `--partition-by data=msisdn,voice=msisdn`
//! every record of one subscriber sits in one partition, in row order, and
//! that partition is the one the Kafka client's murmur2 partitioner picks for
//! the msisdn as a key (checked with kcat, an independent client). The key
//! stays the record id.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

/// The partition librdkafka's `murmur2_random` partitioner (the Java
/// client's default) gives each of `keys` in a topic of `partitions`, by
/// producing them with kcat and reading back where they landed.
fn kcat_partitions(keys: &[&str], partitions: i32) -> BTreeMap<String, i32> {
    let topic = unique("murmur");
    let admin = cdr_to_redpanda::sink::KafkaConfig::new(brokers());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let client: AdminClient<rdkafka::client::DefaultClientContext> = admin.client_config().create().unwrap();
        let new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(1));
        client.create_topics([&new], &AdminOptions::new()).await.unwrap();
    });
    let mut produce = Command::new("kcat")
        .args([
            "-b",
            &brokers(),
            "-t",
            &topic,
            "-P",
            "-K",
            ":",
            "-X",
            "partitioner=murmur2_random",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = produce.stdin.take().unwrap();
        for k in keys {
            writeln!(stdin, "{k}:x").unwrap();
        }
    }
    assert!(produce.wait().unwrap().success());
    let out = Command::new("kcat")
        .args(["-b", &brokers(), "-t", &topic, "-C", "-e", "-q", "-f", "%k %p\\n"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, p) = l.split_once(' ').unwrap();
            (k.to_owned(), p.parse().unwrap())
        })
        .collect()
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn each_subscribers_records_sit_in_the_partition_murmur2_gives_their_msisdn_in_row_order() {
    let topics = Topics::new();
    let (files, ledger) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate_files(files.path(), &["--files", "2", "--rows", "400", "--bad-rate", "0"]);
    let out = local_command(
        &topics,
        files.path(),
        ledger.path(),
        &["once", "--partition-by", "data=msisdn,voice=msisdn"],
    );
    assert!(out.status.success(), "{}", output_text(&out));

    for topic in [&topics.data, &topics.voice] {
        let records = read_committed(&brokers(), topic);
        assert!(!records.is_empty());
        // msisdn -> (partition, row indices in the order read)
        let mut seen: BTreeMap<String, (i32, Vec<(String, u64)>)> = BTreeMap::new();
        for r in &records {
            let v: Value = serde_json::from_slice(&r.value).unwrap();
            let msisdn = v["msisdn"].as_str().unwrap().to_owned();
            let (prefix, row) = r.key.rsplit_once('-').unwrap();
            let entry = seen.entry(msisdn.clone()).or_insert((r.partition, Vec::new()));
            assert_eq!(entry.0, r.partition, "subscriber {msisdn} in two partitions");
            entry.1.push((prefix.to_owned(), row.parse().unwrap()));
        }
        assert!(
            seen.values().any(|(_, rows)| rows.len() > 1),
            "some subscriber has several records"
        );
        for (msisdn, (_, rows)) in &seen {
            let mut by_file: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
            for (file, row) in rows {
                by_file.entry(file).or_default().push(*row);
            }
            for rows in by_file.values() {
                assert!(
                    rows.windows(2).all(|w| w[0] < w[1]),
                    "{msisdn}'s rows out of order: {rows:?}"
                );
            }
        }
        let partitions_used: std::collections::BTreeSet<i32> = seen.values().map(|(p, _)| *p).collect();
        assert!(partitions_used.len() > 1, "subscribers spread over the partitions");
        let keys: Vec<&str> = seen.keys().map(String::as_str).collect();
        let expected = kcat_partitions(&keys, 3);
        for (msisdn, (p, _)) in &seen {
            assert_eq!(expected[msisdn], *p, "{msisdn}: the client's murmur2 partition");
        }
    }
}
