//! Checks across the sinks of a compilation that one sink's settings
//! cannot show on their own:
//!
//! - two sinks naming the same disk queue directory would read each
//!   other's records (a copy-pasted pair); each needs its own;
//! - an endpoint written with `user:password@` would put a credential in
//!   a URL, where it ends up in logs and proxies: credentials go in
//!   headers. The diagnostic never repeats the URL.
//!
//! The same rules hold at run time for what only the environment says
//! (`OTEL_EXPORTER_OTLP_*`), and the queue directory is locked there
//! against a second process.

use indexmap::IndexMap;

use crate::ast::{ExprKind, Item, ItemKind, Setting};
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::source::Span;

/// A directory as written, spelled one way: `./q/`, `q` and `q//.` are
/// the same directory.
fn normalized(path: &str) -> String {
    let absolute = path.starts_with('/');
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// The directory of a `queue = disk("…")` setting, with its span.
fn disk_dir(setting: &Setting) -> Option<(String, Span)> {
    let ExprKind::Call(call) = &setting.value.kind else { return None };
    if call.name.name != "disk" {
        return None;
    }
    match call.args.first().map(|a| &a.value.kind) {
        Some(ExprKind::String(s)) if !s.value.is_empty() => Some((normalized(&s.value), setting.value.span)),
        _ => None,
    }
}

/// Whether a URL written in a file carries `user[:password]@` in its
/// authority (what a URL parser reads as userinfo: up to the last `@`
/// before the path).
pub fn has_userinfo(url: &str) -> bool {
    let rest = url.trim().split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.contains('@')
}

pub fn check(diagnostics: &mut Vec<Diagnostic>, declared: &IndexMap<String, &Item>) {
    let mut dirs: Vec<(String, Span, &str)> = Vec::new();
    for (name, item) in declared {
        let ItemKind::Sink(decl) = &item.kind else { continue };
        for setting in &decl.settings {
            match setting.key.name.as_str() {
                "queue" => {
                    let Some((dir, span)) = disk_dir(setting) else { continue };
                    match dirs.iter().find(|(d, _, _)| *d == dir) {
                        Some((_, first, other)) => diagnostics.push(
                            Diagnostic::new(
                                codes::SHARED_QUEUE_DIR,
                                span,
                                format!("sinks `{other}` and `{name}` use the same disk queue directory `{dir}`"),
                            )
                            .label("already used")
                            .with_secondary(*first, "first used here")
                            .help("each sink needs a directory of its own, or they read each other's records; e.g. disk(\"/var/lib/dbintel/queue-<sink>\")"),
                        ),
                        None => dirs.push((dir, span, name)),
                    }
                }
                "endpoint" => {
                    if let ExprKind::String(s) = &setting.value.kind {
                        if has_userinfo(&s.value) {
                            diagnostics.push(
                                Diagnostic::new(
                                    codes::ENDPOINT_CREDENTIALS,
                                    setting.value.span,
                                    format!("the endpoint of sink `{name}` carries a user name or password"),
                                )
                                .label("credentials in a URL")
                                .help("put them in a header, e.g. headers = { \"authorization\" = env(\"OTLP_TOKEN\") }; the URL is not repeated here"),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_directory_spelled_several_ways_is_one_directory() {
        assert_eq!(normalized("/var/lib/q/"), "/var/lib/q");
        assert_eq!(normalized("/var//lib/./q"), "/var/lib/q");
        assert_eq!(normalized("./q"), "q");
        assert_eq!(normalized("q/."), "q");
        assert_ne!(normalized("/q"), normalized("q"));
    }

    #[test]
    fn userinfo_is_read_as_a_url_parser_reads_it() {
        assert!(has_userinfo("https://user:pw@otlp.example.com:4318"));
        assert!(has_userinfo("http://localhost:1@elsewhere/"));
        assert!(has_userinfo("https://token@host"));
        assert!(!has_userinfo("https://otlp.example.com/v1?from=a@b"), "an @ in the query is not userinfo");
        assert!(!has_userinfo("https://otlp.example.com/team@x/v1"));
    }
}
