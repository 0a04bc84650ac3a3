//! The server settings that decide how good the data is: PostgreSQL's
//! `track_*`, `compute_query_id` and pg_stat_statements' own; on
//! MySQL/MariaDB, performance_schema's consumers and instruments.
//!
//! Each is asked only when a collector that needs it runs on the target;
//! the fix is `ALTER SYSTEM` (with a reload, or a restart for settings
//! only a start reads) and the postgresql.conf line, or on MySQL the
//! `UPDATE` of performance_schema's setup tables (now) together with the
//! my.cnf lines (from the next start on).

use dbintel_sources::mysql::MyServer;
use dbintel_sources::rows::Row;

use crate::check::{Check, Family, Finding, Fix, Status, MY, PG};
use crate::examine::Ctx;
use crate::facts::{text, Collectors, Facts};
use crate::quote::{my_literal, pg_literal};

pub const PGSS_TRACK: Check = Check {
    id: "pg_stat_statements.track",
    family: Family::Settings,
    engines: PG,
    what: "pg_stat_statements.track is top or all",
    means: "with none, pg_stat_statements records no statement",
};

pub const TRACK_IO_TIMING: Check = Check {
    id: "settings.track_io_timing",
    family: Family::Settings,
    engines: PG,
    what: "track_io_timing = on",
    means: "statements' block read and write times are zero: time spent waiting on I/O cannot be told from CPU",
};

pub const TRACK_FUNCTIONS: Check = Check {
    id: "settings.track_functions",
    family: Family::Settings,
    engines: PG,
    what: "track_functions is pl or all (collect tables)",
    means: "no postgresql.function.calls: functions' calls and times are not counted",
};

pub const COMPUTE_QUERY_ID: Check = Check {
    id: "settings.compute_query_id",
    family: Family::Settings,
    engines: PG,
    what: "compute_query_id is on or auto (PostgreSQL 14+)",
    means: "off: pg_stat_statements records nothing, and sessions and log lines carry no query id to join on",
};

pub const TRACK_ACTIVITIES: Check = Check {
    id: "settings.track_activities",
    family: Family::Settings,
    engines: PG,
    what: "track_activities = on (collect activity)",
    means: "pg_stat_activity shows no statement or state: active session history is empty",
};

pub const TRACK_COUNTS: Check = Check {
    id: "settings.track_counts",
    family: Family::Settings,
    engines: PG,
    what: "track_counts = on (collect tables)",
    means: "no table and index statistics (and autovacuum does not run)",
};

pub const QUERY_SIZE: Check = Check {
    id: "settings.track_activity_query_size",
    family: Family::Settings,
    engines: PG,
    what: "track_activity_query_size of at least 4096 (activity samples as logs)",
    means: "texts of running statements are cut short in db.server.query_sample",
};

pub const CONSUMERS: Check = Check {
    id: "performance_schema.consumers",
    family: Family::Settings,
    engines: MY,
    what: "the performance_schema consumers the collectors read are enabled",
    means: "the tables they fill stay empty: no digests (statements_digest), no waits in active sessions (events_waits_current), no statement texts to plan (events_statements_history)",
};

pub const INSTRUMENTS: Check = Check {
    id: "performance_schema.instruments",
    family: Family::Settings,
    engines: MY,
    what: "the statement, wait and table I/O instruments the collectors read are enabled and timed",
    means: "what they measure is missing or has no time: statements out of the digests, waits not seen, table I/O at zero",
};

/// `ALTER SYSTEM` for a setting, with the reload or restart it needs, and
/// its postgresql.conf line.
pub fn alter_system(facts: &Facts, name: &str, value: &str) -> Fix {
    let bare = value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    let value = if bare { value.to_string() } else { pg_literal(value) };
    let restart = facts.needs_restart(name);
    let sql = if restart {
        format!("ALTER SYSTEM SET {name} = {value};")
    } else {
        format!("ALTER SYSTEM SET {name} = {value};\nSELECT pg_reload_conf();")
    };
    Fix::sql(sql).with_config("postgresql.conf", format!("{name} = {value}"), false).restart(restart)
}

pub fn postgres(ctx: &Ctx<'_>) -> Vec<Finding> {
    let (facts, collectors) = (ctx.facts, ctx.collectors);
    let mut out = Vec::new();
    let setting = |name: &str| facts.setting(name).unwrap_or("?").to_string();
    if collectors.any(&["statements", "plans"]) && facts.setting("pg_stat_statements.max").is_some() {
        let track = setting("pg_stat_statements.track");
        out.push(if track == "none" {
            Finding::fail(&PGSS_TRACK, "none", alter_system(facts, "pg_stat_statements.track", "top"))
        } else {
            Finding::ok(&PGSS_TRACK, track)
        });
    }
    if collectors.runs("statements") {
        let io = setting("track_io_timing");
        out.push(if io == "on" {
            Finding::ok(&TRACK_IO_TIMING, "on")
        } else {
            Finding::warn(&TRACK_IO_TIMING, io, alter_system(facts, "track_io_timing", "on"))
        });
    }
    if facts.version >= 140000 && collectors.any(&["statements", "activity", "plans"]) {
        let id = setting("compute_query_id");
        let loaded = facts.setting("pg_stat_statements.max").is_some();
        let status = match id.as_str() {
            "on" | "regress" => Status::Ok,
            "auto" if loaded => Status::Ok,
            // auto without pg_stat_statements: no ids until it is loaded,
            // which pg_stat_statements.loaded asks for when it is needed
            "auto" if collectors.any(&["statements", "plans"]) => Status::Ok,
            // activity alone: sessions carry no query id
            "auto" => Status::Warn,
            _ if collectors.any(&["statements", "plans"]) => Status::Fail,
            _ => Status::Warn,
        };
        out.push(match status {
            Status::Ok if id == "auto" && !loaded => Finding::ok(&COMPUTE_QUERY_ID, "auto (ids once pg_stat_statements is loaded)"),
            Status::Ok => Finding::ok(&COMPUTE_QUERY_ID, id),
            _ => {
                let value = if loaded || collectors.any(&["statements", "plans"]) { "auto" } else { "on" };
                Finding::problem(&COMPUTE_QUERY_ID, status, id, alter_system(facts, "compute_query_id", value))
            }
        });
    }
    if collectors.runs("activity") {
        let on = setting("track_activities");
        out.push(if on == "off" {
            Finding::fail(&TRACK_ACTIVITIES, "off", alter_system(facts, "track_activities", "on"))
        } else {
            Finding::ok(&TRACK_ACTIVITIES, on)
        });
        let as_logs = ctx
            .plan
            .node
            .collectors
            .get("activity")
            .is_some_and(|c| dbintel_dsl::schema::ActivitySettings::from_settings(&c.settings).samples_as_logs);
        if as_logs {
            let size: i64 = setting("track_activity_query_size").parse().unwrap_or(0);
            out.push(if size >= 4096 {
                Finding::ok(&QUERY_SIZE, format!("{size} bytes"))
            } else {
                Finding::warn(&QUERY_SIZE, format!("{size} bytes"), alter_system(facts, "track_activity_query_size", "4096"))
            });
        }
    }
    if collectors.runs("tables") {
        let counts = setting("track_counts");
        out.push(if counts == "off" {
            Finding::fail(&TRACK_COUNTS, "off", alter_system(facts, "track_counts", "on"))
        } else {
            Finding::ok(&TRACK_COUNTS, counts)
        });
        let functions = setting("track_functions");
        out.push(if functions == "none" {
            Finding::warn(&TRACK_FUNCTIONS, "none", alter_system(facts, "track_functions", "pl"))
        } else {
            Finding::ok(&TRACK_FUNCTIONS, functions)
        });
    }
    out
}

/// A consumer a collector needs, and how bad its absence is.
struct Needed {
    consumer: &'static str,
    collectors: &'static [&'static str],
    status: Status,
    /// MariaDB only (MySQL 8 plans read the digests' own sample text).
    mariadb_only: bool,
}

const CONSUMERS_NEEDED: &[Needed] = &[
    Needed {
        consumer: "global_instrumentation",
        collectors: &["statements", "activity", "plans", "tables"],
        status: Status::Fail,
        mariadb_only: false,
    },
    Needed { consumer: "statements_digest", collectors: &["statements", "plans"], status: Status::Fail, mariadb_only: false },
    Needed { consumer: "thread_instrumentation", collectors: &["activity", "plans"], status: Status::Fail, mariadb_only: false },
    Needed { consumer: "events_waits_current", collectors: &["activity"], status: Status::Warn, mariadb_only: false },
    Needed { consumer: "events_statements_current", collectors: &["plans"], status: Status::Fail, mariadb_only: false },
    Needed { consumer: "events_statements_history", collectors: &["plans"], status: Status::Fail, mariadb_only: true },
];

/// performance_schema's consumers, from `schema` (the MySQL 8 fakes read
/// look-alike tables in a schema of their own).
pub fn consumers_sql(schema: &str) -> String {
    format!("SELECT NAME, ENABLED FROM {schema}.setup_consumers")
}

/// What the consumers' rows mean for the collectors that run.
pub fn consumer_findings(server: MyServer, collectors: &Collectors, rows: &[Row]) -> Vec<Finding> {
    let enabled = |name: &str| rows.iter().any(|r| text(r, "NAME") == name && text(r, "ENABLED").eq_ignore_ascii_case("YES"));
    let mut off: Vec<&Needed> = CONSUMERS_NEEDED
        .iter()
        .filter(|n| collectors.any(n.collectors) && (server.mariadb || !n.mariadb_only) && !enabled(n.consumer))
        .collect();
    let needed = CONSUMERS_NEEDED.iter().any(|n| collectors.any(n.collectors));
    if !needed {
        return Vec::new();
    }
    if off.is_empty() {
        return vec![Finding::ok(&CONSUMERS, "every consumer the collectors read is enabled")];
    }
    off.sort_by_key(|n| std::cmp::Reverse(n.status));
    let status = off[0].status;
    let names: Vec<&str> = off.iter().map(|n| n.consumer).collect();
    let listed = names.iter().map(|n| my_literal(n)).collect::<Vec<_>>().join(", ");
    let config = names.iter().map(|n| format!("performance_schema_consumer_{n} = ON")).collect::<Vec<_>>().join("\n");
    let why: Vec<String> = off.iter().map(|n| format!("{} (for {})", n.consumer, n.collectors.join(", "))).collect();
    vec![Finding::problem(
        &CONSUMERS,
        status,
        format!("off: {}", why.join(", ")),
        Fix::sql(format!("UPDATE performance_schema.setup_consumers SET ENABLED = 'YES' WHERE NAME IN ({listed});")).with_config(
            "my.cnf, under [mysqld]",
            config,
            true,
        ),
    )]
}

/// An instrument family a collector needs (`LIKE` patterns).
struct Instruments {
    pattern: &'static str,
    collectors: &'static [&'static str],
    status: Status,
}

const INSTRUMENTS_NEEDED: &[Instruments] = &[
    Instruments { pattern: "statement/sql/%", collectors: &["statements", "plans"], status: Status::Warn },
    Instruments { pattern: "wait/io/table/sql/handler", collectors: &["tables", "activity"], status: Status::Fail },
    Instruments { pattern: "wait/lock/table/sql/handler", collectors: &["tables", "activity"], status: Status::Warn },
    Instruments { pattern: "wait/io/file/%", collectors: &["activity"], status: Status::Warn },
    Instruments { pattern: "wait/lock/metadata/sql/mdl", collectors: &["activity"], status: Status::Warn },
];

pub fn instruments_sql(schema: &str) -> String {
    let patterns: Vec<String> = INSTRUMENTS_NEEDED.iter().map(|i| format!("NAME LIKE {}", my_literal(i.pattern))).collect();
    format!(
        "SELECT NAME, ENABLED, TIMED FROM {schema}.setup_instruments WHERE ({}) AND (ENABLED <> 'YES' OR TIMED <> 'YES')",
        patterns.join(" OR ")
    )
}

/// What the instruments that are off (or untimed) mean for the
/// collectors that run.
pub fn instrument_findings(collectors: &Collectors, off_rows: &[Row]) -> Vec<Finding> {
    let wanted: Vec<&Instruments> = INSTRUMENTS_NEEDED.iter().filter(|i| collectors.any(i.collectors)).collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let matches = |pattern: &str, name: &str| match pattern.strip_suffix('%') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    };
    let mut off: Vec<(&Instruments, usize)> = wanted
        .iter()
        .map(|i| (*i, off_rows.iter().filter(|r| matches(i.pattern, &text(r, "NAME"))).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    if off.is_empty() {
        return vec![Finding::ok(&INSTRUMENTS, "every instrument the collectors read is enabled and timed")];
    }
    off.sort_by_key(|(i, _)| std::cmp::Reverse(i.status));
    let status = off[0].0.status;
    let observed: Vec<String> = off.iter().map(|(i, n)| format!("{} ({n} off or untimed)", i.pattern)).collect();
    let likes: Vec<String> = off.iter().map(|(i, _)| format!("NAME LIKE {}", my_literal(i.pattern))).collect();
    let config: Vec<String> = off.iter().map(|(i, _)| format!("performance_schema_instrument = '{}=ON'", i.pattern)).collect();
    vec![Finding::problem(
        &INSTRUMENTS,
        status,
        observed.join(", "),
        Fix::sql(format!("UPDATE performance_schema.setup_instruments SET ENABLED = 'YES', TIMED = 'YES' WHERE {};", likes.join(" OR ")))
            .with_config("my.cnf, under [mysqld]", config.join("\n"), true),
    )]
}

pub async fn mysql(ctx: &Ctx<'_>) -> Vec<Finding> {
    let on = ctx.facts.setting("performance_schema").is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1");
    if !on {
        let mut out = Vec::new();
        if CONSUMERS_NEEDED.iter().any(|n| ctx.collectors.any(n.collectors)) {
            out.push(Finding::skip(&CONSUMERS, "performance_schema is off"));
            out.push(Finding::skip(&INSTRUMENTS, "performance_schema is off"));
        }
        return out;
    }
    let mut out = match ctx.target.query(crate::WHAT, &consumers_sql("performance_schema")).await {
        Ok(rows) => consumer_findings(ctx.facts.my_server(), ctx.collectors, &rows),
        Err(e) => vec![Finding::skip(&CONSUMERS, format!("cannot read setup_consumers ({}): see privileges.performance_schema", e.code()))],
    };
    out.extend(match ctx.target.query(crate::WHAT, &instruments_sql("performance_schema")).await {
        Ok(rows) => instrument_findings(ctx.collectors, &rows),
        Err(e) => {
            vec![Finding::skip(&INSTRUMENTS, format!("cannot read setup_instruments ({}): see privileges.performance_schema", e.code()))]
        }
    });
    out
}

/// The consumers the collectors that run need (MariaDB's plans need the
/// statement history as well).
pub fn consumers_for(collectors: &Collectors, mariadb: bool) -> Vec<&'static str> {
    CONSUMERS_NEEDED.iter().filter(|n| collectors.any(n.collectors) && (mariadb || !n.mariadb_only)).map(|n| n.consumer).collect()
}

/// The instrument patterns the collectors that run need.
pub fn instruments_for(collectors: &Collectors) -> Vec<&'static str> {
    INSTRUMENTS_NEEDED.iter().filter(|i| collectors.any(i.collectors)).map(|i| i.pattern).collect()
}
