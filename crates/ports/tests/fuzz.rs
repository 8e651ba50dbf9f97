//! Fuzzing by property tests at scale: the envelope decoder, the RFC 3339 reader and every
//! validator take arbitrary input and must answer (`Ok` or a typed error), never panic.
//!
//! `CREDO_FUZZ_CASES` sets the cases per target (default 2,000: a short run that CI does on
//! every build); for a long run, e.g. `CREDO_FUZZ_CASES=1000000 cargo test -p credo-ports
//! --release --test fuzz`. Failures shrink and are kept in `tests/fuzz.proptest-regressions`.

use credo_ports::audit::MAX_METADATA_DEPTH;
use credo_ports::envelope::{self, EncodedEvent};
use credo_ports::rate_limit::{CLOCK_LIMIT_US, gcra, validate_key};
use credo_ports::sessions::{validate_jti, validate_revocation};
use credo_ports::{
    AuditCategory, AuditEvent, EventId, RateLimitPolicy, TenantId, Timestamp, validate,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::time::Duration;

fn config() -> ProptestConfig {
    let cases = std::env::var("CREDO_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, nested up to a few levels, with numbers and strings at their edges.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "(?s).{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map("(?s).{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A field of the event as the wire might carry it: the right shape or anything else.
fn field(right: Value) -> impl Strategy<Value = Value> {
    prop_oneof![3 => Just(right), 1 => json_value()]
}

fn valid_event() -> AuditEvent {
    let mut e = AuditEvent::new(
        TenantId::new(),
        Timestamp::from_secs(1_800_000_000),
        AuditCategory::Security,
        "auth.login_failed",
    );
    e.metadata.insert("n".into(), json!(1));
    e
}

/// An envelope whose every field may be replaced by arbitrary JSON.
fn mangled_envelope() -> impl Strategy<Value = Vec<u8>> {
    let e = serde_json::to_value(valid_event()).unwrap();
    let fields: Vec<(String, Value)> = e.as_object().unwrap().clone().into_iter().collect();
    let per_field: Vec<_> = fields
        .into_iter()
        .map(|(k, v)| field(v).prop_map(move |v| (k.clone(), v)))
        .collect();
    (
        per_field,
        field(json!(1)),
        proptest::option::of(("(?s).{0,8}", json_value())),
    )
        .prop_map(|(event, version, extra)| {
            let mut event: Map<String, Value> = event.into_iter().collect();
            if let Some((k, v)) = extra {
                event.insert(k, v);
            }
            serde_json::to_vec(&json!({"schema_version": version, "event": event})).unwrap()
        })
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes: the decoder answers `Err` with a reason, never panics.
    #[test]
    fn decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = envelope::decode(Some(&bytes));
        let _ = envelope::decode(None);
    }

    /// Envelopes with fields of any type: the decoder answers; whatever it accepts
    /// re-encodes and decodes to the same event, and validation answers for it.
    #[test]
    fn decoder_takes_mangled_envelopes(bytes in mangled_envelope()) {
        if let Ok(event) = envelope::decode(Some(&bytes)) {
            let _ = event.validate();
            let again = EncodedEvent::encode(&event).decode();
            prop_assert_eq!(again, Ok(event));
        }
    }

    /// Deep nesting (a JSON parser's stack) is refused, not a crash.
    #[test]
    fn decoder_survives_deep_nesting(depth in 1usize..100_000, open in prop_oneof![Just('['), Just('{')]) {
        let mut s = String::from("{\"schema_version\":1,\"event\":");
        for _ in 0..depth {
            s.push(open);
            if open == '{' {
                s.push_str("\"a\":");
            }
        }
        let _ = envelope::decode(Some(s.as_bytes()));
    }

    /// Every text validator answers for any string.
    #[test]
    fn validators_take_any_string(s in "(?s).{0,300}") {
        let _ = validate::email(&s);
        let _ = validate::email_key(&s);
        let _ = validate::normalize_email(&s);
        let _ = validate::purpose(&s);
        let _ = validate::action(&s);
        let _ = validate::text("f", &s);
        let _ = validate::optional_text("f", Some(&s));
        let _ = validate_jti(&s);
        let _ = validate_key(&s);
        let _ = validate_revocation(&s, Timestamp::MAX, Timestamp::EPOCH);
        let _ = Timestamp::parse_rfc3339(&s);
        // What the email validator accepts, its key accepts as a fixed point.
        if validate::email(&s).is_ok() {
            let k = validate::email_key(&s);
            prop_assert_eq!(validate::email_key(&k), k);
        }
    }

    /// RFC 3339 look-alikes (digits and separators in the right places, values anywhere).
    #[test]
    fn rfc3339_reader_takes_near_misses(
        y in 0u32..=99_999, mo in 0u32..=99, d in 0u32..=99, h in 0u32..=99, mi in 0u32..=99,
        se in 0u32..=99, frac in "[0-9]{0,20}", off in prop_oneof![
            Just("Z".to_string()), Just("z".to_string()),
            (0u32..=99, 0u32..=99, any::<bool>()).prop_map(|(h, m, neg)| format!("{}{h:02}:{m:02}", if neg { '-' } else { '+' })),
            "(?s).{0,3}",
        ],
    ) {
        let dot = if frac.is_empty() { "" } else { "." };
        let s = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}{dot}{frac}{off}");
        if let Some(t) = Timestamp::parse_rfc3339(&s)
            && t.is_storable()
        {
            prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        }
    }

    /// Metadata of any shape, including nesting past the limit: validation answers.
    #[test]
    fn event_validation_takes_any_metadata(meta in proptest::collection::btree_map("(?s).{0,8}", json_value(), 0..6), depth in 0usize..200) {
        let mut e = valid_event();
        e.metadata = meta.into_iter().collect();
        let _ = e.validate();
        let mut nested = json!(1);
        for _ in 0..depth {
            nested = Value::Array(vec![nested]);
        }
        e.metadata.insert("deep".into(), nested);
        let r = e.validate();
        if depth + 1 > MAX_METADATA_DEPTH {
            prop_assert!(r.is_err());
        }
    }

    /// Any policy, cost and clock: validation answers, and a validated policy at a clock
    /// within the limit steps without overflow.
    #[test]
    fn rate_limit_math_takes_any_policy(
        limit in any::<u32>(), burst in any::<u32>(), cost in any::<u32>(),
        period_us in any::<u64>(), now in -CLOCK_LIMIT_US + 1..CLOCK_LIMIT_US,
        tat_offset in -(1i64 << 42)..(1i64 << 42),
    ) {
        let policy = RateLimitPolicy { limit, period: Duration::from_micros(period_us), burst };
        if policy.validate(cost).is_ok() {
            let now = Timestamp::from_micros(now);
            let tat = Timestamp::from_micros(now.as_micros() + tat_offset);
            let (d, next) = gcra(&policy, Some(tat), now, cost);
            prop_assert!(d.remaining <= burst);
            if let Some(next) = next {
                prop_assert!(next >= now);
            }
        }
    }
}

/// An event id is not part of the envelope's shape checks above: one fixed case that a
/// payload naming another id is refused by the row's own check.
#[test]
fn a_payload_for_another_event_is_refused() {
    let e = valid_event();
    let mut m = EncodedEvent::encode(&e);
    m.id = EventId::new();
    assert!(m.decode().is_err());
}

/// Nesting past the limit is refused by the depth check, before the size check serializes
/// (recursively) whatever depth a caller built.
#[test]
fn deep_metadata_is_refused_before_any_recursion() {
    let mut nested = json!(1);
    for _ in 0..10_000 {
        nested = Value::Array(vec![nested]);
    }
    let mut e = valid_event();
    e.metadata.insert("deep".into(), nested);
    let err = e.validate().unwrap_err();
    assert_eq!(err.kind(), "InvalidInput");
    assert!(err.to_string().contains("nesting"), "{err}");
    // Taken apart level by level: dropping it whole recurses as deep as it is nested.
    let mut v = e.metadata.remove("deep").unwrap();
    while let Value::Array(mut a) = v {
        v = a.pop().unwrap_or(Value::Null);
    }
}
