//! What must be loaded and created: pg_stat_statements in the server's
//! `shared_preload_libraries` and, with `CREATE EXTENSION`, in each
//! database whose collectors read it; performance_schema on MySQL/MariaDB.

use dbintel_sources::target::Target;

use crate::check::{Check, Family, Finding, Fix, Status, MY, PG};
use crate::examine::Ctx;
use crate::facts::opt_text;
use crate::quote::{pg_ident, pg_literal};

pub const PGSS_LOADED: Check = Check {
    id: "pg_stat_statements.loaded",
    family: Family::Extensions,
    engines: PG,
    what: "pg_stat_statements is in shared_preload_libraries",
    means: "pg_stat_statements records nothing: no statement metrics, no top queries, no plans",
};

pub const PGSS_CREATED: Check = Check {
    id: "pg_stat_statements.created",
    family: Family::Extensions,
    engines: PG,
    what: "CREATE EXTENSION pg_stat_statements ran in the databases dbintel reads it from, at the server's version",
    means: "its view does not exist where dbintel looks: statements (and plans) of this target fail",
};

pub const PERFORMANCE_SCHEMA: Check = Check {
    id: "performance_schema.enabled",
    family: Family::Extensions,
    engines: MY,
    what: "performance_schema = ON",
    means: "no digests, no sessions, no waits, no table I/O: every collector but replica status is empty",
};

/// A comma-separated library list with `library` in it (kept in order,
/// added at the end).
pub fn with_library(list: &str, library: &str) -> String {
    let mut libraries: Vec<&str> = list.split(',').map(str::trim).filter(|l| !l.is_empty()).collect();
    if !libraries.iter().any(|l| l.trim_matches('"') == library) {
        libraries.push(library);
    }
    libraries.join(", ")
}

/// The fix that puts `library` in `shared_preload_libraries`, keeping
/// what is there when the role may read it.
pub fn preload_fix(ctx: &Ctx<'_>, library: &str) -> Fix {
    let (value, note) = match ctx.facts.setting("shared_preload_libraries") {
        Some(now) => (with_library(now, library), None),
        None => (
            library.to_string(),
            Some("This role may not read the current shared_preload_libraries (pg_read_all_settings, part of pg_monitor): keep the libraries already listed there.".to_string()),
        ),
    };
    let mut fix = Fix::sql(format!("ALTER SYSTEM SET shared_preload_libraries = {};", crate::quote::pg_list(&value)))
        .with_config("postgresql.conf", format!("shared_preload_libraries = {}", pg_literal(&value)), false)
        .restart(true);
    if let Some(note) = note {
        fix = fix.with_note(note);
    }
    fix
}

pub fn pgss_loaded(ctx: &Ctx<'_>) -> Vec<Finding> {
    if !ctx.collectors.any(&["statements", "plans"]) {
        return Vec::new();
    }
    let now = ctx.facts.setting("shared_preload_libraries").map(|v| format!(" (shared_preload_libraries = '{v}')")).unwrap_or_default();
    if ctx.facts.setting("pg_stat_statements.max").is_some() {
        return vec![Finding::ok(&PGSS_LOADED, format!("loaded{now}"))];
    }
    vec![Finding::fail(&PGSS_LOADED, format!("not loaded{now}"), preload_fix(ctx, "pg_stat_statements"))]
}

/// The databases that need the extension: the target's own for
/// `statements`; each database `plans` reads.
fn databases_needing_pgss(ctx: &Ctx<'_>) -> Vec<String> {
    if ctx.collectors.runs("plans") {
        ctx.databases.to_vec()
    } else if ctx.collectors.runs("statements") {
        ctx.facts.database.iter().cloned().collect()
    } else {
        Vec::new()
    }
}

pub async fn pgss_created(ctx: &Ctx<'_>) -> Vec<Finding> {
    let databases = databases_needing_pgss(ctx);
    if databases.is_empty() {
        return Vec::new();
    }
    const SQL: &str = "SELECT (SELECT extversion::text FROM pg_extension WHERE extname = 'pg_stat_statements') AS created,
                              (SELECT default_version::text FROM pg_available_extensions WHERE name = 'pg_stat_statements') AS available";
    let (mut missing, mut outdated, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
    let mut available = None;
    for db in &databases {
        let rows = match ctx.query_in(db, crate::WHAT, SQL).await {
            Ok(rows) => rows,
            Err(e) => {
                unknown.push(format!("{db} ({})", e.code()));
                continue;
            }
        };
        let row = rows.first().cloned().unwrap_or_default();
        available = available.or_else(|| opt_text(&row, "available"));
        match opt_text(&row, "created") {
            None => missing.push(db.clone()),
            Some(v) if Some(&v) != opt_text(&row, "available").as_ref() && opt_text(&row, "available").is_some() => {
                outdated.push((db.clone(), v))
            }
            Some(_) => {}
        }
    }
    let mut out = Vec::new();
    if available.is_none() && unknown.len() < databases.len() {
        out.push(Finding::fail(
            &PGSS_CREATED,
            "the server has no pg_stat_statements extension to create",
            Fix::note("Install the server's contrib modules (Debian/Ubuntu: postgresql-contrib; RHEL: postgresql-contrib), then run this check again."),
        ));
        return out;
    }
    if !missing.is_empty() {
        out.push(Finding::fail(
            &PGSS_CREATED,
            format!("not created in {}", list(&missing)),
            per_database(&missing, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;"),
        ));
    }
    if !outdated.is_empty() {
        let versions: Vec<String> = outdated.iter().map(|(db, v)| format!("{db} ({v})")).collect();
        let dbs: Vec<String> = outdated.iter().map(|(db, _)| db.clone()).collect();
        out.push(Finding::warn(
            &PGSS_CREATED,
            format!(
                "older than the server's {} in {}: newer columns are missing",
                available.clone().unwrap_or_default(),
                versions.join(", ")
            ),
            per_database(&dbs, "ALTER EXTENSION pg_stat_statements UPDATE;"),
        ));
    }
    if !unknown.is_empty() {
        out.push(Finding::problem(
            &PGSS_CREATED,
            Status::Warn,
            format!("could not look in {}", unknown.join(", ")),
            Fix::note("The role may not connect there: see privileges.connect."),
        ));
    }
    if out.is_empty() {
        out.push(Finding::ok(&PGSS_CREATED, format!("created in {}", list(&databases))));
    }
    out
}

/// `sql` to run in each of `databases`: in that database for one; with
/// psql's `\connect` before each for several.
pub fn per_database(databases: &[String], sql: &str) -> Fix {
    match databases {
        [one] => Fix::sql(sql).in_database(Some(one)),
        many => Fix::sql(many.iter().map(|db| format!("\\connect {}\n{sql}", pg_ident(db))).collect::<Vec<_>>().join("\n")),
    }
}

/// Database names as a list people read.
pub fn list(names: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut shown: Vec<String> = names.iter().take(SHOWN).map(|n| format!("`{n}`")).collect();
    if names.len() > SHOWN {
        shown.push(format!("and {} more", names.len() - SHOWN));
    }
    let noun = if names.len() == 1 { "database" } else { "databases" };
    format!("{noun} {}", shown.join(", "))
}

pub fn performance_schema(ctx: &Ctx<'_>) -> Vec<Finding> {
    if !matches!(ctx.target, Target::My(_)) || ctx.collectors.names().is_empty() {
        return Vec::new();
    }
    match ctx.facts.setting("performance_schema") {
        Some(v) if v.eq_ignore_ascii_case("ON") || v == "1" => vec![Finding::ok(&PERFORMANCE_SCHEMA, "ON")],
        other => vec![Finding::fail(
            &PERFORMANCE_SCHEMA,
            format!("performance_schema = {}", other.unwrap_or("?")),
            Fix::config("my.cnf, under [mysqld]", "performance_schema = ON")
                .restart(true)
                .with_note("It can only be turned on when the server starts."),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_joins_the_list_once_and_keeps_the_others() {
        assert_eq!(with_library("", "pg_stat_statements"), "pg_stat_statements");
        assert_eq!(with_library("auto_explain", "pg_stat_statements"), "auto_explain, pg_stat_statements");
        assert_eq!(with_library("pg_stat_statements, auto_explain", "pg_stat_statements"), "pg_stat_statements, auto_explain");
        assert_eq!(with_library("\"pg_stat_statements\"", "pg_stat_statements"), "\"pg_stat_statements\"");
    }
}
