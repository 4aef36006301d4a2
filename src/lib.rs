//! cdr-to-redpanda: exactly-once ingest of telecom CDR files into Kafka-API brokers.
//!
//! The pipeline, one module per stage: `source` (sftp, local dir) -> `parse`
//! (CSV + validation, pure) -> `encode` (JSON values, keys, headers) -> `sink`
//! (transactional Kafka producer), with the ledger (`cdr-state`) beside it.

pub mod audit;
pub mod generate;
pub mod group;
pub mod encode;
pub mod parse;
pub mod schema;
pub mod source;
pub mod cli;
pub mod commands;
pub mod config;
pub mod failpoint;
pub mod ingest;
pub mod metrics;
pub mod sink;
