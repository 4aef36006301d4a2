//! Settings checked at the edge, after parsing and before any connection:
//! one message per problem, naming the setting and where its value came from
//! (a flag, an environment variable, the config file or the default), since
//! a value from the environment blamed on a flag sends an operator to the
//! wrong place.

use std::ffi::OsString;
use std::fmt;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The command line.
    Flag,
    /// This environment variable.
    Env(String),
    /// The config file, through this environment variable.
    File(String),
    /// The built-in default.
    Default,
    /// Not set.
    Unset,
}

impl Origin {
    /// The origin of `arg`'s value in `sub` (the subcommand's matches);
    /// `from_file` names the variables the config file set.
    pub fn of(arg: &clap::Arg, sub: &ArgMatches, from_file: &[String]) -> Origin {
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        match (sub.value_source(arg.get_id().as_str()), env) {
            (Some(ValueSource::CommandLine), _) => Origin::Flag,
            (Some(ValueSource::EnvVariable), Some(e)) if from_file.contains(&e) => Origin::File(e),
            (Some(ValueSource::EnvVariable), Some(e)) => Origin::Env(e),
            (Some(ValueSource::DefaultValue), _) => Origin::Default,
            _ => Origin::Unset,
        }
    }

    /// The one word `check-config` shows for it.
    pub fn word(&self) -> &'static str {
        match self {
            Origin::Flag => "flag",
            Origin::Env(_) => "env",
            Origin::File(_) => "file",
            Origin::Default => "default",
            Origin::Unset => "unset",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag => f.write_str("from the command line"),
            Origin::Env(e) => write!(f, "from the environment variable {e}"),
            Origin::File(e) => write!(f, "from the config file, as {e}"),
            Origin::Default => f.write_str("the default"),
            Origin::Unset => f.write_str("not set"),
        }
    }
}

/// A rule a setting's value must keep; the error says what is expected.
type Rule = fn(&str) -> Result<(), String>;

fn at_least_one(v: &str) -> Result<(), String> {
    match v.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(()),
        _ => Err("must be a whole number of at least 1".into()),
    }
}

fn port(v: &str) -> Result<(), String> {
    match v.parse::<u32>() {
        Ok(1..=65535) => Ok(()),
        _ => Err("must be a port from 1 to 65535".into()),
    }
}

/// `host:port[,host:port...]`, no scheme: what librdkafka's
/// `bootstrap.servers` takes.
fn broker_list(v: &str) -> Result<(), String> {
    if v.trim().is_empty() {
        return Err("must name at least one broker as host:port".into());
    }
    for b in v.split(',').map(str::trim) {
        if b.contains("://") {
            return Err(format!("{b:?}: a broker is host:port, without a scheme"));
        }
        let Some((host, p)) = b.rsplit_once(':') else {
            return Err(format!("{b:?}: a broker is host:port"));
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(format!("{b:?}: the host is missing"));
        }
        port(p).map_err(|_| format!("{b:?}: the port must be from 1 to 65535"))?;
    }
    Ok(())
}

/// The rule of each setting that has one, by argument id.
fn rule(id: &str) -> Option<Rule> {
    Some(match id {
        "chunk_rows"
        | "chunk_seconds"
        | "poll_interval_seconds"
        | "transaction_timeout_seconds"
        | "partitions"
        | "replication_factor"
        | "file_attempts"
        | "group_shards"
        | "workers" => at_least_one,
        "sftp_port" => port,
        "brokers" => broker_list,
        _ => return None,
    })
}

/// Every problem with the settings of the subcommand in `matches`, one
/// message each; empty when all is well.
pub fn problems(cli: &Command, matches: &ArgMatches, from_file: &[String]) -> Vec<String> {
    let Some((name, sub)) = matches.subcommand() else {
        return Vec::new();
    };
    let Some(cmd) = cli.find_subcommand(name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        let (Some(rule), Some(raw)) = (rule(id), sub.get_raw(id)) else {
            continue;
        };
        let setting = arg.get_long().map_or_else(|| id.to_string(), |l| format!("--{l}"));
        for value in raw.map(|v| v.to_string_lossy().into_owned()) {
            if let Err(why) = rule(&value) {
                let origin = Origin::of(arg, sub, from_file);
                out.push(format!("{setting} = {value:?} ({origin}): {why}"));
            }
        }
    }
    out
}

/// A note for a clap error about a value that did not come from the
/// command line: clap names the flag, the operator set a variable or a file.
pub fn origin_note(err: &clap::Error, cli: &Command, argv: &[OsString], from_file: &[String]) -> Option<String> {
    if !matches!(err.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        return None;
    }
    let Some(ContextValue::String(invalid)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = invalid.trim_start_matches('-').split([' ', '=']).next()?;
    let given = argv.iter().any(|a| {
        let a = a.to_string_lossy();
        a == format!("--{long}") || a.starts_with(&format!("--{long}="))
    });
    if given {
        return None;
    }
    let arg = cli
        .get_subcommands()
        .flat_map(|c| c.get_arguments())
        .chain(cli.get_arguments())
        .find(|a| a.get_long() == Some(long))?;
    let env = arg.get_env()?.to_string_lossy().into_owned();
    std::env::var_os(&env)?;
    let origin = if from_file.contains(&env) {
        Origin::File(env)
    } else {
        Origin::Env(env)
    };
    Some(format!("the value of --{long} came {origin}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_lists_are_host_port_pairs_without_a_scheme() {
        assert!(broker_list("127.0.0.1:9092").is_ok());
        assert!(broker_list("a:9092, b:9093,[::1]:9094").is_ok());
        for bad in ["", " ", "http://a:9092", "a", "a:0", "a:99999", ":9092", "a:9092,"] {
            assert!(broker_list(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn counts_and_ports_must_be_positive_and_in_range() {
        assert!(at_least_one("1").is_ok());
        assert!(at_least_one("0").is_err());
        assert!(port("0").is_err() && port("65536").is_err() && port("22").is_ok());
    }

    #[test]
    fn each_bad_setting_is_one_message_naming_it_and_where_it_came_from() {
        use clap::CommandFactory;
        let cli = crate::cli::Cli::command();
        let matches = cli
            .clone()
            .try_get_matches_from([
                "cdr-to-redpanda",
                "run",
                "--chunk-rows",
                "0",
                "--poll-interval-seconds",
                "0",
                "--sftp-port",
                "0",
                "--brokers",
                "http://127.0.0.1:9092",
            ])
            .unwrap();
        let problems = problems(&cli, &matches, &[]);
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems
            .iter()
            .any(|p| p.starts_with("--chunk-rows = \"0\" (from the command line): must be")));
        assert!(problems
            .iter()
            .any(|p| p.starts_with("--sftp-port = \"0\" (from the command line): must be a port")));
        assert!(problems.iter().any(|p| p.contains("without a scheme")));
    }
}
