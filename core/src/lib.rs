//! The pure stages of cdr-to-redpanda: what a CDR file holds and how a row
//! becomes a Kafka record, with no I/O and no C dependency, so the service,
//! the fuzz targets and the benchmarks all run exactly this code.
//!
//! - [`schema`]: the record kinds and their columns;
//! - [`parse`]: bytes in, validated rows or positioned errors out (file, line,
//!   field), gzip sniffed and decoded;
//! - [`encode`]: values, keys and dead-letter records, byte for byte as the
//!   contract says.

#![deny(missing_docs)]

pub mod encode;
pub mod glob;
pub mod parse;
pub mod schema;
