//! The input rules of the rate limiter: a policy and a cost, a key, the clock.

use super::fields::text;
use super::{Rule, invalid};
use credo_ports::rate_limit::{
    CLOCK_LIMIT_US, MAX_KEY_LEN, MAX_PERIOD, MAX_RATE, MAX_TOLERANCE_US, MIN_PERIOD,
};
use credo_ports::{RateLimitPolicy, Timestamp};

/// A policy and a cost: limit and burst 1 to [`MAX_RATE`]; period [`MIN_PERIOD`] to
/// [`MAX_PERIOD`] and at least one microsecond per request; tolerance (emission interval x
/// burst) at most [`MAX_TOLERANCE_US`]; cost 1 to burst.
pub(crate) fn rate_policy(p: &RateLimitPolicy, cost: u32) -> Rule {
    if p.limit == 0 || p.limit > MAX_RATE {
        return invalid("limit", format!("must be 1..={MAX_RATE}"));
    }
    if p.burst == 0 || p.burst > MAX_RATE {
        return invalid("burst", format!("must be 1..={MAX_RATE}"));
    }
    if p.period < MIN_PERIOD || p.period > MAX_PERIOD {
        return invalid("period", "must be 1 ms ..= 24 h");
    }
    if p.period.as_micros() < u128::from(p.limit) {
        return invalid("period", "less than a microsecond per request");
    }
    let tolerance =
        i128::from(crate::model::rate_limit::emission_interval_us(p)) * i128::from(p.burst);
    if tolerance > i128::from(MAX_TOLERANCE_US) {
        return invalid("burst", "tolerance over 31 days");
    }
    if cost == 0 || cost > p.burst {
        return invalid("cost", format!("must be 1..={}", p.burst));
    }
    Ok(())
}

/// A rate-limit key: at most [`MAX_KEY_LEN`] bytes and a required text field.
pub(crate) fn rate_key(key: &str) -> Rule {
    if key.len() > MAX_KEY_LEN {
        return invalid("key", format!("more than {MAX_KEY_LEN} bytes"));
    }
    text("key", key)
}

/// The clock a rate-limit check reads: strictly within ±[`CLOCK_LIMIT_US`] of the epoch.
pub(crate) fn rate_clock(now: Timestamp) -> Rule {
    let us = now.as_micros();
    if us <= -CLOCK_LIMIT_US || us >= CLOCK_LIMIT_US {
        return invalid("clock", "outside the rate limiter's clock range");
    }
    Ok(())
}
