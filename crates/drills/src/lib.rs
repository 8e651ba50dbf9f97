//! Recovery drills: procedures an operator follows on the worst day (restore to a point in
//! time, roll a migration back), executed against real servers with their figures printed.
//! `cargo xtask drill` runs them; `cargo xtask test` runs them with every other test.
//!
//! This crate holds what the drills share: a workload written through the ports and the
//! state read back through them ([`Snapshot`]), and [`PgBackRest`], the backup tool driven as
//! an operator would.

mod pgbackrest;
mod snapshot;

pub use pgbackrest::PgBackRest;
pub use snapshot::{Snapshot, Workload};
