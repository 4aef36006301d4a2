//! Values that must never be printed. A [`Secret`] and the value of a
//! secret-named [`Property`] show as `***` in Debug and Display, so a config
//! struct can derive `Debug` and a new secret field is masked by its type,
//! not by somebody remembering to.
//!
//! Other code may still echo a secret it was handed: librdkafka's errors
//! quote the property they refuse, with its value. So every secret that
//! enters through these types is also remembered, and [`scrub`] masks each
//! remembered value in any text: the error line and every log line pass
//! through it.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};

/// Secret values seen so far, for [`scrub`].
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Shorter values are not scrubbed: masking every occurrence of one or two
/// characters would garble the text and hide nothing.
const SCRUB_MIN_LEN: usize = 3;

fn seen() -> MutexGuard<'static, Vec<String>> {
    // A panic while holding it left a list that is still whole.
    SEEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Remembers `value` as a secret for [`scrub`]; a JAAS configuration's own
/// `password="..."` is remembered apart too, as messages may quote it alone.
fn remember(value: &str) {
    let mut seen = seen();
    let mut add = |v: &str| {
        if v.len() >= SCRUB_MIN_LEN && !seen.iter().any(|s| s == v) {
            seen.push(v.to_string());
        }
    };
    add(value);
    for part in value.split("password=").skip(1) {
        let quoted = part.trim_start_matches(['"', '\'']);
        let end = quoted.find(['"', '\'', ';', ' ']).unwrap_or(quoted.len());
        add(&quoted[..end]);
    }
}

/// `text` with every remembered secret value replaced by `***`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let seen = seen();
    if !seen.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    // Longest first, so a value containing another is masked whole.
    let mut values: Vec<&String> = seen.iter().collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = text.to_string();
    for v in values {
        out = out.replace(v.as_str(), MASK);
    }
    Cow::Owned(out)
}

/// What a masked value prints as.
pub const MASK: &str = "***";

/// A password, passphrase or token. Only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value (and remembers it for [`scrub`]).
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        remember(&value);
        Secret(value)
    }

    /// The value, for the one call that needs it (an authentication).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(s))
    }
}

/// Whether a property named `key` holds a secret: a password, a secret, a
/// token, a JAAS configuration (which embeds a password), a credential or
/// private key material.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "jaas",
        "credential",
        "private",
        "key.pem",
        "oauthbearer.config",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// A pass-through client property, `key=value`; its value is masked when
/// the key names a secret ([`is_secret_key`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Property {
    /// The property's name, e.g. `sasl.mechanism`.
    pub key: String,
    /// Its value, as given.
    pub value: String,
}

impl Property {
    /// A property `key=value`; a secret one's value is remembered for [`scrub`].
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        let p = Property {
            key: key.into(),
            value: value.into(),
        };
        if is_secret_key(&p.key) {
            remember(&p.value);
        }
        p
    }

    /// The value as it may be shown: masked when the key names a secret.
    pub fn shown_value(&self) -> &str {
        if is_secret_key(&self.key) {
            MASK
        } else {
            &self.value
        }
    }
}

impl fmt::Debug for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.shown_value())
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.shown_value())
    }
}

impl FromStr for Property {
    type Err = String;

    /// `KEY=VALUE`, the key not empty. The error never echoes the input:
    /// a mistyped property may be a password.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok(Property::new(k.trim(), v)),
            Some(_) => Err("expected KEY=VALUE, the key is empty".into()),
            None => Err("expected KEY=VALUE, found no '='".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_its_value() {
        let s: Secret = "hunter2".parse().unwrap();
        assert_eq!(format!("{s:?} {s} {s:#?}"), "*** *** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn secret_named_properties_are_masked_and_others_shown() {
        for key in [
            "sasl.password",
            "sasl.jaas.config",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "basic.auth.user.info.token",
        ] {
            let p = Property::new(key, "hunter2");
            assert_eq!(format!("{p:?} {p}"), format!("{key}=*** {key}=***"));
        }
        let p: Property = "sasl.mechanism=SCRAM-SHA-512".parse().unwrap();
        assert_eq!(format!("{p}"), "sasl.mechanism=SCRAM-SHA-512");
        assert!("=x".parse::<Property>().is_err());
        assert!("novalue".parse::<Property>().is_err());
    }

    #[test]
    fn remembered_secrets_are_scrubbed_from_any_text_even_inside_a_jaas_config() {
        let jaas =
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="svc" password="jaas-pw-42";"#;
        let _ = Property::new("sasl.jaas.config", jaas);
        let _ = Secret::new("sftp-pw-42");
        let _ = Property::new("acks", "all");
        let text = format!("Client config error: No such configuration property sasl.jaas.config {jaas}; sftp-pw-42; jaas-pw-42; acks=all");
        let clean = scrub(&text);
        for leak in ["jaas-pw-42", "sftp-pw-42", "ScramLoginModule"] {
            assert!(!clean.contains(leak), "{clean}");
        }
        assert!(clean.contains("acks=all"), "only secrets are masked: {clean}");
        assert_eq!(scrub("nothing secret"), "nothing secret");
    }

    #[test]
    fn a_malformed_property_error_does_not_echo_its_value() {
        let err = "sasl.password hunter2".parse::<Property>().unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
