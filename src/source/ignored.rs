//! The directory entries that are never taken, and why.
//!
//! A file that sits in the drop directory and is never ingested must not be
//! invisible: each one is logged once while it stays (not once per process
//! start), counted per reason in `cdr_files_ignored`, and written to the
//! ledger for `status`. The source reports what it cannot hand over (a name
//! that is not UTF-8, a symlink, a device); the selector what it will not
//! take (a name matching no pattern, a transfer's temporary file).

use std::collections::BTreeMap;
use std::fmt;

/// Why a listed entry is never taken. The README's "Files that are never
/// taken" table lists these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IgnoreReason {
    /// Not a plain file name (a path separator, NUL, `.` or `..`).
    UnsafeName,
    /// The name is not valid UTF-8.
    NotUtf8,
    /// A symbolic link, and `--follow-symlinks` is off (or it points at no
    /// regular file).
    Symlink,
    /// A FIFO, socket or device.
    NotRegular,
    /// The server listed it without a size or modification time.
    NoAttributes,
    /// A plain name that matches no file pattern.
    NoPattern,
    /// A dotfile or a transfer tool's temporary file (`.tmp`, `.part`,
    /// `.filepart`, `~`): expected while uploads run, so logged at debug.
    Temporary,
}

impl IgnoreReason {
    /// Every reason, in the order they are reported.
    pub const ALL: [IgnoreReason; 7] = [
        IgnoreReason::UnsafeName,
        IgnoreReason::NotUtf8,
        IgnoreReason::Symlink,
        IgnoreReason::NotRegular,
        IgnoreReason::NoAttributes,
        IgnoreReason::NoPattern,
        IgnoreReason::Temporary,
    ];

    /// The label used in the metric, the ledger and `status --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::UnsafeName => "unsafe-name",
            IgnoreReason::NotUtf8 => "not-utf8",
            IgnoreReason::Symlink => "symlink",
            IgnoreReason::NotRegular => "not-a-regular-file",
            IgnoreReason::NoAttributes => "no-size-or-mtime",
            IgnoreReason::NoPattern => "no-pattern",
            IgnoreReason::Temporary => "temporary",
        }
    }

    /// The label back, as the ledger stores it.
    pub fn parse(label: &str) -> Option<IgnoreReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == label)
    }

    /// What an operator reads in the log line.
    fn explain(self) -> &'static str {
        match self {
            IgnoreReason::UnsafeName => "not a plain file name (path separator, NUL, `.` or `..`): never taken",
            IgnoreReason::NotUtf8 => "the name is not valid UTF-8: never taken; rename it",
            IgnoreReason::Symlink => {
                "a symbolic link: never taken unless --follow-symlinks is set and it points at a regular file"
            }
            IgnoreReason::NotRegular => "not a regular file (FIFO, socket or device): never taken",
            IgnoreReason::NoAttributes => "the server lists it without a size or mtime: never taken",
            IgnoreReason::NoPattern => "the name matches no file pattern (--patterns or a declared kind)",
            IgnoreReason::Temporary => "a dotfile or a transfer's temporary file: taken once renamed",
        }
    }
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry that is not taken. A name that is not UTF-8 is kept lossily
/// (U+FFFD for each bad byte), enough to find it with `ls`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ignored {
    /// The name as listed.
    pub name: String,
    /// Why it is not taken.
    pub reason: IgnoreReason,
}

impl Ignored {
    /// `name` not taken for `reason`.
    pub fn new(name: impl Into<String>, reason: IgnoreReason) -> Self {
        Ignored {
            name: name.into(),
            reason,
        }
    }
}

/// The ignored entries of the latest listing, remembered so that each is
/// logged once while it stays in the directory. Holds only the current set.
#[derive(Debug, Default)]
pub struct IgnoredFiles {
    /// `None` until the first listing.
    current: Option<BTreeMap<String, IgnoreReason>>,
}

impl IgnoredFiles {
    /// Takes the ignored entries of a new listing: logs those not in the
    /// previous one, and returns the whole set when it changed or is the
    /// first (for the ledger and the metric), `None` when it is the same as
    /// before.
    pub fn update(&mut self, entries: impl IntoIterator<Item = Ignored>) -> Option<&BTreeMap<String, IgnoreReason>> {
        let next: BTreeMap<String, IgnoreReason> = entries.into_iter().map(|i| (i.name, i.reason)).collect();
        if self.current.as_ref() == Some(&next) {
            return None;
        }
        let before = self.current.take().unwrap_or_default();
        for (name, reason) in &next {
            if before.get(name) != Some(reason) {
                log(name, *reason);
            }
        }
        Some(self.current.insert(next))
    }
}

/// Counts per reason, every reason present (0 when none).
pub fn counts<'a>(reasons: impl IntoIterator<Item = &'a IgnoreReason>) -> BTreeMap<IgnoreReason, u64> {
    let mut counts: BTreeMap<IgnoreReason, u64> = IgnoreReason::ALL.into_iter().map(|r| (r, 0)).collect();
    for r in reasons {
        *counts.entry(*r).or_default() += 1;
    }
    counts
}

fn log(name: &str, reason: IgnoreReason) {
    let name = name.escape_debug();
    match reason {
        IgnoreReason::Temporary => tracing::debug!(%name, %reason, "not taking a file: {}", reason.explain()),
        IgnoreReason::NoPattern => tracing::info!(%name, %reason, "not taking a file: {}", reason.explain()),
        _ => tracing::warn!(%name, %reason, "not taking a file: {}", reason.explain()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_set_is_returned_and_the_same_set_is_not() {
        let mut t = IgnoredFiles::default();
        assert_eq!(t.update([]).map(|m| m.len()), Some(0), "the first set is always new");
        let a = Ignored::new("link.csv", IgnoreReason::Symlink);
        let b = Ignored::new("notes.txt", IgnoreReason::NoPattern);
        assert_eq!(t.update([a.clone()]).map(|m| m.len()), Some(1));
        assert!(t.update([a.clone()]).is_none(), "unchanged: nothing to write");
        assert_eq!(t.update([a.clone(), b]).map(|m| m.len()), Some(2));
        assert_eq!(t.update([a]).map(|m| m.len()), Some(1), "a name that left is dropped");
        assert_eq!(t.update([]).map(|m| m.len()), Some(0));
    }

    #[test]
    fn counts_have_every_reason() {
        let c = counts(&[IgnoreReason::Symlink, IgnoreReason::Symlink, IgnoreReason::NotUtf8]);
        assert_eq!(c.len(), IgnoreReason::ALL.len());
        assert_eq!(c[&IgnoreReason::Symlink], 2);
        assert_eq!(c[&IgnoreReason::NotUtf8], 1);
        assert_eq!(c[&IgnoreReason::NoPattern], 0);
    }

    #[test]
    fn labels_round_trip() {
        for r in IgnoreReason::ALL {
            assert_eq!(IgnoreReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(IgnoreReason::parse("other"), None);
    }
}
