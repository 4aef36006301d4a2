//! N worker slots ingesting at once, each with its own transactional
//! producer (`<prefix>-<slot>`) and its own source session, sharing the
//! ledger and the checkpoints.
//!
//! Ordering: files of one kind are taken in name order, and their commits
//! land in that (= chronological) order, as with a single slot. Up to two
//! slots hold files of one kind: the second produces its file while the
//! first's last commit is in flight, and commits after it (`turn`), so the
//! producer is never idle on a commit. Different kinds run side by side. A
//! free slot takes the first file of a kind no slot holds, the smallest name
//! first, and otherwise the first of a kind one slot holds; with one slot
//! this is plain name order over all files. Parallelism is therefore at
//! most two per kind: a fifth slot has nothing to do with data and voice,
//! and `run` says so at startup.
//!
//! In a group (`--group`) the lanes are shards instead of kinds: only the
//! files of shards this instance owns are taken, one at a time per shard in
//! name order, with the shard's producer; every slot can be busy, each with
//! a file of another shard, whatever their kinds.
//!
//! Read-ahead: on taking a file, a slot also reserves the file it would take
//! next (the one `take` would give it were it free now) and downloads it
//! meanwhile. Other slots leave a reserved file to its slot while any other
//! file is free, and take it otherwise (the read-ahead is then thrown away),
//! so a reservation never keeps a free slot idle and never changes the order.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use cdr_state::{FileStatus, Ledger};

use super::ahead::ReadAhead;
use super::decide::is_settled;
use super::engine::{Engine, EngineError, FileOutcome, PassSummary};
use super::recover::{settle_in_doubt, settle_in_doubt_of};
use super::turn::Turn;
use super::{AfterIngest, IngestSettings};
use crate::group::{Group, GroupError};
use crate::metrics::METRICS;
use crate::schema::Catalog;
use crate::sink::limits::RecordLimits;
use crate::sink::{CheckpointStore, KafkaConfig, SinkError, TxnProducer};
use crate::source::{RemoteFile, Source};

/// The engines of every slot.
pub struct Workers {
    /// Each slot's engine and, without a group, its own producer.
    slots: Vec<(Engine, Option<TxnProducer>)>,
    ledger: Arc<Ledger>,
    checkpoints: Arc<Mutex<CheckpointStore>>,
    group: Option<Group>,
    settings: IngestSettings,
}

/// Slots that may hold files of one kind at once: one committing its last
/// chunk while the next produces. A third would only wait.
pub const FILES_PER_KIND: usize = 2;

/// How long reading the checkpoint topic may take at startup.
const CHECKPOINT_LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// The producers of `slots` slots, each fenced (`init_transactions`) on a
/// thread of its own: their round trips to the coordinator overlap, which
/// takes a slot's worth off every start. The first error wins.
fn init_side_by_side(kafka: &KafkaConfig, slots: u32) -> Result<Vec<TxnProducer>, SinkError> {
    std::thread::scope(|scope| {
        let started: Vec<_> = (0..slots)
            .map(|slot| scope.spawn(move || TxnProducer::new(kafka, slot)))
            .collect();
        started
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

impl Workers {
    /// One slot per source. In this order: every slot's `init_transactions`
    /// (fencing each zombie of a previous run and making the broker abort
    /// what it left open), then the checkpoint topic read with
    /// read_committed, then the settling of in-doubt transactions. Reading
    /// checkpoints before every slot is fenced could block on, or miss, a
    /// transaction a dead instance left open.
    ///
    /// In a group none of this happens here: shards come and go, and each is
    /// fenced, read and settled when it is taken over (`take_over_shards`).
    ///
    /// `ahead` holds one more source per slot for its read-ahead (empty when
    /// read-ahead is off).
    pub fn start(
        kafka: &KafkaConfig,
        ledger: Ledger,
        sources: Vec<Box<dyn Source>>,
        ahead: Vec<Box<dyn Source>>,
        settings: IngestSettings,
        group: Option<Group>,
    ) -> Result<Self, EngineError> {
        clear_staging(&settings.staging_dir)?;
        let (producers, checkpoints): (Vec<Option<TxnProducer>>, _) = match group {
            Some(_) => (sources.iter().map(|_| None).collect(), CheckpointStore::default()),
            None => {
                let producers = init_side_by_side(kafka, sources.len() as u32)?;
                let checkpoints = CheckpointStore::load(kafka, &settings.topics.checkpoints, CHECKPOINT_LOAD_TIMEOUT)?;
                let settled = settle_in_doubt(&ledger, &checkpoints)?;
                if settled > 0 {
                    tracing::info!(settled, "recovered transactions left in doubt");
                }
                tracing::info!(
                    producers = ?producers.iter().map(TxnProducer::transactional_id).collect::<Vec<_>>(),
                    checkpoints = checkpoints.len(),
                    "engine ready"
                );
                (producers.into_iter().map(Some).collect(), checkpoints)
            }
        };
        let ledger = Arc::new(ledger);
        let checkpoints = Arc::new(Mutex::new(checkpoints));
        let mut ahead = ahead.into_iter();
        let slots = producers
            .into_iter()
            .zip(sources)
            .enumerate()
            .map(|(slot, (producer, source))| {
                let ahead = ahead
                    .next()
                    .map(|a| ReadAhead::new(a, settings.staging_dir.clone(), slot));
                (
                    Engine::new(ledger.clone(), source, ahead, checkpoints.clone(), settings.clone()),
                    producer,
                )
            })
            .collect();
        Ok(Workers {
            slots,
            ledger,
            checkpoints,
            group,
            settings,
        })
    }

    /// In a group: follows the assignment, taking over the owned shards of
    /// `files` (see `Group::take_over`). Between passes only, so no slot is
    /// busy with a shard being taken over.
    pub fn take_over_shards(&self, files: &[RemoteFile]) -> Result<(), GroupError> {
        match &self.group {
            Some(g) => {
                let wanted = files.iter().map(|f| g.shard_of(&f.name)).collect();
                g.take_over(&self.checkpoints, &wanted, |store, mine| {
                    settle_in_doubt_of(&self.ledger, store, mine)
                })
            }
            None => Ok(()),
        }
    }

    pub fn group(&self) -> Option<&Group> {
        self.group.as_ref()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Record size limits as just learned from the cluster, for every slot's
    /// next file.
    pub fn set_limits(&mut self, limits: &RecordLimits) {
        self.settings.limits = limits.clone();
        for (engine, _) in &mut self.slots {
            engine.set_limits(limits);
        }
    }

    /// The source slot 0 lists with (each slot fetches with its own).
    pub fn source_mut(&mut self) -> &mut dyn Source {
        self.slots[0].0.source_mut()
    }

    /// Drops the files done for good (`decide::is_settled`) from a listing.
    pub fn drop_settled(&self, files: &mut Vec<RemoteFile>) {
        let acts_on = |status: FileStatus| match status {
            FileStatus::Committed => !matches!(self.settings.after_success, AfterIngest::Keep),
            _ => self.settings.error_dir.is_some(),
        };
        files.retain(|f| match self.ledger.file(&f.name) {
            Ok(Some(rec)) => !is_settled(f, &rec, acts_on),
            _ => true,
        });
    }

    /// Ingests the ready files: per kind in name order, kinds side by side
    /// over the slots. Stops taking files once shutdown is requested or a
    /// slot hits a fatal error (the first fatal error is returned, after
    /// every other slot has finished its current file).
    pub fn pass(&mut self, ready: Vec<RemoteFile>) -> Result<PassSummary, EngineError> {
        let queue = match &self.group {
            // Files of shards owned elsewhere are that owner's business.
            Some(g) => Queue::new(
                ready.into_iter().filter(|f| g.is_ready(g.shard_of(&f.name))).collect(),
                |f| Lane::Shard(g.shard_of(&f.name)),
                1,
            ),
            None => {
                let kinds = &self.settings.topics.kinds;
                Queue::new(ready, |f| kind_lane(kinds, f), FILES_PER_KIND)
            }
        };
        let shutdown = &self.settings.shutdown;
        let group = self.group.as_ref();
        std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for (slot, (engine, own)) in self.slots.iter_mut().enumerate() {
                let queue = &queue;
                let spawned = std::thread::Builder::new()
                    .name(format!("slot-{slot}"))
                    .spawn_scoped(scope, move || loop {
                        let Some((ticket, file)) = queue.take(slot, || shutdown.requested()) else {
                            engine.end_pass();
                            return;
                        };
                        let next = queue.reserve_next(slot, ticket.lane);
                        let next = next.as_ref();
                        let turn = InLane { queue, ticket, group };
                        // A panic must still release the file, or the
                        // other slots would wait for it forever.
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            match (ticket.lane, group, own.as_mut()) {
                                // Revoked since the pass began: its new owner takes it.
                                (Lane::Shard(shard), Some(g), _) => g
                                    .with_producer(shard, |p| engine.ingest_one(p, &file, next, &turn))
                                    .unwrap_or(Ok(FileOutcome::Skipped)),
                                (_, _, Some(p)) => engine.ingest_one(p, &file, next, &turn),
                                (_, _, None) => Ok(FileOutcome::Skipped),
                            }
                        }))
                        .unwrap_or_else(|_| Err(EngineError::SlotPanicked(file.name.clone())));
                        queue.done(ticket, result);
                    });
                match spawned {
                    Ok(h) => handles.push(h),
                    Err(e) => queue.fail(EngineError::Thread(e)),
                }
            }
            for h in handles {
                // Panics inside ingest_one are caught above; nothing else in
                // the slot's loop can panic.
                let _ = h.join();
            }
        });
        queue.finish()
    }
}

/// Creates the staging directory and empties it: what a previous run left
/// there (a crash mid-download) is never read again, since every fetch
/// starts its file afresh.
fn clear_staging(dir: &std::path::Path) -> Result<(), EngineError> {
    let staging = |source| EngineError::Staging {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(staging)?;
    for entry in std::fs::read_dir(dir).map_err(staging)? {
        let path = entry.map_err(staging)?.path();
        if path.is_file() {
            std::fs::remove_file(&path).map_err(staging)?;
        }
    }
    Ok(())
}

/// A taken file's [`Turn`]: after the file taken before it in its lane.
struct InLane<'a> {
    queue: &'a Queue,
    ticket: Ticket,
    group: Option<&'a Group>,
}

impl Turn for InLane<'_> {
    fn await_begin(&self) {
        self.queue.await_before(self.ticket, |h| h.last_chunk);
    }

    fn await_commit(&self) {
        self.queue.await_before(self.ticket, |_| false);
    }

    fn last_chunk(&self) {
        self.queue.last_chunk(self.ticket);
    }

    /// Revoked mid-file, the file stops at the next chunk boundary, so the
    /// rebalance waits for one chunk.
    fn handed_off(&self) -> bool {
        match (self.ticket.lane, self.group) {
            (Lane::Shard(shard), Some(g)) => !g.is_ready(shard),
            _ => false,
        }
    }
}

/// Files of one lane are taken in name order, and commit in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Lane {
    /// One instance: a kind, by its place in the catalog (`usize::MAX` for
    /// names of no known kind).
    Kind(usize),
    /// A group: a shard, whose producer runs one transaction at a time.
    Shard(u32),
}

fn kind_lane(kinds: &Catalog, f: &RemoteFile) -> Lane {
    // Names of no known kind share one lane; the engine skips them.
    Lane::Kind(kinds.iter().position(|k| k.matches(&f.name)).unwrap_or(usize::MAX))
}

/// The pass's files by lane, and which slots hold which lane's files.
struct Queue {
    state: Mutex<QueueState>,
    changed: Condvar,
    /// How many slots may hold files of one kind at once.
    per_kind: usize,
}

/// A file a slot holds, by the order it was taken in.
struct Held {
    ticket: u64,
    /// Its last row is produced: the lane's next file may begin.
    last_chunk: bool,
}

#[derive(Default)]
struct QueueState {
    by_lane: BTreeMap<Lane, VecDeque<RemoteFile>>,
    /// The files slots hold, per lane that any is held of, oldest first.
    held: BTreeMap<Lane, Vec<Held>>,
    next_ticket: u64,
    /// Lanes whose next file a slot has reserved for its read-ahead.
    reserved: BTreeMap<Lane, usize>,
    summary: PassSummary,
    fatal: Option<EngineError>,
    /// A file was deferred by an outage: no further file is taken this pass.
    outage: bool,
}

impl QueueState {
    fn holders(&self, lane: &Lane) -> usize {
        self.held.get(lane).map_or(0, Vec::len)
    }

    /// The file taken just before `ticket` in its lane, if a slot still holds it.
    fn before(&self, lane: Lane, ticket: u64) -> Option<&Held> {
        self.held.get(&lane)?.iter().rev().find(|h| h.ticket < ticket)
    }
}

/// A file taken from the queue: its lane and its place in the lane's order.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    lane: Lane,
    number: u64,
}

impl Queue {
    /// `per_kind`: how many slots may hold files of one kind at once (a
    /// shard's files go one at a time: the shard has one producer).
    fn new(mut ready: Vec<RemoteFile>, lane: impl Fn(&RemoteFile) -> Lane, per_kind: usize) -> Self {
        ready.sort_by(|a, b| a.name.cmp(&b.name));
        let mut state = QueueState::default();
        for f in ready {
            state.by_lane.entry(lane(&f)).or_default().push_back(f);
        }
        Queue {
            state: Mutex::new(state),
            changed: Condvar::new(),
            per_kind: per_kind.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for a change of the state (or 200 ms: a shutdown request does
    /// not notify the condvar).
    fn wait<'a>(&self, st: MutexGuard<'a, QueueState>) -> MutexGuard<'a, QueueState> {
        self.changed
            .wait_timeout(st, Duration::from_millis(200))
            .map(|(g, _)| g)
            .unwrap_or_else(|poisoned| poisoned.into_inner().0)
    }

    fn room(&self, st: &QueueState, lane: &Lane) -> bool {
        let most = match lane {
            Lane::Kind(_) => self.per_kind,
            Lane::Shard(_) => 1,
        };
        st.holders(lane) < most
    }

    /// The next file free slot `slot` may take, waiting while every lane
    /// with files left is full; None when the pass is over for this slot.
    /// Lanes no slot holds first (kinds side by side), then by claim: its own
    /// reservation, then the smallest name not reserved by another slot,
    /// then the smallest reserved one. Only a lane's first file is ever
    /// taken, so a lane's files are taken in name order.
    fn take(&self, slot: usize, stop: impl Fn() -> bool) -> Option<(Ticket, RemoteFile)> {
        let mut st = self.lock();
        loop {
            if stop() || st.fatal.is_some() || st.outage {
                return None;
            }
            let next = st
                .by_lane
                .iter()
                .filter(|(lane, _)| self.room(&st, lane))
                .filter_map(|(lane, q)| {
                    let claim = match st.reserved.get(lane) {
                        Some(&s) if s == slot => 0,
                        None => 1,
                        Some(_) => 2,
                    };
                    q.front().map(|f| ((st.holders(lane), claim, &f.name), *lane))
                })
                .min()
                .map(|(_, lane)| lane);
            if let Some(lane) = next {
                let file = st.by_lane.get_mut(&lane).and_then(VecDeque::pop_front)?;
                let number = st.next_ticket;
                st.next_ticket += 1;
                st.held.entry(lane).or_default().push(Held {
                    ticket: number,
                    last_chunk: false,
                });
                st.reserved.remove(&lane);
                return Some((Ticket { lane, number }, file));
            }
            if st.held.is_empty() {
                return None;
            }
            st = self.wait(st);
        }
    }

    /// Reserves, for `slot` holding a file of `lane`, the file it would take
    /// were it free now, if no other slot has reserved it: the first of a
    /// lane no slot holds, or of its own lane if no other slot holds that
    /// one too (one that does takes the lane's next file before this slot is
    /// free, since this slot's file commits after its file).
    fn reserve_next(&self, slot: usize, lane: Lane) -> Option<RemoteFile> {
        let mut st = self.lock();
        st.reserved.retain(|_, s| *s != slot);
        let (next, file) = st
            .by_lane
            .iter()
            .filter(|(l, _)| {
                let holders = st.holders(l);
                (holders == 0 || (**l == lane && holders == 1)) && !st.reserved.contains_key(*l)
            })
            .filter_map(|(l, q)| q.front().map(|f| (*l, f)))
            .min_by(|a, b| a.1.name.cmp(&b.1.name))
            .map(|(l, f)| (l, f.clone()))?;
        st.reserved.insert(next, slot);
        Some(file)
    }

    /// Blocks while the file taken before `t` in its lane is held and
    /// `until` is false of it.
    fn await_before(&self, t: Ticket, until: impl Fn(&Held) -> bool) {
        let mut st = self.lock();
        while st.before(t.lane, t.number).is_some_and(|h| !until(h)) {
            st = self.wait(st);
        }
    }

    fn last_chunk(&self, t: Ticket) {
        let mut st = self.lock();
        if let Some(h) = st
            .held
            .get_mut(&t.lane)
            .and_then(|v| v.iter_mut().find(|h| h.ticket == t.number))
        {
            h.last_chunk = true;
        }
        self.changed.notify_all();
    }

    fn done(&self, t: Ticket, result: Result<FileOutcome, EngineError>) {
        let lane = t.lane;
        let mut st = self.lock();
        if let Some(held) = st.held.get_mut(&lane) {
            held.retain(|h| h.ticket != t.number);
            if held.is_empty() {
                st.held.remove(&lane);
            }
        }
        match result {
            Ok(outcome) => {
                // Skipped files are not counted: every poll lists the files
                // settled earlier again, and they would swamp the rest.
                if outcome != FileOutcome::Skipped {
                    METRICS.files.add(outcome.label(), 1);
                }
                if matches!(outcome, FileOutcome::Deferred(_)) {
                    // An outage: the next file would meet it too.
                    st.outage = true;
                }
                if matches!(outcome, FileOutcome::Committed { .. }) {
                    METRICS
                        .last_success_timestamp_seconds
                        .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
                    if let Lane::Shard(s) = lane {
                        METRICS.group_shard_files_committed.add(&s.to_string(), 1);
                    }
                }
                st.summary.add(&outcome);
            }
            Err(e) => {
                if st.fatal.is_none() {
                    st.fatal = Some(e);
                }
            }
        }
        self.changed.notify_all();
    }

    /// A fatal error outside any file: the pass takes no further file.
    fn fail(&self, e: EngineError) {
        let mut st = self.lock();
        st.fatal.get_or_insert(e);
        self.changed.notify_all();
    }

    fn finish(self) -> Result<PassSummary, EngineError> {
        let st = self.state.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        match st.fatal {
            Some(e) => Err(e),
            None => Ok(st.summary),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> RemoteFile {
        RemoteFile {
            name: name.into(),
            size: 1,
            mtime: 1,
        }
    }

    #[test]
    fn kinds_go_side_by_side_before_a_kind_takes_a_second_slot() {
        let q = Queue::new(
            vec![
                file("cdr_voice_20240101_000002.csv"),
                file("cdr_data_20240101_000003.csv"),
                file("cdr_data_20240101_000001.csv"),
            ],
            |f| kind_lane(&Catalog::builtin(), f),
            FILES_PER_KIND,
        );
        let (k1, f1) = q.take(0, || false).unwrap();
        assert_eq!(f1.name, "cdr_data_20240101_000001.csv");
        // data is held: the other slot gets voice, not the next data file.
        let (k2, f2) = q.take(0, || false).unwrap();
        assert_eq!(f2.name, "cdr_voice_20240101_000002.csv");
        q.done(k2, Ok(FileOutcome::Skipped));
        q.done(k1, Ok(FileOutcome::Skipped));
        let (k3, f3) = q.take(0, || false).unwrap();
        assert_eq!(f3.name, "cdr_data_20240101_000003.csv");
        q.done(k3, Ok(FileOutcome::Skipped));
        assert!(q.take(0, || false).is_none());
        assert_eq!(q.finish().unwrap().skipped, 3);
    }

    #[test]
    fn with_one_slot_the_reserved_file_is_the_next_taken_in_name_order() {
        let q = Queue::new(
            vec![
                file("cdr_voice_20240101_000001.csv"),
                file("cdr_data_20240101_000002.csv"),
                file("cdr_data_20240101_000001.csv"),
            ],
            |f| kind_lane(&Catalog::builtin(), f),
            FILES_PER_KIND,
        );
        let mut order = Vec::new();
        let mut reserved = Vec::new();
        while let Some((lane, f)) = q.take(0, || false) {
            order.push(f.name);
            reserved.push(q.reserve_next(0, lane.lane).map(|f| f.name));
            q.done(lane, Ok(FileOutcome::Skipped));
        }
        assert_eq!(
            order,
            [
                "cdr_data_20240101_000001.csv",
                "cdr_data_20240101_000002.csv",
                "cdr_voice_20240101_000001.csv"
            ]
        );
        assert_eq!(reserved[..2], [Some(order[1].clone()), Some(order[2].clone())]);
        assert_eq!(reserved[2], None);
    }

    #[test]
    fn slots_on_two_kinds_each_reserve_the_next_file_of_their_own_kind() {
        let q = Queue::new(
            vec![
                file("cdr_data_20240101_000001.csv"),
                file("cdr_data_20240101_000002.csv"),
                file("cdr_voice_20240101_000001.csv"),
                file("cdr_voice_20240101_000002.csv"),
            ],
            |f| kind_lane(&Catalog::builtin(), f),
            FILES_PER_KIND,
        );
        let (data, _) = q.take(0, || false).unwrap();
        assert_eq!(
            q.reserve_next(0, data.lane).unwrap().name,
            "cdr_data_20240101_000002.csv"
        );
        let (voice, f) = q.take(1, || false).unwrap();
        assert_eq!(f.name, "cdr_voice_20240101_000001.csv");
        assert_eq!(
            q.reserve_next(1, voice.lane).unwrap().name,
            "cdr_voice_20240101_000002.csv"
        );
        q.done(voice, Ok(FileOutcome::Skipped));
        // Slot 1 finishes first; data is still held, so it takes its own reservation.
        assert_eq!(q.take(1, || false).unwrap().1.name, "cdr_voice_20240101_000002.csv");
    }

    #[test]
    fn a_reserved_file_is_left_to_its_slot_while_another_is_free_and_taken_when_none_is() {
        let shard = |f: &RemoteFile| Lane::Shard(f.name.as_bytes()[1] as u32);
        let q = Queue::new(vec![file("f1"), file("f2"), file("f3")], shard, FILES_PER_KIND);
        let (a, f) = q.take(0, || false).unwrap();
        assert_eq!(f.name, "f1");
        assert_eq!(q.reserve_next(0, a.lane).unwrap().name, "f2");
        let (b, f) = q.take(1, || false).unwrap();
        assert_eq!(f.name, "f3", "f2 is slot 0's read-ahead");
        assert!(q.reserve_next(1, b.lane).is_none(), "nothing unreserved is left");
        q.done(b, Ok(FileOutcome::Skipped));
        // Slot 0 is still at work: rather than idle, slot 1 takes f2.
        let (b, f) = q.take(1, || false).unwrap();
        assert_eq!(f.name, "f2");
        q.done(b, Ok(FileOutcome::Skipped));
        q.done(a, Ok(FileOutcome::Skipped));
        assert!(q.take(0, || false).is_none());
    }

    fn data_files(n: u32) -> Queue {
        let files = (1..=n)
            .map(|i| file(&format!("cdr_data_20240101_00000{i}.csv")))
            .collect();
        Queue::new(files, |f| kind_lane(&Catalog::builtin(), f), FILES_PER_KIND)
    }

    #[test]
    fn two_slots_hold_files_of_one_kind_and_the_one_holding_the_later_file_reserves_none() {
        let q = data_files(4);
        let (a, f) = q.take(0, || false).unwrap();
        assert_eq!(f.name, "cdr_data_20240101_000001.csv");
        assert_eq!(q.reserve_next(0, a.lane).unwrap().name, "cdr_data_20240101_000002.csv");
        let (b, f) = q.take(1, || false).unwrap();
        assert_eq!(
            f.name, "cdr_data_20240101_000002.csv",
            "rather than idle, slot 1 takes slot 0's read-ahead"
        );
        // Slot 0's file commits first, so slot 0 takes the file after this one.
        assert!(q.reserve_next(1, b.lane).is_none());
        assert!(!q.room(&q.lock(), &a.lane), "a third slot would only wait");
        q.done(a, Ok(FileOutcome::Skipped));
        assert_eq!(q.take(0, || false).unwrap().1.name, "cdr_data_20240101_000003.csv");
    }

    #[test]
    fn a_kinds_next_file_begins_once_the_previous_is_in_its_last_chunk_and_commits_once_it_is_done() {
        use std::sync::mpsc;
        let q = data_files(2);
        let (first, _) = q.take(0, || false).unwrap();
        let (second, _) = q.take(1, || false).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let turn = InLane {
                    queue: &q,
                    ticket: second,
                    group: None,
                };
                turn.await_begin();
                tx.send("begun").unwrap();
                turn.await_commit();
                tx.send("may commit").unwrap();
            });
            let quiet = Duration::from_millis(300);
            assert!(
                rx.recv_timeout(quiet).is_err(),
                "began while the first file was producing"
            );
            InLane {
                queue: &q,
                ticket: first,
                group: None,
            }
            .last_chunk();
            assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("begun"));
            assert!(
                rx.recv_timeout(quiet).is_err(),
                "committed before the first file was done"
            );
            q.done(first, Ok(FileOutcome::Skipped));
            assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("may commit"));
        });
    }

    #[test]
    fn the_first_file_of_a_kind_waits_for_nothing() {
        let q = data_files(1);
        let (t, _) = q.take(0, || false).unwrap();
        let turn = InLane {
            queue: &q,
            ticket: t,
            group: None,
        };
        turn.await_begin();
        turn.await_commit();
    }

    #[test]
    fn shutdown_stops_taking_files() {
        let q = Queue::new(
            vec![file("cdr_data_20240101_000001.csv")],
            |f| kind_lane(&Catalog::builtin(), f),
            FILES_PER_KIND,
        );
        assert!(q.take(0, || true).is_none());
    }

    #[test]
    fn an_outage_ends_the_pass_but_a_file_failure_does_not() {
        let q = Queue::new(
            vec![
                file("cdr_data_20240101_000001.csv"),
                file("cdr_data_20240101_000002.csv"),
                file("cdr_data_20240101_000003.csv"),
            ],
            |f| kind_lane(&Catalog::builtin(), f),
            FILES_PER_KIND,
        );
        let (k, _) = q.take(0, || false).unwrap();
        q.done(k, Ok(FileOutcome::Parked("permission denied".into())));
        let (k, _) = q.take(0, || false).unwrap();
        q.done(k, Ok(FileOutcome::Deferred("brokers unreachable".into())));
        assert!(q.take(0, || false).is_none());
        let summary = q.finish().unwrap();
        assert_eq!((summary.parked, summary.deferred), (1, 1));
    }
}
