//! sshd goes away in the middle of a download and comes back: the file is
//! fetched again from the start, checked against its hash, and every row
//! lands exactly once. Alone in its test binary: it restarts the stack's sshd.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const ROWS: u64 = 3000;

fn stack(cmd: &str) {
    stack_sh(None, &[cmd]);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn sshd_restart_mid_download_refetches_and_lands_every_row_once() {
    let topics = Topics::new();
    let (local, remote) = sftp_subdir(&unique("midxfer"));
    // Few rows, many bytes: a long download, a short produce.
    let name = "cdr_data_20240301_000000.csv";
    let url = format!("http://example.com/{}", "a".repeat(100_000));
    let tmp = local.join(".writing");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
    writeln!(
        f,
        "msisdn,tower_id,up_bytes,down_bytes,data_type,ip_address,website_url,event_datetime"
    )
    .unwrap();
    for i in 0..ROWS {
        writeln!(
            f,
            "2783{i:07},12,100,200,video,10.1.2.3,{url},2024-03-01 00:00:{:02}.000001",
            i % 60
        )
        .unwrap();
    }
    drop(f);
    let size = std::fs::metadata(&tmp).unwrap().len();
    std::fs::rename(&tmp, local.join(name)).unwrap();

    let ledger = tempfile::tempdir().unwrap();
    let staging = cdr_to_redpanda::ingest::staging_path(&ledger.path().join("staging"), name, "staging");
    let mut cmd = bin();
    cmd.arg("once");
    topics.apply(&mut cmd, ledger.path());
    sftp_key_env(&mut cmd, &remote);
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();

    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let got = std::fs::metadata(&staging).map(|m| m.len()).unwrap_or(0);
        if got > 0 {
            assert!(
                got < size,
                "the download finished before sshd could be stopped; make the file larger"
            );
            break;
        }
        assert!(Instant::now() < until, "the download never started");
        std::thread::sleep(Duration::from_millis(2));
    }
    stack("sshd-stop");
    std::thread::sleep(Duration::from_secs(1));
    stack("sshd-start");

    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reconnecting") || stderr.contains("retry"),
        "the transfer was interrupted: {stderr}"
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in read_committed(&brokers(), &topics.data) {
        *counts.entry(r.key).or_default() += 1;
    }
    assert_eq!(counts.len() as u64, ROWS);
    assert!(counts.values().all(|&n| n == 1));
}
