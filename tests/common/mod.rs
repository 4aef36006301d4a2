//! Shared helpers for the integration tests: the local stack's addresses,
//! unique names per test, and an independent read_committed reader.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// A variable the local stack exports; tests must not pass without it.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run under scripts/test.sh (needs the local stack: eval \"$(scripts/stack.sh env)\")")
    })
}

pub fn brokers() -> String {
    env("KAFKA_BROKERS")
}

/// Runs `scripts/stack.sh ARGS` on the stack in `dir` (the suite's own,
/// `STACK_DIR`, when None); panics naming the call if it fails. Its stdout.
pub fn stack_sh(dir: Option<&Path>, args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/stack.sh");
    let mut cmd = Command::new(script);
    cmd.args(args);
    if let Some(dir) = dir {
        cmd.env("STACK_DIR", dir);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "stack.sh {args:?}: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A stack of a test's own (brokers it may stop and kill), torn down on drop.
pub struct PrivateStack {
    pub dir: tempfile::TempDir,
}

impl PrivateStack {
    /// `scripts/stack.sh up ARGS` in a new directory.
    pub fn up(args: &[&str]) -> PrivateStack {
        let stack = PrivateStack {
            dir: tempfile::tempdir().unwrap(),
        };
        stack.sh(&[&["up"], args].concat());
        stack
    }

    /// `scripts/stack.sh ARGS` on this stack.
    pub fn sh(&self, args: &[&str]) -> String {
        stack_sh(Some(self.dir.path()), args)
    }

    /// Its brokers, as `stack.sh env` exports them.
    pub fn brokers(&self) -> String {
        self.env_var("KAFKA_BROKERS")
    }

    /// A variable `stack.sh env` exports for this stack.
    pub fn env_var(&self, name: &str) -> String {
        let prefix = format!("export {name}=");
        self.sh(&["env"])
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("{name} in stack env"))
            .trim_matches(|c| c == '\'' || c == '"')
            .to_string()
    }
}

impl Drop for PrivateStack {
    fn drop(&mut self) {
        let _ = Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/stack.sh"))
            .arg("down")
            .env("STACK_DIR", self.dir.path())
            .output();
    }
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One record as a read_committed consumer sees it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub partition: i32,
    pub key: String,
    pub value: Vec<u8>,
    pub timestamp_ms: Option<i64>,
    pub headers: BTreeMap<String, String>,
}

/// Reads a whole topic with isolation.level=read_committed, every partition
/// to its end. An absent topic reads as empty. The ends are taken from a
/// read_uncommitted client and waited for (a read_committed client is told
/// the last stable offset, which stops short of committed records behind
/// another writer's open transaction), so what was committed before the
/// call is all there.
pub fn read_committed(brokers: &str, topic: &str) -> Vec<Seen> {
    read_committed_with(brokers, &[], topic)
}

/// [`read_committed`] with client settings of its own (a secured cluster's
/// credentials).
pub fn read_committed_with(brokers: &str, settings: &[(String, String)], topic: &str) -> Vec<Seen> {
    let client = |isolation: &str| -> BaseConsumer {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("group.id", unique("test-reader"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", isolation);
        for (k, v) in settings {
            config.set(k, v);
        }
        config.create().expect("consumer")
    };
    let (uncommitted, consumer) = (client("read_uncommitted"), client("read_committed"));
    let md = uncommitted
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut tpl = TopicPartitionList::new();
    for t in md.topics().iter().filter(|t| t.name() == topic && t.error().is_none()) {
        for p in t.partitions() {
            let (lo, end) = uncommitted
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks");
            if end > lo {
                while consumer
                    .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                    .expect("stable offset")
                    .1
                    < end
                {
                    assert!(
                        Instant::now() < deadline,
                        "{topic}/{}: a transaction stays open",
                        p.id()
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning).unwrap();
            }
        }
    }
    let mut open: std::collections::BTreeSet<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    let mut out = Vec::new();
    if open.is_empty() {
        return out;
    }
    consumer.assign(&tpl).unwrap();
    while !open.is_empty() {
        assert!(Instant::now() < deadline, "reading {topic} did not reach its end");
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            Some(Ok(m)) => {
                let mut headers = BTreeMap::new();
                if let Some(h) = m.headers() {
                    for i in 0..h.count() {
                        let hd = h.get(i);
                        headers.insert(
                            hd.key.to_string(),
                            String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned(),
                        );
                    }
                }
                out.push(Seen {
                    partition: m.partition(),
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    value: m.payload().unwrap_or_default().to_vec(),
                    timestamp_ms: m.timestamp().to_millis(),
                    headers,
                });
            }
        }
    }
    out
}

/// Counts records per key; the exactly-once check is "every count is 1".
pub fn key_counts(records: &[Seen]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(r.key.clone()).or_insert(0) += 1;
    }
    m
}

/// The stack's SFTP settings on `cmd`, reading `remote`, logging in with the
/// password (the key file's variable removed, so the password is what is tried).
pub fn sftp_env(cmd: &mut Command, remote: &str) {
    sftp_login_env(cmd, remote, "SFTP_PASSWORD", "SFTP_KEY_FILE");
}

/// [`sftp_env`], logging in with the key instead.
pub fn sftp_key_env(cmd: &mut Command, remote: &str) {
    sftp_login_env(cmd, remote, "SFTP_KEY_FILE", "SFTP_PASSWORD");
}

fn sftp_login_env(cmd: &mut Command, remote: &str, with: &str, without: &str) {
    for v in ["SFTP_HOST", "SFTP_PORT", "SFTP_USER", with, "SFTP_KNOWN_HOSTS"] {
        cmd.env(v, env(v));
    }
    cmd.env("SFTP_REMOTE_PATH", remote).env_remove(without);
}

/// The service binary built by cargo for this test run.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cdr-to-redpanda"))
}

/// The binary with `args` over the local directory `dir`, these topics and
/// the ledger in `ledger`.
pub fn local_command(topics: &Topics, dir: &Path, ledger: &Path, args: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.args(args);
    topics.apply(&mut cmd, ledger);
    cmd.env("CDR_LOCAL_DIR", dir);
    cmd.output().unwrap()
}

/// Settings every ingest test passes: fresh topics, its own transactional
/// ids, one broker's replication, a ledger in `ledger_dir`.
pub struct Topics {
    pub data: String,
    pub voice: String,
    pub dlq: String,
    pub checkpoints: String,
    pub txn_prefix: String,
}

impl Topics {
    pub fn new() -> Self {
        let base = unique("t");
        Topics {
            data: format!("{base}-data"),
            voice: format!("{base}-voice"),
            dlq: format!("{base}-dlq"),
            checkpoints: format!("{base}-ckpt"),
            txn_prefix: format!("{base}-txn"),
        }
    }

    /// Environment for the binary: stack addresses plus these topics.
    pub fn apply(&self, cmd: &mut Command, ledger_dir: &Path) {
        cmd.env("KAFKA_BROKERS", brokers())
            .env("CDR_DATA_TOPIC", &self.data)
            .env("CDR_VOICE_TOPIC", &self.voice)
            .env("CDR_DLQ_TOPIC", &self.dlq)
            .env("CDR_CHECKPOINT_TOPIC", &self.checkpoints)
            .env("CDR_TRANSACTIONAL_ID_PREFIX", &self.txn_prefix)
            .env("CDR_TOPIC_PARTITIONS", "3")
            .env("CDR_TOPIC_REPLICATION", "1")
            .env("CDR_LEDGER_DIR", ledger_dir)
            .env("CDR_SETTLE_SECONDS", "0")
            .env("CDR_MIN_AGE_SECONDS", "0")
            .env("RUST_LOG", "info,librdkafka=warn");
    }
}

/// Polls `ok` until it holds; past `limit`, fails naming `what`, with
/// `context()` (a log) to show why.
pub fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool, context: impl Fn() -> String) {
    let until = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < until, "{what}: not within {limit:?}\n{}", context());
        std::thread::sleep(Duration::from_millis(300));
    }
}

pub fn output_text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A directory under the SFTP upload dir, writable by the SFTP user, and its
/// path as the SFTP server shows it.
pub fn sftp_subdir(name: &str) -> (PathBuf, String) {
    let local = PathBuf::from(env("SFTP_UPLOAD_DIR")).join(name);
    std::fs::create_dir_all(&local).unwrap();
    let status = Command::new("chown")
        .arg(format!("{}:", env("SFTP_USER")))
        .arg(&local)
        .status()
        .unwrap();
    assert!(status.success());
    (local, format!("{}/{name}", env("SFTP_REMOTE_PATH")))
}

/// Runs `cdr-to-redpanda generate --out DIR ARGS...`; returns its summary.
pub fn generate_files(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = bin().args(["generate", "--out"]).arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every key the files in `dir` must produce: `<sha16>-<row>`, one per data row.
pub fn expected_keys(dir: &Path) -> std::collections::BTreeSet<String> {
    use sha2::{Digest, Sha256};
    let mut keys = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("cdr_") && name.ends_with(".csv")) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let prefix = format!("{:x}", Sha256::digest(&bytes))[..16].to_string();
        let rows = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(&bytes[..])
            .byte_records()
            .count() as u64;
        keys.extend((1..=rows).map(|i| format!("{prefix}-{i}")));
    }
    keys
}

/// The test tools' Python (scripts/pytools.sh: a venv with
/// tests/tools/requirements.txt), created on first use.
pub fn test_python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = Command::new(root.join("scripts/pytools.sh")).output().unwrap();
    assert!(python.status.success(), "scripts/pytools.sh: {}", output_text(&python));
    PathBuf::from(String::from_utf8(python.stdout).unwrap().trim())
}

/// Decodes Confluent-framed Avro values with Python's fastavro (a decoder
/// independent of ours), each with its writer schema fetched by id from the
/// registry at `registry`. One `{"schema_id": N, "record": {...}}` per value.
pub fn avro_decode(registry: &str, values: &[&[u8]]) -> Vec<serde_json::Value> {
    use std::io::Write;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(test_python())
        .arg(root.join("tests/tools/avro_decode.py"))
        .arg(registry)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input: String = values
        .iter()
        .map(|v| v.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
        .collect();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "avro_decode.py: {}", output_text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The registry's answer to `GET <registry><path>` as JSON.
pub fn registry_get(registry: &str, path: &str) -> serde_json::Value {
    let mut answer = ureq::get(format!("{registry}{path}")).call().unwrap();
    serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap()
}

/// Sets `subject`'s compatibility rule (Apicurio's default is NONE,
/// Confluent's and Redpanda's BACKWARD: tests say which they mean).
pub fn set_compatibility(registry: &str, subject: &str, level: &str) {
    let answer = ureq::put(format!("{registry}/config/{subject}"))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .send(serde_json::json!({ "compatibility": level }).to_string())
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
}

/// The `[kind.sms]` table of the tests' SMS kind (the issue's third kind),
/// with its rows going to `topic` and `extra` columns (TOML inline tables,
/// each followed by a comma) after the six it always has.
pub fn sms_declaration(topic: &str, extra: &str) -> String {
    format!(
        r#"
[kind.sms]
files = ["cdr_sms_*.csv", "cdr_sms_*.csv.gz"]
topic = "{topic}"
time-column = "sent_time"
columns = [
  {{ name = "msisdn", type = "digits", min = 6, max = 15 }},
  {{ name = "dest_nr", type = "digits", min = 6, max = 15 }},
  {{ name = "tower_id", type = "unsigned" }},
  {{ name = "sms_type", type = "enum", symbols = ["mo", "mt"] }},
  {{ name = "message_bytes", type = "unsigned" }},
  {{ name = "sent_time", type = "timestamp", precision = 3 }},
  {extra}
]
"#
    )
}

/// The `kafka-acls` lines of docs/operations.md, as arguments.
pub fn documented_acls() -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md")).unwrap();
    let block = doc
        .split("<!-- acls:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- acls:end -->").next())
        .expect("the ACL block of docs/operations.md");
    let acls: Vec<Vec<String>> = block
        .lines()
        .filter_map(|l| l.strip_prefix("kafka-acls "))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert!(acls.len() >= 5, "{acls:?}");
    acls
}

/// A YAML file as JSON (Python's yaml, which resolves anchors and merge keys
/// as compose does).
pub fn yaml_file(path: &Path) -> serde_json::Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(path)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}: {}", path.display(), output_text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}
