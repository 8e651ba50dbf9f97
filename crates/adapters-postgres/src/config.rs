//! The adapter's settings ([`PgConfig`], [`LeaseClock`]), their validation, and URL
//! redaction.

use crate::DEFAULT_MIGRATIONS_TABLE;
use credo_ports::redact;
use credo_ports::{SecretString, StoreError, StoreResult};
use sqlx::postgres::PgConnectOptions;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Connection settings. `Debug` never shows the password.
#[derive(Clone)]
#[non_exhaustive]
pub struct PgConfig {
    /// `postgres://user:password@host:port/db?sslmode=...`; every `sslmode` libpq knows is
    /// accepted, including `verify-full` (certificate and host name checked). Held as a
    /// [`SecretString`]: `Debug` shows it only through [`redacted_url`](Self::redacted_url).
    pub url: SecretString,
    /// Largest number of pooled connections (default 20).
    pub max_connections: u32,
    /// Connections of the outbox's own pool (default 2): the relay's claims never wait behind
    /// service requests (nor the reverse), and its sessions plan claims the same way whatever
    /// the table statistics say (no sorts or JIT; see [`PgOutbox`](crate::PgOutbox)).
    pub outbox_connections: u32,
    /// Longest wait for a pooled connection before `Unavailable` (default 5 s).
    pub acquire_timeout: Duration,
    /// Server-side bound on every statement (default 5 s).
    pub statement_timeout: Duration,
    /// Schema holding the tables, the migrations table included (default: the server's
    /// `search_path`, usually `public`). Every connection's `search_path` is set to it, so
    /// the migrations' unqualified names land there;
    /// [`PgStores::migrate`](crate::PgStores::migrate) creates it if missing. A plain
    /// identifier: 1..=63 of `[a-z0-9_]`, not starting with a digit.
    pub schema: Option<String>,
    /// Table recording applied migrations, in the schema above (default
    /// [`DEFAULT_MIGRATIONS_TABLE`]). A plain identifier like the schema.
    pub migrations_table: String,
    /// The clock outbox leases are measured on (default: the database's).
    pub lease_clock: LeaseClock,
    /// A role every connection acts as (`SET ROLE` at connection start, PostgreSQL's `role`
    /// parameter), when the login role of the URL is a member of the application role
    /// rather than that role itself: one login per instance, one set of grants
    /// ([`PgStores::grant_app_role`](crate::PgStores::grant_app_role)). A plain identifier
    /// like the schema. Default: none, the login role itself.
    pub role: Option<String>,
    /// A file holding the URL (a container or Kubernetes secret), read again every
    /// [`url_refresh`](Self::url_refresh): when it changes (a rotated password), connections
    /// opened from then on use it, without a restart; open ones stay until they close. `url`
    /// holds the file's content at start. Default: none.
    pub url_file: Option<std::path::PathBuf>,
    /// How often `url_file` is read again (default 10 s).
    pub url_refresh: Duration,
}

/// The clock outbox claim leases (and retry delays) are measured on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseClock {
    /// The database server's `now()` (the default): every relay, whatever its host's clock,
    /// agrees on when a lease ends.
    #[default]
    Database,
    /// The stores' injected [`Clock`](credo_ports::Clock): for tests that move time by hand.
    Store,
}

impl PgConfig {
    /// Defaults for everything but the URL (a `&str`, a `String` or a [`SecretString`]).
    pub fn new(url: impl Into<SecretString>) -> Self {
        Self {
            url: url.into(),
            max_connections: 20,
            outbox_connections: 2,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
            schema: None,
            migrations_table: DEFAULT_MIGRATIONS_TABLE.into(),
            lease_clock: LeaseClock::Database,
            role: None,
            url_file: None,
            url_refresh: Duration::from_secs(10),
        }
    }

    /// Defaults, with the URL read from `path` (a container secret) and watched for changes
    /// ([`url_file`](Self::url_file)). `InvalidInput` naming the file (never its content)
    /// when it cannot be read.
    pub fn from_url_file(path: impl Into<std::path::PathBuf>) -> StoreResult<Self> {
        let path = path.into();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            StoreError::invalid("url_file", format!("{}: {}", path.display(), e.kind()))
        })?;
        let mut c = Self::new(redact::secret_file_text(text));
        c.url_file = Some(path);
        Ok(c)
    }

    /// The URL with its secrets replaced by `***` ([`credo_ports::redact::redact_url`]), for
    /// logs and errors.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact::redact_url(self.url.expose_secret())
    }

    /// Checks every setting before anything connects; the error names the field
    /// (`url`, `max_connections`, `outbox_connections`, `acquire_timeout`,
    /// `statement_timeout`, `schema`, `migrations_table`, `role`). A zero timeout is refused (the
    /// drivers read 0 as "no timeout"), as is one under a millisecond (it would round to 0),
    /// a `statement_timeout` beyond PostgreSQL's limit (2^31 - 1 ms), an acquire timeout over
    /// [`MAX_TIMEOUT`], and a pool of 0 or over [`MAX_CONNECTIONS`].
    pub fn validate(&self) -> StoreResult<()> {
        if self.url.expose_secret().trim().is_empty() {
            return Err(StoreError::invalid("url", "must not be empty"));
        }
        if let Err(e) = PgConnectOptions::from_str(self.url.expose_secret()) {
            return Err(self.url_error(e));
        }
        for (field, n) in [
            ("max_connections", self.max_connections),
            ("outbox_connections", self.outbox_connections),
        ] {
            if n == 0 || n > MAX_CONNECTIONS {
                return Err(StoreError::invalid(
                    field,
                    format!("{n}: must be 1..={MAX_CONNECTIONS}"),
                ));
            }
        }
        credo_ports::validate::timeout("acquire_timeout", self.acquire_timeout, MAX_TIMEOUT)?;
        credo_ports::validate::timeout(
            "statement_timeout",
            self.statement_timeout,
            Duration::from_millis(i32::MAX as u64),
        )?;
        if let Some(schema) = &self.schema
            && !valid_identifier(schema)
        {
            return Err(StoreError::invalid(
                "schema",
                "must be 1..=63 of [a-z0-9_], not starting with a digit",
            ));
        }
        if !valid_identifier(&self.migrations_table) {
            return Err(StoreError::invalid(
                "migrations_table",
                "must be 1..=63 of [a-z0-9_], not starting with a digit",
            ));
        }
        if self.url_file.is_some() {
            credo_ports::validate::timeout("url_refresh", self.url_refresh, MAX_TIMEOUT)?;
        }
        if let Some(role) = &self.role
            && !valid_identifier(role)
        {
            return Err(StoreError::invalid(
                "role",
                "must be 1..=63 of [a-z0-9_], not starting with a digit",
            ));
        }
        Ok(())
    }

    /// Every secret of the URL, for scrubbing driver errors.
    pub(crate) fn secrets(&self) -> Vec<String> {
        redact::url_secrets(self.url.expose_secret())
    }

    pub(crate) fn url_error(&self, e: sqlx::Error) -> StoreError {
        let reason = match self.redacted_url().as_str() {
            // Nothing of an unparseable URL is shown, not even the driver's view of it.
            redact::UNPARSEABLE_URL => {
                format!("{}: not a postgres:// URL", redact::UNPARSEABLE_URL)
            }
            shown => format!(
                "{shown}: {}",
                redact::scrub(&e.to_string(), &self.secrets())
            ),
        };
        StoreError::invalid("url", reason)
    }
}

/// Largest pool [`PgConfig::validate`] accepts (PostgreSQL's own `max_connections` is far
/// lower on any real server).
pub const MAX_CONNECTIONS: u32 = 10_000;

/// Longest timeout [`PgConfig::validate`] accepts where PostgreSQL sets no limit of its own
/// (one day): longer is a configuration mistake, and `Instant + Duration` would overflow
/// on absurd values.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &self.redacted_url())
            .field("max_connections", &self.max_connections)
            .field("outbox_connections", &self.outbox_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("schema", &self.schema)
            .field("migrations_table", &self.migrations_table)
            .field("lease_clock", &self.lease_clock)
            .finish()
    }
}

/// The URL with its secrets replaced by `***`: a thin wrapper over the one redactor,
/// [`credo_ports::redact::redact_url`] (passwords whatever characters they hold, secret query
/// parameters, and unparseable URLs replaced whole).
#[must_use]
pub fn redact(url: &str) -> String {
    redact::redact_url(url)
}

pub(crate) fn valid_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://u:s3cret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact("postgres://u:p@ss:w@h/db?sslmode=verify-full"),
            "postgres://u:***@h/db?sslmode=verify-full"
        );
        assert_eq!(
            redact("postgres://h/db?user=u&password=x"),
            "postgres://h/db?user=u&password=***"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        let dbg = format!("{:?}", PgConfig::new("postgres://u:hunter2@h/db"));
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    /// Every documented bound is accepted, one past it refused.
    #[test]
    fn limits_are_inclusive_at_their_documented_values() {
        let ok = PgConfig::new("postgres://u@h/db");
        type Change = Box<dyn Fn(&mut PgConfig, bool)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "max_connections",
                Box::new(|c, past| c.max_connections = MAX_CONNECTIONS + u32::from(past)),
            ),
            (
                "outbox_connections",
                Box::new(|c, past| c.outbox_connections = MAX_CONNECTIONS + u32::from(past)),
            ),
            (
                "acquire_timeout",
                Box::new(|c, past| {
                    c.acquire_timeout = MAX_TIMEOUT + Duration::from_millis(u64::from(past))
                }),
            ),
            (
                "statement_timeout",
                Box::new(|c, past| {
                    c.statement_timeout = Duration::from_millis(i32::MAX as u64 + u64::from(past))
                }),
            ),
        ];
        for (field, change) in cases {
            let mut at = ok.clone();
            change(&mut at, false);
            assert!(at.validate().is_ok(), "{field} at its bound: {at:?}");
            let mut past = ok.clone();
            change(&mut past, true);
            assert!(
                matches!(past.validate(), Err(StoreError::InvalidInput { field: f, .. }) if f == field),
                "{field} past its bound: {past:?}"
            );
        }
        let mut smallest = ok.clone();
        smallest.max_connections = 1;
        smallest.outbox_connections = 1;
        smallest.acquire_timeout = Duration::from_millis(1);
        smallest.statement_timeout = Duration::from_millis(1);
        smallest.validate().unwrap();
    }

    /// Logs and errors show every setting and where the server is, never a secret.
    #[test]
    fn the_redacted_url_and_debug_keep_everything_but_secrets() {
        let c = PgConfig::new("postgres://app:s3cret@db.internal:5433/credo?sslmode=require");
        let shown = "postgres://app:***@db.internal:5433/credo?sslmode=require";
        assert_eq!(c.redacted_url(), shown);
        let dbg = format!("{c:?}");
        for part in [
            shown,
            "max_connections: 20",
            "outbox_connections: 2",
            "acquire_timeout: 5s",
            "statement_timeout: 5s",
            "schema: None",
            "migrations_table: \"_credo_storage_migrations\"",
            "lease_clock: Database",
        ] {
            assert!(dbg.contains(part), "{part} missing from {dbg}");
        }
        assert!(!dbg.contains("s3cret"), "{dbg}");
    }

    #[test]
    fn every_duration_and_size_is_validated_by_field() {
        let ok = PgConfig::new("postgres://u@h/db");
        ok.validate().unwrap();
        type Change = Box<dyn Fn(&mut PgConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("url", Box::new(|c| c.url = " ".into())),
            (
                "url",
                Box::new(|c| c.url = "postgres://u:hunter2@h:port/db".into()),
            ),
            ("max_connections", Box::new(|c| c.max_connections = 0)),
            (
                "max_connections",
                Box::new(|c| c.max_connections = u32::MAX),
            ),
            ("outbox_connections", Box::new(|c| c.outbox_connections = 0)),
            (
                "acquire_timeout",
                Box::new(|c| c.acquire_timeout = Duration::ZERO),
            ),
            (
                "acquire_timeout",
                Box::new(|c| c.acquire_timeout = Duration::MAX),
            ),
            (
                "statement_timeout",
                Box::new(|c| c.statement_timeout = Duration::ZERO),
            ),
            (
                "statement_timeout",
                Box::new(|c| c.statement_timeout = Duration::from_micros(999)),
            ),
            (
                "statement_timeout",
                Box::new(|c| c.statement_timeout = Duration::from_millis(1 << 31)),
            ),
            ("schema", Box::new(|c| c.schema = Some("Public".into()))),
            (
                "migrations_table",
                Box::new(|c| c.migrations_table = "a.b".into()),
            ),
        ];
        for (field, change) in cases {
            let mut c = ok.clone();
            change(&mut c);
            match c.validate() {
                Err(StoreError::InvalidInput { field: f, reason }) => {
                    assert_eq!(f, field, "{reason}");
                    assert!(!reason.contains("hunter2"), "{reason}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_identifier("t_0123abc"));
        for bad in ["", "1abc", "a-b", "A", "a;drop", &"a".repeat(64)] {
            assert!(!valid_identifier(bad), "{bad}");
        }
    }
}
