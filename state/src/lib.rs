//! The cdr-to-redpanda ledger: the service's durable local record of every file
//! it has seen and every Kafka transaction it started, in one redb file.
//!
//! The ingest loop writes it around each Kafka transaction:
//!
//! 1. [`Ledger::txn_intent`] before the transaction begins (the txn is now in doubt),
//! 2. [`Ledger::txn_committed`] after `commit_transaction` returned Ok, or
//!    [`Ledger::txn_aborted`] after `abort_transaction`,
//! 3. on start, [`Ledger::in_doubt`] lists the transactions a crash left between
//!    1 and 2, and [`Ledger::resolve_in_doubt`] records what the checkpoint topic
//!    says became of them.
//!
//! `status` and `audit` read it through [`Ledger::open_read_only`], also while
//! the daemon runs. Every write is one redb commit with immediate durability:
//! when a write method returns `Ok`, what it recorded survives a crash.
//!
//! Stored values are versioned JSON envelopes (`{"v":2,...}`) and the table
//! layout has a schema version in the `meta` table; see the `ledger` module
//! source for the layout.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod codec;
mod error;
mod ledger;
mod record;

pub use error::LedgerError;
pub use ledger::{Healed, Ledger, LedgerReader, LEDGER_FILE_NAME, SCHEMA_VERSION};
pub use record::{FileRecord, FileStatus, TxnOutcome, TxnRecord};
