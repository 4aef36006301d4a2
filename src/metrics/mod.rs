//! What the service exposes to operators over HTTP: Prometheus metrics
//! (`registry`), liveness and readiness (`health`), the small HTTP/1.1
//! responder that serves them (`server`), and the client the container
//! HEALTHCHECK uses (`probe`).
//!
//! One process-wide registry: the instrumented sites are spread over the
//! source, the sink and the engine, and a process has exactly one `/metrics`.

pub mod health;
pub mod probe;
pub mod registry;
pub mod server;

pub use health::HEALTH;
pub use registry::METRICS;
