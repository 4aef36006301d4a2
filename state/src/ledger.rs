//! The ledger database: `<dir>/ledger.redb`, one redb file.
//!
//! Layout (schema version 1):
//!
//! | table             | key              | value                                  |
//! |-------------------|------------------|----------------------------------------|
//! | `meta`            | `&str`           | `u32`; `"schema_version"` -> 1         |
//! | `files`           | file name        | [`FileRecord`] in the JSON envelope    |
//! | `txns`            | (file name, seq) | [`TxnRecord`] in the JSON envelope     |
//! | `files_by_sha256` | sha256 hex       | multimap: names of the files that claim those bytes (status in progress or committed) |
//! | `txns_in_doubt`   | (file name, seq) | `()`: the txns whose outcome is in doubt |
//! | `group_members`   | group name       | `&str`: the client id this ledger's daemon last joined that group as |
//! | `ignored`         | listed name      | `&str`: why the daemon's latest listing does not take it (e.g. `symlink`) |
//!
//! `group_members` and `ignored` are optional within version 1: ledgers
//! written before them lack them and read as empty, and builds that predate
//! them ignore them, so adding them needed no new version.
//!
//! The two index tables are only ever changed in the write transaction that
//! changes the record they index, so they cannot disagree with it after a crash.
//!
//! Sharing: the writer ([`Ledger`]) and the readers ([`LedgerReader`]) open the
//! file in redb's `ConcurrencyMode::SingleWriter` (redb >= 4.5), in which one
//! process writes and any number of processes read it at the same time, each
//! read transaction seeing the latest commit. This needs byte-range file locks
//! (Linux, macOS, Windows). Every process opening the ledger must use this
//! mode: a redb handle in the default `ExclusiveWriter` mode is refused while
//! the daemon has the ledger open, and refuses it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{
    ConcurrencyMode, Database, DatabaseError, MultimapTableDefinition, ReadOnlyDatabase, ReadOnlyMultimapTable,
    ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableMultimapTable, ReadableTable, StorageError,
    TableDefinition, TableError, WriteTransaction,
};

use crate::codec::{decode, encode};
use crate::{FileRecord, FileStatus, LedgerError, TxnOutcome, TxnRecord};

/// Name of the database file inside the ledger directory.
pub const LEDGER_FILE_NAME: &str = "ledger.redb";

/// The table layout this build reads and writes (stored in `meta`).
pub const SCHEMA_VERSION: u32 = 1;

/// Upper bound on redb's page cache, per open handle. The ledger's working set
/// is small; redb's 1 GiB default would let a long-running daemon grow for nothing.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

const META: TableDefinition<&str, u32> = TableDefinition::new("meta");
const SCHEMA_VERSION_KEY: &str = "schema_version";
const FILES: TableDefinition<&str, &[u8]> = TableDefinition::new("files");
const TXNS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("txns");
const SHA256_INDEX: MultimapTableDefinition<&str, &str> = MultimapTableDefinition::new("files_by_sha256");
const IN_DOUBT: TableDefinition<(&str, u64), ()> = TableDefinition::new("txns_in_doubt");
const GROUP_MEMBERS: TableDefinition<&str, &str> = TableDefinition::new("group_members");
const IGNORED: TableDefinition<&str, &str> = TableDefinition::new("ignored");

/// A migration upgrades the layout by one schema version, inside the write
/// transaction that then stores the new version: `MIGRATIONS[i]` takes version
/// `i + 1` to `i + 2`. Version 1 is the first, so there is none yet.
type Migration = fn(&WriteTransaction) -> Result<(), LedgerError>;
const MIGRATIONS: &[Migration] = &[];
const _: () = assert!(MIGRATIONS.len() + 1 == SCHEMA_VERSION as usize);

/// `reason` of a transaction resolved as committed after a restart.
const RESOLVED_COMMITTED: &str = "in doubt after a restart; the checkpoint topic shows it committed";
/// `reason` of a transaction resolved as aborted after a restart.
const RESOLVED_ABORTED: &str = "in doubt after a restart; the checkpoint topic shows no commit";

fn builder() -> redb::Builder {
    let mut builder = Database::builder();
    builder
        .set_concurrency_mode(ConcurrencyMode::SingleWriter)
        .set_cache_size(CACHE_BYTES);
    builder
}

/// The service's durable record of every file it has seen and every Kafka
/// transaction it started. One writer per ledger: a second [`Ledger::open`] of
/// the same directory, from any process, fails with [`LedgerError::Open`].
///
/// Every write method commits one redb write transaction with
/// `Durability::Immediate` (one fsync) and is durable when it returns `Ok`.
pub struct Ledger {
    db: Database,
    path: PathBuf,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What [`Ledger::open_healing`] did with a damaged ledger.
#[derive(Debug, Clone)]
pub struct Healed {
    /// Where the damaged file now is, kept for inspection.
    pub moved_to: PathBuf,
    /// What was found wrong with it.
    pub damage: String,
}

/// An attempt on a ledger that may be damaged: damaged, or failed otherwise.
enum Checked {
    Damaged(String),
    Failed(LedgerError),
}

/// Runs `f`, sorting its failure: redb's corruption reports, undecodable
/// values and redb panics (its own assertion that a page is sound) are
/// damage; anything else is the error it is.
fn checked<T>(f: impl FnOnce() -> Result<T, LedgerError>) -> Result<T, Checked> {
    match quietly(f) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if e.is_damage() => Err(Checked::Damaged(error_chain(&e))),
        Ok(Err(e)) => Err(Checked::Failed(e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            Err(Checked::Damaged(format!("redb failed reading it: {what}")))
        }
    }
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, catching a panic without the panic hook's report (message and
/// backtrace) on this thread: a panic of redb on a damaged page is an
/// expected finding here, reported as damage. Other threads' panics are
/// reported as ever.
fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    let previous: std::sync::Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync> =
        std::sync::Arc::from(std::panic::take_hook());
    let report = previous.clone();
    std::panic::set_hook(Box::new(move |info| {
        if !QUIET.with(|q| q.get()) {
            report(info);
        }
    }));
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    drop(std::panic::take_hook());
    std::panic::set_hook(Box::new(move |info| previous(info)));
    result
}

/// An error and its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

impl Ledger {
    /// Opens or creates `<dir>/ledger.redb` (creating `dir`), repairing it if
    /// the last writer crashed. A ledger of a newer schema version is refused
    /// with [`LedgerError::UnsupportedVersion`]; an older one is migrated.
    //
    // Failure contract: creating the file and storing the schema version is one
    // commit; a crash before it leaves an empty file (or none), which the next
    // open initialises. A migration and the new schema version commit together,
    // so a crash leaves either the old layout with its old version or the new
    // one.
    pub fn open(dir: &Path) -> Result<Ledger, LedgerError> {
        std::fs::create_dir_all(dir).map_err(|source| LedgerError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(LEDGER_FILE_NAME);
        let db = builder().create(&path).map_err(|source| LedgerError::Open {
            path: path.clone(),
            source,
        })?;
        let ledger = Ledger { db, path };
        ledger.prepare_schema()?;
        Ok(ledger)
    }

    /// Opens the ledger like [`Ledger::open`], after reading every record it
    /// holds and checking every page. A damaged ledger (redb finds it
    /// corrupted, a value does not decode, or redb panics reading it) is moved
    /// aside to `ledger.redb.damaged-<unix ms>`, kept for inspection, and a new
    /// empty ledger is opened in its place: what it knew is rebuilt by the
    /// caller from the checkpoint topic, as for a lost ledger. Errors that
    /// are not damage (another process holds the ledger, the disk, a newer
    /// schema) are returned as they are.
    //
    // Failure contract: the damaged file is renamed before the new one is
    // created; a crash between the two leaves no ledger, which the next open
    // creates (and which the checkpoint topic rebuilds, as ever).
    pub fn open_healing(dir: &Path) -> Result<(Ledger, Option<Healed>), LedgerError> {
        let damage = match checked(|| {
            let mut ledger = Ledger::open(dir)?;
            ledger.verify()?;
            Ok(ledger)
        }) {
            Ok(ledger) => return Ok((ledger, None)),
            Err(Checked::Damaged(damage)) => damage,
            Err(Checked::Failed(e)) => return Err(e),
        };
        let path = dir.join(LEDGER_FILE_NAME);
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let moved_to = dir.join(format!("{LEDGER_FILE_NAME}.damaged-{at}"));
        std::fs::rename(&path, &moved_to).map_err(|source| LedgerError::MoveAside {
            path: path.clone(),
            source,
        })?;
        let ledger = Ledger::open(dir)?;
        Ok((ledger, Some(Healed { moved_to, damage })))
    }

    /// Reads every value of every table and has redb check every page.
    fn verify(&mut self) -> Result<(), LedgerError> {
        read_everything(&self.db.begin_read()?)?;
        self.db.check_integrity().map_err(|source| LedgerError::Open {
            path: self.path.clone(),
            source,
        })?;
        Ok(())
    }

    /// Opens the ledger in `dir` for reading, beside a running writer (the
    /// daemon) if there is one. See [`LedgerReader`] for what it sees.
    pub fn open_read_only(dir: &Path) -> Result<LedgerReader, LedgerError> {
        LedgerReader::open(dir)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record of file `name`, if it has been seen.
    pub fn file(&self, name: &str) -> Result<Option<FileRecord>, LedgerError> {
        read_file(&self.db.begin_read()?, name)
    }

    /// For duplicate-content detection: the file that claims these bytes, i.e.
    /// whose current version has `sha256 == sha256_hex` and status
    /// `InProgress` or `Committed`; the first by name if several do. It may be
    /// the file being asked about (after a restart, say).
    pub fn file_by_sha256(&self, sha256_hex: &str) -> Result<Option<FileRecord>, LedgerError> {
        read_file_by_sha256(&self.db.begin_read()?, sha256_hex)
    }

    /// Every file record, in name order.
    pub fn files(&self) -> Result<Vec<FileRecord>, LedgerError> {
        read_files(&self.db.begin_read()?)
    }

    /// The transactions of file `name` (all its versions), in `seq` order.
    pub fn transactions(&self, name: &str) -> Result<Vec<TxnRecord>, LedgerError> {
        read_transactions(&self.db.begin_read()?, name)
    }

    /// Transactions whose outcome is `InDoubt`, each with its file's record, in
    /// (file name, seq) order. After a restart these are the transactions the
    /// process started and never saw end.
    pub fn in_doubt(&self) -> Result<Vec<(FileRecord, TxnRecord)>, LedgerError> {
        read_in_doubt(&self.db.begin_read()?)
    }

    /// Number of files in each status; every status is present, zero or not.
    pub fn counts(&self) -> Result<BTreeMap<FileStatus, u64>, LedgerError> {
        read_counts(&self.db.begin_read()?)
    }

    /// When a file was last committed (its `finished_ms`), if ever.
    pub fn last_committed_ms(&self) -> Result<Option<i64>, LedgerError> {
        let mut last = None;
        visit_files(&self.db.begin_read()?, |rec| {
            if rec.status == FileStatus::Committed {
                last = last.max(rec.finished_ms);
            }
        })?;
        Ok(last)
    }

    /// Writes or replaces the whole record of `rec.name` (any status change:
    /// seen, failed, conflict, duplicate, ...), with its duplicate-detection
    /// index entry. Durable on return.
    //
    // Failure contract: durable when it returns Ok. A crash before the commit
    // leaves the previous record (or none); the caller repeats the step from
    // what the ledger shows. Never both, never half: the sha256 index changes
    // in the same commit.
    pub fn put_file(&self, rec: &FileRecord) -> Result<(), LedgerError> {
        self.write(|w| store_file(w, rec))
    }

    /// Records that this ledger's daemon is member `client_id` of `group`, so
    /// that a view of the group read from this ledger can tell which member
    /// it belongs to. Durable on return.
    //
    // Failure contract: informational only. A crash before the commit leaves
    // the previous member (or none), and the view then marks no member, or a
    // departed one that is no longer listed, as this instance.
    pub fn set_group_member(&self, group: &str, client_id: &str) -> Result<(), LedgerError> {
        self.write(|w| {
            w.open_table(GROUP_MEMBERS)?.insert(group, client_id)?;
            Ok(())
        })
    }

    /// Replaces the entries the latest listing does not take, each with its
    /// reason, so that `status` shows them. Durable on return.
    //
    // Failure contract: informational only, and one commit: a crash before
    // it leaves the previous listing's set, replaced at the next poll.
    pub fn set_ignored<'a>(&self, entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<(), LedgerError> {
        self.write(|w| {
            w.delete_table(IGNORED)?;
            let mut t = w.open_table(IGNORED)?;
            for (name, reason) in entries {
                t.insert(name, reason)?;
            }
            Ok(())
        })
    }

    /// Releases a parked or failed file for the next pass, as an operator's
    /// `retry` asks: its attempts and back-off are cleared and it becomes
    /// `Seen` (or `InProgress` when rows of it are committed, which the next
    /// pass resumes after). Returns the record as stored, or `None` when the
    /// name is unknown or not parked or failed (then nothing is written).
    //
    // Failure contract: durable when it returns Ok(Some); read and write are
    // one commit, so a record the daemon changed meanwhile is never overwritten
    // with a stale copy.
    pub fn release(&self, name: &str) -> Result<Option<FileRecord>, LedgerError> {
        self.write(|w| {
            let Some(mut rec) = get_file(&w.open_table(FILES)?, name)? else {
                return Ok(None);
            };
            if !matches!(rec.status, FileStatus::Parked | FileStatus::Failed) {
                return Ok(None);
            }
            rec.status = if rec.rows_done > 0 {
                FileStatus::InProgress
            } else {
                FileStatus::Seen
            };
            rec.attempts = 0;
            rec.next_attempt_ms = None;
            rec.updated_ms = now_ms();
            store_file(w, &rec)?;
            Ok(Some(rec))
        })
    }

    /// Records the intent to start Kafka transaction `seq` of `file`, covering
    /// rows from `row_start`, BEFORE the Kafka transaction begins: in one commit,
    /// `file` is stored with status `InProgress` (its other fields as given) and
    /// a [`TxnRecord`] with outcome `InDoubt`. Durable on return.
    ///
    /// `seq` must be new for the file name, across all its versions (the
    /// checkpoint topic identifies a transaction by it): reusing one fails with
    /// [`LedgerError::TxnExists`].
    //
    // Failure contract: durable when it returns Ok, and only then may the Kafka
    // transaction begin. Crash before the commit: nothing recorded and nothing
    // sent. Crash after it, before the outcome is recorded: the txn is InDoubt
    // (whether or not Kafka committed it); recovery asks the checkpoint topic
    // and calls `resolve_in_doubt`.
    pub fn txn_intent(&self, file: &FileRecord, seq: u64, row_start: u64) -> Result<(), LedgerError> {
        let rec = FileRecord {
            status: FileStatus::InProgress,
            ..file.clone()
        };
        self.write(|w| {
            if let Some(existing) = load_txn(w, &rec.name, seq)? {
                return Err(LedgerError::TxnExists {
                    file: rec.name.clone(),
                    seq,
                    outcome: existing.outcome,
                });
            }
            store_file(w, &rec)?;
            store_txn(
                w,
                &TxnRecord {
                    file: rec.name.clone(),
                    seq,
                    file_version: rec.version,
                    row_start,
                    row_end: None,
                    outcome: TxnOutcome::InDoubt,
                    started_ms: now_ms(),
                    finished_ms: None,
                    reason: None,
                },
            )
        })
    }

    /// Records that Kafka transaction `seq` of `file` committed, AFTER
    /// `commit_transaction` returned Ok: in one commit, the txn's outcome becomes
    /// `Committed` with `row_end`, and `file` is stored as given (rows done,
    /// counts, event times; status `Committed` if this was its last
    /// transaction, else `InProgress`). Durable on return. The txn must be in
    /// doubt ([`LedgerError::UnknownTxn`], [`LedgerError::TxnNotInDoubt`]).
    //
    // Failure contract: durable when it returns Ok. Crash after Kafka committed
    // but before this commit: the txn stays InDoubt and the file shows the
    // previous progress; recovery finds the commit in the checkpoint topic and
    // resolves it as committed, so the rows are not sent again.
    pub fn txn_committed(&self, file: &FileRecord, seq: u64, row_end: u64) -> Result<(), LedgerError> {
        self.finish_txn(&file.name, seq, TxnOutcome::Committed, Some(row_end), None, Some(file))
    }

    /// Records that Kafka transaction `seq` of file `name` was aborted, after
    /// `abort_transaction`, with the reason. The file record is not touched
    /// (store its new status with [`Ledger::put_file`]). Durable on return.
    //
    // Failure contract: durable when it returns Ok. Crash before it: the txn
    // stays InDoubt; recovery finds no commit in the checkpoint topic and
    // resolves it as aborted (with a generic reason instead of this one).
    pub fn txn_aborted(&self, name: &str, seq: u64, reason: &str) -> Result<(), LedgerError> {
        self.finish_txn(name, seq, TxnOutcome::Aborted, None, Some(reason.to_owned()), None)
    }

    /// Resolves in-doubt transaction `seq` of `file` once the caller has
    /// consulted the Kafka checkpoint topic: `committed` records outcome
    /// `Committed` with `row_end`, otherwise `Aborted` (`row_end` is then
    /// ignored); either way `file` is stored as given, in the same commit, and
    /// `reason` says the outcome was resolved. Durable on return.
    //
    // Failure contract: durable when it returns Ok. A crash before it leaves
    // the txn InDoubt, and the next start resolves it again, with the same
    // answer from the checkpoint topic.
    pub fn resolve_in_doubt(
        &self,
        file: &FileRecord,
        seq: u64,
        committed: bool,
        row_end: u64,
    ) -> Result<(), LedgerError> {
        let (outcome, row_end, reason) = if committed {
            (TxnOutcome::Committed, Some(row_end), RESOLVED_COMMITTED)
        } else {
            (TxnOutcome::Aborted, None, RESOLVED_ABORTED)
        };
        self.finish_txn(&file.name, seq, outcome, row_end, Some(reason.to_owned()), Some(file))
    }

    /// Records the outcome of an in-doubt txn, and `file` if given, in one commit.
    fn finish_txn(
        &self,
        name: &str,
        seq: u64,
        outcome: TxnOutcome,
        row_end: Option<u64>,
        reason: Option<String>,
        file: Option<&FileRecord>,
    ) -> Result<(), LedgerError> {
        self.write(|w| {
            let mut txn = load_txn(w, name, seq)?.ok_or_else(|| LedgerError::UnknownTxn {
                file: name.to_owned(),
                seq,
            })?;
            if txn.outcome != TxnOutcome::InDoubt {
                return Err(LedgerError::TxnNotInDoubt {
                    file: name.to_owned(),
                    seq,
                    outcome: txn.outcome,
                });
            }
            txn.outcome = outcome;
            txn.row_end = row_end;
            txn.finished_ms = Some(now_ms());
            txn.reason = reason;
            store_txn(w, &txn)?;
            match file {
                Some(file) => store_file(w, file),
                None => Ok(()),
            }
        })
    }

    /// Runs `f` in one write transaction and commits it; an error from `f`
    /// rolls everything back. The durability is redb's default,
    /// `Durability::Immediate`, never lowered: `commit` returns once the data
    /// is on disk.
    fn write<R>(&self, f: impl FnOnce(&WriteTransaction) -> Result<R, LedgerError>) -> Result<R, LedgerError> {
        let w = self.db.begin_write()?;
        let out = f(&w)?;
        w.commit()?;
        Ok(out)
    }

    /// Checks the stored schema version, and initialises or migrates the layout.
    fn prepare_schema(&self) -> Result<(), LedgerError> {
        let w = self.db.begin_write()?;
        let found = w.open_table(META)?.get(SCHEMA_VERSION_KEY)?.map(|v| v.value());
        match found {
            Some(SCHEMA_VERSION) => {
                w.abort()?;
                return Ok(());
            }
            Some(found) if found > SCHEMA_VERSION => {
                w.abort()?;
                return Err(LedgerError::UnsupportedVersion {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(0) => {
                return Err(LedgerError::Corrupt {
                    what: format!("meta[{SCHEMA_VERSION_KEY}]"),
                    detail: "schema version 0".to_owned(),
                })
            }
            Some(found) => {
                for migrate in MIGRATIONS.iter().skip(found as usize - 1) {
                    migrate(&w)?;
                }
            }
            // A new ledger: create every table, so that readers find them.
            None => {
                w.open_table(FILES)?;
                w.open_table(TXNS)?;
                w.open_table(IN_DOUBT)?;
                w.open_multimap_table(SHA256_INDEX)?;
            }
        }
        w.open_table(META)?.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)?;
        w.commit()?;
        Ok(())
    }
}

/// Read-only access to a ledger, for `status` and `audit`, possibly while the
/// daemon writes it from another process.
///
/// Normally it reads the live file, beside the writer, and each call sees the
/// writer's latest commit ([`LedgerReader::follows_writer`] is true).
///
/// When the last writer crashed and none has reopened the ledger since, the
/// file needs a repair, which a reader may not do to a file it does not own.
/// The reader then copies the file to a private temporary directory, repairs
/// the copy and reads that: a snapshot of the last durable commit, which does
/// not follow later commits (`follows_writer` is false). The copy is deleted
/// when the reader is dropped. Should a writer start while the copy is taken,
/// the copy may be torn; its repair then fails with [`LedgerError::Open`], or
/// yields an older durable commit.
pub struct LedgerReader {
    db: ReaderDb,
    path: PathBuf,
}

enum ReaderDb {
    Live(ReadOnlyDatabase),
    // Field order matters: the database closes before its directory is removed.
    Snapshot { db: Database, _copy: tempfile::TempDir },
}

impl fmt::Debug for LedgerReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerReader")
            .field("path", &self.path)
            .field("follows_writer", &self.follows_writer())
            .finish_non_exhaustive()
    }
}

impl LedgerReader {
    /// Opens and reads every record once: a damaged ledger is
    /// [`LedgerError::Damaged`] here, never a panic in a later read.
    fn open(dir: &Path) -> Result<LedgerReader, LedgerError> {
        let path = dir.join(LEDGER_FILE_NAME);
        match checked(|| {
            let reader = LedgerReader::open_unchecked(dir)?;
            read_everything(&reader.begin_read()?)?;
            Ok(reader)
        }) {
            Ok(reader) => Ok(reader),
            Err(Checked::Damaged(damage)) => Err(LedgerError::Damaged { path, damage }),
            Err(Checked::Failed(e)) => Err(e),
        }
    }

    fn open_unchecked(dir: &Path) -> Result<LedgerReader, LedgerError> {
        let path = dir.join(LEDGER_FILE_NAME);
        let db = match builder().open_read_only(&path) {
            Ok(db) => ReaderDb::Live(db),
            Err(DatabaseError::Storage(StorageError::Io(e))) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LedgerError::Missing { path });
            }
            Err(DatabaseError::RepairAborted) => snapshot(&path)?,
            Err(source) => return Err(LedgerError::Open { path, source }),
        };
        let reader = LedgerReader { db, path };
        // No version yet: the writer created the file and has not committed its
        // first transaction; the ledger reads as empty.
        match stored_schema_version(&reader.begin_read()?)? {
            None | Some(SCHEMA_VERSION) => Ok(reader),
            Some(found) if found > SCHEMA_VERSION => Err(LedgerError::UnsupportedVersion {
                found,
                supported: SCHEMA_VERSION,
            }),
            Some(found) => Err(LedgerError::NotMigrated {
                found,
                current: SCHEMA_VERSION,
            }),
        }
    }

    /// The ledger file read (the original, also when reading a snapshot of it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when reading the live file, seeing each new commit of the writer;
    /// false when reading a private snapshot of a crashed writer's ledger.
    pub fn follows_writer(&self) -> bool {
        matches!(self.db, ReaderDb::Live(_))
    }

    /// The record of file `name`, if it has been seen. See [`Ledger::file`].
    pub fn file(&self, name: &str) -> Result<Option<FileRecord>, LedgerError> {
        read_file(&self.begin_read()?, name)
    }

    /// The file that claims these bytes. See [`Ledger::file_by_sha256`].
    pub fn file_by_sha256(&self, sha256_hex: &str) -> Result<Option<FileRecord>, LedgerError> {
        read_file_by_sha256(&self.begin_read()?, sha256_hex)
    }

    /// Every file record, in name order.
    pub fn files(&self) -> Result<Vec<FileRecord>, LedgerError> {
        read_files(&self.begin_read()?)
    }

    /// The transactions of file `name`, in `seq` order.
    pub fn transactions(&self, name: &str) -> Result<Vec<TxnRecord>, LedgerError> {
        read_transactions(&self.begin_read()?, name)
    }

    /// Transactions whose outcome is `InDoubt`, with their files. While the
    /// daemon runs, this includes the transaction it is running now.
    pub fn in_doubt(&self) -> Result<Vec<(FileRecord, TxnRecord)>, LedgerError> {
        read_in_doubt(&self.begin_read()?)
    }

    /// Number of files in each status; every status is present.
    pub fn counts(&self) -> Result<BTreeMap<FileStatus, u64>, LedgerError> {
        read_counts(&self.begin_read()?)
    }

    /// The client id this ledger's daemon last joined `group` as. See
    /// [`Ledger::set_group_member`].
    pub fn group_member(&self, group: &str) -> Result<Option<String>, LedgerError> {
        match ro_table(&self.begin_read()?, GROUP_MEMBERS)? {
            Some(t) => Ok(t.get(group)?.map(|v| v.value().to_owned())),
            None => Ok(None),
        }
    }

    /// The entries the daemon's latest listing does not take, with their
    /// reasons, in name order. See [`Ledger::set_ignored`].
    pub fn ignored(&self) -> Result<Vec<(String, String)>, LedgerError> {
        match ro_table(&self.begin_read()?, IGNORED)? {
            Some(t) => t
                .iter()?
                .map(|e| {
                    let (k, v) = e?;
                    Ok((k.value().to_owned(), v.value().to_owned()))
                })
                .collect(),
            None => Ok(Vec::new()),
        }
    }

    fn begin_read(&self) -> Result<ReadTransaction, LedgerError> {
        Ok(match &self.db {
            ReaderDb::Live(db) => db.begin_read()?,
            ReaderDb::Snapshot { db, .. } => db.begin_read()?,
        })
    }
}

/// Copies a ledger that needs repair to a temporary directory and opens (so
/// repairs) the copy.
fn snapshot(path: &Path) -> Result<ReaderDb, LedgerError> {
    let io_err = |source| LedgerError::Snapshot {
        path: path.to_owned(),
        source,
    };
    let dir = tempfile::Builder::new()
        .prefix("cdr-ledger-snapshot-")
        .tempdir()
        .map_err(io_err)?;
    let copy = dir.path().join(LEDGER_FILE_NAME);
    std::fs::copy(path, &copy).map_err(io_err)?;
    // A private file: the default exclusive mode, and redb repairs it on open.
    let db = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(&copy)
        .map_err(|source| LedgerError::Open { path: copy, source })?;
    Ok(ReaderDb::Snapshot { db, _copy: dir })
}

// Reads shared by the writer and the readers. A table that does not exist yet
// (a ledger created but not yet initialised) reads as empty.

fn ro_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    r: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, LedgerError> {
    match r.open_table(def) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn ro_multimap<K: redb::Key + 'static, V: redb::Key + 'static>(
    r: &ReadTransaction,
    def: MultimapTableDefinition<K, V>,
) -> Result<Option<ReadOnlyMultimapTable<K, V>>, LedgerError> {
    match r.open_multimap_table(def) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn stored_schema_version(r: &ReadTransaction) -> Result<Option<u32>, LedgerError> {
    match ro_table(r, META)? {
        Some(meta) => Ok(meta.get(SCHEMA_VERSION_KEY)?.map(|v| v.value())),
        None => Ok(None),
    }
}

fn file_what(name: &str) -> String {
    format!("files[{name}]")
}

fn txn_what(name: &str, seq: u64) -> String {
    format!("txns[{name}, {seq}]")
}

fn get_file(
    files: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<FileRecord>, LedgerError> {
    match files.get(name)? {
        Some(v) => decode(|| file_what(name), v.value()).map(Some),
        None => Ok(None),
    }
}

fn get_txn(
    txns: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    name: &str,
    seq: u64,
) -> Result<Option<TxnRecord>, LedgerError> {
    match txns.get((name, seq))? {
        Some(v) => decode(|| txn_what(name, seq), v.value()).map(Some),
        None => Ok(None),
    }
}

fn read_file(r: &ReadTransaction, name: &str) -> Result<Option<FileRecord>, LedgerError> {
    match ro_table(r, FILES)? {
        Some(files) => get_file(&files, name),
        None => Ok(None),
    }
}

fn read_file_by_sha256(r: &ReadTransaction, sha256_hex: &str) -> Result<Option<FileRecord>, LedgerError> {
    let (Some(index), Some(files)) = (ro_multimap(r, SHA256_INDEX)?, ro_table(r, FILES)?) else {
        return Ok(None);
    };
    let Some(name) = index.get(sha256_hex)?.next().transpose()? else {
        return Ok(None);
    };
    let name = name.value();
    match get_file(&files, name)? {
        Some(rec) if rec.claims_content() && rec.sha256 == sha256_hex => Ok(Some(rec)),
        other => Err(LedgerError::Corrupt {
            what: format!("files_by_sha256[{sha256_hex}]"),
            detail: match other {
                Some(rec) => format!("points to {name}, which is {} with sha256 {}", rec.status, rec.sha256),
                None => format!("points to {name}, which has no record"),
            },
        }),
    }
}

/// Reads and decodes every value of every table: each page a read can reach.
fn read_everything(r: &ReadTransaction) -> Result<(), LedgerError> {
    read_files(r)?;
    read_in_doubt(r)?;
    if let Some(txns) = ro_table(r, TXNS)? {
        for entry in txns.iter()? {
            let (key, value) = entry?;
            let (name, seq) = key.value();
            decode::<TxnRecord>(|| txn_what(name, seq), value.value())?;
        }
    }
    if let Some(index) = ro_multimap(r, SHA256_INDEX)? {
        for entry in index.iter()? {
            for name in entry?.1 {
                name?;
            }
        }
    }
    if let Some(members) = ro_table(r, GROUP_MEMBERS)? {
        for entry in members.iter()? {
            entry?;
        }
    }
    Ok(())
}

fn read_files(r: &ReadTransaction) -> Result<Vec<FileRecord>, LedgerError> {
    let mut out = Vec::new();
    visit_files(r, |rec| out.push(rec))?;
    Ok(out)
}

/// Each file record in name order, decoded one at a time: a summary over a
/// ledger of a hundred thousand files never holds them all.
fn visit_files(r: &ReadTransaction, mut visit: impl FnMut(FileRecord)) -> Result<(), LedgerError> {
    let Some(files) = ro_table(r, FILES)? else {
        return Ok(());
    };
    for entry in files.iter()? {
        let (name, value) = entry?;
        visit(decode(|| file_what(name.value()), value.value())?);
    }
    Ok(())
}

fn read_transactions(r: &ReadTransaction, name: &str) -> Result<Vec<TxnRecord>, LedgerError> {
    let Some(txns) = ro_table(r, TXNS)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in txns.range((name, 0)..=(name, u64::MAX))? {
        let (key, value) = entry?;
        let (name, seq) = key.value();
        out.push(decode(|| txn_what(name, seq), value.value())?);
    }
    Ok(out)
}

fn read_in_doubt(r: &ReadTransaction) -> Result<Vec<(FileRecord, TxnRecord)>, LedgerError> {
    let (Some(in_doubt), Some(txns), Some(files)) = (ro_table(r, IN_DOUBT)?, ro_table(r, TXNS)?, ro_table(r, FILES)?)
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in in_doubt.iter()? {
        let (key, _) = entry?;
        let (name, seq) = key.value();
        let missing = |detail: &str| LedgerError::Corrupt {
            what: format!("txns_in_doubt[{name}, {seq}]"),
            detail: detail.to_owned(),
        };
        let txn = get_txn(&txns, name, seq)?.ok_or_else(|| missing("no such transaction"))?;
        if txn.outcome != TxnOutcome::InDoubt {
            return Err(missing(&format!("the transaction is {}", txn.outcome)));
        }
        let file = get_file(&files, name)?.ok_or_else(|| missing("no record of its file"))?;
        out.push((file, txn));
    }
    Ok(out)
}

fn read_counts(r: &ReadTransaction) -> Result<BTreeMap<FileStatus, u64>, LedgerError> {
    let mut counts: BTreeMap<FileStatus, u64> = FileStatus::ALL.into_iter().map(|s| (s, 0)).collect();
    visit_files(r, |rec| *counts.entry(rec.status).or_default() += 1)?;
    Ok(counts)
}

// Writes, always inside `Ledger::write`.

/// Stores a file record and keeps the sha256 index in step with it.
fn store_file(w: &WriteTransaction, rec: &FileRecord) -> Result<(), LedgerError> {
    let bytes = encode(|| file_what(&rec.name), rec)?;
    let mut files = w.open_table(FILES)?;
    let old = match files.insert(rec.name.as_str(), bytes.as_slice())? {
        Some(v) => Some(decode::<FileRecord>(|| file_what(&rec.name), v.value())?),
        None => None,
    };
    let mut index = w.open_multimap_table(SHA256_INDEX)?;
    if let Some(old) = old.filter(FileRecord::claims_content) {
        index.remove(old.sha256.as_str(), old.name.as_str())?;
    }
    if rec.claims_content() {
        index.insert(rec.sha256.as_str(), rec.name.as_str())?;
    }
    Ok(())
}

fn load_txn(w: &WriteTransaction, name: &str, seq: u64) -> Result<Option<TxnRecord>, LedgerError> {
    get_txn(&w.open_table(TXNS)?, name, seq)
}

/// Stores a txn record and keeps the in-doubt index in step with it.
fn store_txn(w: &WriteTransaction, txn: &TxnRecord) -> Result<(), LedgerError> {
    let bytes = encode(|| txn_what(&txn.file, txn.seq), txn)?;
    let key = (txn.file.as_str(), txn.seq);
    w.open_table(TXNS)?.insert(key, bytes.as_slice())?;
    let mut in_doubt = w.open_table(IN_DOUBT)?;
    if txn.outcome == TxnOutcome::InDoubt {
        in_doubt.insert(key, ())?;
    } else {
        in_doubt.remove(key)?;
    }
    Ok(())
}

/// Wall-clock time in ms since the Unix epoch (negative before it).
fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}
