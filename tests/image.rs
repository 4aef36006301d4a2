//! The runtime image as it ships (scripts/image.sh builds it from the
//! Dockerfile's runtime stage, run with Debian's podman and runc): small,
//! non-root, and running the job against the real broker and sshd over the
//! host network: every row exactly once, its HEALTHCHECK healthy, `/readyz`
//! following the broker, `podman stop` (SIGTERM) exiting 0 after the current
//! chunk commits, and the ledger volume carried over to a new container
//! with nothing ingested twice.

mod common;
mod daemon_support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use daemon_support::*;

const IMAGE: &str = "localhost/cdr-to-redpanda:latest";

/// The bound for the runtime image.
const MAX_IMAGE_BYTES: u64 = 40_000_000;

/// podman with the settings scripts/image.sh wrote for this sandbox.
fn podman() -> Command {
    let mut cmd = Command::new("podman");
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        let conf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/containers.conf");
        cmd.env("CONTAINERS_CONF", conf);
    }
    cmd
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman().args(args).output().expect("podman: run scripts/image.sh");
    assert!(out.status.success(), "podman {args:?}: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn inspect(what: &str, format: &str) -> String {
    podman_ok(&["inspect", what, "--format", format])
}

fn inspect_image(format: &str) -> String {
    podman_ok(&["image", "inspect", IMAGE, "--format", format])
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs scripts/image.sh: run scripts/test.sh")]
fn the_image_is_at_most_40_mb_and_runs_as_a_non_root_user() {
    let size: u64 = inspect_image("{{.Size}}").parse().unwrap();
    println!("image {IMAGE}: {size} bytes");
    assert!(size <= MAX_IMAGE_BYTES, "{size} bytes");
    let user = inspect_image("{{.Config.User}}");
    assert_eq!(user, "65532:65532");
    let health = inspect_image("{{.Config.Healthcheck}}");
    assert!(health.contains("healthcheck"), "{health}");
}

/// The image's own metrics address (`METRICS_ADDR`), which its HEALTHCHECK
/// probes: on the host network here, so one container at a time.
const METRICS: &str = "http://127.0.0.1:9464";

/// A container of the image named `name`, running `run` with these
/// settings, the ledger on `volume`, host network.
struct Container {
    name: String,
    metrics: String,
}

impl Container {
    fn start(name: &str, volume: &str, settings: &Command) -> Container {
        let _ = podman().args(["rm", "-f", name]).output();
        let mut args: Vec<String> = ["run", "-d", "--name", name, "--network", "host"]
            .map(String::from)
            .to_vec();
        args.extend(["-v".into(), format!("{volume}:/var/lib/cdr-to-redpanda")]);
        for (k, v) in settings.get_envs() {
            let (Some(k), Some(v)) = (k.to_str(), v.and_then(|v| v.to_str())) else {
                continue;
            };
            match k {
                // The image's own ledger directory, on the volume.
                "CDR_LEDGER_DIR" => {}
                "SFTP_KNOWN_HOSTS" => {
                    args.extend(["-v".into(), format!("{v}:/etc/cdr/known_hosts:ro")]);
                    args.extend(["-e".into(), "SFTP_KNOWN_HOSTS=/etc/cdr/known_hosts".into()]);
                }
                _ => args.extend(["-e".into(), format!("{k}={v}")]),
            }
        }
        args.push(IMAGE.into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        podman_ok(&args);
        Container {
            name: name.to_owned(),
            metrics: METRICS.to_owned(),
        }
    }

    fn logs(&self) -> String {
        let out = podman().args(["logs", &self.name]).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut resp = ureq::get(format!("{}{path}", self.metrics))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .ok()?;
        Some((resp.status().as_u16(), resp.body_mut().read_to_string().ok()?))
    }

    fn wait(&self, what: &str, limit: Duration, ok: impl Fn(&Container) -> bool) {
        wait_until(what, limit, || ok(self), || self.logs());
    }

    fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        self.get("/metrics")
            .map(|(_, body)| parse_metrics(&body))
            .unwrap_or_default()
    }

    fn stop(&self) -> Output {
        podman().args(["stop", "-t", "30", &self.name]).output().unwrap()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", &self.name]).output();
    }
}

#[test]
#[cfg_attr(not(feature = "integration"), ignore = "needs scripts/image.sh: run scripts/test.sh")]
fn the_image_ingests_exactly_once_stops_cleanly_and_its_ledger_volume_outlives_the_container() {
    let topics = Topics::new();
    let name = unique("img");
    let (local, remote) = sftp_subdir(&name);
    let work = tempfile::tempdir().unwrap();
    let volume = format!("{name}-ledger");
    let mut settings = Command::new("unused");
    topics.apply(&mut settings, work.path());
    sftp_env(&mut settings, &remote);
    // Small chunks, so that a stop lands inside a file.
    settings.env("CDR_CHUNK_ROWS", "500");

    generate(&local, 2, 2_000, 21, "2024-10-01T00:00:00", 0.01);
    let first = Container::start(&format!("{name}-1"), &volume, &settings);
    first.wait("the sample files committed", Duration::from_secs(90), |c| {
        metric(&c.metrics(), "cdr_files_total{outcome=\"committed\"}") >= 4.0
    });
    assert_eq!(first.get("/readyz").map(|r| r.0), Some(200), "{}", first.logs());
    let health = podman().args(["healthcheck", "run", &first.name]).output().unwrap();
    assert!(health.status.success(), "HEALTHCHECK: {}", output_text(&health));
    let pid = inspect(&first.name, "{{.State.Pid}}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uids.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["65532"; 4],
        "real, effective, saved and file-system uid: {uids}"
    );

    // A big file; SIGTERM while it is produced: the chunk commits, exit 0.
    generate(&local, 1, 60_000, 22, "2024-10-02T00:00:00", 0.01);
    first.wait("the big file started", Duration::from_secs(60), |c| {
        c.logs()
            .lines()
            .any(|l| l.contains("ingest started") && l.contains("20241002"))
    });
    let stop = first.stop();
    assert!(stop.status.success(), "{}", output_text(&stop));
    assert_eq!(inspect(&first.name, "{{.State.ExitCode}}"), "0", "{}", first.logs());
    assert!(first.logs().contains("stopped on signal"), "{}", first.logs());
    drop(first);

    // A new container on the same volume finishes the file; nothing twice.
    let second = Container::start(&format!("{name}-2"), &volume, &settings);
    second.wait("every file committed", Duration::from_secs(120), |c| {
        let m = c.metrics();
        metric(&m, "cdr_files_waiting") == 0.0 && metric(&m, "cdr_files_total{outcome=\"committed\"}") >= 1.0
    });
    let logs = second.logs();
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("ingest started") && l.contains("20241001")),
        "files the first container committed are not taken again: {logs}"
    );
    assert_exactly_once(&topics, &local);
    drop(second);

    // Against a broker that is not there, /readyz says so.
    let mut nobody = Command::new("unused");
    topics.apply(&mut nobody, work.path());
    sftp_env(&mut nobody, &remote);
    nobody.env("KAFKA_BROKERS", format!("127.0.0.1:{}", free_port()));
    let waiting = Container::start(&format!("{name}-3"), &volume, &nobody);
    waiting.wait("/readyz answering", Duration::from_secs(30), |c| {
        c.get("/readyz").is_some()
    });
    let (code, why) = waiting.get("/readyz").unwrap();
    assert_eq!(code, 503, "{why}");
    drop(waiting);
    let _ = podman().args(["volume", "rm", "-f", &volume]).output();
}
