//! Values that must never be printed. A [`Secret`] and the value of a
//! secret-named [`Property`] show as `***` in Debug and Display, so a config
//! struct can derive `Debug` and a new secret field is masked by its type,
//! not by somebody remembering to.

use std::fmt;
use std::str::FromStr;

/// What a masked value prints as.
pub const MASK: &str = "***";

/// A password, passphrase or token. Only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
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
    /// A property `key=value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Property {
            key: key.into(),
            value: value.into(),
        }
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
    fn a_malformed_property_error_does_not_echo_its_value() {
        let err = "sasl.password hunter2".parse::<Property>().unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
