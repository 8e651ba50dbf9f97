//! Unit tests of the rules: examples at the edges of each rule, and checks that the rules
//! agree with `credo_ports` where the two must (email keys, the invisible set).

use super::audit::nests_deeper_than;
use super::email_policy::invisible;
use super::email_policy::{EMAIL_KEY_ROUNDS, email_key_round};
use super::fields::{optional_text, text};
use super::*;
use credo_ports::audit::{MAX_METADATA_BYTES, MAX_METADATA_DEPTH};
use credo_ports::rate_limit::{CLOCK_LIMIT_US, MAX_KEY_LEN, MAX_RATE};
use credo_ports::validate::{MAX_EMAIL_LEN, MAX_TEXT_LEN};
use credo_ports::{AuditCategory, TenantId, validate};
use credo_ports::{AuditEvent, RateLimitPolicy, StoreError, StoreResult, Timestamp};
use serde_json::Value;
use serde_json::json;
use std::time::Duration;

/// Kind and field of an outcome, the parts compared with `credo_ports`.
pub(super) fn outcome(r: &StoreResult<()>) -> Result<(), (&'static str, &'static str)> {
    match r {
        Ok(()) => Ok(()),
        Err(StoreError::InvalidInput { field, .. }) => Err(("InvalidInput", field)),
        Err(e) => Err((e.kind(), "")),
    }
}

pub(super) fn field(r: Rule) -> Option<&'static str> {
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
