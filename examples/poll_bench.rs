//! The cost of a poll over a directory that keeps its ingested files (the
//! default `--after-ingest keep`): 10,000 and 100,000 files, every one
//! already committed in the ledger, one `once` pass each, locally and over
//! SFTP. What grows faster than the file count shows as a ratio above 10.
//! The first count given is the baseline the per-file figures subtract
//! (its start-up): 0 by default.
//!
//! ```sh
//! eval "$(scripts/stack.sh env)"
//! cargo build --release --bin cdr-to-redpanda
//! cargo run --release --example poll_bench -- [N,N...]   # default 0,10000,100000
//! ```
//!
//! Each file is recorded as committed with its listed size and mtime, as
//! the service leaves it, so the pass lists, looks each one up and takes
//! none. `CDR_BIN` overrides the binary (default
//! `target/release/cdr-to-redpanda`); with the stack's `SFTP_UPLOAD_DIR` set
//! the same files are also polled over SFTP.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{SystemTime, UNIX_EPOCH};

use cdr_state::{FileRecord, FileStatus, Ledger};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("poll_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

const ROW: &str = "session_id,msisdn,start_time,end_time,data_type,bytes_up,bytes_down\n\
                   s1,447700900001,2024-01-01 00:00:00,2024-01-01 00:01:00,text,1,2\n";

fn run() -> Result<(), String> {
    let counts: Vec<usize> = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0,10000,100000".into())
        .split(',')
        .map(|n| n.parse().map_err(|e| format!("{n}: {e}")))
        .collect::<Result<_, _>>()?;
    let bin = std::env::var("CDR_BIN").unwrap_or_else(|_| "target/release/cdr-to-redpanda".into());
    let upload = std::env::var("SFTP_UPLOAD_DIR").ok().map(PathBuf::from);
    let work = std::env::temp_dir().join(format!("poll-bench-{}", std::process::id()));
    println!("where,files,wall_s,cpu_s,peak_rss_mib,wall_us_per_file,cpu_us_per_file");
    let (mut local_base, mut sftp_base) = (None, None);
    for &n in &counts {
        let local = work.join(format!("local-{n}"));
        make_files(&local, n)?;
        let source = [("CDR_LOCAL_DIR", local.to_str().unwrap_or_default())];
        measure("local", n, &bin, &work, &source, &local, &mut local_base)?;
        if let Some(upload) = &upload {
            let remote = upload.join(format!("poll-bench-{}-{n}", std::process::id()));
            make_files(&remote, n)?;
            let result = measure(
                "sftp",
                n,
                &bin,
                &work,
                &[("SFTP_REMOTE_PATH", remote.to_str().unwrap_or_default())],
                &remote,
                &mut sftp_base,
            );
            let _ = std::fs::remove_dir_all(&remote);
            result?;
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// `n` one-row data files, readable by the SFTP user.
fn make_files(dir: &Path, n: usize) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for i in 0..n {
        let path = dir.join(name(i));
        std::fs::write(&path, ROW).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let _ = Command::new("chmod").args(["-R", "a+rX"]).arg(dir).status();
    Ok(())
}

fn name(i: usize) -> String {
    format!("cdr_data_20240101_{i:07}.csv")
}

/// Records every file of `dir` as committed, then times one `once` pass.
/// `baseline` is the first run's wall and CPU seconds (the start-up), which
/// the per-file figures leave out.
fn measure(
    where_: &str,
    n: usize,
    bin: &str,
    work: &Path,
    source: &[(&str, &str)],
    dir: &Path,
    baseline: &mut Option<(f64, f64)>,
) -> Result<(), String> {
    let ledger_dir = work.join(format!("ledger-{where_}-{n}"));
    std::fs::create_dir_all(&ledger_dir).map_err(|e| e.to_string())?;
    seed(&ledger_dir, dir, n)?;
    let prefix = format!("poll-bench-{}-{where_}-{n}", std::process::id());
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "TIME %e %U %S %M", bin, "once"])
        .env("CDR_LEDGER_DIR", &ledger_dir)
        .env("CDR_SETTLE_SECONDS", "0")
        .env("CDR_MIN_AGE_SECONDS", "0")
        .env("CDR_DATA_TOPIC", format!("{prefix}-data"))
        .env("CDR_VOICE_TOPIC", format!("{prefix}-voice"))
        .env("CDR_DLQ_TOPIC", format!("{prefix}-dlq"))
        .env("CDR_CHECKPOINT_TOPIC", format!("{prefix}-checkpoints"))
        .env("CDR_TRANSACTIONAL_ID_PREFIX", &prefix)
        .env("RUST_LOG", "info");
    if where_ == "local" {
        cmd.env_remove("SFTP_HOST");
    }
    for (k, v) in source {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| format!("{bin}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success()
        || !stdout.starts_with("committed 0 file(s)")
        || !stdout.contains("stuck: failed 0, parked 0")
    {
        return Err(format!(
            "the pass over {n} files took or blamed one:\n{stdout}\n{stderr}"
        ));
    }
    let time: Vec<f64> = stderr
        .lines()
        .find_map(|l| l.strip_prefix("TIME "))
        .ok_or("no /usr/bin/time line")?
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let [wall, user, sys, rss_kib] = time[..] else {
        return Err(format!("unexpected /usr/bin/time output: {time:?}"));
    };
    let cpu = user + sys;
    let base = baseline.get_or_insert((wall, cpu));
    println!(
        "{where_},{n},{wall:.2},{cpu:.2},{:.1},{:.1},{:.1}",
        rss_kib / 1024.0,
        (wall - base.0).max(0.0) * 1e6 / n.max(1) as f64,
        (cpu - base.1).max(0.0) * 1e6 / n.max(1) as f64,
    );
    Ok(())
}

/// The ledger as the service leaves it after committing every file of `dir`.
fn seed(ledger_dir: &Path, dir: &Path, n: usize) -> Result<(), String> {
    let ledger = Ledger::open(ledger_dir).map_err(|e| e.to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_millis() as i64;
    for i in 0..n {
        let path = dir.join(name(i));
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mtime = meta
            .modified()
            .map_err(|e| e.to_string())?
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs() as i64;
        let mut rec = FileRecord::seen(&name(i), "data", meta.len(), mtime, now);
        rec.status = FileStatus::Committed;
        rec.sha256 = format!("{i:064x}");
        rec.rows_done = 1;
        rec.valid_rows = 1;
        rec.finished_ms = Some(now);
        ledger.put_file(&rec).map_err(|e| e.to_string())?;
    }
    Ok(())
}
