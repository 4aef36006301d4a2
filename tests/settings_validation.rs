//! Harmful settings are refused before anything connects, one line each,
//! naming the setting and where its value came from (no stack needed: the
//! binary stops at the edge).

mod common;

use common::*;

/// Runs `args` with these environment variables set; the ledger in a temp dir.
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let ledger = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.args(args).env("CDR_LEDGER_DIR", ledger.path());
    for v in [
        "KAFKA_BROKERS",
        "SFTP_PORT",
        "CDR_CHUNK_ROWS",
        "CDR_POLL_INTERVAL_SECONDS",
        "CDR_CONFIG",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn zero_chunk_rows_interval_and_port_are_refused_naming_each_setting_and_its_source() {
    let (code, err) = run(
        &["run", "--poll-interval-seconds", "0"],
        &[("CDR_CHUNK_ROWS", "0"), ("SFTP_PORT", "0")],
    );
    assert_eq!(code, Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "one line per problem: {err}");
    assert!(err.contains("error: --chunk-rows = \"0\" (from the environment variable CDR_CHUNK_ROWS): must be a whole number of at least 1"), "{err}");
    assert!(
        err.contains("error: --poll-interval-seconds = \"0\" (from the command line)"),
        "{err}"
    );
    assert!(
        err.contains(
            "error: --sftp-port = \"0\" (from the environment variable SFTP_PORT): must be a port from 1 to 65535"
        ),
        "{err}"
    );
}

#[test]
fn broker_lists_must_be_host_port_without_a_scheme() {
    for (brokers, why) in [
        ("", "must name at least one broker"),
        ("127.0.0.1:99999", "the port must be from 1 to 65535"),
        ("http://127.0.0.1:9092", "without a scheme"),
    ] {
        let (code, err) = run(&["once"], &[("KAFKA_BROKERS", brokers)]);
        assert_eq!(code, Some(2), "{brokers:?}: {err}");
        assert!(
            err.contains("--brokers") && err.contains("environment variable KAFKA_BROKERS") && err.contains(why),
            "{err}"
        );
    }
}

#[test]
fn a_bad_value_from_the_config_file_is_blamed_on_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cdr.toml");
    std::fs::write(&file, "chunk-rows = 0\n").unwrap();
    let (code, err) = run(&["--config", file.to_str().unwrap(), "once"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--chunk-rows = \"0\" (from the config file, as CDR_CHUNK_ROWS)"),
        "{err}"
    );
}

#[test]
fn an_unparsable_value_from_the_environment_says_it_came_from_there() {
    let (code, err) = run(&["once"], &[("CDR_CHUNK_ROWS", "many")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("note: the value of --chunk-rows came from the environment variable CDR_CHUNK_ROWS"),
        "{err}"
    );
    let (_, err) = run(&["once", "--chunk-rows", "many"], &[]);
    assert!(!err.contains("note:"), "a flag is blamed on the flag alone: {err}");
}
