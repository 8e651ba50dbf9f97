//! The one redactor of credo-storage: what every adapter and the facade print in place of a
//! connection URL, a client property or a driver error that could hold a secret.
//!
//! The rules, chosen so that a doubt always redacts more, never less:
//!
//! - **Userinfo**: the password of `scheme://user:password@host` is replaced by `***`, whatever
//!   characters it holds, encoded or not (`/`, `?`, `#`, `@`, `:`, `%`, spaces). The userinfo
//!   ends at the *last* `@` of the URL, so an `@`, `/`, `?` or `#` inside the password cannot
//!   cut it short (an `@` in the query makes more of the URL hidden, which is the safe side).
//!   A user name is shown only when it is made of URL characters that need no quoting; a
//!   userinfo without `:` is shown only for PostgreSQL (where it is the user name; Redis reads
//!   it as a password).
//! - **Query parameters** whose name (case-insensitively, percent-decoded) contains `pass`,
//!   `secret`, `token`, `key`, `credential`, `jaas` or `auth` have their value replaced.
//! - A **fragment** is replaced (drivers ignore it; it can only be a cut-off secret).
//! - A URL that cannot be parsed (no `scheme://`, or a host part with characters no host has)
//!   is replaced entirely by [`UNPARSEABLE_URL`].
//!
//! ```
//! use credo_ports::redact::redact_url;
//! assert_eq!(
//!     redact_url("postgres://u:p@ss/w?rd#x@db:5432/credo?sslpassword=k&sslmode=verify-full"),
//!     "postgres://u:***@db:5432/credo?sslpassword=***&sslmode=verify-full",
//! );
//! assert_eq!(redact_url("not a url, maybe a password"), credo_ports::redact::UNPARSEABLE_URL);
//! ```

/// What replaces a secret.
pub const REDACTED: &str = "***";

/// What replaces a URL that cannot be parsed (it is never printed, not even in part).
pub const UNPARSEABLE_URL: &str = "<unparseable url, redacted>";

/// Words that make a query parameter or client property secret when its name contains one.
const SECRET_WORDS: &[&str] = &[
    "pass",
    "secret",
    "token",
    "key",
    "credential",
    "jaas",
    "auth",
    "oauthbearer.config",
    "pwd",
];

/// Whether a query parameter or client property of this name holds a secret (`password`,
/// `sslpassword`, `sasl.password`, `ssl.key.password`, `ssl.keystore.password`,
/// `sasl.oauthbearer.client.secret`, `ssl.key.pem`, `sasl.oauthbearer.config`,
/// `sasl.jaas.config`, `token`, `api_key`, ...). Case-insensitive, percent-decoded.
#[must_use]
pub fn is_secret_name(name: &str) -> bool {
    let name = percent_decode(name).to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// The value of a client property as it may be shown: [`REDACTED`] when
/// [`is_secret_name`] says the property is secret, the value otherwise.
#[must_use]
pub fn redact_property<'a>(name: &str, value: &'a str) -> &'a str {
    if is_secret_name(name) {
        REDACTED
    } else {
        value
    }
}

/// The pieces of a URL, split by [`split_url`]. Every field borrows from the URL.
struct Parts<'a> {
    scheme: &'a str,
    /// Userinfo without the `@`, if there is one.
    userinfo: Option<&'a str>,
    host: &'a str,
    /// From the `/` up to the query or fragment (empty if none).
    path: &'a str,
    /// Without the `?`.
    query: Option<&'a str>,
    /// Without the `#`.
    fragment: Option<&'a str>,
}

fn valid_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Characters of a host list (`h1:5432,h2:5432`, `[::1]:6379`, `%2Fvar%2Frun` sockets).
fn valid_host(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']' | ',' | '%')
    })
}

/// Characters a user name may be shown with: unreserved, sub-delimiters and escapes.
fn plain_user(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '.' | '_' | '~' | '%' | '!' | '$' | '\'' | '(' | ')' | '*' | '+' | ',' | ';'
            )
    })
}

fn split_url(url: &str) -> Option<Parts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    if !valid_scheme(scheme) {
        return None;
    }
    let (userinfo, tail) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let host_end = tail.find(['/', '?', '#']).unwrap_or(tail.len());
    let host = &tail[..host_end];
    if !valid_host(host) {
        return None;
    }
    let after = &tail[host_end..];
    let (before_fragment, fragment) = match after.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (after, None),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    Some(Parts {
        scheme,
        userinfo,
        host,
        path,
        query,
        fragment,
    })
}

fn is_postgres(scheme: &str) -> bool {
    scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")
}

fn shown_userinfo(scheme: &str, userinfo: &str) -> String {
    match userinfo.split_once(':') {
        Some((user, _)) if plain_user(user) => format!("{user}:{REDACTED}"),
        Some(_) => format!("{REDACTED}:{REDACTED}"),
        None => {
            if is_postgres(scheme) && plain_user(userinfo) {
                userinfo.to_string()
            } else {
                REDACTED.to_string()
            }
        }
    }
}

/// The URL with every secret replaced by `***` (see the [module](self) for the rules), or
/// [`UNPARSEABLE_URL`] when it cannot be parsed. For logs, errors and `Debug`.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some(p) = split_url(url) else {
        return UNPARSEABLE_URL.to_string();
    };
    let mut out = format!("{}://", p.scheme);
    if let Some(userinfo) = p.userinfo {
        out.push_str(&shown_userinfo(p.scheme, userinfo));
        out.push('@');
    }
    out.push_str(p.host);
    out.push_str(p.path);
    if let Some(query) = p.query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_name(k) => format!("{k}={REDACTED}"),
                None if is_secret_name(kv) => REDACTED.to_string(),
                _ => kv.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    if p.fragment.is_some_and(|f| !f.is_empty()) {
        out.push('#');
        out.push_str(REDACTED);
    }
    out
}

/// Every secret a URL holds, as written and percent-decoded: the password, the values of
/// secret query parameters, a fragment, and the whole URL when it cannot be parsed. Driver
/// errors are passed through [`scrub`] with these before they are shown.
#[must_use]
pub fn url_secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Some(p) = split_url(url) else {
        found.push(url.to_string());
        return finish(found);
    };
    if let Some(userinfo) = p.userinfo {
        // Which `@` ends the userinfo is a guess when there are several: every candidate's
        // password is a secret.
        for (at, _) in userinfo.match_indices('@').chain([(userinfo.len(), "")]) {
            match userinfo[..at].split_once(':') {
                Some((user, password)) => {
                    found.push(password.to_string());
                    if !plain_user(user) {
                        found.push(user.to_string());
                    }
                }
                // The user name of PostgreSQL, shown by `redact_url` too.
                None if is_postgres(p.scheme) && plain_user(&userinfo[..at]) => {}
                None => found.push(userinfo[..at].to_string()),
            }
        }
    }
    if let Some(query) = p.query {
        for kv in query.split('&') {
            match kv.split_once('=') {
                Some((k, v)) if is_secret_name(k) => found.push(v.to_string()),
                None if is_secret_name(kv) => found.push(kv.to_string()),
                _ => {}
            }
        }
    }
    if let Some(f) = p.fragment {
        found.push(f.to_string());
    }
    finish(found)
}

/// Adds the decoded forms, drops empties and duplicates, longest first (so that a secret
/// containing another is replaced whole).
fn finish(mut found: Vec<String>) -> Vec<String> {
    let decoded: Vec<String> = found.iter().map(|s| percent_decode(s)).collect();
    found.extend(decoded);
    found.retain(|s| !s.is_empty());
    found.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    found.dedup();
    found
}

/// A secret file's text (`*_FILE`, a container or Kubernetes secret) as the value it holds:
/// without the line ends editors and `echo` add. Nothing else is trimmed: a secret may begin
/// or end with a space.
///
/// ```
/// assert_eq!(credo_ports::redact::secret_file_text("pa ss\n".into()), "pa ss");
/// ```
#[must_use]
pub fn secret_file_text(mut text: String) -> String {
    while text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    text
}

/// `text` with every occurrence of every secret replaced by `***`, for driver error texts
/// that may echo a URL, a password or a property value.
#[must_use]
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

/// `error` with [`scrub`] applied to its message and to the driver error it keeps as its
/// source (see [`Cause`](crate::Cause)): for a driver error mapped into a
/// [`StoreError`](crate::StoreError) on a path that knows the connection's secrets.
#[must_use]
pub fn scrub_error(error: crate::StoreError, secrets: &[String]) -> crate::StoreError {
    use crate::StoreError as E;
    match error {
        E::Conflict(m) => E::Conflict(scrub(&m, secrets)),
        E::InvalidInput { field, reason } => E::InvalidInput {
            field,
            reason: scrub(&reason, secrets),
        },
        E::InvalidState(m) => E::InvalidState(scrub(&m, secrets)),
        E::Unavailable(c) => E::Unavailable(c.scrubbed(secrets)),
        E::Unsupported(m) => E::Unsupported(scrub(&m, secrets)),
        E::Corrupt(c) => E::Corrupt(c.scrubbed(secrets)),
        other @ E::NotFound { .. } => other,
    }
}

/// Every secret a connection has held, shared by its clones: a rotated credential file adds
/// the new ones, so driver errors stay scrubbed after a rotation too.
///
/// ```
/// use credo_ports::redact::Secrets;
/// let secrets = Secrets::new(vec!["first".into()]);
/// secrets.add(vec!["second".into()]);
/// assert_eq!(secrets.scrub("first, then second"), "***, then ***");
/// ```
#[derive(Clone, Default)]
pub struct Secrets(std::sync::Arc<std::sync::RwLock<Vec<String>>>);

impl Secrets {
    /// A set holding `found` (e.g. [`url_secrets`] of the URL at start).
    #[must_use]
    pub fn new(found: Vec<String>) -> Self {
        Self(std::sync::Arc::new(std::sync::RwLock::new(found)))
    }

    /// Adds the secrets not held yet (e.g. [`url_secrets`] of a rotated URL).
    pub fn add(&self, more: Vec<String>) {
        let mut all = self.0.write().unwrap_or_else(|e| e.into_inner());
        for s in more {
            if !all.contains(&s) {
                all.push(s);
            }
        }
    }

    /// [`scrub`] with every secret held.
    #[must_use]
    pub fn scrub(&self, text: &str) -> String {
        scrub(text, &self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// [`scrub_error`] with every secret held.
    #[must_use]
    pub fn scrub_error(&self, error: crate::StoreError) -> crate::StoreError {
        scrub_error(error, &self.0.read().unwrap_or_else(|e| e.into_inner()))
    }
}

impl std::fmt::Debug for Secrets {
    /// Only how many are held.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.read().map_or(0, |all| all.len());
        write!(f, "Secrets({n} held)")
    }
}

/// `%XX` escapes decoded (invalid escapes and invalid UTF-8 kept as they are, lossily).
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn passwords_with_special_characters_are_hidden_whole() {
        for (url, want) in [
            (
                "postgres://u:s3cret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            (
                "postgres://u:p@ss/w?rd#x@host:5432/db",
                "postgres://u:***@host:5432/db",
            ),
            (
                "postgres://u:p@ss:w@h/db?sslmode=verify-full",
                "postgres://u:***@h/db?sslmode=verify-full",
            ),
            ("redis://user:a b%20c@h:6379/0", "redis://user:***@h:6379/0"),
            ("rediss://:pw@h", "rediss://:***@h"),
            ("redis://tok@h", "redis://***@h"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://u/x@h/db", "postgres://***@h/db"),
            // A user name that would need quoting is not shown, with or without a password.
            ("postgres://u/x:pw@h/db", "postgres://***:***@h/db"),
            ("redis://us er:pw@h", "redis://***:***@h"),
            ("redis://h:1", "redis://h:1"),
            ("postgres://h1:1,h2:2/db", "postgres://h1:1,h2:2/db"),
            ("redis://[::1]:6379", "redis://[::1]:6379"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn secret_query_parameters_are_hidden() {
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=x&PassWord=y&sslmode=require"),
            "postgres://h/db?user=u&password=***&PassWord=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://h/db?sslpassword=x&sslkey=/k&api_token=t&my%5Fsecret=s"),
            "postgres://h/db?sslpassword=***&sslkey=***&api_token=***&my%5Fsecret=***"
        );
        assert_eq!(
            redact_url("redis-sentinel://h/0?sentinelPassword=x&node=a:1"),
            "redis-sentinel://h/0?sentinelPassword=***&node=a:1"
        );
        assert_eq!(redact_url("postgres://h/db#frag"), "postgres://h/db#***");
    }

    #[test]
    fn an_at_sign_in_the_query_hides_more_never_less() {
        let r = redact_url("postgres://u:pw@h/db?application_name=a@b");
        assert!(!r.contains("pw"), "{r}");
        let r = redact_url("postgres://h/db?user=a@b&password=x");
        assert!(!r.contains('x'), "{r}");
    }

    #[test]
    fn unparseable_urls_are_replaced_whole() {
        for url in [
            "",
            "s3cret",
            "host=db password=s3cret",
            "1x://h",
            "postgres://u:pw@h o s t/db",
            "postgres://u:pw@h&password=s3cret",
        ] {
            assert_eq!(redact_url(url), UNPARSEABLE_URL, "{url:?}");
        }
        assert_eq!(url_secrets("s3cret"), vec!["s3cret".to_string()]);
    }

    #[test]
    fn kafka_properties_holding_secrets_are_named() {
        for name in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "ssl.key.pem",
            "sasl.oauthbearer.config",
            "sasl.jaas.config",
            "SASL.PASSWORD",
        ] {
            assert!(is_secret_name(name), "{name}");
            assert_eq!(redact_property(name, "v"), REDACTED);
        }
        for name in ["security.protocol", "sasl.mechanism", "bootstrap.servers"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    /// Exactly the secrets, nothing more and nothing less: a list holding the whole text
    /// would scrub all of it, an empty one nothing, and a test that only looks for leaks
    /// passes both.
    #[test]
    fn url_secrets_are_exactly_the_secrets() {
        let none: Vec<String> = Vec::new();
        assert_eq!(url_secrets("postgres://u@h/db?sslmode=require"), none);
        assert_eq!(url_secrets("redis://tok@h"), ["tok"]);
        assert_eq!(url_secrets("postgres://u:pw@h/db"), ["pw"]);
        assert_eq!(url_secrets("postgres://u/x:pw@h/db"), ["u/x", "pw"]);
        assert_eq!(
            url_secrets("postgres://h/db?token&verbose&password=a%2Fb&user=u"),
            ["a%2Fb", "token", "a/b"]
        );
        assert_eq!(url_secrets("postgres://h/db#frag"), ["frag"]);
        assert_eq!(url_secrets("not a url"), ["not a url"]);
        // Several `@`: the password of every candidate end of the userinfo.
        assert_eq!(url_secrets("redis://u:p@q:r@h"), ["p@q:r", "p"]);
        assert_eq!(url_secrets("postgres://u@x@h"), ["u@x"]);
    }

    #[test]
    fn a_bare_query_parameter_is_hidden_only_when_its_name_is_secret() {
        assert_eq!(
            redact_url("postgres://h/db?token&verbose"),
            "postgres://h/db?***&verbose"
        );
    }

    /// Scrubbing replaces the secrets, longest first, and leaves every other character.
    #[test]
    fn scrub_changes_only_the_secrets() {
        let secrets = ["abc".to_string(), "ab".to_string(), String::new()];
        assert_eq!(scrub("x abcd ab y", &secrets), "x ***d *** y");
        assert_eq!(scrub("nothing here", &secrets), "nothing here");
    }

    #[test]
    fn scrub_replaces_raw_and_decoded_secrets() {
        let url = "postgres://u:a%2Fb@h/db?password=q%20r";
        let secrets = url_secrets(url);
        let text = format!("failed for {url}: password a/b, q r, a%2Fb");
        let s = scrub(&text, &secrets);
        for leak in ["a/b", "q r", "a%2Fb", "q%20r"] {
            assert!(!s.contains(leak), "{s}");
        }
    }

    /// `S3cr` + special characters + letters: a marker no other part of the output holds.
    fn secret() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(
                prop::sample::select(vec!['/', '?', '#', '@', ':', '%', ' ', '&', '=', '[']),
                1..6,
            ),
            "[a-zA-Z]{3,8}",
        )
            .prop_map(|(specials, letters)| {
                format!("S3cr{}{letters}", specials.into_iter().collect::<String>())
            })
    }

    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn no_secret_survives_redaction(
            pw in secret(),
            scheme in prop::sample::select(vec!["postgres", "postgresql", "redis", "rediss"]),
            query in prop::sample::select(vec!["", "?sslmode=require", "?application_name=a@b"]),
        ) {
            for url in [
                format!("{scheme}://user:{pw}@127.0.0.1:5432/db{query}"),
                format!("{scheme}://:{pw}@h{query}"),
                // A userinfo without `:` is the password for Redis (the user name for
                // PostgreSQL, which may be shown).
                if scheme.starts_with("redis") { format!("{scheme}://{pw}@h/db") } else { String::new() },
                format!("{scheme}://user:{}@h/db{query}", encode(&pw)),
                format!("{scheme}://h/db?sslmode=require&password={}", encode(&pw)),
                format!("{scheme}://h/db?Token={}&x=1", encode(&pw)),
            ].into_iter().filter(|u| !u.is_empty()) {
                let shown = redact_url(&url);
                prop_assert!(!shown.contains(&pw), "{url} -> {shown}");
                prop_assert!(!shown.contains(&encode(&pw)), "{url} -> {shown}");
                let text = format!("error: {url} / {pw} / {}", encode(&pw));
                let scrubbed = scrub(&text, &url_secrets(&url));
                prop_assert!(!scrubbed.contains(&pw), "{scrubbed}");
            }
        }

        #[test]
        fn redaction_never_panics(url in ".{0,64}") {
            let _ = redact_url(&url);
            let _ = url_secrets(&url);
        }
    }
}
