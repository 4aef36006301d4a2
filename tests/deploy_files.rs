//! The deployment files, checked without a Docker engine: docker-compose.yml
//! and the Dockerfile parse, reference paths that exist, and pass our binary
//! only flags and environment variables it accepts (checked against the clap
//! definitions); the image's entrypoint command and its HEALTHCHECK command
//! are run directly against the local stack.

mod common;
mod daemon_support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use cdr_to_redpanda::cli::Cli;
use clap::{CommandFactory, Parser};
use common::*;
use daemon_support::*;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_compose_files_validate_against_the_compose_specification() {
    // check-jsonschema (PyPI) vendors the compose-spec schema: no network.
    let python = test_python();
    let check = python.with_file_name("check-jsonschema");
    for file in ["docker-compose.yml", "docker-compose.secured.yml"] {
        let out = Command::new(&check)
            .args(["--builtin-schema", "vendor.compose-spec"])
            .arg(repo().join(file))
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", check.display()));
        assert!(out.status.success(), "{file}: {}", output_text(&out));
    }
    // The schema has teeth: a misspelt service key fails it.
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    let broken = tempfile::Builder::new().suffix(".yml").tempfile().unwrap();
    std::fs::write(broken.path(), text.replacen("restart:", "restrat:", 1)).unwrap();
    let out = Command::new(&check)
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(broken.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "a misspelt key passes: {}", output_text(&out));
}

fn python(script: &str, args: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", output_text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn compose() -> Value {
    compose_file("docker-compose.yml")
}

fn compose_file(name: &str) -> Value {
    yaml_file(&repo().join(name))
}

fn shell_words(line: &str) -> Vec<String> {
    let v = python(
        "import json, shlex, sys; json.dump(shlex.split(sys.argv[1]), sys.stdout)",
        &[line],
    );
    serde_json::from_value(v).unwrap()
}

/// `run`'s settings (and the global ones) by environment variable name.
fn run_args_by_env() -> BTreeMap<String, clap::Arg> {
    let mut cli = Cli::command();
    cli.build();
    let run = cli.find_subcommand("run").unwrap().clone();
    run.get_arguments()
        .chain(cli.get_arguments())
        .filter_map(|a| Some((a.get_env()?.to_string_lossy().into_owned(), a.clone())))
        .collect()
}

/// The compose environment as `run` flags: clap then validates each value
/// exactly as it would from the environment.
fn env_as_flags(env: &serde_json::Map<String, Value>) -> Vec<String> {
    let by_env = run_args_by_env();
    let mut flags = Vec::new();
    for (k, v) in env {
        let value = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if k.starts_with("KAFKA_CONFIG_") {
            continue;
        }
        let arg = by_env
            .get(k)
            .unwrap_or_else(|| panic!("compose passes {k}, which our CLI does not read"));
        let long = format!("--{}", arg.get_long().unwrap());
        if matches!(arg.get_action(), clap::ArgAction::SetTrue) {
            assert_eq!(value, "true", "{k}");
            flags.push(long);
        } else {
            flags.extend([long, value]);
        }
    }
    flags
}

#[test]
fn compose_file_parses_references_existing_paths_and_passes_only_accepted_settings() {
    let c = compose();
    let services = c["services"].as_object().unwrap();
    for b in ["redpanda-0", "redpanda-1", "redpanda-2"] {
        assert!(services[b]["healthcheck"]["test"].is_array(), "{b} has a healthcheck");
    }
    assert!(services.contains_key("console"));
    assert!(services["sftp"]["image"].as_str().unwrap().starts_with("atmoz/sftp"));
    for (name, s) in services {
        if let Some(ctx) = s["build"].as_str() {
            assert!(
                repo().join(ctx).join("Dockerfile").is_file(),
                "{name}: build context {ctx}"
            );
        }
        for v in s["volumes"].as_array().into_iter().flatten() {
            let Some((src, _)) = v.as_str().unwrap().split_once(':') else {
                continue; // an anonymous volume: nothing to exist beforehand
            };
            if src.starts_with('.') || src.starts_with('/') {
                assert!(repo().join(src).exists(), "{name}: volume source {src}");
            } else {
                assert!(c["volumes"].get(src).is_some(), "{name}: named volume {src} declared");
            }
        }
    }

    let svc = &services["cdr-to-redpanda"];
    assert_eq!(svc["restart"], "unless-stopped");
    for b in ["redpanda-0", "redpanda-1", "redpanda-2"] {
        assert_eq!(svc["depends_on"][b]["condition"], "service_healthy", "{b}");
    }
    // Scalable: one (anonymous) ledger volume per replica, no fixed name or host port.
    assert!(svc["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v.as_str().unwrap() == "/var/lib/cdr-to-redpanda"));
    assert!(svc.get("container_name").is_none(), "a container_name forbids --scale");
    assert!(
        svc["ports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| !p.as_str().unwrap().contains(':')),
        "a fixed host port forbids --scale"
    );
    assert!(
        svc["environment"]["CDR_GROUP"].is_string(),
        "replicas share the files through a group"
    );
    assert_eq!(svc["deploy"]["resources"]["limits"]["cpus"], "1");
    assert_eq!(svc["deploy"]["resources"]["limits"]["memory"], "512m");
    let env = svc["environment"].as_object().unwrap();
    for k in [
        "SFTP_HOST",
        "SFTP_PORT",
        "SFTP_USER",
        "SFTP_PASSWORD",
        "SFTP_REMOTE_PATH",
        "KAFKA_BROKERS",
        "CDR_DATA_TOPIC",
        "CDR_VOICE_TOPIC",
        "METRICS_ADDR",
        "SCHEMA_REGISTRY_URL",
    ] {
        assert!(env.contains_key(k), "compose sets {k}");
    }
    assert_eq!(env["CDR_FORMAT"], "avro", "the compose service writes typed records");
    for n in 0..3 {
        let command = services[format!("redpanda-{n}").as_str()]["command"].to_string();
        assert!(
            command.contains("--schema-registry-addr internal://0.0.0.0:8081"),
            "redpanda-{n} serves the registry the service uses: {command}"
        );
    }
    let console = services["console"]["environment"].as_object().unwrap();
    assert_eq!(
        console["KAFKA_SCHEMAREGISTRY_ENABLED"], "true",
        "Console decodes the avro records"
    );
    let mut argv = vec!["cdr-to-redpanda".to_string(), "run".to_string()];
    argv.extend(env_as_flags(env));
    if let Err(e) = Cli::try_parse_from(&argv) {
        panic!("compose environment rejected: {e}");
    }

    // The generator's command line, with its shell substitutions filled in.
    let script = services["generator"]["command"][0].as_str().unwrap();
    let line = script
        .lines()
        .find(|l| l.contains("cdr-to-redpanda generate"))
        .expect("generator runs generate");
    let words = shell_words(line.split('>').next().unwrap());
    let mut argv: Vec<String> = Vec::new();
    for w in words {
        let sample = match argv.last().map(String::as_str) {
            Some("--seed") => "1",
            Some("--start") => "2024-01-01T00:00:00",
            _ => &w,
        };
        argv.push(if w.contains('$') { sample.to_string() } else { w });
    }
    if let Err(e) = Cli::try_parse_from(&argv) {
        panic!("generator command {argv:?} rejected: {e}");
    }
}

/// An ACL as (principal, operations, resources, pattern type), each list
/// sorted and spelt the same whichever tool's line it came from.
type Acl = (String, Vec<String>, Vec<String>, String);

/// An ACL from `kafka-acls` arguments (`--operation DescribeConfigs --topic
/// a --topic b`) or rpk's (`--operation describe_configs --topic a,b`):
/// lists split at commas, operations in rpk's spelling.
fn parse_acl(words: &[String], principal: &str) -> Acl {
    let mut acl = (principal.to_string(), Vec::new(), Vec::new(), "literal".to_string());
    for pair in words.windows(2) {
        let values = pair[1].split(',');
        match pair[0].as_str() {
            "--allow-principal" => acl.0 = pair[1].clone(),
            "--operation" => acl.1.extend(values.map(snake)),
            "--topic" | "--group" | "--transactional-id" => {
                acl.2.extend(values.map(|v| format!("{}={v}", &pair[0][2..])))
            }
            "--resource-pattern-type" => acl.3 = pair[1].clone(),
            _ => {}
        }
    }
    acl.1.sort();
    acl.2.sort();
    acl
}

/// `DescribeConfigs` as rpk spells it: `describe_configs`.
fn snake(op: &str) -> String {
    let mut out = String::new();
    for (i, c) in op.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// The secured variant's `acl ...` lines, each granted to `principal`.
fn rpk_acls(script: &str, principal: &str) -> Vec<Acl> {
    script
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("acl --"))
        .map(|l| {
            parse_acl(
                &l.split_whitespace().skip(1).map(str::to_owned).collect::<Vec<_>>(),
                principal,
            )
        })
        .collect()
}

#[test]
fn the_secured_compose_variant_grants_the_documented_acls_and_passes_accepted_settings() {
    let base = compose();
    let secured = compose_file("docker-compose.secured.yml");
    let services = secured["services"].as_object().unwrap();
    for b in ["redpanda-0", "redpanda-1", "redpanda-2"] {
        let command = services[b]["command"].to_string();
        for want in [
            "enable_sasl=true",
            "superusers=['admin']",
            "kafka_api_tls=",
            "'name':'internal'",
            "'name':'external'",
        ] {
            assert!(command.contains(want), "{b} sets {want}: {command}");
        }
        // The base command is replaced whole: the secured one keeps its flags.
        for flag in base["services"][b]["command"].as_array().unwrap() {
            assert!(command.contains(flag.as_str().unwrap()), "{b} keeps {flag}");
        }
        let user = services[b]["environment"]["RP_BOOTSTRAP_USER"].as_str().unwrap();
        assert!(
            user.starts_with("admin:${") && user.ends_with(":SCRAM-SHA-512"),
            "{user}"
        );
    }
    // The service's user gets exactly the documented group-mode ACLs.
    let script = services["redpanda-init"]["command"][0].as_str().unwrap();
    let mut granted = rpk_acls(script, "User:cdr");
    let mut documented: Vec<Acl> = documented_acls()
        .iter()
        .map(|a| parse_acl(a, ""))
        .filter(|a| a.0 == "User:cdr")
        .collect();
    granted.sort();
    documented.sort();
    assert_eq!(granted, documented);

    // Its settings, over the base file's, are ones `run` accepts; the
    // librdkafka ones are checked against a real broker in secured_broker.rs.
    let svc = &services["cdr-to-redpanda"];
    assert_eq!(
        svc["depends_on"]["redpanda-init"]["condition"],
        "service_completed_successfully"
    );
    let mut env = base["services"]["cdr-to-redpanda"]["environment"]
        .as_object()
        .unwrap()
        .clone();
    let overlay = svc["environment"].as_object().unwrap();
    assert_eq!(overlay["KAFKA_CONFIG_SECURITY_PROTOCOL"], "SASL_SSL");
    env.extend(overlay.clone());
    let mut argv = vec!["cdr-to-redpanda".to_string(), "run".to_string()];
    argv.extend(env_as_flags(&env));
    if let Err(e) = Cli::try_parse_from(&argv) {
        panic!("secured compose environment rejected: {e}");
    }
    // Its certificates directory exists and keeps keys out of git.
    let ignore = std::fs::read_to_string(repo().join("deploy/certs/.gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "*"), "{ignore}");
}

/// Dockerfile instructions, continuation lines joined.
fn dockerfile() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => cur.push_str(part),
            None => {
                cur.push_str(t);
                let (i, rest) = cur.split_once(' ').unwrap_or((&cur, ""));
                out.push((i.to_uppercase(), rest.trim().to_string()));
                cur.clear();
            }
        }
    }
    out
}

fn json_args(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("exec form expected: {s}: {e}"))
}

struct Image {
    env: Vec<(String, String)>,
    command: Vec<String>,
    healthcheck: Vec<String>,
}

fn image() -> Image {
    let ins = dockerfile();
    let stages = ins.iter().filter(|(i, _)| i == "FROM").count();
    assert!(stages >= 2, "multi-stage build");
    let runtime_from = ins.iter().rposition(|(i, _)| i == "FROM").unwrap();
    assert!(
        ins[runtime_from].1.starts_with("gcr.io/distroless/cc-debian12:nonroot"),
        "distroless runtime: {}",
        ins[runtime_from].1
    );
    let runtime = &ins[runtime_from..];
    // scripts/image.sh builds this stage where no shell exists.
    assert!(
        runtime.iter().all(|(i, _)| i != "RUN"),
        "no RUN in the runtime stage: {runtime:?}"
    );
    assert!(
        runtime.iter().any(|(i, r)| i == "COPY" && r.contains("libz.so.1")),
        "zlib, which the distroless base lacks"
    );
    for (i, rest) in &ins {
        if i == "COPY" && !rest.starts_with("--from") {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            for src in &parts[..parts.len() - 1] {
                assert!(repo().join(src).exists(), "COPY source {src} exists");
            }
        }
    }
    let last = |name: &str| runtime.iter().rev().find(|(i, _)| i == name).map(|(_, r)| r.clone());
    let user = last("USER").expect("USER");
    assert!(user != "root" && user != "0", "non-root user");
    assert_eq!(last("VOLUME").as_deref(), Some("/var/lib/cdr-to-redpanda"));
    let env: Vec<(String, String)> = runtime
        .iter()
        .filter(|(i, _)| i == "ENV")
        .map(|(_, r)| r.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap())
        .collect();
    assert!(env.contains(&("CDR_LEDGER_DIR".into(), "/var/lib/cdr-to-redpanda".into())));
    let mut command = json_args(&last("ENTRYPOINT").expect("ENTRYPOINT"));
    command.extend(json_args(&last("CMD").expect("CMD")));
    let hc = last("HEALTHCHECK").expect("HEALTHCHECK");
    let healthcheck = json_args(hc.split_once("CMD").expect("HEALTHCHECK CMD").1.trim());
    Image {
        env,
        command,
        healthcheck,
    }
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_the_ledger_volume_and_a_healthcheck_our_cli_accepts() {
    let img = image();
    assert_eq!(img.command[0], "cdr-to-redpanda");
    assert_eq!(img.healthcheck[..2], ["cdr-to-redpanda", "healthcheck"]);
    Cli::try_parse_from(&img.command).unwrap();
    Cli::try_parse_from(&img.healthcheck).unwrap();
    let mut argv = vec!["cdr-to-redpanda".to_string(), "run".to_string()];
    argv.extend(env_as_flags(
        &img.env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    ));
    Cli::try_parse_from(&argv).unwrap();
}

/// What the container would do, run as a plain process: the entrypoint
/// command with the image's environment (ledger and listen address moved to
/// a temp dir and a free port), then the HEALTHCHECK command against it.
#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs the local stack: run scripts/test.sh")]
fn image_entrypoint_command_runs_directly_and_its_healthcheck_passes() {
    let img = image();
    let topics = Topics::new();
    let (_local, remote) = sftp_subdir(&unique("image"));
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = bin();
    cmd.args(&img.command[1..]);
    for (k, v) in &img.env {
        cmd.env(k, v);
    }
    topics.apply(&mut cmd, &work.path().join("ledger"));
    sftp_env(&mut cmd, &remote);
    cmd.env("METRICS_ADDR", format!("127.0.0.1:{port}"));
    let log = std::fs::File::create(work.path().join("run.log")).unwrap();
    let child = cmd.stderr(log).stdout(std::process::Stdio::null()).spawn().unwrap();
    let mut d = Daemon {
        child,
        log: work.path().join("run.log"),
        metrics: format!("http://127.0.0.1:{port}"),
    };
    d.wait_log("running", Duration::from_secs(60));

    let hc: Vec<String> = img
        .healthcheck
        .iter()
        .map(|a| a.replace(":9464", &format!(":{port}")))
        .collect();
    let out = bin().args(&hc[1..]).output().unwrap();
    assert!(out.status.success(), "healthcheck: {}", output_text(&out));
    let bad = bin()
        .args(["healthcheck", "--url", &format!("http://127.0.0.1:{port}/nope")])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(20)).success(), "{}", d.log_text());
}

#[test]
fn grafana_dashboard_queries_only_metrics_the_service_exports() {
    let text = std::fs::read_to_string(repo().join("deploy/grafana/cdr-to-redpanda.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    let exported = cdr_to_redpanda::metrics::METRICS.render();
    let mut seen = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("cdr_"))
            {
                assert!(
                    exported.contains(name),
                    "panel {:?} queries {name}, which is not exported",
                    p["title"]
                );
                seen += 1;
            }
        }
    }
    assert!(seen >= 10);
}
