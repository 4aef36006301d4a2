//! Waiting that a shutdown can cut short: sleeps, and retries of a
//! dependency that is not there yet.

use std::time::{Duration, Instant};

use crate::backoff::backoff;
use crate::ingest::Shutdown;

/// Sleeps up to `d`, returning early (false) once shutdown is requested.
pub(super) fn sleep_unless_stopped(d: Duration, shutdown: &Shutdown) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if shutdown.requested() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
    }
    !shutdown.requested()
}

/// Retries `op` with backoff while it fails with a transient error, logging
/// each wait; a permanent error is returned. False if shutdown came first.
pub(super) fn wait_for<E: std::fmt::Display>(
    what: &str,
    shutdown: &Shutdown,
    mut op: impl FnMut() -> Result<(), E>,
    transient: impl Fn(&E) -> bool,
) -> Result<bool, E> {
    let mut attempt = 0;
    loop {
        match op() {
            Ok(()) => {
                if attempt > 0 {
                    tracing::info!("{what} reachable");
                }
                return Ok(true);
            }
            Err(e) if transient(&e) => {
                let wait = backoff(attempt);
                tracing::warn!(error = %e, retry_in = ?wait, attempt = attempt + 1, "waiting for {what}");
                if !sleep_unless_stopped(wait, shutdown) {
                    return Ok(false);
                }
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
