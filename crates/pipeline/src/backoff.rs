//! The one retry policy of the relay and the consumer: exponential, capped, jittered.

use std::time::Duration;

/// Pauses between retries: `min * 2^(n-1)` after the `n`th failure in a row, capped at `max`,
/// each multiplied by a random factor in 50-150 % so that many instances never retry in
/// lockstep.
///
/// ```
/// use credo_pipeline::Backoff;
/// use std::time::Duration;
/// let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
/// let third = b.delay(3); // around 400 ms
/// assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(600));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Pause after the first failure (before jitter).
    pub min: Duration,
    /// Longest pause (before jitter).
    pub max: Duration,
}

impl Backoff {
    /// A policy from `min` doubling up to `max`.
    pub const fn new(min: Duration, max: Duration) -> Self {
        Self { min, max }
    }

    /// The pause after the `n`th failure in a row (`n` counts from 1; 0 is treated as 1).
    #[must_use]
    pub fn delay(&self, n: u32) -> Duration {
        let base = self
            .min
            .saturating_mul(1u32 << n.saturating_sub(1).min(20))
            .min(self.max);
        let unit = (uuid::Uuid::new_v4().as_u128() % 1001) as f64 / 1000.0; // 0.0..=1.0
        base.mul_f64(0.5 + unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_jitters() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        for n in 0..40 {
            let d = b.delay(n);
            let base = Duration::from_millis(100)
                .saturating_mul(1 << n.saturating_sub(1).min(20))
                .min(b.max);
            assert!(
                d >= base / 2 && d <= base.mul_f64(1.5),
                "n={n}: {d:?} vs {base:?}"
            );
        }
        let samples: std::collections::HashSet<_> = (0..20).map(|_| b.delay(3)).collect();
        assert!(samples.len() > 1, "no jitter");
    }
}
