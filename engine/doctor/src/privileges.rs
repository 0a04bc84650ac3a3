//! Privileges, exercised: each is proven by reading what the collectors
//! read, as the role (through whatever roles it inherits), not inferred
//! from grants — a grant through a role that is not inherited, or a MySQL
//! role that is not a default one, shows up as what it is: data the
//! collectors do not get.

use dbintel_sources::target::Target;

use crate::check::{Check, Family, Finding, Fix, Status, BOTH, MY, PG};
use crate::examine::Ctx;
use crate::extensions::list;
use crate::facts::{opt_text, text, Flavour};
use crate::quote::{my_account, pg_ident};

pub const STATISTICS: Check = Check {
    id: "privileges.statistics",
    family: Family::Privileges,
    engines: PG,
    what: "the role sees every role's statements, sessions and database sizes (pg_monitor), tried as the role",
    means:
        "other roles' statements have no query id or text and are dropped, their sessions show no query or wait, database sizes are missing",
};

pub const REPLICATION: Check = Check {
    id: "privileges.replication",
    family: Family::Privileges,
    engines: BOTH,
    what: "the role may read replication state (pg_monitor; MySQL REPLICATION CLIENT, MariaDB SLAVE MONITOR), tried as the role",
    means: "no replica lag: standbys' write/flush/replay delays, or this replica's own lag, are missing",
};

pub const CONNECT: Check = Check {
    id: "privileges.connect",
    family: Family::Privileges,
    engines: PG,
    what: "the role may connect to every database `collect tables` reads",
    means: "those databases' tables, indexes and functions are not reported",
};

pub const PERFORMANCE_SCHEMA: Check = Check {
    id: "privileges.performance_schema",
    family: Family::Privileges,
    engines: MY,
    what: "SELECT on performance_schema, tried as the user",
    means: "every collector fails: digests, sessions, waits and table I/O all live there",
};

pub const PROCESS: Check = Check {
    id: "privileges.process",
    family: Family::Privileges,
    engines: MY,
    what: "the PROCESS privilege, tried as the user",
    means: "other users' sessions and the InnoDB lock waits that name who blocks whom are hidden",
};

fn grant_pg_monitor(role: &str) -> Fix {
    Fix::sql(format!("GRANT pg_monitor TO {};", pg_ident(role)))
        .with_note("pg_monitor holds pg_read_all_stats and pg_read_all_settings; a role that does not inherit (NOINHERIT) must be granted it directly.")
}

/// The note every MySQL grant fix carries: a grant through a role only
/// counts when the role is active.
fn mysql_role_note(flavour: Flavour, account: &str) -> String {
    let how = match flavour {
        Flavour::MariaDb => format!("SET DEFAULT ROLE <role> FOR {account}"),
        _ => format!("SET DEFAULT ROLE ALL TO {account}"),
    };
    format!("If the user has this through a role, the role must be active in its sessions: {how}.")
}

pub async fn postgres(ctx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let role = ctx.facts.role.clone();
    if ctx.collectors.any(&["statements", "activity", "instance", "tables"]) {
        out.push(statistics(ctx, &role).await);
    }
    if ctx.collectors.runs("instance") {
        out.push(pg_replication(ctx, &role).await);
    }
    if ctx.collectors.runs("tables") {
        out.extend(connect(ctx, &role).await);
    }
    out
}

async fn statistics(ctx: &Ctx<'_>, role: &str) -> Finding {
    let member = ctx
        .target
        .query(
            crate::WHAT,
            "SELECT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS stats, pg_has_role(current_user, 'pg_monitor', 'USAGE') AS monitor,
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser",
        )
        .await
        .ok()
        .and_then(|rows| rows.first().cloned())
        .unwrap_or_default();
    let yes = |c: &str| text(&member, c) == "true";
    let mut seen = Vec::new();
    let mut hidden = Vec::new();
    // statements of other roles: no query id and no text without the privilege
    if ctx.collectors.runs("statements") && ctx.facts.setting("pg_stat_statements.max").is_some() {
        if let Ok(rows) = ctx
            .target
            .query(
                crate::WHAT,
                "SELECT count(*) FILTER (WHERE queryid IS NULL)::int8 AS hidden, count(*)::int8 AS total FROM pg_stat_statements(false)",
            )
            .await
        {
            let row = rows.first().cloned().unwrap_or_default();
            let (h, t) = (count(&row, "hidden"), count(&row, "total"));
            if h > 0 {
                hidden.push(format!("{h} of {t} statements"));
            } else {
                seen.push(plural(t, "statement", "statements"));
            }
        }
    }
    if ctx.collectors.runs("activity") {
        if let Ok(rows) = ctx
            .target
            .query(
                crate::WHAT,
                "SELECT count(*) FILTER (WHERE query = '<insufficient privilege>')::int8 AS hidden, count(*)::int8 AS total
                   FROM pg_stat_activity
                  WHERE backend_type = 'client backend' AND usesysid <> (SELECT oid FROM pg_roles WHERE rolname = current_user)",
            )
            .await
        {
            let row = rows.first().cloned().unwrap_or_default();
            let (h, t) = (count(&row, "hidden"), count(&row, "total"));
            if h > 0 {
                hidden.push(format!("{h} of {t} sessions of other roles"));
            } else {
                seen.push(plural(t, "session of other roles", "sessions of other roles"));
            }
        }
    }
    if ctx.collectors.runs("instance") {
        // pg_database_size needs CONNECT on the database or
        // pg_read_all_stats: tried once as the role (on this database),
        // and the grant read for the others — sizing every database costs
        // the server a stat of each one's files (146 ms at 100 databases,
        // once per source block of the server)
        match ctx
            .target
            .query(
                crate::WHAT,
                "SELECT count(*) FILTER (WHERE has_database_privilege(d.oid, 'CONNECT')
                                            OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER'))::int8 AS readable,
                        count(*)::int8 AS total, pg_database_size(current_database()) >= 0 AS tried
                   FROM pg_database d WHERE NOT d.datistemplate AND d.datallowconn",
            )
            .await
        {
            Ok(rows) => {
                let row = rows.first().cloned().unwrap_or_default();
                let (readable, total) = (count(&row, "readable"), count(&row, "total"));
                if readable < total {
                    hidden.push(format!("the size of {} of {total} databases", total - readable));
                } else {
                    seen.push(format!("the size of {}", plural(total, "database", "databases")));
                }
            }
            Err(_) => hidden.push("database sizes".to_string()),
        }
    }
    let via = if yes("superuser") {
        "a superuser".to_string()
    } else if yes("monitor") {
        "member of pg_monitor".to_string()
    } else if yes("stats") {
        "member of pg_read_all_stats".to_string()
    } else {
        "not a member of pg_monitor".to_string()
    };
    if hidden.is_empty() && (yes("stats") || yes("superuser")) {
        let what = if seen.is_empty() { String::new() } else { format!("; sees {}", seen.join(", ")) };
        return Finding::ok(&STATISTICS, format!("{via}{what}"));
    }
    let what = if hidden.is_empty() { String::new() } else { format!(": hidden {}", hidden.join(", ")) };
    let status = if ctx.collectors.any(&["statements", "activity"]) { Status::Fail } else { Status::Warn };
    Finding::problem(&STATISTICS, status, format!("{via}{what}"), grant_pg_monitor(role))
}

async fn pg_replication(ctx: &Ctx<'_>, role: &str) -> Finding {
    if ctx.facts.standby {
        // a standby's own lag comes from functions anyone may call
        return Finding::ok(&REPLICATION, "a standby: its replay lag needs no privilege");
    }
    let rows = ctx
        .target
        .query(
            crate::WHAT,
            "SELECT count(*)::int8 AS standbys, count(*) FILTER (WHERE sent_lsn IS NULL)::int8 AS hidden,
                    pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS allowed
               FROM pg_stat_replication",
        )
        .await;
    let row = match rows {
        Ok(rows) => rows.first().cloned().unwrap_or_default(),
        Err(e) => return Finding::skip(&REPLICATION, format!("cannot read pg_stat_replication ({})", e.code())),
    };
    let (standbys, hidden) = (count(&row, "standbys"), count(&row, "hidden"));
    if hidden > 0 {
        return Finding::warn(&REPLICATION, format!("{hidden} of {standbys} standbys' positions hidden"), grant_pg_monitor(role));
    }
    if text(&row, "allowed") != "true" {
        return Finding::warn(&REPLICATION, "no standby now, and the role could not see one's positions", grant_pg_monitor(role));
    }
    if standbys == 0 {
        return Finding::ok(&REPLICATION, "no standby now; may see their positions");
    }
    Finding::ok(&REPLICATION, format!("sees the positions of {}", plural(standbys, "standby", "standbys")))
}

async fn connect(ctx: &Ctx<'_>, role: &str) -> Vec<Finding> {
    let settings = ctx
        .plan
        .node
        .collectors
        .get("tables")
        .map(|c| dbintel_dsl::schema::PgTablesSettings::from_settings(&c.settings))
        .unwrap_or_else(|| dbintel_dsl::schema::PgTablesSettings::from_settings(&Default::default()));
    let include = if settings.databases.is_empty() { ctx.plan.fleet_databases.clone() } else { settings.databases.clone() };
    let Ok(filter) = dbintel_sources::collectors::name_filter::NameFilter::new("databases", &include, &settings.exclude_databases) else {
        return Vec::new();
    };
    let rows = match ctx
        .target
        .query(
            crate::WHAT,
            "SELECT datname::text AS datname, has_database_privilege(datname, 'CONNECT') AS allowed
               FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname",
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) => return vec![Finding::skip(&CONNECT, format!("cannot list databases ({})", e.code()))],
    };
    let read: Vec<(String, bool)> = rows
        .iter()
        .filter_map(|r| opt_text(r, "datname").map(|d| (d, text(r, "allowed") == "true")))
        .filter(|(d, _)| filter.admits(d))
        .collect();
    let refused: Vec<String> = read.iter().filter(|(_, ok)| !ok).map(|(d, _)| d.clone()).collect();
    if refused.is_empty() {
        return vec![Finding::ok(&CONNECT, format!("may connect to {}", list(&read.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>())))];
    }
    let grants: Vec<String> = refused.iter().map(|d| format!("GRANT CONNECT ON DATABASE {} TO {};", pg_ident(d), pg_ident(role))).collect();
    vec![Finding::warn(
        &CONNECT,
        format!("may not connect to {}", list(&refused)),
        Fix::sql(grants.join("\n")).with_note("Or leave them out with the collector's `exclude_databases`."),
    )]
}

pub async fn mysql(ctx: &Ctx<'_>) -> Vec<Finding> {
    let Target::My(_) = ctx.target else { return Vec::new() };
    let account = my_account(&ctx.facts.role);
    let note = mysql_role_note(ctx.facts.flavour, &account);
    let mut out = Vec::new();
    let on = ctx.facts.setting("performance_schema").is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1");
    if ctx.collectors.any(&["statements", "activity", "plans", "tables", "instance"]) {
        if !on {
            out.push(Finding::skip(&PERFORMANCE_SCHEMA, "performance_schema is off"));
        } else {
            let mut refused = Vec::new();
            for table in ["events_statements_summary_by_digest", "threads", "setup_consumers", "global_status"] {
                if let Err(e) = ctx.target.query(crate::WHAT, &format!("SELECT 1 AS ok FROM performance_schema.{table} LIMIT 1")).await {
                    refused.push(format!("{table} ({})", e.code()));
                }
            }
            out.push(if refused.is_empty() {
                Finding::ok(&PERFORMANCE_SCHEMA, "reads digests, threads, setup and status tables")
            } else {
                Finding::fail(
                    &PERFORMANCE_SCHEMA,
                    format!("refused: {}", refused.join(", ")),
                    Fix::sql(format!("GRANT SELECT ON performance_schema.* TO {account};")).with_note(note.clone()),
                )
            });
        }
    }
    if ctx.collectors.any(&["activity", "statements"]) {
        out.push(match ctx.target.query(crate::WHAT, "SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX").await {
            Ok(_) => Finding::ok(&PROCESS, "granted"),
            Err(e) => {
                let status = if ctx.collectors.runs("activity") { Status::Fail } else { Status::Warn };
                Finding::problem(
                    &PROCESS,
                    status,
                    format!("refused ({})", e.code()),
                    Fix::sql(format!("GRANT PROCESS ON *.* TO {account};")).with_note(note.clone()),
                )
            }
        });
    }
    if ctx.collectors.runs("instance") {
        let server = ctx.facts.my_server();
        let statement = if server.mariadb || server.version < 80022 { "SHOW SLAVE STATUS" } else { "SHOW REPLICA STATUS" };
        out.push(match ctx.target.query(crate::WHAT, statement).await {
            Ok(rows) => Finding::ok(&REPLICATION, if rows.is_empty() { "granted (not a replica)" } else { "granted (a replica)" }),
            Err(e) => {
                let privilege = replica_privilege(ctx.facts.flavour, ctx.facts.version);
                let status = if ctx.facts.standby { Status::Fail } else { Status::Warn };
                let what = if ctx.facts.standby { "a replica" } else { "not a replica now" };
                Finding::problem(
                    &REPLICATION,
                    status,
                    format!("{statement} refused ({}); {what}", e.code()),
                    Fix::sql(format!("GRANT {privilege} ON *.* TO {account};")).with_note(note.clone()),
                )
            }
        });
    }
    out
}

/// The privilege `SHOW REPLICA STATUS` / `SHOW SLAVE STATUS` needs.
pub fn replica_privilege(flavour: Flavour, version: i64) -> &'static str {
    match flavour {
        // 10.5.9 moved SHOW SLAVE STATUS from REPLICATION CLIENT to its own
        Flavour::MariaDb if version >= 100509 => "SLAVE MONITOR",
        _ => "REPLICATION CLIENT",
    }
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn count(row: &dbintel_sources::rows::Row, column: &str) -> i64 {
    dbintel_sources::rows::integer(row, column).unwrap_or(0)
}
