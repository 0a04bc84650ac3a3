//! The server settings each collector of a log source needs, as data:
//! `doctor` reads them through the database source a log source names
//! (`SHOW …` / `SELECT @@…`) and checks the values with
//! [`Requirement::satisfied_by`]; the README's table of production-safe
//! settings says the same in words.

use dbintel_dsl::plan::SourceNode;
use dbintel_dsl::schema::{PgLogFormat, PgLogSettings};

/// What a setting's value must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wants {
    /// `on` / `ON` / `1` / `true`.
    On,
    Off,
    /// This value (case-insensitive), e.g. `json`.
    Equals(String),
    /// One of these (case-insensitive).
    OneOf(Vec<String>),
    /// A comma-separated list holding this item (`log_destination`,
    /// `shared_preload_libraries`, `log_output`).
    Contains(String),
    /// A threshold that is set: anything but `-1` (`log_temp_files`,
    /// `log_autovacuum_min_duration`, `auto_explain.log_min_duration`).
    Enabled,
    /// A number at least this (`log_warnings`, `log_error_verbosity`).
    AtLeast(i64),
    /// Anything but empty (`log_error`).
    NotEmpty,
    /// A severity at least as verbose as this one (`log_min_messages`):
    /// debug5 … debug1, info, notice, warning, error, log, fatal, panic.
    SeverityAtMost(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The collector that needs it (`*`: the source as a whole).
    pub collector: &'static str,
    /// The setting's name as `SHOW` (PostgreSQL) or `@@` (MySQL) spells it.
    pub setting: &'static str,
    pub wants: Wants,
    /// Without it the collector sees nothing (else: recommended).
    pub required: bool,
    pub why: &'static str,
}

const SEVERITY_ORDER: &[&str] =
    &["debug5", "debug4", "debug3", "debug2", "debug1", "info", "notice", "warning", "error", "log", "fatal", "panic"];

impl Requirement {
    /// Whether the server's value satisfies it.
    pub fn satisfied_by(&self, value: &str) -> bool {
        let v = value.trim();
        let on = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "on" | "1" | "true" | "yes");
        match &self.wants {
            Wants::On => on(v),
            Wants::Off => !on(v),
            Wants::Equals(x) => v.eq_ignore_ascii_case(x),
            Wants::OneOf(xs) => xs.iter().any(|x| v.eq_ignore_ascii_case(x)),
            Wants::Contains(x) => v.split(',').any(|i| i.trim().trim_matches('\'').trim_matches('"').eq_ignore_ascii_case(x)),
            Wants::Enabled => v != "-1" && !v.is_empty(),
            Wants::AtLeast(n) => v.parse::<i64>().is_ok_and(|x| x >= *n),
            Wants::NotEmpty => !v.is_empty(),
            Wants::SeverityAtMost(x) => {
                let rank = |s: &str| SEVERITY_ORDER.iter().position(|o| o.eq_ignore_ascii_case(s));
                matches!((rank(v), rank(x)), (Some(a), Some(b)) if a <= b)
            }
        }
    }
}

fn req(collector: &'static str, setting: &'static str, wants: Wants, required: bool, why: &'static str) -> Requirement {
    Requirement { collector, setting, wants, required, why }
}

/// What a log source's collectors need of its server.
pub fn requirements(node: &SourceNode) -> Vec<Requirement> {
    let collectors: Vec<&str> = node.collectors.keys().map(String::as_str).collect();
    let has = |c: &str| collectors.contains(&c);
    let mut out = Vec::new();
    if node.kind == "mysql_logs" {
        if has("slow_queries") {
            out.push(req("slow_queries", "slow_query_log", Wants::On, true, "the slow query log is written"));
            out.push(req("slow_queries", "log_output", Wants::Contains("FILE".into()), true, "to a file (not only to mysql.slow_log)"));
            out.push(req("slow_queries", "slow_query_log_file", Wants::NotEmpty, true, "the file the collector follows"));
            out.push(req("slow_queries", "long_query_time", Wants::NotEmpty, false, "the threshold: statements slower than it are logged"));
        }
        if has("errors") {
            out.push(req("errors", "log_error", Wants::NotEmpty, true, "the error log is a file the collector follows (not stderr)"));
            out.push(req("errors", "log_warnings", Wants::AtLeast(2), false, "MariaDB: refused logins and aborted connections are logged"));
            out.push(req("errors", "innodb_print_all_deadlocks", Wants::On, false, "every InnoDB deadlock is logged"));
        }
        return out;
    }
    let settings = PgLogSettings::from_settings(&node.settings);
    out.push(req("*", "logging_collector", Wants::On, true, "the server writes its log to files in log_directory"));
    out.push(req("*", "log_destination", Wants::Contains(settings.format.as_str().into()), true, "in the format the source reads"));
    out.push(req("*", "lc_messages", Wants::Equals("C".into()), false, "messages are classified in English"));
    out.push(req("*", "log_timezone", Wants::Equals("UTC".into()), false, "timestamps are read exactly (zone abbreviations are not)"));
    if settings.format == PgLogFormat::Stderr {
        out.push(req(
            "*",
            "log_line_prefix",
            Wants::Equals(settings.log_line_prefix.clone()),
            true,
            "lines are read by the prefix the source declares",
        ));
    }
    if has("plans") {
        out.push(req("plans", "shared_preload_libraries", Wants::Contains("auto_explain".into()), true, "auto_explain is loaded"));
        out.push(req(
            "plans",
            "auto_explain.log_min_duration",
            Wants::Enabled,
            true,
            "plans of statements slower than it are logged (a threshold, e.g. 1s)",
        ));
        out.push(req("plans", "auto_explain.log_format", Wants::Equals("json".into()), true, "plans are JSON (obfuscated and compared)"));
        out.push(req("plans", "auto_explain.log_analyze", Wants::On, false, "actual rows and times, not only estimates"));
        out.push(req(
            "plans",
            "auto_explain.log_timing",
            Wants::Off,
            false,
            "per-node timing costs much on some systems; rows stay actual",
        ));
        out.push(req("plans", "auto_explain.sample_rate", Wants::NotEmpty, false, "below 1 on busy servers"));
        out.push(req(
            "plans",
            "compute_query_id",
            Wants::OneOf(vec!["on".into(), "auto".into(), "regress".into()]),
            false,
            "plans carry the query id that joins them to statements (on, or auto with pg_stat_statements)",
        ));
    }
    if has("errors") {
        out.push(req("errors", "log_min_messages", Wants::SeverityAtMost("warning".into()), true, "warnings and errors are logged"));
        out.push(req(
            "errors",
            "log_min_error_statement",
            Wants::SeverityAtMost("error".into()),
            false,
            "the statement that failed is logged with its error",
        ));
    }
    if has("locks") {
        out.push(req("locks", "log_lock_waits", Wants::On, true, "waits longer than deadlock_timeout are logged"));
    }
    if has("temp_files") {
        out.push(req("temp_files", "log_temp_files", Wants::Enabled, true, "temporary files are logged (0: all, or a size threshold)"));
    }
    if has("autovacuum") {
        out.push(req(
            "autovacuum",
            "log_autovacuum_min_duration",
            Wants::Enabled,
            true,
            "autovacuum runs are logged (0: all, or a duration threshold)",
        ));
    }
    if has("checkpoints") {
        out.push(req("checkpoints", "log_checkpoints", Wants::On, true, "checkpoints are logged"));
    }
    if has("connections") {
        out.push(req(
            "connections",
            "log_min_messages",
            Wants::SeverityAtMost("fatal".into()),
            true,
            "refused connections (FATAL) are logged",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_judged_as_the_servers_show_them() {
        let r = |wants: Wants| Requirement { collector: "x", setting: "s", wants, required: true, why: "" };
        assert!(r(Wants::On).satisfied_by("on") && r(Wants::On).satisfied_by("ON") && !r(Wants::On).satisfied_by("off"));
        assert!(r(Wants::Contains("jsonlog".into())).satisfied_by("stderr,jsonlog"));
        assert!(r(Wants::Contains("auto_explain".into())).satisfied_by("pg_stat_statements, auto_explain"));
        assert!(r(Wants::Enabled).satisfied_by("0") && r(Wants::Enabled).satisfied_by("10min") && !r(Wants::Enabled).satisfied_by("-1"));
        assert!(r(Wants::SeverityAtMost("warning".into())).satisfied_by("warning"));
        assert!(r(Wants::SeverityAtMost("warning".into())).satisfied_by("notice"));
        assert!(!r(Wants::SeverityAtMost("warning".into())).satisfied_by("error"));
        assert!(r(Wants::AtLeast(2)).satisfied_by("2") && !r(Wants::AtLeast(2)).satisfied_by("1"));
    }
}
