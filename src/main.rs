//! Thin binary: parse the command line, set up logging, dispatch, and turn
//! the outcome into one message and an exit status.

use std::process::ExitCode;

use clap::Parser;
use cdr_to_redpanda::cli::{Cli, Command, LogFormat};
use cdr_to_redpanda::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Once(args) => commands::ingest::once(&args),
        Command::Run(args) => commands::ingest::run(&args),
        Command::Generate(args) => commands::generate::generate(&args),
        Command::Status(args) => commands::status::status(&args),
        Command::Audit(args) => commands::audit::audit(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,librdkafka=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
