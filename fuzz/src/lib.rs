//! The service's pure stages, compiled from the service's own sources without
//! its I/O dependencies: librdkafka and libssh2 (C code) do not build with the
//! address sanitizer that cargo-fuzz turns on, and these stages need neither.

#[path = "../../src/schema.rs"]
pub mod schema;

#[path = "../../src/parse/mod.rs"]
pub mod parse;

#[path = "../../src/encode/mod.rs"]
pub mod encode;
