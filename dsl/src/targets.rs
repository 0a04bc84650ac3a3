//! Targets as data: the databases one `source` block scrapes.
//!
//! ```text
//! source fleet = postgres {
//!   targets = file("/etc/dbintel-targets/targets.yaml")   # or an inline list:
//!   # targets = [ { name = "orders", dsn = env("ORDERS_DSN"), attributes = { team = "checkout" } } ]
//!   collect statements
//! }
//! ```
//!
//! A targets file is a YAML list; each entry has a unique `name`, a `dsn`
//! written without its password or the DSN's parts (`host`, `port`,
//! `database`, `user`), the password from `password_file` or
//! `password_env`, optional `attributes` (resource attributes of its
//! data), and optional overrides of the source's settings (`interval`,
//! `timeout`, …). Inline entries are the same, with `dsn` and `password`
//! also as `env()`/`file()`.
//!
//! The file is read through the [`Host`] when the plan is compiled, so
//! `validate` checks it too, with diagnostics pointing into it; a reload
//! reads it again (the daemon watches it with the `.pipe` files).

use indexmap::IndexMap;

use crate::ast::{Expr, ExprKind, StringLit};
use crate::check::secrets::secret_in_connection_string;
use crate::check::settings::SettingsChecker;
use crate::codes;
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::load::Host;
use crate::plan::{NodeKind, Plan, SecretRef, Settings, TargetDsn, TargetSpec};
use crate::schema::DbSettings;
use crate::source::{FileId, SourceFile, SourceMap, Span};
use crate::EnvPolicy;

/// Keys of a target besides the source settings it may override.
const TARGET_KEYS: &[&str] =
    &["name", "dsn", "host", "port", "database", "user", "password", "password_file", "password_env", "attributes"];

/// One `key: value` of a target entry, with where it was written.
pub struct RawEntry {
    pub key: String,
    pub key_span: Span,
    pub value: Expr,
}

/// A target from its entries. `base` are the source's checked settings;
/// `at` is the entry's span (for "missing" diagnostics).
pub fn target(at: Span, entries: Vec<RawEntry>, base: &Settings, checker: &mut SettingsChecker<'_>) -> Option<TargetSpec> {
    let overridable: Vec<&'static str> = DbSettings::SPECS.iter().map(|s| s.name).filter(|n| *n != "dsn").collect();
    let mut seen: IndexMap<String, Span> = IndexMap::new();
    let (mut name, mut dsn, mut password) = (None, None, None);
    let (mut host, mut port, mut database, mut user) = (None, None, None, None);
    let mut attributes = IndexMap::new();
    let mut settings = base.clone();
    let mut ok = true;
    // a DSN refused already said what is wrong with where to connect
    let mut refused_dsn = false;
    for entry in entries {
        if let Some(first) = seen.get(&entry.key) {
            checker.diagnostics.push(
                Diagnostic::new(codes::DUPLICATE_SETTING, entry.key_span, format!("`{}` is given twice in this target", entry.key))
                    .label("again here")
                    .with_secondary(*first, "first here"),
            );
            ok = false;
            continue;
        }
        seen.insert(entry.key.clone(), entry.key_span);
        let text = |checker: &mut SettingsChecker<'_>, e: &Expr| match &e.kind {
            ExprKind::String(s) if !s.value.is_empty() => Some(s.value.clone()),
            _ => {
                checker.diagnostics.push(
                    Diagnostic::new(codes::SETTING_TYPE, e.span, format!("`{}` must be a non-empty string", entry.key))
                        .label("not a string"),
                );
                None
            }
        };
        match entry.key.as_str() {
            "name" => name = text(checker, &entry.value),
            "dsn" => {
                dsn = match &entry.value.kind {
                    ExprKind::Call(_) => checker.value("dsn", crate::schema::SettingType::Secret, &entry.value).and_then(|v| match v {
                        crate::plan::Value::Secret(s) => Some(DsnForm::Secret(s)),
                        _ => None,
                    }),
                    ExprKind::String(s) if secret_in_connection_string(&s.value).is_some() => {
                        ok = false;
                        refused_dsn = true;
                        let where_ = secret_in_connection_string(&s.value).unwrap_or_default();
                        checker.diagnostics.push(
                            Diagnostic::new(codes::INLINE_SECRET, entry.value.span, format!("this DSN carries a secret in {where_}; secrets must not be written in a targets list"))
                                .label("inline secret")
                                .help("write the DSN without it and add `password_file` (a mounted Secret) or `password_env`; the value is not shown here")
                                .hide_source(),
                        );
                        None
                    }
                    _ => text(checker, &entry.value).map(DsnForm::Url),
                }
            }
            "password" => {
                password = checker.value("password", crate::schema::SettingType::Secret, &entry.value).and_then(|v| match v {
                    crate::plan::Value::Secret(s) => Some(s),
                    _ => None,
                })
            }
            "password_file" => password = text(checker, &entry.value).map(SecretRef::File),
            "password_env" => {
                password = text(checker, &entry.value).map(|var| {
                    if !(checker.env_is_set)(&var) {
                        let code = match checker.env_policy {
                            EnvPolicy::Warn => codes::ENV_NOT_SET_WARNING,
                            EnvPolicy::Require => codes::ENV_NOT_SET,
                        };
                        checker.diagnostics.push(
                            Diagnostic::new(code, entry.value.span, format!("environment variable `{var}` is not set"))
                                .label("not set")
                                .help(format!("set {var} before `dbintel run`")),
                        );
                    }
                    SecretRef::Env(var)
                })
            }
            "host" => {
                host = text(checker, &entry.value);
                if let Some(where_) = host.as_deref().and_then(secret_in_connection_string) {
                    checker.diagnostics.push(
                        Diagnostic::new(codes::INLINE_SECRET, entry.value.span, format!("this host carries a secret in {where_}; secrets must not be written in a targets list"))
                            .label("inline secret")
                            .help("write the host alone, the user as `user`, and the password in `password_file` (a mounted Secret) or `password_env`; the value is not shown here")
                            .hide_source(),
                    );
                    ok = false;
                }
            }
            "database" => database = text(checker, &entry.value),
            "user" => {
                user = text(checker, &entry.value);
                // `user: mon:pw` would send the password as the user's
                // name, into the server's log and its error messages
                if user.as_deref().is_some_and(|u| u.contains(':')) {
                    checker.diagnostics.push(
                        Diagnostic::new(codes::INLINE_SECRET, entry.value.span, "this user carries a secret after its `:`; secrets must not be written in a targets list")
                            .label("inline secret")
                            .help("write the user alone and the password in `password_file` (a mounted Secret) or `password_env`; the value is not shown here")
                            .hide_source(),
                    );
                    ok = false;
                }
            }
            "port" => {
                port = match checker.value("port", crate::schema::SettingType::Int { min: 1, max: 65535 }, &entry.value) {
                    Some(crate::plan::Value::Int(p)) => u16::try_from(p).ok(),
                    _ => None,
                }
            }
            "attributes" => match checker.value("attributes", crate::schema::SettingType::StringMap, &entry.value) {
                Some(crate::plan::Value::Map(map)) => {
                    attributes = map
                        .into_iter()
                        .filter_map(|(k, v)| match v {
                            crate::plan::Value::String(s) => Some((k, s)),
                            _ => None,
                        })
                        .collect()
                }
                _ => ok = false,
            },
            key if overridable.contains(&key) => {
                let spec = DbSettings::SPECS.iter().find(|s| s.name == key).expect("listed above");
                match checker.value(key, spec.ty, &entry.value) {
                    Some(v) => {
                        settings.0.insert(key.to_string(), v);
                    }
                    None => ok = false,
                }
            }
            key => {
                let known = TARGET_KEYS.iter().copied().chain(overridable.iter().copied());
                let mut d =
                    Diagnostic::new(codes::UNKNOWN_TARGET_KEY, entry.key_span, format!("a target has no key `{key}`")).label("unknown key");
                d = match did_you_mean(key, known) {
                    Some(s) => d.help(format!("did you mean `{s}`? a target takes {} and the source's settings", TARGET_KEYS.join(", "))),
                    None => d.help(format!("a target takes {} and the source's settings (interval, timeout, …)", TARGET_KEYS.join(", "))),
                };
                checker.diagnostics.push(d);
                ok = false;
            }
        }
    }
    let Some(name) = name else {
        checker.diagnostics.push(
            Diagnostic::new(codes::MISSING_SETTING, at, "this target has no `name`")
                .label("no name")
                .help("give each target a unique `name`"),
        );
        return None;
    };
    let dsn = match (dsn, host) {
        (Some(_), Some(_)) => {
            checker.diagnostics.push(
                Diagnostic::new(codes::SETTING_TYPE, at, format!("target `{name}` has both `dsn` and `host`"))
                    .label("both")
                    .help("give either a `dsn` or its parts (`host`, `port`, `database`, `user`)"),
            );
            return None;
        }
        (Some(DsnForm::Secret(s)), None) => TargetDsn::Secret(s),
        (Some(DsnForm::Url(url)), None) => TargetDsn::Url { url, password },
        (None, Some(host)) => TargetDsn::Parts { host, port, database, user, password },
        (None, None) if refused_dsn => return None,
        (None, None) => {
            checker.diagnostics.push(
                Diagnostic::new(codes::MISSING_SETTING, at, format!("target `{name}` says nowhere to connect"))
                    .label("no dsn or host")
                    .help("add a `dsn` (without its password) or a `host`"),
            );
            return None;
        }
    };
    ok.then_some(TargetSpec { name, dsn, attributes, settings })
}

enum DsnForm {
    Secret(SecretRef),
    Url(String),
}

/// Reports names given to more than one target.
pub fn check_unique(targets: &[(TargetSpec, Span)], diagnostics: &mut Vec<Diagnostic>) {
    let mut first: IndexMap<&str, Span> = IndexMap::new();
    for (t, span) in targets {
        match first.get(t.name.as_str()) {
            Some(earlier) => diagnostics.push(
                Diagnostic::new(codes::DUPLICATE_TARGET, *span, format!("target `{}` is listed twice", t.name))
                    .label("again here")
                    .with_secondary(*earlier, "first here")
                    .help("target names must be unique within a source"),
            ),
            None => {
                first.insert(&t.name, *span);
            }
        }
    }
}

/// Reads every `targets = file(...)` of the plan through `host` (relative
/// paths from the declaring file's directory), adds the files to `sources`
/// (so diagnostics can show them) and fills the sources' targets.
pub fn resolve_files(
    plan: &mut Plan,
    sources: &mut SourceMap,
    host: &dyn Host,
    env_is_set: &dyn Fn(&str) -> bool,
    env_policy: EnvPolicy,
) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for node in plan.nodes.values_mut() {
        let NodeKind::Source(source) = &mut node.kind else { continue };
        let Some((path, span)) = source.targets_file.take() else { continue };
        let base_dir = sources.get(span.file).path.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
        let full = base_dir.join(&path);
        let text = match host.read(&full) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    diagnostics
                        .push(Diagnostic::new(codes::TARGETS_FILE, span, format!("the targets file `{path}` is not UTF-8")).label("here"));
                    continue;
                }
            },
            Err(e) => {
                diagnostics.push(
                    Diagnostic::new(codes::TARGETS_FILE, span, format!("cannot read the targets file `{path}`: {e}"))
                        .label("named here")
                        .help("mount the ConfigMap that holds it, or fix the path (relative paths start from this file's directory)"),
                );
                continue;
            }
        };
        let file = sources.add(SourceFile::new(path.clone(), full.clone(), text.clone()));
        let entries = match parse_yaml(file, &text) {
            Ok(entries) => entries,
            Err(d) => {
                diagnostics.push(*d);
                continue;
            }
        };
        if entries.is_empty() {
            diagnostics.push(
                Diagnostic::new(
                    codes::TARGETS_FILE,
                    Span::new(file, 0, text.len().min(1)),
                    format!("the targets file `{path}` lists no target"),
                )
                .label("empty")
                .help("list at least one target (`- name: …`)"),
            );
            continue;
        }
        let mut checker = SettingsChecker { diagnostics: &mut diagnostics, env_is_set, env_policy };
        let mut found = Vec::new();
        for (at, raw) in entries {
            if let Some(t) = target(at, raw, &source.settings, &mut checker) {
                found.push((t, at));
            }
        }
        check_unique(&found, &mut diagnostics);
        source.targets = found.into_iter().map(|(t, _)| t).collect();
    }
    diagnostics
}

/// A YAML list of maps, each entry with its span and its keys' spans.
fn parse_yaml(file: FileId, text: &str) -> Result<Vec<(Span, Vec<RawEntry>)>, Box<Diagnostic>> {
    type Entry = std::collections::BTreeMap<String, serde_saphyr::Spanned<serde_json::Value>>;
    let locate = |line: u64, column: u64| offset(text, line, column);
    let parsed: Vec<serde_saphyr::Spanned<Entry>> = serde_saphyr::from_str(text).map_err(|e| {
        let at = e.location().map(|l| locate(l.line(), l.column())).unwrap_or(0);
        let message = e.to_string();
        let first = message.lines().next().unwrap_or("not valid YAML").to_string();
        Diagnostic::new(
            codes::TARGETS_FILE,
            Span::new(file, at, (at + 1).min(text.len())),
            format!("the targets file is not a YAML list of targets: {first}"),
        )
        .label("here")
        .help("each target is a map: `- name: orders` then `host:`, `database:`, … indented under it")
    })?;
    Ok(parsed
        .into_iter()
        .map(|entry| {
            let at = locate(entry.referenced.line(), entry.referenced.column());
            let entry_span = Span::new(file, at, line_end(text, at));
            let raw = entry
                .value
                .into_iter()
                .map(|(key, value)| {
                    let start = locate(value.referenced.line(), value.referenced.column());
                    let value_span = Span::new(file, start, line_end(text, start));
                    // the key sits before its value on the same line
                    let key_start = text[..start].rfind(key.as_str()).filter(|k| text[*k..start].lines().count() <= 1).unwrap_or(start);
                    RawEntry {
                        key: key.clone(),
                        key_span: Span::new(file, key_start, key_start + key.len()),
                        value: scalar_expr(&value.value, value_span),
                    }
                })
                .collect();
            (entry_span, raw)
        })
        .collect())
}

/// The byte offset of a 1-indexed, character-based line and column.
fn offset(text: &str, line: u64, column: u64) -> usize {
    let mut start = 0;
    for _ in 1..line.max(1) {
        match text[start..].find('\n') {
            Some(n) => start += n + 1,
            None => return text.len(),
        }
    }
    text[start..].char_indices().nth(column.saturating_sub(1) as usize).map_or(text.len(), |(i, _)| start + i)
}

fn line_end(text: &str, from: usize) -> usize {
    text[from..].find('\n').map_or(text.len(), |n| from + n).max((from + 1).min(text.len()))
}

/// A YAML value as the expression the `.pipe` checker reads: `60s` is a
/// quantity, `5` a number, `true` a boolean, a map a map.
fn scalar_expr(value: &serde_json::Value, span: Span) -> Expr {
    let kind = match value {
        serde_json::Value::Bool(b) => ExprKind::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => ExprKind::Int(i, i.to_string()),
            None => ExprKind::Float(n.as_f64().unwrap_or(0.0), n.to_string()),
        },
        serde_json::Value::String(s) => {
            quantity(s).unwrap_or_else(|| ExprKind::String(StringLit { value: s.clone(), raw_hashes: None, span }))
        }
        serde_json::Value::Object(map) => ExprKind::Map(
            map.iter()
                .map(|(k, v)| crate::ast::MapEntry { key: k.clone(), bare_key: false, key_span: span, value: scalar_expr(v, span) })
                .collect(),
        ),
        serde_json::Value::Array(items) => ExprKind::List(items.iter().map(|v| scalar_expr(v, span)).collect()),
        serde_json::Value::Null => ExprKind::Nil,
    };
    Expr { kind, span }
}

/// `60s`, `500ms`, `25%`, `64MiB`.
fn quantity(text: &str) -> Option<ExprKind> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let units = ["ms", "s", "m", "h", "%", "B", "KB", "MB", "GB", "KiB", "MiB", "GiB"];
    units.contains(&unit).then(|| ExprKind::Quantity { number: value, text: number.to_string(), unit: unit.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_lines_and_characters() {
        let text = "- name: a\n  höst: b\n";
        assert_eq!(offset(text, 1, 3), 2);
        assert_eq!(&text[offset(text, 2, 9)..offset(text, 2, 10)], "b");
    }

    #[test]
    fn passwords_in_urls_are_found() {
        assert!(secret_in_connection_string("postgres://u:pw@h/db").is_some());
        assert!(secret_in_connection_string("postgres://u@h/db").is_none());
        assert!(secret_in_connection_string("postgres://h:5432/db").is_none());
        assert!(secret_in_connection_string("postgres://u@h/db?password=pw").is_some());
    }
}
