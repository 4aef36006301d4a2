//! What the SFTP integration tests share: the local stack's sshd (from
//! `scripts/stack.sh env`), a private upload subdirectory per test so tests run
//! in parallel, and configs for the ways of connecting.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::env;
pub use crate::common::unique;
use cdr_to_redpanda::secret::Secret;
use cdr_to_redpanda::source::sftp::{HostKeyPolicy, PrivateKey, SecretSource, SftpConfig};
use sha2::{Digest, Sha256};

/// The stack's sshd, as `scripts/stack.sh env` exports it.
pub struct Stack {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub key_file: PathBuf,
    pub known_hosts: PathBuf,
    pub remote_path: String,
    pub upload_dir: PathBuf,
}

/// Reads the stack's variables; panics if one is missing, so that these tests
/// can never pass without a real sshd.
pub fn stack() -> Stack {
    Stack {
        host: env("SFTP_HOST"),
        port: env("SFTP_PORT").parse().expect("SFTP_PORT is a port number"),
        user: env("SFTP_USER"),
        password: env("SFTP_PASSWORD"),
        key_file: env("SFTP_KEY_FILE").into(),
        known_hosts: env("SFTP_KNOWN_HOSTS").into(),
        remote_path: env("SFTP_REMOTE_PATH"),
        upload_dir: env("SFTP_UPLOAD_DIR").into(),
    }
}

/// A test's own directory in the upload dir: `local` is where the test writes
/// (tests run as root on the sshd's machine), `remote` the same directory as
/// the sftp user sees it. World-writable so the sftp user may delete and
/// rename in it. Removed on drop.
pub struct TestDir {
    pub local: PathBuf,
    pub remote: String,
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.local);
    }
}

impl TestDir {
    /// Writes `name` with `bytes` and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.local.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Stack {
    pub fn test_dir(&self, prefix: &str) -> TestDir {
        let name = unique(prefix);
        let local = self.upload_dir.join(&name);
        std::fs::create_dir(&local).unwrap();
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o777)).unwrap();
        TestDir {
            local,
            remote: format!("{}/{name}", self.remote_path.trim_end_matches('/')),
        }
    }

    /// Password auth, host key from the stack's known_hosts.
    pub fn password_config(&self, dir: &TestDir) -> SftpConfig {
        let mut c = SftpConfig::new(&self.host, &self.user, &dir.remote);
        c.port = self.port;
        c.password = Some(SecretSource::Value(Secret::new(self.password.clone())));
        c.host_key = HostKeyPolicy::KnownHosts(self.known_hosts.clone());
        c
    }

    /// Key auth only, host key from the stack's known_hosts.
    pub fn key_config(&self, dir: &TestDir) -> SftpConfig {
        let mut c = SftpConfig::new(&self.host, &self.user, &dir.remote);
        c.port = self.port;
        c.private_key = Some(PrivateKey {
            path: self.key_file.clone(),
            passphrase: None,
        });
        c.host_key = HostKeyPolicy::KnownHosts(self.known_hosts.clone());
        c
    }

    /// The server's host key fingerprint as OpenSSH computes it (not our code).
    pub fn host_fingerprint(&self) -> String {
        ssh_keygen_fingerprint(&self.known_hosts)
    }
}

/// `ssh-keygen -lf <file>`'s SHA256 fingerprint of the first key in `file`.
pub fn ssh_keygen_fingerprint(file: &Path) -> String {
    let out = Command::new("ssh-keygen").arg("-lf").arg(file).output().unwrap();
    assert!(out.status.success(), "ssh-keygen -lf {}: {:?}", file.display(), out);
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .expect("ssh-keygen prints a fingerprint")
        .to_string()
}

/// A fresh ed25519 key pair in `dir`, unknown to the server; returns the
/// private key's path (the public one is beside it, `.pub`).
pub fn new_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(&path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ssh-keygen failed");
    path
}

/// Deterministic, incompressible-looking test bytes.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256_of(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Runs `scripts/stack.sh <args>` on the suite's stack, panicking on failure.
pub fn stack_sh(args: &[&str]) {
    crate::common::stack_sh(None, args);
}
