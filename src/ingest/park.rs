//! Files set aside: the back-off between attempts that a transient cause
//! stopped, parking after too many, and the operator's requests to try a
//! file again (`retry`).
//!
//! A failure counts against a file only when the rest of the pipeline is
//! known to work (the source lists, the brokers answer): an outage is not the
//! file's fault and parks nothing. A parked file is skipped by every pass
//! until its content changes or `retry` releases it.
//!
//! `retry` must work beside a running daemon, which holds the ledger's one
//! writer handle. So a request is a file in `<ledger dir>/retry-requests/`,
//! written to a temporary name and renamed into place (never read half
//! written); whoever holds the ledger, the daemon at its next poll or `retry`
//! itself when no daemon runs, applies it and deletes it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cdr_state::{FileRecord, FileStatus, Ledger, LedgerError};
use serde::{Deserialize, Serialize};

use crate::backoff::Backoff;

/// When a file that keeps failing is tried again, and when it is parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParkPolicy {
    /// Counted attempts before the file is parked.
    pub max_attempts: u32,
    /// Wait after the first counted failure; doubled after each further one.
    pub backoff: Duration,
    /// No wait is longer than this.
    pub backoff_cap: Duration,
}

impl ParkPolicy {
    /// Five counted attempts, 30 s after the first failure, doubling up to
    /// 15 minutes: the flags' defaults too.
    pub const DEFAULT: ParkPolicy = ParkPolicy {
        max_attempts: 5,
        backoff: Duration::from_secs(30),
        backoff_cap: Duration::from_secs(900),
    };
}

impl Default for ParkPolicy {
    fn default() -> Self {
        ParkPolicy::DEFAULT
    }
}

/// What became of a file after a counted failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Tried again after `next_attempt_ms`.
    RetryAt { attempt: u32, next_attempt_ms: i64 },
    /// Set aside until its content changes or an operator releases it.
    Parked { attempts: u32 },
}

impl ParkPolicy {
    /// Counts one failed attempt on `rec` (whose `error` the caller sets) and
    /// schedules the next one or parks it.
    pub fn count_failure(&self, rec: &mut FileRecord, now_ms: i64) -> Verdict {
        rec.attempts = rec.attempts.saturating_add(1);
        rec.updated_ms = now_ms;
        if rec.attempts >= self.max_attempts {
            rec.status = FileStatus::Parked;
            rec.next_attempt_ms = None;
            return Verdict::Parked { attempts: rec.attempts };
        }
        let wait = Backoff {
            base: self.backoff,
            cap: self.backoff_cap,
        }
        .step(rec.attempts - 1);
        let next = now_ms + wait.as_millis() as i64;
        rec.next_attempt_ms = Some(next);
        Verdict::RetryAt {
            attempt: rec.attempts,
            next_attempt_ms: next,
        }
    }
}

/// Clears what earlier attempts left on a record whose content is new to it
/// (changed size or mtime) or that just succeeded.
pub fn fresh_start(rec: &mut FileRecord) {
    rec.attempts = 0;
    rec.next_attempt_ms = None;
    if rec.status == FileStatus::Parked {
        rec.status = FileStatus::Seen;
    }
}

/// Files that need an operator or a later pass, as the ledger has them:
/// what makes `once` exit 1 whether this pass or an earlier one left them so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stuck {
    /// Failed: the bytes cannot be ingested as they are.
    pub failed: u64,
    /// Parked after repeated transient failures.
    pub parked: u64,
    /// Waiting out a back-off before their next attempt.
    pub backing_off: u64,
    /// Changed after they were ingested, and refused.
    pub conflicts: u64,
}

impl Stuck {
    /// Counts the ledger's records of the files `names` at `now_ms`.
    pub fn of<'a>(
        ledger: &Ledger,
        names: impl IntoIterator<Item = &'a str>,
        now_ms: i64,
    ) -> Result<Stuck, LedgerError> {
        let mut stuck = Stuck::default();
        for name in names {
            let Some(rec) = ledger.file(name)? else { continue };
            match rec.status {
                FileStatus::Failed => stuck.failed += 1,
                FileStatus::Parked => stuck.parked += 1,
                FileStatus::Conflict => stuck.conflicts += 1,
                _ if rec.next_attempt_ms.is_some_and(|at| at > now_ms) => stuck.backing_off += 1,
                _ => {}
            }
        }
        Ok(stuck)
    }

    /// How many files are stuck in all.
    pub fn total(&self) -> u64 {
        self.failed + self.parked + self.backing_off + self.conflicts
    }
}

/// The folder of pending requests inside a ledger directory.
pub const REQUESTS_DIR: &str = "retry-requests";

/// Format version of a stored request.
const REQUEST_VERSION: u32 = 1;

/// One `retry` invocation: the named files, and/or every parked one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRequest {
    pub v: u32,
    pub files: Vec<String>,
    pub all_parked: bool,
}

impl RetryRequest {
    pub fn new(files: Vec<String>, all_parked: bool) -> Self {
        RetryRequest {
            v: REQUEST_VERSION,
            files,
            all_parked,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("retry request {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("retry request {path} is unreadable: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Stores `req` for whoever holds the ledger next. Durable on return (the
/// file and its directory are synced), so a daemon that dies before seeing it
/// applies it after its restart.
pub fn submit(ledger_dir: &Path, req: &RetryRequest) -> Result<PathBuf, RequestError> {
    let dir = ledger_dir.join(REQUESTS_DIR);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| RequestError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let stem = format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f"),
        std::process::id()
    );
    let tmp = dir.join(format!(".{stem}.tmp"));
    let path = dir.join(format!("{stem}.json"));
    let bytes = serde_json::to_vec(req).expect("a struct of strings and integers always serializes");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(io(&dir))?;
    Ok(path)
}

/// Applies every pending request, oldest first, and deletes each once its
/// releases are durable in the ledger. Returns the records released.
//
// Failure contract: a crash between a release and the request's deletion
// applies the request again at the next call, which releases nothing new
// (`Ledger::release` ignores files that are no longer parked or failed).
pub fn apply_pending(ledger_dir: &Path, ledger: &Ledger) -> Result<Vec<FileRecord>, RequestError> {
    let dir = ledger_dir.join(REQUESTS_DIR);
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(RequestError::Io { path: dir, source }),
    };
    paths.sort();
    let mut released = Vec::new();
    for path in paths {
        let bytes = std::fs::read(&path).map_err(|source| RequestError::Io {
            path: path.clone(),
            source,
        })?;
        let req: RetryRequest = serde_json::from_slice(&bytes).map_err(|e| RequestError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if req.v > REQUEST_VERSION {
            return Err(RequestError::Corrupt {
                path,
                detail: format!("version {} is newer than this build reads ({REQUEST_VERSION})", req.v),
            });
        }
        let mut names = req.files.clone();
        if req.all_parked {
            names.extend(
                ledger
                    .files()?
                    .into_iter()
                    .filter(|r| r.status == FileStatus::Parked)
                    .map(|r| r.name),
            );
        }
        for name in names {
            match ledger.release(&name)? {
                Some(rec) => {
                    tracing::info!(file = %rec.name, "released for another attempt by a retry request");
                    released.push(rec);
                }
                None => tracing::warn!(file = %name, "retry request: not parked or failed; nothing to do"),
            }
        }
        std::fs::remove_file(&path).map_err(|source| RequestError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: FileStatus) -> FileRecord {
        FileRecord {
            status,
            ..FileRecord::seen("cdr_data_20240101_000000.csv", "data", 10, 100, 0)
        }
    }

    #[test]
    fn failures_back_off_exponentially_then_park() {
        let policy = ParkPolicy {
            max_attempts: 4,
            backoff: Duration::from_secs(10),
            backoff_cap: Duration::from_secs(25),
        };
        let mut rec = record(FileStatus::Seen);
        let waits: Vec<Verdict> = (0..4).map(|_| policy.count_failure(&mut rec, 1_000)).collect();
        assert_eq!(
            waits,
            [
                Verdict::RetryAt {
                    attempt: 1,
                    next_attempt_ms: 11_000
                },
                Verdict::RetryAt {
                    attempt: 2,
                    next_attempt_ms: 21_000
                },
                Verdict::RetryAt {
                    attempt: 3,
                    next_attempt_ms: 26_000
                },
                Verdict::Parked { attempts: 4 },
            ]
        );
        assert_eq!((rec.status, rec.next_attempt_ms), (FileStatus::Parked, None));
        fresh_start(&mut rec);
        assert_eq!((rec.status, rec.attempts), (FileStatus::Seen, 0));
    }

    #[test]
    fn requests_are_applied_once_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let parked = FileRecord {
            attempts: 5,
            ..record(FileStatus::Parked)
        };
        let failed = FileRecord {
            name: "cdr_voice_20240101_000000.csv".into(),
            ..record(FileStatus::Failed)
        };
        ledger.put_file(&parked).unwrap();
        ledger.put_file(&failed).unwrap();
        submit(dir.path(), &RetryRequest::new(Vec::new(), true)).unwrap();
        submit(dir.path(), &RetryRequest::new(vec![failed.name.clone()], false)).unwrap();
        let released: Vec<String> = apply_pending(dir.path(), &ledger)
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(released, [parked.name.clone(), failed.name.clone()]);
        assert_eq!(ledger.file(&parked.name).unwrap().unwrap().status, FileStatus::Seen);
        assert!(apply_pending(dir.path(), &ledger).unwrap().is_empty());
        assert_eq!(std::fs::read_dir(dir.path().join(REQUESTS_DIR)).unwrap().count(), 0);
    }
}
