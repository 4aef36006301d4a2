//! Signals: the first SIGTERM/SIGINT asks for an orderly stop with a
//! deadline, a second one exits at once.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::ServiceError;
use crate::ingest::Shutdown;

/// First signal: request shutdown and arm the deadline. Second: exit now.
pub(super) fn watch_signals(shutdown: Shutdown, deadline: Duration) -> Result<(), ServiceError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServiceError::Thread)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let count = AtomicU32::new(0);
            rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                    tracing::error!("cannot install signal handlers");
                    return;
                };
                loop {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    if count.fetch_add(1, Ordering::SeqCst) == 0 {
                        tracing::info!(deadline = ?deadline, "signal received: committing the current chunk, then exiting (signal again to exit now)");
                        shutdown.request();
                        arm_deadline(deadline);
                    } else {
                        tracing::warn!("second signal: exiting now");
                        std::process::exit(130);
                    }
                }
            });
        })
        .map_err(ServiceError::Thread)?;
    Ok(())
}

/// Exits 1 if the orderly shutdown has not finished after `deadline`; the
/// open transaction (if any) is settled by recovery at the next start.
fn arm_deadline(deadline: Duration) {
    let spawned = std::thread::Builder::new().name("shutdown-deadline".into()).spawn(move || {
        std::thread::sleep(deadline);
        tracing::error!(deadline = ?deadline, "shutdown deadline passed before the current chunk committed; exiting now");
        std::process::exit(1);
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot arm the shutdown deadline");
    }
}
