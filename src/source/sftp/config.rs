//! What an SFTP source connects to and with which credentials.

use super::*;

/// The standard SSH port.
pub const DEFAULT_PORT: u16 = 22;

/// Default limit on TCP connect plus SSH handshake and authentication.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default limit on any single wait for the server once connected: a dead
/// connection fails after this long instead of hanging forever.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// List a symlink to a regular file as that file (one extra `stat` per
    /// link); off, links are ignored with their reason.
    pub follow_symlinks: bool,
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
            follow_symlinks: false,
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
    pub(super) fn known_hosts_name(&self) -> String {
        if self.port == DEFAULT_PORT {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }

    /// The ssh-keyscan command that fetches this server's keys.
    pub(super) fn keyscan_command(&self) -> String {
        if self.port == DEFAULT_PORT {
            format!("ssh-keyscan {}", self.host)
        } else {
            format!("ssh-keyscan -p {} {}", self.port, self.host)
        }
    }

    pub(super) fn remote_path(&self, name: &str) -> PathBuf {
        Path::new(&self.remote_dir).join(name)
    }

    pub(super) fn connection_error(&self, reason: String) -> SourceError {
        SourceError::Connection {
            endpoint: self.endpoint(),
            reason,
        }
    }
}
