//! Deliberate bugs the conformance suite must catch (see
//! `crates/conformance-backends/tests/mutants.rs`); the switch that enables them is behind the
//! `mutants` feature. Every line of deliberately wrong behaviour lives in this file, which
//! `cargo xtask mutants` does not mutate (`.cargo/mutants.toml`).

use fred::types::scripts::Script;
use std::sync::LazyLock;

/// One deliberately broken behaviour. Public (and constructible) only with the `mutants`
/// feature; without it the stores still ask their `Switch`, which is always off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "mutants"), allow(dead_code))]
pub enum Mutant {
    /// The rate-limit script reads Redis `TIME` in milliseconds and uses it as microseconds:
    /// time passes a thousand times too slowly for the limiter.
    ServerTimeInMillis,
    /// The session create script trims the user's index by the writer's clock (entries
    /// expired by more than the grace), whether or not their sessions still exist: a writer
    /// whose clock runs ahead hides live sessions from listing and revoke-all.
    IndexTrimmedByClock,
}

/// Which deliberate bug, if any, the stores run with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Switch(Option<Mutant>);

static GCRA_MILLIS: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(crate::rate_limits::GCRA_LUA.replace(
        "now = tonumber(t[1]) * 1000000 + tonumber(t[2])",
        "now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)",
    ))
});

static CREATE_TRIMMING_BY_CLOCK: LazyLock<Script> = LazyLock::new(|| {
    let correct = include_str!("lua/create.lua");
    let counting = "return redis.call('ZCOUNT', KEYS[2], '-inf', ARGV[2])";
    assert!(
        correct.contains(counting),
        "the create script counts its trim candidates"
    );
    Script::from_lua(correct.replace(
        counting,
        "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])\nreturn 0",
    ))
});

impl Switch {
    /// The GCRA script to run (correct: `correct`).
    pub(crate) fn gcra(self, correct: &Script) -> &Script {
        match self.0 {
            Some(Mutant::ServerTimeInMillis) => &GCRA_MILLIS,
            _ => correct,
        }
    }

    /// The session create script to run (correct: `correct`).
    pub(crate) fn create_session(self, correct: &Script) -> &Script {
        match self.0 {
            Some(Mutant::IndexTrimmedByClock) => &CREATE_TRIMMING_BY_CLOCK,
            _ => correct,
        }
    }
}

#[cfg(feature = "mutants")]
impl crate::RedisStores {
    /// The same stores with one deliberate bug switched on; only for proving the suite.
    #[doc(hidden)]
    #[must_use = "returns a new value and leaves this one unchanged"]
    pub fn with_mutant(&self, mutant: Mutant) -> Self {
        Self {
            mutant: Switch(Some(mutant)),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_trimming_create_script_trims_by_range_only() {
        let lua = super::CREATE_TRIMMING_BY_CLOCK.lua().unwrap().to_string();
        assert!(lua.contains("ZREMRANGEBYSCORE"), "{lua}");
        assert!(!lua.contains("ZCOUNT"), "{lua}");
        assert!(lua.contains("ZADD"), "{lua}");
    }

    #[test]
    fn the_millisecond_script_differs_from_the_correct_one() {
        assert_ne!(
            super::GCRA_MILLIS.sha1(),
            fred::types::scripts::Script::from_lua(crate::rate_limits::GCRA_LUA).sha1()
        );
    }
}
