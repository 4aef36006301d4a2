//! The optional TOML settings file (`--config FILE` / `CDR_CONFIG`).
//!
//! Keys are the long flag names of the subcommand being run (`sftp-host`,
//! `chunk-rows`; `_` works for `-`), plus a `kafka-config` table of librdkafka
//! properties. The file is applied before the command line is parsed, by
//! setting the environment variable each flag already reads for every key
//! whose variable is not set: so flags win over the environment, which wins
//! over the file, which wins over the defaults, with no second copy of any
//! default or validation rule. An unknown key is an error (a typo must not
//! silently fall back to a default).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Command;

/// Why the settings file could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The settings file.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {detail}")]
    /// The file is not TOML.
    Parse {
        /// The settings file.
        path: PathBuf,
        /// The TOML parser's message, with its line and column.
        detail: String,
    },
    #[error("config file {path}: unknown setting {key:?}")]
    /// A key that names no flag.
    UnknownKey {
        /// The settings file.
        path: PathBuf,
        /// The key as written.
        key: String,
    },
    #[error("config file {path}: {key:?} cannot be set from a file; pass it as a flag")]
    /// A flag that has no environment variable, so the file cannot supply it.
    NoEnv {
        /// The settings file.
        path: PathBuf,
        /// The key as written.
        key: String,
    },
    #[error("config file {path}: {key:?} must be {expected}")]
    /// A value of the wrong TOML type.
    BadValue {
        /// The settings file.
        path: PathBuf,
        /// The key as written.
        key: String,
        /// The type the key takes.
        expected: &'static str,
    },
}

/// The settings the file supplied, as environment variable names, for
/// `check-config` to report where each value came from.
pub type Applied = Vec<String>;

/// The config file named on the command line (`--config X`, `--config=X`) or
/// in `CDR_CONFIG`.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("CDR_CONFIG").map(PathBuf::from)
}

/// Reads the config file, if one is named, and exports its settings as the
/// environment variables the command line reads. Call before any thread
/// starts (it sets process environment variables).
pub fn apply(cli: &Command, args: &[OsString]) -> Result<Applied, ConfigFileError> {
    let Some(path) = config_path(args) else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigFileError::Read {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigFileError::Parse {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    let sub = subcommand(cli, args);
    let mut exports = Vec::new();
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        if flag == "kafka-config" {
            exports.extend(kafka_config_env(&path, key, value)?);
            continue;
        }
        if flag == "kind" {
            exports.push(kinds_env(&path, key, value)?);
            continue;
        }
        let arg = sub
            .iter()
            .flat_map(|c| c.get_arguments())
            .chain(cli.get_arguments())
            .find(|a| a.get_long() == Some(flag.as_str()));
        let Some(arg) = arg else {
            // A key of another subcommand is fine: one file serves them all.
            if known_anywhere(cli, &flag) {
                continue;
            }
            return Err(ConfigFileError::UnknownKey { path, key: key.clone() });
        };
        let Some(env) = arg.get_env() else {
            return Err(ConfigFileError::NoEnv { path, key: key.clone() });
        };
        let text = scalar(&path, key, value)?;
        exports.push((env.to_string_lossy().into_owned(), text));
    }
    let mut applied = Vec::new();
    for (env, value) in exports {
        if std::env::var_os(&env).is_none() {
            std::env::set_var(&env, value);
            applied.push(env);
        }
    }
    Ok(applied)
}

/// The subcommand named in `args` (the first argument naming one).
fn subcommand<'c>(cli: &'c Command, args: &[OsString]) -> Option<&'c Command> {
    args.iter()
        .skip(1)
        .find_map(|a| cli.find_subcommand(a.to_string_lossy().as_ref()))
}

fn known_anywhere(cli: &Command, flag: &str) -> bool {
    cli.get_subcommands()
        .flat_map(|c| c.get_arguments())
        .any(|a| a.get_long() == Some(flag))
}

/// A TOML value as the text a flag would be given; arrays become the
/// comma-separated lists the list flags take.
fn scalar(path: &Path, key: &str, v: &toml::Value) -> Result<String, ConfigFileError> {
    let bad = || ConfigFileError::BadValue {
        path: path.to_path_buf(),
        key: key.to_string(),
        expected: "a string, number, boolean or array of them",
    };
    Ok(match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                toml::Value::Array(_) | toml::Value::Table(_) => Err(bad()),
                other => scalar(path, key, other),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        _ => return Err(bad()),
    })
}

/// `kafka-config = { "sasl.mechanism" = "..." }` -> `KAFKA_CONFIG_SASL_MECHANISM`.
fn kafka_config_env(path: &Path, key: &str, value: &toml::Value) -> Result<Vec<(String, String)>, ConfigFileError> {
    let toml::Value::Table(t) = value else {
        return Err(ConfigFileError::BadValue {
            path: path.to_path_buf(),
            key: key.to_string(),
            expected: "a table of librdkafka properties",
        });
    };
    t.iter()
        .map(|(k, v)| {
            let env = format!("KAFKA_CONFIG_{}", k.to_ascii_uppercase().replace('.', "_"));
            Ok((env, scalar(path, k, v)?))
        })
        .collect()
}

/// `[kind.<name>]` tables -> `CDR_KINDS`, the declarations as JSON (what
/// `--kind-declarations` takes).
fn kinds_env(path: &Path, key: &str, value: &toml::Value) -> Result<(String, String), ConfigFileError> {
    let bad = || ConfigFileError::BadValue {
        path: path.to_path_buf(),
        key: key.to_string(),
        expected: "tables of kind declarations, [kind.<name>]",
    };
    if !matches!(value, toml::Value::Table(_)) {
        return Err(bad());
    }
    let json = serde_json::to_string(value).map_err(|_| bad())?;
    Ok(("CDR_KINDS".to_owned(), json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn file_settings_fill_unset_env_and_never_override() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "chunk-rows = 777\nsftp_host = \"from-file\"\ndata-types = [\"a\", \"b\"]\n\
             recent = 3\n[kafka-config]\n\"sasl.mechanism\" = \"SCRAM-SHA-256\"\n",
        )
        .unwrap();
        // Set by the "environment": the file must not override it.
        std::env::set_var("SFTP_HOST", "from-env");
        let cli = crate::cli::Cli::command();
        let applied = apply(&cli, &os(&["x", "--config", file.to_str().unwrap(), "once"])).unwrap();
        assert_eq!(std::env::var("CDR_CHUNK_ROWS").unwrap(), "777");
        assert_eq!(std::env::var("CDR_DATA_TYPES").unwrap(), "a,b");
        assert_eq!(std::env::var("SFTP_HOST").unwrap(), "from-env");
        assert_eq!(std::env::var("KAFKA_CONFIG_SASL_MECHANISM").unwrap(), "SCRAM-SHA-256");
        assert!(applied.contains(&"CDR_CHUNK_ROWS".to_string()));
        assert!(!applied.contains(&"SFTP_HOST".to_string()));

        std::fs::write(&file, "chunk-rowz = 1\n").unwrap();
        let err = apply(&cli, &os(&["x", "--config", file.to_str().unwrap(), "once"])).unwrap_err();
        assert!(matches!(err, ConfigFileError::UnknownKey { .. }), "{err}");
    }

    #[test]
    fn kind_tables_become_the_declarations_the_catalog_reads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.toml");
        std::fs::write(
            &file,
            "[kind.sms]\nfiles = [\"cdr_sms_*.csv\"]\ntopic = \"cdr-sms\"\ntime-column = \"sent_time\"\n\
             columns = [{ name = \"msisdn\", type = \"digits\", min = 6, max = 15 },\n\
             { name = \"sent_time\", type = \"timestamp\" }]\n",
        )
        .unwrap();
        let cli = crate::cli::Cli::command();
        let applied = apply(&cli, &os(&["x", "--config", file.to_str().unwrap(), "once"])).unwrap();
        assert!(applied.contains(&"CDR_KINDS".to_string()));
        let specs = crate::schema::declare::from_json(&std::env::var("CDR_KINDS").unwrap()).unwrap();
        assert_eq!((specs[0].name.as_str(), specs[0].topic.as_str()), ("sms", "cdr-sms"));
        assert_eq!(specs[0].columns.len(), 2);

        std::fs::write(&file, "kind = \"sms\"\n").unwrap();
        let err = apply(&cli, &os(&["x", "--config", file.to_str().unwrap(), "once"])).unwrap_err();
        assert!(err.to_string().contains("tables of kind declarations"), "{err}");
    }
}
