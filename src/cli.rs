//! The command line: subcommands and their argument groups. Parsing only;
//! `commands` does the work.

use clap::{Parser, Subcommand};

use crate::config::{IngestArgs, KafkaArgs, LedgerArgs, SourceArgs};
use crate::generate::GenerateArgs;

#[derive(Parser, Debug)]
#[command(name = "cdr-to-redpanda", version, about = "Exactly-once ingest of telecom CDR files from SFTP into Redpanda / Kafka")]
pub struct Cli {
    /// Log format.
    #[arg(long, env = "CDR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// One pass over the source directory (every stable file, name order), then exit.
    /// Exit status 1 if a file failed.
    Once(IngestCommand),
    /// The daemon: poll, ingest, repeat.
    Run(RunCommand),
    /// Write realistic sample CDR files.
    Generate(GenerateArgs),
    /// The ledger at a glance (read-only; safe while the daemon runs).
    Status(StatusCommand),
}

/// Everything an ingest needs.
#[derive(clap::Args, Debug, Clone)]
pub struct IngestCommand {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub ingest: IngestArgs,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunCommand {
    #[command(flatten)]
    pub common: IngestCommand,
    /// Seconds between polls of the source directory.
    #[arg(long, env = "CDR_POLL_INTERVAL_SECONDS", default_value_t = 10, help_heading = "Daemon")]
    pub poll_interval_seconds: u64,
}

#[derive(clap::Args, Debug, Clone)]
pub struct StatusCommand {
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// How many recent files to list.
    #[arg(long, default_value_t = 10)]
    pub recent: usize,
}
