//! librdkafka's own log lines and client errors, into our log once per
//! change of state.
//!
//! During an outage every client (one producer per slot, the probe, the
//! group's consumer) reports the same failure at every reconnect attempt,
//! through both its log and its error callback: dozens of identical lines a
//! minute that bury the one that matters. Each distinct message is logged
//! when it appears; while it keeps repeating it is held back, and it is
//! logged again, with how many repeats were held back, once it has been
//! quiet for [`QUIET`] or after [`REMIND`] of repeating.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

/// A message unseen for this long is a new state when it comes back.
const QUIET: Duration = Duration::from_secs(60);

/// A message repeating without a pause is logged again this often, so a
/// long outage stays visible in a log read from its end.
const REMIND: Duration = Duration::from_secs(600);

/// Distinct messages remembered; beyond it the oldest are forgotten.
const REMEMBERED: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Seen {
    logged: Instant,
    last: Instant,
    held_back: u64,
}

/// The messages seen lately, by their text without the parts that change
/// at every repeat.
#[derive(Debug, Default)]
struct Repeats {
    seen: HashMap<String, Seen>,
}

impl Repeats {
    /// Whether to log `message` now, and how many repeats of it were held
    /// back since it was last logged.
    fn admit(&mut self, message: &str, now: Instant) -> Option<u64> {
        let key = stable_part(message).to_owned();
        if let Some(s) = self.seen.get_mut(&key) {
            let quiet = now.saturating_duration_since(s.last) >= QUIET;
            let remind = now.saturating_duration_since(s.logged) >= REMIND;
            s.last = now;
            if !(quiet || remind) {
                s.held_back += 1;
                return None;
            }
            let held_back = s.held_back;
            s.logged = now;
            s.held_back = 0;
            return Some(held_back);
        }
        if self.seen.len() >= REMEMBERED {
            self.seen.retain(|_, s| now.saturating_duration_since(s.last) < QUIET);
            if self.seen.len() >= REMEMBERED {
                self.seen.clear();
            }
        }
        self.seen.insert(
            key,
            Seen {
                logged: now,
                last: now,
                held_back: 0,
            },
        );
        Some(0)
    }
}

/// The message without what differs between its two callbacks and its
/// repeats: the log line's thread prefix (`[thrd:127.0.0.1:9092/1]: `), the
/// same failure's error-callback text lacks it; and what librdkafka appends
/// at every repeat (`(after 0ms in state CONNECT, 3 identical error(s)
/// suppressed)`).
fn stable_part(message: &str) -> &str {
    let message = match message.strip_prefix("[thrd:") {
        Some(rest) => rest.split_once("]: ").map_or(message, |(_, m)| m),
        None => message,
    };
    message.split(" (after ").next().unwrap_or(message)
}

static REPEATS: Mutex<Option<Repeats>> = Mutex::new(None);

fn admit(message: &str) -> Option<u64> {
    let mut repeats = REPEATS.lock().unwrap_or_else(PoisonError::into_inner);
    repeats
        .get_or_insert_with(Repeats::default)
        .admit(message, Instant::now())
}

/// A librdkafka log line, under the `librdkafka` target; warnings and
/// errors once per change of state, the rest (debug) as they come.
pub(crate) fn forward_log(level: RDKafkaLogLevel, fac: &str, log_message: &str) {
    let serious = matches!(
        level,
        RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning
    );
    if !serious {
        tracing::debug!(target: "librdkafka", "{fac}: {log_message}");
        return;
    }
    let Some(held_back) = admit(log_message) else {
        return;
    };
    if matches!(level, RDKafkaLogLevel::Warning) {
        tracing::warn!(target: "librdkafka", held_back, "{fac}: {log_message}");
    } else {
        tracing::error!(target: "librdkafka", held_back, "{fac}: {log_message}");
    }
}

/// A client error (`ClientContext::error`) of the client `what`, once per
/// change of state.
pub(crate) fn client_error(what: &str, error: &KafkaError, reason: &str) {
    if let Some(held_back) = admit(reason) {
        tracing::warn!(target: "librdkafka", %error, held_back, "{what}: {reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSED: &str = "127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed: Connection refused";

    #[test]
    fn a_repeating_error_is_logged_once_then_again_after_a_pause_with_its_repeats() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        assert_eq!(r.admit(&format!("{REFUSED} (after 0ms in state CONNECT)"), t0), Some(0));
        for i in 1..=30 {
            let later = t0 + Duration::from_secs(i);
            let repeat = format!("{REFUSED} (after {i}ms in state CONNECT, 1 identical error(s) suppressed)");
            assert_eq!(r.admit(&repeat, later), None, "repeat {i} held back");
        }
        assert_eq!(
            r.admit("other broker down", t0 + Duration::from_secs(31)),
            Some(0),
            "a different message is a new state"
        );
        // Quiet for a minute, then back: a new outage, logged with the count.
        assert_eq!(r.admit(REFUSED, t0 + Duration::from_secs(100)), Some(30));
        assert_eq!(r.admit(REFUSED, t0 + Duration::from_secs(101)), None);
    }

    #[test]
    fn the_log_line_and_the_error_callback_of_one_failure_are_one_message() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        let logged = format!("[thrd:127.0.0.1:9092/1]: {REFUSED} (after 0ms in state CONNECT)");
        assert_eq!(r.admit(&logged, t0), Some(0));
        assert_eq!(r.admit(&format!("{REFUSED} (after 0ms in state CONNECT)"), t0), None);
    }

    #[test]
    fn a_long_outage_is_recalled_every_ten_minutes() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        assert_eq!(r.admit(REFUSED, t0), Some(0));
        let mut logged = 0;
        for s in 1..=1200 {
            if r.admit(REFUSED, t0 + Duration::from_secs(s)).is_some() {
                logged += 1;
            }
        }
        assert_eq!(logged, 2, "at 600 s and 1200 s");
    }

    #[test]
    fn memory_is_bounded_by_distinct_messages() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        for i in 0..10 * REMEMBERED {
            r.admit(&format!("message {i}"), t0);
        }
        assert!(r.seen.len() <= REMEMBERED);
    }
}
