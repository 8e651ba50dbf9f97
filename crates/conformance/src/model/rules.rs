//! The model's own statement of the input rules and of the email identity policy.
//!
//! Written from DESIGN.md (§4 "Bad input", §5 the ports) and the port documentation, and
//! sharing no code with `credo_ports::validate` or the `validate` methods of the port types:
//! only their documented limits are taken from `credo_ports`, as constants (data, not code).
//! Each rule is spelled out plainly (loops, plain comparisons), in the order the port docs
//! list the fields, so that an error names the same field as the ports' validators do (the
//! suite compares only the error kind; the model's unit tests compare the field too).
//!
//! The unit tests at the end of this file cross-check every rule against `credo_ports` on
//! generated input (and the invisible set on every code point): the one place where the two
//! meet. A disagreement there is a bug in one of them, to be settled against the docs.

use credo_ports::audit::{MAX_METADATA_BYTES, MAX_METADATA_DEPTH};
use credo_ports::page::MAX_PAGE_SIZE;
use credo_ports::rate_limit::{
    CLOCK_LIMIT_US, MAX_KEY_LEN, MAX_PERIOD, MAX_RATE, MAX_TOLERANCE_US, MIN_PERIOD,
};
use credo_ports::validate::{MAX_EMAIL_LEN, MAX_PURPOSE_LEN, MAX_SCOPES, MAX_TEXT_LEN};
use credo_ports::{
    AuditEvent, GrantConsent, NewSession, NewUser, PageRequest, RateLimitPolicy, SessionStatus,
    StoreError, StoreResult, Timestamp, UserUpdate,
};
use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization;

/// Longest local part of an email (before the `@`), in bytes: RFC 5321 §4.5.3.1.1, as
/// documented on `credo_ports::validate::email` ("a 1..=64 byte local part").
const MAX_LOCAL_PART_LEN: usize = 64;

/// Longest audit action, in bytes, as documented on `credo_ports::validate::action`.
const MAX_ACTION_LEN: usize = 128;

/// The outcome of one rule.
type Rule = StoreResult<()>;

fn invalid(field: &'static str, reason: impl Into<String>) -> Rule {
    Err(StoreError::InvalidInput {
        field,
        reason: reason.into(),
    })
}

// ---------------------------------------------------------------------------------------------
// Free text.

/// A required free-text field: not empty or blank (only whitespace), at most
/// [`MAX_TEXT_LEN`] bytes, and no control character (NUL included) anywhere.
pub(crate) fn text(field: &'static str, value: &str) -> Rule {
    if value.trim().is_empty() {
        return invalid(field, "empty or only whitespace");
    }
    if value.len() > MAX_TEXT_LEN {
        return invalid(
            field,
            format!("{} bytes, more than {MAX_TEXT_LEN}", value.len()),
        );
    }
    for c in value.chars() {
        if c.is_control() {
            return invalid(field, format!("control character {c:?}"));
        }
    }
    Ok(())
}

/// An optional free-text field: absent is fine; present, the rules of [`text`] (a blank value
/// is refused: absent is spelled `None`).
pub(crate) fn optional_text(field: &'static str, value: Option<&str>) -> Rule {
    match value {
        None => Ok(()),
        Some(v) => text(field, v),
    }
}

/// A timestamp that is to be stored: inside `Timestamp::MIN ..= Timestamp::MAX` (years 0001
/// to 9999, the documented storable range).
pub(crate) fn storable(field: &'static str, t: Timestamp) -> Rule {
    if t < Timestamp::MIN || t > Timestamp::MAX {
        return invalid(field, "outside the storable range 0001..=9999");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The email identity policy.

/// Format characters (general category `Cf`), as ranges of code points (UnicodeData.txt;
/// unchanged from Unicode 15.0 to 18.0).
const FORMAT_CHARACTERS: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Default-ignorable code points (property `Default_Ignorable_Code_Point`,
/// DerivedCoreProperties.txt): soft hyphen, combining grapheme joiner, Hangul fillers, Khmer
/// inherent vowels, Mongolian variation selectors, zero-width spaces and joiners, bidi
/// controls, invisible operators, variation selectors, byte-order mark, tags and the
/// reserved blocks around them.
const DEFAULT_IGNORABLE: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
];

/// A character that renders as nothing, so that two addresses looking identical could
/// register as two users: a format character or a default-ignorable code point.
pub(crate) fn invisible(c: char) -> bool {
    let cp = u32::from(c);
    FORMAT_CHARACTERS
        .iter()
        .chain(DEFAULT_IGNORABLE)
        .any(|&(first, last)| first <= cp && cp <= last)
}

/// The form an email is stored in: surrounding whitespace removed, then composed (NFC); case
/// kept.
pub(crate) fn stored_email(value: &str) -> String {
    value.trim().nfc().collect()
}

/// A plausible email, judged in its stored form ([`stored_email`]): not empty, at most
/// [`MAX_EMAIL_LEN`] bytes, no whitespace, control or [`invisible`] character, exactly one
/// `@` with a local part of 1 to 64 bytes before it, and after it a domain with at least one
/// dot and no empty label.
pub(crate) fn email(value: &str) -> Rule {
    let e = stored_email(value);
    if e.is_empty() {
        return invalid("email", "empty");
    }
    if e.len() > MAX_EMAIL_LEN {
        return invalid("email", format!("more than {MAX_EMAIL_LEN} bytes"));
    }
    for c in e.chars() {
        if c.is_whitespace() || c.is_control() {
            return invalid("email", format!("whitespace or control character {c:?}"));
        }
        if invisible(c) {
            return invalid("email", format!("invisible character {c:?}"));
        }
    }
    let at_signs = e.chars().filter(|&c| c == '@').count();
    if at_signs != 1 {
        return invalid("email", format!("{at_signs} '@' instead of one"));
    }
    let (local, domain) = e.split_once('@').expect("one '@'");
    if local.is_empty() || local.len() > MAX_LOCAL_PART_LEN {
        return invalid("email", "local part must be 1..=64 bytes");
    }
    if !domain.contains('.') {
        return invalid("email", "domain without a dot");
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return invalid("email", "domain with an empty label");
        }
    }
    Ok(())
}

/// At most this many rounds of [`email_key_round`]. The policy asks for a fixed point; the
/// bound only guards the loop (every code point settles after one round, see the tests).
const EMAIL_KEY_ROUNDS: usize = 16;

/// The key two emails are compared by (uniqueness per tenant, `find_by_email`): the trimmed
/// email put through [`email_key_round`] until it no longer changes, so that the key of a key
/// is itself.
pub(crate) fn email_key(value: &str) -> String {
    let mut key = value.trim().to_string();
    for _ in 0..EMAIL_KEY_ROUNDS {
        let next = email_key_round(&key);
        if next == key {
            break;
        }
        key = next;
    }
    key
}

/// One round of the email key, in the policy's order:
/// 1. compatibility normalization (NFKC: full-width `Ａ` is `A`, `ﬁ` is `fi`);
/// 2. lower case, character by character (so `Σ` is always `σ`, wherever it stands), and
///    the final sigma `ς` folded into `σ`;
/// 3. NFKC again (lower-casing can leave a string that is not normalized);
/// 4. surrounding whitespace removed (normalization can turn a character into a space).
fn email_key_round(value: &str) -> String {
    let compatible: String = value.nfkc().collect();
    let mut lowered = String::new();
    for c in compatible.chars() {
        for l in c.to_lowercase() {
            lowered.push(if l == 'ς' { 'σ' } else { l });
        }
    }
    let renormalized: String = lowered.nfkc().collect();
    renormalized.trim().to_string()
}

// ---------------------------------------------------------------------------------------------
// Purposes, actions, pages.

/// A consent purpose: 1 to [`MAX_PURPOSE_LEN`] bytes, a lower-case ASCII letter first, then
/// only `a-z`, `0-9`, `_`, `.`, `:` and `-`.
pub(crate) fn purpose(value: &str) -> Rule {
    if value.is_empty() || value.len() > MAX_PURPOSE_LEN {
        return invalid("purpose", format!("must be 1..={MAX_PURPOSE_LEN} bytes"));
    }
    let first = value.chars().next().expect("not empty");
    if !first.is_ascii_lowercase() {
        return invalid("purpose", "must start with a-z");
    }
    for c in value.chars() {
        let allowed = c.is_ascii_lowercase() || c.is_ascii_digit() || "_.:-".contains(c);
        if !allowed {
            return invalid("purpose", format!("character {c:?} not allowed"));
        }
    }
    Ok(())
}

/// An audit action: at most 128 bytes, at least two words separated by dots, each word a
/// lower-case ASCII letter followed by `a-z`, `0-9` or `_`.
pub(crate) fn action(value: &str) -> Rule {
    let bad = || invalid("action", "must be dot-separated lower-case words, e.g. a.b");
    if value.is_empty() || value.len() > MAX_ACTION_LEN || !value.contains('.') {
        return bad();
    }
    for word in value.split('.') {
        let mut chars = word.chars();
        match chars.next() {
            Some(c) if c.is_ascii_lowercase() => {}
            _ => return bad(),
        }
        for c in chars {
            if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                return bad();
            }
        }
    }
    Ok(())
}

/// A page request: 1 to [`MAX_PAGE_SIZE`] items (larger is refused, never capped).
pub(crate) fn page(page: &PageRequest) -> Rule {
    if page.limit == 0 || page.limit > MAX_PAGE_SIZE {
        return invalid("limit", format!("must be 1..={MAX_PAGE_SIZE}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Users.

/// Input of a user creation: email, then given and family names.
pub(crate) fn new_user(u: &NewUser) -> Rule {
    email(&u.email)?;
    text("first_name", &u.first_name)?;
    text("last_name", &u.last_name)
}

/// The names of the fields an update sets, in the order the update type declares them
/// (recorded in `user.updated`).
pub(crate) fn changed_fields(u: &UserUpdate) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if u.email.is_some() {
        fields.push("email");
    }
    if u.email_verified.is_some() {
        fields.push("email_verified");
    }
    if u.first_name.is_some() {
        fields.push("first_name");
    }
    if u.last_name.is_some() {
        fields.push("last_name");
    }
    if u.status.is_some() {
        fields.push("status");
    }
    fields
}

/// A user update: at least one field set, and every set field valid.
pub(crate) fn user_update(u: &UserUpdate) -> Rule {
    if changed_fields(u).is_empty() {
        return invalid("update", "nothing to change");
    }
    if let Some(e) = &u.email {
        email(e)?;
    }
    if let Some(n) = &u.first_name {
        text("first_name", n)?;
    }
    if let Some(n) = &u.last_name {
        text("last_name", n)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Sessions and tokens.

/// A new session at `now`: client id; 1 to [`MAX_SCOPES`] scopes, each valid text without
/// whitespace and none repeated; not created revoked; optional device fields; `expires_at`
/// storable and later than `now`.
pub(crate) fn new_session(s: &NewSession, now: Timestamp) -> Rule {
    text("client_id", &s.client_id)?;
    if s.scopes.is_empty() {
        return invalid("scopes", "at least one scope");
    }
    if s.scopes.len() > MAX_SCOPES {
        return invalid("scopes", format!("at most {MAX_SCOPES} scopes"));
    }
    for (i, scope) in s.scopes.iter().enumerate() {
        text("scopes", scope)?;
        if scope.chars().any(char::is_whitespace) {
            return invalid("scopes", "a scope holds whitespace");
        }
        for earlier in &s.scopes[..i] {
            if earlier == scope {
                return invalid("scopes", format!("{scope:?} given twice"));
            }
        }
    }
    if s.status == SessionStatus::Revoked {
        return invalid("status", "cannot be created revoked");
    }
    optional_text("user_agent", s.device.user_agent.as_deref())?;
    optional_text("ip_address", s.device.ip_address.as_deref())?;
    optional_text("device_id", s.device.device_id.as_deref())?;
    optional_text("device_name", s.device.device_name.as_deref())?;
    storable("expires_at", s.expires_at)?;
    if s.expires_at <= now {
        return invalid("expires_at", "not later than now");
    }
    Ok(())
}

/// A token id (JWT `jti`): a required text field.
pub(crate) fn jti(value: &str) -> Rule {
    text("jti", value)
}

/// A token revocation at `now`: a valid `jti`, `expires_at` storable and later than `now`.
pub(crate) fn token_revocation(id: &str, expires_at: Timestamp, now: Timestamp) -> Rule {
    jti(id)?;
    storable("expires_at", expires_at)?;
    if expires_at <= now {
        return invalid("expires_at", "not later than now");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Consents.

/// A grant at `now`: a valid purpose; an expiry, if any, storable and later than `now`.
pub(crate) fn grant(g: &GrantConsent, now: Timestamp) -> Rule {
    purpose(&g.purpose)?;
    if let Some(e) = g.expires_at {
        storable("expires_at", e)?;
        if e <= now {
            return invalid("expires_at", "not later than now");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Audit events.

/// An audit event: `occurred_at` storable; a valid action; optional texts; a valid purpose if
/// any; metadata nested at most [`MAX_METADATA_DEPTH`] levels (the object itself is level 1),
/// at most [`MAX_METADATA_BYTES`] as compact JSON, and no NUL in any key or string.
pub(crate) fn audit_event(e: &AuditEvent) -> Rule {
    storable("occurred_at", e.occurred_at)?;
    action(&e.action)?;
    optional_text("actor", e.actor.as_deref())?;
    if let Some(p) = &e.purpose {
        purpose(p)?;
    }
    optional_text("decision", e.decision.as_deref())?;
    optional_text("reason", e.reason.as_deref())?;
    optional_text("request_id", e.request_id.as_deref())?;
    // Depth first: the checks below recurse, and only through an object this shallow.
    for v in e.metadata.values() {
        if nests_deeper_than(v, MAX_METADATA_DEPTH - 1) {
            return invalid("metadata", "nested too deep");
        }
    }
    let size = serde_json::to_vec(&e.metadata).map_or(usize::MAX, |json| json.len());
    if size > MAX_METADATA_BYTES {
        return invalid("metadata", format!("{size} bytes as JSON"));
    }
    if object_has_nul(&e.metadata) {
        return invalid("metadata", "NUL character");
    }
    Ok(())
}

/// True when `v` is more than `levels` arrays or objects deep, counting itself (a scalar is 0
/// deep). Recurses no further than `levels + 1` calls.
fn nests_deeper_than(v: &Value, levels: usize) -> bool {
    let children: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => return false,
    };
    if levels == 0 {
        return true;
    }
    children
        .into_iter()
        .any(|child| nests_deeper_than(child, levels - 1))
}

fn object_has_nul(o: &Map<String, Value>) -> bool {
    o.iter().any(|(k, v)| k.contains('\0') || value_has_nul(v))
}

fn value_has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(value_has_nul),
        Value::Object(o) => object_has_nul(o),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limits.

/// A policy and a cost: limit and burst 1 to [`MAX_RATE`]; period [`MIN_PERIOD`] to
/// [`MAX_PERIOD`] and at least one microsecond per request; tolerance (emission interval x
/// burst) at most [`MAX_TOLERANCE_US`]; cost 1 to burst.
pub(crate) fn rate_policy(p: &RateLimitPolicy, cost: u32) -> Rule {
    if p.limit == 0 || p.limit > MAX_RATE {
        return invalid("limit", format!("must be 1..={MAX_RATE}"));
    }
    if p.burst == 0 || p.burst > MAX_RATE {
        return invalid("burst", format!("must be 1..={MAX_RATE}"));
    }
    if p.period < MIN_PERIOD || p.period > MAX_PERIOD {
        return invalid("period", "must be 1 ms ..= 24 h");
    }
    if p.period.as_micros() < u128::from(p.limit) {
        return invalid("period", "less than a microsecond per request");
    }
    let tolerance = i128::from(super::rate_limit::emission_interval_us(p)) * i128::from(p.burst);
    if tolerance > i128::from(MAX_TOLERANCE_US) {
        return invalid("burst", "tolerance over 31 days");
    }
    if cost == 0 || cost > p.burst {
        return invalid("cost", format!("must be 1..={}", p.burst));
    }
    Ok(())
}

/// A rate-limit key: at most [`MAX_KEY_LEN`] bytes and a required text field.
pub(crate) fn rate_key(key: &str) -> Rule {
    if key.len() > MAX_KEY_LEN {
        return invalid("key", format!("more than {MAX_KEY_LEN} bytes"));
    }
    text("key", key)
}

/// The clock a rate-limit check reads: strictly within ±[`CLOCK_LIMIT_US`] of the epoch.
pub(crate) fn rate_clock(now: Timestamp) -> Rule {
    let us = now.as_micros();
    if us <= -CLOCK_LIMIT_US || us >= CLOCK_LIMIT_US {
        return invalid("clock", "outside the rate limiter's clock range");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use credo_ports::{
        AuditCategory, ConsentId, Device, EventId, SessionId, TenantId, UserId, UserStatus,
        validate,
    };
    use proptest::prelude::*;
    use serde_json::json;
    use std::time::Duration;

    /// Kind and field of an outcome, the parts compared with `credo_ports`.
    fn outcome(r: &StoreResult<()>) -> Result<(), (&'static str, &'static str)> {
        match r {
            Ok(()) => Ok(()),
            Err(StoreError::InvalidInput { field, .. }) => Err(("InvalidInput", field)),
            Err(e) => Err((e.kind(), "")),
        }
    }

    fn field(r: Rule) -> Option<&'static str> {
        match r {
            Ok(()) => None,
            Err(StoreError::InvalidInput { field, .. }) => Some(field),
            Err(e) => panic!("not InvalidInput: {e:?}"),
        }
    }

    #[test]
    fn email_keys_fold_case_compatibility_and_final_sigma() {
        // Upper-case Greek: both sigmas (medial and final) fold to σ.
        assert_eq!(email_key("ΟΔΥΣΣΕΥΣ@x.gr"), "οδυσσευσ@x.gr");
        assert_eq!(email_key("οδυσσευς@x.gr"), "οδυσσευσ@x.gr");
        assert_eq!(email_key("ΟΔΥΣΣΕΥΣ@x.gr"), email_key("Οδυσσευς@X.GR"));
        // Full-width letters and ligatures compare as their plain letters.
        assert_eq!(email_key(" ＡＤＡ@ｅｘａｍｐｌｅ.com "), "ada@example.com");
        assert_eq!(email_key("ﬁ@x.io"), "fi@x.io");
        // Canonical variants share one key; the stored form is composed, case kept.
        assert_eq!(email_key("Jose\u{301}@x.io"), email_key("JOS\u{c9}@x.io"));
        assert_eq!(stored_email(" Jose\u{301}@x.io "), "Jos\u{e9}@x.io");
        // Scripts are not folded into each other.
        assert_ne!(email_key("\u{430}da@x.io"), email_key("ada@x.io"));
        // The key of a key is itself, also where one step undoes another.
        for v in ["㎂@x.io", "¨a@x.io", "ΣΑΣ@x.gr", "İ@x.io", "\u{1E9E}@x.io"] {
            let k = email_key(v);
            assert_eq!(email_key(&k), k, "{v:?}");
        }
    }

    #[test]
    fn invisible_characters_are_refused_in_emails() {
        for bad in [
            "ad\u{200B}a@example.com",  // zero-width space
            "ada\u{200D}@example.com",  // zero-width joiner
            "ada@exa\u{AD}mple.com",    // soft hyphen
            "\u{FEFF}ada@example.com",  // byte-order mark, leading
            "ada@example.com\u{202E}",  // bidi override, trailing
            "ada\u{FE0F}@example.com",  // variation selector
            "ada@example\u{E0041}.com", // tag
            "a\u{2066}da@example.com",  // bidi isolate
            "a\u{3164}da@example.com",  // Hangul filler
            "a\u{600}da@example.com",   // Arabic number sign (Cf)
        ] {
            assert_eq!(field(email(bad)), Some("email"), "{bad:?}");
            assert!(validate::email(bad).is_err(), "ports agree on {bad:?}");
        }
        for ok in ["josé@example.com", "ユーザー@例え.jp", "ＡＤＡ@example.com"] {
            assert_eq!(email(ok), Ok(()), "{ok}");
        }
        // Whitespace around is trimmed before judging; inside it is refused.
        assert_eq!(email("  a@b.co\u{3000}"), Ok(()));
        assert_eq!(field(email("a\u{3000}b@c.de")), Some("email"));
    }

    #[test]
    fn email_shapes() {
        for bad in [
            "", "  ", "nobody", "a@b", "@b.co", "a@@b.co", "a@b@c.co", "a b@c.de", "a@b..co",
            "a\0@b.co", "a@.co", "a@b.", "a@b.co.",
        ] {
            assert_eq!(field(email(bad)), Some("email"), "{bad:?}");
        }
        let local64 = format!("{}@x.co", "a".repeat(64));
        assert_eq!(email(&local64), Ok(()));
        let local65 = format!("{}@x.co", "a".repeat(65));
        assert_eq!(field(email(&local65)), Some("email"));
        // 254 bytes in the stored form, not in the input: surrounding spaces do not count.
        let long = format!("a@{}.co", "b".repeat(MAX_EMAIL_LEN - 5));
        assert_eq!(long.len(), MAX_EMAIL_LEN);
        assert_eq!(email(&format!("  {long}  ")), Ok(()));
        assert_eq!(field(email(&format!("{long}b"))), Some("email"));
    }

    #[test]
    fn texts_purposes_actions() {
        assert_eq!(text("f", "ok"), Ok(()));
        for bad in ["", " ", "\u{3000}", "a\0b", "\u{85}x", "é\u{7f}"] {
            assert_eq!(field(text("f", bad)), Some("f"), "{bad:?}");
        }
        assert_eq!(text("f", &"x".repeat(MAX_TEXT_LEN)), Ok(()));
        assert_eq!(field(text("f", &"x".repeat(MAX_TEXT_LEN + 1))), Some("f"));
        assert_eq!(optional_text("f", None), Ok(()));
        assert_eq!(field(optional_text("f", Some(" "))), Some("f"));
        assert_eq!(purpose("registry.check:v2"), Ok(()));
        for bad in ["", "Marketing", "1abc", "a b", "a\0", "é", &"a".repeat(65)] {
            assert_eq!(field(purpose(bad)), Some("purpose"), "{bad:?}");
        }
        assert_eq!(action("consent.granted"), Ok(()));
        assert_eq!(action("a.b_2.c"), Ok(()));
        for bad in [
            "consent",
            "Consent.granted",
            "consent..x",
            ".x",
            "x.",
            "a.b\0",
            "a.2b",
        ] {
            assert_eq!(field(action(bad)), Some("action"), "{bad:?}");
        }
    }

    #[test]
    fn metadata_depth_size_and_nul() {
        let mut e = AuditEvent::new(
            TenantId::new(),
            Timestamp::EPOCH,
            AuditCategory::Security,
            "a.b",
        );
        // The object is level 1: 31 nested arrays inside it make 32 levels.
        let nested = |levels: usize| {
            let mut v = json!(1);
            for _ in 0..levels {
                v = Value::Array(vec![v]);
            }
            v
        };
        e.metadata
            .insert("k".into(), nested(MAX_METADATA_DEPTH - 1));
        assert_eq!(audit_event(&e), Ok(()));
        e.metadata.insert("k".into(), nested(MAX_METADATA_DEPTH));
        assert_eq!(field(audit_event(&e)), Some("metadata"));
        e.metadata.insert("k".into(), nested(2_000));
        assert_eq!(field(audit_event(&e)), Some("metadata"));
        // Scalars add no level; empty containers do.
        e.metadata.clear();
        assert!(!nests_deeper_than(&json!("s"), 0));
        assert!(nests_deeper_than(&json!([]), 0));
        assert!(!nests_deeper_than(&json!([[], {}]), 2));
        assert!(nests_deeper_than(&json!([[], {"a": {}}]), 2));
        // 16 KiB exactly passes, one byte more fails: {"k":"..."} is 8 bytes around the text.
        e.metadata
            .insert("k".into(), json!("x".repeat(MAX_METADATA_BYTES - 8)));
        assert_eq!(audit_event(&e), Ok(()));
        e.metadata
            .insert("k".into(), json!("x".repeat(MAX_METADATA_BYTES - 7)));
        assert_eq!(field(audit_event(&e)), Some("metadata"));
        e.metadata.clear();
        e.metadata.insert("a\0".into(), json!(1));
        assert_eq!(field(audit_event(&e)), Some("metadata"));
        e.metadata.clear();
        e.metadata
            .insert("k".into(), json!({"n": [1, {"m": "a\0"}]}));
        assert_eq!(field(audit_event(&e)), Some("metadata"));
    }

    #[test]
    fn rate_policies_at_their_limits() {
        let p = |limit, period, burst| RateLimitPolicy {
            limit,
            period,
            burst,
        };
        let s = Duration::from_secs;
        assert_eq!(rate_policy(&p(100, s(60), 100), 1), Ok(()));
        assert_eq!(rate_policy(&p(100, s(60), 100), 100), Ok(()));
        assert_eq!(field(rate_policy(&p(100, s(60), 100), 101)), Some("cost"));
        assert_eq!(field(rate_policy(&p(100, s(60), 100), 0)), Some("cost"));
        assert_eq!(field(rate_policy(&p(0, s(1), 1), 1)), Some("limit"));
        assert_eq!(field(rate_policy(&p(1, s(1), 0), 1)), Some("burst"));
        assert_eq!(
            field(rate_policy(&p(1, Duration::ZERO, 1), 1)),
            Some("period")
        );
        assert_eq!(
            field(rate_policy(&p(1, Duration::MAX, 1), 1)),
            Some("period")
        );
        assert_eq!(rate_policy(&p(1, s(86_400), 1), 1), Ok(()));
        assert_eq!(field(rate_policy(&p(1, s(86_401), 1), 1)), Some("period"));
        // 1,000,000 per ms is less than a microsecond per request.
        let per_ms = p(MAX_RATE, Duration::from_millis(1), 1);
        assert_eq!(field(rate_policy(&per_ms, 1)), Some("period"));
        let one_us = p(1_000, Duration::from_millis(1), 1);
        assert_eq!(rate_policy(&one_us, 1), Ok(()));
        // Tolerance: 1 per day with a burst of 31 is 31 days exactly; 32 is over.
        assert_eq!(rate_policy(&p(1, s(86_400), 31), 1), Ok(()));
        assert_eq!(field(rate_policy(&p(1, s(86_400), 32), 1)), Some("burst"));
        assert_eq!(field(rate_key("")), Some("key"));
        assert_eq!(field(rate_key(&"k".repeat(MAX_KEY_LEN + 1))), Some("key"));
        assert_eq!(
            rate_clock(Timestamp::from_micros(CLOCK_LIMIT_US - 1)),
            Ok(())
        );
        assert_eq!(
            rate_clock(Timestamp::from_micros(1 - CLOCK_LIMIT_US)),
            Ok(())
        );
        assert!(rate_clock(Timestamp::from_micros(CLOCK_LIMIT_US)).is_err());
        assert!(rate_clock(Timestamp::from_micros(-CLOCK_LIMIT_US)).is_err());
        assert!(rate_clock(Timestamp::from_micros(i64::MIN)).is_err());
    }

    /// Rounds until the key stops changing, for every code point alone and between letters:
    /// only the first changes anything, well within the bound (`credo_ports` stops after
    /// four rounds, which therefore never cuts a key short here).
    #[test]
    fn email_keys_reach_their_fixed_point_quickly() {
        let rounds = |v: &str| {
            let mut key = v.trim().to_string();
            let mut n = 0;
            while email_key_round(&key) != key {
                key = email_key_round(&key);
                n += 1;
                assert!(n <= EMAIL_KEY_ROUNDS, "{v:?} does not settle");
            }
            n
        };
        let mut most = (0, String::new());
        for c in (0..=0x10_FFFFu32).filter_map(char::from_u32) {
            for v in [c.to_string(), format!("a{c}Σ@x.io")] {
                let n = rounds(&v);
                if n > most.0 {
                    most = (n, v);
                }
            }
        }
        assert!(most.0 <= 1, "{most:?}");
    }

    /// The invisible set equals `credo_ports::validate::is_invisible` on every code point.
    #[test]
    fn invisible_agrees_with_the_ports_on_every_code_point() {
        let differing: Vec<String> = (0..=0x10_FFFFu32)
            .filter_map(char::from_u32)
            .filter(|&c| invisible(c) != validate::is_invisible(c))
            .map(|c| format!("U+{:04X}", u32::from(c)))
            .collect();
        assert!(differing.is_empty(), "disagree on {differing:?}");
    }

    // -----------------------------------------------------------------------------------------
    // Cross-checks with `credo_ports` on generated input.

    /// Characters the rules treat specially, and a few plain ones.
    fn interesting_char() -> impl Strategy<Value = char> {
        prop_oneof![
            4 => prop::sample::select(vec!['a', 'Z', '0', '9', '.', '@', '_', ':', '-', '+']),
            2 => prop::sample::select(vec![
                ' ', '\t', '\n', '\0', '\u{7f}', '\u{85}', '\u{a0}', '\u{2000}', '\u{3000}',
            ]),
            2 => prop::sample::select(vec![
                '\u{ad}', '\u{34f}', '\u{61c}', '\u{115f}', '\u{180e}', '\u{200b}', '\u{200d}',
                '\u{202e}', '\u{2066}', '\u{3164}', '\u{fe0f}', '\u{feff}', '\u{ffa0}',
                '\u{e0041}', '\u{600}', '\u{110bd}',
            ]),
            3 => prop::sample::select(vec![
                'Σ', 'σ', 'ς', 'Ω', 'ω', 'Ａ', 'ａ', 'ﬁ', 'ﬀ', '㎂', '¨', '\u{301}', '\u{308}',
                'É', 'é', 'İ', 'ı', 'ß', '\u{1e9e}', 'K', 'Å', 'ǅ', '①', '½', 'µ', 'ſ', 'ᾈ',
                'ͅ', '\u{345}', '\u{1f88}', 'ﬆ', 'ガ', 'ｶ', '\u{ff9e}', 'а', 'Ⓐ', '𝐀', 'ǰ',
            ]),
            1 => any::<char>(),
        ]
    }

    fn interesting_text(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(interesting_char(), 0..max).prop_map(|v| v.into_iter().collect())
    }

    /// Email-shaped strings: a local part, `@`, labels, with interesting characters.
    fn emailish() -> impl Strategy<Value = String> {
        prop_oneof![
            interesting_text(24),
            (
                interesting_text(8),
                interesting_text(8),
                interesting_text(4)
            )
                .prop_map(|(l, d, t)| format!("{l}@{d}.{t}")),
            (1usize..80, 1usize..200).prop_map(|(l, d)| format!(
                " {}@{}.io ",
                "é".repeat(l),
                "e\u{301}".repeat(d)
            )),
        ]
    }

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            interesting_text(6).prop_map(Some),
            Just(Some("x".repeat(MAX_TEXT_LEN + 1))),
        ]
    }

    fn timestamp() -> impl Strategy<Value = Timestamp> {
        prop_oneof![
            Just(Timestamp::MIN),
            Just(Timestamp::MAX),
            Just(Timestamp::from_micros(Timestamp::MIN.as_micros() - 1)),
            Just(Timestamp::from_micros(Timestamp::MAX.as_micros() + 1)),
            Just(Timestamp::from_micros(i64::MIN)),
            Just(Timestamp::from_micros(i64::MAX)),
            (-3i64..=3).prop_map(|d| Timestamp::from_micros(1_700_000_000_000_000 + d)),
        ]
    }

    const NOW: Timestamp = Timestamp::from_micros(1_700_000_000_000_000);

    proptest! {
        #[test]
        fn email_policy_agrees_with_the_ports(v in emailish()) {
            prop_assert_eq!(outcome(&email(&v)), outcome(&validate::email(&v)), "{:?}", v);
            prop_assert_eq!(stored_email(&v), validate::normalize_email(&v), "{:?}", v);
            let key = email_key(&v);
            prop_assert_eq!(&key, &validate::email_key(&v), "{:?}", v);
            prop_assert_eq!(email_key(&key), key.clone(), "the key of a key, {:?}", v);
            // The stored form has the key of its input.
            prop_assert_eq!(email_key(&stored_email(&v)), key, "{:?}", v);
        }

        #[test]
        fn text_rules_agree_with_the_ports(v in interesting_text(12)) {
            prop_assert_eq!(outcome(&text("f", &v)), outcome(&validate::text("f", &v)));
            prop_assert_eq!(
                outcome(&optional_text("f", Some(&v))),
                outcome(&validate::optional_text("f", Some(&v)))
            );
            prop_assert_eq!(outcome(&purpose(&v)), outcome(&validate::purpose(&v)));
            prop_assert_eq!(outcome(&action(&v)), outcome(&validate::action(&v)));
            prop_assert_eq!(
                outcome(&rate_key(&v)),
                outcome(&credo_ports::rate_limit::validate_key(&v))
            );
            prop_assert_eq!(
                outcome(&jti(&v)),
                outcome(&credo_ports::sessions::validate_jti(&v))
            );
        }

        #[test]
        fn word_rules_agree_with_the_ports(
            v in "[a-zA-Z0-9_.:\\- é]{0,70}",
            long in 60usize..140,
        ) {
            prop_assert_eq!(outcome(&purpose(&v)), outcome(&validate::purpose(&v)), "{:?}", v);
            prop_assert_eq!(outcome(&action(&v)), outcome(&validate::action(&v)), "{:?}", v);
            let words = format!("a.{}", "b".repeat(long));
            prop_assert_eq!(outcome(&action(&words)), outcome(&validate::action(&words)));
            let p = "p".repeat(long);
            prop_assert_eq!(outcome(&purpose(&p)), outcome(&validate::purpose(&p)));
        }

        #[test]
        fn user_inputs_agree_with_the_ports(
            e in emailish(),
            first in interesting_text(4),
            last in interesting_text(4),
            set in prop::collection::vec(any::<bool>(), 5),
        ) {
            let new = NewUser::new(TenantId::new(), &e, &first, &last);
            prop_assert_eq!(outcome(&new_user(&new)), outcome(&new.validate()));
            let u = UserUpdate {
                email: set[0].then(|| e.clone()),
                email_verified: set[1].then_some(true),
                first_name: set[2].then(|| first.clone()),
                last_name: set[3].then(|| last.clone()),
                status: set[4].then_some(UserStatus::Inactive),
            };
            prop_assert_eq!(outcome(&user_update(&u)), outcome(&u.validate()));
            prop_assert_eq!(changed_fields(&u), u.changed_fields());
        }

        #[test]
        fn session_inputs_agree_with_the_ports(
            client in interesting_text(4),
            scopes in prop::collection::vec(
                prop_oneof![
                    Just("openid".to_string()),
                    Just("email".to_string()),
                    interesting_text(3),
                ],
                0..4,
            ),
            many in any::<bool>(),
            status in prop::sample::select(vec![
                SessionStatus::PendingConsent,
                SessionStatus::Active,
                SessionStatus::Revoked,
            ]),
            device in (opt_text(), opt_text(), opt_text(), opt_text()),
            expires_at in timestamp(),
        ) {
            let scopes = if many {
                (0..=MAX_SCOPES).map(|i| format!("s{i}")).collect()
            } else {
                scopes
            };
            let s = NewSession {
                id: SessionId::new(),
                tenant_id: TenantId::new(),
                user_id: UserId::new(),
                client_id: client.clone(),
                scopes,
                status,
                device: Device {
                    user_agent: device.0,
                    ip_address: device.1,
                    device_id: device.2,
                    device_name: device.3,
                },
                expires_at,
            };
            prop_assert_eq!(outcome(&new_session(&s, NOW)), outcome(&s.validate(NOW)));
            prop_assert_eq!(
                outcome(&token_revocation(&client, expires_at, NOW)),
                outcome(&credo_ports::sessions::validate_revocation(&client, expires_at, NOW))
            );
        }

        #[test]
        fn grants_agree_with_the_ports(
            p in prop_oneof![Just("marketing".to_string()), interesting_text(4)],
            expires_at in prop::option::of(timestamp()),
        ) {
            let g = GrantConsent {
                id: ConsentId::new(),
                tenant_id: TenantId::new(),
                user_id: UserId::new(),
                purpose: p,
                expires_at,
            };
            prop_assert_eq!(outcome(&grant(&g, NOW)), outcome(&g.validate(NOW)));
        }

        #[test]
        fn audit_events_agree_with_the_ports(
            occurred_at in timestamp(),
            act in prop_oneof![Just("consent.granted".to_string()), interesting_text(4)],
            texts in (opt_text(), opt_text(), opt_text(), opt_text()),
            purpose in prop_oneof![Just(None), Just(Some("p".to_string())), opt_text()],
            depth in 0usize..40,
            blob in prop_oneof![
                Just(0usize),
                (MAX_METADATA_BYTES - 40)..(MAX_METADATA_BYTES + 40),
            ],
            nul in any::<bool>(),
        ) {
            let mut nested = json!(if nul { "a\0" } else { "a" });
            for i in 0..depth {
                nested = if i % 2 == 0 { json!([nested]) } else { json!({ "o": nested }) };
            }
            let mut metadata = Map::new();
            metadata.insert("n".into(), nested);
            metadata.insert("b".into(), json!("é".repeat(blob / 2)));
            let e = AuditEvent {
                id: EventId::new(),
                tenant_id: TenantId::new(),
                occurred_at,
                category: AuditCategory::Operations,
                action: act,
                actor: texts.0,
                subject_user_id: None,
                purpose,
                decision: texts.1,
                reason: texts.2,
                request_id: texts.3,
                metadata,
            };
            prop_assert_eq!(outcome(&audit_event(&e)), outcome(&e.validate()));
        }

        #[test]
        fn pages_and_policies_agree_with_the_ports(
            limit in prop_oneof![0usize..3, (MAX_PAGE_SIZE - 1)..(MAX_PAGE_SIZE + 2)],
            rate in (
                prop_oneof![Just(0u32), Just(1), 1u32..100, Just(MAX_RATE), Just(MAX_RATE + 1)],
                prop_oneof![
                    Just(Duration::ZERO),
                    Just(Duration::from_micros(999)),
                    Just(MIN_PERIOD),
                    Just(MAX_PERIOD),
                    Just(MAX_PERIOD + Duration::from_micros(1)),
                    Just(Duration::MAX),
                    (1u64..=86_400_000_000).prop_map(Duration::from_micros),
                ],
                prop_oneof![Just(0u32), Just(1), 1u32..100, Just(MAX_RATE), Just(MAX_RATE + 1)],
                prop_oneof![Just(0u32), 1u32..5, Just(u32::MAX)],
            ),
            clock in prop_oneof![
                Just(CLOCK_LIMIT_US),
                Just(CLOCK_LIMIT_US - 1),
                Just(-CLOCK_LIMIT_US),
                Just(1 - CLOCK_LIMIT_US),
                any::<i64>(),
            ],
        ) {
            let page_request = PageRequest::first(limit);
            prop_assert_eq!(outcome(&page(&page_request)), outcome(&page_request.validate()));
            let (limit, period, burst, cost) = rate;
            let p = RateLimitPolicy { limit, period, burst };
            prop_assert_eq!(outcome(&rate_policy(&p, cost)), outcome(&p.validate(cost)), "{:?}", p);
            let now = Timestamp::from_micros(clock);
            prop_assert_eq!(
                outcome(&rate_clock(now)),
                outcome(&credo_ports::rate_limit::validate_clock(now))
            );
        }
    }
}
