//! The one error type every store returns.

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// What went wrong, in terms a caller can act on. Every backend maps its driver errors into
/// these variants, and the same input yields the same variant on every backend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record does not exist in this tenant (or has expired).
    #[error("not found: {entity}")]
    NotFound {
        /// What was looked for, e.g. `"user"`.
        entity: &'static str,
    },
    /// A uniqueness rule or an expected version was violated.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The input was rejected before any I/O.
    #[error("invalid input: {field}: {reason}")]
    InvalidInput {
        /// The offending field, e.g. `"email"`.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The record exists but is in a state that forbids the operation (e.g. already revoked).
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// The backend could not be reached in time (down, pool exhausted, timeout). Retryable.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The backend does not implement this operation.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
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
}
