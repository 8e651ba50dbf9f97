//! No configuration input can panic: arbitrary TOML text (random bytes, and structurally valid
//! documents with random sections, keys and values of every type at their edges) and arbitrary
//! `CREDO_*` environments load into a validated `StorageConfig` or a `ConfigError`.

use credo_storage::{ConfigError, StorageConfig};
use proptest::prelude::*;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The declared sections, and a property map's table.
fn sections() -> Vec<String> {
    let mut sections: Vec<String> = credo_storage::config::settings()
        .map(|s| s.section.to_string())
        .filter(|s| !s.is_empty())
        .collect();
    sections.dedup();
    sections.push("kafka.properties".into());
    sections
}

/// Every declared key, and a property's name.
fn keys() -> Vec<String> {
    let mut keys: Vec<String> = credo_storage::config::settings()
        .map(|s| s.key.to_string())
        .collect();
    keys.push("sasl.password".into());
    keys
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(keys()),
        // A section's name as a plain key: `postgres = 1`.
        2 => prop::sample::select(sections()),
        1 => "[a-z_]{1,12}",
    ]
}

/// A TOML value, as text: every type, at its edges.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(vec![
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            1,
            i32::MAX as i64,
            i32::MAX as i64 + 1,
            u32::MAX as i64,
            u32::MAX as i64 + 1,
            i64::MAX,
        ])
        .prop_map(|i| i.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        prop::sample::select(vec!["nan", "+inf", "-inf", "-0.0", "1e308", "0.5", "-1.5"])
            .prop_map(str::to_string),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        any::<bool>().prop_map(|b| b.to_string()),
        prop::sample::select(vec![
            "inmemory",
            "postgres",
            "redis",
            "kafka",
            "direct",
            "server",
            "clock",
            "",
            "postgres://u:p@ss/w?rd#x@h/db",
            "redis://:pw@h:1",
            "b:9092",
            "credo",
        ])
        .prop_map(|s| format!("{s:?}")),
        ".{0,40}".prop_map(|s| format!("{s:?}")),
        (0usize..200_000).prop_map(|n| format!("\"{}\"", "x".repeat(n))),
        Just("1979-05-27T07:32:00Z".to_string()),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((key(), inner), 0..5).prop_map(|kv| {
                let mut seen = std::collections::BTreeSet::new();
                let body: Vec<String> = kv
                    .into_iter()
                    .filter(|(k, _)| seen.insert(k.clone()))
                    .map(|(k, v)| format!("{k:?} = {v}"))
                    .collect();
                format!("{{ {} }}", body.join(", "))
            }),
        ]
    })
}

/// A document: top-level keys, then sections of random keys (duplicates make it invalid,
/// which is an input too).
fn document() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((key(), value()), 0..4),
        prop::collection::vec(
            (
                prop_oneof![4 => prop::sample::select(sections()), 1 => "[a-z]{1,8}"],
                prop::collection::vec((key(), value()), 0..6),
            ),
            0..5,
        ),
    )
        .prop_map(|(top, sections)| {
            let mut text = String::new();
            for (k, v) in top {
                text.push_str(&format!("{k:?} = {v}\n"));
            }
            for (section, kv) in sections {
                text.push_str(&format!("[{section}]\n"));
                for (k, v) in kv {
                    text.push_str(&format!("{k:?} = {v}\n"));
                }
            }
            text
        })
}

fn env_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "-1",
            "1",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "-9223372036854775808",
            "2147483648",
            "4294967296",
            " 5 ",
            "1e3",
            "0x10",
            "",
            "true",
            "yes",
            "no",
            "postgres",
            "redis",
            "kafka",
            "inmemory",
            "postgres://u:p@ss/w?rd#x@h/db",
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|i| i.to_string()),
        ".{0,30}",
        "\\PC{0,30}",
    ]
}

fn env_name() -> impl Strategy<Value = String> {
    let section = prop_oneof![
        4 => prop::sample::select(vec![
            "BACKENDS_", "POSTGRES_", "REDIS_", "KAFKA_", "RELAY_", "KAFKA_PROPERTY_", "",
            "HEALTH_", "SHUTDOWN_",
        ]).prop_map(str::to_string),
        1 => "[A-Z_]{0,10}",
    ];
    let key = prop_oneof![
        4 => prop::sample::select(keys()).prop_map(|k| k.to_ascii_uppercase().replace('.', "_")),
        1 => "[A-Z0-9_]{0,12}",
        1 => "\\PC{0,8}",
    ];
    (section, key).prop_map(|(s, k)| format!("CREDO_{s}{k}"))
}

fn env() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        prop_oneof![
            8 => (env_name(), env_value()),
            1 => (
                prop::sample::select(vec!["DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS"]).prop_map(str::to_string),
                env_value(),
            ),
        ],
        0..8,
    )
}

/// Loads without panicking; a loaded configuration is valid and prints.
fn load(f: impl FnOnce() -> Result<StorageConfig, ConfigError>) -> Result<(), TestCaseError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(config)) => {
            prop_assert!(config.validate().is_ok(), "a loaded config must be valid");
            let _ = format!("{config:?}");
            Ok(())
        }
        Ok(Err(e)) => {
            prop_assert!(!e.setting.is_empty());
            let _ = e.to_string();
            Ok(())
        }
        Err(_) => Err(TestCaseError::fail("the loader panicked")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(text in prop_oneof![".{0,300}", "\\PC{0,300}", "[\\[\\]=\"'a-z0-9.{},\n -]{0,300}"]) {
        load(|| StorageConfig::from_toml_str(&text))?;
    }

    #[test]
    fn structured_toml_never_panics(text in document()) {
        load(|| StorageConfig::from_toml_str(&text))?;
    }

    #[test]
    fn any_environment_never_panics(vars in env()) {
        load(|| StorageConfig::from_vars(vars.clone()))?;
    }

    #[test]
    fn file_and_environment_together_never_panic(text in document(), vars in env()) {
        let dir = std::env::temp_dir().join(format!("credo-cfg-prop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{:x}.toml", rand_name(&text, &vars)));
        std::fs::write(&file, &text).unwrap();
        let mut all = vars.clone();
        all.push(("CREDO_CONFIG_FILE".into(), file.display().to_string()));
        let result = load(|| StorageConfig::from_vars(all));
        let _ = std::fs::remove_file(&file);
        result?;
    }
}

fn rand_name(text: &str, vars: &[(String, String)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (text, vars, std::thread::current().id()).hash(&mut h);
    h.finish()
}
