//! Settings, one clap struct per concern. Every flag also reads an
//! environment variable (the Python streamer's names where it had one);
//! flags win. Parsed and validated here, before any connection is opened.
//! `file`: the optional TOML file beneath the environment.

pub mod file;
pub mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::FixedOffset;

use crate::encode::{Format, UnknownFormat};
use crate::ingest;
use crate::ingest::park::ParkPolicy;
use crate::ingest::{AfterIngest, IngestSettings, OnChanged};
use crate::parse::Validation;
use crate::schema::{self, Catalog, SchemaError};
use crate::secret::{Property, Secret};
use crate::sink::topics::{self, TopicLayout};
use crate::sink::{producer, KafkaConfig};
use crate::source::local::LocalSource;
use crate::source::select::{self, SelectConfig, DEFAULT_PATTERNS};
use crate::source::sftp::{self, HostKeyPolicy, PrivateKey, SecretSource, SftpConfig, SftpSource};
use crate::source::{Source, SourceError};

/// Where files come from and which of them are taken.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Source")]
// Flag help shows placeholders such as <dir> as they are typed.
#[allow(rustdoc::invalid_html_tags)]
pub struct SourceArgs {
    /// Read a local directory instead of SFTP (a mounted volume, or tests).
    #[arg(long, env = "CDR_LOCAL_DIR")]
    pub local_dir: Option<PathBuf>,
    /// SFTP server.
    #[arg(long, env = "SFTP_HOST", default_value = "sftp")]
    pub sftp_host: String,
    /// SFTP port.
    #[arg(long, env = "SFTP_PORT", default_value_t = sftp::DEFAULT_PORT)]
    pub sftp_port: u16,
    /// SFTP user name.
    #[arg(long, env = "SFTP_USER", default_value = "cdr_data")]
    pub sftp_user: String,
    /// SFTP password (prefer --sftp-password-file).
    #[arg(long, env = "SFTP_PASSWORD", hide_env_values = true)]
    pub sftp_password: Option<Secret>,
    /// File holding the SFTP password (e.g. a compose secret).
    #[arg(long, env = "SFTP_PASSWORD_FILE")]
    pub sftp_password_file: Option<PathBuf>,
    /// Private key for public-key auth (tried before the password).
    #[arg(long, env = "SFTP_KEY_FILE")]
    pub sftp_key_file: Option<PathBuf>,
    /// File holding the private key's passphrase.
    #[arg(long, env = "SFTP_KEY_PASSPHRASE_FILE")]
    pub sftp_key_passphrase_file: Option<PathBuf>,
    /// known_hosts file the server's host key must be listed in
    /// (default ~/.ssh/known_hosts).
    #[arg(long, env = "SFTP_KNOWN_HOSTS")]
    pub sftp_known_hosts: Option<PathBuf>,
    /// Pin the host key instead: SHA256:<base64>, as `ssh-keygen -lf` prints it.
    #[arg(long, env = "SFTP_HOST_KEY_FINGERPRINT")]
    pub sftp_host_key_fingerprint: Option<String>,
    /// Skip host key verification (anyone on the path can impersonate the
    /// server); warns at every connect.
    #[arg(long, env = "SFTP_INSECURE_SKIP_HOST_KEY_CHECK")]
    pub sftp_insecure_skip_host_key_check: bool,
    /// Directory on the server holding the CDR files.
    #[arg(long, env = "SFTP_REMOTE_PATH", default_value = "/upload")]
    pub sftp_remote_path: String,
    /// File name globs to take; comma-separated.
    #[arg(long, env = "CDR_FILE_PATTERNS", value_delimiter = ',', default_values_t = DEFAULT_PATTERNS.map(String::from))]
    pub patterns: Vec<String>,
    /// Seconds a file's size and mtime must stay unchanged before it is taken.
    #[arg(long, env = "CDR_SETTLE_SECONDS", default_value_t = select::DEFAULT_SETTLE.as_secs())]
    pub settle_seconds: u64,
    /// Minimum age of a file's mtime, seconds.
    #[arg(long, env = "CDR_MIN_AGE_SECONDS", default_value_t = select::DEFAULT_MIN_AGE.as_secs())]
    pub min_age_seconds: u64,
    /// Take a file only when `<name><suffix>` exists too (e.g. .done).
    #[arg(long, env = "CDR_MARKER_SUFFIX")]
    pub marker_suffix: Option<String>,
    /// Take a symlink to a regular file as that file (its target's size and
    /// mtime settle it; `--after-ingest delete` removes the link, not the
    /// target). Off, symlinks are never taken and show in `status` as
    /// ignored.
    #[arg(long, env = "CDR_FOLLOW_SYMLINKS")]
    pub follow_symlinks: bool,
}

impl SourceArgs {
    /// Which listed files are taken, and when: the names `--patterns`
    /// matches, and those of the kinds declared beyond the built-in two.
    pub fn select_config(&self, kinds: &Catalog) -> SelectConfig {
        let mut patterns = self.patterns.clone();
        for kind in kinds.iter().filter(|k| !schema::builtin::is_builtin(k)) {
            patterns.extend(kind.spec().files.iter().filter(|g| !self.patterns.contains(g)).cloned());
        }
        SelectConfig {
            patterns,
            settle: Duration::from_secs(self.settle_seconds),
            min_age: Duration::from_secs(self.min_age_seconds),
            marker_suffix: self.marker_suffix.clone(),
        }
    }

    /// The SFTP connection; fails on a key or passphrase that cannot be used.
    pub fn sftp_config(&self) -> Result<SftpConfig, SourceError> {
        let mut c = SftpConfig::new(&self.sftp_host, &self.sftp_user, &self.sftp_remote_path);
        c.port = self.sftp_port;
        c.follow_symlinks = self.follow_symlinks;
        c.password = match (&self.sftp_password_file, &self.sftp_password) {
            (Some(file), _) => Some(SecretSource::File(file.clone())),
            (None, Some(p)) => Some(SecretSource::Value(p.clone())),
            (None, None) => None,
        };
        c.private_key = self.sftp_key_file.as_ref().map(|path| PrivateKey {
            path: path.clone(),
            passphrase: self.sftp_key_passphrase_file.clone().map(SecretSource::File),
        });
        c.host_key = if self.sftp_insecure_skip_host_key_check {
            HostKeyPolicy::InsecureSkip
        } else if let Some(fp) = &self.sftp_host_key_fingerprint {
            HostKeyPolicy::Fingerprint(fp.parse().map_err(|e| SourceError::Refused(format!("{e}")))?)
        } else {
            HostKeyPolicy::KnownHosts(
                self.sftp_known_hosts
                    .clone()
                    .unwrap_or_else(HostKeyPolicy::default_known_hosts),
            )
        };
        Ok(c)
    }

    /// The configured source; nothing is contacted yet.
    pub fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        match &self.local_dir {
            Some(dir) => Ok(Box::new(LocalSource::new(dir).follow_symlinks(self.follow_symlinks))),
            None => Ok(Box::new(SftpSource::new(self.sftp_config()?)?)),
        }
    }
}

/// The record kinds: the lists of the two built-in kinds, and the kinds an
/// operator declares (the config file's `[kind.<name>]` tables).
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Kinds")]
pub struct KindArgs {
    /// Accepted data_type values, comma-separated.
    #[arg(
        long,
        env = "CDR_DATA_TYPES",
        value_delimiter = ',',
        default_value = "application,text,image,video"
    )]
    pub data_types: Vec<String>,
    /// Accepted call_type values, comma-separated.
    #[arg(long, env = "CDR_CALL_TYPES", value_delimiter = ',', default_value = "voice,video")]
    pub call_types: Vec<String>,
    /// Kinds declared beside data and voice, as a JSON object of
    /// declarations; the config file's `[kind.<name>]` tables set it (see
    /// docs/configuration.md)
    #[arg(long, env = "CDR_KINDS", value_name = "JSON")]
    pub kind_declarations: Option<String>,
    /// Format of the valid rows of every kind: json (the Python streamer's,
    /// every value a string), json-typed (numbers as numbers, timestamps
    /// ISO-8601 with their zone) or avro (Confluent wire format; needs
    /// --schema-registry-url).
    #[arg(long, env = "CDR_FORMAT", default_value = "json")]
    pub format: Format,
    /// Per-kind formats over --format, comma-separated `<kind>=<format>`
    /// (e.g. data=avro,voice=json).
    #[arg(long, env = "CDR_KIND_FORMATS", value_delimiter = ',', value_name = "KIND=FORMAT", value_parser = parse_kind_format)]
    pub kind_formats: Vec<(String, Format)>,
    /// Kinds whose valid rows are partitioned by a column's value instead of
    /// the record key, comma-separated `<kind>=<column>` (e.g.
    /// data=msisdn,voice=msisdn): murmur2 of the value modulo the topic's
    /// partitions, as Kafka clients partition by key, so each subscriber's
    /// records sit in one partition, in row order within a file. The key stays the record id
    #[arg(long, env = "CDR_PARTITION_BY", value_delimiter = ',', value_name = "KIND=COLUMN", value_parser = parse_kind_column)]
    pub partition_by: Vec<(String, String)>,
}

/// `<kind>=<value>`, both trimmed.
fn kind_pair<'a>(s: &'a str, what: &str) -> Result<(String, &'a str), String> {
    let (kind, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected <kind>={what}, got {s:?}"))?;
    Ok((kind.trim().to_owned(), value.trim()))
}

/// `<kind>=<format>`.
fn parse_kind_format(s: &str) -> Result<(String, Format), String> {
    let (kind, format) = kind_pair(s, "<format>")?;
    Ok((kind, format.parse().map_err(|e: UnknownFormat| e.to_string())?))
}

/// `<kind>=<column>`.
fn parse_kind_column(s: &str) -> Result<(String, String), String> {
    kind_pair(s, "<column>").map(|(kind, column)| (kind, column.to_owned()))
}

impl Default for KindArgs {
    /// The contract's lists, nothing declared.
    fn default() -> Self {
        KindArgs {
            data_types: schema::builtin::DATA_TYPES.map(String::from).to_vec(),
            call_types: schema::builtin::CALL_TYPES.map(String::from).to_vec(),
            kind_declarations: None,
            format: Format::Json,
            kind_formats: Vec::new(),
            partition_by: Vec::new(),
        }
    }
}

impl KindArgs {
    /// The built-in kinds with these lists and topics, then the declared
    /// ones, checked as a set.
    pub fn catalog(&self, data_topic: &str, voice_topic: &str) -> Result<Catalog, SchemaError> {
        let mut specs = vec![
            schema::builtin::data_spec(data_topic, &self.data_types),
            schema::builtin::voice_spec(voice_topic, &self.call_types),
        ];
        if let Some(json) = &self.kind_declarations {
            specs.extend(schema::declare::from_json(json)?);
        }
        Catalog::new(specs)
    }

    /// Each kind's format: --format unless --kind-formats names the kind,
    /// which must be one of `kinds`.
    pub fn formats(&self, kinds: &Catalog) -> Result<BTreeMap<String, Format>, SchemaError> {
        let mut formats: BTreeMap<String, Format> =
            kinds.iter().map(|k| (k.as_str().to_owned(), self.format)).collect();
        for (kind, format) in &self.kind_formats {
            match formats.get_mut(kind) {
                Some(f) => *f = *format,
                None => {
                    return Err(SchemaError {
                        kind: kind.clone(),
                        problem: "--kind-formats names a kind that is not declared".into(),
                    })
                }
            }
        }
        Ok(formats)
    }

    /// For each kind partitioned by a column, the column's position among
    /// the kind's declared columns.
    pub fn partition_columns(&self, kinds: &Catalog) -> Result<BTreeMap<String, usize>, SchemaError> {
        let fail = |kind: &str, problem: String| SchemaError {
            kind: kind.to_owned(),
            problem,
        };
        self.partition_by
            .iter()
            .map(|(kind, column)| {
                let k = kinds
                    .get(kind)
                    .ok_or_else(|| fail(kind, "--partition-by names a kind that is not declared".into()))?;
                let at = k.columns().iter().position(|c| &c.name == column).ok_or_else(|| {
                    fail(
                        kind,
                        format!("--partition-by: column {column:?} is not one of its declared columns"),
                    )
                })?;
                Ok((kind.clone(), at))
            })
            .collect()
    }
}

/// Kafka / Redpanda connection and producer.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Kafka")]
// Flag help shows placeholders such as <dir> as they are typed.
#[allow(rustdoc::invalid_html_tags)]
pub struct KafkaArgs {
    /// Bootstrap brokers, comma-separated host:port.
    #[arg(
        long,
        env = "KAFKA_BROKERS",
        default_value = DEFAULT_BROKERS
    )]
    pub brokers: String,
    /// Topic for data CDRs.
    #[arg(long, env = "CDR_DATA_TOPIC", default_value = topics::DEFAULT_DATA_TOPIC)]
    pub data_topic: String,
    /// Topic for voice CDRs.
    #[arg(long, env = "CDR_VOICE_TOPIC", default_value = topics::DEFAULT_VOICE_TOPIC)]
    pub voice_topic: String,
    /// Dead-letter topic for invalid rows.
    #[arg(long, env = "CDR_DLQ_TOPIC", default_value = topics::DEFAULT_DLQ_TOPIC)]
    pub dlq_topic: String,
    /// The record kinds: the built-in ones' lists and any declared.
    #[command(flatten)]
    pub kinds: KindArgs,
    /// Compacted topic holding each file's committed progress.
    #[arg(long, env = "CDR_CHECKPOINT_TOPIC", default_value = topics::DEFAULT_CHECKPOINT_TOPIC)]
    pub checkpoint_topic: String,
    /// Partitions of topics the service creates.
    #[arg(long, env = "CDR_TOPIC_PARTITIONS", default_value_t = topics::DEFAULT_PARTITIONS)]
    pub partitions: i32,
    /// Replication factor of topics the service creates.
    #[arg(long, env = "CDR_TOPIC_REPLICATION", default_value_t = topics::DEFAULT_REPLICATION)]
    pub replication_factor: i32,
    /// retention.ms of the record topics the service creates (-1: forever).
    /// Kafka timestamps are the CDRs' event times, so a time-based retention
    /// counts from the call, not from the ingest.
    #[arg(long, env = "CDR_TOPIC_RETENTION_MS", default_value_t = topics::DEFAULT_RETENTION_MS, allow_hyphen_values = true)]
    pub topic_retention_ms: i64,
    /// transactional.id prefix; slot N uses `<prefix>-<N>`, a group's shard N
    /// `<prefix>-<group>-shard-<N>`. Two instances outside a group fence each
    /// other with one prefix (and with two, each ingests every file: use --group)
    #[arg(long, env = "CDR_TRANSACTIONAL_ID_PREFIX", default_value = producer::DEFAULT_TRANSACTIONAL_ID_PREFIX)]
    pub transactional_id_prefix: String,
    /// Exactly-once transactions; `false` only to measure what they cost.
    #[arg(long, env = "CDR_TRANSACTIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub transactions: bool,
    /// Producer transaction timeout, seconds (under the broker's transaction.max.timeout.ms).
    #[arg(long, env = "CDR_TRANSACTION_TIMEOUT_SECONDS", default_value_t = producer::DEFAULT_TRANSACTION_TIMEOUT_SECONDS)]
    pub transaction_timeout_seconds: u64,
    /// librdkafka property passed through, `key=value`; repeatable
    /// (e.g. security.protocol=SASL_SSL). Also KAFKA_CONFIG_<KEY> env vars,
    /// with `_` for `.`: KAFKA_CONFIG_SASL_MECHANISM=SCRAM-SHA-256.
    #[arg(long = "kafka-config", value_name = "KEY=VALUE")]
    pub kafka_config: Vec<Property>,
    /// Where the avro format's schemas are registered.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// The schema registry the `avro` format needs (Confluent REST API: Redpanda,
/// Confluent, Apicurio's `/apis/ccompat/v7`, Karapace).
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Schema registry")]
pub struct RegistryArgs {
    /// Base URL of the registry's Confluent API, in full: Redpanda serves
    /// it at http://redpanda-0:8081, Apicurio under /apis/ccompat/v7.
    #[arg(long, env = "SCHEMA_REGISTRY_URL")]
    pub schema_registry_url: Option<String>,
    /// User for HTTP basic authentication.
    #[arg(long, env = "SCHEMA_REGISTRY_USER")]
    pub schema_registry_user: Option<String>,
    /// Password for HTTP basic authentication.
    #[arg(long, env = "SCHEMA_REGISTRY_PASSWORD", hide_env_values = true)]
    pub schema_registry_password: Option<Secret>,
    /// PEM file of the CA(s) that signed the registry's certificate
    /// (default: the system's and the web's roots).
    #[arg(long, env = "SCHEMA_REGISTRY_CA_FILE")]
    pub schema_registry_ca_file: Option<PathBuf>,
}

/// The compose file's Redpanda cluster: right inside compose, wrong almost
/// everywhere else, so messages say when it is in use.
pub const DEFAULT_BROKERS: &str = "redpanda-0:9092,redpanda-1:9092,redpanda-2:9092";

impl KafkaArgs {
    /// The bootstrap brokers as messages name them, saying so when they are
    /// the default nobody chose.
    pub fn brokers_shown(&self) -> String {
        if self.brokers == DEFAULT_BROKERS {
            format!("{} (the default; set --brokers or KAFKA_BROKERS)", self.brokers)
        } else {
            self.brokers.clone()
        }
    }

    /// The producer's settings: flags, then `KAFKA_CONFIG_*` variables, then
    /// `--kafka-config` pass-through properties (a flag wins).
    pub fn kafka_config(&self) -> KafkaConfig {
        let mut cfg = KafkaConfig::new(&self.brokers);
        cfg.transactional_id_prefix = self.transactional_id_prefix.clone();
        cfg.transactions = self.transactions;
        cfg.transaction_timeout = Duration::from_secs(self.transaction_timeout_seconds);
        let mut from_env: Vec<Property> = std::env::vars()
            .filter_map(|(k, v)| {
                k.strip_prefix("KAFKA_CONFIG_")
                    .map(|rest| Property::new(rest.to_ascii_lowercase().replace('_', "."), v))
            })
            .collect();
        from_env.sort_by(|a, b| a.key.cmp(&b.key));
        // Flags after env vars, so a flag wins.
        cfg.overrides = from_env.into_iter().chain(self.kafka_config.iter().cloned()).collect();
        cfg
    }

    /// The topics written and how they are created; fails on a kind
    /// declaration that cannot be used.
    pub fn topics(&self) -> Result<TopicLayout, SchemaError> {
        let kinds = self.kinds.catalog(&self.data_topic, &self.voice_topic)?;
        Ok(TopicLayout {
            formats: self.kinds.formats(&kinds)?,
            partition_by: self.kinds.partition_columns(&kinds)?,
            kinds,
            dlq: self.dlq_topic.clone(),
            checkpoints: self.checkpoint_topic.clone(),
            partitions: self.partitions,
            replication: self.replication_factor,
            retention_ms: self.topic_retention_ms,
        })
    }
}

/// Where the ledger lives.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Ledger")]
pub struct LedgerArgs {
    /// Directory of the redb ledger (and the staging area for downloads).
    #[arg(long, env = "CDR_LEDGER_DIR", default_value = ".cdr-to-redpanda")]
    pub ledger_dir: PathBuf,
}

/// How rows are validated and files produced.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Ingest")]
// Flag help shows placeholders such as <dir> as they are typed.
#[allow(rustdoc::invalid_html_tags)]
pub struct IngestArgs {
    /// Most rows in one Kafka transaction.
    #[arg(long, env = "CDR_CHUNK_ROWS", default_value_t = ingest::DEFAULT_CHUNK_ROWS)]
    pub chunk_rows: u64,
    /// Longest a transaction stays open, seconds.
    #[arg(long, env = "CDR_CHUNK_SECONDS", default_value_t = ingest::DEFAULT_CHUNK_SECONDS)]
    pub chunk_seconds: u64,
    /// UTC offset of the files' timestamps, e.g. +02:00.
    #[arg(long, env = "CDR_TIME_OFFSET", default_value = "+00:00", value_parser = parse_offset)]
    pub time_offset: FixedOffset,
    /// Rows whose event time is more than this many seconds ahead of the
    /// clock go to the dead-letter topic: Kafka refuses timestamps more than
    /// message.timestamp.after.max.ms (1 h by default) in the future.
    #[arg(long, env = "CDR_MAX_FUTURE_SECONDS", default_value_t = ingest::DEFAULT_MAX_FUTURE_SECONDS)]
    pub max_future_seconds: u64,
    /// A name ingested before that arrives with different bytes: record a
    /// conflict, or ingest it again as a new version. With `conflict`, a file
    /// that only grew by whole lines continues after its last committed row
    /// instead.
    #[arg(long, env = "CDR_ON_CHANGED", value_enum, default_value_t = OnChanged::Conflict)]
    pub on_changed: OnChanged,
    /// Ingest files whose bytes equal an already ingested file's.
    #[arg(long, env = "CDR_ALLOW_DUPLICATE_CONTENT")]
    pub allow_duplicate_content: bool,
    /// While a file is produced, download the next one on a second source
    /// session (per slot), so the producer does not wait for each download.
    /// Worth it with `--workers 1`; with two files in flight one slot's
    /// download already overlaps the other's producing, and reading ahead
    /// as well measured no faster, for 10-14 MiB more memory.
    #[arg(long, env = "CDR_READ_AHEAD", default_value_t = false, action = clap::ArgAction::Set)]
    pub read_ahead: bool,
    /// After a file is committed: keep, delete, or move:<dir> on the source.
    #[arg(long, env = "CDR_AFTER_INGEST", default_value = "keep", value_parser = parse_after)]
    pub after_ingest: AfterIngest,
    /// Move failed, conflicting and duplicate files into this source directory.
    #[arg(long, env = "CDR_ERROR_DIR")]
    pub error_dir: Option<String>,
    /// Failures with a transient cause (file unreadable, a chunk the brokers
    /// kept failing while they answered) before a file is parked; `retry`
    /// releases it.
    #[arg(long, env = "CDR_FILE_ATTEMPTS", default_value_t = ParkPolicy::DEFAULT.max_attempts, value_parser = clap::value_parser!(u32).range(1..))]
    pub file_attempts: u32,
    /// Wait after a file's first counted failure, seconds; doubled after each
    /// further one.
    #[arg(long, env = "CDR_FILE_BACKOFF_SECONDS", default_value_t = ParkPolicy::DEFAULT.backoff.as_secs())]
    pub file_backoff_seconds: u64,
    /// Longest wait between a file's attempts, seconds.
    #[arg(long, env = "CDR_FILE_BACKOFF_MAX_SECONDS", default_value_t = ParkPolicy::DEFAULT.backoff_cap.as_secs())]
    pub file_backoff_max_seconds: u64,
}

/// The files' zone: read as a declared timestamp column's `zone` is.
fn parse_offset(s: &str) -> Result<FixedOffset, String> {
    schema::declare::parse_zone(s)
        .ok()
        .and_then(FixedOffset::east_opt)
        .ok_or_else(|| format!("expected an offset like +02:00 or -05:30, got {s:?}"))
}

fn parse_after(s: &str) -> Result<AfterIngest, String> {
    match s {
        "keep" => Ok(AfterIngest::Keep),
        "delete" => Ok(AfterIngest::Delete),
        _ => match s.strip_prefix("move:") {
            Some(dir) if !dir.is_empty() => Ok(AfterIngest::Move(dir.to_string())),
            _ => Err(format!("expected keep, delete or move:<dir>, got {s:?}")),
        },
    }
}

impl IngestArgs {
    /// The engine's settings, writing to `topics` (see [`KafkaArgs::topics`]);
    /// staging lives under the ledger directory.
    pub fn settings(&self, topics: TopicLayout, ledger: &LedgerArgs) -> IngestSettings {
        let mut s = IngestSettings::new(ledger.ledger_dir.join("staging"));
        s.topics = topics;
        s.chunk_rows = self.chunk_rows.max(1);
        s.chunk_time = Duration::from_secs(self.chunk_seconds.max(1));
        s.validation = Validation {
            time_offset: self.time_offset,
            latest_event_ms: None,
        };
        s.max_future = Duration::from_secs(self.max_future_seconds);
        s.on_changed = self.on_changed;
        s.allow_duplicate_content = self.allow_duplicate_content;
        s.read_ahead = self.read_ahead;
        s.after_success = self.after_ingest.clone();
        s.error_dir = self.error_dir.clone();
        s.park = ParkPolicy {
            max_attempts: self.file_attempts,
            backoff: Duration::from_secs(self.file_backoff_seconds),
            backoff_cap: Duration::from_secs(self.file_backoff_max_seconds.max(self.file_backoff_seconds)),
        };
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_after_actions_parse() {
        assert_eq!(parse_offset("+02:00").unwrap().local_minus_utc(), 7200);
        assert_eq!(parse_offset("-05:30").unwrap().local_minus_utc(), -19800);
        assert!(parse_offset("2").is_err());
        assert_eq!(parse_after("move:/done").unwrap(), AfterIngest::Move("/done".into()));
        assert!(parse_after("move:").is_err());
    }

    #[test]
    fn kafka_args_debug_masks_secret_passthrough_values() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            k: KafkaArgs,
        }
        let t = T::parse_from([
            "t",
            "--kafka-config",
            "sasl.password=hunter2",
            "--kafka-config",
            "acks=all",
        ]);
        let shown = format!("{:?}", t.k);
        assert!(
            shown.contains("sasl.password=***") && shown.contains("acks=all"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn no_config_struct_prints_a_secret_given_to_it() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        let marks = ["MARK-sasl", "MARK-jaas", "MARK-keypw", "MARK-sftp", "MARK-oauth"];
        let cli = crate::cli::Cli::try_parse_from([
            "cdr-to-redpanda",
            "run",
            "--kafka-config",
            "sasl.password=MARK-sasl",
            "--kafka-config",
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"u\" password=\"MARK-jaas\";",
            "--kafka-config",
            "ssl.key.password=MARK-keypw",
            "--kafka-config",
            "sasl.oauthbearer.client.secret=MARK-oauth",
            "--sftp-password",
            "MARK-sftp",
            "--sftp-key-file",
            key.to_str().unwrap(),
        ])
        .unwrap();
        let crate::cli::Command::Run(run) = &cli.command else {
            panic!("run parses as run")
        };
        let shown = [
            format!("{cli:?}"),
            format!("{cli:#?}"),
            format!("{:?}", run.common.kafka.kafka_config()),
            format!("{:?}", run.common.source.sftp_config().unwrap()),
            format!("{:?}", run.common.source),
        ];
        for text in &shown {
            for mark in marks {
                assert!(!text.contains(mark), "{mark} shown in:\n{text}");
            }
        }
        assert!(shown[0].contains("***"), "{}", shown[0]);
    }
}
