//! cdr-to-redpanda: exactly-once ingest of telecom CDR files into Kafka-API brokers.
//!
//! The pipeline, one module per stage: `source` (sftp, local dir) -> `parse`
//! (CSV + validation, pure) -> `encode` (JSON values, keys, headers) -> `sink`
//! (transactional Kafka producer), with the ledger (`cdr-state`) beside it.
//!
//! Public are the modules the binary, the tests and the benchmarks use; the
//! engine's inner rooms (audit, service, backoff, escaping) are the crate's own.

#![deny(missing_docs)]

pub mod arenas;
pub(crate) mod audit;
pub(crate) mod backoff;
pub mod cli;
pub mod commands;
pub mod config;
pub(crate) mod escape;
pub mod failpoint;
pub mod generate;
pub mod group;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod registry;
pub mod secret;
pub(crate) mod service;
pub mod sink;
pub mod source;

// The pure stages live in their own crate (`core/`); these paths keep the
// pipeline readable as one tree from here.
pub use cdr_core::{encode, parse, schema};
