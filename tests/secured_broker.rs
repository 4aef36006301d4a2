//! The service against a broker that requires TLS, SASL/SCRAM and ACLs
//! (`scripts/stack.sh up --secure`): with exactly the ACLs
//! docs/operations.md lists (read from it), `once`, `run --group` with two
//! instances, `audit` and `status --group` work and every row lands exactly
//! once, read back by the super user with its own credentials; without them,
//! and with a wrong password, an unknown CA, a certificate for other names,
//! a plaintext client, or a missing transactional-id or topic-write ACL,
//! each command ends with one line that says what to fix, exit 2, blaming
//! no file; and no secret is ever printed (logs at every level, errors, a
//! panic, check-config, /metrics) or stored.

mod common;
mod daemon_support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use daemon_support::*;

/// The default names the documented ACLs are written for.
fn default_topics() -> Topics {
    Topics {
        data: "cdr-data".into(),
        voice: "cdr-voice".into(),
        dlq: "cdr-dlq".into(),
        checkpoints: "cdr-ingest-checkpoints".into(),
        txn_prefix: "cdr-to-redpanda".into(),
    }
}

struct Secured {
    stack: PrivateStack,
    brokers: String,
}

impl Secured {
    /// The service's command as user `user` (its password from the stack),
    /// reading `dir`, its ledger in `ledger`.
    fn command(&self, user: &str, dir: &Path, ledger: &Path, args: &[&str]) -> Command {
        let mut cmd = bin();
        cmd.args(args);
        for k in [
            "KAFKA_CONFIG_SECURITY_PROTOCOL",
            "KAFKA_CONFIG_SASL_MECHANISM",
            "KAFKA_CONFIG_SSL_CA_LOCATION",
        ] {
            cmd.env(k, self.stack.env_var(k));
        }
        let password = match user {
            "cdr" => self.stack.env_var("KAFKA_CONFIG_SASL_PASSWORD"),
            _ => self.stack.env_var("KAFKA_AUDITOR_PASSWORD"),
        };
        cmd.env("KAFKA_CONFIG_SASL_USERNAME", user)
            .env("KAFKA_CONFIG_SASL_PASSWORD", password)
            .env("KAFKA_BROKERS", &self.brokers)
            .env("CDR_LOCAL_DIR", dir)
            .env("CDR_LEDGER_DIR", ledger)
            .env("CDR_SETTLE_SECONDS", "0")
            .env("CDR_MIN_AGE_SECONDS", "0")
            .env("CDR_TOPIC_PARTITIONS", "3")
            .env("CDR_TOPIC_REPLICATION", "1")
            .env("RUST_LOG", "info,librdkafka=warn");
        cmd
    }

    /// What the super user reads with its own credentials.
    fn admin_settings(&self) -> Vec<(String, String)> {
        vec![
            ("security.protocol".into(), "SASL_SSL".into()),
            ("sasl.mechanism".into(), "SCRAM-SHA-512".into()),
            ("sasl.username".into(), self.stack.env_var("KAFKA_ADMIN_USER")),
            ("sasl.password".into(), self.stack.env_var("KAFKA_ADMIN_PASSWORD")),
            ("ssl.ca.location".into(), self.stack.env_var("KAFKA_CA_FILE")),
        ]
    }
}

/// The one `error:` line of a failed command, which must exit 2.
fn error_line(out: &Output) -> String {
    let text = output_text(out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one line: {text}");
    errors[0].to_owned()
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn the_whole_job_runs_with_exactly_the_documented_acls_and_each_refusal_says_what_to_fix() {
    // Fails loudly without the toolchain scripts/test.sh provides.
    env("KAFKA_BROKERS");
    let stack = PrivateStack::up(&["--secure"]);
    let brokers = stack.brokers();
    let s = Secured { stack, brokers };
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    let ledger = work.path().join("ledger");
    let outputs = std::cell::RefCell::new(Vec::new());
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        outputs.borrow_mut().push(output_text(&out));
        out
    };
    generate(&dir, 2, 300, 31, "2024-11-01T00:00:00", 0.01);

    // No ACL yet: the service stops at its first topic, naming the ACL.
    let line = error_line(&run(&mut s.command("cdr", &dir, &ledger, &["once"])));
    assert!(
        line.contains("TopicAuthorizationFailed") && line.contains("CREATE"),
        "{line}"
    );

    // Refusals before any request: one line each, saying what to check.
    let mut wrong = s.command("cdr", &dir, &ledger, &["once"]);
    wrong.env("KAFKA_CONFIG_SASL_PASSWORD", "not-the-password");
    assert!(error_line(&run(&mut wrong)).contains("refused the SASL login"));
    // The daemon waits out an outage, not a refused login.
    let mut wrong = s.command("cdr", &dir, &ledger, &["run"]);
    wrong.env("KAFKA_CONFIG_SASL_PASSWORD", "not-the-password");
    assert!(error_line(&run(&mut wrong)).contains("refused the SASL login"));
    let mut unknown_ca = s.command("cdr", &dir, &ledger, &["once"]);
    unknown_ca.env("KAFKA_CONFIG_SSL_CA_LOCATION", "/etc/ssl/certs/ca-certificates.crt");
    assert!(error_line(&run(&mut unknown_ca)).contains("KAFKA_CONFIG_SSL_CA_LOCATION"));
    let mut plaintext = s.command("cdr", &dir, &ledger, &["once"]);
    plaintext.env("KAFKA_CONFIG_SECURITY_PROTOCOL", "SASL_PLAINTEXT");
    assert!(error_line(&run(&mut plaintext)).contains("KAFKA_CONFIG_SECURITY_PROTOCOL"));
    // A certificate the CA signed but for other names: the name is named.
    let other_name = forward("127.0.0.2", &s.brokers);
    let mut wrong_host = s.command("cdr", &dir, &ledger, &["once"]);
    wrong_host.env("KAFKA_BROKERS", &other_name);
    let line = error_line(&run(&mut wrong_host));
    assert!(
        line.contains("not the host it was reached by") && line.contains("names 127.0.0.1, localhost"),
        "{line}"
    );
    assert!(!ledger.join("ledger.redb").exists() || status_json(&ledger)["counts"]["failed"] == 0);

    let grant = |acl: &[String]| {
        let mut args = vec!["acl"];
        args.extend(acl.iter().map(String::as_str));
        s.stack.sh(&args);
    };
    let acls = documented_acls();
    let (txn_acl, others): (Vec<_>, Vec<_>) = acls.iter().partition(|a| a.iter().any(|w| w == "--transactional-id"));
    for acl in &others {
        grant(acl);
    }
    // Each missing ACL class stops the service naming the ACL, and blames
    // no file: nothing failed or parked, and the same files go in once it
    // is granted.
    let blames_no_file = || {
        let counts = &status_json(&ledger)["counts"];
        assert_eq!(
            (counts["failed"].as_u64(), counts["parked"].as_u64()),
            (Some(0), Some(0)),
            "{counts}"
        );
    };
    let line = error_line(&run(&mut s.command("cdr", &dir, &ledger, &["once"])));
    assert!(line.contains("WRITE and DESCRIBE on the transactional ids"), "{line}");
    blames_no_file();
    for acl in txn_acl {
        grant(acl);
    }
    let write_voice = [
        "--allow-principal",
        "User:cdr",
        "--operation",
        "Write",
        "--topic",
        "cdr-voice",
    ];
    s.stack
        .sh(&[&["acl", "--remove", "--force"][..], &write_voice[..]].concat());
    let line = error_line(&run(&mut s.command("cdr", &dir, &ledger, &["once"])));
    assert!(
        line.contains("\"cdr-voice\"") && line.contains("Topic authorization failed") && line.contains("WRITE"),
        "{line}"
    );
    blames_no_file();
    s.stack.sh(&[&["acl", "--add"][..], &write_voice[..]].concat());
    let topics = default_topics();
    let admin = s.admin_settings();

    // The secured compose variant's librdkafka settings, with this stack's
    // CA file and password in place of its mount and its .env secret.
    let secured = yaml_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.secured.yml"));
    let mut check = s.command("cdr", &dir, &ledger, &["check-config"]);
    for (k, v) in secured["services"]["cdr-to-redpanda"]["environment"]
        .as_object()
        .unwrap()
    {
        let v = v.as_str().unwrap();
        let v = match k.as_str() {
            "KAFKA_CONFIG_SSL_CA_LOCATION" => s.stack.env_var("KAFKA_CA_FILE"),
            "KAFKA_CONFIG_SASL_PASSWORD" => {
                assert!(v.starts_with("${"), "from .env, not written in the file: {v}");
                s.stack.env_var("KAFKA_CONFIG_SASL_PASSWORD")
            }
            _ => v.to_owned(),
        };
        check.env(k, v);
    }
    let out = run(&mut check);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));

    // SFTP as documented for production: a key only (this sshd takes no
    // password) and the host key pinned by its fingerprint.
    let mut sftp = s.command("cdr", &dir, &ledger, &["check-config"]);
    for k in [
        "CDR_LOCAL_DIR",
        "SFTP_PASSWORD",
        "SFTP_KNOWN_HOSTS",
        "SFTP_PASSWORD_FILE",
    ] {
        sftp.env_remove(k);
    }
    for k in [
        "SFTP_HOST",
        "SFTP_PORT",
        "SFTP_USER",
        "SFTP_KEY_FILE",
        "SFTP_HOST_KEY_FINGERPRINT",
        "SFTP_REMOTE_PATH",
    ] {
        sftp.env(k, s.stack.env_var(k));
    }
    let out = run(&mut sftp);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    sftp.env_remove("SFTP_KEY_FILE")
        .env("SFTP_PASSWORD", "a-password-sshd-never-takes");
    let out = run(&mut sftp);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("tried: password; the server accepts: publickey"),
        "{}",
        output_text(&out)
    );

    // A panic (a bug) with every secret set: its message and the error line
    // show none, and the next run recovers what it left open.
    let secrets = work.path().join("passphrase");
    std::fs::write(&secrets, "PASSPHRASE-S3CRET").unwrap();
    let mut panics = s.command("cdr", &dir, &ledger, &["once"]);
    panics
        .env("CDR_FAILPOINTS", "after-produce-before-commit=1:panic")
        .env("RUST_BACKTRACE", "1")
        .env("SFTP_PASSWORD", "SFTP-S3CRET")
        .env("SFTP_KEY_PASSPHRASE_FILE", &secrets)
        .env("SCHEMA_REGISTRY_USER", "svc")
        .env("SCHEMA_REGISTRY_PASSWORD", "REGISTRY-S3CRET");
    let out = run(&mut panics);
    assert!(
        output_text(&out).contains("failpoint after-produce-before-commit reached"),
        "{}",
        output_text(&out)
    );
    let line = error_line(&out);
    assert!(line.contains("panicked while ingesting"), "{line}");

    // once, with exactly the documented ACLs: what the refusals and the
    // panic left is finished, every row exactly once.
    let out = run(&mut s.command("cdr", &dir, &ledger, &["once"]));
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_exactly_once_with(&s.brokers, &admin, &topics, &dir);

    // At every log level, librdkafka's `debug=all` and JSON logs included,
    // the password is never printed (checked with every output below).
    let mut loud = s.command("cdr", &dir, &ledger, &["--log-format", "json", "once"]);
    loud.env("RUST_LOG", "trace,librdkafka=trace")
        .env("KAFKA_CONFIG_DEBUG", "all");
    let out = run(&mut loud);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(out.stderr.len() > 10_000, "librdkafka's debug output is there to check");

    // A group the principal may not join: the daemon stops, naming the ACL.
    let mut stranger = s.command("cdr", &dir, &work.path().join("ledger-x"), &["run"]);
    stranger.env("CDR_GROUP", "cdr-other").env("CDR_GROUP_SHARDS", "4");
    let line = error_line(&run(&mut stranger));
    assert!(
        line.contains("GroupAuthorizationFailed") && line.contains("READ on the consumer group"),
        "{line}"
    );

    // Two group instances share new files.
    generate(&dir, 4, 300, 32, "2024-11-02T00:00:00", 0.01);
    let daemons: Vec<Daemon> = (1..=2)
        .map(|i| {
            let mut cmd = s.command("cdr", &dir, &work.path().join(format!("ledger-{i}")), &["run"]);
            cmd.env("CDR_GROUP", "cdr-ingest").env("CDR_GROUP_SHARDS", "4");
            Daemon::spawn(cmd, work.path(), &format!("member-{i}"))
        })
        .collect();
    let committed = |ds: &[Daemon]| -> f64 {
        ds.iter()
            .filter_map(|d| d.get("/metrics"))
            .map(|(_, body)| metric(&parse_metrics(&body), "cdr_files_total{outcome=\"committed\"}"))
            .sum()
    };
    wait_until(
        "the group's files committed",
        Duration::from_secs(120),
        || committed(&daemons) >= 8.0,
        || daemons[0].log_text(),
    );
    let status = run(&mut s.command(
        "auditor",
        &dir,
        &work.path().join("ledger-1"),
        &["status", "--group", "cdr-ingest"],
    ));
    assert!(status.status.success(), "{}", output_text(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("2 member(s)"),
        "{}",
        output_text(&status)
    );
    for d in &daemons {
        let (_, metrics) = d.get("/metrics").expect("/metrics answers");
        outputs.borrow_mut().push(metrics);
    }
    for mut d in daemons {
        d.signal("TERM");
        assert!(d.wait_exit(Duration::from_secs(30)).success(), "{}", d.log_text());
        outputs.borrow_mut().push(d.log_text());
    }
    assert_exactly_once_with(&s.brokers, &admin, &topics, &dir);

    // The read-only principal audits what every instance committed.
    let audit = run(&mut s.command("auditor", &dir, &ledger, &["audit", "--group", "cdr-ingest"]));
    assert_eq!(audit.status.code(), Some(0), "{}", output_text(&audit));

    let password = s.stack.env_var("KAFKA_CONFIG_SASL_PASSWORD");
    for text in outputs.borrow().iter() {
        assert!(!text.contains(&password), "the password printed:\n{text}");
        for secret in [
            "a-password-sshd-never-takes",
            "SFTP-S3CRET",
            "PASSPHRASE-S3CRET",
            "REGISTRY-S3CRET",
        ] {
            assert!(!text.contains(secret), "{secret} printed:\n{text}");
        }
    }
    // Nor stored: not in any ledger or staging file.
    let mut stored = Vec::new();
    for entry in walk(work.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        if bytes.windows(password.len()).any(|w| w == password.as_bytes()) {
            stored.push(entry);
        }
    }
    assert!(stored.is_empty(), "the password stored in {stored:?}");
}

/// A TCP relay from a fresh port on `host` (another loopback address) to
/// `target`: the broker reached by an address its certificate does not list.
fn forward(host: &str, target: &str) -> String {
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind((host, 0)).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let target = target.to_owned();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(upstream) = TcpStream::connect(&target) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                (upstream, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    address
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
