//! The server's log settings, for a log source reading this server's log
//! files: what must be on for the log to carry what dbintel maps (plans
//! from auto_explain as JSON, lock waits, temp files, autovacuum runs,
//! checkpoints, query ids; MySQL's slow log with its plans).
//!
//! The family is driven by a declared list: each [`Expected`] names a
//! setting, what it must be, the value the fix sets, and its own
//! [`Check`]. [`check`] takes any such list — the one a log source's
//! engine needs, [`PG_LOGS`], [`MARIADB_LOGS`] or [`MYSQL_LOGS`] (see
//! [`for_flavour`]) — and reads the settings through the database
//! source the log source names. `Options::logged_sources` says which
//! sources have a log source: that is where a log source's definition
//! plugs in.

use std::collections::BTreeMap;

use dbintel_sources::target::Target;

use crate::check::{Check, Family, Finding, Fix, Status, MY, PG};
use crate::extensions::with_library;
use crate::facts::{opt_text, text, Facts, Flavour, Setting};
use crate::quote::{my_literal, pg_literal};

/// What a setting must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Want {
    /// `on` (`ON`, `1`).
    On,
    /// A comma-separated list holding this word (any case).
    Contains(&'static str),
    /// A number that is not negative (-1 switches a log off).
    Enabled,
    /// A number at most this, in the setting's own unit.
    AtMost(f64),
    /// Exactly this (any case).
    Equals(&'static str),
    /// The library is in shared_preload_libraries or
    /// session_preload_libraries (its settings show only once loaded).
    Preloaded(&'static str),
    /// log_destination includes jsonlog or csvlog (the fix adds jsonlog
    /// from 15, csvlog before).
    StructuredLog,
    /// compute_query_id computes ids: `on`, or `auto` with
    /// pg_stat_statements loaded.
    QueryIds,
}

/// One setting a log source needs.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub check: Check,
    pub setting: &'static str,
    pub want: Want,
    /// The value the fix sets.
    pub suggest: &'static str,
    pub status: Status,
    /// The first version it applies to (PostgreSQL server_version_num,
    /// MySQL's major*10000+minor*100+patch), and the first it no longer
    /// does (0: none).
    pub since: i64,
    pub until: i64,
}

const fn logs_check(
    id: &'static str,
    what: &'static str,
    means: &'static str,
    engines: &'static [dbintel_sources::target::Engine],
) -> Check {
    Check { id, family: Family::LogSettings, engines, what, means }
}

const fn expect(check: Check, setting: &'static str, want: Want, suggest: &'static str, status: Status) -> Expected {
    Expected { check, setting, want, suggest, status, since: 0, until: 0 }
}

/// PostgreSQL: what the log source reads from the server's log files.
pub const PG_LOGS: &[Expected] = &[
    expect(
        logs_check("logs.logging_collector", "logging_collector = on", "the server writes no log files for dbintel to read", PG),
        "logging_collector",
        Want::On,
        "on",
        Status::Fail,
    ),
    expect(
        logs_check(
            "logs.log_destination",
            "log_destination includes jsonlog (15+) or csvlog",
            "log lines are plain text: no fields, no query ids to join statements on",
            PG,
        ),
        "log_destination",
        Want::StructuredLog,
        "jsonlog",
        Status::Warn,
    ),
    expect(
        logs_check(
            "logs.auto_explain",
            "auto_explain is loaded (shared_preload_libraries or session_preload_libraries)",
            "no actual plans of slow statements in the log",
            PG,
        ),
        "auto_explain",
        Want::Preloaded("auto_explain"),
        "auto_explain",
        Status::Warn,
    ),
    expect(
        logs_check(
            "logs.auto_explain.log_format",
            "auto_explain.log_format = json",
            "plans are text: dbintel cannot read their nodes, costs and relations",
            PG,
        ),
        "auto_explain.log_format",
        Want::Equals("json"),
        "json",
        Status::Warn,
    ),
    expect(
        logs_check(
            "logs.auto_explain.log_min_duration",
            "auto_explain.log_min_duration is set (not -1)",
            "auto_explain logs no plan at all",
            PG,
        ),
        "auto_explain.log_min_duration",
        Want::Enabled,
        "1s",
        Status::Warn,
    ),
    expect(
        logs_check(
            "logs.auto_explain.log_analyze",
            "auto_explain.log_analyze = on",
            "logged plans carry estimates only, not the rows and time each node took",
            PG,
        ),
        "auto_explain.log_analyze",
        Want::On,
        "on",
        Status::Warn,
    ),
    expect(
        logs_check(
            "logs.log_lock_waits",
            "log_lock_waits = on",
            "lock waits longer than deadlock_timeout are not logged: no who-waited-for-whom",
            PG,
        ),
        "log_lock_waits",
        Want::On,
        "on",
        Status::Warn,
    ),
    expect(
        logs_check(
            "logs.log_autovacuum_min_duration",
            "log_autovacuum_min_duration is set (not -1)",
            "autovacuum and autoanalyze runs are not logged",
            PG,
        ),
        "log_autovacuum_min_duration",
        Want::Enabled,
        "10s",
        Status::Warn,
    ),
    expect(
        logs_check("logs.log_temp_files", "log_temp_files is set (not -1)", "statements spilling to temporary files are not logged", PG),
        "log_temp_files",
        Want::Enabled,
        "10MB",
        Status::Warn,
    ),
    expect(
        logs_check("logs.log_checkpoints", "log_checkpoints = on", "checkpoints and how long they wrote are not logged", PG),
        "log_checkpoints",
        Want::On,
        "on",
        Status::Warn,
    ),
    Expected {
        since: 140000,
        ..expect(
            logs_check(
                "logs.compute_query_id",
                "compute_query_id computes query ids (on, or auto with pg_stat_statements)",
                "log lines carry no query_id: errors and plans cannot be joined to their statements",
                PG,
            ),
            "compute_query_id",
            Want::QueryIds,
            "on",
            Status::Warn,
        )
    },
];

const SLOW_LOG: Check =
    logs_check("logs.slow_query_log", "slow_query_log = ON", "no slow log: no slow statements, no plans from the log", MY);
const LONG_QUERY_TIME: Check =
    logs_check("logs.long_query_time", "long_query_time of at most 1 second", "only statements slower than it are logged", MY);
const LOG_OUTPUT: Check =
    logs_check("logs.log_output", "log_output includes FILE", "the slow log goes to a table only: there is no file to read", MY);

/// MariaDB's slow log.
pub const MARIADB_LOGS: &[Expected] = &[
    expect(SLOW_LOG, "slow_query_log", Want::On, "ON", Status::Fail),
    expect(LONG_QUERY_TIME, "long_query_time", Want::AtMost(1.0), "1", Status::Warn),
    expect(LOG_OUTPUT, "log_output", Want::Contains("FILE"), "FILE", Status::Fail),
    expect(
        logs_check("logs.log_slow_verbosity", "log_slow_verbosity includes query_plan", "slow log entries carry no plan information", MY),
        "log_slow_verbosity",
        Want::Contains("query_plan"),
        "query_plan",
        Status::Warn,
    ),
];

/// MySQL 8's slow log.
pub const MYSQL_LOGS: &[Expected] = &[
    expect(SLOW_LOG, "slow_query_log", Want::On, "ON", Status::Fail),
    expect(LONG_QUERY_TIME, "long_query_time", Want::AtMost(1.0), "1", Status::Warn),
    expect(LOG_OUTPUT, "log_output", Want::Contains("FILE"), "FILE", Status::Fail),
    Expected {
        since: 80014,
        ..expect(
            logs_check(
                "logs.log_slow_extra",
                "log_slow_extra = ON (8.0.14+)",
                "slow log entries lack rows examined, temp tables, sort and read counters",
                MY,
            ),
            "log_slow_extra",
            Want::On,
            "ON",
            Status::Warn,
        )
    },
];

/// The list a log source of this server needs.
pub fn for_flavour(flavour: Flavour) -> &'static [Expected] {
    match flavour {
        Flavour::PostgreSql => PG_LOGS,
        Flavour::MariaDb => MARIADB_LOGS,
        Flavour::MySql => MYSQL_LOGS,
    }
}

/// Every log check declared, once each (for the catalogue).
pub fn declared() -> Vec<&'static Check> {
    let mut out: Vec<&'static Check> = Vec::new();
    for e in PG_LOGS.iter().chain(MARIADB_LOGS).chain(MYSQL_LOGS) {
        if !out.iter().any(|c| c.id == e.check.id) {
            out.push(&e.check);
        }
    }
    out
}

async fn read(target: &Target, names: &[&str]) -> Result<BTreeMap<String, Setting>, dbintel_sources::SourceError> {
    let mut out = BTreeMap::new();
    match target {
        Target::Pg(_) => {
            let list: Vec<String> = names.iter().map(|n| pg_literal(n)).collect();
            let sql = format!("SELECT name, setting, context FROM pg_settings WHERE name IN ({})", list.join(", "));
            for r in target.query(crate::WHAT, &sql).await? {
                out.insert(text(&r, "name"), Setting { value: text(&r, "setting"), unit: None, context: opt_text(&r, "context") });
            }
        }
        Target::My(_) => {
            let list: Vec<String> = names.iter().map(|n| my_literal(n)).collect();
            let sql = format!("SHOW GLOBAL VARIABLES WHERE Variable_name IN ({})", list.join(", "));
            for r in target.query(crate::WHAT, &sql).await? {
                out.insert(text(&r, "Variable_name"), Setting { value: text(&r, "Value"), unit: None, context: None });
            }
        }
    }
    Ok(out)
}

fn is_on(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "on" | "1" | "true" | "yes")
}

fn contains(list: &str, word: &str) -> bool {
    list.split(',').any(|w| w.trim().eq_ignore_ascii_case(word))
}

/// Checks the server's log settings against `expected` (one of the lists
/// above, or any other). Settings the session may not read are skipped
/// with the reason.
pub async fn check(target: &Target, facts: &Facts, expected: &'static [Expected]) -> Vec<Finding> {
    let mut names: Vec<&str> = expected.iter().map(|e| e.setting).collect();
    names.extend(["shared_preload_libraries", "session_preload_libraries", "pg_stat_statements.max", "auto_explain.log_min_duration"]);
    match read(target, &names).await {
        Ok(settings) => evaluate(facts.flavour, facts.version, expected, &settings),
        Err(e) => expected.iter().map(|x| Finding::skip(&x.check, format!("cannot read the server's settings ({})", e.code()))).collect(),
    }
}

/// What `settings` (as the server shows them: PostgreSQL's pg_settings,
/// MySQL's global variables) mean against `expected`, for a server of
/// this flavour and version.
pub fn evaluate(flavour: Flavour, version: i64, expected: &'static [Expected], settings: &BTreeMap<String, Setting>) -> Vec<Finding> {
    let applies: Vec<&Expected> = expected.iter().filter(|e| e.since <= version && (e.until == 0 || version < e.until)).collect();
    let auto_explain_loaded = settings.contains_key("auto_explain.log_min_duration");
    let mut out = Vec::new();
    for e in applies {
        let current = settings.get(e.setting);
        let value = current.map(|r| r.value.as_str());
        let restart = current.and_then(|r| r.context.as_deref()) == Some("postmaster");
        if e.setting.starts_with("auto_explain.") && !auto_explain_loaded {
            out.push(Finding::skip(&e.check, "auto_explain is not loaded"));
            continue;
        }
        let (good, seen) = match e.want {
            Want::Preloaded(library) => {
                let lists: Vec<&str> = ["shared_preload_libraries", "session_preload_libraries"]
                    .iter()
                    .filter_map(|n| settings.get(*n).map(|r| r.value.as_str()))
                    .collect();
                let loaded = lists.iter().any(|l| contains(l, library)) || (library == "auto_explain" && auto_explain_loaded);
                (loaded, if loaded { "loaded".to_string() } else { "not loaded".to_string() })
            }
            Want::QueryIds => {
                let v = value.unwrap_or("?");
                (v == "on" || v == "regress" || (v == "auto" && settings.contains_key("pg_stat_statements.max")), v.to_string())
            }
            _ => {
                let Some(v) = value else {
                    out.push(Finding::skip(&e.check, format!("{} is not a setting this server shows", e.setting)));
                    continue;
                };
                let good = match e.want {
                    Want::On => is_on(v),
                    Want::Contains(word) => contains(v, word),
                    Want::Enabled => v.parse::<f64>().is_ok_and(|n| n >= 0.0),
                    Want::AtMost(limit) => v.parse::<f64>().is_ok_and(|n| n <= limit),
                    Want::Equals(want) => v.eq_ignore_ascii_case(want),
                    Want::StructuredLog => contains(v, "jsonlog") || contains(v, "csvlog"),
                    Want::Preloaded(_) | Want::QueryIds => unreachable!("handled above"),
                };
                (good, if v.is_empty() { "''".to_string() } else { v.to_string() })
            }
        };
        let observed = format!("{} = {seen}", e.setting);
        if good {
            out.push(Finding::ok(&e.check, observed));
            continue;
        }
        let fix = match (flavour, e.want) {
            (Flavour::PostgreSql, Want::Preloaded(library)) => {
                let now = settings.get("shared_preload_libraries").map(|r| r.value.clone());
                let value = with_library(now.as_deref().unwrap_or(""), library);
                let fix = Fix::sql(format!("ALTER SYSTEM SET shared_preload_libraries = {};", crate::quote::pg_list(&value)))
                    .with_config("postgresql.conf", format!("shared_preload_libraries = {}", pg_literal(&value)), false)
                    .restart(true);
                match now {
                    Some(_) => fix,
                    None => fix
                        .with_note("This role may not read the current shared_preload_libraries: keep the libraries already listed there."),
                }
            }
            (Flavour::PostgreSql, want) => {
                let target_value = match want {
                    Want::Contains(word) => value.map(|v| format!("{v},{word}")).unwrap_or_else(|| word.to_string()),
                    Want::StructuredLog => {
                        let word = if version >= 150000 { "jsonlog" } else { "csvlog" };
                        value.map(|v| format!("{v},{word}")).unwrap_or_else(|| word.to_string())
                    }
                    _ => e.suggest.to_string(),
                };
                let literal = pg_literal(&target_value);
                let sql = if restart {
                    format!("ALTER SYSTEM SET {} = {literal};", e.setting)
                } else {
                    format!("ALTER SYSTEM SET {} = {literal};\nSELECT pg_reload_conf();", e.setting)
                };
                Fix::sql(sql).with_config("postgresql.conf", format!("{} = {literal}", e.setting), false).restart(restart)
            }
            (flavour, want) => {
                let target_value = match want {
                    Want::Contains(word) => value
                        .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("NONE"))
                        .map(|v| format!("{v},{word}"))
                        .unwrap_or_else(|| word.to_string()),
                    _ => e.suggest.to_string(),
                };
                let literal = if target_value.parse::<f64>().is_ok() || is_on(&target_value) {
                    target_value.clone()
                } else {
                    my_literal(&target_value)
                };
                match flavour {
                    // MySQL 8 keeps SET PERSIST across restarts by itself
                    Flavour::MySql => Fix::sql(format!("SET PERSIST {} = {literal};", e.setting)),
                    _ => Fix::sql(format!("SET GLOBAL {} = {literal};", e.setting)).with_config(
                        "my.cnf, under [mysqld]",
                        format!("{} = {target_value}", e.setting),
                        true,
                    ),
                }
            }
        };
        out.push(Finding::problem(&e.check, e.status, observed, fix));
    }
    out
}
