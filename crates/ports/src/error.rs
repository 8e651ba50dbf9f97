//! The one error type every store returns.

use std::error::Error;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// What went wrong, in terms a caller can act on. Every backend maps its driver errors into
/// these variants, and the same input yields the same variant on every backend.
///
/// `Unavailable` and `Corrupt` keep the driver error they were mapped from, when there is one,
/// as their [`source`](Error::source); equality compares messages only.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The record does not exist in this tenant (or has expired).
    NotFound {
        /// What was looked for, e.g. `"user"`.
        entity: &'static str,
    },
    /// A uniqueness rule or an expected version was violated.
    Conflict(String),
    /// The input was rejected before any I/O.
    InvalidInput {
        /// The offending field, e.g. `"email"`.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The record exists but is in a state that forbids the operation (e.g. already revoked).
    InvalidState(String),
    /// The backend could not be reached in time (down, pool exhausted, timeout). Retryable.
    Unavailable(Cause),
    /// The backend does not implement this operation.
    Unsupported(String),
    /// Stored data could not be decoded.
    Corrupt(Cause),
}

impl StoreError {
    /// True when retrying the same call later may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// Shorthand for [`StoreError::InvalidInput`].
    #[must_use]
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        StoreError::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`StoreError::NotFound`].
    #[must_use]
    pub fn not_found(entity: &'static str) -> Self {
        StoreError::NotFound { entity }
    }

    /// The variant name, for comparing outcomes across backends without their messages.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "NotFound",
            StoreError::Conflict(_) => "Conflict",
            StoreError::InvalidInput { .. } => "InvalidInput",
            StoreError::InvalidState(_) => "InvalidState",
            StoreError::Unavailable(_) => "Unavailable",
            StoreError::Unsupported(_) => "Unsupported",
            StoreError::Corrupt(_) => "Corrupt",
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound { entity } => write!(f, "not found: {entity}"),
            StoreError::Conflict(m) => write!(f, "conflict: {m}"),
            StoreError::InvalidInput { field, reason } => {
                write!(f, "invalid input: {field}: {reason}")
            }
            StoreError::InvalidState(m) => write!(f, "invalid state: {m}"),
            StoreError::Unavailable(c) => write!(f, "backend unavailable: {c}"),
            StoreError::Unsupported(m) => write!(f, "unsupported: {m}"),
            StoreError::Corrupt(c) => write!(f, "corrupt stored data: {c}"),
        }
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            StoreError::Unavailable(c) | StoreError::Corrupt(c) => c.source(),
            _ => None,
        }
    }
}

/// What an [`Unavailable`](StoreError::Unavailable) or [`Corrupt`](StoreError::Corrupt) error
/// says, and the error that caused it when there is one (a driver error), which
/// [`StoreError`]'s [`source`](Error::source) returns.
///
/// It reads as its message (`Deref<Target = str>`, `Display`), and compares by message only:
/// two causes with the same text are equal whatever their sources.
///
/// ```
/// use std::error::Error;
/// use credo_ports::{Cause, StoreError};
///
/// let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
/// let e = StoreError::Unavailable(Cause::with_source("redis: connect timed out", io));
/// assert_eq!(e.to_string(), "backend unavailable: redis: connect timed out");
/// assert_eq!(e.source().unwrap().to_string(), "connect timed out");
/// assert_eq!(e, StoreError::Unavailable("redis: connect timed out".into()));
/// ```
#[derive(Clone)]
pub struct Cause {
    message: String,
    source: Option<Arc<dyn Error + Send + Sync + 'static>>,
}

impl Cause {
    /// A cause with no underlying error.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A cause described by `message`, keeping `source` (the driver error) as the source.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// The message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The underlying error, if any.
    #[must_use]
    pub fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }

    /// The same cause with `secrets` scrubbed from its message and from its source: a source
    /// whose text (or whose sources' text) shows a secret is replaced by its scrubbed text.
    pub(crate) fn scrubbed(self, secrets: &[String]) -> Self {
        let scrub = |t: &str| crate::redact::scrub(t, secrets);
        let source = self.source.map(|s| {
            let mut chain = Some(&*s as &(dyn Error + 'static));
            let mut leaks = false;
            while let Some(e) = chain {
                leaks |= scrub(&e.to_string()) != e.to_string();
                chain = e.source();
            }
            if leaks {
                Arc::new(Scrubbed(scrub(&s.to_string()))) as Arc<dyn Error + Send + Sync>
            } else {
                s
            }
        });
        Self {
            message: scrub(&self.message),
            source,
        }
    }
}

/// A source error that showed a secret, as its scrubbed text.
#[derive(Debug)]
struct Scrubbed(String);

impl fmt::Display for Scrubbed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Scrubbed {}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The message as a string literal, and the source's text after it when there is one (never
/// the source's own `Debug`, which may show more than its text).
impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message, f)?;
        if let Some(source) = &self.source {
            write!(f, " (source: {source})")?;
        }
        Ok(())
    }
}

impl Deref for Cause {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for Cause {}

impl PartialEq<str> for Cause {
    fn eq(&self, other: &str) -> bool {
        self.message == other
    }
}

impl PartialEq<&str> for Cause {
    fn eq(&self, other: &&str) -> bool {
        self.message == *other
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_is_retryable() {
        assert!(StoreError::Unavailable("pool".into()).is_retryable());
        for e in [
            StoreError::not_found("user"),
            StoreError::Conflict("email".into()),
            StoreError::invalid("email", "empty"),
            StoreError::InvalidState("revoked".into()),
            StoreError::Unsupported("x".into()),
            StoreError::Corrupt("x".into()),
        ] {
            assert!(!e.is_retryable(), "{e}");
        }
    }

    #[test]
    fn the_driver_error_is_the_source_and_equality_ignores_it() {
        use std::error::Error as _;
        let io = std::io::Error::other("connection reset");
        let e = StoreError::Unavailable(Cause::with_source("postgres: connection reset", io));
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("connection reset")
        );
        assert_eq!(
            e,
            StoreError::Unavailable("postgres: connection reset".into())
        );
        assert_eq!(
            format!("{e:?}"),
            "Unavailable(\"postgres: connection reset\" (source: connection reset))"
        );
        assert!(StoreError::Corrupt("x".into()).source().is_none());
        assert!(StoreError::Conflict("x".into()).source().is_none());
        // The message formats as before.
        assert_eq!(
            e.to_string(),
            "backend unavailable: postgres: connection reset"
        );
        assert_eq!(StoreError::not_found("user").to_string(), "not found: user");
        assert_eq!(
            StoreError::invalid("email", "empty").to_string(),
            "invalid input: email: empty"
        );
    }

    #[test]
    fn scrubbing_reaches_the_source() {
        use std::error::Error as _;
        let secrets = ["hunter2".to_string()];
        let leaky = std::io::Error::other("auth failed for password hunter2");
        let e = crate::redact::scrub_error(
            StoreError::Unavailable(Cause::with_source("auth failed: hunter2", leaky)),
            &secrets,
        );
        let shown = format!("{e} / {e:?} / {}", e.source().unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(e.source().is_some());
        let clean = std::io::Error::other("connection refused");
        let e = crate::redact::scrub_error(
            StoreError::Corrupt(Cause::with_source("bad row", clean)),
            &secrets,
        );
        // A source without a secret is kept as it is (callers may downcast it).
        assert!(
            e.source()
                .unwrap()
                .downcast_ref::<std::io::Error>()
                .is_some()
        );
    }
}
