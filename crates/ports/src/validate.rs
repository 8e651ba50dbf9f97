//! Input validation shared by every backend, so bad input is rejected with the same
//! [`StoreError::InvalidInput`] everywhere, before any I/O.

use crate::{StoreError, StoreResult};

/// Longest email accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest name, client id, scope, device field or other free-text field accepted, in bytes.
pub const MAX_TEXT_LEN: usize = 256;
/// Longest consent purpose, in bytes.
pub const MAX_PURPOSE_LEN: usize = 64;
/// Most scopes a session may carry.
pub const MAX_SCOPES: usize = 64;

/// A required free-text field: not empty after trimming, at most [`MAX_TEXT_LEN`] bytes, no
/// control characters (NUL included).
pub fn text(field: &'static str, value: &str) -> StoreResult<()> {
    if is_blank(value) {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    text_rules(field, value)
}

/// An optional free-text field: when present, the rules of [`text`] except that it may not be
/// blank either (use `None` for "absent").
pub fn optional_text(field: &'static str, value: Option<&str>) -> StoreResult<()> {
    let Some(value) = value else { return Ok(()) };
    if is_blank(value) {
        return Err(StoreError::invalid(
            field,
            "must not be blank (omit it instead)",
        ));
    }
    text_rules(field, value)
}

/// Length and control characters (blankness is checked by the callers, with their wording).
fn text_rules(field: &'static str, value: &str) -> StoreResult<()> {
    if value.len() > MAX_TEXT_LEN {
        return Err(StoreError::invalid(
            field,
            format!("at most {MAX_TEXT_LEN} bytes, got {}", value.len()),
        ));
    }
    // Rate-limit keys are checked on every request: scan ASCII bytes, decode only otherwise.
    let control = if value.is_ascii() {
        value.bytes().any(|b| b.is_ascii_control())
    } else {
        value.chars().any(char::is_control)
    };
    if control {
        return Err(StoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Empty or only whitespace. Most values start with a visible ASCII character, which settles
/// it without trimming.
fn is_blank(value: &str) -> bool {
    match value.as_bytes().first() {
        None => true,
        Some(b) if b.is_ascii_graphic() => false,
        Some(_) => value.trim().is_empty(),
    }
}

/// The form an email is stored in: surrounding whitespace removed, case kept.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_string()
}

/// The form two emails are compared in: trimmed and lower-cased.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A syntactically plausible email: `local@domain`, one `@`, no whitespace or control
/// characters, domain with a dot and no empty labels, at most [`MAX_EMAIL_LEN`] bytes.
pub fn email(value: &str) -> StoreResult<()> {
    let e = value.trim();
    let bad = |reason: &str| Err(StoreError::invalid("email", reason));
    if e.is_empty() {
        return bad("must not be empty");
    }
    if e.len() > MAX_EMAIL_LEN {
        return bad("longer than 254 bytes");
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain whitespace or control characters");
    }
    let Some((local, domain)) = e.split_once('@') else {
        return bad("must contain '@'");
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return bad("must be local@domain with a 1..=64 byte local part");
    }
    if !domain.contains('.') || domain.split('.').any(str::is_empty) {
        return bad("domain must have dot-separated, non-empty labels");
    }
    Ok(())
}

/// A consent purpose: 1 to 64 bytes of `[a-z0-9_.:-]`, starting with a letter
/// (e.g. `marketing`, `registry.check`).
pub fn purpose(value: &str) -> StoreResult<()> {
    let bad = |reason: String| Err(StoreError::invalid("purpose", reason));
    if value.is_empty() || value.len() > MAX_PURPOSE_LEN {
        return bad(format!("must be 1..={MAX_PURPOSE_LEN} bytes"));
    }
    if !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("must start with a lower-case ASCII letter".into());
    }
    if !value
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.:-".contains(&c))
    {
        return bad("may contain only a-z, 0-9, '_', '.', ':' and '-'".into());
    }
    Ok(())
}

/// An audit action: dot-separated lower-case words, at least two (e.g. `consent.granted`),
/// at most 128 bytes.
pub fn action(value: &str) -> StoreResult<()> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value.contains('.')
        && value.split('.').all(|w| {
            w.starts_with(|c: char| c.is_ascii_lowercase())
                && w.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "action",
            "must be dot-separated lower-case words like 'consent.granted', at most 128 bytes",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in [
            "a@b.co",
            "  Alice.Smith+x@Example.COM ",
            "x@sub.example.org",
        ] {
            assert!(email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "  ", "nobody", "a@b", "@b.co", "a@@b.co", "a b@c.de", "a@b..co", "a\0@b.co",
            "a@.co",
        ] {
            assert_eq!(email(bad).unwrap_err().kind(), "InvalidInput", "{bad:?}");
        }
        assert!(email(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert_eq!(email_key("  Bob@Example.COM "), "bob@example.com");
    }

    #[test]
    fn purposes_and_actions() {
        assert!(purpose("marketing").is_ok());
        assert!(purpose("registry.check:v2").is_ok());
        for bad in ["", "Marketing", "1abc", "a b", "a\0", &"a".repeat(65)] {
            assert!(purpose(bad).is_err(), "{bad:?}");
        }
        assert!(action("consent.granted").is_ok());
        for bad in ["consent", "Consent.granted", "consent..x", ".x", "a.b\0"] {
            assert!(action(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn texts() {
        assert!(text("f", "ok").is_ok());
        assert!(text("f", "").is_err());
        assert!(text("f", "a\0b").is_err());
        assert!(text("f", &"x".repeat(MAX_TEXT_LEN + 1)).is_err());
        assert!(optional_text("f", None).is_ok());
        assert!(optional_text("f", Some(" ")).is_err());
        assert!(text("f", "\u{85}x").is_err(), "C1 control");
        assert!(text("f", "\u{3000}").is_err(), "non-ASCII blank");
        assert!(text("f", "é\u{7f}").is_err());
    }

    proptest::proptest! {
        /// The ASCII fast paths decide exactly as the plain definitions do.
        #[test]
        fn fast_paths_match_the_definitions(value in "(?s).{0,12}", ascii in "[\\x00-\\x7f]{0,12}") {
            for v in [value.as_str(), ascii.as_str()] {
                let blank = v.trim().is_empty();
                let control = v.chars().any(char::is_control);
                let long = v.len() > MAX_TEXT_LEN;
                proptest::prop_assert_eq!(is_blank(v), blank, "{:?}", v);
                proptest::prop_assert_eq!(text("f", v).is_ok(), !blank && !control && !long, "{:?}", v);
            }
        }
    }
}
