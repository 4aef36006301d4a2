//! The worker slots' sources, opened on threads of their own while the
//! caller prepares Kafka, and listing with retries.

use std::thread::JoinHandle;

use super::ServiceError;
use crate::backoff::backoff;
use crate::config::SourceArgs;
use crate::source::{Listing, Source, SourceError};

/// `n` sources as configured; nothing is contacted yet.
pub(super) fn build_sources(args: &SourceArgs, n: u32) -> Result<Vec<Box<dyn Source>>, ServiceError> {
    (0..n)
        .map(|_| args.build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(ServiceError::SourceConfig)
}

/// The sources of `slots` worker slots and the first one's listing, opened
/// on threads of their own while the caller prepares Kafka: the SSH
/// handshakes and the listing overlap the topics' and the producers' start-up
/// instead of following them. A session that fails to open here opens at its
/// first use, as it would have anyway; a listing that fails is the caller's.
pub(super) fn open_sources(args: &SourceArgs, slots: u32) -> Result<OpeningSources, ServiceError> {
    let mut sources = build_sources(args, slots.max(1))?;
    std::thread::Builder::new()
        .name("source-open".into())
        .spawn(move || {
            let listing = std::thread::scope(|scope| {
                let mut each = sources.iter_mut();
                let first = each.next().expect("at least one source is built");
                for source in each {
                    scope.spawn(move || {
                        if let Err(e) = source.open_now() {
                            tracing::debug!(error = %e, "opening a source early failed; it opens at its first use");
                        }
                    });
                }
                list_source(first.as_mut())
            });
            (sources, listing)
        })
        .map(OpeningSources)
        .map_err(ServiceError::Thread)
}

/// Sources being opened by [`open_sources`].
pub(super) struct OpeningSources(JoinHandle<Opened>);

/// The sources, and the first one's listing or why it failed.
type Opened = (Vec<Box<dyn Source>>, Result<Listing, SourceError>);

impl OpeningSources {
    /// Waits for the sources and the first listing.
    pub(super) fn join(self) -> Opened {
        self.0.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// Lists `source`, retrying transient failures a few times.
pub(super) fn list_source(source: &mut dyn Source) -> Result<Listing, SourceError> {
    let mut attempt = 0;
    loop {
        match source.list() {
            Err(e) if e.is_transient() && attempt < 5 => {
                tracing::warn!(error = %e, attempt, "listing failed; retrying");
                std::thread::sleep(backoff(attempt));
                attempt += 1;
            }
            result => return result,
        }
    }
}
