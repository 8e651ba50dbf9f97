//! Lua helpers shared by the scripts.

use fred::types::scripts::Script;

/// Lua numbers are doubles, exact only below 2^53 µs (about the year 2255), but timestamps go up
/// to the year 9999: every script compares them as canonical decimal strings (as Rust wrote
/// them), never through `tonumber`.
pub(crate) const TIME_CMP: &str = "local function tcmp(a, b)
  local na, nb = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  if na ~= nb then return na and -1 or 1 end
  if na then a, b = string.sub(b, 2), string.sub(a, 2) end
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
";

/// A script with [`TIME_CMP`]'s `tcmp` in scope.
pub(crate) fn with_time_cmp(body: &str) -> Script {
    Script::from_lua(format!("{TIME_CMP}{body}"))
}
