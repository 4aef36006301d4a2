//! Who the server is: its host key checked against known_hosts or a pinned
//! SHA-256 fingerprint before any credential is sent, and every refusal
//! saying what to do about it.

use super::*;

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

/// A host key as the server offered it, for verification and messages.
pub(super) struct OfferedKey {
    pub(super) key_type: String,
    pub(super) fingerprint: Fingerprint,
}

impl fmt::Display for OfferedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key_type, self.fingerprint)
    }
}

pub(super) enum HostKeyCheck {
    Match,
    NotFound(OfferedKey),
    Mismatch(OfferedKey),
}

pub(super) fn check_host_key(cfg: &SftpConfig, session: &Session) -> Result<HostKeyCheck, SourceError> {
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

pub(super) fn read_known_hosts(cfg: &SftpConfig, session: &Session, path: &Path) -> Result<KnownHosts, SourceError> {
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

pub(super) fn not_found_error(cfg: &SftpConfig, offered: &OfferedKey) -> SourceError {
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

pub(super) fn mismatch_error(cfg: &SftpConfig, offered: &[OfferedKey]) -> SourceError {
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
pub(super) fn expected_keys(path: &Path, cfg: &SftpConfig) -> String {
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
pub(super) fn key_type(blob: &[u8]) -> String {
    blob.get(..4)
        .and_then(|len| {
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            blob.get(4..4usize.checked_add(len)?)
        })
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .unwrap_or_else(|| "unknown-key-type".into())
}
