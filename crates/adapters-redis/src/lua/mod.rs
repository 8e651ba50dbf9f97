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

/// One `redis.call(...)` or `redis.pcall(...)` in a script under `src/lua`, for the tests
/// that check every call a script makes (its keys, the ACL rule's commands).
#[cfg(test)]
pub(crate) struct ScriptCall {
    /// The script's file.
    pub(crate) path: std::path::PathBuf,
    /// The command, as written (`'HSET'`'s quotes removed).
    pub(crate) command: String,
    /// The text after the command's comma, up to the end of the script.
    pub(crate) args: String,
}

/// Every call of every `.lua` file here, so a new script or a new `pcall` is checked too;
/// panics when fewer than 30 are found (the walk itself is then wrong).
#[cfg(test)]
pub(crate) fn script_calls() -> Vec<ScriptCall> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lua");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "lua") {
            continue;
        }
        let lua = std::fs::read_to_string(&path).unwrap();
        for call in lua
            .split("redis.call(")
            .skip(1)
            .chain(lua.split("redis.pcall(").skip(1))
        {
            let end = call.find([',', ')']).unwrap_or(call.len());
            let rest = &call[end..];
            out.push(ScriptCall {
                path: path.clone(),
                command: call[..end].trim().trim_matches(['\'', '"']).to_string(),
                args: rest.strip_prefix(',').unwrap_or(rest).to_string(),
            });
        }
    }
    assert!(
        out.len() > 30,
        "only {} calls found in {}",
        out.len(),
        dir.display()
    );
    out
}

#[cfg(test)]
mod tests {
    /// Every key a script touches is one it declares (`KEYS[n]`): a key built inside a script
    /// is invisible to cluster routing and to proxies, and Redis documents undeclared keys as
    /// unsupported.
    #[test]
    fn every_script_touches_only_declared_keys() {
        // Commands whose first argument is not a key.
        const KEYLESS: [&str; 1] = ["TIME"];
        for call in super::script_calls() {
            if KEYLESS.contains(&call.command.as_str()) {
                continue;
            }
            assert!(
                call.args.trim_start().starts_with("KEYS["),
                "{}: {} on an undeclared key: {}",
                call.path.display(),
                call.command,
                call.args.lines().next().unwrap_or_default()
            );
        }
    }
}
