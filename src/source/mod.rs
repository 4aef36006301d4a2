//! Where CDR files come from: an SFTP server (`sftp`) or a local directory
//! (`local`). Both hand the pipeline the same thing: a listing, and a file
//! copied into a local staging path with its SHA-256 computed on the way.
//! `select` decides which listed files are complete enough to take.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub mod ignored;
pub mod local;
pub mod select;
pub mod sftp;

/// One directory entry as the source reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Bare file name (no directory part).
    pub name: String,
    /// Size in bytes at listing time.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
}

/// What one listing of the directory shows: the regular files (every one;
/// `select` decides which are taken) and the entries that can never be
/// handed over, with their reason.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The regular files.
    pub files: Vec<RemoteFile>,
    /// Entries that are not regular files with a usable name and attributes
    /// (directories are not listed at all).
    pub ignored: Vec<ignored::Ignored>,
}

/// A file copied into staging: the bytes that will be parsed and hashed are
/// exactly the bytes in `path`, whatever happens to the original afterwards.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The staging path the bytes were written to.
    pub path: PathBuf,
    /// Number of bytes copied; equals the listed size.
    pub size: u64,
    /// SHA-256 of exactly those bytes.
    pub sha256: [u8; 32],
}

/// What a source can do. Implementations are blocking; callers run them on a
/// blocking thread.
pub trait Source: Send {
    /// Every regular file in the directory (unfiltered; `select` filters),
    /// and the entries it cannot hand over: names that are not valid UTF-8,
    /// symlinks (unless followed), FIFOs, sockets and devices.
    fn list(&mut self) -> Result<Listing, SourceError>;

    /// Opens the connection now rather than at first use, so that its
    /// handshake overlaps other start-up work. A source without a
    /// connection, or with one open, has nothing to do.
    fn open_now(&mut self) -> Result<(), SourceError> {
        Ok(())
    }

    /// Copies `file` into `staging`, hashing as bytes arrive. Fails with
    /// `SourceError::Changed` if the file's size or mtime differ from `file`
    /// before or after the copy, or the byte count differs from `file.size`.
    /// `staging` is created or truncated, so a retry after any error simply
    /// calls `fetch` again; after an error its content is unspecified.
    fn fetch(&mut self, file: &RemoteFile, staging: &Path) -> Result<Fetched, SourceError>;

    /// Removes the file from the source directory. A file that is already
    /// gone gives `SourceError::Gone`.
    fn delete(&mut self, name: &str) -> Result<(), SourceError>;

    /// Moves the file into `dir` (a path on the source side, relative to the
    /// source directory unless absolute, created if missing); a name collision
    /// gets a numeric suffix (`name.1`, `name.2`, ...) and never overwrites.
    /// Returns the new path.
    fn move_to(&mut self, name: &str, dir: &str) -> Result<String, SourceError>;

    /// A short description for logs (never contains a secret).
    fn describe(&self) -> String;
}

/// Source failures, split by what the caller should do about them.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Transient: connection refused or dropped, timeout. Reconnect and retry.
    #[error("connection to {endpoint} failed: {reason}")]
    Connection {
        /// `user@host:port` or the directory.
        endpoint: String,
        /// What failed.
        reason: String,
    },
    /// Permanent until an operator acts: bad credentials, host key mismatch.
    #[error("{0}")]
    Refused(String),
    /// The file changed while it was being read; retry at the next poll.
    #[error("file {name} changed while being read: {what}")]
    Changed {
        /// The file.
        name: String,
        /// What differed from the listing.
        what: String,
    },
    /// The file vanished between listing and reading.
    #[error("file {name} no longer exists")]
    Gone {
        /// The file.
        name: String,
    },
    /// Our own staging disk could not take the copy (space, permission, a
    /// name it refuses): no reconnect helps, and the file is not to blame.
    #[error("writing staging file {}: {source}", path.display())]
    Staging {
        /// The staging file.
        path: PathBuf,
        /// What the disk said.
        #[source]
        source: std::io::Error,
    },
    /// An I/O failure that is neither the connection nor the file changing:
    /// the local source directory, a server-side error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, on what.
        context: String,
        /// What the disk or the server said.
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

/// True for a bare file name that stays inside its directory: not empty, not
/// `.` or `..`, no path separator of either platform, no NUL. Names from a
/// server are untrusted; one that fails this is never fetched, moved or
/// deleted. Dots inside a name (`cdr_data_1..csv`) are ordinary characters:
/// without a separator a name is one path component.
pub fn is_plain_name(name: &str) -> bool {
    !(name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']))
}

/// Refuses to act on a name that could reach outside the source directory.
fn check_name(name: &str) -> Result<(), SourceError> {
    if is_plain_name(name) {
        Ok(())
    } else {
        Err(SourceError::Refused(format!(
            "refusing unsafe file name {:?}: not a plain file name",
            name
        )))
    }
}

/// Upper bound on `name.N` suffixes tried by `move_to`, so that a directory
/// full of collisions gives an error instead of an endless loop.
const MAX_COLLISION_SUFFIX: u32 = 10_000;

/// `name` for the first try of a move, then `name.1`, `name.2`, ...
fn collision_name(name: &str, n: u32) -> String {
    if n == 0 {
        name.to_string()
    } else {
        format!("{name}.{n}")
    }
}

/// Staging writes go through a buffer this size so that small network reads do
/// not each become a write system call.
const STAGING_WRITE_BUFFER: usize = 1 << 20;

/// Which side of a staging copy failed: the source (network or source disk) or
/// the staging file. They call for different errors.
enum StageError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `reader` to a new (or truncated) `staging` file through a
/// `buf_size` read buffer, hashing the bytes as they pass. Returns the byte
/// count and SHA-256. Reading never seeks (libssh2 pipelines reads ahead).
///
/// Not fsynced: a staging file is only read by the ingest that fetched it, and
/// every ingest (after a crash too) fetches and hashes anew, so a staging file
/// lost in a crash loses nothing.
///
/// A copy of `of` (the listing's file) that takes longer than
/// [`PROGRESS_EVERY`] logs how far it is, so a long download is not silence.
fn stage<R: Read>(
    reader: &mut R,
    staging: &Path,
    buf_size: usize,
    of: &RemoteFile,
) -> Result<(u64, [u8; 32]), StageError> {
    let file = File::create(staging).map_err(StageError::Write)?;
    let mut out = BufWriter::with_capacity(STAGING_WRITE_BUFFER, file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; buf_size];
    let mut total = 0u64;
    let mut logged = std::time::Instant::now();
    loop {
        if logged.elapsed() >= PROGRESS_EVERY {
            tracing::info!(
                file = %of.name, bytes = total, of = of.size, percent = %percent(total, of.size), "downloading"
            );
            logged = std::time::Instant::now();
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StageError::Read(e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(StageError::Write)?;
        if total == 0 {
            crate::failpoint::hit("mid-download");
        }
        total += n as u64;
    }
    out.flush().map_err(StageError::Write)?;
    Ok((total, hasher.finalize().into()))
}

/// How often a long step (a download, a file's ingest) logs its progress.
pub const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// `done` of `total` as a percentage with one decimal, for progress lines.
pub fn percent(done: u64, total: u64) -> String {
    match total {
        0 => "100.0".to_owned(),
        t => format!("{:.1}", done.min(t) as f64 * 100.0 / t as f64),
    }
}

/// Compares a file's current size and mtime with what the listing said.
fn check_unchanged(file: &RemoteFile, size: u64, mtime: i64, when: &str) -> Result<(), SourceError> {
    if size == file.size && mtime == file.mtime {
        return Ok(());
    }
    Err(SourceError::Changed {
        name: file.name.clone(),
        what: format!("{when}: size {} -> {size}, mtime {} -> {mtime}", file.size, file.mtime),
    })
}

/// The end of every fetch: the byte count must match the listing.
fn fetched(file: &RemoteFile, staging: &Path, copied: u64, sha256: [u8; 32]) -> Result<Fetched, SourceError> {
    if copied != file.size {
        return Err(SourceError::Changed {
            name: file.name.clone(),
            what: format!("read {copied} bytes, listed size {}", file.size),
        });
    }
    Ok(Fetched {
        path: staging.to_path_buf(),
        size: copied,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing entry of `size` bytes, for `stage`'s progress lines.
    fn listed(size: usize) -> RemoteFile {
        RemoteFile {
            name: "f".into(),
            size: size as u64,
            mtime: 0,
        }
    }

    #[test]
    fn progress_is_a_bounded_percentage() {
        assert_eq!(percent(0, 200), "0.0");
        assert_eq!(percent(49, 200), "24.5");
        assert_eq!(percent(300, 200), "100.0");
        assert_eq!(percent(0, 0), "100.0");
    }

    #[test]
    fn plain_names_only() {
        assert!(is_plain_name("cdr_data_1.csv"));
        assert!(is_plain_name("cdr_data_20240910..csv"));
        assert!(is_plain_name("a..b"));
        for bad in ["", ".", "a/b", "a\\b", "..", "../x", "a\0b"] {
            assert!(!is_plain_name(bad), "{bad:?}");
            assert!(matches!(check_name(bad), Err(SourceError::Refused(_))));
        }
    }

    #[test]
    fn collision_names_append_a_counter() {
        assert_eq!(collision_name("a.csv", 0), "a.csv");
        assert_eq!(collision_name("a.csv", 2), "a.csv.2");
    }

    #[test]
    fn stage_hashes_and_counts_what_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("s");
        std::fs::write(&staging, b"old content that is longer").unwrap();
        let data = vec![7u8; 3 * 1024 + 5];
        let (n, sha) = match stage(&mut &data[..], &staging, 1024, &listed(data.len())) {
            Ok(v) => v,
            Err(_) => panic!("stage failed"),
        };
        assert_eq!(n, data.len() as u64);
        assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&data)));
        assert_eq!(std::fs::read(&staging).unwrap(), data, "staging truncated first");
    }

    /// Yields `good` bytes, then fails like a dropped connection.
    struct FailingReader {
        good: usize,
    }

    impl Read for FailingReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.good == 0 {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "dropped"));
            }
            let n = buf.len().min(self.good);
            buf[..n].fill(1);
            self.good -= n;
            Ok(n)
        }
    }

    #[test]
    fn stage_reports_a_read_failure_as_read() {
        let dir = tempfile::tempdir().unwrap();
        let result = stage(
            &mut FailingReader { good: 10_000 },
            &dir.path().join("s"),
            1024,
            &listed(20_000),
        );
        assert!(matches!(result, Err(StageError::Read(e)) if e.kind() == io::ErrorKind::ConnectionReset));
    }

    #[test]
    fn stage_reports_a_write_failure_as_write() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let endless = &mut io::repeat(0).take(1 << 30);
        let result = stage(endless, Path::new("/dev/full"), 4096, &listed(1 << 20));
        assert!(matches!(result, Err(StageError::Write(_))));
    }
}
