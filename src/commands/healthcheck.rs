//! `healthcheck`: the container HEALTHCHECK's probe.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::HealthcheckCommand;
use crate::metrics::probe;

/// Exit 0 on HTTP 200, 1 on any other status or no answer.
pub fn healthcheck(args: &HealthcheckCommand) -> anyhow::Result<ExitCode> {
    match probe::get(&args.url, Duration::from_secs(args.timeout_seconds.max(1))) {
        Ok((200, body)) => {
            print!("{body}");
            Ok(ExitCode::SUCCESS)
        }
        Ok((status, body)) => {
            eprintln!("{}: HTTP {status}: {}", args.url, body.trim());
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}
