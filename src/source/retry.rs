//! How long to wait before retrying a transient source failure.
//!
//! Sources reconnect once on their own when a kept-alive session turns out to
//! be dead; anything beyond that is the caller's loop, which sleeps
//! `backoff(attempt)` between tries so that a restarting SFTP server is not
//! hammered and many instances do not retry in lockstep.

use std::time::Duration;

use rand::Rng;

/// First retry waits about this long.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);

/// No retry waits longer than this: an SFTP server that comes back is picked up
/// within a minute.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Delay before retry number `attempt` (0 for the first retry): exponential
/// growth from [`BACKOFF_BASE`] up to [`BACKOFF_CAP`], with "equal jitter" —
/// half of the step is fixed, the other half random — so waits never collapse
/// to zero yet instances spread out.
pub fn backoff(attempt: u32) -> Duration {
    let step = exponential_step(attempt);
    let half = step / 2;
    let jitter_ms = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter_ms)
}

/// The un-jittered step for `attempt`: `BACKOFF_BASE * 2^attempt`, capped.
fn exponential_step(attempt: u32) -> Duration {
    exponential(BACKOFF_BASE, BACKOFF_CAP, attempt)
}

/// `base * 2^attempt`, at most `cap`.
pub fn exponential(base: Duration, cap: Duration, attempt: u32) -> Duration {
    // Clamping the shift avoids overflow; the cap binds long before.
    let factor = 1u32 << attempt.min(16);
    base.saturating_mul(factor).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_jitter_bounds() {
        for attempt in 0..10 {
            let step = exponential_step(attempt);
            for _ in 0..50 {
                let d = backoff(attempt);
                assert!(d >= step / 2, "attempt {attempt}: {d:?} < half of {step:?}");
                assert!(d <= step, "attempt {attempt}: {d:?} > {step:?}");
            }
        }
        assert_eq!(exponential_step(0), Duration::from_millis(500));
        assert_eq!(exponential_step(1), Duration::from_secs(1));
        assert_eq!(exponential_step(3), Duration::from_secs(4));
    }

    #[test]
    fn backoff_is_capped_for_huge_attempt_numbers() {
        assert_eq!(exponential_step(7), BACKOFF_CAP);
        assert_eq!(exponential_step(u32::MAX), BACKOFF_CAP);
        assert!(backoff(u32::MAX) <= BACKOFF_CAP);
    }
}
