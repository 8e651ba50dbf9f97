//! Lua helpers shared by the scripts.

use fred::types::scripts::Script;

/// Lua numbers are doubles, exact only below 2^53 µs (about the year 2255), but timestamps go up
/// to the year 9999: every script compares them as canonical decimal strings (as Rust wrote
/// them), never through `tonumber`.
pub(crate) const TIME_CMP: &str = include_str!("time_cmp.lua");

/// A script with [`TIME_CMP`]'s `tcmp` in scope.
pub(crate) fn with_time_cmp(body: &str) -> Script {
    Script::from_lua(format!("{TIME_CMP}{body}"))
}
