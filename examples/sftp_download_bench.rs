//! Download throughput of `SftpSource::fetch` next to OpenSSH's `sftp` client,
//! against the local stack's sshd, in the same run.
//!
//! ```text
//! eval "$(scripts/stack.sh env)"
//! cargo run --release --example sftp_download_bench -- [SIZE_MIB (256)] [RUNS (3)]
//! ```
//!
//! Creates a file of SIZE_MIB in SFTP_UPLOAD_DIR, then per run downloads it
//! once with each client (alternating which goes first), both with key auth
//! and host key checking against SFTP_KNOWN_HOSTS, both including the
//! connection setup. Ours also computes the SHA-256 and fsyncs the staging
//! file, as every real fetch does; `sftp` does neither. Prints MB/s (10^6
//! bytes per second) per run, the ratio of the best runs, and the median of
//! the per-run ratios.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cdr_to_redpanda::source::sftp::{HostKeyPolicy, PrivateKey, SftpConfig, SftpSource};
use cdr_to_redpanda::source::Source;
use sha2::{Digest, Sha256};

struct Env {
    host: String,
    port: u16,
    user: String,
    key_file: PathBuf,
    known_hosts: PathBuf,
    remote_path: String,
    upload_dir: PathBuf,
}

fn var(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set: eval \"$(scripts/stack.sh env)\" first"))
}

fn read_env() -> Result<Env> {
    Ok(Env {
        host: var("SFTP_HOST")?,
        port: var("SFTP_PORT")?.parse().context("SFTP_PORT")?,
        user: var("SFTP_USER")?,
        key_file: var("SFTP_KEY_FILE")?.into(),
        known_hosts: var("SFTP_KNOWN_HOSTS")?.into(),
        remote_path: var("SFTP_REMOTE_PATH")?,
        upload_dir: var("SFTP_UPLOAD_DIR")?.into(),
    })
}

/// Writes `size` pseudo-random bytes (incompressible, so no transport can
/// cheat) and returns their SHA-256.
fn create_file(path: &Path, size: u64) -> Result<[u8; 32]> {
    let mut out = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut hasher = Sha256::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n])?;
        hasher.update(&block[..n]);
        left -= n as u64;
    }
    out.flush()?;
    Ok(hasher.finalize().into())
}

fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut hasher)?;
    Ok(hasher.finalize().into())
}

fn ours(env: &Env, remote_dir: &str, name: &str, staging: &Path, want: &[u8; 32]) -> Result<Duration> {
    let start = Instant::now();
    let mut config = SftpConfig::new(&env.host, &env.user, remote_dir);
    config.port = env.port;
    config.private_key = Some(PrivateKey {
        path: env.key_file.clone(),
        passphrase: None,
    });
    config.host_key = HostKeyPolicy::KnownHosts(env.known_hosts.clone());
    let mut source = SftpSource::connect(config)?;
    let listing = source.list()?;
    let Some(file) = listing.files.iter().find(|f| f.name == name) else {
        bail!("{name} not listed");
    };
    let fetched = source.fetch(file, staging)?;
    let took = start.elapsed();
    ensure!(&fetched.sha256 == want, "SftpSource fetched different bytes");
    Ok(took)
}

fn openssh(env: &Env, remote_file: &str, local: &Path, batch: &Path, want: &[u8; 32]) -> Result<Duration> {
    std::fs::write(batch, format!("get \"{remote_file}\" \"{}\"\n", local.display()))?;
    let start = Instant::now();
    let out = Command::new("sftp")
        .arg("-q")
        .arg("-b")
        .arg(batch)
        .arg("-i")
        .arg(&env.key_file)
        .arg("-P")
        .arg(env.port.to_string())
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", env.known_hosts.display()))
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .arg(format!("{}@{}", env.user, env.host))
        .output()
        .context("running sftp")?;
    let took = start.elapsed();
    ensure!(
        out.status.success(),
        "sftp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(&sha256_file(local)? == want, "sftp fetched different bytes");
    Ok(took)
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let size_mib: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(256);
    let runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    ensure!(runs > 0, "RUNS must be at least 1");
    let env = read_env()?;
    let size = size_mib << 20;

    let sub = format!("bench-{}", std::process::id());
    let local_dir = env.upload_dir.join(&sub);
    std::fs::create_dir_all(&local_dir)?;
    std::fs::set_permissions(&local_dir, std::fs::Permissions::from_mode(0o755))?;
    let remote_dir = format!("{}/{sub}", env.remote_path.trim_end_matches('/'));
    let name = "big.bin";
    let staging = tempfile::tempdir()?;
    let result = (|| -> Result<()> {
        print!("creating {size_mib} MiB test file... ");
        std::io::stdout().flush()?;
        let want = create_file(&local_dir.join(name), size)?;
        println!("done");
        let (mut best_ours, mut best_ssh) = (Duration::MAX, Duration::MAX);
        // Each run's two downloads are back to back, so their ratio is less
        // disturbed by other load on the machine than the best-of figures.
        let mut ratios = Vec::with_capacity(runs);
        for run in 1..=runs {
            let ours_file = staging.path().join("ours.bin");
            let ssh_file = staging.path().join("openssh.bin");
            let batch = staging.path().join("batch");
            let remote_file = format!("{remote_dir}/{name}");
            let (o, s) = if run % 2 == 1 {
                let o = ours(&env, &remote_dir, name, &ours_file, &want)?;
                (o, openssh(&env, &remote_file, &ssh_file, &batch, &want)?)
            } else {
                let s = openssh(&env, &remote_file, &ssh_file, &batch, &want)?;
                (ours(&env, &remote_dir, name, &ours_file, &want)?, s)
            };
            let ratio = s.as_secs_f64() / o.as_secs_f64();
            ratios.push(ratio);
            println!(
                "run {run}: SftpSource {:7.1} MB/s ({:.2?})   OpenSSH sftp {:7.1} MB/s ({:.2?})   ratio {:.0}%",
                mb_per_s(size, o),
                o,
                mb_per_s(size, s),
                s,
                100.0 * ratio
            );
            best_ours = best_ours.min(o);
            best_ssh = best_ssh.min(s);
            std::fs::remove_file(&ours_file)?;
            std::fs::remove_file(&ssh_file)?;
        }
        let (o, s) = (mb_per_s(size, best_ours), mb_per_s(size, best_ssh));
        ratios.sort_by(f64::total_cmp);
        println!(
            "best of {runs}: SftpSource {o:.1} MB/s, OpenSSH sftp {s:.1} MB/s, ratio {:.0}%; \
             median per-run ratio {:.0}%",
            100.0 * o / s,
            100.0 * ratios[ratios.len() / 2]
        );
        Ok(())
    })();
    std::fs::remove_dir_all(&local_dir)?;
    result
}
