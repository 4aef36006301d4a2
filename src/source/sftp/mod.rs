//! An SFTP server as a source, over libssh2 (`ssh2`, blocking).
//!
//! The session is opened lazily, kept between polls, and reopened once inside
//! any call that finds it dead (an idle connection dropped by a firewall or a
//! restarted sshd), so one stale session never costs a poll. Anything beyond
//! that one reconnect is the caller's retry loop, with the shared backoff.
//!
//! The server is authenticated before any credential is sent: its host key
//! must be in a known_hosts file or match a pinned SHA-256 fingerprint, unless
//! the operator explicitly chose to skip the check (warned at every connect).
//! Every refusal says what to do about it, and no message or log line ever
//! contains a password or passphrase.
//!
//! - `config`: what to connect to and with which credentials;
//! - `host_key`: who the server is (known_hosts, a pinned fingerprint);
//! - `auth`: logging in;
//! - `codes`: libssh2's error codes, sorted;
//! - `remote`: stat, fetch, mkdir and move on the server;
//! - here: the session (connect, handshake, reconnect) and the `Source`.

use std::fmt;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};
use ssh2::{CheckResult, ErrorCode, FileStat, KnownHostFileKind, KnownHosts, MethodType, RenameFlags, Session, Sftp};

use super::ignored::{IgnoreReason, Ignored};
use super::{
    check_name, check_unchanged, collision_name, fetched, stage, Fetched, Listing, RemoteFile, Source, SourceError,
    StageError, MAX_COLLISION_SUFFIX,
};
use crate::secret::Secret;

mod auth;
mod codes;
mod config;
mod host_key;
mod remote;

use auth::*;
use codes::*;
pub use config::{PrivateKey, SecretSource, SftpConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IO_TIMEOUT, DEFAULT_PORT};
use host_key::*;
pub use host_key::{Fingerprint, FingerprintError, HostKeyPolicy};
use remote::*;

/// TCP keepalive, so that NAT and firewall state survives idle time between
/// polls and a vanished peer is noticed without waiting for a read to time out.
const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Host key algorithm families, tried one by one when the key libssh2
/// negotiated by default is not the one the operator trusts: OpenSSH servers
/// hold several keys, and known_hosts (or a pin) may name only one of them.
const HOSTKEY_FAMILIES: [&str; 5] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512,rsa-sha2-256,ssh-rsa",
];

/// An open, authenticated session and its SFTP channel. The `Sftp` field is
/// declared first so it is dropped (channel closed) before the session.
struct Conn {
    sftp: Sftp,
    _session: Session,
}

/// Files in one directory of an SFTP server.
pub struct SftpSource {
    config: SftpConfig,
    conn: Option<Conn>,
    /// The host key algorithm family that last verified, tried first at the
    /// next connect so the family search happens once, not at every reconnect.
    hostkey_family: Option<&'static str>,
    /// Sessions opened so far; every one after the first is a reconnect.
    sessions_opened: u64,
}

impl fmt::Debug for SftpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SftpSource")
            .field("config", &self.config)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl SftpSource {
    /// A source that connects at its first use. Fails only on an invalid
    /// config.
    pub fn new(config: SftpConfig) -> Result<Self, SourceError> {
        config.validate()?;
        Ok(SftpSource {
            config,
            conn: None,
            hostkey_family: None,
            sessions_opened: 0,
        })
    }

    /// A source connected now, so that a wrong host key or credentials are
    /// reported at startup rather than at the first poll.
    pub fn connect(config: SftpConfig) -> Result<Self, SourceError> {
        let mut source = Self::new(config)?;
        source.conn = Some(source.open()?);
        source.sessions_opened = 1;
        Ok(source)
    }

    /// The settings in use.
    pub fn config(&self) -> &SftpConfig {
        &self.config
    }

    /// Whether a session is currently open (it may still turn out dead).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Closes the session; the next call opens a new one.
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Runs `op` on the session, opening one if needed. If a session kept from
    /// an earlier call fails with a connection error, it is replaced and `op`
    /// runs once more: a session that died while idle is expected, and should
    /// not fail a poll. A fresh session that fails is reported to the caller.
    fn run<T>(
        &mut self,
        what: &str,
        mut op: impl FnMut(&Sftp, &SftpConfig) -> Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        let reused = self.conn.is_some();
        match self.run_once(&mut op) {
            Err(e @ SourceError::Connection { .. }) if reused => {
                tracing::info!(
                    endpoint = %self.config.endpoint(),
                    operation = what,
                    error = %e,
                    "SFTP session lost; reconnecting once"
                );
                self.run_once(&mut op)
            }
            result => result,
        }
    }

    fn run_once<T>(
        &mut self,
        op: &mut impl FnMut(&Sftp, &SftpConfig) -> Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let conn = self.open()?;
                if self.sessions_opened > 0 {
                    crate::metrics::METRICS.sftp_reconnects.add(1);
                }
                self.sessions_opened += 1;
                conn
            }
        };
        let result = op(&conn.sftp, &self.config);
        // A connection error leaves the session unusable: drop it here so the
        // next call starts afresh.
        if !matches!(result, Err(SourceError::Connection { .. })) {
            self.conn = Some(conn);
        }
        result
    }

    /// Connects, verifies the host key, authenticates, opens SFTP.
    fn open(&mut self) -> Result<Conn, SourceError> {
        let cfg = &self.config;
        // Secrets are read before connecting: a missing secret file is a
        // config problem, not a server one.
        let password = cfg.password.as_ref().map(SecretSource::reveal).transpose()?;
        let passphrase = match &cfg.private_key {
            Some(PrivateKey {
                passphrase: Some(p), ..
            }) => Some(p.reveal()?),
            _ => None,
        };
        let session = self.verified_session()?;
        let cfg = &self.config;
        authenticate(
            cfg,
            &session,
            password.as_ref().map(Secret::expose),
            passphrase.as_ref().map(Secret::expose),
        )?;
        session.set_timeout(millis(cfg.io_timeout));
        let sftp = session
            .sftp()
            .map_err(|e| cfg.connection_error(format!("opening the SFTP subsystem: {e}")))?;
        tracing::debug!(endpoint = %cfg.endpoint(), user = %cfg.user, "SFTP session open");
        Ok(Conn {
            sftp,
            _session: session,
        })
    }

    /// A handshaken session whose host key passed the policy.
    ///
    /// If the key libssh2 negotiated is not the trusted one, each other key
    /// family is tried in a new handshake: the server proves its identity if
    /// any of its keys is trusted, as with OpenSSH, which prefers the key types
    /// it already knows. Only when none matches is the connection refused,
    /// with every offered fingerprint in the message.
    fn verified_session(&mut self) -> Result<Session, SourceError> {
        let session = match self.hostkey_family {
            Some(family) => match handshake(&self.config, Some(family)) {
                Ok(s) => s,
                // The server may have dropped that key type since; start over.
                Err(_) => {
                    self.hostkey_family = None;
                    handshake(&self.config, None)?
                }
            },
            None => handshake(&self.config, None)?,
        };
        let first = match check_host_key(&self.config, &session)? {
            HostKeyCheck::Match => return Ok(session),
            HostKeyCheck::NotFound(offered) => return Err(not_found_error(&self.config, &offered)),
            HostKeyCheck::Mismatch(offered) => offered,
        };
        let negotiated = session.methods(MethodType::HostKey).map(str::to_string);
        drop(session);
        let mut offered = vec![first];
        for family in HOSTKEY_FAMILIES {
            let tried = negotiated
                .as_deref()
                .is_some_and(|alg| family.split(',').any(|f| f == alg));
            if tried {
                continue;
            }
            // A family the server lacks fails the handshake: nothing to learn.
            let Ok(session) = handshake(&self.config, Some(family)) else {
                continue;
            };
            match check_host_key(&self.config, &session)? {
                HostKeyCheck::Match => {
                    tracing::debug!(
                        endpoint = %self.config.endpoint(),
                        family,
                        "host key verified with a non-default key type"
                    );
                    self.hostkey_family = Some(family);
                    return Ok(session);
                }
                HostKeyCheck::Mismatch(key) | HostKeyCheck::NotFound(key) => offered.push(key),
            }
        }
        Err(mismatch_error(&self.config, &offered))
    }
}

/// Puts AES-GCM first among the ciphers offered (each direction), the others
/// after it in libssh2's order: libssh2 runs AES-GCM on OpenSSL (AES-NI),
/// while its chacha20-poly1305, first by default, is its own portable C, 6.7 %
/// of the process's CPU in a profile of a `once` pass over SFTP. A server
/// without AES-GCM still agrees on the next one.
fn prefer_gcm(session: &Session) -> Result<(), ssh2::Error> {
    let Some(order) = gcm_first(session.supported_algs(MethodType::CryptCs)?) else {
        return Ok(());
    };
    session.method_pref(MethodType::CryptCs, &order)?;
    session.method_pref(MethodType::CryptSc, &order)
}

/// `ciphers` as a preference list with the AES-GCM ones first, or None when
/// there is none.
fn gcm_first(ciphers: Vec<&str>) -> Option<String> {
    let (gcm, others): (Vec<&str>, Vec<&str>) = ciphers.into_iter().partition(|c| c.ends_with("-gcm@openssh.com"));
    (!gcm.is_empty()).then(|| [gcm, others].concat().join(","))
}

/// Opens a TCP connection and performs the SSH handshake, optionally limited
/// to the host key algorithms in `hostkey_algs`.
fn handshake(cfg: &SftpConfig, hostkey_algs: Option<&str>) -> Result<Session, SourceError> {
    let stream = tcp_connect(cfg)?;
    let mut session = Session::new().map_err(|e| cfg.connection_error(format!("creating an SSH session: {e}")))?;
    session.set_timeout(millis(cfg.connect_timeout));
    if let Some(algs) = hostkey_algs {
        session
            .method_pref(MethodType::HostKey, algs)
            .map_err(|e| cfg.connection_error(format!("selecting host key type {algs}: {e}")))?;
    }
    prefer_gcm(&session).map_err(|e| cfg.connection_error(format!("ordering the SSH ciphers: {e}")))?;
    session.set_tcp_stream(stream);
    session.handshake().map_err(|e| match e.code() {
        ErrorCode::Session(
            LIBSSH2_ERROR_KEX_FAILURE | LIBSSH2_ERROR_ALGO_UNSUPPORTED | LIBSSH2_ERROR_METHOD_NOT_SUPPORTED,
        ) => SourceError::Refused(format!(
            "SSH handshake with {} failed, no algorithms in common: {e}",
            cfg.endpoint()
        )),
        _ => cfg.connection_error(format!("SSH handshake: {e}")),
    })?;
    Ok(session)
}

fn tcp_connect(cfg: &SftpConfig) -> Result<TcpStream, SourceError> {
    let addrs = (cfg.host.as_str(), cfg.port)
        .to_socket_addrs()
        .map_err(|e| cfg.connection_error(format!("resolving {}: {e}", cfg.host)))?;
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, cfg.connect_timeout) {
            Ok(stream) => {
                tune_socket(&stream);
                return Ok(stream);
            }
            Err(e) => last_error = Some(format!("connecting to {addr}: {e}")),
        }
    }
    Err(cfg.connection_error(last_error.unwrap_or_else(|| format!("{} resolved to no address", cfg.host))))
}

/// Keepalive and no-delay are optimisations: failing to set them is logged,
/// not fatal.
fn tune_socket(stream: &TcpStream) {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE_IDLE)
        .with_interval(TCP_KEEPALIVE_INTERVAL);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "could not enable TCP keepalive");
    }
    // SFTP requests are small and pipelined; Nagle would hold them back.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
}

impl Source for SftpSource {
    fn open_now(&mut self) -> Result<(), SourceError> {
        self.run("open", |_, _| Ok(()))
    }

    fn list(&mut self) -> Result<Listing, SourceError> {
        self.run("list", |sftp, cfg| {
            let dir = Path::new(&cfg.remote_dir);
            let entries = sftp.readdir(dir).map_err(|e| {
                if is_missing(&e) {
                    SourceError::Refused(format!(
                        "remote directory {} does not exist on {} (user {})",
                        cfg.remote_dir,
                        cfg.endpoint(),
                        cfg.user
                    ))
                } else {
                    sftp_error(cfg, e, "listing", dir)
                }
            })?;
            let mut listing = Listing {
                files: Vec::with_capacity(entries.len()),
                ignored: Vec::new(),
            };
            for (path, stat) in entries {
                // readdir joined the server's name onto `dir`; take it back
                // off as sent, so that a hostile name such as `../x` reaches
                // the selector intact (and is refused there).
                let raw = match path.strip_prefix(dir) {
                    Ok(rel) => rel.as_os_str(),
                    Err(_) => match path.file_name() {
                        Some(n) => n,
                        None => continue,
                    },
                };
                let Some(name) = raw.to_str() else {
                    if !stat.is_dir() {
                        listing
                            .ignored
                            .push(Ignored::new(raw.to_string_lossy(), IgnoreReason::NotUtf8));
                    }
                    continue;
                };
                match entry(sftp, cfg, &path, stat) {
                    Entry::File(stat) => match size_mtime(&stat) {
                        Some((size, mtime)) => listing.files.push(RemoteFile {
                            name: name.to_string(),
                            size,
                            mtime,
                        }),
                        None => listing.ignored.push(Ignored::new(name, IgnoreReason::NoAttributes)),
                    },
                    Entry::Directory => {}
                    Entry::Ignored(reason) => listing.ignored.push(Ignored::new(name, reason)),
                }
            }
            Ok(listing)
        })
    }

    fn fetch(&mut self, file: &RemoteFile, staging: &Path) -> Result<Fetched, SourceError> {
        check_name(&file.name)?;
        self.run("fetch", |sftp, cfg| fetch_once(sftp, cfg, file, staging))
    }

    fn delete(&mut self, name: &str) -> Result<(), SourceError> {
        check_name(name)?;
        self.run("delete", |sftp, cfg| {
            let path = cfg.remote_path(name);
            sftp.unlink(&path)
                .map_err(|e| match sftp_error(cfg, e, "deleting", &path) {
                    SourceError::Gone { .. } => SourceError::Gone { name: name.into() },
                    other => other,
                })
        })
    }

    fn move_to(&mut self, name: &str, dir: &str) -> Result<String, SourceError> {
        check_name(name)?;
        self.run("move", |sftp, cfg| move_once(sftp, cfg, name, dir))
    }

    fn describe(&self) -> String {
        format!(
            "sftp {}@{}:{}",
            self.config.user,
            self.config.endpoint(),
            self.config.remote_dir
        )
    }
}

/// What a listed entry is, symlinks followed when asked.
enum Entry {
    File(FileStat),
    Directory,
    Ignored(IgnoreReason),
}

/// `stat` is what readdir gave: OpenSSH's server takes it with lstat, so a
/// symlink shows as one and is followed (one more round trip) only when
/// `--follow-symlinks` asks.
fn entry(sftp: &Sftp, cfg: &SftpConfig, path: &Path, stat: FileStat) -> Entry {
    let kind = stat.file_type();
    if kind.is_file() {
        return Entry::File(stat);
    }
    if kind.is_dir() {
        return Entry::Directory;
    }
    if !kind.is_symlink() {
        return Entry::Ignored(IgnoreReason::NotRegular);
    }
    if !cfg.follow_symlinks {
        return Entry::Ignored(IgnoreReason::Symlink);
    }
    match sftp.stat(path) {
        Ok(target) if target.file_type().is_file() => Entry::File(target),
        Ok(target) if target.file_type().is_dir() => Entry::Directory,
        // Dangling, or a link to something that is no file.
        _ => Entry::Ignored(IgnoreReason::Symlink),
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
