//! Log sources (`postgres_logs`, `mysql_logs`): what is particular to
//! them. A log source connects nowhere itself; its `server` names the
//! database source whose server writes the log, and the log's records
//! carry that server's resource. So the checker makes sure the name leads
//! to one database target, and [`link`] copies that target into the log
//! source (after targets files are read), where the engine and `doctor`
//! find it.

use indexmap::IndexMap;

use crate::ast::{ExprKind, Item, ItemKind, SourceDecl};
use crate::codes;
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::plan::{Node, NodeKind, Plan, Settings, TargetSpec};
use crate::schema;

/// The `log_line_prefix` escapes PostgreSQL knows (`%` and a letter,
/// optionally padded: `%-10u`).
pub const PREFIX_ESCAPES: &str = "audrhLbpPtmniecslvxqQ%";

/// Checks of one log source on its own: its `log_line_prefix` and `files`.
pub fn check_source(diagnostics: &mut Vec<Diagnostic>, decl: &SourceDecl) {
    for setting in decl.settings().filter(|s| s.key.name == "log_line_prefix") {
        let ExprKind::String(text) = &setting.value.kind else { continue };
        if let Err(why) = prefix_escapes(&text.value) {
            diagnostics.push(
                Diagnostic::new(codes::LOG_LINE_PREFIX, setting.value.span, why)
                    .label("not a log_line_prefix PostgreSQL writes")
                    .help("copy the server's setting: SHOW log_line_prefix; (escapes: %m %t %n %p %u %d %a %h %r %b %e %c %l %s %v %x %q %Q %i %L %P %%)"),
            );
        }
    }
    for setting in decl.settings().filter(|s| s.key.name == "files") {
        let ExprKind::List(items) = &setting.value.kind else { continue };
        for item in items {
            let ExprKind::String(glob) = &item.kind else { continue };
            if glob.value.is_empty() || glob.value.contains('/') || glob.value.contains("**") {
                diagnostics.push(
                    Diagnostic::new(codes::LOG_FILES, item.span, format!("`{}` is not a file-name pattern", glob.value))
                        .label("a name in `directory`, with * and ?")
                        .help("e.g. files = [\"postgresql-*.json\"]; the directory itself is `directory`"),
                );
            }
        }
    }
}

/// The escapes of a prefix, or why it is not one.
pub fn prefix_escapes(prefix: &str) -> Result<Vec<char>, String> {
    let mut out = Vec::new();
    let mut chars = prefix.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        // padding: %-10u, %10u
        if chars.peek() == Some(&'-') {
            chars.next();
        }
        while chars.peek().is_some_and(char::is_ascii_digit) {
            chars.next();
        }
        match chars.next() {
            Some(e) if PREFIX_ESCAPES.contains(e) => out.push(e),
            Some(e) => return Err(format!("`%{e}` is not a log_line_prefix escape")),
            None => return Err("the prefix ends inside an escape (`%` alone)".into()),
        }
    }
    Ok(out)
}

/// After every node is checked: each log source's `server` names a
/// database source of the kind it needs, and `target` picks one of its
/// targets where there are several.
pub fn check_links(diagnostics: &mut Vec<Diagnostic>, declared: &IndexMap<String, &Item>, nodes: &IndexMap<String, Node>) {
    for item in declared.values() {
        let ItemKind::Source(decl) = &item.kind else { continue };
        let Some(wanted) = schema::source_kind(&decl.kind.name).and_then(|k| k.server_kind) else { continue };
        let Some(setting) = decl.settings().find(|s| s.key.name == "server") else { continue };
        let Some(NodeKind::Source(log)) = nodes.get(&decl.name.name).map(|n| &n.kind) else { continue };
        let Some(server) = log.settings.str("server") else { continue };
        let databases =
            || nodes.iter().filter(|(_, n)| matches!(&n.kind, NodeKind::Source(s) if s.kind == wanted)).map(|(k, _)| k.as_str());
        let source = match nodes.get(server).map(|n| &n.kind) {
            Some(NodeKind::Source(s)) if s.kind == wanted => s,
            found => {
                let what = match found {
                    Some(kind) => format!("`{server}` is a {}, not a {wanted} source", describe(kind)),
                    None => format!("there is no source named `{server}`"),
                };
                let candidates: Vec<&str> = databases().collect();
                let help = match did_you_mean(server, candidates.iter().copied()).or(candidates.first().copied()) {
                    Some(s) => format!("did you mean `server = {s}`? ({wanted} sources here: {})", candidates.join(", ")),
                    None => format!(
                        "a {} source names the {wanted} source whose server writes the log: declare one, e.g. `source {wanted} = {wanted} {{ dsn = env(\"…\") … }}`",
                        decl.kind.name
                    ),
                };
                diagnostics
                    .push(Diagnostic::new(codes::LOG_SERVER, setting.value.span, what).label(format!("not a {wanted} source")).help(help));
                continue;
            }
        };
        // a targets file is read later; `link` checks the choice then
        if source.targets_file.is_some() {
            continue;
        }
        let target_setting = decl.settings().find(|s| s.key.name == "target");
        if let Err(why) = choose(&source.targets, log.settings.str("target"), server) {
            let span = target_setting.map_or(setting.value.span, |s| s.value.span);
            diagnostics.push(
                Diagnostic::new(codes::LOG_TARGET, span, why)
                    .label("which server writes this log?")
                    .help("add `target = \"NAME\"` naming the target whose server's log this is"),
            );
        }
    }
}

fn describe(kind: &NodeKind) -> String {
    match kind {
        NodeKind::Source(s) => format!("{} source", s.kind),
        other => other.label().to_string(),
    }
}

/// The target of `targets` a log source means.
fn choose<'a>(targets: &'a [TargetSpec], named: Option<&str>, server: &str) -> Result<&'a TargetSpec, String> {
    match (named, targets) {
        (Some(name), _) => targets.iter().find(|t| t.name == name).ok_or_else(|| {
            let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
            format!("source `{server}` has no target `{name}` (its targets: {})", names.join(", "))
        }),
        (None, [one]) => Ok(one),
        (None, []) => Err(format!("source `{server}` has no target")),
        (None, many) => {
            let names: Vec<&str> = many.iter().map(|t| t.name.as_str()).collect();
            Err(format!("source `{server}` has {} targets ({}); say which one's log this is", many.len(), names.join(", ")))
        }
    }
}

/// Gives each log source the target of its server (run once targets files
/// are read): a copy named after the log source, with the server's DSN
/// and attributes and the log source's own settings. Diagnostics for a
/// choice the checker could not make then (a targets file) point at the
/// log source.
pub fn link(plan: &mut Plan) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let mut chosen: Vec<(String, Result<TargetSpec, String>)> = Vec::new();
    for (name, node) in &plan.nodes {
        let NodeKind::Source(log) = &node.kind else { continue };
        if schema::source_kind(&log.kind).and_then(|k| k.server_kind).is_none() {
            continue;
        }
        let Some(server) = log.settings.str("server") else { continue };
        let Some(NodeKind::Source(source)) = plan.nodes.get(server).map(|n| &n.kind) else { continue };
        let target = choose(&source.targets, log.settings.str("target"), server).map(|t| TargetSpec {
            name: name.clone(),
            dsn: t.dsn.clone(),
            attributes: t.attributes.clone(),
            settings: Settings(log.settings.0.clone()),
        });
        chosen.push((name.clone(), target));
    }
    for (name, target) in chosen {
        let Some(node) = plan.nodes.get_mut(&name) else { continue };
        let span = node.span;
        let NodeKind::Source(log) = &mut node.kind else { continue };
        match target {
            Ok(target) => log.targets = vec![target],
            Err(why) => diagnostics.push(
                Diagnostic::new(codes::LOG_TARGET, span, why)
                    .label("which server writes this log?")
                    .help("add `target = \"NAME\"` naming the target whose server's log this is"),
            ),
        }
    }
    diagnostics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_read_escape_by_escape() {
        assert_eq!(prefix_escapes("%m [%p] ").unwrap(), vec!['m', 'p']);
        assert_eq!(prefix_escapes("%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ").unwrap(), vec!['t', 'p', 'l', 'u', 'd', 'a', 'h']);
        assert_eq!(prefix_escapes("%-10u%%%5p").unwrap(), vec!['u', '%', 'p']);
        assert!(prefix_escapes("%m %y ").unwrap_err().contains("%y"));
        assert!(prefix_escapes("%m %").is_err());
    }
}

#[cfg(test)]
mod link_tests {
    //! A log source whose server reads its targets from a file is linked
    //! once the file is read.
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    use crate::plan::{NodeKind, TargetDsn};

    struct Files(HashMap<PathBuf, String>);

    impl crate::Host for Files {
        fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
            self.0.get(path).map(|s| s.clone().into_bytes()).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
        fn canonicalize(&self, path: &Path) -> PathBuf {
            path.to_path_buf()
        }
        fn env_is_set(&self, _: &str) -> bool {
            true
        }
    }

    fn compile(target: &str) -> crate::Compilation {
        let pipe = format!(
            r#"source fleet = postgres {{ targets = file("fleet.yaml"), collect statements }}
transform scrub {{ set(attributes["db.log.message"], RedactLogMessage(attributes["db.log.message"])) }}
source fleet_logs = postgres_logs {{
  server = fleet
  {target}
  directory = "/var/log/postgresql"
  collect errors
}}
sink out = stdout {{}}
pipeline a = fleet.statements -> scrub -> out
pipeline b = fleet_logs -> scrub -> out
"#
        );
        let yaml = "- name: orders\n  dsn: postgres://mon@orders-db:5432/orders\n- name: users\n  dsn: postgres://mon@users-db:6432/users\n  attributes: { team: identity }\n";
        let files = Files(HashMap::from([(PathBuf::from("/p/logs.pipe"), pipe), (PathBuf::from("/p/fleet.yaml"), yaml.to_string())]));
        crate::compile(&[PathBuf::from("/p/logs.pipe")], &files, crate::EnvPolicy::Warn)
    }

    #[test]
    fn a_log_source_takes_its_servers_target_from_a_targets_file() {
        let c = compile("target = \"users\"");
        let plan = c.plan.unwrap_or_else(|| panic!("{:?}", c.diagnostics));
        let Some(NodeKind::Source(logs)) = plan.node("fleet_logs").map(|n| &n.kind) else { panic!("no log source") };
        assert_eq!(logs.targets.len(), 1);
        assert_eq!(logs.targets[0].name, "fleet_logs", "named after the log source (its status and lease)");
        assert!(matches!(&logs.targets[0].dsn, TargetDsn::Url { url, .. } if url.contains("users-db:6432")), "{:?}", logs.targets[0].dsn);
        assert_eq!(logs.targets[0].attributes.get("team").map(String::as_str), Some("identity"));
    }

    #[test]
    fn several_targets_in_a_file_and_no_choice_is_e315() {
        let c = compile("");
        assert!(c.plan.is_none());
        assert!(
            c.diagnostics.iter().any(|d| d.code == crate::codes::LOG_TARGET && d.message.contains("orders, users")),
            "{:?}",
            c.diagnostics
        );
    }
}
