//! The suite must catch real bugs: each deliberately broken variant of the in-memory adapter
//! has to fail at least one case (and the correct adapter none, see `inmemory.rs`).

use async_trait::async_trait;
use credo_adapters_inmemory::{InMemoryStores, Mutant};
use credo_conformance::{Harness, Outcome, Port, RunOptions, Stores, Support, run_suite};
use credo_conformance_backends::inmemory_stores;
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
            InMemoryStores::with_mutant(clock, self.0),
        ))
    }
}

const MUTANTS: [Mutant; 16] = [
    Mutant::CaseSensitiveEmail,
    Mutant::ExpiryInclusive,
    Mutant::DeniedConsumes,
    Mutant::RacyRevoke,
    Mutant::RegrantNewId,
    Mutant::CappedSessionList,
    Mutant::ClaimIgnoresOrderKeys,
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
