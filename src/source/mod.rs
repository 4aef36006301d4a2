//! Where CDR files come from: an SFTP server (`sftp`) or a local directory
//! (`local`). Both hand the pipeline the same thing: a listing, and a file
//! copied into a local staging path with its SHA-256 computed on the way.

use std::path::{Path, PathBuf};

pub mod local;
pub mod select;
pub mod sftp;

/// One directory entry as the source reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Bare file name (no directory part).
    pub name: String,
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
}

/// A file copied into staging: the bytes that will be parsed and hashed are
/// exactly the bytes in `path`, whatever happens to the original afterwards.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// What a source can do. Implementations are blocking; callers run them on a
/// blocking thread.
pub trait Source: Send {
    /// Every regular file in the directory (unfiltered; `select` filters).
    fn list(&mut self) -> Result<Vec<RemoteFile>, SourceError>;

    /// Copies `file` into `staging`, hashing as bytes arrive. Fails with
    /// `SourceError::Changed` if the file's size or mtime differ from `file`
    /// before or after the copy, or the byte count differs from `file.size`.
    fn fetch(&mut self, file: &RemoteFile, staging: &Path) -> Result<Fetched, SourceError>;

    /// Removes the file from the source directory.
    fn delete(&mut self, name: &str) -> Result<(), SourceError>;

    /// Moves the file into `dir` (a path on the source side, created if
    /// missing); a name collision gets a numeric suffix. Returns the new path.
    fn move_to(&mut self, name: &str, dir: &str) -> Result<String, SourceError>;

    /// A short description for logs (never contains a secret).
    fn describe(&self) -> String;
}

/// Source failures, split by what the caller should do about them.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Transient: connection refused or dropped, timeout. Reconnect and retry.
    #[error("connection to {endpoint} failed: {reason}")]
    Connection { endpoint: String, reason: String },
    /// Permanent until an operator acts: bad credentials, host key mismatch.
    #[error("{0}")]
    Refused(String),
    /// The file changed while it was being read; retry at the next poll.
    #[error("file {name} changed while being read: {what}")]
    Changed { name: String, what: String },
    /// The file vanished between listing and reading.
    #[error("file {name} no longer exists")]
    Gone { name: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl SourceError {
    /// True when reconnecting and trying again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Connection { .. } | SourceError::Io { .. })
    }
}
