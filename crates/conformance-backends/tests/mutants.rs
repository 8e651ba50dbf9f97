//! The suite must catch real bugs: each deliberately broken variant of the in-memory adapter
//! has to fail at least one case (and the correct adapter none, see `conformance.rs`), and so
//! must the Redis adapter's (against the server in `CREDO_TEST_REDIS_URL`; without one the
//! Redis part is skipped, and under `CREDO_TEST_REQUIRE=all` that is a failure).

use async_trait::async_trait;
use credo_adapters_inmemory::{InMemoryStores, Mutant};
use credo_conformance::{Harness, Outcome, Port, RunOptions, Stores, Support, run_suite};
use credo_conformance_backends::{inmemory_config, inmemory_stores};
use credo_ports::ManualClock;
use std::sync::Arc;

struct MutantHarness(Mutant);

#[async_trait]
impl Harness for MutantHarness {
    fn name(&self) -> &'static str {
        "inmemory-mutant"
    }
    async fn available(&self) -> Result<(), String> {
        Ok(())
    }
    fn supports(&self, _port: Port) -> Support {
        Support::Yes
    }
    async fn fresh(&self, clock: Arc<ManualClock>) -> Result<Stores, String> {
        Ok(inmemory_stores(
            clock.clone(),
            InMemoryStores::with_mutant(clock, inmemory_config(), self.0),
        ))
    }
}

const MUTANTS: [Mutant; 17] = [
    Mutant::CaseSensitiveEmail,
    Mutant::ExpiryInclusive,
    Mutant::DeniedConsumes,
    Mutant::RacyRevoke,
    Mutant::RegrantNewId,
    Mutant::CappedSessionList,
    Mutant::ClaimIgnoresOrderKeys,
    Mutant::HeldKeysFillTheBatch,
    Mutant::AckIgnoresToken,
    Mutant::NeverSetAside,
    Mutant::EraseUnlocked,
    Mutant::PurgeWithoutRecheck,
    Mutant::EventOutsideChange,
    Mutant::PurgeDoesNothing,
    Mutant::UpdateUnlocked,
    Mutant::AsciiOnlyEmailFold,
    Mutant::EmailLikePattern,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutant_fails_the_suite() {
    let mut survivors = Vec::new();
    for mutant in MUTANTS {
        // Failures of mutants must not be saved as regressions of the real suite.
        let options = RunOptions {
            persist_failures: false,
            ..RunOptions::default()
        };
        let results = run_suite(Arc::new(MutantHarness(mutant)), options).await;
        let caught: Vec<String> = results
            .iter()
            .filter(|r| r.outcome == Outcome::Fail)
            .map(|r| format!("{}/{}", r.port, r.case))
            .collect();
        println!(
            "{mutant:?}: caught by {} case(s): {}",
            caught.len(),
            caught.join(", ")
        );
        if caught.is_empty() {
            survivors.push(mutant);
        }
    }
    assert!(
        survivors.is_empty(),
        "mutants that passed the whole suite: {survivors:?}"
    );
}
#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use credo_adapters_redis::{Mutant, RedisConfig, RedisStores, TimeSource};
    use credo_conformance_backends::redis_stores;

    /// Redis stores with a deliberate bug, run on the port the bug is in: the rate limiter
    /// reading server `TIME` (real-time cases), or sessions on the injected clock.
    struct RedisMutantHarness {
        base: RedisStores,
        mutant: Mutant,
        next: std::sync::atomic::AtomicU32,
    }

    #[async_trait]
    impl Harness for RedisMutantHarness {
        fn name(&self) -> &'static str {
            "redis-server-time-mutant"
        }
        async fn available(&self) -> Result<(), String> {
            Ok(())
        }
        fn supports(&self, port: Port) -> Support {
            match (self.mutant, port) {
                (Mutant::ServerTimeInMillis, Port::RateLimits)
                | (Mutant::IndexTrimmedByClock, Port::Sessions) => Support::Yes,
                _ => Support::No("not the port of this mutant"),
            }
        }
        fn reads_real_time(&self) -> bool {
            self.mutant == Mutant::ServerTimeInMillis
        }
        async fn fresh(&self, clock: Arc<ManualClock>) -> Result<Stores, String> {
            let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let r = self
                .base
                .with_prefix(&format!("credo_m_{}_{n}", std::process::id()))
                .map_err(|e| e.to_string())?
                .with_clock(clock.clone())
                .with_mutant(self.mutant);
            Ok(redis_stores(clock, r))
        }
    }

    const REDIS_MUTANTS: [Mutant; 2] = [Mutant::ServerTimeInMillis, Mutant::IndexTrimmedByClock];

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_redis_mutant_fails_the_suite() {
        let Some(url) = std::env::var("CREDO_TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            let required = std::env::var("CREDO_TEST_REQUIRE").is_ok_and(|v| v == "all");
            assert!(!required, "CREDO_TEST_REDIS_URL is not set");
            println!("skipped: CREDO_TEST_REDIS_URL is not set");
            return;
        };
        let mut config = RedisConfig::new(url);
        config.rate_limit_time = TimeSource::Server;
        // As in the conformance harness: key TTLs never cut a case's sessions short.
        config.expiry_grace = std::time::Duration::from_secs(3600);
        let base = RedisStores::connect(&config, Stores::new_clock())
            .await
            .expect("connect to the test Redis");
        let mut survivors = Vec::new();
        for mutant in REDIS_MUTANTS {
            let options = RunOptions {
                persist_failures: false,
                ..RunOptions::default()
            };
            let harness = RedisMutantHarness {
                base: base.clone(),
                mutant,
                next: Default::default(),
            };
            let results = run_suite(Arc::new(harness), options).await;
            let caught: Vec<String> = results
                .iter()
                .filter(|r| r.outcome == Outcome::Fail)
                .map(|r| format!("{}/{}", r.port, r.case))
                .collect();
            let ran = results
                .iter()
                .filter(|r| r.outcome == Outcome::Pass)
                .count()
                + caught.len();
            println!(
                "{mutant:?}: {ran} case(s) ran, caught by {}: {}",
                caught.len(),
                caught.join(", ")
            );
            assert!(ran > 0, "no case ran against the Redis mutant harness");
            if caught.is_empty() {
                survivors.push(mutant);
            }
        }
        assert!(
            survivors.is_empty(),
            "Redis mutants that passed the whole suite: {survivors:?}"
        );
    }
}
