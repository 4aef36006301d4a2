//! librdkafka's own log lines and client errors, into our log once per
//! change of state.
//!
//! During an outage every client (one producer per slot, the probe, the
//! group's consumer) reports the same failure at every reconnect attempt,
//! through both its log and its error callback: dozens of identical lines a
//! minute that bury the one that matters. Each distinct message is logged
//! when it appears; while it keeps repeating it is held back, and it is
//! logged again, with how many repeats were held back, once it has been
//! quiet for a minute or after ten minutes of repeating.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

use super::certificate;

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

/// The latest warning or error any client reported, logged or held back:
/// what a generic `BrokerTransportFailure` came from.
static LAST: Mutex<Option<String>> = Mutex::new(None);

/// The latest authorization failure a client logged, and when, preferring
/// one that names its resource: a transaction the broker refused fails
/// its records as merely "purged", and only the log says which topic.
static DENIED: Mutex<Option<(String, Instant)>> = Mutex::new(None);

/// A denial older than this is not the cause of a failure now.
const DENIAL_FRESH: Duration = Duration::from_secs(120);

/// The authorization failure a client logged lately, if any.
pub fn denial() -> Option<String> {
    let denied = DENIED.lock().unwrap_or_else(PoisonError::into_inner);
    denied
        .as_ref()
        .filter(|(_, at)| at.elapsed() < DENIAL_FRESH)
        .map(|(message, _)| message.clone())
}

fn note_denial(message: &str) {
    if !normalized(message).contains("authorizationfailed") {
        return;
    }
    let mut denied = DENIED.lock().unwrap_or_else(PoisonError::into_inner);
    let names = |m: &str| m.contains('"');
    let keep = denied
        .as_ref()
        .is_some_and(|(old, at)| names(old) && !names(message) && at.elapsed() < DENIAL_FRESH);
    if !keep {
        *denied = Some((stable_part(message).to_owned(), Instant::now()));
    }
}

/// Lower case without spaces: librdkafka names an error code both as
/// `TopicAuthorizationFailed` and as "Topic authorization failed".
fn normalized(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

fn admit(message: &str) -> Option<u64> {
    note_denial(message);
    // "1/1 brokers are down" follows every refusal: the refusal is the news.
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    if !message.contains("brokers are down") || last.is_none() {
        *last = Some(stable_part(message).to_owned());
    }
    drop(last);
    let mut repeats = REPEATS.lock().unwrap_or_else(PoisonError::into_inner);
    repeats
        .get_or_insert_with(Repeats::default)
        .admit(message, Instant::now())
}

/// What the clients last reported, with what to check when it is a known
/// cause: librdkafka's requests fail with a bare `BrokerTransportFailure`
/// whatever refused the connection, and the reason is only in its log.
pub fn diagnosis() -> Option<String> {
    let last = LAST.lock().unwrap_or_else(PoisonError::into_inner).clone()?;
    let hint = hint(&last);
    if hint == Some(UNTRUSTED) {
        let names = broker_of(&last).and_then(|b| Some((b, certificate::names_when_only_the_name_fails(b)?)));
        if let Some((broker, names)) = names {
            return Some(format!(
                "the broker {broker} presents a TLS certificate signed by a trusted CA that names {}, not the host it was reached by: connect by one of those names (--brokers / KAFKA_BROKERS, and the brokers' advertised listeners) (the client said: {last})",
                names.join(", ")
            ));
        }
    }
    Some(match hint {
        Some(hint) => format!("{hint} (the client said: {last})"),
        None => format!("the client said: {last}"),
    })
}

/// The broker a librdkafka message is about (`sasl_ssl://host:port/1: ...`).
fn broker_of(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("://")?;
    rest.split('/').next().filter(|b| b.contains(':'))
}

/// What librdkafka says of a certificate it could not verify, whether the
/// CA or the name failed.
const UNTRUSTED: &str =
    "the broker's TLS certificate could not be verified: check that KAFKA_CONFIG_SSL_CA_LOCATION names the CA that signed it";

/// Whether the brokers answered and refused this client (its login or its
/// trust in their certificate): no wait helps, unlike an outage.
pub fn refused() -> bool {
    let last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    last.as_deref()
        .and_then(hint)
        .is_some_and(|h| h.contains("SASL login") || h.contains("TLS certificate"))
}

/// What to check for the failures an operator can fix in the settings.
fn hint(reason: &str) -> Option<&'static str> {
    let has = |s: &str| reason.contains(s);
    Some(if has("SASL authentication error") || has("Authentication failed") {
        "the brokers refused the SASL login: check the user and password (KAFKA_CONFIG_SASL_USERNAME, KAFKA_CONFIG_SASL_PASSWORD) and the mechanism (KAFKA_CONFIG_SASL_MECHANISM)"
    } else if has("ostname") && (has("mismatch") || has("verif")) {
        "the broker's TLS certificate does not name the host in --brokers: connect by a name the certificate lists"
    } else if has("certificate verify failed") || has("could not be verified") {
        UNTRUSTED
    } else if has("security.protocol") || has("SSL handshake") && has("wrong version") {
        "the listener speaks another protocol than KAFKA_CONFIG_SECURITY_PROTOCOL (plaintext against TLS, or the reverse)"
    } else if has("brokers are down") {
        "every broker closed the connection without a word: check that KAFKA_CONFIG_SECURITY_PROTOCOL is what the listener speaks (e.g. SASL_SSL) and that --brokers names a listener for clients"
    } else if has("Connection refused") {
        "nothing listens at that address: check --brokers / KAFKA_BROKERS"
    } else if has("Failed to resolve") {
        "a broker's host name does not resolve: check --brokers / KAFKA_BROKERS"
    } else {
        return None;
    })
}

/// For an error naming a Kafka authorization failure: which ACL is missing
/// (docs/operations.md lists each mode's, as commands).
pub fn acl_hint(error: &str) -> Option<&'static str> {
    let error = normalized(error);
    let has = |s: &str| error.contains(s);
    Some(if has("topicauthorizationfailed") {
        "a topic ACL is missing for this principal: CREATE, DESCRIBE, WRITE and DESCRIBE_CONFIGS on the topics named above (and READ on the checkpoint and assignment topics); see docs/operations.md, Secured brokers"
    } else if has("transactionalidauthorizationfailed") {
        "the principal needs WRITE and DESCRIBE on the transactional ids prefixed with --transactional-id-prefix; see docs/operations.md, Secured brokers"
    } else if has("groupauthorizationfailed") {
        "the principal needs READ on the consumer group (the --group name, and the groups prefixed cdr-to-redpanda-); see docs/operations.md, Secured brokers"
    } else if has("clusterauthorizationfailed") {
        "the principal lacks a cluster ACL this request needs; see docs/operations.md, Secured brokers"
    } else {
        return None;
    })
}

/// The context of the service's short-lived clients (admin requests,
/// metadata probes): their log lines and errors go where the producers' go.
pub struct Logged;

impl ClientContext for Logged {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error("client", &error, reason);
    }
}

impl ConsumerContext for Logged {}

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
    fn each_refusal_an_operator_can_fix_has_its_hint() {
        let cases = [
            ("sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512", "SASL login"),
            ("sasl_ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA certificates are installed", "KAFKA_CONFIG_SSL_CA_LOCATION"),
            ("sasl_ssl://localhost6:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: Hostname mismatch", "does not name the host"),
            ("127.0.0.1:9093/bootstrap: Disconnected while requesting ApiVersion: might be caused by incorrect security.protocol configuration (connecting to a SSL listener?) or broker version is < 0.10", "another protocol"),
            ("127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused", "nothing listens"),
        ];
        for (reason, want) in cases {
            let hint = hint(reason).unwrap_or_else(|| panic!("no hint for {reason}"));
            assert!(hint.contains(want), "{reason}: {hint}");
        }
        assert_eq!(hint("Broker: Not leader for partition"), None);
    }

    #[test]
    fn an_authorization_failure_names_the_acl_to_add() {
        let hint = acl_hint("creating topic cdr-data: TopicAuthorizationFailed (Broker: Topic authorization failed)");
        assert!(hint.is_some_and(|h| h.contains("CREATE")));
        let hint = acl_hint("init: TransactionalIdAuthorizationFailed (Broker: Transactional Id authorization failed)");
        assert!(hint.is_some_and(|h| h.contains("--transactional-id-prefix")));
        let hint =
            acl_hint(r#"Failed to add partition "cdr-voice" [1] to transaction: Broker: Topic authorization failed"#);
        assert!(hint.is_some_and(|h| h.contains("WRITE")));
        assert_eq!(acl_hint("BrokerTransportFailure"), None);
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
