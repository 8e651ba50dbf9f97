//! Deliberate bugs the conformance suite must catch. They exist only to prove the suite's
//! strength (see `crates/conformance/tests/mutants.rs`); the constructor that enables them is
//! behind the `mutants` feature.

/// One deliberately broken behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutant {
    /// Email uniqueness compares emails case-sensitively.
    CaseSensitiveEmail,
    /// A session or token counts as live while `now <= expires_at` (should be `now < expires_at`).
    ExpiryInclusive,
    /// A denied rate-limit request still consumes capacity.
    DeniedConsumes,
    /// Revoke checks the status, yields, then writes: concurrent revokes all "succeed".
    RacyRevoke,
    /// Renewing a consent creates a new id instead of keeping the record's.
    RegrantNewId,
    /// `list_for_user` returns at most 100 sessions.
    CappedSessionList,
    /// An outbox claim hands out every unheld row, ignoring order keys (so two relays can
    /// publish one subject's events out of order).
    ClaimIgnoresOrderKeys,
    /// Ack and release act on pending rows whoever holds them (a relay whose lease ran out
    /// confirms or gives back another relay's rows).
    AckIgnoresToken,
    /// A row the sink rejected is never set aside: it is retried forever and holds its key.
    NeverSetAside,
    /// Erasure reads a user's consents, yields, then deletes whatever is there by condition:
    /// a grant committed in between is deleted without being counted or audited (the
    /// read-then-write class of `DELETE ... WHERE` after a separate `SELECT`).
    EraseUnlocked,
    /// The token purge reads the expired revocations, yields, then deletes those keys without
    /// rechecking: a revocation renewed in between is deleted (the batched `DELETE ... WHERE
    /// key IN (SELECT ...)` whose outer statement does not repeat the condition).
    PurgeWithoutRecheck,
}
