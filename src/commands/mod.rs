//! What each subcommand does. `anyhow` lives here and in main only.

pub mod audit;
pub mod check_config;
pub mod generate;
pub mod healthcheck;
pub mod ingest;
pub mod retry;
pub mod status;
