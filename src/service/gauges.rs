//! What the daemon keeps current beside its work: the brokers' reachability
//! for `/readyz`, the gauges of files waiting, and the files never taken.

use std::collections::BTreeMap;
use std::time::Duration;

use cdr_state::{FileStatus, Ledger};

use super::ServiceError;
use crate::group::Group;
use crate::ingest::decide::needs_fetch;
use crate::ingest::{now_ms, OnChanged};
use crate::metrics::{HEALTH, METRICS};
use crate::schema::Catalog;
use crate::sink::probe::BrokerProbe;
use crate::sink::KafkaConfig;
use crate::source::ignored::{self, IgnoredFiles};
use crate::source::select::Selector;
use crate::source::{Listing, RemoteFile};

/// Keeps `HEALTH`'s broker flag current: one metadata request every
/// `BROKER_PROBE_INTERVAL`, independent of what the slots are doing.
pub(super) fn spawn_broker_probe(kafka: &KafkaConfig, topic: &str) -> Result<(), ServiceError> {
    const BROKER_PROBE_INTERVAL: Duration = Duration::from_secs(3);
    let probe = BrokerProbe::new(kafka, topic).map_err(ServiceError::Probe)?;
    std::thread::Builder::new()
        .name("broker-probe".into())
        .spawn(move || loop {
            let ok = probe.brokers(BROKER_PROBE_INTERVAL).is_ok_and(|n| n > 0);
            HEALTH.set_brokers_ok(ok);
            std::thread::sleep(BROKER_PROBE_INTERVAL);
        })
        .map_err(ServiceError::Thread)?;
    Ok(())
}

/// The waiting-files gauges: listed files of a known kind that the ledger
/// has not settled (what the next passes still have to do). In a group, only
/// the files of this instance's shards count, and each shard's are counted
/// apart too.
pub(super) fn update_waiting(
    listing: &[RemoteFile],
    ledger: &Ledger,
    kinds: &Catalog,
    on_changed: OnChanged,
    group: Option<&Group>,
) {
    let mut per_shard: BTreeMap<u32, u64> =
        group.map_or_else(BTreeMap::new, |g| g.owned().into_iter().map(|s| (s, 0)).collect());
    let mut waiting = 0u64;
    let mut oldest: Option<i64> = None;
    for f in listing.iter().filter(|f| kinds.for_file(&f.name).is_some()) {
        let shard = group.map(|g| g.shard_of(&f.name));
        if shard.is_some_and(|s| !per_shard.contains_key(&s)) {
            continue;
        }
        let Ok(rec) = ledger.file(&f.name) else { continue };
        if needs_fetch(f, rec.as_ref(), on_changed, now_ms()) {
            waiting += 1;
            oldest = Some(oldest.map_or(f.mtime, |o| o.min(f.mtime)));
            if let Some(n) = shard.and_then(|s| per_shard.get_mut(&s)) {
                *n += 1;
            }
        }
    }
    METRICS.files_waiting.set(waiting as f64);
    if group.is_some() {
        METRICS
            .group_shard_files_waiting
            .replace(per_shard.into_iter().map(|(s, n)| (s.to_string(), n as f64)));
    }
    if let Ok(counts) = ledger.counts() {
        METRICS
            .files_parked
            .set(counts.get(&FileStatus::Parked).copied().unwrap_or(0) as f64);
    }
    let age = oldest.map_or(0, |m| (now_ms() / 1000 - m).max(0));
    METRICS.oldest_waiting_age_seconds.set(age as f64);
}

/// Accounts for the entries a listing does not take: one log line per entry
/// newly seen, the per-reason gauge, and the ledger's set for `status`, all
/// touched only when the set changed (and at the first listing, which
/// replaces what an earlier run left).
pub(super) fn update_ignored(tracker: &mut IgnoredFiles, listing: &Listing, selector: &Selector, ledger: &Ledger) {
    let Some(set) = tracker.update(listing.ignored.iter().cloned().chain(selector.ignored())) else {
        return;
    };
    METRICS.files_ignored.replace(
        ignored::counts(set.values())
            .into_iter()
            .map(|(reason, n)| (reason.as_str().to_owned(), n as f64)),
    );
    if let Err(e) = ledger.set_ignored(set.iter().map(|(name, reason)| (name.as_str(), reason.as_str()))) {
        tracing::warn!(error = %e, "could not record the files not taken in the ledger: status shows an older set");
    }
}
