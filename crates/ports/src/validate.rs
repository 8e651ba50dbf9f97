//! Input validation shared by every backend, so bad input is rejected with the same
//! [`StoreError::InvalidInput`] everywhere, before any I/O.

use crate::{StoreError, StoreResult};
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

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

/// A configured timeout: at least 1 ms (drivers read 0 as "no timeout", and a sub-millisecond
/// value rounds to 0) and at most `max`.
pub fn timeout(
    field: &'static str,
    value: std::time::Duration,
    max: std::time::Duration,
) -> StoreResult<()> {
    if value < std::time::Duration::from_millis(1) {
        return Err(StoreError::invalid(
            field,
            format!("{value:?}: must be at least 1 ms (0 would mean no timeout)"),
        ));
    }
    if value > max {
        return Err(StoreError::invalid(
            field,
            format!("{value:?}: must be at most {max:?}"),
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

/// The form an email is stored in: surrounding whitespace removed, Unicode composed (NFC), case
/// kept. Two spellings of one address (`é` precomposed or as `e` + combining accent) are
/// stored alike.
#[must_use]
pub fn normalize_email(email: &str) -> String {
    email.trim().nfc().collect()
}

/// The form two emails are compared in (uniqueness per tenant, `find_by_email`): trimmed,
/// compatibility-normalized (NFKC, so full-width `ａ` and ligatures compare as their plain
/// letters) and lower-cased, then normalized again (lower-casing can un-normalize).
///
/// ```
/// use credo_ports::validate::email_key;
/// assert_eq!(email_key(" Ａda@Example.COM "), "ada@example.com");
/// assert_eq!(email_key("Jose\u{301}@x.io"), email_key("Jos\u{e9}@x.io"));
/// ```
///
/// Look-alikes across scripts (Cyrillic `а` and Latin `a`) are not folded: that needs a
/// confusables table (UTS #39), and such an address is a different mailbox.
#[must_use]
pub fn email_key(email: &str) -> String {
    let trimmed = email.trim();
    if trimmed.is_ascii() {
        return trimmed.to_ascii_lowercase();
    }
    // NFKC, lower case with final sigma folded into sigma (lower-casing picks `ς` for `Σ` at
    // the end of a word, case folding does not), NFKC again, trimmed; repeated until nothing
    // changes, because each step can undo another (`㎂` becomes `μA`, `¨` a space and an
    // accent), so that the key of a key is itself.
    let mut key = trimmed.to_string();
    for _ in 0..4 {
        let lowered = key
            .nfkc()
            .collect::<String>()
            .to_lowercase()
            .replace('ς', "σ");
        let next = lowered.nfkc().collect::<String>().trim().to_string();
        if next == key {
            break;
        }
        key = next;
    }
    key
}

/// Characters an email may never hold: default-ignorable code points (zero-width spaces and
/// joiners, variation selectors, soft hyphen, Hangul fillers, tags) and format characters
/// (bidirectional controls, byte-order mark), which render as nothing and let two addresses
/// that look identical register as different users.
#[must_use]
pub fn is_invisible(c: char) -> bool {
    if c.is_ascii() {
        return false;
    }
    if c.general_category() == GeneralCategory::Format {
        return true;
    }
    matches!(u32::from(c),
        0x00AD | 0x034F | 0x061C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

/// A syntactically plausible email: `local@domain`, one `@`, no whitespace, control or
/// invisible characters ([`is_invisible`]), domain with a dot and no empty labels, at most
/// [`MAX_EMAIL_LEN`] bytes in its stored form ([`normalize_email`]).
///
/// The email policy, the same on every backend: stored trimmed and NFC-composed, compared by
/// [`email_key`] (NFKC and lower case), invisible characters refused.
pub fn email(value: &str) -> StoreResult<()> {
    // Judged in the form it is stored in.
    let normalized;
    let e = if value.is_ascii() {
        value.trim()
    } else {
        normalized = normalize_email(value);
        normalized.as_str()
    };
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
    if e.chars().any(is_invisible) {
        return bad("must not contain invisible (default-ignorable or format) characters");
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

    /// 1 ms and `max` are accepted, both inclusive.
    #[test]
    fn timeouts_between_1_ms_and_the_maximum() {
        use std::time::Duration;
        let max = Duration::from_secs(60);
        for ok in [Duration::from_millis(1), Duration::from_secs(1), max] {
            assert!(timeout("t", ok, max).is_ok(), "{ok:?}");
        }
        for bad in [
            Duration::ZERO,
            Duration::from_micros(999),
            max + Duration::from_nanos(1),
        ] {
            assert_eq!(timeout("t", bad, max).unwrap_err().kind(), "InvalidInput");
        }
    }

    /// 254 bytes in all and 64 before the `@` are accepted; a byte more of either is not.
    #[test]
    fn email_lengths_are_inclusive_at_their_limits() {
        let local = "a".repeat(64);
        assert!(email(&format!("{local}@{}.com", "b".repeat(185))).is_ok());
        assert!(email(&format!("{local}@{}.com", "b".repeat(186))).is_err());
        assert!(email(&format!("a{local}@example.com")).is_err());
    }

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
    fn email_policy_for_unicode() {
        // Invisible characters are refused wherever they sit.
        for bad in [
            "ad\u{200B}a@example.com",
            "ada\u{200D}@example.com",
            "ada@exa\u{00AD}mple.com",
            "\u{FEFF}ada@example.com",
            "ada@example.com\u{202E}",
            "ada\u{FE0F}@example.com",
            "ada@example\u{E0041}.com",
            "a\u{2066}da@example.com",
        ] {
            assert_eq!(email(bad).unwrap_err().kind(), "InvalidInput", "{bad:?}");
        }
        // Visible non-ASCII is fine.
        for ok in ["josé@example.com", "ユーザー@例え.jp", "ＡＤＡ@example.com"] {
            assert!(email(ok).is_ok(), "{ok}");
        }
        // Canonical and compatibility variants share one key; the stored form is NFC.
        assert_eq!(email_key("Jose\u{301}@x.io"), email_key("JOS\u{c9}@x.io"));
        assert_eq!(email_key("ＡＤＡ@ｅｘａｍｐｌｅ.com"), "ada@example.com");
        assert_eq!(email_key("ﬁ@x.io"), "fi@x.io");
        assert_eq!(normalize_email(" Jose\u{301}@x.io "), "Jos\u{e9}@x.io");
        assert_ne!(
            email_key("\u{430}da@x.io"),
            email_key("ada@x.io"),
            "scripts are not folded"
        );
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
        /// The key is idempotent and its ASCII fast path agrees with the general rule.
        #[test]
        fn email_key_is_stable(value in "(?s).{0,24}", ascii in "[\\x00-\\x7f]{0,24}") {
            for v in [value.as_str(), ascii.as_str()] {
                let k = email_key(v);
                proptest::prop_assert_eq!(email_key(&k), k.clone(), "{:?}", v);
                if v.trim().is_ascii() {
                    let general: String = v.trim().nfkc().collect::<String>().to_lowercase();
                    proptest::prop_assert_eq!(&k, &general);
                }
            }
        }

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
