//! An SFTP server as a source, over libssh2 (`ssh2`, blocking).
//!
//! The session is opened lazily, kept between polls, and reopened once inside
//! any call that finds it dead (an idle connection dropped by a firewall or a
//! restarted sshd), so one stale session never costs a poll. Anything beyond
//! that one reconnect is the caller's retry loop, with [`crate::backoff`].
//!
//! The server is authenticated before any credential is sent: its host key
//! must be in a known_hosts file or match a pinned SHA-256 fingerprint, unless
//! the operator explicitly chose to skip the check (warned at every connect).
//! Every refusal says what to do about it, and no message or log line ever
//! contains a password or passphrase.

use std::fmt;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};
use ssh2::{CheckResult, ErrorCode, FileStat, KnownHostFileKind, KnownHosts, MethodType, RenameFlags, Session, Sftp};

use super::{
    check_name, check_unchanged, collision_name, fetched, stage, Fetched, RemoteFile, Source, SourceError, StageError,
    UnreadableNames, MAX_COLLISION_SUFFIX,
};
use crate::secret::Secret;

/// The standard SSH port.
pub const DEFAULT_PORT: u16 = 22;

/// Default limit on TCP connect plus SSH handshake and authentication.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default limit on any single wait for the server once connected: a dead
/// connection fails after this long instead of hanging forever.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Remote reads go through a 2 MiB buffer: libssh2 keeps requests in flight in
/// proportion to the read size, and small reads are several times slower than
/// OpenSSH's `sftp` (see the field notes).
const READ_BUFFER: usize = 2 << 20;

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

// libssh2 error codes (libssh2.h / libssh2_sftp.h); `ssh2` does not re-export them.
const LIBSSH2_ERROR_KEX_FAILURE: i32 = -5;
const LIBSSH2_ERROR_SOCKET_SEND: i32 = -7;
const LIBSSH2_ERROR_TIMEOUT: i32 = -9;
const LIBSSH2_ERROR_SOCKET_DISCONNECT: i32 = -13;
const LIBSSH2_ERROR_PASSWORD_EXPIRED: i32 = -15;
const LIBSSH2_ERROR_FILE: i32 = -16;
const LIBSSH2_ERROR_AUTHENTICATION_FAILED: i32 = -18;
const LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED: i32 = -19;
const LIBSSH2_ERROR_SOCKET_TIMEOUT: i32 = -30;
const LIBSSH2_ERROR_METHOD_NOT_SUPPORTED: i32 = -33;
const LIBSSH2_ERROR_EAGAIN: i32 = -37;
const LIBSSH2_ERROR_SOCKET_RECV: i32 = -43;
const LIBSSH2_ERROR_BAD_SOCKET: i32 = -45;
const LIBSSH2_ERROR_KEYFILE_AUTH_FAILED: i32 = -48;
const LIBSSH2_ERROR_ALGO_UNSUPPORTED: i32 = -51;
const LIBSSH2_FX_NO_SUCH_FILE: i32 = 2;
const LIBSSH2_FX_PERMISSION_DENIED: i32 = 3;
const LIBSSH2_FX_NO_CONNECTION: i32 = 6;
const LIBSSH2_FX_CONNECTION_LOST: i32 = 7;
const LIBSSH2_FX_NO_SUCH_PATH: i32 = 10;

/// A password or passphrase, given inline or read from a file at each connect
/// (so a rotated Docker/Kubernetes secret file is picked up without a
/// restart). An inline value is a [`Secret`]: it never prints.
#[derive(Clone, Debug)]
pub enum SecretSource {
    /// The secret itself.
    Value(Secret),
    /// A file holding the secret; one trailing newline is ignored.
    File(PathBuf),
}

impl SecretSource {
    /// The secret's value. Failing to read the file is a `Refused` error that
    /// names the file, never its content.
    pub fn reveal(&self) -> Result<Secret, SourceError> {
        match self {
            SecretSource::Value(v) => Ok(v.clone()),
            SecretSource::File(path) => {
                let mut v = std::fs::read_to_string(path)
                    .map_err(|e| SourceError::Refused(format!("cannot read secret file {}: {e}", path.display())))?;
                if v.ends_with('\n') {
                    v.pop();
                    if v.ends_with('\r') {
                        v.pop();
                    }
                }
                Ok(Secret::new(v))
            }
        }
    }
}

/// A private key file for public-key authentication.
#[derive(Clone, Debug)]
pub struct PrivateKey {
    /// Path of the private key (OpenSSH or PEM format); the public key is
    /// derived from it.
    pub path: PathBuf,
    /// Passphrase of an encrypted key.
    pub passphrase: Option<SecretSource>,
}

/// A host key's SHA-256 fingerprint, written `SHA256:<base64 without padding>`
/// exactly as `ssh-keygen -lf` and `ssh-keyscan | ssh-keygen -lf -` print it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a raw host key blob (the bytes the server sends).
    pub fn of_key(blob: &[u8]) -> Self {
        Fingerprint(Sha256::digest(blob).into())
    }
}

/// A fingerprint string that is not `SHA256:` followed by 32 bytes in base64.
#[derive(Debug, thiserror::Error)]
#[error("invalid host key fingerprint {0:?}: expected SHA256:<base64>, as `ssh-keygen -lf <key>.pub` prints it")]
pub struct FingerprintError(String);

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || FingerprintError(s.to_string());
        let b64 = s.trim().strip_prefix("SHA256:").ok_or_else(err)?;
        // ssh-keygen omits the padding; accept it anyway if pasted from elsewhere.
        let bytes = STANDARD_NO_PAD.decode(b64.trim_end_matches('=')).map_err(|_| err())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| err())?;
        Ok(Fingerprint(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// How the server proves who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Its key must be listed for this host (and port) in an OpenSSH
    /// known_hosts file. libssh2 stops reading the file at the first line it
    /// does not understand (e.g. `@cert-authority`), so a dedicated file is
    /// the safer choice.
    KnownHosts(PathBuf),
    /// Its key must have this fingerprint.
    Fingerprint(Fingerprint),
    /// No check at all: anyone on the network path can pose as the server and
    /// receive the credentials. Logged as a warning at every connect.
    InsecureSkip,
}

impl HostKeyPolicy {
    /// `~/.ssh/known_hosts`, as OpenSSH uses; the system-wide
    /// `/etc/ssh/ssh_known_hosts` when there is no home directory.
    pub fn default_known_hosts() -> PathBuf {
        match std::env::var_os("HOME") {
            Some(home) if !home.is_empty() => Path::new(&home).join(".ssh/known_hosts"),
            _ => PathBuf::from("/etc/ssh/ssh_known_hosts"),
        }
    }
}

impl Default for HostKeyPolicy {
    fn default() -> Self {
        HostKeyPolicy::KnownHosts(Self::default_known_hosts())
    }
}

/// Where and how to connect. Debug output masks secrets.
#[derive(Clone, Debug)]
pub struct SftpConfig {
    /// Server name or address.
    pub host: String,
    /// Server port ([`DEFAULT_PORT`] by default).
    pub port: u16,
    /// Login name.
    pub user: String,
    /// Password authentication; tried after the key if both are set.
    pub password: Option<SecretSource>,
    /// Public-key authentication; tried first if set.
    pub private_key: Option<PrivateKey>,
    /// How the server's identity is checked.
    pub host_key: HostKeyPolicy,
    /// Directory holding the CDR files (absolute, or relative to the login
    /// directory).
    pub remote_dir: String,
    /// Limit on connecting, handshake and authentication.
    pub connect_timeout: Duration,
    /// Limit on each wait for the server once connected.
    pub io_timeout: Duration,
}

impl SftpConfig {
    /// A config with the default port, host key policy and timeouts, and no
    /// credentials yet (set `password` and/or `private_key`).
    pub fn new(host: impl Into<String>, user: impl Into<String>, remote_dir: impl Into<String>) -> Self {
        SftpConfig {
            host: host.into(),
            port: DEFAULT_PORT,
            user: user.into(),
            password: None,
            private_key: None,
            host_key: HostKeyPolicy::default(),
            remote_dir: remote_dir.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
        }
    }

    /// `host:port`, bracketing IPv6 addresses, for messages.
    pub fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Checks the settings without any I/O, so a bad config fails at startup.
    pub fn validate(&self) -> Result<(), SourceError> {
        let invalid = |what: &str| Err(SourceError::Refused(format!("invalid SFTP config: {what}")));
        if self.host.trim().is_empty() {
            return invalid("host is empty");
        }
        if self.user.is_empty() {
            return invalid("user is empty");
        }
        if self.password.is_none() && self.private_key.is_none() {
            return invalid("no password and no private key given");
        }
        if self.remote_dir.is_empty() {
            return invalid("remote directory is empty");
        }
        if self.connect_timeout.is_zero() || self.io_timeout.is_zero() {
            return invalid("timeouts must be positive (zero would mean waiting forever)");
        }
        Ok(())
    }

    /// How known_hosts names this server: `host`, or `[host]:port` off port 22.
    fn known_hosts_name(&self) -> String {
        if self.port == DEFAULT_PORT {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }

    /// The ssh-keyscan command that fetches this server's keys.
    fn keyscan_command(&self) -> String {
        if self.port == DEFAULT_PORT {
            format!("ssh-keyscan {}", self.host)
        } else {
            format!("ssh-keyscan -p {} {}", self.port, self.host)
        }
    }

    fn remote_path(&self, name: &str) -> PathBuf {
        Path::new(&self.remote_dir).join(name)
    }

    fn connection_error(&self, reason: String) -> SourceError {
        SourceError::Connection {
            endpoint: self.endpoint(),
            reason,
        }
    }
}

/// An open, authenticated session and its SFTP channel. The `Sftp` field is
/// declared first so it is dropped (channel closed) before the session.
struct Conn {
    sftp: Sftp,
    _session: Session,
}

/// A host key as the server offered it, for verification and messages.
struct OfferedKey {
    key_type: String,
    fingerprint: Fingerprint,
}

impl fmt::Display for OfferedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key_type, self.fingerprint)
    }
}

enum HostKeyCheck {
    Match,
    NotFound(OfferedKey),
    Mismatch(OfferedKey),
}

/// Files in one directory of an SFTP server.
pub struct SftpSource {
    config: SftpConfig,
    conn: Option<Conn>,
    /// The host key algorithm family that last verified, tried first at the
    /// next connect so the family search happens once, not at every reconnect.
    hostkey_family: Option<&'static str>,
    unreadable: UnreadableNames,
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
            unreadable: UnreadableNames::default(),
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

fn check_host_key(cfg: &SftpConfig, session: &Session) -> Result<HostKeyCheck, SourceError> {
    let Some((blob, _)) = session.host_key() else {
        return Err(cfg.connection_error("the server sent no host key".into()));
    };
    let offered = OfferedKey {
        key_type: key_type(blob),
        fingerprint: Fingerprint::of_key(blob),
    };
    match &cfg.host_key {
        HostKeyPolicy::InsecureSkip => {
            tracing::warn!(
                endpoint = %cfg.endpoint(),
                host_key = %offered,
                "host key NOT verified (insecure skip configured): anyone on the network path \
                 could pose as this server and receive the credentials"
            );
            Ok(HostKeyCheck::Match)
        }
        HostKeyPolicy::Fingerprint(pinned) => Ok(if offered.fingerprint == *pinned {
            HostKeyCheck::Match
        } else {
            HostKeyCheck::Mismatch(offered)
        }),
        HostKeyPolicy::KnownHosts(path) => {
            let known = read_known_hosts(cfg, session, path)?;
            match known.check_port(&cfg.host, cfg.port, blob) {
                CheckResult::Match => Ok(HostKeyCheck::Match),
                CheckResult::NotFound => Ok(HostKeyCheck::NotFound(offered)),
                CheckResult::Mismatch => Ok(HostKeyCheck::Mismatch(offered)),
                CheckResult::Failure => Err(SourceError::Refused(format!(
                    "checking the host key of {} against {} failed inside libssh2; \
                     check that the file is a valid OpenSSH known_hosts file",
                    cfg.known_hosts_name(),
                    path.display()
                ))),
            }
        }
    }
}

fn read_known_hosts(cfg: &SftpConfig, session: &Session, path: &Path) -> Result<KnownHosts, SourceError> {
    let mut known = session
        .known_hosts()
        .map_err(|e| cfg.connection_error(format!("initialising known hosts: {e}")))?;
    if !path.exists() {
        return Err(SourceError::Refused(format!(
            "known_hosts file {} does not exist; create it with: {} >> {} \
             (and compare the fingerprints with the server's administrator)",
            path.display(),
            cfg.keyscan_command(),
            path.display()
        )));
    }
    known.read_file(path, KnownHostFileKind::OpenSSH).map_err(|e| {
        SourceError::Refused(format!(
            "cannot read known_hosts file {}: {e}; libssh2 stops at the first line it does \
                 not understand (e.g. @cert-authority or security-key entries), so keep this \
                 server's keys in a dedicated file",
            path.display()
        ))
    })?;
    Ok(known)
}

fn not_found_error(cfg: &SftpConfig, offered: &OfferedKey) -> SourceError {
    let path = match &cfg.host_key {
        HostKeyPolicy::KnownHosts(p) => p.display().to_string(),
        _ => String::from("known_hosts"),
    };
    SourceError::Refused(format!(
        "host key for {} not in {path}; add it with: {} >> {path} \
         (and compare the fingerprints with the server's administrator; the server offered {offered})",
        cfg.known_hosts_name(),
        cfg.keyscan_command(),
    ))
}

fn mismatch_error(cfg: &SftpConfig, offered: &[OfferedKey]) -> SourceError {
    let offered = offered.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let name = cfg.known_hosts_name();
    let warning = "otherwise someone may be intercepting the connection";
    match &cfg.host_key {
        HostKeyPolicy::KnownHosts(path) => SourceError::Refused(format!(
            "host key for {name} does not match {path}: the server offered {offered}, \
             the file expects {expected}. If the server's key was changed on purpose, replace \
             the entry: ssh-keygen -R '{name}' -f {path} && {scan} >> {path}; {warning}",
            path = path.display(),
            expected = expected_keys(path, cfg),
            scan = cfg.keyscan_command(),
        )),
        HostKeyPolicy::Fingerprint(pinned) => SourceError::Refused(format!(
            "host key for {name} does not match the pinned fingerprint {pinned}: the server \
             offered {offered}. If the server's key was changed on purpose, pin the new \
             fingerprint (on the server: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub); \
             {warning}"
        )),
        HostKeyPolicy::InsecureSkip => {
            SourceError::Refused(format!("host key for {name} rejected (offered {offered})"))
        }
    }
}

/// The fingerprints known_hosts holds for this server, for the mismatch
/// message. Read independently of libssh2 (which does not expose them);
/// hashed entries cannot be attributed, so the message points to `ssh-keygen -F`.
fn expected_keys(path: &Path, cfg: &SftpConfig) -> String {
    let names = [cfg.known_hosts_name(), cfg.host.clone()];
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let found: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let hosts = fields.next()?;
            if hosts.starts_with('#') || hosts.starts_with('@') {
                return None;
            }
            if !hosts.split(',').any(|h| names.iter().any(|n| n == h)) {
                return None;
            }
            let key_type = fields.next()?;
            let blob = STANDARD.decode(fields.next()?).ok()?;
            Some(format!("{key_type} {}", Fingerprint::of_key(&blob)))
        })
        .collect();
    if found.is_empty() {
        format!(
            "a hashed entry (see: ssh-keygen -F '{}' -l -f {})",
            cfg.known_hosts_name(),
            path.display()
        )
    } else {
        found.join(", ")
    }
}

/// The key type name at the start of an SSH public key blob (a
/// length-prefixed string such as `ssh-ed25519`).
fn key_type(blob: &[u8]) -> String {
    blob.get(..4)
        .and_then(|len| {
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            blob.get(4..4usize.checked_add(len)?)
        })
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .unwrap_or_else(|| "unknown-key-type".into())
}

/// Public key first (the stronger method), then password. A refusal names the
/// user, endpoint and methods tried, never a secret.
fn authenticate(
    cfg: &SftpConfig,
    session: &Session,
    password: Option<&str>,
    passphrase: Option<&str>,
) -> Result<(), SourceError> {
    let mut tried = Vec::new();
    if let Some(key) = &cfg.private_key {
        tried.push("publickey");
        let result = session.userauth_pubkey_file(&cfg.user, None, &key.path, passphrase);
        match result {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => {}
            Err(e) => match e.code() {
                ErrorCode::Session(LIBSSH2_ERROR_AUTHENTICATION_FAILED | LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) => {}
                ErrorCode::Session(LIBSSH2_ERROR_FILE | LIBSSH2_ERROR_KEYFILE_AUTH_FAILED) => {
                    return Err(SourceError::Refused(format!(
                        "cannot use private key file {}: {} (unreadable, unsupported format, \
                         or wrong passphrase)",
                        key.path.display(),
                        e.message()
                    )))
                }
                _ => return Err(auth_transport_error(cfg, &e)),
            },
        }
    }
    if let Some(password) = password {
        tried.push("password");
        match session.userauth_password(&cfg.user, password) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => {}
            Err(e) => match e.code() {
                ErrorCode::Session(LIBSSH2_ERROR_AUTHENTICATION_FAILED) => {}
                ErrorCode::Session(LIBSSH2_ERROR_PASSWORD_EXPIRED) => {
                    return Err(SourceError::Refused(format!(
                        "password of user {} on {} has expired",
                        cfg.user,
                        cfg.endpoint()
                    )))
                }
                _ => return Err(auth_transport_error(cfg, &e)),
            },
        }
    }
    Err(SourceError::Refused(format!(
        "authentication failed for user {} on {} ({})",
        cfg.user,
        cfg.endpoint(),
        tried.join(", ")
    )))
}

/// An error during authentication that is not a "no": a dropped or timed-out
/// connection is worth retrying; anything else will fail the same way again.
fn auth_transport_error(cfg: &SftpConfig, e: &ssh2::Error) -> SourceError {
    if is_transport_code(e.code()) {
        cfg.connection_error(format!("during authentication: {e}"))
    } else {
        SourceError::Refused(format!(
            "authentication of user {} on {} failed: {}",
            cfg.user,
            cfg.endpoint(),
            e.message()
        ))
    }
}

fn is_transport_code(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Session(
            LIBSSH2_ERROR_SOCKET_SEND
                | LIBSSH2_ERROR_SOCKET_RECV
                | LIBSSH2_ERROR_SOCKET_DISCONNECT
                | LIBSSH2_ERROR_SOCKET_TIMEOUT
                | LIBSSH2_ERROR_TIMEOUT
                | LIBSSH2_ERROR_BAD_SOCKET
                | LIBSSH2_ERROR_EAGAIN
        )
    )
}

/// Sorts an error from an SFTP call by what the caller should do. Any
/// session-level (transport) error means the session is unusable, so it is a
/// connection error; SFTP status codes concern the file.
fn sftp_error(cfg: &SftpConfig, e: ssh2::Error, what: &str, path: &Path) -> SourceError {
    match e.code() {
        ErrorCode::Session(_) | ErrorCode::SFTP(LIBSSH2_FX_NO_CONNECTION | LIBSSH2_FX_CONNECTION_LOST) => {
            cfg.connection_error(format!("{what} {}: {e}", path.display()))
        }
        ErrorCode::SFTP(LIBSSH2_FX_NO_SUCH_FILE | LIBSSH2_FX_NO_SUCH_PATH) => SourceError::Gone {
            name: path.display().to_string(),
        },
        ErrorCode::SFTP(LIBSSH2_FX_PERMISSION_DENIED) => SourceError::Refused(format!(
            "permission denied: {what} {} as user {} on {}",
            path.display(),
            cfg.user,
            cfg.endpoint()
        )),
        ErrorCode::SFTP(_) => SourceError::Io {
            context: format!("{what} {} on {}", path.display(), cfg.endpoint()),
            source: io::Error::other(e),
        },
    }
}

fn is_missing(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::SFTP(LIBSSH2_FX_NO_SUCH_FILE | LIBSSH2_FX_NO_SUCH_PATH)
    )
}

/// Size and mtime from a stat; a server that omits them cannot support change
/// detection, so the file is treated as unusable.
fn size_mtime(stat: &FileStat) -> Option<(u64, i64)> {
    Some((stat.size?, i64::try_from(stat.mtime?).ok()?))
}

fn stat_size_mtime(
    sftp: &Sftp,
    cfg: &SftpConfig,
    path: &Path,
    file: &RemoteFile,
    when: &str,
) -> Result<(u64, i64), SourceError> {
    let stat = sftp.stat(path).map_err(|e| {
        if is_missing(&e) && when == "after reading" {
            SourceError::Changed {
                name: file.name.clone(),
                what: "removed while being read".into(),
            }
        } else {
            sftp_error(cfg, e, "stat", path)
        }
    })?;
    size_mtime(&stat).ok_or_else(|| SourceError::Io {
        context: format!("stat {} on {}", path.display(), cfg.endpoint()),
        source: io::Error::other("the server reported no size or mtime"),
    })
}

fn fetch_once(sftp: &Sftp, cfg: &SftpConfig, file: &RemoteFile, staging: &Path) -> Result<Fetched, SourceError> {
    let path = cfg.remote_path(&file.name);
    let (size, mtime) = stat_size_mtime(sftp, cfg, &path, file, "before reading")?;
    check_unchanged(file, size, mtime, "before reading")?;
    let mut remote = sftp.open(&path).map_err(|e| sftp_error(cfg, e, "opening", &path))?;
    let (copied, sha256) = stage(&mut remote, staging, READ_BUFFER).map_err(|e| match e {
        // The io::Error from ssh2 no longer carries the libssh2 code; a failed
        // read mid-transfer is almost always the connection, and reconnecting
        // then refetching is right in the rare other cases too.
        StageError::Read(e) => cfg.connection_error(format!("reading {}: {e}", path.display())),
        StageError::Write(e) => SourceError::Staging {
            path: staging.to_path_buf(),
            source: e,
        },
    })?;
    drop(remote);
    let (size, mtime) = stat_size_mtime(sftp, cfg, &path, file, "after reading")?;
    check_unchanged(file, size, mtime, "after reading")?;
    fetched(file, staging, copied, sha256)
}

fn is_dir(sftp: &Sftp, cfg: &SftpConfig, path: &Path) -> Result<bool, SourceError> {
    match sftp.stat(path) {
        Ok(stat) => Ok(stat.is_dir()),
        Err(e) if is_missing(&e) => Ok(false),
        Err(e) => Err(sftp_error(cfg, e, "stat", path)),
    }
}

fn exists(sftp: &Sftp, cfg: &SftpConfig, path: &Path) -> Result<bool, SourceError> {
    match sftp.lstat(path) {
        Ok(_) => Ok(true),
        Err(e) if is_missing(&e) => Ok(false),
        Err(e) => Err(sftp_error(cfg, e, "stat", path)),
    }
}

/// `mkdir -p` over SFTP. A mkdir that fails because another process created
/// the directory meanwhile is fine.
fn mkdir_all(sftp: &Sftp, cfg: &SftpConfig, dir: &Path) -> Result<(), SourceError> {
    if is_dir(sftp, cfg, dir)? {
        return Ok(());
    }
    let mut partial = PathBuf::new();
    for component in dir.components() {
        partial.push(component);
        if is_dir(sftp, cfg, &partial)? {
            continue;
        }
        if let Err(e) = sftp.mkdir(&partial, 0o755) {
            if !is_dir(sftp, cfg, &partial)? {
                return Err(sftp_error(cfg, e, "creating directory", &partial));
            }
        }
    }
    Ok(())
}

fn move_once(sftp: &Sftp, cfg: &SftpConfig, name: &str, dir: &str) -> Result<String, SourceError> {
    let src = cfg.remote_path(name);
    let target_dir = if dir.starts_with('/') {
        PathBuf::from(dir)
    } else {
        cfg.remote_path(dir)
    };
    mkdir_all(sftp, cfg, &target_dir)?;
    for n in 0..=MAX_COLLISION_SUFFIX {
        let dst = target_dir.join(collision_name(name, n));
        // Checked first because some servers' rename overwrites; OpenSSH's
        // refuses an existing target (checked again below for a racing mover).
        if exists(sftp, cfg, &dst)? {
            continue;
        }
        // No OVERWRITE flag: on SFTP v5+ servers it would clobber `dst`.
        match sftp.rename(&src, &dst, Some(RenameFlags::ATOMIC | RenameFlags::NATIVE)) {
            Ok(()) => return Ok(dst.display().to_string()),
            Err(e) if is_missing(&e) => return Err(SourceError::Gone { name: name.into() }),
            Err(e) => {
                if matches!(e.code(), ErrorCode::SFTP(_)) && exists(sftp, cfg, &dst)? {
                    continue;
                }
                return Err(sftp_error(cfg, e, &format!("moving to {}", dst.display()), &src));
            }
        }
    }
    Err(SourceError::Refused(format!(
        "cannot move {name} into {}: {MAX_COLLISION_SUFFIX} names taken",
        target_dir.display()
    )))
}

impl Source for SftpSource {
    fn list(&mut self) -> Result<Vec<RemoteFile>, SourceError> {
        let (files, unreadable) = self.run("list", |sftp, cfg| {
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
            let mut files = Vec::with_capacity(entries.len());
            let mut unreadable = Vec::new();
            for (path, stat) in entries {
                if !stat.is_file() {
                    continue;
                }
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
                    unreadable.push(raw.as_bytes().to_vec());
                    continue;
                };
                let Some((size, mtime)) = size_mtime(&stat) else {
                    tracing::debug!(name, "skipping a file the server lists without size or mtime");
                    continue;
                };
                files.push(RemoteFile {
                    name: name.to_string(),
                    size,
                    mtime,
                });
            }
            Ok((files, unreadable))
        })?;
        self.unreadable.report(unreadable, &self.config.remote_dir);
        Ok(files)
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

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SftpConfig {
        let mut c = SftpConfig::new("127.0.0.1", "cdr", "/upload");
        c.port = 2222;
        c.password = Some(SecretSource::Value(Secret::new("hunter2-secret")));
        c.private_key = Some(PrivateKey {
            path: "/keys/id_ed25519".into(),
            passphrase: Some(SecretSource::Value(Secret::new("pass-secret"))),
        });
        c
    }

    #[test]
    fn debug_masks_inline_secrets_but_shows_secret_files() {
        let mut c = config();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(!shown.contains("pass-secret"), "{shown}");
        assert!(shown.contains("***"));
        c.password = Some(SecretSource::File("/run/secrets/sftp".into()));
        assert!(format!("{c:?}").contains("File(\"/run/secrets/sftp\")"));
        let source = SftpSource::new(c).unwrap();
        assert!(!format!("{source:?}").contains("pass-secret"));
        assert!(!source.describe().contains("secret"));
    }

    #[test]
    fn secret_file_drops_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\r\n").unwrap();
        assert_eq!(SecretSource::File(path.clone()).reveal().unwrap().expose(), "s3cret");
        std::fs::write(&path, "s3cret \n\n").unwrap();
        assert_eq!(SecretSource::File(path).reveal().unwrap().expose(), "s3cret \n");
        let missing = SecretSource::File(dir.path().join("nope")).reveal().unwrap_err();
        assert!(matches!(missing, SourceError::Refused(m) if m.contains("nope")));
    }

    #[test]
    fn fingerprint_round_trips_in_ssh_keygen_format() {
        // An ed25519 public key blob and what `ssh-keygen -lf` prints for it.
        let blob = STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
            .unwrap();
        let fp = Fingerprint::of_key(&blob);
        let text = fp.to_string();
        assert_eq!(text, "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU");
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(format!("{text}=").parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(key_type(&blob), "ssh-ed25519");
    }

    #[test]
    fn malformed_fingerprints_are_rejected() {
        for bad in ["", "SHA256:", "MD5:aa:bb", "SHA256:abc", "SHA256:!!!!", "sha256:x"] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_type_of_garbage_blob_does_not_panic() {
        assert_eq!(key_type(&[]), "unknown-key-type");
        assert_eq!(key_type(&[0, 0, 0, 200, b'a']), "unknown-key-type");
        assert_eq!(key_type(&[0xff, 0xff, 0xff, 0xff]), "unknown-key-type");
    }

    #[test]
    fn validate_rejects_missing_credentials_and_zero_timeouts() {
        let mut c = config();
        c.password = None;
        c.private_key = None;
        assert!(matches!(c.validate(), Err(SourceError::Refused(m)) if m.contains("no password")));
        let mut c = config();
        c.io_timeout = Duration::ZERO;
        assert!(c.validate().is_err());
        let mut c = config();
        c.host = " ".into();
        assert!(c.validate().is_err());
        assert!(config().validate().is_ok());
    }

    #[test]
    fn known_hosts_names_and_keyscan_commands_follow_openssh() {
        let mut c = config();
        assert_eq!(c.known_hosts_name(), "[127.0.0.1]:2222");
        assert_eq!(c.keyscan_command(), "ssh-keyscan -p 2222 127.0.0.1");
        assert_eq!(c.endpoint(), "127.0.0.1:2222");
        c.port = 22;
        assert_eq!(c.known_hosts_name(), "127.0.0.1");
        assert_eq!(c.keyscan_command(), "ssh-keyscan 127.0.0.1");
        c.host = "::1".into();
        assert_eq!(c.endpoint(), "[::1]:22");
    }

    #[test]
    fn expected_keys_reads_plain_entries_for_this_host_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let key = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
        std::fs::write(
            &path,
            format!("# comment\n[127.0.0.1]:2222 ssh-ed25519 {key}\nother.example ssh-ed25519 {key}\n"),
        )
        .unwrap();
        let got = expected_keys(&path, &config());
        let fp = Fingerprint::of_key(&STANDARD.decode(key).unwrap());
        assert_eq!(got, format!("ssh-ed25519 {fp}"));
        std::fs::write(&path, "|1|abc=|def= ssh-ed25519 AAAA\n").unwrap();
        assert!(expected_keys(&path, &config()).contains("ssh-keygen -F"));
    }

    #[test]
    fn connecting_to_a_closed_port_is_a_connection_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut c = config();
        c.port = port;
        c.connect_timeout = Duration::from_secs(2);
        let err = SftpSource::connect(c).unwrap_err();
        assert!(matches!(err, SourceError::Connection { .. }), "{err}");
        assert!(err.is_transient());
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn a_server_that_never_answers_times_out() {
        // Accepts the TCP connection but never sends an SSH banner.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = config();
        c.port = listener.local_addr().unwrap().port();
        c.connect_timeout = Duration::from_millis(500);
        let start = std::time::Instant::now();
        let err = SftpSource::connect(c).unwrap_err();
        assert!(matches!(err, SourceError::Connection { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
        drop(listener);
    }
}
