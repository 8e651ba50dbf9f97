//! Cross-checks of the rules with `credo_ports` on generated input: every rule must give the
//! same outcome (kind and field) as the ports' validators.

use super::fields::{optional_text, text};
use super::tests::outcome;
use super::*;
use credo_ports::audit::MAX_METADATA_BYTES;
use credo_ports::page::MAX_PAGE_SIZE;
use credo_ports::rate_limit::{CLOCK_LIMIT_US, MAX_PERIOD, MAX_RATE, MIN_PERIOD};
use credo_ports::validate::{MAX_SCOPES, MAX_TEXT_LEN};
use credo_ports::{
    AuditCategory, ConsentId, Device, EventId, SessionId, TenantId, UserId, UserStatus, validate,
};
use credo_ports::{
    AuditEvent, GrantConsent, NewSession, NewUser, PageRequest, RateLimitPolicy, SessionStatus,
    Timestamp, UserUpdate,
};
use proptest::prelude::*;
use serde_json::Map;
use serde_json::json;
use std::time::Duration;

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
