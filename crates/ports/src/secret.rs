//! [`SecretString`]: how a password, token, key or URL holding one is kept from configuration
//! to driver, so that no `{:?}`, log line or error can print it by mistake.

use crate::redact::REDACTED;
use std::fmt;
use zeroize::Zeroize;

/// A secret value (a password, a token, a key, a connection URL with a password in it): the
/// same guarantees as the `secrecy` crate's `SecretString`, without the dependency.
///
/// - `Debug` prints `SecretString("***")` ([`REDACTED`]), whatever the value; there is no
///   `Display`, so `format!("{}")` does not compile.
/// - It does **not** implement `Serialize`: a secret cannot leave through a serializer by
///   accident. It implements `Deserialize` (from a string) so configuration can be read into
///   it directly.
/// - [`expose_secret`](Self::expose_secret) is the one way to read it, called where the value
///   is handed to a driver, by the redactor and scrubbers that must know what to hide
///   ([`crate::redact`]) and by the checks that a value is not blank; a search for
///   `expose_secret` finds every such place.
/// - Its bytes are overwritten with zeros when it is dropped (each clone has its own copy,
///   zeroed on its own drop). Copies a driver makes of the exposed text are the driver's.
/// - `PartialEq` compares values (not in constant time: it is for configuration, not for
///   checking a password an attacker sends).
///
/// ```
/// use credo_ports::SecretString;
///
/// let password = SecretString::from("hunter2");
/// assert_eq!(format!("{password:?}"), r#"SecretString("***")"#);
/// assert!(!format!("{:?}", Some(&password)).contains("hunter2"));
/// assert_eq!(password.expose_secret(), "hunter2");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// The value itself. Call it only where the value must leave this type (a driver's
    /// connect options, the redactor): nothing that prints.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    /// Takes the string's own buffer (no copy left behind).
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<&String> for SecretString {
    fn from(value: &String) -> Self {
        Self(value.clone())
    }
}

impl From<&SecretString> for SecretString {
    fn from(value: &SecretString) -> Self {
        value.clone()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretString").field(&REDACTED).finish()
    }
}

impl Drop for SecretString {
    /// Zeroes the whole buffer (its capacity, not only its length).
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for SecretString {}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_back_what_it_was_given() {
        let s = SecretString::from(String::from("pa ss:/@%#?é"));
        assert_eq!(s.expose_secret(), "pa ss:/@%#?é");
        assert_eq!(s.clone(), s);
        assert_eq!(SecretString::default().expose_secret(), "");
        let d: SecretString = serde_json::from_str(r#""t0k3n""#).unwrap();
        assert_eq!(d.expose_secret(), "t0k3n");
        assert_eq!(format!("{d:?}"), format!("SecretString({REDACTED:?})"));
    }

    proptest! {
        /// Whatever the secret, `Debug` (plain, pretty, nested) is the same text without it.
        #[test]
        fn debug_never_prints_the_secret(secret in "[ -~]{6,40}|\\PC{6,20}") {
            // A secret that is part of the fixed text (`String`, `("***`) proves nothing.
            let without = format!("{:#?}", vec![Some(SecretString::from("x"))]);
            prop_assume!(!without.contains(&secret));
            let s = SecretString::from(secret.as_str());
            for shown in [
                format!("{s:?}"),
                format!("{s:#?}"),
                format!("{:?}", vec![Some(s.clone())]),
            ] {
                prop_assert!(!shown.contains(&secret), "{shown}");
            }
            prop_assert_eq!(format!("{s:?}"), format!("{:?}", SecretString::from("x")));
        }
    }
}
