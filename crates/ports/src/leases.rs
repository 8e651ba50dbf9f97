//! Leases on maintenance jobs: among many service instances, one at a time runs a given job,
//! and a crashed holder's lease ends by itself so that another instance takes the job over.

use crate::{StoreError, StoreResult, validate};
use async_trait::async_trait;
use std::time::Duration;

/// Shortest lease accepted: shorter ones would end before a round trip to the server.
pub const MIN_LEASE: Duration = Duration::from_millis(10);
/// Longest lease accepted: a crashed holder blocks its job at most this long.
pub const MAX_LEASE: Duration = Duration::from_secs(24 * 3600);

/// Time-bounded, exclusive leases on named jobs, kept on the backend the job works on.
///
/// A holder renews its lease by acquiring it again before it ends; a holder that stops
/// renewing (crashed, partitioned) loses it at `now + ttl` by the backend's clock.
///
/// ```
/// use std::time::Duration;
/// use credo_ports::{JobLeases, StoreResult};
///
/// /// Runs one pass of the job if this instance holds (or could take) its lease.
/// async fn pass_if_leader(leases: &dyn JobLeases, me: &str) -> StoreResult<bool> {
///     if !leases.acquire("purge-sessions", me, Duration::from_secs(30)).await? {
///         return Ok(false); // another instance runs it
///     }
///     // ... purge a batch, renewing the lease between batches ...
///     leases.release("purge-sessions", me).await?;
///     Ok(true)
/// }
/// ```
#[async_trait]
pub trait JobLeases: Send + Sync {
    /// Takes the lease on `job` for `holder` until now + `ttl`, or renews it if `holder`
    /// already holds it. True when `holder` holds it afterwards; false while another holder's
    /// lease runs. `InvalidInput` for an empty or over-long name or a `ttl` outside
    /// [`MIN_LEASE`]..=[`MAX_LEASE`].
    async fn acquire(&self, job: &str, holder: &str, ttl: Duration) -> StoreResult<bool>;
    /// Ends `holder`'s lease on `job` at once; does nothing if another holder has it.
    async fn release(&self, job: &str, holder: &str) -> StoreResult<()>;
}

/// The checks of [`JobLeases::acquire`]: names are free text (see [`validate::text`]) and
/// the ttl is within [`MIN_LEASE`]..=[`MAX_LEASE`].
pub fn validate_lease(job: &str, holder: &str, ttl: Duration) -> StoreResult<()> {
    validate_names(job, holder)?;
    if !(MIN_LEASE..=MAX_LEASE).contains(&ttl) {
        return Err(StoreError::invalid(
            "ttl",
            format!("must be between {MIN_LEASE:?} and {MAX_LEASE:?}, got {ttl:?}"),
        ));
    }
    Ok(())
}

/// The name checks of [`JobLeases::release`].
pub fn validate_names(job: &str, holder: &str) -> StoreResult<()> {
    validate::text("job", job)?;
    validate::text("holder", holder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_refuse_bad_names_and_ttls() {
        let ok = Duration::from_secs(1);
        assert!(validate_lease("j", "h", ok).is_ok());
        assert!(validate_lease("j", "h", MIN_LEASE).is_ok());
        assert!(validate_lease("j", "h", MAX_LEASE).is_ok());
        for (job, holder, ttl, field) in [
            ("", "h", ok, "job"),
            ("j", " ", ok, "holder"),
            ("j\0", "h", ok, "job"),
            ("j", "h", Duration::ZERO, "ttl"),
            ("j", "h", MAX_LEASE + Duration::from_nanos(1), "ttl"),
            ("j", "h", Duration::MAX, "ttl"),
        ] {
            match validate_lease(job, holder, ttl) {
                Err(StoreError::InvalidInput { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{job:?} {holder:?} {ttl:?}: {other:?}"),
            }
        }
    }
}
