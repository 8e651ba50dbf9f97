//! Values at the edges of their types, for every port: timestamps over the whole `i64` range
//! (weighted to the storable range's ends, to the type's ends and to 2^53, where Lua doubles
//! stop being exact), store clocks at the ends of the storable range, page sizes, and
//! rate-limit policies at their limits. Each property compares the backend with the model
//! operation by operation, like the ordinary sequences do.
//!
//! This file holds the list of cases and the generators of edge values they share; each
//! port's operations and property live in a file of their own.

mod audit;
mod consents;
mod outbox;
mod rate_limits;
mod sessions;
mod users;

use audit::audit_times_and_bounds_at_the_edges;
use consents::consent_times_at_the_edges;
use outbox::outbox_bounds_at_the_edges;
use rate_limits::rate_limits_at_the_edges;
use sessions::session_times_at_the_edges;
use users::user_cursors_at_the_edges;

use super::cases;
use crate::harness::{Port, Stores};
use crate::property::Pair;
use credo_ports::Timestamp;
use credo_ports::rate_limit::CLOCK_LIMIT_US;
use proptest::prelude::*;

pub(super) fn cases() -> Vec<super::Case> {
    let mut v = cases![Port::Users; user_cursors_at_the_edges];
    v.extend(cases![Port::Sessions; session_times_at_the_edges]);
    v.extend(cases![Port::Consents; consent_times_at_the_edges]);
    v.extend(cases![Port::Audit; audit_times_and_bounds_at_the_edges]);
    v.extend(cases![Port::Outbox; outbox_bounds_at_the_edges]);
    v.extend(cases![Port::RateLimits; rate_limits_at_the_edges]);
    v
}

const SEC: i64 = 1_000_000;
const TWO_53: i64 = 1 << 53;

/// Any `i64` instant, weighted to the interesting ones.
fn any_instant() -> BoxedStrategy<Timestamp> {
    let near = |c: i64| (-2i64..=2).prop_map(move |d| c.saturating_add(d));
    prop_oneof![
        2 => any::<i64>(),
        2 => Timestamp::MIN.as_micros()..=Timestamp::MAX.as_micros(),
        2 => near(Timestamp::MIN.as_micros()),
        2 => near(Timestamp::MAX.as_micros()),
        1 => near(i64::MIN),
        1 => near(i64::MAX),
        1 => near(TWO_53),
        1 => near(-TWO_53),
        1 => near(0),
    ]
    .prop_map(Timestamp::from_micros)
    .boxed()
}

/// A store clock: always storable (a clock outside the range is a fault of the host, not
/// input), weighted to the range's ends, to 2^53 and to the suite's usual start.
fn clock_instant() -> BoxedStrategy<Timestamp> {
    let (min, max) = (Timestamp::MIN.as_micros(), Timestamp::MAX.as_micros());
    prop_oneof![
        2 => min..=max,
        2 => (0i64..=SEC).prop_map(move |d| min + d),
        2 => (0i64..=SEC).prop_map(move |d| max - d),
        1 => (-2i64..=2).prop_map(|d| TWO_53 + d),
        1 => (-2i64..=2).prop_map(|d| CLOCK_LIMIT_US + d),
        1 => (-2i64..=2).prop_map(|d| -CLOCK_LIMIT_US + d),
        1 => Just(Stores::START.as_micros()),
    ]
    .prop_map(Timestamp::from_micros)
    .boxed()
}

/// An instant either absolute (anywhere) or a few microseconds to seconds from the clock, so
/// that sequences also hold live records next to the edge ones.
#[derive(Clone, Copy, Debug)]
enum At {
    Absolute(Timestamp),
    FromNow(i64),
}

impl At {
    fn resolve(self, now: Timestamp) -> Timestamp {
        match self {
            At::Absolute(t) => t,
            At::FromNow(d) => Timestamp::from_micros(now.as_micros().saturating_add(d)),
        }
    }
}

fn at() -> BoxedStrategy<At> {
    prop_oneof![
        any_instant().prop_map(At::Absolute),
        prop_oneof![Just(-1i64), Just(0), Just(1), Just(SEC), Just(3600 * SEC)]
            .prop_map(At::FromNow),
    ]
    .boxed()
}

fn page_limit() -> BoxedStrategy<usize> {
    prop_oneof![
        4 => 1usize..=4,
        1 => Just(0usize),
        1 => Just(credo_ports::page::MAX_PAGE_SIZE),
        1 => Just(credo_ports::page::MAX_PAGE_SIZE + 1),
        1 => Just(usize::MAX),
    ]
    .boxed()
}

fn set_clock(p: &Pair, t: Timestamp) {
    p.backend.clock.set(t);
}
