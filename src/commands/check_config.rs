//! `check-config`: the effective settings, where each came from, secrets
//! masked; then one test of each connection.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::CommandFactory;

use crate::cli::{Cli, RunCommand};
use crate::config::validate::Origin;
use crate::registry;
use crate::secret::scrub;
use crate::sink::probe::BrokerProbe;

/// Settings whose values are secrets: printed as `***`.
fn is_secret_arg(arg: &clap::Arg) -> bool {
    arg.is_hide_env_values_set()
}

/// Prints the effective settings and where each came from, then tests the
/// source, the brokers and (for avro) the schema registry; exit 1 if one fails.
pub fn check_config(args: &RunCommand, argv: &[OsString], from_file: &[String]) -> anyhow::Result<ExitCode> {
    let cli = Cli::command();
    let matches = cli.clone().try_get_matches_from(argv)?;
    let (name, sub) = matches
        .subcommand()
        .ok_or_else(|| anyhow::anyhow!("check-config: no subcommand in the arguments"))?;
    let cmd = cli
        .find_subcommand(name)
        .ok_or_else(|| anyhow::anyhow!("check-config: unknown subcommand {name}"))?;
    println!("effective settings (source: flag, env, file, default):");
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" || long == "version" || long == "kafka-config" {
            continue;
        }
        let id = arg.get_id().as_str();
        let source = Origin::of(arg, sub, from_file).word();
        let value = match sub.get_raw(id) {
            Some(_) if is_secret_arg(arg) => "***".to_string(),
            Some(raw) => raw
                .map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(","),
            None => String::new(),
        };
        println!("  {long:<36} {value:<40} ({source})");
    }
    let kafka = args.common.kafka.kafka_config();
    for p in &kafka.overrides {
        println!("  kafka-config {p}");
    }
    let layout = args.common.kafka.topics()?;
    println!("record kinds (file globs -> topic; columns in output order):");
    for kind in layout.kinds.iter() {
        let spec = kind.spec();
        println!(
            "  {} ({}) -> {} as {}, dead letters -> {}, event time {}",
            kind,
            spec.files.join(" "),
            kind.topic(),
            layout.format_of(kind),
            layout.dlq_for(kind),
            kind.time_column()
        );
        for col in kind.columns() {
            let optional = if col.optional { ", optional" } else { "" };
            println!("      {:<24} {}{optional}", col.name, col.ty);
        }
    }

    let mut ok = true;
    match args
        .common
        .source
        .build()
        .and_then(|mut s| s.list().map(|l| (s.describe(), l)))
    {
        Ok((what, l)) => println!(
            "source: ok ({what}: {} files, {} other entries never taken)",
            l.files.len(),
            l.ignored.len()
        ),
        Err(e) => {
            ok = false;
            println!("source: FAILED: {}", scrub(&e.to_string()));
        }
    }
    match BrokerProbe::new(&kafka, &args.common.kafka.checkpoint_topic).and_then(|p| p.brokers(Duration::from_secs(10)))
    {
        Ok(n) if usize::try_from(args.common.kafka.replication_factor).is_ok_and(|r| r > n) => {
            ok = false;
            println!(
                "kafka: FAILED: replication factor {} (--replication-factor / CDR_TOPIC_REPLICATION) \
                 exceeds the {n} broker(s) at {}: topics could not be created",
                args.common.kafka.replication_factor, kafka.brokers
            );
        }
        Ok(n) => println!("kafka: ok ({n} broker(s) at {})", kafka.brokers),
        Err(e) => {
            ok = false;
            println!("kafka: FAILED: {}", scrub(&e.to_string()));
        }
    }
    match registry::check(&layout, &args.common.kafka.registry) {
        Ok(None) => {}
        Ok(Some(lines)) => {
            println!("schema registry: ok");
            for line in lines {
                println!("  {line}");
            }
        }
        Err(e) => {
            ok = false;
            println!("schema registry: FAILED: {}", scrub(&e.to_string()));
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
