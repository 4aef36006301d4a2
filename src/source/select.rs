//! Which listed files are ready to ingest.
//!
//! CDR producers write files in place, so a file seen in a listing may still be
//! growing. A file is taken only once it has stopped changing: its (size,
//! mtime) were identical in an earlier listing at least `settle` ago, and its
//! mtime is at least `min_age` old. Optionally a marker file (`<name>.done`)
//! must exist too, for producers that announce completion that way.
//!
//! This is pure logic over listings and a clock value, with no I/O, so every
//! rule is unit-tested with synthetic listings. It holds one small entry per
//! listed name and forgets a name as soon as it leaves the listing, so memory
//! is O(entries in the directory).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::ignored::{IgnoreReason, Ignored};
use super::{is_plain_name, RemoteFile};
pub use cdr_core::glob::glob_match;

/// File name patterns taken by default: plain and gzip-compressed data and
/// voice CDRs (see the CDR contract).
pub const DEFAULT_PATTERNS: [&str; 4] = [
    "cdr_data_*.csv",
    "cdr_voice_*.csv",
    "cdr_data_*.csv.gz",
    "cdr_voice_*.csv.gz",
];

/// The shortest wait between two listings, so that a settle interval of
/// zero does not list in a loop while a file keeps changing.
const RELIST_FLOOR: Duration = Duration::from_millis(250);

/// Default settle interval: long enough to span a producer's write bursts.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(5);

/// Default minimum age of a file's mtime: a second guard against producers that
/// write in bursts further apart than the settle interval.
pub const DEFAULT_MIN_AGE: Duration = Duration::from_secs(10);

/// Name endings of files that are still being written by common transfer tools
/// (WinSCP `.filepart`, rsync/curl `.part`, editors' `~` backups). Never taken.
const TEMP_SUFFIXES: [&str; 4] = [".tmp", ".part", ".filepart", "~"];

/// What makes a listed file eligible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectConfig {
    /// Glob patterns on the bare file name; `*` matches any run of characters,
    /// `?` exactly one. A file matching none is left alone (logged once).
    pub patterns: Vec<String>,
    /// How long a file's (size, mtime) must stay unchanged across listings.
    pub settle: Duration,
    /// How old a file's mtime must be.
    pub min_age: Duration,
    /// When set (e.g. `.done`), a file is taken only if `<name><suffix>` is in
    /// the same listing. Marker files themselves are never taken. The settle
    /// and age rules still apply.
    pub marker_suffix: Option<String>,
}

impl Default for SelectConfig {
    fn default() -> Self {
        SelectConfig {
            patterns: DEFAULT_PATTERNS.iter().map(|p| p.to_string()).collect(),
            settle: DEFAULT_SETTLE,
            min_age: DEFAULT_MIN_AGE,
            marker_suffix: None,
        }
    }
}

/// What the selector remembers about one listed name.
#[derive(Debug, Clone, Copy)]
enum Seen {
    /// Never eligible: why, or `None` for a marker file (which is read, as
    /// the sign its file is complete, not ignored).
    Ignored(Option<IgnoreReason>),
    /// Eligible by name; tracks since when it has looked the same.
    Candidate {
        size: u64,
        mtime: i64,
        /// When (size, mtime) were first seen with their current values.
        stable_since_ms: i64,
        /// True once the same (size, mtime) showed up in a later listing.
        confirmed: bool,
    },
}

/// Whether a name is eligible.
#[derive(Debug, PartialEq, Eq)]
enum NameVerdict {
    Candidate,
    /// A marker file.
    Marker,
    Ignored(IgnoreReason),
}

/// Remembers listings across polls and tells which files are ready.
///
/// Feed it every listing (`ready` is cheap); a ready file stays ready in every
/// later call until it disappears, so deciding whether it was already ingested
/// is the ledger's job, not this one's.
#[derive(Debug)]
pub struct Selector {
    config: SelectConfig,
    seen: HashMap<String, Seen>,
}

impl Selector {
    /// A selector that has seen nothing yet: no file is ready on the first call.
    pub fn new(config: SelectConfig) -> Self {
        Selector {
            config,
            seen: HashMap::new(),
        }
    }

    /// The rules in force.
    pub fn config(&self) -> &SelectConfig {
        &self.config
    }

    /// Number of names currently remembered (equals the last listing's length).
    pub fn tracked(&self) -> usize {
        self.seen.len()
    }

    /// Records `listing` (taken at `now_unix_ms`) and returns the files that
    /// are ready, sorted by name (names carry the producer's timestamp, so name
    /// order is chronological order).
    pub fn ready(&mut self, listing: &[RemoteFile], now_unix_ms: i64) -> Vec<RemoteFile> {
        let names: HashSet<&str> = match self.config.marker_suffix {
            Some(_) => listing.iter().map(|f| f.name.as_str()).collect(),
            None => HashSet::new(),
        };
        let settle_ms = duration_ms(self.config.settle);
        let min_age_ms = duration_ms(self.config.min_age);

        let mut previous = std::mem::take(&mut self.seen);
        let mut next = HashMap::with_capacity(listing.len());
        let mut ready = Vec::new();

        for file in listing {
            let before = previous.remove(&file.name);
            let seen = match self.verdict(&file.name) {
                NameVerdict::Candidate => {
                    let seen = observe(before, file, now_unix_ms, settle_ms.saturating_add(min_age_ms));
                    if is_ready(&seen, now_unix_ms, settle_ms, min_age_ms) && self.marker_present(&file.name, &names) {
                        ready.push(file.clone());
                    }
                    seen
                }
                NameVerdict::Marker => Seen::Ignored(None),
                NameVerdict::Ignored(reason) => Seen::Ignored(Some(reason)),
            };
            next.insert(file.name.clone(), seen);
        }
        // Whatever is left in `previous` has left the directory: dropped here.
        self.seen = next;
        ready.sort_by(|a, b| a.name.cmp(&b.name));
        ready
    }

    /// The names of the last listing that are never taken, with why.
    pub fn ignored(&self) -> impl Iterator<Item = Ignored> + '_ {
        self.seen.iter().filter_map(|(name, seen)| match seen {
            Seen::Ignored(Some(reason)) => Some(Ignored::new(name.clone(), *reason)),
            _ => None,
        })
    }

    /// Whether a file of the last listing may still become ready (it is
    /// taken by name but has not stood still long enough yet).
    pub fn pending(&self) -> bool {
        self.seen
            .values()
            .any(|s| matches!(s, Seen::Candidate { confirmed: false, .. }))
    }

    /// How long a daemon waits before its next listing: the poll interval,
    /// or less when a file of the last listing waits only for a second look
    /// a settle interval later. A new file is then taken one settle interval
    /// after it is first seen, not one poll interval.
    pub fn next_listing(&self, poll_interval: Duration) -> Duration {
        if self.pending() {
            poll_interval.min(self.config.settle.max(RELIST_FLOOR))
        } else {
            poll_interval
        }
    }

    fn verdict(&self, name: &str) -> NameVerdict {
        if !is_plain_name(name) {
            return NameVerdict::Ignored(IgnoreReason::UnsafeName);
        }
        if let Some(suffix) = &self.config.marker_suffix {
            if name.ends_with(suffix.as_str()) {
                return NameVerdict::Marker;
            }
        }
        if name.starts_with('.') || TEMP_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            return NameVerdict::Ignored(IgnoreReason::Temporary);
        }
        if self.config.patterns.iter().any(|p| glob_match(p, name)) {
            NameVerdict::Candidate
        } else {
            NameVerdict::Ignored(IgnoreReason::NoPattern)
        }
    }

    fn marker_present(&self, name: &str, names: &HashSet<&str>) -> bool {
        match &self.config.marker_suffix {
            None => true,
            Some(suffix) => names.contains(format!("{name}{suffix}").as_str()),
        }
    }
}

/// Updates what is known about a candidate from its latest listing entry. A
/// file first seen with an mtime older than `settle + min_age` has stood
/// still for longer than both rules ask (a write moves the mtime), so it
/// counts as confirmed and settled at once: `once` and a restarted daemon
/// take a backlog without waiting a settle interval. With both rules at zero
/// nothing is old, and two identical listings are still asked for.
fn observe(before: Option<Seen>, file: &RemoteFile, now_ms: i64, settled_age_ms: i64) -> Seen {
    match before {
        Some(Seen::Candidate {
            size,
            mtime,
            stable_since_ms,
            ..
        }) if size == file.size && mtime == file.mtime => Seen::Candidate {
            size,
            mtime,
            stable_since_ms,
            confirmed: true,
        },
        _ => {
            let mtime_ms = file.mtime.saturating_mul(1000);
            let old = before.is_none() && settled_age_ms > 0 && now_ms.saturating_sub(mtime_ms) >= settled_age_ms;
            Seen::Candidate {
                size: file.size,
                mtime: file.mtime,
                stable_since_ms: if old { mtime_ms } else { now_ms },
                confirmed: old,
            }
        }
    }
}

fn is_ready(seen: &Seen, now_ms: i64, settle_ms: i64, min_age_ms: i64) -> bool {
    match *seen {
        Seen::Candidate {
            mtime,
            stable_since_ms,
            confirmed,
            ..
        } => {
            confirmed
                && now_ms.saturating_sub(stable_since_ms) >= settle_ms
                && now_ms.saturating_sub(mtime.saturating_mul(1000)) >= min_age_ms
        }
        Seen::Ignored(_) => false,
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1000;
    /// A clock value far from zero so that ages are realistic.
    const T0: i64 = 1_700_000_000_000;

    fn f(name: &str, size: u64, mtime_s: i64) -> RemoteFile {
        RemoteFile {
            name: name.to_string(),
            size,
            mtime: mtime_s,
        }
    }

    fn names(files: &[RemoteFile]) -> Vec<&str> {
        files.iter().map(|f| f.name.as_str()).collect()
    }

    /// Settle 5 s, min age 10 s.
    fn selector() -> Selector {
        Selector::new(SelectConfig::default())
    }

    /// 12 s old at T0: past the minimum age, so only settle matters, and not
    /// old enough (15 s) to be taken at first sight.
    const OLD: i64 = T0 / 1000 - 12;

    #[test]
    fn first_listing_waits_for_a_file_younger_than_settle_plus_min_age() {
        let mut s = selector();
        assert!(s.ready(&[f("cdr_data_1.csv", 10, OLD)], T0).is_empty());
        assert!(s.pending());
    }

    #[test]
    fn first_listing_takes_a_file_older_than_settle_plus_min_age_at_once() {
        let mut s = selector();
        let l = [f("cdr_data_1.csv", 10, T0 / 1000 - 15), f("cdr_data_2.csv", 10, OLD)];
        assert_eq!(names(&s.ready(&l, T0)), ["cdr_data_1.csv"]);
        assert!(s.pending(), "the younger one may still become ready");
        assert_eq!(names(&s.ready(&l, T0 + 5 * SEC)), ["cdr_data_1.csv", "cdr_data_2.csv"]);
        assert!(!s.pending());
    }

    #[test]
    fn ready_after_settle_with_identical_size_and_mtime() {
        let mut s = selector();
        let l = [f("cdr_data_1.csv", 10, OLD)];
        assert!(s.ready(&l, T0).is_empty());
        assert!(s.ready(&l, T0 + 4 * SEC).is_empty(), "settle not elapsed");
        assert_eq!(names(&s.ready(&l, T0 + 5 * SEC)), ["cdr_data_1.csv"]);
        // Stays ready while present: deduplication is the ledger's job.
        assert_eq!(names(&s.ready(&l, T0 + 6 * SEC)), ["cdr_data_1.csv"]);
    }

    #[test]
    fn growing_file_is_not_ready_until_it_stops() {
        let mut s = selector();
        let mut now = T0;
        for size in [10, 20, 30, 40] {
            let got = s.ready(&[f("cdr_data_1.csv", size, OLD)], now);
            assert!(got.is_empty(), "size {size} still growing");
            now += 10 * SEC;
        }
        // Stopped growing at 40: first identical sighting restarts nothing, but
        // settle counts from when 40 was first seen (now - 10 s).
        assert_eq!(
            names(&s.ready(&[f("cdr_data_1.csv", 40, OLD)], now)),
            ["cdr_data_1.csv"]
        );
    }

    #[test]
    fn mtime_change_alone_resets_settle() {
        let mut s = selector();
        s.ready(&[f("cdr_data_1.csv", 10, OLD)], T0);
        assert!(s.ready(&[f("cdr_data_1.csv", 10, OLD + 1)], T0 + 6 * SEC).is_empty());
        assert!(s.ready(&[f("cdr_data_1.csv", 10, OLD + 1)], T0 + 10 * SEC).is_empty());
        assert_eq!(s.ready(&[f("cdr_data_1.csv", 10, OLD + 1)], T0 + 11 * SEC).len(), 1);
    }

    #[test]
    fn young_mtime_waits_for_min_age() {
        let mut s = selector();
        let mtime = T0 / 1000; // written "now"
        let l = [f("cdr_data_1.csv", 10, mtime)];
        s.ready(&l, T0);
        assert!(s.ready(&l, T0 + 6 * SEC).is_empty(), "settled but only 6 s old");
        assert!(s.ready(&l, T0 + 9_999).is_empty());
        assert_eq!(s.ready(&l, T0 + 10 * SEC).len(), 1);
    }

    #[test]
    fn future_mtime_is_not_ready() {
        let mut s = selector();
        let l = [f("cdr_data_1.csv", 10, T0 / 1000 + 3600)];
        s.ready(&l, T0);
        assert!(s.ready(&l, T0 + 60 * SEC).is_empty());
    }

    #[test]
    fn clock_going_backwards_does_not_make_files_ready() {
        let mut s = selector();
        let l = [f("cdr_data_1.csv", 10, OLD)];
        s.ready(&l, T0);
        assert!(s.ready(&l, T0 - 60 * SEC).is_empty());
    }

    #[test]
    fn zero_settle_and_age_still_need_a_second_listing() {
        let mut s = Selector::new(SelectConfig {
            settle: Duration::ZERO,
            min_age: Duration::ZERO,
            ..SelectConfig::default()
        });
        let l = [f("cdr_data_1.csv", 10, T0 / 1000)];
        assert!(s.ready(&l, T0).is_empty());
        assert_eq!(s.ready(&l, T0).len(), 1);
    }

    #[test]
    fn a_file_waiting_for_its_second_look_brings_the_next_listing_to_the_settle_interval() {
        let poll = Duration::from_secs(10);
        let mut s = selector();
        assert_eq!(s.next_listing(poll), poll, "nothing listed yet");
        s.ready(&[f("cdr_data_1.csv", 10, OLD)], T0);
        assert_eq!(s.next_listing(poll), DEFAULT_SETTLE);
        assert_eq!(
            s.next_listing(Duration::from_secs(2)),
            Duration::from_secs(2),
            "a shorter poll stands"
        );
        assert_eq!(s.ready(&[f("cdr_data_1.csv", 10, OLD)], T0 + 5 * SEC).len(), 1);
        assert_eq!(s.next_listing(poll), poll, "taken: nothing left to look at again");
    }

    #[test]
    fn a_zero_settle_interval_lists_again_after_a_floor_not_at_once() {
        let mut s = Selector::new(SelectConfig {
            settle: Duration::ZERO,
            min_age: Duration::ZERO,
            ..SelectConfig::default()
        });
        s.ready(&[f("cdr_data_1.csv", 10, T0 / 1000)], T0);
        assert_eq!(s.next_listing(Duration::from_secs(10)), RELIST_FLOOR);
    }

    #[test]
    fn disappearing_file_is_forgotten_and_starts_over() {
        let mut s = selector();
        let l = [f("cdr_data_1.csv", 10, OLD)];
        s.ready(&l, T0);
        s.ready(&[], T0 + SEC);
        assert_eq!(s.tracked(), 0);
        assert!(s.ready(&l, T0 + 2 * SEC).is_empty(), "reappeared: settle restarts");
        assert_eq!(s.ready(&l, T0 + 7 * SEC).len(), 1);
    }

    #[test]
    fn marker_mode_needs_the_marker_in_the_same_listing() {
        let mut s = Selector::new(SelectConfig {
            marker_suffix: Some(".done".into()),
            ..SelectConfig::default()
        });
        let data = f("cdr_data_1.csv", 10, OLD);
        let marker = f("cdr_data_1.csv.done", 0, OLD);
        s.ready(std::slice::from_ref(&data), T0);
        assert!(
            s.ready(std::slice::from_ref(&data), T0 + 6 * SEC).is_empty(),
            "no marker yet"
        );
        let got = s.ready(&[data.clone(), marker.clone()], T0 + 7 * SEC);
        assert_eq!(names(&got), ["cdr_data_1.csv"], "the marker itself is never taken");
        // Marker gone again: not ready.
        assert!(s.ready(std::slice::from_ref(&data), T0 + 8 * SEC).is_empty());
        // A marker without its file yields nothing.
        assert!(s.ready(&[marker], T0 + 9 * SEC).is_empty());
    }

    #[test]
    fn marker_mode_still_applies_settle() {
        let mut s = Selector::new(SelectConfig {
            marker_suffix: Some(".done".into()),
            ..SelectConfig::default()
        });
        let l = [f("cdr_data_1.csv", 10, OLD), f("cdr_data_1.csv.done", 0, OLD)];
        assert!(s.ready(&l, T0).is_empty());
        assert!(s.ready(&l, T0 + SEC).is_empty());
        assert_eq!(s.ready(&l, T0 + 5 * SEC).len(), 1);
    }

    #[test]
    fn temp_and_hidden_names_are_never_taken() {
        let mut s = Selector::new(SelectConfig {
            patterns: vec!["*".into()],
            ..SelectConfig::default()
        });
        let l: Vec<RemoteFile> = [
            ".cdr_data_1.csv",
            "cdr_data_1.csv.tmp",
            "cdr_data_1.csv.part",
            "cdr_data_1.csv.filepart",
            "cdr_data_1.csv~",
            "cdr_data_2.csv",
        ]
        .iter()
        .map(|n| f(n, 1, OLD))
        .collect();
        s.ready(&l, T0);
        assert_eq!(names(&s.ready(&l, T0 + 5 * SEC)), ["cdr_data_2.csv"]);
    }

    #[test]
    fn traversal_and_unsafe_names_are_rejected() {
        let mut s = Selector::new(SelectConfig {
            patterns: vec!["*".into()],
            ..SelectConfig::default()
        });
        let l: Vec<RemoteFile> = [
            "../cdr_data_1.csv",
            "sub/cdr_data_1.csv",
            "..\\cdr_data_1.csv",
            "cdr_data_\0.csv",
            "",
            "..",
            "cdr_data_ok.csv",
        ]
        .iter()
        .map(|n| f(n, 1, OLD))
        .collect();
        s.ready(&l, T0);
        assert_eq!(names(&s.ready(&l, T0 + 5 * SEC)), ["cdr_data_ok.csv"]);
        assert_eq!(s.verdict("a/b"), NameVerdict::Ignored(IgnoreReason::UnsafeName));
        assert_eq!(s.verdict("a\\b"), NameVerdict::Ignored(IgnoreReason::UnsafeName));
        assert_eq!(s.verdict(".."), NameVerdict::Ignored(IgnoreReason::UnsafeName));
        assert_eq!(s.verdict("a\0b"), NameVerdict::Ignored(IgnoreReason::UnsafeName));
    }

    #[test]
    fn names_never_taken_are_reported_with_their_reason() {
        let mut s = Selector::new(SelectConfig {
            marker_suffix: Some(".done".into()),
            ..SelectConfig::default()
        });
        let l = [
            f("readme.txt", 1, OLD),
            f("cdr_data_1.csv.part", 1, OLD),
            f("../cdr_data_2.csv", 1, OLD),
            f("cdr_data_3.csv", 1, OLD),
            f("cdr_data_3.csv.done", 0, OLD),
        ];
        assert_eq!(names(&s.ready(&l, T0 + 60 * SEC)), ["cdr_data_3.csv"]);
        let mut ignored: Vec<Ignored> = s.ignored().collect();
        ignored.sort();
        assert_eq!(
            ignored,
            [
                Ignored::new("../cdr_data_2.csv", IgnoreReason::UnsafeName),
                Ignored::new("cdr_data_1.csv.part", IgnoreReason::Temporary),
                Ignored::new("readme.txt", IgnoreReason::NoPattern),
            ],
            "the marker is not ignored: it is read"
        );
        assert_eq!(s.tracked(), 5);
    }

    #[test]
    fn routing_is_by_prefix_not_substring() {
        let s = selector();
        assert_eq!(
            s.verdict("old_cdr_data_1.csv"),
            NameVerdict::Ignored(IgnoreReason::NoPattern)
        );
        assert_eq!(s.verdict("cdr_voice_1.csv.gz"), NameVerdict::Candidate);
        assert_eq!(
            s.verdict("cdr_voice_1.csv.bz2"),
            NameVerdict::Ignored(IgnoreReason::NoPattern)
        );
    }

    #[test]
    fn output_is_sorted_by_name_whatever_the_listing_order() {
        let mut s = selector();
        let l = [
            f("cdr_voice_20240101_000000.csv", 1, OLD),
            f("cdr_data_20240102_000000.csv", 1, OLD),
            f("cdr_data_20240101_000000.csv.gz", 1, OLD),
            f("cdr_data_20240101_000000.csv", 1, OLD),
        ];
        s.ready(&l, T0);
        assert_eq!(
            names(&s.ready(&l, T0 + 5 * SEC)),
            [
                "cdr_data_20240101_000000.csv",
                "cdr_data_20240101_000000.csv.gz",
                "cdr_data_20240102_000000.csv",
                "cdr_voice_20240101_000000.csv",
            ]
        );
    }

    #[test]
    fn only_the_changed_file_waits_again() {
        let mut s = selector();
        s.ready(&[f("cdr_data_1.csv", 1, OLD), f("cdr_data_2.csv", 1, OLD)], T0);
        let got = s.ready(
            &[f("cdr_data_1.csv", 1, OLD), f("cdr_data_2.csv", 2, OLD)],
            T0 + 5 * SEC,
        );
        assert_eq!(names(&got), ["cdr_data_1.csv"]);
    }

    #[test]
    fn hundred_thousand_entries_tracked_and_forgotten() {
        let mut s = selector();
        let l: Vec<RemoteFile> = (0..100_000)
            .map(|i| f(&format!("cdr_data_{i:06}.csv"), i, OLD))
            .collect();
        assert!(s.ready(&l, T0).is_empty());
        assert_eq!(s.tracked(), 100_000);
        let got = s.ready(&l, T0 + 5 * SEC);
        assert_eq!(got.len(), 100_000);
        assert!(got.windows(2).all(|w| w[0].name < w[1].name));
        s.ready(&l[..10], T0 + 6 * SEC);
        assert_eq!(s.tracked(), 10);
    }
}
