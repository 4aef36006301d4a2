//! One policy for every retry loop: waits that grow exponentially from a
//! base up to a cap, with "equal jitter" (half of each step fixed, the other
//! half random), so a restarting SFTP server or broker is not hammered and
//! many instances do not retry in lockstep, yet waits never collapse to zero.

use std::time::Duration;

use rand::Rng;

/// Exponential waits from `base`, at most `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first retry waits about this long.
    pub base: Duration,
    /// No retry waits longer than this.
    pub cap: Duration,
}

impl Backoff {
    /// A server that went away (SFTP reconnects, a broker behind a chunk's
    /// replay, an abort, the start-up wait): one that comes back is picked up
    /// within a minute.
    pub const TRANSIENT: Backoff = Backoff {
        base: Duration::from_millis(500),
        cap: Duration::from_secs(60),
    };

    /// A broker call that librdkafka calls retriable (`init_transactions`,
    /// `commit_transaction`): retried in place a few times, so the waits stay
    /// within the transaction timeout.
    pub const IN_CALL: Backoff = Backoff {
        base: Duration::from_millis(200),
        cap: Duration::from_secs(2),
    };

    /// No wait at all: for tests of the loops themselves.
    pub const NONE: Backoff = Backoff {
        base: Duration::ZERO,
        cap: Duration::ZERO,
    };

    /// The un-jittered step before retry number `attempt` (0 for the first
    /// retry): `base * 2^attempt`, at most `cap`.
    pub fn step(&self, attempt: u32) -> Duration {
        // Clamping the shift avoids overflow; the cap binds long before.
        let factor = 1u32 << attempt.min(16);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The jittered wait before retry number `attempt`: between half the
    /// step and the step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let step = self.step(attempt);
        let half = step / 2;
        let jitter_ms = rand::rng().random_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter_ms)
    }
}

/// [`Backoff::TRANSIENT`]'s wait before retry number `attempt`.
pub fn backoff(attempt: u32) -> Duration {
    Backoff::TRANSIENT.delay(attempt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_jitter_bounds() {
        let b = Backoff::TRANSIENT;
        for attempt in 0..10 {
            let step = b.step(attempt);
            for _ in 0..50 {
                let d = b.delay(attempt);
                assert!(d >= step / 2, "attempt {attempt}: {d:?} < half of {step:?}");
                assert!(d <= step, "attempt {attempt}: {d:?} > {step:?}");
            }
        }
        assert_eq!(b.step(0), Duration::from_millis(500));
        assert_eq!(b.step(1), Duration::from_secs(1));
        assert_eq!(b.step(3), Duration::from_secs(4));
    }

    #[test]
    fn backoff_is_capped_for_huge_attempt_numbers() {
        let b = Backoff::TRANSIENT;
        assert_eq!(b.step(7), b.cap);
        assert_eq!(b.step(u32::MAX), b.cap);
        assert!(b.delay(u32::MAX) <= b.cap);
        assert_eq!(Backoff::NONE.delay(5), Duration::ZERO);
    }
}
