//! Liveness and readiness, as `/healthz` and `/readyz` report them.
//!
//! - alive (`/healthz`): the process serves HTTP. A wedged engine is not
//!   detected here; the chunk deadline and the transaction timeout bound it.
//! - ready (`/readyz`): startup is done (brokers reached, every slot's
//!   producer initialised, checkpoints read, in-doubt transactions settled)
//!   AND the most recent source listing succeeded AND the most recent broker
//!   probe (a metadata request every few seconds, see `service`)
//!   succeeded. Each flag is rewritten by every attempt, so readiness follows
//!   an outage within one probe or poll interval, both ways.

use std::sync::atomic::{AtomicBool, Ordering};

/// The three facts readiness is made of.
pub struct Health {
    started: AtomicBool,
    source_ok: AtomicBool,
    brokers_ok: AtomicBool,
}

/// The process-wide health state.
pub static HEALTH: Health = Health {
    started: AtomicBool::new(false),
    source_ok: AtomicBool::new(false),
    brokers_ok: AtomicBool::new(false),
};

impl Health {
    /// The daemon is through its start-up.
    pub fn set_started(&self) {
        self.started.store(true, Ordering::Relaxed);
    }

    /// Whether the last contact with the source worked.
    pub fn set_source_ok(&self, ok: bool) {
        self.source_ok.store(ok, Ordering::Relaxed);
    }

    /// Whether the last contact with the brokers worked.
    pub fn set_brokers_ok(&self, ok: bool) {
        self.brokers_ok.store(ok, Ordering::Relaxed);
    }

    /// Whether the most recent broker probe succeeded.
    pub fn brokers_ok(&self) -> bool {
        self.brokers_ok.load(Ordering::Relaxed)
    }

    /// `/readyz` body: `ready` or what is missing, one per line.
    pub fn readiness(&self) -> Result<(), String> {
        let mut missing = Vec::new();
        if !self.started.load(Ordering::Relaxed) {
            missing.push("starting");
        }
        if !self.source_ok.load(Ordering::Relaxed) {
            missing.push("source: last listing failed");
        }
        if !self.brokers_ok.load(Ordering::Relaxed) {
            missing.push("brokers: last probe failed");
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join("\n"))
        }
    }
}
