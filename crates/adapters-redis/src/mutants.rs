//! Deliberate bugs the conformance suite must catch (see
//! `crates/conformance-backends/tests/mutants.rs`); the switch that enables them is behind the
//! `mutants` feature. Every line of deliberately wrong behaviour lives in this file, which
//! `cargo xtask mutants` does not mutate (`.cargo/mutants.toml`).

use fred::types::scripts::Script;
use std::sync::LazyLock;

/// One deliberately broken behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutant {
    /// The rate-limit script reads Redis `TIME` in milliseconds and uses it as microseconds:
    /// time passes a thousand times too slowly for the limiter.
    ServerTimeInMillis,
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

impl Switch {
    /// The GCRA script to run (correct: `correct`).
    pub(crate) fn gcra(self, correct: &Script) -> &Script {
        match self.0 {
            Some(Mutant::ServerTimeInMillis) => &GCRA_MILLIS,
            None => correct,
        }
    }
}

#[cfg(feature = "mutants")]
impl crate::RedisStores {
    /// The same stores with one deliberate bug switched on; only for proving the suite.
    #[doc(hidden)]
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
    fn the_millisecond_script_differs_from_the_correct_one() {
        assert_ne!(
            super::GCRA_MILLIS.sha1(),
            fred::types::scripts::Script::from_lua(crate::rate_limits::GCRA_LUA).sha1()
        );
    }
}
