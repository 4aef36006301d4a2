//! SftpSource against the real sshd of the local stack (`scripts/stack.sh`).
//! Each test works in its own upload subdirectory, so they run in parallel.
//! The sshd restart test lives in `sftp_reconnect.rs`, a separate binary, so
//! it never cuts these tests' connections.

mod common;
mod sftp_support;

use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use cdr_to_redpanda::secret::Secret;
use cdr_to_redpanda::source::select::{SelectConfig, Selector};
use cdr_to_redpanda::source::sftp::{Fingerprint, HostKeyPolicy, SecretSource, SftpConfig, SftpSource};
use cdr_to_redpanda::source::{RemoteFile, Source, SourceError};
use sftp_support::{new_key, sha256_of, ssh_keygen_fingerprint, stack};

fn find(listing: &[RemoteFile], name: &str) -> RemoteFile {
    listing
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} not in listing {listing:?}"))
        .clone()
}

fn refused(result: Result<SftpSource, SourceError>) -> String {
    match result {
        Err(SourceError::Refused(msg)) => msg,
        Err(other) => panic!("expected Refused, got {other:?}"),
        Ok(_) => panic!("expected Refused, got a connection"),
    }
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn password_auth_connects_lazily_and_describes_itself_without_the_password() {
    let stack = stack();
    let dir = stack.test_dir("pw-fetch");
    dir.write("cdr_data_20240101_000000.csv", b"x");
    let mut source = SftpSource::new(stack.password_config(&dir)).unwrap();
    assert!(!source.is_connected(), "connects lazily");
    assert_eq!(source.list().unwrap().files.len(), 1);
    assert!(source.is_connected());
    assert!(source.describe().contains(&stack.user));
    assert!(!source.describe().contains(&stack.password));
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn open_now_opens_the_session_ahead_of_its_first_use_and_reports_a_refusal() {
    let stack = stack();
    let dir = stack.test_dir("open-now");
    dir.write("cdr_data_20240101_000000.csv", b"x");
    let mut source = SftpSource::new(stack.key_config(&dir)).unwrap();
    source.open_now().unwrap();
    assert!(source.is_connected());
    // Opening again keeps the session it has.
    source.open_now().unwrap();
    assert_eq!(source.list().unwrap().files.len(), 1);

    let mut config = stack.password_config(&dir);
    config.password = Some(SecretSource::Value(Secret::new("Wr0ng-P4ssw0rd")));
    let mut refused_source = SftpSource::new(config).unwrap();
    let err = refused_source.open_now().unwrap_err();
    assert!(matches!(err, SourceError::Refused(_)), "{err:?}");
    assert!(!refused_source.is_connected());
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn password_can_come_from_a_file() {
    let stack = stack();
    let dir = stack.test_dir("pw-file");
    dir.write("x.csv", b"x");
    let secrets = tempfile::tempdir().unwrap();
    let pw_file = secrets.path().join("password");
    std::fs::write(&pw_file, format!("{}\n", stack.password)).unwrap();
    let mut config = stack.password_config(&dir);
    config.password = Some(SecretSource::File(pw_file));
    let mut source = SftpSource::connect(config).unwrap();
    assert_eq!(source.list().unwrap().files.len(), 1);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn key_auth_works() {
    let stack = stack();
    let dir = stack.test_dir("key-auth");
    dir.write("cdr_voice_20240101_000000.csv", b"msisdn\n1\n");
    let mut source = SftpSource::connect(stack.key_config(&dir)).unwrap();
    assert!(source.is_connected());
    let listing = source.list().unwrap().files;
    let file = find(&listing, "cdr_voice_20240101_000000.csv");
    let staging = tempfile::NamedTempFile::new().unwrap();
    let fetched = source.fetch(&file, staging.path()).unwrap();
    assert_eq!(fetched.sha256, sha256_of(b"msisdn\n1\n"));
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn wrong_password_is_refused_with_a_clear_message_without_the_password() {
    let stack = stack();
    let dir = stack.test_dir("pw-wrong");
    let mut config = stack.password_config(&dir);
    let wrong = "Wr0ng-P4ssw0rd-do-not-log";
    config.password = Some(SecretSource::Value(Secret::new(wrong)));
    let msg = refused(SftpSource::connect(config));
    assert!(msg.contains("authentication failed"), "{msg}");
    assert!(msg.contains(&stack.user), "{msg}");
    assert!(msg.contains(&format!("{}:{}", stack.host, stack.port)), "{msg}");
    assert!(msg.contains("password"), "{msg}");
    assert!(!msg.contains(wrong), "{msg}");
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn wrong_key_is_refused() {
    let stack = stack();
    let dir = stack.test_dir("key-wrong");
    let keys = tempfile::tempdir().unwrap();
    let mut config = stack.key_config(&dir);
    config.private_key.as_mut().unwrap().path = new_key(keys.path(), "stranger");
    let msg = refused(SftpSource::connect(config));
    assert!(msg.contains("authentication failed"), "{msg}");
    assert!(msg.contains("publickey"), "{msg}");
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn unreadable_key_file_is_refused_naming_the_file() {
    let stack = stack();
    let dir = stack.test_dir("key-missing");
    let mut config = stack.key_config(&dir);
    config.private_key.as_mut().unwrap().path = "/nonexistent/id_ed25519".into();
    let msg = refused(SftpSource::connect(config));
    assert!(msg.contains("/nonexistent/id_ed25519"), "{msg}");
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn unknown_host_key_is_refused_with_the_ssh_keyscan_command() {
    let stack = stack();
    let dir = stack.test_dir("hk-unknown");
    let tmp = tempfile::tempdir().unwrap();
    let known = tmp.path().join("known_hosts");
    std::fs::write(&known, "").unwrap();
    let mut config = stack.password_config(&dir);
    config.host_key = HostKeyPolicy::KnownHosts(known.clone());
    let msg = refused(SftpSource::connect(config));
    let keyscan = format!("ssh-keyscan -p {} {} >> {}", stack.port, stack.host, known.display());
    assert!(msg.contains(&keyscan), "{msg}");
    assert!(msg.contains(&format!("[{}]:{}", stack.host, stack.port)), "{msg}");
    assert!(msg.contains(&stack.host_fingerprint()), "offered key shown: {msg}");
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn missing_known_hosts_file_is_refused_with_the_ssh_keyscan_command() {
    let stack = stack();
    let dir = stack.test_dir("hk-nofile");
    let mut config = stack.password_config(&dir);
    config.host_key = HostKeyPolicy::KnownHosts("/nonexistent/known_hosts".into());
    let msg = refused(SftpSource::connect(config));
    assert!(msg.contains("/nonexistent/known_hosts"), "{msg}");
    assert!(msg.contains("ssh-keyscan"), "{msg}");
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn mismatched_host_key_is_refused_showing_both_fingerprints() {
    let stack = stack();
    let dir = stack.test_dir("hk-mismatch");
    let tmp = tempfile::tempdir().unwrap();
    let impostor = new_key(tmp.path(), "impostor");
    let impostor_pub = std::fs::read_to_string(impostor.with_extension("pub")).unwrap();
    let mut fields = impostor_pub.split_whitespace();
    let (kind, blob) = (fields.next().unwrap(), fields.next().unwrap());
    let known = tmp.path().join("known_hosts");
    std::fs::write(&known, format!("[{}]:{} {kind} {blob}\n", stack.host, stack.port)).unwrap();
    let mut config = stack.password_config(&dir);
    config.host_key = HostKeyPolicy::KnownHosts(known.clone());
    let msg = refused(SftpSource::connect(config));
    assert!(msg.contains("does not match"), "{msg}");
    assert!(msg.contains(&stack.host_fingerprint()), "offered: {msg}");
    assert!(msg.contains(&ssh_keygen_fingerprint(&known)), "expected: {msg}");
    assert!(msg.contains("ssh-keygen -R"), "{msg}");
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn pinned_fingerprint_correct_connects_and_wrong_is_refused() {
    let stack = stack();
    let dir = stack.test_dir("hk-pin");
    dir.write("a.csv", b"a");
    let right: Fingerprint = stack.host_fingerprint().parse().unwrap();
    let mut config = stack.password_config(&dir);
    config.host_key = HostKeyPolicy::Fingerprint(right);
    let mut source = SftpSource::connect(config.clone()).unwrap();
    assert_eq!(source.list().unwrap().files.len(), 1);

    let tmp = tempfile::tempdir().unwrap();
    let other = new_key(tmp.path(), "other");
    let wrong: Fingerprint = ssh_keygen_fingerprint(&other.with_extension("pub")).parse().unwrap();
    config.host_key = HostKeyPolicy::Fingerprint(wrong);
    let msg = refused(SftpSource::connect(config));
    assert!(msg.contains("pinned fingerprint"), "{msg}");
    assert!(msg.contains(&wrong.to_string()), "{msg}");
    assert!(msg.contains(&right.to_string()), "offered: {msg}");
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn insecure_skip_connects_without_any_known_host() {
    let stack = stack();
    let dir = stack.test_dir("hk-skip");
    let mut config = stack.password_config(&dir);
    config.host_key = HostKeyPolicy::InsecureSkip;
    let mut source = SftpSource::connect(config).unwrap();
    assert!(source.list().unwrap().files.is_empty());
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn missing_remote_directory_is_refused() {
    let stack = stack();
    let dir = stack.test_dir("no-dir");
    let mut config = stack.password_config(&dir);
    config.remote_dir = format!("{}/does-not-exist", dir.remote);
    let mut source = SftpSource::new(config).unwrap();
    match source.list() {
        Err(SourceError::Refused(msg)) => assert!(msg.contains("does-not-exist"), "{msg}"),
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn move_to_takes_an_absolute_remote_directory() {
    let stack = stack();
    let dir = stack.test_dir("move");
    let mut source = SftpSource::new(stack.key_config(&dir)).unwrap();
    dir.write("cdr_data_1.csv", b"first");
    let absolute = format!("{}/processed/2024", dir.remote);
    let moved = source.move_to("cdr_data_1.csv", &absolute).unwrap();
    assert_eq!(moved, format!("{absolute}/cdr_data_1.csv"));
    assert_eq!(
        std::fs::read(dir.local.join("processed/2024/cdr_data_1.csv")).unwrap(),
        b"first"
    );
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn ten_thousand_files_are_listed() {
    let stack = stack();
    let dir = stack.test_dir("many");
    for i in 0..10_000 {
        dir.write(&format!("cdr_data_20240101_{i:06}.csv"), b"x");
    }
    let mut source = SftpSource::connect(stack.password_config(&dir)).unwrap();
    let start = Instant::now();
    let listing = source.list().unwrap().files;
    let took = start.elapsed();
    println!("listed {} files over SFTP in {took:?}", listing.len());
    assert_eq!(listing.len(), 10_000);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn odd_names_are_listed_but_not_selected() {
    let stack = stack();
    let dir = stack.test_dir("traversal");
    dir.write("cdr_data_1..csv", b"x");
    dir.write("cdr_data_\\2.csv", b"x");
    dir.write("cdr_data_3.csv", b"x");
    dir.write(".cdr_data_4.csv", b"x");
    dir.write("cdr_data_5.csv.part", b"x");
    // A name that is not UTF-8 is skipped by the listing itself.
    let raw = std::ffi::OsStr::from_bytes(b"cdr_data_\xff.csv");
    std::fs::write(dir.local.join(raw), b"x").unwrap();

    let mut source = SftpSource::new(stack.password_config(&dir)).unwrap();
    let listing = source.list().unwrap().files;
    assert_eq!(listing.len(), 5, "{listing:?}");
    let mut selector = Selector::new(SelectConfig {
        settle: Duration::ZERO,
        min_age: Duration::ZERO,
        ..SelectConfig::default()
    });
    let now = chrono::Utc::now().timestamp_millis();
    assert!(selector.ready(&listing, now).is_empty());
    let ready = selector.ready(&listing, now + 1);
    let names: Vec<&str> = ready.iter().map(|f| f.name.as_str()).collect();
    // Dots inside a name are ordinary characters: one path component.
    assert_eq!(names, ["cdr_data_1..csv", "cdr_data_3.csv"]);
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn config_debug_never_shows_the_password() {
    let stack = stack();
    let dir = stack.test_dir("debug");
    let config: SftpConfig = stack.password_config(&dir);
    let shown = format!("{config:?}");
    assert!(!shown.contains(&stack.password), "{shown}");
}
