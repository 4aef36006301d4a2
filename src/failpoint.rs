//! Crash injection for the crash-torture tests.
//!
//! `CDR_FAILPOINTS=name=N[,name=N...]` makes the process abort (no cleanup,
//! no flush, like SIGKILL) the N-th time execution reaches `hit("name")`;
//! `name=N:panic` panics there instead, as a bug would.
//! Compiled only with the `failpoints` feature (the test script turns it on);
//! without it a hit is nothing, so a release binary cannot be made to abort.

/// Aborts the process if the failpoint `name` is armed and this is its N-th hit.
pub fn hit(name: &str) {
    #[cfg(feature = "failpoints")]
    armed::hit(name);
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

#[cfg(feature = "failpoints")]
mod armed {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    /// The hit to fire at, its count so far, and whether to panic.
    type Armed = HashMap<String, (u64, AtomicU64, bool)>;

    static ARMED: OnceLock<Armed> = OnceLock::new();

    fn armed() -> &'static Armed {
        ARMED.get_or_init(|| {
            let spec = std::env::var("CDR_FAILPOINTS").unwrap_or_default();
            spec.split(',')
                .filter_map(|item| {
                    let (name, n) = item.trim().split_once('=').unwrap_or((item.trim(), "1"));
                    let (n, panics) = n.strip_suffix(":panic").map_or((n, false), |n| (n, true));
                    let n = n.parse().ok()?;
                    (!name.is_empty()).then(|| (name.to_string(), (n, AtomicU64::new(0), panics)))
                })
                .collect()
        })
    }

    pub(super) fn hit(name: &str) {
        if let Some((at, count, panics)) = armed().get(name) {
            if count.fetch_add(1, Ordering::Relaxed) + 1 == *at {
                if *panics {
                    panic!("failpoint {name} reached");
                }
                eprintln!("failpoint {name} reached: aborting");
                std::process::abort();
            }
        }
    }
}

/// Every failpoint the code defines, for the torture test to choose from.
pub const ALL: &[&str] = &[
    "after-intent-before-begin",
    "mid-chunk",
    "after-produce-before-commit",
    "after-commit-before-ledger",
    "after-ledger-before-action",
    "mid-download",
];
