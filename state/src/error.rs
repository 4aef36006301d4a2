//! The ledger's one error type.

use std::io;
use std::path::PathBuf;

use crate::TxnOutcome;

/// Everything that can go wrong in the ledger. The redb variants are named for
/// the operation that failed; the others for what the ledger found.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The ledger directory could not be created.
    #[error("cannot create the ledger directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A read-only open found no ledger file (a read-only open never creates one).
    #[error("no ledger at {}", path.display())]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },
    /// redb could not open the database file: another process holds it for
    /// writing (`DatabaseAlreadyOpen`), it is not a redb file, it is damaged, ...
    #[error("cannot open the ledger {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// redb's reason.
        #[source]
        source: redb::DatabaseError,
    },
    /// A read-only open found the ledger damaged (a writer's open moves it
    /// aside: see `Ledger::open_healing`).
    #[error("the ledger {} is damaged: {damage}", path.display())]
    Damaged {
        /// The ledger file.
        path: PathBuf,
        /// What is wrong with it.
        damage: String,
    },
    /// A damaged ledger could not be moved aside.
    #[error("cannot move the damaged ledger {} aside", path.display())]
    MoveAside {
        /// The ledger file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A read-only open found a ledger left by a crashed writer, which must be
    /// repaired before it can be read, and could not copy it to repair the copy.
    #[error("cannot copy the ledger {} to read it", path.display())]
    Snapshot {
        /// The ledger file being copied.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A redb transaction could not begin.
    #[error("cannot begin a ledger transaction")]
    Transaction(#[from] redb::TransactionError),
    /// A redb table could not be opened (wrong key/value types means a ledger
    /// written with an incompatible layout).
    #[error("cannot open a ledger table")]
    Table(#[from] redb::TableError),
    /// redb failed to read or write a value.
    #[error("ledger storage error")]
    Storage(#[from] redb::StorageError),
    /// A write transaction failed to commit. Unless the error is
    /// `TransactionPoisoned` (rolled back), the write may or may not be durable,
    /// and this `Ledger` refuses further writes: drop it and open the ledger again,
    /// which repairs it; the caller must then treat the step as not known to have
    /// happened (which the in-doubt recovery does).
    #[error("cannot commit a ledger transaction")]
    Commit(#[from] redb::CommitError),
    /// A value could not be encoded (never expected for the ledger's own types).
    #[error("cannot encode {what}")]
    Encode {
        /// Which value (table and key).
        what: String,
        /// serde's reason.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value or index entry cannot be decoded or contradicts another.
    #[error("ledger value {what} is corrupt: {detail}")]
    Corrupt {
        /// Which value (table and key).
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The ledger was written by a newer build, whose layout this one cannot read.
    #[error("ledger schema version {found} is newer than this build supports ({supported})")]
    UnsupportedVersion {
        /// The version stored in the ledger.
        found: u32,
        /// The newest version this build reads and writes.
        supported: u32,
    },
    /// A read-only open found a ledger of an older schema; only a read-write
    /// open (starting the service) migrates it.
    #[error("ledger schema version {found} predates this build's ({current}); open it read-write once to migrate it")]
    NotMigrated {
        /// The version stored in the ledger.
        found: u32,
        /// The version this build reads.
        current: u32,
    },
    /// An outcome was recorded for a transaction that has no intent.
    #[error("no transaction {seq} of file {file} in the ledger")]
    UnknownTxn {
        /// File name.
        file: String,
        /// Transaction number.
        seq: u64,
    },
    /// An intent reused a (file, seq) that is already recorded.
    #[error("transaction {seq} of file {file} already exists ({outcome})")]
    TxnExists {
        /// File name.
        file: String,
        /// Transaction number.
        seq: u64,
        /// Its recorded outcome.
        outcome: TxnOutcome,
    },
    /// An outcome was recorded for a transaction that already has one.
    #[error("transaction {seq} of file {file} is already {outcome}")]
    TxnNotInDoubt {
        /// File name.
        file: String,
        /// Transaction number.
        seq: u64,
        /// Its recorded outcome.
        outcome: TxnOutcome,
    },
}

impl LedgerError {
    /// True when the ledger file itself is damaged: redb reports corruption,
    /// or a stored value does not decode. Not for errors of the disk, of
    /// another process holding it, or of a newer schema.
    pub fn is_damage(&self) -> bool {
        use redb::{DatabaseError, StorageError, TableError, TransactionError};
        // A header that is not redb's reads as InvalidData ("magic number
        // mismatch"): the file's bytes, not the disk.
        let storage = |e: &StorageError| match e {
            StorageError::Corrupted(_) => true,
            StorageError::Io(io) => io.kind() == io::ErrorKind::InvalidData,
            _ => false,
        };
        match self {
            LedgerError::Open {
                source: DatabaseError::Storage(e),
                ..
            }
            | LedgerError::Storage(e)
            | LedgerError::Transaction(TransactionError::Storage(e))
            | LedgerError::Table(TableError::Storage(e)) => storage(e),
            LedgerError::Corrupt { .. } => true,
            _ => false,
        }
    }

    /// True when the ledger could not be opened because another process (a
    /// running daemon) holds its one writer handle.
    pub fn is_held_by_another_writer(&self) -> bool {
        matches!(
            self,
            LedgerError::Open {
                source: redb::DatabaseError::DatabaseAlreadyOpen,
                ..
            }
        )
    }
}
