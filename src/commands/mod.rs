//! What each subcommand does. `anyhow` lives here and in main only.

pub mod audit;
pub mod generate;
pub mod ingest;
pub mod status;
