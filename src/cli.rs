//! The command line: subcommands and their argument groups. Parsing only;
//! `commands` does the work.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::audit::scope::{parse_time, TimeBasis};
use crate::config::{IngestArgs, KafkaArgs, LedgerArgs, SourceArgs};
use crate::generate::GenerateArgs;
use crate::group::GroupArgs;

/// The whole command line: global options and one subcommand.
#[derive(Parser, Debug)]
#[command(
    name = "cdr-to-redpanda",
    version,
    about = "Exactly-once ingest of telecom CDR files from SFTP into Redpanda / Kafka"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, env = "CDR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// TOML file of settings; keys are the long flag names (`sftp-host = "x"`,
    /// `kafka-config = { "sasl.mechanism" = "SCRAM-SHA-256" }`). Flags win
    /// over environment variables, which win over the file.
    #[arg(long, env = "CDR_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    // The variants' docs are not shown as help: one line of help per
    // possible value would switch every subcommand's help to the long layout.
    /// One human-readable line per event.
    #[value(help = None::<&str>)]
    Text,
    /// One JSON object per event, for a log shipper.
    #[value(help = None::<&str>)]
    Json,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// One pass over the source directory (every stable file, name order), then exit.
    /// Exit status 1 if a file failed, is backing off or was parked; 2 on a
    /// service error.
    Once(IngestCommand),
    /// The daemon: poll, ingest, repeat.
    Run(RunCommand),
    /// Write realistic sample CDR files.
    Generate(GenerateArgs),
    /// The ledger at a glance (read-only; safe while the daemon runs); with
    /// --group, the group's members, shards and lag as well.
    Status(StatusCommand),
    /// Try parked or failed files again: applied at once when no daemon
    /// holds the ledger, else queued for the daemon's next poll.
    Retry(RetryCommand),
    /// Print the effective settings (secrets masked) and test the SFTP and
    /// Kafka connections. Exit status 1 if either fails.
    CheckConfig(RunCommand),
    /// GET a health URL of a running daemon; exit 0 on HTTP 200 (for the
    /// container HEALTHCHECK: the runtime image has no curl).
    Healthcheck(HealthcheckCommand),
    /// Reconcile the ledger, the topics and the checkpoint topic (and with
    /// --rehash the source files). Exit 0 when all agree, 1 on any
    /// discrepancy, 2 when the audit could not run.
    Audit(AuditCommand),
}

/// Everything an ingest needs.
#[derive(clap::Args, Debug, Clone)]
pub struct IngestCommand {
    /// Where files come from.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Where records go.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// How files are taken, validated and produced.
    #[command(flatten)]
    pub ingest: IngestArgs,
    /// Where the ledger lives.
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Worker slots: the files in flight, each slot with its own
    /// transactional producer (`<prefix>-<slot>`). Files of one kind commit
    /// in name order; two slots may hold files of one kind, the second
    /// producing while the first's last commit is in flight, so the
    /// producer is never idle on a commit. More than 2 per kind add nothing;
    /// 1 takes one file at a time. With --group: the files in flight at
    /// once, one per shard, any kind
    #[arg(long, env = "CDR_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64), help_heading = "Ingest")]
    pub workers: u32,
}

/// `run`: an ingest that repeats, with the daemon's settings.
#[derive(clap::Args, Debug, Clone)]
pub struct RunCommand {
    /// What `once` takes too.
    #[command(flatten)]
    pub common: IngestCommand,
    /// Seconds between polls of the source directory (a settle interval
    /// instead while a listed file waits for its second look).
    #[arg(
        long,
        env = "CDR_POLL_INTERVAL_SECONDS",
        default_value_t = 10,
        help_heading = "Daemon"
    )]
    pub poll_interval_seconds: u64,
    /// After SIGTERM/SIGINT, the current chunk commits and the daemon exits
    /// 0; if that takes longer than this, it exits 1 at once (recovery
    /// settles the open transaction at the next start).
    #[arg(
        long,
        env = "CDR_SHUTDOWN_TIMEOUT_SECONDS",
        default_value_t = 20,
        help_heading = "Daemon"
    )]
    pub shutdown_timeout_seconds: u64,
    /// Serve /metrics (Prometheus), /healthz and /readyz on HOST:PORT. Off unless set.
    #[arg(long, env = "METRICS_ADDR", value_name = "HOST:PORT", help_heading = "Daemon")]
    pub metrics_addr: Option<String>,
    /// Sharing the source with other instances.
    #[command(flatten)]
    pub group: GroupArgs,
}

/// `healthcheck`: one GET of a daemon's health URL.
#[derive(clap::Args, Debug, Clone)]
pub struct HealthcheckCommand {
    /// The URL to GET.
    #[arg(long, default_value = "http://127.0.0.1:9464/healthz")]
    pub url: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3)]
    pub timeout_seconds: u64,
}

/// `status`: what the ledger (and the group) hold.
#[derive(clap::Args, Debug, Clone)]
pub struct StatusCommand {
    /// The ledger to read.
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// How many recent files to list.
    #[arg(long, default_value_t = 10)]
    pub recent: usize,
    /// Also show the group this instance belongs to: its members, the shards
    /// of each and the files waiting per shard (lists the source, reads the
    /// checkpoint topic). The ledger part is left out when there is no ledger
    #[arg(long, env = "CDR_GROUP", help_heading = "Group")]
    pub group: Option<String>,
    /// The group's assignment topic
    #[arg(
        long,
        env = "CDR_GROUP_TOPIC",
        default_value = crate::group::DEFAULT_GROUP_TOPIC,
        help_heading = "Group"
    )]
    pub group_topic: String,
    /// The cluster the group view reads.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// What the group view lists for the files waiting.
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("which").required(true).multiple(true).args(["files", "all_parked"])))]
/// `retry`: parked or failed files tried again.
pub struct RetryCommand {
    /// The ledger that holds them.
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// File names (no directory) of parked or failed files.
    pub files: Vec<String>,
    /// Every parked file.
    #[arg(long)]
    pub all_parked: bool,
}

/// `audit`: the ledger reconciled with the topics.
#[derive(clap::Args, Debug, Clone)]
pub struct AuditCommand {
    /// The ledger to reconcile.
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// The cluster whose topics are read.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Where --rehash re-reads the files from.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Audit only this file (its name, no directory).
    #[arg(long, help_heading = "Audit")]
    pub file: Option<String>,
    /// Audit only file names matching this glob (`*`, `?`).
    #[arg(long, help_heading = "Audit")]
    pub pattern: Option<String>,
    /// Only files whose time span reaches this time or later: RFC 3339 or
    /// `YYYY-MM-DD[ HH:MM[:SS]]` (UTC).
    #[arg(long, value_parser = parse_time, help_heading = "Audit")]
    pub since: Option<i64>,
    /// Only files whose time span starts at or before this time.
    #[arg(long, value_parser = parse_time, help_heading = "Audit")]
    pub until: Option<i64>,
    /// Which span --since/--until apply to: the CDRs' event times or the ingest.
    #[arg(long, value_enum, default_value_t = TimeBasis::Ingest, help_heading = "Audit")]
    pub time: TimeBasis,
    /// Re-read every ingested file from the source and compare its SHA-256.
    #[arg(long, help_heading = "Audit")]
    pub rehash: bool,
    /// Machine-readable report.
    #[arg(long, help_heading = "Audit")]
    pub json: bool,
    /// Seconds a Kafka read may stall before the audit gives up (exit 2).
    #[arg(long, default_value_t = 60, help_heading = "Audit")]
    pub timeout_seconds: u64,
    /// Consumers reading the topics' partitions in parallel.
    #[arg(long, default_value_t = 4, help_heading = "Audit")]
    pub consumers: usize,
    /// Audit the work of every instance of this group: the files named by
    /// the checkpoint topic count as well as this ledger's (which may then be
    /// absent, for an auditor on a host of its own)
    #[arg(long, env = "CDR_GROUP", help_heading = "Audit")]
    pub group: Option<String>,
}
