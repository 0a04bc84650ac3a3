//! Typed settings, declared once.
//!
//! A node kind's settings are written as one struct with [`settings!`]:
//! each field names its type for the checker (a [`SettingSpec`]) and is
//! read back by the engine as a Rust value of its own type, so the checker
//! and the engine cannot disagree about a name, a type or a default, and a
//! setting the engine does not read cannot be declared (it would be a
//! field nobody uses).
//!
//! ```text
//! settings! {
//!     /// `collect statements { … }`
//!     pub struct StatementsSettings {
//!         top: i64 = opt(SettingType::Int { min: 1, max: 10_000 }, DefaultValue::Int(200)),
//!         interval: Option<Duration> = opt(SettingType::Duration, DefaultValue::None),
//!     }
//! }
//! let s = StatementsSettings::from_settings(&collector.settings);
//! ```
//!
//! [`SettingSpec`]: crate::schema::SettingSpec

use std::time::Duration;

use indexmap::IndexMap;

use crate::plan::{SecretRef, Value};

/// A setting's value as a Rust type. The plan is checked and complete
/// with defaults, so reading cannot fail; a value that is absent and has
/// no default reads as the type's empty value.
pub trait FromSetting: Sized {
    fn from_setting(value: Option<&Value>) -> Self;
}

impl FromSetting for Duration {
    fn from_setting(value: Option<&Value>) -> Duration {
        Option::<Duration>::from_setting(value).unwrap_or_default()
    }
}

impl FromSetting for Option<Duration> {
    fn from_setting(value: Option<&Value>) -> Option<Duration> {
        match value {
            Some(Value::Duration(d)) => Some(*d),
            _ => None,
        }
    }
}

impl FromSetting for i64 {
    fn from_setting(value: Option<&Value>) -> i64 {
        Option::<i64>::from_setting(value).unwrap_or_default()
    }
}

impl FromSetting for Option<i64> {
    fn from_setting(value: Option<&Value>) -> Option<i64> {
        match value {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }
}

impl FromSetting for bool {
    fn from_setting(value: Option<&Value>) -> bool {
        matches!(value, Some(Value::Bool(true)))
    }
}

/// Percentages (0–100) and plain numbers.
impl FromSetting for f64 {
    fn from_setting(value: Option<&Value>) -> f64 {
        match value {
            Some(Value::Percent(p)) | Some(Value::Float(p)) => *p,
            Some(Value::Int(i)) => *i as f64,
            _ => 0.0,
        }
    }
}

/// Sizes, in bytes.
impl FromSetting for u64 {
    fn from_setting(value: Option<&Value>) -> u64 {
        Option::<u64>::from_setting(value).unwrap_or_default()
    }
}

impl FromSetting for Option<u64> {
    fn from_setting(value: Option<&Value>) -> Option<u64> {
        match value {
            Some(Value::Bytes(b)) => Some(*b),
            _ => None,
        }
    }
}

impl FromSetting for String {
    fn from_setting(value: Option<&Value>) -> String {
        Option::<String>::from_setting(value).unwrap_or_default()
    }
}

impl FromSetting for Option<String> {
    fn from_setting(value: Option<&Value>) -> Option<String> {
        match value {
            Some(Value::String(s)) | Some(Value::Word(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FromSetting for Option<SecretRef> {
    fn from_setting(value: Option<&Value>) -> Option<SecretRef> {
        match value {
            Some(Value::Secret(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FromSetting for Option<Vec<String>> {
    fn from_setting(value: Option<&Value>) -> Option<Vec<String>> {
        match value {
            Some(Value::List(items)) => Some(
                items
                    .iter()
                    .filter_map(|v| match v {
                        Value::String(s) | Value::Word(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        }
    }
}

impl FromSetting for Vec<String> {
    fn from_setting(value: Option<&Value>) -> Vec<String> {
        Option::<Vec<String>>::from_setting(value).unwrap_or_default()
    }
}

/// Maps (headers, resource attributes): kept as checked values.
impl FromSetting for IndexMap<String, Value> {
    fn from_setting(value: Option<&Value>) -> IndexMap<String, Value> {
        match value {
            Some(Value::Map(m)) => m.clone(),
            _ => IndexMap::new(),
        }
    }
}

/// An export queue: `memory` or `disk("/path")`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum QueueSetting {
    #[default]
    Memory,
    Disk(String),
}

impl FromSetting for QueueSetting {
    fn from_setting(value: Option<&Value>) -> QueueSetting {
        match value {
            Some(Value::Disk(path)) => QueueSetting::Disk(path.clone()),
            _ => QueueSetting::Memory,
        }
    }
}

/// A sampler's state: local, or shared through Redis.
impl FromSetting for Option<crate::plan::RedisState> {
    fn from_setting(value: Option<&Value>) -> Option<crate::plan::RedisState> {
        match value {
            Some(Value::Redis(state)) => Some(state.clone()),
            _ => None,
        }
    }
}

/// Declares a settings struct: its fields, their specs for the checker,
/// and `from_settings` for the engine.
#[macro_export]
macro_rules! settings {
    ($(#[$meta:meta])* pub struct $name:ident { $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $spec:expr ),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name { $( $(#[$fmeta])* pub $field: $ty ),* }

        impl $name {
            /// What the checker accepts, with defaults.
            pub const SPECS: &'static [$crate::schema::SettingSpec] = &[ $( $spec.named(stringify!($field)) ),* ];

            /// Reads settings; what is absent (settings built by hand, not
            /// by the checker) reads as its declared default.
            pub fn from_settings(settings: &$crate::plan::Settings) -> $name {
                $name { $( $field: {
                    let default = $spec.default.value();
                    $crate::typed::FromSetting::from_setting(settings.get(stringify!($field)).or(default.as_ref()))
                } ),* }
            }
        }
    };
}

/// Declares a setting that is one of a few bare words, as an enum.
#[macro_export]
macro_rules! words {
    ($(#[$meta:meta])* pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $word:literal ),* $(,)? } default $default:ident) => {
        $(#[$meta])*
        /// (Ordered as written: `sslmode`'s order is strictness.)
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $( $(#[$vmeta])* $variant ),* }

        impl $name {
            pub const WORDS: &'static [&'static str] = &[ $( $word ),* ];
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $word ),* }
            }
        }

        impl $crate::typed::FromSetting for $name {
            fn from_setting(value: Option<&$crate::plan::Value>) -> $name {
                <Option<$name> as $crate::typed::FromSetting>::from_setting(value).unwrap_or($name::$default)
            }
        }

        /// Unset (or not one of the words): `None`.
        impl $crate::typed::FromSetting for Option<$name> {
            fn from_setting(value: Option<&$crate::plan::Value>) -> Option<$name> {
                match value {
                    $( Some($crate::plan::Value::Word(w)) | Some($crate::plan::Value::String(w)) if w == $word => Some($name::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

/// A string written inline, or the name of an environment variable read
/// when the engine starts (`directory = env("PG_LOG_DIR")`): a path that
/// differs per deployment but is no secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TextSetting {
    #[default]
    Unset,
    Inline(String),
    Env(String),
}

impl TextSetting {
    /// The value now; the error says which variable is missing.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            TextSetting::Unset => Err("not set".into()),
            TextSetting::Inline(s) => Ok(s.clone()),
            TextSetting::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(v),
                _ => Err(format!("environment variable {name} is not set")),
            },
        }
    }
}

impl FromSetting for TextSetting {
    fn from_setting(value: Option<&Value>) -> TextSetting {
        match value {
            Some(Value::String(s)) | Some(Value::Word(s)) => TextSetting::Inline(s.clone()),
            Some(Value::Secret(SecretRef::Env(name))) => TextSetting::Env(name.clone()),
            _ => TextSetting::Unset,
        }
    }
}
