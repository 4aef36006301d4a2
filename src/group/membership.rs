//! This instance's membership in the group: one Kafka consumer in the
//! consumer group named by `--group`, subscribed to the assignment topic.
//! It never reads a record; the partitions the group coordinator assigns it
//! are the shards it owns. The cooperative-sticky assignor moves only the
//! shards a join, a leave or a missed session timeout requires.
//!
//! The consumer is polled from its own thread, so heartbeats and the
//! rebalance callbacks never wait for a file being ingested; the callbacks
//! update `Shards`, which the worker slots consult.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientContext, TopicPartitionList};

use super::GroupError;
use crate::sink::client_log;
use crate::sink::KafkaConfig;

/// Which shards this instance may work on, shared by the rebalance
/// callbacks (membership thread) and the worker slots.
#[derive(Default)]
pub struct Shards {
    inner: Mutex<Inner>,
    /// Notified whenever a shard stops being busy or shards are assigned.
    idle: Condvar,
}

#[derive(Default)]
struct Inner {
    /// Assigned to this member by the group coordinator.
    assigned: BTreeSet<u32>,
    /// Of those, the ones taken over: a producer of theirs has fenced the
    /// previous owner and their checkpoints were read after that. Only these
    /// are worked on; a shard is taken over when it has a file, and
    /// released when its producer is closed for idleness.
    ready: BTreeSet<u32>,
    /// A slot is ingesting a file of these shards right now.
    busy: BTreeSet<u32>,
    /// The coordinator refused this member for good (a missing ACL), why.
    denied: Option<String>,
}

/// A shard a slot works on; released (and the revoke callback woken) on drop.
pub struct Busy<'a> {
    shards: &'a Shards,
    shard: u32,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.shards.lock().busy.remove(&self.shard);
        self.shards.idle.notify_all();
    }
}

impl Shards {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks `shard` busy if it is ready and nobody works on it; the check
    /// and the mark are one step, so a revoke cannot slip in between.
    pub fn begin(&self, shard: u32) -> Option<Busy<'_>> {
        let mut inner = self.lock();
        if !inner.ready.contains(&shard) || !inner.busy.insert(shard) {
            return None;
        }
        Some(Busy { shards: self, shard })
    }

    /// Marks `shards` busy while this instance takes them over (they are not
    /// ready, so no slot holds them): a revoke then waits until their
    /// `init_transactions` are done. Otherwise a slow takeover could fence
    /// the producer of the owner the shard has moved on to meanwhile.
    pub fn hold_for_takeover(&self, shards: &BTreeSet<u32>) -> Vec<Busy<'_>> {
        let mut inner = self.lock();
        shards
            .iter()
            .filter(|&&s| inner.busy.insert(s))
            .map(|&shard| Busy { shards: self, shard })
            .collect()
    }

    pub fn is_ready(&self, shard: u32) -> bool {
        self.lock().ready.contains(&shard)
    }

    pub fn ready(&self) -> BTreeSet<u32> {
        self.lock().ready.clone()
    }

    /// Records that the coordinator refused this member for good.
    fn deny(&self, why: String) {
        self.lock().denied.get_or_insert(why);
    }

    /// Why the coordinator refused this member, if it did: no rebalance
    /// will ever assign it a shard.
    pub fn denied(&self) -> Option<String> {
        self.lock().denied.clone()
    }

    pub fn assigned(&self) -> BTreeSet<u32> {
        self.lock().assigned.clone()
    }

    /// Assigned shards not yet taken over.
    pub fn pending(&self) -> BTreeSet<u32> {
        let inner = self.lock();
        inner.assigned.difference(&inner.ready).copied().collect()
    }

    /// Takes `shard` out of the shards taken over, while still assigned: its
    /// producer is closed, so its next file needs a takeover again.
    pub fn release(&self, shard: u32) {
        self.lock().ready.remove(&shard);
    }

    /// Declares `shards` taken over, those still assigned (a revoke may have
    /// come while they were being taken over); returns those.
    pub fn mark_ready(&self, shards: &BTreeSet<u32>) -> BTreeSet<u32> {
        let mut inner = self.lock();
        let still: BTreeSet<u32> = shards.intersection(&inner.assigned).copied().collect();
        inner.ready.extend(still.iter().copied());
        still
    }

    fn assign(&self, shards: &BTreeSet<u32>) {
        let mut inner = self.lock();
        inner.assigned.extend(shards.iter().copied());
        tracing::info!(shards = ?shards, owned = inner.assigned.len(), "shards assigned to this instance");
        drop(inner);
        self.idle.notify_all();
    }

    /// Waits until some shard is assigned, at most `limit`; whether any came.
    pub fn wait_assigned(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        let mut inner = self.lock();
        while inner.assigned.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            inner = self
                .idle
                .wait_timeout(inner, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        true
    }

    /// No new file of `shards` is taken from now on, and a file in flight
    /// stops at its next chunk boundary (the slot sees the shard no longer
    /// ready); returns once no slot works on one of them any more (or after
    /// `limit`: the slot then goes on with a producer the new owner fences,
    /// and this instance exits).
    fn revoke(&self, shards: &BTreeSet<u32>, lost: bool, limit: Duration) {
        let until = Instant::now() + limit;
        let mut inner = self.lock();
        for s in shards {
            inner.assigned.remove(s);
            inner.ready.remove(s);
        }
        tracing::info!(shards = ?shards, lost, owned = inner.assigned.len(), "shards revoked from this instance; their files in flight stop at the next chunk boundary");
        while inner.busy.intersection(shards).next().is_some() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(shards = ?shards, "revoked shards still busy after {limit:?}: their new owner will fence this instance's producer");
                return;
            }
            inner = self
                .idle
                .wait_timeout(inner, left.min(Duration::from_millis(200)))
                .map(|(g, _)| g)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }
}

fn shards_of(tpl: &TopicPartitionList) -> BTreeSet<u32> {
    tpl.elements()
        .iter()
        .filter_map(|e| u32::try_from(e.partition()).ok())
        .collect()
}

/// The consumer's context: rebalances update `Shards`.
struct RebalanceContext {
    shards: Arc<Shards>,
    revoke_limit: Duration,
}

impl ClientContext for RebalanceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        client_log::forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_log::client_error("group membership", &error, reason);
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::GroupAuthorizationFailed | RDKafkaErrorCode::TopicAuthorizationFailed)
        ) {
            self.shards.deny(format!("{error}: {reason}"));
        }
    }
}

impl ConsumerContext for RebalanceContext {
    // Before librdkafka gives the partitions up: the slots must be done with
    // the shards first, or two owners could work on one file at once.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.shards
                .revoke(&shards_of(tpl), consumer.assignment_lost(), self.revoke_limit);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) if tpl.count() > 0 => self.shards.assign(&shards_of(tpl)),
            Rebalance::Error(e) => tracing::warn!(error = %e, "group rebalance failed; the coordinator retries"),
            _ => {}
        }
    }
}

/// The running membership; leaves the group when dropped.
pub struct Membership {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// How the consumer joins.
pub struct JoinSettings<'a> {
    pub group: &'a str,
    pub topic: &'a str,
    pub member_name: &'a str,
    pub session_timeout: Duration,
    /// Longest a revoke waits for a slot to finish its file.
    pub revoke_limit: Duration,
}

impl Membership {
    pub fn join(kafka: &KafkaConfig, how: &JoinSettings<'_>, shards: Arc<Shards>) -> Result<Self, GroupError> {
        let session_ms = how.session_timeout.as_millis().max(1000);
        // Members learn of a rebalance at their next heartbeat, and a
        // cooperative one takes two rounds: a join waits about two heartbeat
        // intervals before its shards arrive (2 x 3.3 s with Kafka's usual
        // third of the session timeout; 2 x 1 s with a tenth). Heartbeats
        // are tiny requests.
        let heartbeat_ms = (session_ms / 10).max(100);
        let consumer: BaseConsumer<RebalanceContext> = kafka
            .client_config()
            .set("group.id", how.group)
            .set("client.id", how.member_name)
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", session_ms.to_string())
            .set("heartbeat.interval.ms", heartbeat_ms.to_string())
            .set("enable.auto.commit", "false")
            .create_with_context(RebalanceContext {
                shards,
                revoke_limit: how.revoke_limit,
            })
            .map_err(GroupError::Kafka)?;
        consumer.subscribe(&[how.topic]).map_err(GroupError::Kafka)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("group-member".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    // The topic stays empty: a poll only drives the group
                    // protocol and the callbacks.
                    if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
                        tracing::debug!(error = %e, "group membership poll");
                    }
                }
                // Dropping closes the consumer (serving the last revoke) and
                // leaves the group: the shards move at once instead of after
                // the session timeout.
                drop(consumer);
            })
            .map_err(GroupError::Thread)?;
        Ok(Membership {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u32]) -> BTreeSet<u32> {
        v.iter().copied().collect()
    }

    /// A revoke of some shards on another thread, under way when `start`
    /// returns.
    struct Revoker {
        handle: std::thread::JoinHandle<bool>,
        released: Arc<AtomicBool>,
    }

    impl Revoker {
        fn start(shards: &Arc<Shards>, revoked: &[u32]) -> Revoker {
            let (shards, revoked) = (shards.clone(), set(revoked));
            let released = Arc::new(AtomicBool::new(false));
            let seen = released.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            let handle = std::thread::spawn(move || {
                let _ = tx.send(());
                shards.revoke(&revoked, false, Duration::from_secs(10));
                seen.load(Ordering::SeqCst)
            });
            let _ = rx.recv();
            // Time for the revoke to get to its wait (or, were it not to
            // wait, to return): no assertion depends on how long it takes.
            std::thread::sleep(Duration::from_millis(200));
            Revoker { handle, released }
        }

        /// Whether the revoke is still waiting.
        fn waiting(&self) -> bool {
            !self.handle.is_finished()
        }

        /// Marks what the revoke waits for as released (call just before
        /// releasing it); then whether the revoke returned only after that.
        fn released(self, release: impl FnOnce()) -> bool {
            self.released.store(true, Ordering::SeqCst);
            release();
            self.handle.join().unwrap()
        }
    }

    #[test]
    fn only_ready_idle_shards_are_taken_and_revoke_waits_for_busy_ones() {
        let shards = Arc::new(Shards::default());
        shards.assign(&set(&[1, 2]));
        assert!(shards.begin(1).is_none(), "assigned but not taken over");
        assert_eq!(shards.mark_ready(&set(&[1, 2, 3])), set(&[1, 2]));
        let busy = shards.begin(1).unwrap();
        assert!(shards.begin(1).is_none(), "one file per shard at a time");
        let revoker = Revoker::start(&shards, &[1]);
        assert!(!shards.is_ready(1), "no new file of a revoked shard");
        assert!(revoker.waiting(), "revoke waits for the busy shard");
        assert!(
            revoker.released(|| drop(busy)),
            "revoke returned only once the shard was idle"
        );
        assert_eq!(shards.ready(), set(&[2]));
    }

    #[test]
    fn a_revoke_waits_for_the_takeover_of_the_shard_in_progress() {
        let shards = Arc::new(Shards::default());
        shards.assign(&set(&[1, 2]));
        let held = shards.hold_for_takeover(&shards.pending());
        assert!(shards.begin(1).is_none());
        let revoker = Revoker::start(&shards, &[1]);
        assert!(revoker.waiting(), "revoke waits for the takeover");
        // The takeover ends: the revoked shard is not declared ready.
        assert_eq!(shards.mark_ready(&set(&[1, 2])), set(&[2]));
        assert!(
            revoker.released(|| drop(held)),
            "revoke returned only after the takeover"
        );
        assert!(shards.begin(2).is_some(), "held shards are released with the takeover");
    }

    #[test]
    fn joining_waits_for_the_first_assignment_and_gives_up_after_its_limit() {
        let shards = Arc::new(Shards::default());
        assert!(!shards.wait_assigned(Duration::from_millis(50)), "nothing assigned");
        let assigner = {
            let shards = shards.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                shards.assign(&set(&[3]));
            })
        };
        assert!(shards.wait_assigned(Duration::from_secs(10)));
        assert_eq!(shards.assigned(), set(&[3]));
        assigner.join().unwrap();
    }
}
