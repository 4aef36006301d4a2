//! Thin binary: parse the command line, set up logging, dispatch, and turn
//! the outcome into one message and an exit status.

use std::ffi::OsString;
use std::process::ExitCode;

use cdr_to_redpanda::cli::{Cli, Command};
use cdr_to_redpanda::config::validate;
use cdr_to_redpanda::secret::scrub;
use cdr_to_redpanda::sink::client_log;
use cdr_to_redpanda::{commands, config, logging};
use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    cdr_to_redpanda::arenas::cap();
    let argv: Vec<OsString> = std::env::args_os().collect();
    // Before parsing: the file's settings become environment defaults.
    let from_file = match config::file::apply(&Cli::command(), &argv) {
        Ok(applied) => applied,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let command = Cli::command();
    let matches = match command.clone().try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) => {
            let note = validate::origin_note(&e, &command, &argv, &from_file);
            let _ = e.print();
            if let Some(note) = note {
                eprintln!("note: {note}");
            }
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let problems = validate::problems(&command, &matches, &from_file);
    if !problems.is_empty() {
        for p in problems {
            eprintln!("error: {}", scrub(&p));
        }
        return ExitCode::from(2);
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    logging::init(cli.log_format);
    // A panic is a bug, but still a service error: exit 2 like any other (a
    // restart policy treats it so), after the panic's own message.
    let result = std::panic::catch_unwind(|| dispatch(cli.command, &argv, &from_file)).unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "internal error (the panic above is a bug): the ledger and the checkpoint topic recover at the next start"
        ))
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            let mut line = chain(&e);
            // librdkafka fails a request with a bare transport error; why the
            // brokers refused (a login, a certificate) is in its log.
            if let Some(acl) = client_log::acl_hint(&line) {
                line = format!("{line}; {acl}");
            } else if e.chain().any(|c| c.is::<rdkafka::error::KafkaError>()) {
                if let Some(why) = client_log::diagnosis() {
                    line = format!("{line}; {why}");
                }
            }
            // librdkafka's errors quote the property they refuse, value and all.
            eprintln!("error: {}", scrub(&line));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the
/// line already holds: rdkafka's errors repeat their source in their own
/// message, which `{:#}` would print three times.
fn chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if line.contains(&cause) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&cause);
    }
    line
}

fn dispatch(command: Command, argv: &[OsString], from_file: &config::file::Applied) -> anyhow::Result<ExitCode> {
    match command {
        Command::Once(args) => commands::ingest::once(&args),
        Command::Run(args) => commands::ingest::run(&args),
        Command::Generate(args) => commands::generate::generate(&args),
        Command::Status(args) => commands::status::status(&args),
        Command::Retry(args) => commands::retry::retry(&args),
        Command::CheckConfig(args) => commands::check_config::check_config(&args, argv, from_file),
        Command::Healthcheck(args) => commands::healthcheck::healthcheck(&args),
        Command::Audit(args) => commands::audit::audit(&args),
    }
}
