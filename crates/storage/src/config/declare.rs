//! How a setting is declared: its name, its environment kind, its bounds, its default, whether
//! it is a secret. The [`settings!`](crate::config::declare::settings) macro turns one
//! declaration per field into the serde struct, its [`Setting`] list, its redacting `Debug`
//! and its validation; the environment loader and the generated reference read the lists.

use crate::config::ConfigError;
use credo_ports::SecretString;
use credo_ports::redact::{redact_property, redact_url};
use std::collections::BTreeMap;
use std::fmt;

/// How an environment variable's text becomes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Taken as it is.
    Text,
    /// A whole number.
    Int,
    /// `true`/`1`/`yes` or `false`/`0`/`no`.
    Bool,
    /// A map of names to text (`kafka.properties`): one variable per entry.
    Map,
    /// A nested section, not a setting of its own.
    Section,
}

/// What a value must be. Checked by [`crate::StorageConfig::validate`], shown in the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Anything of the type.
    Any,
    /// A whole number in `min..=max`.
    Range(i128, i128),
    /// Non-blank text.
    NonEmpty,
    /// A PostgreSQL identifier: 1..=63 of `[a-z0-9_]`, not starting with a digit.
    Identifier,
    /// 1..=64 of `[A-Za-z0-9_-]`.
    KeyPrefix,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// Entries with non-blank names.
    NamedEntries,
    /// A backend whose adapter declares that it serves this port.
    ServedBy(credo_ports::capability::Port),
}

/// Where a setting's value comes from when it is not given.
#[derive(Clone, Copy)]
pub enum Default {
    /// It must be given.
    Required,
    /// The facade's own value.
    Value(&'static str),
    /// The facade's own number (the same constant its accessor uses).
    Number(u64),
    /// Read from the type that owns it: the adapter's config (`None` when the adapter is not
    /// compiled in), so the adapters' defaults are the only ones.
    From(fn() -> Option<String>),
}

/// Whether (and how) a value is a secret in `Debug`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secret {
    /// Shown as it is.
    No,
    /// A URL: its password and secret query parameters become `***`.
    Url,
    /// A property map: values whose name holds a secret become `***`.
    Properties,
}

/// One setting, as declared.
#[derive(Clone, Copy)]
pub struct Setting {
    /// TOML section (`""` for the top level).
    pub section: &'static str,
    /// Key inside the section.
    pub key: &'static str,
    /// What it does (the field's rustdoc).
    pub doc: &'static str,
    /// How the environment gives it.
    pub kind: Kind,
    /// What it must be.
    pub check: Check,
    /// Its default.
    pub default: Default,
    /// Whether it is a secret.
    pub secret: Secret,
    /// A conventional variable read when the prefixed one is unset (`DATABASE_URL`).
    pub alias: Option<&'static str>,
    /// How the reference describes accepted values when the check alone says too little.
    pub accepted: Option<&'static str>,
}

impl Setting {
    /// A setting of `kind`, with no check, no default, no secret.
    pub const fn new(kind: Kind) -> Self {
        Self {
            section: "",
            key: "",
            doc: "",
            kind,
            check: Check::Any,
            default: Default::Value(""),
            secret: Secret::No,
            alias: None,
            accepted: None,
        }
    }
    /// Text.
    pub const fn text() -> Self {
        Self::new(Kind::Text)
    }
    /// A whole number in `min..=max`.
    pub const fn int(min: i128, max: i128) -> Self {
        Self::new(Kind::Int).check(Check::Range(min, max))
    }
    /// A boolean with the facade's default.
    pub const fn flag(default: &'static str) -> Self {
        Self::new(Kind::Bool).default(Default::Value(default))
    }
    /// A nested section.
    pub const fn section() -> Self {
        Self::new(Kind::Section)
    }
    /// With this check.
    pub const fn check(mut self, check: Check) -> Self {
        self.check = check;
        self
    }
    /// With this default.
    pub const fn default(mut self, default: Default) -> Self {
        self.default = default;
        self
    }
    /// Required.
    pub const fn required(self) -> Self {
        self.default(Default::Required)
    }
    /// A secret of this shape.
    pub const fn secret(mut self, secret: Secret) -> Self {
        self.secret = secret;
        self
    }
    /// Also read from this conventional variable.
    pub const fn alias(mut self, alias: &'static str) -> Self {
        self.alias = Some(alias);
        self
    }
    /// Accepted values, as the reference says them.
    pub const fn accepted(mut self, text: &'static str) -> Self {
        self.accepted = Some(text);
        self
    }
    /// Placed in its section, under its key, with its rustdoc.
    pub const fn named(
        mut self,
        section: &'static str,
        key: &'static str,
        doc: &'static str,
    ) -> Self {
        self.section = section;
        self.key = key;
        self.doc = doc;
        self
    }

    /// `section.key`, or `key` at the top level.
    pub fn path(&self) -> String {
        if self.section.is_empty() {
            self.key.to_string()
        } else {
            format!("{}.{}", self.section, self.key)
        }
    }

    /// The default as the reference shows it.
    pub fn default_text(&self) -> String {
        match self.default {
            Default::Required => "(required)".into(),
            Default::Value("") => "—".into(),
            Default::Value(v) => v.into(),
            Default::Number(n) => n.to_string(),
            Default::From(f) => f().unwrap_or_else(|| "the adapter's".into()),
        }
    }

    /// Accepted values as the reference shows them.
    pub fn accepted_text(&self) -> String {
        if let Some(text) = self.accepted {
            return text.into();
        }
        match self.check {
            Check::Any => match self.kind {
                Kind::Bool => "`true` or `false`".into(),
                _ => "any".into(),
            },
            Check::Range(min, max) => format!("{min}..={max}"),
            Check::NonEmpty => "non-empty".into(),
            Check::Identifier => "`[a-z_][a-z0-9_]{0,62}`".into(),
            Check::KeyPrefix => "1..=64 of `[A-Za-z0-9_-]`".into(),
            Check::OneOf(words) => words
                .iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(", "),
            Check::NamedEntries => "names and text values".into(),
            Check::ServedBy(port) => crate::config::Backend::serving(port)
                .iter()
                .map(|b| format!("`{}`", b.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// A declared field's value: checked against its [`Setting`] and shown with its secrets
/// redacted.
pub trait Value: fmt::Debug {
    /// Checks the value, an error naming the setting.
    fn check(&self, setting: &Setting) -> Result<(), ConfigError>;
    /// The value for `Debug`.
    fn show(&self, secret: Secret) -> String {
        let _ = secret;
        format!("{self:?}")
    }
}

fn range_error(setting: &Setting, value: i128) -> Result<(), ConfigError> {
    let Check::Range(min, max) = setting.check else {
        return Ok(());
    };
    if value < min || value > max {
        let why = if value == 0 && setting.key.ends_with("_ms") {
            " (0 would mean no timeout)"
        } else {
            ""
        };
        return Err(ConfigError::new(
            setting.path(),
            format!("{value}: must be {min}..={max}{why}"),
        ));
    }
    Ok(())
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn check(&self, setting: &Setting) -> Result<(), ConfigError> {
                range_error(setting, *self as i128)
            }
        }
    )*};
}
integers!(u32, u64, usize, i32);

impl Value for bool {
    fn check(&self, _: &Setting) -> Result<(), ConfigError> {
        Ok(())
    }
}

impl Value for String {
    fn check(&self, setting: &Setting) -> Result<(), ConfigError> {
        let s = self.as_str();
        let bad = |reason: String| Err(ConfigError::new(setting.path(), reason));
        match setting.check {
            Check::NonEmpty if s.trim().is_empty() => bad("must not be empty".into()),
            Check::Identifier
                if !(!s.is_empty()
                    && s.len() <= 63
                    && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                    && s.bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')) =>
            {
                bad(format!(
                    "{s:?}: must be 1..=63 of [a-z0-9_], not starting with a digit"
                ))
            }
            Check::KeyPrefix
                if s.is_empty()
                    || s.len() > 64
                    || !s
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-') =>
            {
                bad("must be 1..=64 of [A-Za-z0-9_-]".into())
            }
            Check::OneOf(words) if !words.contains(&s) => bad(format!(
                "{s:?}: expected {}",
                words
                    .iter()
                    .map(|w| format!("{w:?}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )),
            _ => Ok(()),
        }
    }

    fn show(&self, secret: Secret) -> String {
        match secret {
            Secret::Url => format!("{:?}", redact_url(self)),
            _ => format!("{self:?}"),
        }
    }
}

/// A secret setting: only `NonEmpty` is checked (the other checks quote the value), and it is
/// shown redacted (a URL with its secrets as `***`, anything else as `SecretString("***")`).
impl Value for SecretString {
    fn check(&self, setting: &Setting) -> Result<(), ConfigError> {
        if setting.check == Check::NonEmpty && self.expose_secret().trim().is_empty() {
            return Err(ConfigError::new(setting.path(), "must not be empty"));
        }
        Ok(())
    }

    fn show(&self, secret: Secret) -> String {
        match secret {
            Secret::Url => format!("{:?}", redact_url(self.expose_secret())),
            _ => format!("{self:?}"),
        }
    }
}

impl<T: Value> Value for Option<T> {
    fn check(&self, setting: &Setting) -> Result<(), ConfigError> {
        self.as_ref().map_or(Ok(()), |v| v.check(setting))
    }

    fn show(&self, secret: Secret) -> String {
        match self {
            Some(v) => format!("Some({})", v.show(secret)),
            None => "None".into(),
        }
    }
}

/// A property map (`kafka.properties`): every value is a [`SecretString`]; those whose name
/// is not secret are shown (with [`Secret::Properties`]), the others as `***`.
impl Value for BTreeMap<String, SecretString> {
    fn check(&self, setting: &Setting) -> Result<(), ConfigError> {
        if setting.check == Check::NamedEntries && self.keys().any(|name| name.trim().is_empty()) {
            return Err(ConfigError::new(setting.path(), "an entry has no name"));
        }
        Ok(())
    }

    fn show(&self, secret: Secret) -> String {
        let shown: BTreeMap<&str, &str> = self
            .iter()
            .map(|(k, v)| {
                let v = if secret == Secret::Properties {
                    redact_property(k, v.expose_secret())
                } else {
                    credo_ports::redact::REDACTED
                };
                (k.as_str(), v)
            })
            .collect();
        format!("{shown:?}")
    }
}

/// A section's declaration: the struct, its settings, its `Debug` and its checks.
///
/// Each field is `doc comment, optional #[serde(...)], name: Type => Setting builder`. The
/// field's rustdoc becomes the reference's description.
macro_rules! settings {
    (
        $(#[$smeta:meta])*
        pub struct $name:ident in $section:literal {
            $(
                $(#[doc = $doc:literal])*
                $(#[serde($($serde:tt)*)])*
                $field:ident : $ty:ty => $setting:expr,
            )*
        }
    ) => {
        #[derive(Clone, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[non_exhaustive]
        $(#[$smeta])*
        pub struct $name {
            $(
                $(#[doc = $doc])*
                $(#[serde($($serde)*)])*
                pub $field: $ty,
            )*
        }

        impl $name {
            /// Every setting of this section, in declaration order.
            pub const SETTINGS: &'static [$crate::config::declare::Setting] = &[
                $(
                    $setting.named(
                        $section,
                        stringify!($field),
                        concat!($($doc, "\n"),*),
                    ),
                )*
            ];

            /// Checks every field against its declaration (and nested sections).
            pub(crate) fn check_fields(&self) -> Result<(), $crate::config::ConfigError> {
                let mut settings = Self::SETTINGS.iter();
                $(
                    $crate::config::declare::Value::check(
                        &self.$field,
                        settings.next().expect("one setting per field"),
                    )?;
                )*
                Ok(())
            }
        }

        impl $crate::config::declare::Value for $name {
            fn check(
                &self,
                _: &$crate::config::declare::Setting,
            ) -> Result<(), $crate::config::ConfigError> {
                self.check_fields()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut settings = Self::SETTINGS.iter();
                let mut d = f.debug_struct(stringify!($name));
                $(
                    let setting = settings.next().expect("one setting per field");
                    d.field(
                        stringify!($field),
                        &$crate::config::declare::Shown(
                            $crate::config::declare::Value::show(&self.$field, setting.secret),
                        ),
                    );
                )*
                d.finish()
            }
        }
    };
}
pub(crate) use settings;

/// Prints its text as it is (a `Debug` field already formatted).
pub struct Shown(pub String);

impl fmt::Debug for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
