//! `postgres.statements`: pg_stat_statements as per-interval deltas (see
//! `statement_deltas.rs` for the rules).
//!
//! Counters are read with `pg_stat_statements(false)` (no texts: the
//! extension reads them from disk); database and role names come from a
//! small cache; texts are fetched only for the statements about to be
//! emitted that have none cached. A failed text fetch does not lose the
//! interval: the statements go out without text, and the text is asked
//! for again next time.

use std::collections::HashMap;
use std::time::Duration;

use dbintel_core::record::Record;
use dbintel_core::BoxFuture;
use dbintel_dsl::schema::StatementsSettings;
use dbintel_stdlib::Value;

use crate::catalogue::{attr, Declaration, Event, Instrument, Level, Metric, Origin};
use crate::collector::{Collector, Unreplayable};
use crate::postgres::PgTarget;
use crate::rows::{integer, Row};
use crate::statement_deltas::{StatementDeltas, POSTGRES};
use crate::target::{Engine, Target};
use crate::{ErrorClass, SourceError};

pub struct PgStatements {
    deltas: StatementDeltas,
    interval: Duration,
    databases: HashMap<i64, String>,
    roles: HashMap<i64, String>,
    soft_errors: Vec<SourceError>,
}

/// The statements' total execution time: `total_time` before 13.
pub fn exec_time_column(version: i64) -> &'static str {
    if version >= 130000 {
        "total_exec_time"
    } else {
        "total_time"
    }
}

/// Fails with what to do when pg_stat_statements is not installed in the
/// target's database: the extension's view and functions exist only in
/// the databases where `CREATE EXTENSION` ran, and the server's own error
/// (`relation "…" does not exist`, scrubbed) does not say so. Asked only
/// after a configuration error, so a healthy scrape pays nothing.
pub async fn require_extension(target: &PgTarget, collector: &str) -> Result<(), SourceError> {
    let rows = target
        .query(
            "pg_stat_statements check",
            "SELECT current_database()::text AS db,
                    (SELECT extversion::text FROM pg_extension WHERE extname = 'pg_stat_statements') AS version",
        )
        .await?;
    let row = rows.first();
    if row.and_then(|r| r.get("version")).is_some_and(|v| !v.is_nil()) {
        return Ok(());
    }
    let db = row.and_then(|r| r.get("db")).map(ToString::to_string).unwrap_or_default();
    Err(SourceError::Setup {
        source_name: target.name().to_string(),
        message: format!(
            "{collector}: pg_stat_statements is not installed in database `{db}`: run CREATE EXTENSION pg_stat_statements there \
             (with pg_stat_statements in shared_preload_libraries), or point this target at a database where it is"
        ),
    })
}

/// The counters query for a server version: `total_time` became
/// `total_exec_time` in 13 (with `total_plan_time`), `toplevel` came in 14,
/// `stats_since` in 17.
pub fn counters_sql(version: i64) -> String {
    let time = format!("s.{}", exec_time_column(version));
    let plan = if version >= 130000 { "s.total_plan_time" } else { "0::float8" };
    let toplevel = if version >= 140000 { "s.toplevel" } else { "true" };
    let since = if version >= 170000 { "s.stats_since::text" } else { "NULL::text" };
    format!(
        "SELECT s.userid::int8 AS userid, s.dbid::int8 AS dbid, {toplevel} AS toplevel, s.queryid, s.calls,
                {time} AS total_exec_time, {plan} AS total_plan_time, s.rows, s.shared_blks_hit, s.shared_blks_read,
                s.shared_blks_dirtied, s.shared_blks_written, s.local_blks_hit, s.local_blks_read, s.temp_blks_read,
                s.temp_blks_written, {since} AS stats_since
           FROM pg_stat_statements(false) s
          WHERE s.queryid IS NOT NULL"
    )
}

/// The metrics and the event of `postgres.statements` (built from
/// [`POSTGRES`]'s counters; a test holds the two together).
pub const DECLARATION: Declaration = Declaration {
    collector: "statements",
    engine: Engine::Postgres,
    metrics: &[
        delta("postgresql.query.calls", "{call}", false, "calls in the interval"),
        delta("postgresql.query.duration", "ms", true, "execution time in the interval"),
        delta("postgresql.query.rows", "{row}", false, "rows returned or affected"),
        delta("postgresql.query.shared_blocks.hit", "{block}", false, "shared buffer hits"),
        delta("postgresql.query.shared_blocks.read", "{block}", false, "shared blocks read"),
        delta("postgresql.query.shared_blocks.written", "{block}", false, "shared blocks written"),
        delta("postgresql.query.local_blocks.hit", "{block}", false, "local buffer hits"),
        delta("postgresql.query.local_blocks.read", "{block}", false, "local blocks read"),
        delta("postgresql.query.temp_blocks.read", "{block}", false, "temporary blocks read"),
        delta("postgresql.query.temp_blocks.written", "{block}", false, "temporary blocks written"),
    ],
    events: &[TOP_QUERY],
};

pub const TOP_QUERY: Event = Event {
    name: "db.server.top_query",
    attributes: &["db.query.id", "db.user", "db.query.toplevel", "db.query.calls", "db.query.duration_ms", "db.query.total_duration_ms"],
    db360: Some(&crate::db360::PG_TOP_QUERY),
    description: "one per top statement per interval, with its sanitized text; times in the contrib attributes in seconds",
};

const STATEMENT_ATTRIBUTES: &[crate::catalogue::Attr] =
    &[attr("db.query.id", &[]), attr("db.namespace", &[]), attr("db.user", &[]), attr("db.query.toplevel", &[])];

/// A statement delta metric: on the server's resource, by statement.
pub const fn delta(name: &'static str, unit: &'static str, double: bool, description: &'static str) -> Metric {
    Metric {
        name,
        unit,
        instrument: Instrument::DeltaCounter,
        double,
        level: Level::Instance,
        attributes: STATEMENT_ATTRIBUTES,
        origin: Origin::Dbintel,
        description,
    }
}

impl PgStatements {
    pub fn new(settings: &StatementsSettings, interval: Duration, comment_keys: Vec<String>) -> PgStatements {
        PgStatements {
            deltas: StatementDeltas::new(&POSTGRES, settings.top.max(1) as usize, comment_keys),
            interval,
            databases: HashMap::new(),
            roles: HashMap::new(),
            soft_errors: Vec::new(),
        }
    }

    pub async fn scrape_pg(&mut self, target: &PgTarget, now: u64) -> Result<Vec<Record>, SourceError> {
        match self.read(target, now).await {
            Err(e) if e.class() == ErrorClass::Configuration => {
                require_extension(target, "statements").await?;
                Err(e)
            }
            result => result,
        }
    }

    async fn read(&mut self, target: &PgTarget, now: u64) -> Result<Vec<Record>, SourceError> {
        if self.deltas.plans.is_none() {
            self.deltas.plans = Some(crate::plan_book::PlanBook::of(target.server_key()));
        }
        let server = target.identity().await?;
        let reset = if target.version() >= 140000 {
            let rows = target.query("stats_reset", "SELECT stats_reset::text AS reset FROM pg_stat_statements_info").await?;
            rows.first().and_then(|r| r.get("reset")).filter(|v| !v.is_nil()).map(ToString::to_string)
        } else {
            None
        };
        let mut rows = target.query("pg_stat_statements", &counters_sql(target.version())).await?;
        self.name_rows(target, &mut rows).await?;
        let selection = self.deltas.select(&server, reset, rows, now);
        let mut texts = HashMap::new();
        let ids: Vec<i64> = selection.needs_text.iter().filter_map(|id| id.parse().ok()).collect();
        if !ids.is_empty() {
            let query =
                sqlx::query("SELECT DISTINCT ON (queryid) queryid, query FROM pg_stat_statements(true) WHERE queryid = ANY($1)").bind(ids);
            match target.query_with("query texts", query).await {
                Ok(rows) => {
                    for row in rows {
                        if let (Some(id), Some(Value::Str(text))) = (integer(&row, "queryid"), row.get("query")) {
                            texts.insert(id.to_string(), text.clone());
                        }
                    }
                }
                // the deltas are computed: send them without texts
                Err(e) => self.soft_errors.push(e),
            }
        }
        Ok(self.deltas.emit(selection, texts).0)
    }

    /// Adds `datname` and `rolname` from a cache of database and role names,
    /// refreshed when an unknown oid shows up.
    async fn name_rows(&mut self, target: &PgTarget, rows: &mut [Row]) -> Result<(), SourceError> {
        let unknown = rows.iter().any(|r| {
            let db = integer(r, "dbid");
            let user = integer(r, "userid");
            db.is_some_and(|d| !self.databases.contains_key(&d)) || user.is_some_and(|u| !self.roles.contains_key(&u))
        });
        if unknown {
            for row in target.query("database names", "SELECT oid::int8 AS oid, datname::text AS name FROM pg_database").await? {
                if let (Some(oid), Some(Value::Str(name))) = (integer(&row, "oid"), row.get("name")) {
                    self.databases.insert(oid, name.clone());
                }
            }
            for row in target.query("role names", "SELECT oid::int8 AS oid, rolname::text AS name FROM pg_roles").await? {
                if let (Some(oid), Some(Value::Str(name))) = (integer(&row, "oid"), row.get("name")) {
                    self.roles.insert(oid, name.clone());
                }
            }
        }
        for row in rows {
            if let Some(name) = integer(row, "dbid").and_then(|d| self.databases.get(&d)) {
                row.insert("datname", Value::Str(name.clone()));
            }
            if let Some(name) = integer(row, "userid").and_then(|u| self.roles.get(&u)) {
                row.insert("rolname", Value::Str(name.clone()));
            }
        }
        Ok(())
    }
}

impl Collector for PgStatements {
    fn scope(&self) -> crate::collector::Scope {
        crate::collector::Scope::Server
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn scrape<'a>(&'a mut self, target: &'a Target, now: u64) -> BoxFuture<'a, Result<Vec<Record>, SourceError>> {
        Box::pin(async move {
            match target {
                Target::Pg(pg) => self.scrape_pg(pg, now).await,
                Target::My(_) => Err(crate::setup_error("statements", "a PostgreSQL collector on a MySQL target".into())),
            }
        })
    }

    /// Recorded rows carry names and texts (`datname`, `rolname`,
    /// `query`) and optionally `_server` and `_stats_reset`.
    fn replay(&mut self, rows: Vec<Row>, now: u64) -> Result<Vec<Record>, Unreplayable> {
        let marker = |column: &str| rows.iter().find_map(|r| r.get(column).filter(|v| !v.is_nil()).map(ToString::to_string));
        let server = marker("_server").unwrap_or_else(|| "recorded".into());
        let reset = marker("_stats_reset");
        Ok(self.deltas.observe(&server, reset, rows, now).0)
    }

    fn take_soft_errors(&mut self) -> Vec<SourceError> {
        std::mem::take(&mut self.soft_errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declaration_names_every_counter_metric_with_its_unit() {
        for flavor in [&POSTGRES, &crate::statement_deltas::MYSQL] {
            let declaration = if flavor.system == "postgresql" { &DECLARATION } else { &super::super::my_statements::DECLARATION };
            let names: Vec<String> =
                flavor.counters.iter().filter(|c| !c.metric.is_empty()).map(|c| format!("{}.query.{}", flavor.system, c.metric)).collect();
            assert_eq!(declaration.metrics.iter().map(|m| m.name.to_string()).collect::<Vec<_>>(), names);
            for (counter, metric) in flavor.counters.iter().filter(|c| !c.metric.is_empty()).zip(declaration.metrics) {
                assert_eq!((counter.unit, !counter.integer), (metric.unit, metric.double), "{}", metric.name);
            }
            for counter in flavor.counters {
                if let Some((attribute, _)) = counter.event {
                    assert!(declaration.events[0].declares(attribute), "{attribute} is not declared");
                }
            }
        }
    }
}
