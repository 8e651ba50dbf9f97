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

#[cfg(test)]
mod tests {
    /// Every key a script touches is one it declares (`KEYS[n]`): a key built inside a script
    /// is invisible to cluster routing and to proxies, and Redis documents undeclared keys as
    /// unsupported. Reads every `.lua` file here, so a new script is checked too.
    #[test]
    fn every_script_touches_only_declared_keys() {
        // Commands whose first argument is not a key.
        const KEYLESS: [&str; 1] = ["TIME"];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lua");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "lua") {
                continue;
            }
            let lua = std::fs::read_to_string(&path).unwrap();
            for call in lua.split("redis.call(").skip(1) {
                let end = call.find([',', ')']).unwrap_or(call.len());
                let (command, rest) = (&call[..end], &call[end..]);
                let rest = rest.strip_prefix(',').unwrap_or(rest);
                let command = command.trim().trim_matches(['\'', '"']);
                if KEYLESS.contains(&command) {
                    continue;
                }
                assert!(
                    rest.trim_start().starts_with("KEYS["),
                    "{}: {command} on an undeclared key: redis.call({}",
                    path.display(),
                    call.lines().next().unwrap_or_default()
                );
                checked += 1;
            }
        }
        assert!(
            checked > 30,
            "only {checked} calls found in {}",
            dir.display()
        );
    }
}
