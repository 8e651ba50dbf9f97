//! The configuration reference, generated from the declarations: the table of
//! `docs/configuration.md` between its markers (`crates/storage/tests/config_reference.rs`
//! fails when the file is stale and rewrites it with `CREDO_BLESS=1`).

use super::declare::Kind;
use super::{DEFAULT_ENV_PREFIX, env_var, settings};

/// The line before the generated table.
pub const BEGIN: &str =
    "<!-- BEGIN generated from the declarations in crates/storage/src/config/sections.rs -->";
/// The line after it.
pub const END: &str = "<!-- END generated -->";

/// Every setting as a Markdown table: setting, variable, default, accepted values, what it
/// does. Defaults read from an adapter's config type need that adapter's feature; without it
/// they read "the adapter's".
///
/// ```
/// let table = credo_storage::config::reference::markdown();
/// assert!(table.contains("| `postgres.max_connections` | `CREDO_POSTGRES_MAX_CONNECTIONS` |"));
/// ```
pub fn markdown() -> String {
    let mut out = String::from(
        "| setting | environment | default | accepted | what it does |\n|---|---|---|---|---|\n",
    );
    for s in settings() {
        let mut var = format!("`{}`", env_var(DEFAULT_ENV_PREFIX, s));
        if s.kind == Kind::Map {
            var = format!("`{}<NAME>`", env_var(DEFAULT_ENV_PREFIX, s));
        }
        if let Some(alias) = s.alias {
            var.push_str(&format!(", `{alias}`"));
        }
        let path = if s.kind == Kind::Map {
            format!("{}.<name>", s.path())
        } else {
            s.path()
        };
        let doc = s.doc.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&format!(
            "| `{path}` | {var} | {} | {} | {} |\n",
            s.default_text(),
            s.accepted_text(),
            doc.replace('|', "\\|"),
        ));
    }
    out
}

/// `document` with the text between [`BEGIN`] and [`END`] replaced by [`markdown`]; `None`
/// when a marker is missing.
pub fn regenerate(document: &str) -> Option<String> {
    let start = document.find(BEGIN)? + BEGIN.len();
    let end = start + document[start..].find(END)?;
    Some(format!(
        "{}\n\n{}\n{}",
        &document[..start],
        markdown(),
        &document[end..]
    ))
}
