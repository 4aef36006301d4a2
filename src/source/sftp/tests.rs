//! Unit tests of the SFTP source that need no server.
use super::*;

fn config() -> SftpConfig {
    let mut c = SftpConfig::new("127.0.0.1", "cdr", "/upload");
    c.port = 2222;
    c.password = Some(SecretSource::Value(Secret::new("hunter2-secret")));
    c.private_key = Some(PrivateKey {
        path: "/keys/id_ed25519".into(),
        passphrase: Some(SecretSource::Value(Secret::new("pass-secret"))),
    });
    c
}

#[test]
fn debug_masks_inline_secrets_but_shows_secret_files() {
    let mut c = config();
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2-secret"), "{shown}");
    assert!(!shown.contains("pass-secret"), "{shown}");
    assert!(shown.contains("***"));
    c.password = Some(SecretSource::File("/run/secrets/sftp".into()));
    assert!(format!("{c:?}").contains("File(\"/run/secrets/sftp\")"));
    let source = SftpSource::new(c).unwrap();
    assert!(!format!("{source:?}").contains("pass-secret"));
    assert!(!source.describe().contains("secret"));
}

#[test]
fn secret_file_drops_one_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pw");
    std::fs::write(&path, "s3cret\r\n").unwrap();
    assert_eq!(SecretSource::File(path.clone()).reveal().unwrap().expose(), "s3cret");
    std::fs::write(&path, "s3cret \n\n").unwrap();
    assert_eq!(SecretSource::File(path).reveal().unwrap().expose(), "s3cret \n");
    let missing = SecretSource::File(dir.path().join("nope")).reveal().unwrap_err();
    assert!(matches!(missing, SourceError::Refused(m) if m.contains("nope")));
}

#[test]
fn fingerprint_round_trips_in_ssh_keygen_format() {
    // An ed25519 public key blob and what `ssh-keygen -lf` prints for it.
    let blob = STANDARD
        .decode("AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
        .unwrap();
    let fp = Fingerprint::of_key(&blob);
    let text = fp.to_string();
    assert_eq!(text, "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU");
    assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
    assert_eq!(format!("{text}=").parse::<Fingerprint>().unwrap(), fp);
    assert_eq!(key_type(&blob), "ssh-ed25519");
}

#[test]
fn malformed_fingerprints_are_rejected() {
    for bad in ["", "SHA256:", "MD5:aa:bb", "SHA256:abc", "SHA256:!!!!", "sha256:x"] {
        assert!(bad.parse::<Fingerprint>().is_err(), "{bad:?}");
    }
}

#[test]
fn key_type_of_garbage_blob_does_not_panic() {
    assert_eq!(key_type(&[]), "unknown-key-type");
    assert_eq!(key_type(&[0, 0, 0, 200, b'a']), "unknown-key-type");
    assert_eq!(key_type(&[0xff, 0xff, 0xff, 0xff]), "unknown-key-type");
}

#[test]
fn validate_rejects_missing_credentials_and_zero_timeouts() {
    let mut c = config();
    c.password = None;
    c.private_key = None;
    assert!(matches!(c.validate(), Err(SourceError::Refused(m)) if m.contains("no password")));
    let mut c = config();
    c.io_timeout = Duration::ZERO;
    assert!(c.validate().is_err());
    let mut c = config();
    c.host = " ".into();
    assert!(c.validate().is_err());
    assert!(config().validate().is_ok());
}

#[test]
fn known_hosts_names_and_keyscan_commands_follow_openssh() {
    let mut c = config();
    assert_eq!(c.known_hosts_name(), "[127.0.0.1]:2222");
    assert_eq!(c.keyscan_command(), "ssh-keyscan -p 2222 127.0.0.1");
    assert_eq!(c.endpoint(), "127.0.0.1:2222");
    c.port = 22;
    assert_eq!(c.known_hosts_name(), "127.0.0.1");
    assert_eq!(c.keyscan_command(), "ssh-keyscan 127.0.0.1");
    c.host = "::1".into();
    assert_eq!(c.endpoint(), "[::1]:22");
}

#[test]
fn expected_keys_reads_plain_entries_for_this_host_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    let key = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    std::fs::write(
        &path,
        format!("# comment\n[127.0.0.1]:2222 ssh-ed25519 {key}\nother.example ssh-ed25519 {key}\n"),
    )
    .unwrap();
    let got = expected_keys(&path, &config());
    let fp = Fingerprint::of_key(&STANDARD.decode(key).unwrap());
    assert_eq!(got, format!("ssh-ed25519 {fp}"));
    std::fs::write(&path, "|1|abc=|def= ssh-ed25519 AAAA\n").unwrap();
    assert!(expected_keys(&path, &config()).contains("ssh-keygen -F"));
}

#[test]
fn connecting_to_a_closed_port_is_a_connection_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut c = config();
    c.port = port;
    c.connect_timeout = Duration::from_secs(2);
    let err = SftpSource::connect(c).unwrap_err();
    assert!(matches!(err, SourceError::Connection { .. }), "{err}");
    assert!(err.is_transient());
    assert!(!err.to_string().contains("secret"));
}

#[test]
fn a_server_that_never_answers_times_out() {
    // Accepts the TCP connection but never sends an SSH banner.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = config();
    c.port = listener.local_addr().unwrap().port();
    c.connect_timeout = Duration::from_millis(500);
    let start = std::time::Instant::now();
    let err = SftpSource::connect(c).unwrap_err();
    assert!(matches!(err, SourceError::Connection { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
    drop(listener);
}

#[test]
fn aes_gcm_leads_the_cipher_preference_and_every_other_cipher_follows_in_order() {
    let offered = vec![
        "chacha20-poly1305@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-gcm@openssh.com",
        "aes256-ctr",
        "aes128-cbc",
    ];
    assert_eq!(
        gcm_first(offered).as_deref(),
        Some("aes256-gcm@openssh.com,aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-ctr,aes128-cbc")
    );
    assert_eq!(gcm_first(vec!["aes256-ctr", "aes128-ctr"]), None, "nothing to reorder");
}

#[test]
fn this_build_of_libssh2_offers_aes_gcm() {
    let session = Session::new().unwrap();
    let order = gcm_first(session.supported_algs(MethodType::CryptCs).unwrap()).unwrap();
    assert!(order.starts_with("aes256-gcm@openssh.com,"), "{order}");
}
