//! Checking `key = value` settings against a node kind's schema.

use std::time::Duration;

use indexmap::IndexMap;

use crate::ast::{Expr, ExprKind, Setting};
use crate::codes;
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::plan::{SecretRef, Settings, Value};
use crate::schema::{DefaultValue, SettingSpec, SettingType};
use crate::source::Span;

/// How to treat `env("X")` when X is not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvPolicy {
    /// `validate`: the file is fine, the environment is not ready: warn.
    Warn,
    /// `run`: the value is needed now: error.
    Require,
}

pub struct SettingsChecker<'a> {
    pub diagnostics: &'a mut Vec<Diagnostic>,
    pub env_is_set: &'a dyn Fn(&str) -> bool,
    pub env_policy: EnvPolicy,
}

impl SettingsChecker<'_> {
    /// Checks `settings` of a block (named `what` in messages) against
    /// `specs`, and returns them complete with defaults.
    pub fn check(&mut self, what: &str, block: Span, settings: &[&Setting], specs: &[SettingSpec]) -> Settings {
        let mut out: IndexMap<String, Value> = IndexMap::new();
        let mut seen: IndexMap<&str, Span> = IndexMap::new();
        for setting in settings {
            let key = setting.key.name.as_str();
            if let Some(first) = seen.get(key) {
                self.diagnostics.push(
                    Diagnostic::new(codes::DUPLICATE_SETTING, setting.key.span, format!("`{key}` is set twice in {what}"))
                        .label("set again here")
                        .with_secondary(*first, "first set here")
                        .help("remove one of them"),
                );
                continue;
            }
            seen.insert(key, setting.key.span);
            let Some(spec) = specs.iter().find(|s| s.name == key) else {
                let valid: Vec<&str> = specs.iter().map(|s| s.name).collect();
                let mut d = Diagnostic::new(codes::UNKNOWN_SETTING, setting.key.span, format!("{what} has no setting `{key}`"))
                    .label("unknown setting");
                d = match did_you_mean(key, valid.iter().copied()) {
                    Some(s) => d.help(format!("did you mean `{s}`? valid settings: {}", valid.join(", "))),
                    None if valid.is_empty() => d.help("this block takes no settings"),
                    None => d.help(format!("valid settings: {}", valid.join(", "))),
                };
                self.diagnostics.push(d);
                continue;
            };
            if let Some(value) = self.value(key, spec.ty, &setting.value) {
                out.insert(key.to_string(), value);
            }
        }
        for spec in specs {
            if out.contains_key(spec.name) || seen.contains_key(spec.name) {
                continue;
            }
            if spec.required {
                self.diagnostics.push(
                    Diagnostic::new(codes::MISSING_SETTING, block, format!("{what} needs `{}`", spec.name))
                        .label(format!("`{}` missing", spec.name))
                        .help(format!("add `{} = ...` ({})", spec.name, spec.ty.describe())),
                );
            } else if let Some(value) = default_value(spec.default) {
                out.insert(spec.name.to_string(), value);
            }
        }
        Settings(out)
    }

    fn mismatch(&mut self, key: &str, ty: SettingType, expr: &Expr, found: &str) {
        self.diagnostics.push(
            Diagnostic::new(codes::SETTING_TYPE, expr.span, format!("`{key}` must be {}, found {found}", ty.describe()))
                .label(format!("expected {}", ty.describe())),
        );
    }

    pub fn value(&mut self, key: &str, ty: SettingType, expr: &Expr) -> Option<Value> {
        match ty {
            SettingType::Duration => self.duration(key, expr).map(Value::Duration),
            SettingType::Percent => self.percent(key, expr).map(Value::Percent),
            SettingType::Size => self.size(key, expr).map(Value::Bytes),
            SettingType::Int { min, max } => match &expr.kind {
                ExprKind::Int(v, _) if (min..=max).contains(v) => Some(Value::Int(*v)),
                ExprKind::Int(v, _) => {
                    self.diagnostics.push(
                        Diagnostic::new(codes::OUT_OF_RANGE, expr.span, format!("`{key}` is {v}; it must be from {min} to {max}"))
                            .label("out of range"),
                    );
                    None
                }
                _ => self.wrong(key, ty, expr),
            },
            SettingType::Float => match &expr.kind {
                ExprKind::Int(v, _) => Some(Value::Float(*v as f64)),
                ExprKind::Float(v, _) => Some(Value::Float(*v)),
                _ => self.wrong(key, ty, expr),
            },
            SettingType::Bool => match &expr.kind {
                ExprKind::Bool(b) => Some(Value::Bool(*b)),
                _ => self.wrong(key, ty, expr),
            },
            SettingType::String => match &expr.kind {
                ExprKind::String(s) => Some(Value::String(s.value.clone())),
                _ => self.wrong(key, ty, expr),
            },
            SettingType::Secret => self.secret(key, expr).map(Value::Secret),
            SettingType::Text => match &expr.kind {
                ExprKind::String(s) if !s.value.is_empty() => Some(Value::String(s.value.clone())),
                ExprKind::Call(call) if call.name.name == "env" => self.secret(key, expr).map(Value::Secret),
                _ => self.wrong(key, ty, expr),
            },
            SettingType::NodeName => match &expr.kind {
                ExprKind::String(s) if !s.value.is_empty() => Some(Value::Word(s.value.clone())),
                _ => match bare_word(expr) {
                    Some(w) => Some(Value::Word(w)),
                    None => self.wrong(key, ty, expr),
                },
            },
            SettingType::Word(words) => {
                let word = match &expr.kind {
                    ExprKind::String(s) => Some(s.value.clone()),
                    _ => bare_word(expr),
                };
                match word {
                    Some(w) if words.contains(&w.as_str()) => Some(Value::Word(w)),
                    Some(w) => {
                        let mut d = Diagnostic::new(codes::SETTING_TYPE, expr.span, format!("`{key}` cannot be `{w}`"))
                            .label(format!("expected {}", ty.describe()));
                        if let Some(s) = did_you_mean(&w, words.iter().copied()) {
                            d = d.help(format!("did you mean `{s}`?"));
                        }
                        self.diagnostics.push(d);
                        None
                    }
                    None => self.wrong(key, ty, expr),
                }
            }
            SettingType::StringList => match &expr.kind {
                ExprKind::List(items) => {
                    let mut out = Vec::new();
                    for item in items {
                        match &item.kind {
                            ExprKind::String(s) => out.push(Value::String(s.value.clone())),
                            _ => {
                                self.wrong::<()>(key, ty, item);
                            }
                        }
                    }
                    Some(Value::List(out))
                }
                _ => self.wrong(key, ty, expr),
            },
            SettingType::StringMap | SettingType::Headers => match &expr.kind {
                ExprKind::Map(entries) => {
                    let mut out = IndexMap::new();
                    for entry in entries {
                        let value = match (&entry.value.kind, ty) {
                            (ExprKind::String(s), SettingType::Headers) if looks_like_credential(&entry.key) => {
                                let _ = s;
                                self.inline_secret(&format!("header `{}`", entry.key), entry.value.span);
                                None
                            }
                            (ExprKind::String(s), _) => Some(Value::String(s.value.clone())),
                            (ExprKind::Call(_), SettingType::Headers) => self.secret(&entry.key, &entry.value).map(Value::Secret),
                            _ => self.wrong(&entry.key, SettingType::String, &entry.value),
                        };
                        if let Some(v) = value {
                            out.insert(entry.key.clone(), v);
                        }
                    }
                    Some(Value::Map(out))
                }
                _ => self.wrong(key, ty, expr),
            },
            SettingType::SamplerState => match &expr.kind {
                _ if bare_word(expr).as_deref() == Some("local") => Some(Value::Word("local".into())),
                ExprKind::Call(call) if call.name.name == "redis" => {
                    let mut state = None;
                    let (mut username, mut password) = (None, None);
                    for arg in &call.args {
                        match (arg.name.as_ref().map(|n| n.name.as_str()), &arg.value.kind) {
                            (None, ExprKind::String(s)) if s.value.starts_with("redis://") || s.value.starts_with("rediss://") => {
                                if let Some(where_) = super::secrets::secret_in_connection_string(&s.value) {
                                    self.diagnostics.push(
                                        Diagnostic::new(
                                            codes::INLINE_SECRET,
                                            arg.value.span,
                                            format!("this Redis URL carries a secret in {where_}; secrets must come from env() or file()"),
                                        )
                                        .label("inline secret")
                                        .help("write the URL without it and add `password = env(\"REDIS_PASSWORD\")` (or file(…)) to redis(…); the value is not shown here")
                                        .hide_source(),
                                    );
                                    return None;
                                }
                                state = Some(s.value.clone());
                            }
                            (Some("username"), _) => username = Some(self.secret("username", &arg.value)?),
                            (Some("password"), _) => password = Some(self.secret("password", &arg.value)?),
                            _ => return self.wrong(key, ty, expr),
                        }
                    }
                    match state {
                        Some(url) => Some(Value::Redis(crate::plan::RedisState { url, username, password })),
                        None => self.wrong(key, ty, expr),
                    }
                }
                _ => self.wrong(key, ty, expr),
            },
            SettingType::Queue => match &expr.kind {
                _ if bare_word(expr).as_deref() == Some("memory") => Some(Value::Word("memory".into())),
                ExprKind::Call(call) if call.name.name == "disk" => match call.args.as_slice() {
                    [arg] if arg.name.is_none() => match &arg.value.kind {
                        ExprKind::String(s) if !s.value.is_empty() => Some(Value::Disk(s.value.clone())),
                        _ => self.wrong(key, ty, expr),
                    },
                    _ => self.wrong(key, ty, expr),
                },
                _ => self.wrong(key, ty, expr),
            },
        }
    }

    fn wrong<T>(&mut self, key: &str, ty: SettingType, expr: &Expr) -> Option<T> {
        let found = describe_expr(expr);
        self.mismatch(key, ty, expr, &found);
        None
    }

    fn quantity<'e>(&mut self, key: &str, ty: SettingType, expr: &'e Expr, code: crate::codes::Code) -> Option<(f64, &'e str, &'e str)> {
        match &expr.kind {
            ExprKind::Quantity { number, text, unit } => Some((*number, text.as_str(), unit.as_str())),
            ExprKind::Int(v, text) => {
                let example = match ty {
                    SettingType::Duration => format!("{v}s"),
                    SettingType::Percent => format!("{v}%"),
                    _ => format!("{v}MiB"),
                };
                self.diagnostics.push(
                    Diagnostic::new(code, expr.span, format!("`{key}` needs a unit: `{text}` alone is ambiguous"))
                        .label("no unit")
                        .help(format!("write it with a unit, e.g. {example}")),
                );
                None
            }
            ExprKind::Neg(_) => {
                self.diagnostics.push(Diagnostic::new(code, expr.span, format!("`{key}` cannot be negative")).label("negative"));
                None
            }
            _ => self.wrong(key, ty, expr),
        }
    }

    fn duration(&mut self, key: &str, expr: &Expr) -> Option<Duration> {
        let (number, text, unit) = self.quantity(key, SettingType::Duration, expr, codes::BAD_DURATION)?;
        let millis = match unit {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            other => {
                self.diagnostics.push(
                    Diagnostic::new(codes::BAD_DURATION, expr.span, format!("`{other}` is not a unit of time"))
                        .label("unknown unit")
                        .help(format!("durations take ms, s, m, h or d, e.g. {text}s")),
                );
                return None;
            }
        };
        let total = number * millis;
        if !(1.0..=365.0 * 86_400_000.0).contains(&total) {
            self.diagnostics.push(
                Diagnostic::new(codes::BAD_DURATION, expr.span, format!("`{key}` = {text}{unit} is out of range"))
                    .label("out of range")
                    .help("durations run from 1ms to 365d"),
            );
            return None;
        }
        Some(Duration::from_millis(total as u64))
    }

    pub fn percent(&mut self, key: &str, expr: &Expr) -> Option<f64> {
        let (number, text, unit) = self.quantity(key, SettingType::Percent, expr, codes::BAD_PERCENTAGE)?;
        if unit != "%" {
            self.diagnostics.push(
                Diagnostic::new(codes::BAD_PERCENTAGE, expr.span, format!("`{key}` must be a percentage, found `{text}{unit}`"))
                    .label("expected %")
                    .help(format!("write {text}%")),
            );
            return None;
        }
        if !(0.0..=100.0).contains(&number) {
            self.diagnostics.push(
                Diagnostic::new(codes::BAD_PERCENTAGE, expr.span, format!("{text}% is not between 0% and 100%")).label("out of range"),
            );
            return None;
        }
        Some(number)
    }

    fn size(&mut self, key: &str, expr: &Expr) -> Option<u64> {
        let (number, text, unit) = self.quantity(key, SettingType::Size, expr, codes::BAD_SIZE)?;
        let factor: f64 = match unit {
            "B" => 1.0,
            "KB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            other => {
                let mut d = Diagnostic::new(codes::BAD_SIZE, expr.span, format!("`{other}` is not a unit of size")).label("unknown unit");
                d = match did_you_mean(other, ["B", "KB", "MB", "GB", "KiB", "MiB", "GiB"]) {
                    Some(s) => d.help(format!("did you mean {text}{s}? sizes take B, KB, MB, GB, KiB, MiB, GiB")),
                    None => d.help("sizes take B, KB, MB, GB, KiB, MiB, GiB"),
                };
                self.diagnostics.push(d);
                return None;
            }
        };
        let bytes = number * factor;
        if !(1.0..=1024.0_f64.powi(4)).contains(&bytes) {
            self.diagnostics.push(
                Diagnostic::new(codes::BAD_SIZE, expr.span, format!("`{key}` = {text}{unit} is out of range"))
                    .label("out of range")
                    .help("sizes run from 1B to 1024GiB"),
            );
            return None;
        }
        Some(bytes as u64)
    }

    fn inline_secret(&mut self, what: &str, span: Span) {
        self.diagnostics.push(
            Diagnostic::new(codes::INLINE_SECRET, span, format!("{what} is written inline; secrets must come from env() or file()"))
                .label("inline secret")
                .help("write env(\"NAME\") or file(\"/run/secrets/name\"); the value is not shown here")
                .hide_source(),
        );
    }

    fn secret(&mut self, key: &str, expr: &Expr) -> Option<SecretRef> {
        match &expr.kind {
            ExprKind::String(_) => {
                self.inline_secret(&format!("`{key}`"), expr.span);
                None
            }
            ExprKind::Call(call) if matches!(call.name.name.as_str(), "env" | "file") => {
                let arg = match call.args.as_slice() {
                    [arg] if arg.name.is_none() => match &arg.value.kind {
                        ExprKind::String(s) if !s.value.is_empty() => Some(s.value.clone()),
                        _ => None,
                    },
                    _ => None,
                };
                let Some(arg) = arg else {
                    self.diagnostics.push(
                        Diagnostic::new(codes::SETTING_TYPE, expr.span, format!("`{}` takes one non-empty string", call.name.name))
                            .label("bad argument")
                            .help(format!(
                                "e.g. {}(\"{}\")",
                                call.name.name,
                                if call.name.name == "env" { "PG_DSN" } else { "/run/secrets/dsn" }
                            )),
                    );
                    return None;
                };
                if call.name.name == "file" {
                    return Some(SecretRef::File(arg));
                }
                if !(self.env_is_set)(&arg) {
                    let code = match self.env_policy {
                        EnvPolicy::Warn => codes::ENV_NOT_SET_WARNING,
                        EnvPolicy::Require => codes::ENV_NOT_SET,
                    };
                    self.diagnostics.push(
                        Diagnostic::new(code, expr.span, format!("environment variable `{arg}` is not set"))
                            .label("not set")
                            .help(format!("set {arg} before `dbintel run`")),
                    );
                }
                Some(SecretRef::Env(arg))
            }
            _ => self.wrong(key, SettingType::Secret, expr),
        }
    }
}

/// A bare word such as `zstd`, or a hyphenated one such as `verify-full`
/// (which parses as a subtraction of two names).
fn bare_word(expr: &Expr) -> Option<String> {
    match &expr.kind {
        ExprKind::Path(p) if p.segments.len() == 1 && p.indexes.is_empty() => Some(p.segments[0].name.clone()),
        ExprKind::Binary { op: crate::ast::BinaryOp::Sub, lhs, rhs } => Some(format!("{}-{}", bare_word(lhs)?, bare_word(rhs)?)),
        _ => None,
    }
}

/// Header names whose values are credentials.
fn looks_like_credential(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["key", "token", "secret", "auth", "password", "license"].iter().any(|w| lower.contains(w))
}

fn describe_expr(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::Nil => "nil".into(),
        ExprKind::Bool(_) => "a boolean".into(),
        ExprKind::Int(_, t) => format!("the number {t}"),
        ExprKind::Float(_, t) => format!("the number {t}"),
        ExprKind::String(_) => "a string".into(),
        ExprKind::Quantity { text, unit, .. } => format!("`{text}{unit}`"),
        ExprKind::Path(p) => format!("`{}`", p.dotted()),
        ExprKind::Call(c) => format!("a call to `{}`", c.name.name),
        ExprKind::List(_) => "a list".into(),
        ExprKind::Map(_) => "a map".into(),
        _ => "an expression".into(),
    }
}

fn default_value(default: DefaultValue) -> Option<Value> {
    default.value()
}
