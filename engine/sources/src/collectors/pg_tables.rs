//! `postgres.tables`: per-table, per-index and per-function statistics,
//! read in each database of the server (the `pg_stat_user_*` views only
//! show the database a session is connected to).
//!
//! - Databases are discovered on the source's own connection (every
//!   database the role may connect to, templates left out), filtered by
//!   `databases` / `exclude_databases`; each gets a connection of its
//!   own, at most `pool` of them open at a time across all databases (the
//!   least recently used is closed to open another), so a server with many
//!   databases costs `pool` connections, not one per database.
//! - Series are bounded: per database the `top` tables by size together
//!   with the `top` by activity (scans and row changes), after the
//!   `tables` / `exclude_tables` globs on `schema.table`; the indexes of
//!   those tables; the `top` functions by calls; and at most `max_tables`
//!   tables and `max_indexes` indexes across all databases. What is left
//!   out is counted (`postgresql.objects.omitted`), and reaching a hard cap
//!   is a soft error, so it shows in the status and the logs.
//! - Sizes (`pg_relation_size`) and these views are the expensive reads:
//!   the collector has its own, slower cadence (`interval`, 5 min).
//!   Relations locked `AccessExclusiveLock` (DDL, `VACUUM FULL`) are
//!   skipped, as the contrib receiver does, so a scrape never queues
//!   behind a rewrite.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use dbintel_core::record::Record;
use dbintel_core::BoxFuture;
use dbintel_dsl::schema::PgTablesSettings;
use dbintel_stdlib::{Map, Value};
use sqlx::Postgres;

use super::name_filter::NameFilter;
use super::optional::OptionalParts;
use crate::catalogue::{attr, Declaration, Instrument as I, Level as L, Metric, Origin as O};
use crate::catalogue::{DATABASE_NAME, INDEX_NAME, SCHEMA_NAME, TABLE_NAME};
use crate::collector::{Collector, Unreplayable};
use crate::postgres::PgTarget;
use crate::rows::{integer, number, Row};
use crate::sessions::SessionPool;
use crate::target::{Engine, Target};
use crate::SourceError;

const fn m(
    name: &'static str,
    unit: &'static str,
    instrument: I,
    level: L,
    attributes: &'static [crate::catalogue::Attr],
    origin: O,
    description: &'static str,
) -> Metric {
    Metric { name, unit, instrument, double: false, level, attributes, origin, description }
}

pub const BLOCKS_READ: Metric = m(
    "postgresql.blocks_read",
    "1",
    I::Counter,
    L::Table,
    &[attr("source", &["heap_read", "heap_hit", "idx_read", "idx_hit", "toast_read", "toast_hit", "tidx_read", "tidx_hit"])],
    O::Contrib,
    "blocks read from disk or found in the buffer cache, by kind",
);
pub const OPERATIONS: Metric = m(
    "postgresql.operations",
    "1",
    I::Counter,
    L::Table,
    &[attr("operation", &["ins", "upd", "del", "hot_upd"])],
    O::Contrib,
    "rows inserted, updated, deleted, HOT-updated",
);
pub const ROWS: Metric =
    m("postgresql.rows", "1", I::UpDownCounter, L::Table, &[attr("state", &["dead", "live"])], O::Contrib, "live and dead rows");
pub const SEQUENTIAL_SCANS: Metric =
    m("postgresql.sequential_scans", "{sequential_scan}", I::Counter, L::Table, &[], O::ContribOptional, "sequential scans");
pub const TABLE_SIZE: Metric =
    m("postgresql.table.size", "By", I::UpDownCounter, L::Table, &[], O::Contrib, "heap size (pg_relation_size)");
pub const VACUUMS: Metric = m("postgresql.table.vacuum.count", "{vacuum}", I::Counter, L::Table, &[], O::Contrib, "manual vacuums");
pub const TABLE_COUNT: Metric =
    m("postgresql.table.count", "{table}", I::UpDownCounter, L::Database, &[], O::Contrib, "user tables in the database");
pub const INDEX_SCANS: Metric = m("postgresql.index.scans", "{scans}", I::Counter, L::Index, &[], O::Contrib, "index scans");
pub const INDEX_SIZE: Metric = m("postgresql.index.size", "By", I::Gauge, L::Index, &[], O::Contrib, "index size");
pub const FUNCTION_CALLS: Metric = m(
    "postgresql.function.calls",
    "{call}",
    I::Counter,
    L::Function,
    &[attr("function", &[])],
    O::ContribOptional,
    "calls per function (needs track_functions = pl or all)",
);
pub const OMITTED: Metric = m(
    "postgresql.objects.omitted",
    "{object}",
    I::Gauge,
    L::Database,
    &[attr("kind", &["table", "index", "function"])],
    O::Dbintel,
    "tables, indexes and functions left out by `top`, `max_tables` or `max_indexes`",
);

pub const DECLARATION: Declaration = Declaration {
    collector: "tables",
    engine: Engine::Postgres,
    metrics: &[
        BLOCKS_READ,
        OPERATIONS,
        ROWS,
        SEQUENTIAL_SCANS,
        TABLE_SIZE,
        VACUUMS,
        TABLE_COUNT,
        INDEX_SCANS,
        INDEX_SIZE,
        FUNCTION_CALLS,
        OMITTED,
    ],
    events: &[],
};

/// The databases to read, on the source's own connection.
pub const DATABASES_SQL: &str = "SELECT datname::text AS datname, datname = current_database() AS current
   FROM pg_database
  WHERE NOT datistemplate AND datallowconn AND has_database_privilege(datname, 'CONNECT')
  ORDER BY datname";

/// Relations a rewrite or DDL holds: their size would wait for it.
const LOCKED: &str = "(SELECT DISTINCT relation FROM pg_locks
          WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock' AND granted
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))";

/// Tables of the connected database: activity, block I/O and size.
pub fn tables_sql() -> String {
    format!(
        "SELECT s.schemaname::text AS schema, s.relname::text AS \"table\",
                s.n_live_tup::int8 AS live, s.n_dead_tup::int8 AS dead,
                s.n_tup_ins::int8 AS ins, s.n_tup_upd::int8 AS upd, s.n_tup_del::int8 AS del, s.n_tup_hot_upd::int8 AS hot_upd,
                s.seq_scan::int8 AS seq_scans, COALESCE(s.idx_scan, 0)::int8 AS idx_scans, s.vacuum_count::int8 AS vacuum_count,
                COALESCE(io.heap_blks_read, 0)::int8 AS heap_read, COALESCE(io.heap_blks_hit, 0)::int8 AS heap_hit,
                COALESCE(io.idx_blks_read, 0)::int8 AS idx_read, COALESCE(io.idx_blks_hit, 0)::int8 AS idx_hit,
                COALESCE(io.toast_blks_read, 0)::int8 AS toast_read, COALESCE(io.toast_blks_hit, 0)::int8 AS toast_hit,
                COALESCE(io.tidx_blks_read, 0)::int8 AS tidx_read, COALESCE(io.tidx_blks_hit, 0)::int8 AS tidx_hit,
                pg_relation_size(s.relid)::int8 AS table_size
           FROM pg_stat_user_tables s
           JOIN pg_statio_user_tables io ON io.relid = s.relid
           LEFT JOIN {LOCKED} l ON l.relation = s.relid
          WHERE l.relation IS NULL"
    )
}

/// Indexes of the connected database (of tables not locked either).
pub fn indexes_sql() -> String {
    format!(
        "WITH locked AS MATERIALIZED {LOCKED}
         SELECT s.schemaname::text AS schema, s.relname::text AS \"table\", s.indexrelname::text AS index,
                s.idx_scan::int8 AS scans, pg_relation_size(s.indexrelid)::int8 AS index_size
           FROM pg_stat_user_indexes s
          WHERE s.indexrelid NOT IN (SELECT relation FROM locked) AND s.relid NOT IN (SELECT relation FROM locked)"
    )
}

/// Functions with statistics (only with `track_functions`); an overloaded
/// name carries its argument names, as the contrib receiver writes it.
pub const FUNCTIONS_SQL: &str = "SELECT s.schemaname::text AS schema,
        (CASE WHEN o.n > 1 AND p.proargnames IS NOT NULL THEN p.proname || '_' || array_to_string(p.proargnames, '_')
              ELSE p.proname END)::text AS function,
        s.calls::int8 AS calls
   FROM pg_stat_user_functions s
   JOIN pg_proc p ON p.oid = s.funcid
   LEFT JOIN (SELECT funcname, count(*) AS n FROM pg_stat_user_functions GROUP BY funcname) o ON o.funcname = s.funcname";

/// Connections to the server's databases, at most `capacity` open.
struct DatabasePools {
    capacity: usize,
    open: HashMap<String, Arc<SessionPool<Postgres>>>,
    /// Least recently used first.
    order: VecDeque<String>,
}

impl DatabasePools {
    async fn get(&mut self, target: &PgTarget, database: &str) -> Arc<SessionPool<Postgres>> {
        if let Some(pool) = self.open.get(database) {
            self.order.retain(|d| d != database);
            self.order.push_back(database.to_string());
            return pool.clone();
        }
        while self.open.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some(pool) = self.open.remove(&oldest) {
                pool.close().await;
            }
        }
        let pool = Arc::new(target.database_pool(database));
        self.open.insert(database.to_string(), pool.clone());
        self.order.push_back(database.to_string());
        pool
    }

    /// Closes the connections of databases that are gone.
    async fn retain(&mut self, databases: &HashSet<&str>) {
        let gone: Vec<String> = self.open.keys().filter(|d| !databases.contains(d.as_str())).cloned().collect();
        for database in gone {
            if let Some(pool) = self.open.remove(&database) {
                pool.close().await;
            }
            self.order.retain(|d| *d != database);
        }
    }
}

/// What building the collector decided about its settings.
struct Bounds {
    top: usize,
    max_tables: usize,
    max_indexes: usize,
}

pub struct PgTables {
    interval: Duration,
    databases: Result<NameFilter, String>,
    tables: Result<NameFilter, String>,
    bounds: Bounds,
    pools: DatabasePools,
    started: Option<u64>,
    parts: OptionalParts,
}

impl PgTables {
    pub fn new(settings: &PgTablesSettings, interval: Duration, config_retry: Duration) -> PgTables {
        PgTables {
            interval,
            databases: NameFilter::new("databases", &settings.databases, &settings.exclude_databases),
            tables: NameFilter::new("tables", &settings.tables, &settings.exclude_tables),
            bounds: Bounds {
                top: settings.top.max(1) as usize,
                max_tables: settings.max_tables.max(1) as usize,
                max_indexes: settings.max_indexes.max(1) as usize,
            },
            pools: DatabasePools { capacity: settings.pool.max(1) as usize, open: HashMap::new(), order: VecDeque::new() },
            started: None,
            parts: OptionalParts::new(config_retry),
        }
    }

    /// Every database's rows, each tagged with `datname`.
    async fn fetch(&mut self, target: &PgTarget) -> Result<Vec<Row>, SourceError> {
        let filter = self.databases.as_ref().map_err(|e| crate::setup_error("tables", e.clone()))?;
        let found = target.query("databases", DATABASES_SQL).await?;
        let chosen: Vec<(String, bool)> = found
            .iter()
            .filter_map(|r| match r.get("datname") {
                Some(Value::Str(name)) if filter.admits(name) => Some((name.clone(), r.get("current") == Some(&Value::Bool(true)))),
                _ => None,
            })
            .collect();
        self.pools.retain(&chosen.iter().map(|(d, _)| d.as_str()).collect()).await;
        let (tables, indexes) = (tables_sql(), indexes_sql());
        let mut rows = Vec::new();
        for (database, current) in chosen {
            // one failing database (dropped since, not reachable for this
            // role) does not cost the others theirs
            let part = format!("database {database}");
            if !self.parts.due(&part) {
                continue;
            }
            let pool = if current { None } else { Some(self.pools.get(target, &database).await) };
            let read = async {
                let mut out = Vec::new();
                for (what, sql) in [("tables", tables.as_str()), ("indexes", indexes.as_str()), ("functions", FUNCTIONS_SQL)] {
                    let what = format!("{what} of {database}");
                    out.extend(match &pool {
                        Some(pool) => target.query_on(pool, &what, sql).await?,
                        None => target.query(&what, sql).await?,
                    });
                }
                Ok(out)
            };
            if let Some(mut found) = self.parts.keep(&part, read.await)? {
                for row in &mut found {
                    row.insert("datname", Value::Str(database.clone()));
                }
                rows.extend(found);
            }
        }
        Ok(rows)
    }

    fn map(&mut self, rows: Vec<Row>, now: u64) -> Vec<Record> {
        let start = *self.started.get_or_insert(now);
        let Ok(filter) = &self.tables else { return Vec::new() };
        let (records, capped) = records(rows, filter, &self.bounds, start, now);
        if let Some(what) = capped {
            self.parts.push(SourceError::Database {
                source_name: String::new(),
                what: "tables".into(),
                class: crate::ErrorClass::Other,
                code: "series_cap".into(),
                message: format!("{what}; the rest are counted in postgresql.objects.omitted"),
            });
        }
        records
    }
}

impl Collector for PgTables {
    /// It reads every database (schema) of the server itself: once per
    /// server, however many of its databases are targets.
    fn scope(&self) -> crate::collector::Scope {
        crate::collector::Scope::Server
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn scrape<'a>(&'a mut self, target: &'a Target, now: u64) -> BoxFuture<'a, Result<Vec<Record>, SourceError>> {
        Box::pin(async move {
            let Target::Pg(pg) = target else {
                return Err(crate::setup_error("tables", "a PostgreSQL collector on a MySQL target".into()));
            };
            if let Err(e) = &self.tables {
                return Err(crate::setup_error("tables", e.clone()));
            }
            let rows = self.fetch(pg).await?;
            Ok(self.map(rows, now))
        })
    }

    /// Recorded rows of the three queries, each with its `datname`.
    fn replay(&mut self, rows: Vec<Row>, now: u64) -> Result<Vec<Record>, Unreplayable> {
        Ok(self.map(rows, now))
    }

    fn take_soft_errors(&mut self) -> Vec<SourceError> {
        self.parts.take_errors()
    }
}

fn s(row: &Row, column: &str) -> String {
    match row.get(column) {
        Some(Value::Str(s)) => s.clone(),
        Some(Value::Nil) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

fn activity(row: &Row) -> f64 {
    ["seq_scans", "idx_scans", "ins", "upd", "del"].iter().filter_map(|c| number(row, c)).sum()
}

/// Indexes of `values` (by descending value, ties by name) that rank in
/// the first `top`.
fn top_by(rows: &[&Row], top: usize, value: impl Fn(&Row) -> f64, name: impl Fn(&Row) -> String) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| value(rows[b]).total_cmp(&value(rows[a])).then_with(|| name(rows[a]).cmp(&name(rows[b]))));
    order.truncate(top);
    order
}

/// Rows to points, bounded. Returns the points and, when a hard cap was
/// reached, what was cut.
fn records(rows: Vec<Row>, filter: &NameFilter, bounds: &Bounds, start: u64, now: u64) -> (Vec<Record>, Option<String>) {
    // rows by database, in the order they came
    let mut databases: Vec<(String, Vec<Row>)> = Vec::new();
    for row in rows {
        let db = s(&row, "datname");
        match databases.iter_mut().find(|(d, _)| *d == db) {
            Some((_, group)) => group.push(row),
            None => databases.push((db, vec![row])),
        }
    }
    let mut out = Vec::new();
    let (mut tables_left, mut indexes_left) = (bounds.max_tables, bounds.max_indexes);
    let mut capped = Vec::new();
    for (database, rows) in &databases {
        let qualified = |r: &Row| format!("{}.{}", s(r, "schema"), s(r, "table"));
        let tables: Vec<&Row> = rows.iter().filter(|r| r.get("table_size").is_some()).collect();
        let table_count = tables.len();
        let admitted: Vec<&Row> = tables.into_iter().filter(|r| filter.admits(&qualified(r))).collect();
        let mut chosen: Vec<usize> = top_by(&admitted, bounds.top, |r| number(r, "table_size").unwrap_or(0.0), qualified);
        for i in top_by(&admitted, bounds.top, activity, qualified) {
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        let mut omitted_tables = admitted.len() - chosen.len();
        if chosen.len() > tables_left {
            omitted_tables += chosen.len() - tables_left;
            capped.push(format!("max_tables ({}) reached in {database}", bounds.max_tables));
            chosen.truncate(tables_left);
        }
        tables_left -= chosen.len();
        let db = Value::Str(database.clone());
        let on_db = || {
            let mut a = Map::new();
            a.insert(DATABASE_NAME, db.clone());
            a
        };
        out.push(TABLE_COUNT.point(table_count as f64, start, now, on_db()));
        let mut reported: HashSet<(String, String)> = HashSet::new();
        for i in chosen {
            let row = admitted[i];
            reported.insert((s(row, "schema"), s(row, "table")));
            let on_table = |extra: Option<(&str, &str)>| {
                let mut a = on_db();
                a.insert(SCHEMA_NAME, Value::Str(s(row, "schema")));
                a.insert(TABLE_NAME, Value::Str(qualified(row)));
                if let Some((k, v)) = extra {
                    a.insert(k, Value::Str(v.into()));
                }
                a
            };
            let mut push = |metric: &Metric, column: &str, extra: Option<(&str, &str)>| {
                if let Some(v) = number(row, column) {
                    out.push(metric.point(v, start, now, on_table(extra)));
                }
            };
            for source in ["heap_read", "heap_hit", "idx_read", "idx_hit", "toast_read", "toast_hit", "tidx_read", "tidx_hit"] {
                push(&BLOCKS_READ, source, Some(("source", source)));
            }
            for operation in ["ins", "upd", "del", "hot_upd"] {
                push(&OPERATIONS, operation, Some(("operation", operation)));
            }
            push(&ROWS, "live", Some(("state", "live")));
            push(&ROWS, "dead", Some(("state", "dead")));
            push(&SEQUENTIAL_SCANS, "seq_scans", None);
            push(&TABLE_SIZE, "table_size", None);
            push(&VACUUMS, "vacuum_count", None);
        }
        // indexes of the reported tables
        let mut omitted_indexes = 0usize;
        for row in rows.iter().filter(|r| r.get("index_size").is_some()) {
            if !reported.contains(&(s(row, "schema"), s(row, "table"))) {
                continue;
            }
            if indexes_left == 0 {
                omitted_indexes += 1;
                continue;
            }
            indexes_left -= 1;
            let mut a = on_db();
            a.insert(SCHEMA_NAME, Value::Str(s(row, "schema")));
            a.insert(TABLE_NAME, Value::Str(s(row, "table")));
            a.insert(INDEX_NAME, Value::Str(s(row, "index")));
            for (metric, column) in [(&INDEX_SCANS, "scans"), (&INDEX_SIZE, "index_size")] {
                if let Some(v) = number(row, column) {
                    out.push(metric.point(v, start, now, a.clone()));
                }
            }
        }
        if omitted_indexes > 0 {
            capped.push(format!("max_indexes ({}) reached in {database}", bounds.max_indexes));
        }
        // the busiest functions
        let functions: Vec<&Row> = rows.iter().filter(|r| r.get("function").is_some() && r.get("calls").is_some()).collect();
        let chosen = top_by(&functions, bounds.top, |r| number(r, "calls").unwrap_or(0.0), |r| s(r, "function"));
        let omitted_functions = functions.len() - chosen.len();
        for i in chosen {
            let row = functions[i];
            let mut a = on_db();
            a.insert(SCHEMA_NAME, Value::Str(s(row, "schema")));
            a.insert("function", Value::Str(s(row, "function")));
            if let Some(calls) = integer(row, "calls") {
                out.push(FUNCTION_CALLS.point(calls as f64, start, now, a));
            }
        }
        for (kind, n) in [("table", omitted_tables), ("index", omitted_indexes), ("function", omitted_functions)] {
            let mut a = on_db();
            a.insert("kind", Value::Str(kind.into()));
            out.push(OMITTED.point(n as f64, start, now, a));
        }
    }
    (out, (!capped.is_empty()).then(|| capped.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(db: &str, name: &str, size: i64, scans: i64) -> Row {
        let mut r = Map::new();
        r.insert("datname", Value::Str(db.into()));
        r.insert("schema", Value::Str("public".into()));
        r.insert("table", Value::Str(name.into()));
        r.insert("table_size", Value::Int(size));
        r.insert("seq_scans", Value::Int(scans));
        r.insert("live", Value::Int(1));
        r
    }

    fn index(db: &str, table: &str, name: &str) -> Row {
        let mut r = Map::new();
        r.insert("datname", Value::Str(db.into()));
        r.insert("schema", Value::Str("public".into()));
        r.insert("table", Value::Str(table.into()));
        r.insert("index", Value::Str(name.into()));
        r.insert("index_size", Value::Int(8192));
        r.insert("scans", Value::Int(3));
        r
    }

    fn reported(records: &[Record], metric: &str) -> Vec<String> {
        let mut names: Vec<String> = records
            .iter()
            .filter_map(|r| match r {
                Record::Metric(m) if m.name == metric => {
                    m.attributes.get(INDEX_NAME).or(m.attributes.get(TABLE_NAME)).map(ToString::to_string)
                }
                _ => None,
            })
            .collect();
        names.sort();
        names
    }

    fn omitted(records: &[Record], db: &str, kind: &str) -> i64 {
        records
            .iter()
            .find_map(|r| match r {
                Record::Metric(m)
                    if m.name == OMITTED.name
                        && m.attributes.get(DATABASE_NAME).and_then(Value::as_str) == Some(db)
                        && m.attributes.get("kind").and_then(Value::as_str) == Some(kind) =>
                {
                    Some(match m.value {
                        dbintel_core::record::Number::Int(i) => i,
                        dbintel_core::record::Number::Double(d) => d as i64,
                    })
                }
                _ => None,
            })
            .unwrap_or(-1)
    }

    #[test]
    fn the_top_tables_by_size_and_by_activity_are_reported_and_the_rest_counted() {
        let rows = vec![
            table("app", "big", 1000, 0),
            table("app", "busy", 10, 500),
            table("app", "idle", 5, 1),
            index("app", "big", "big_pkey"),
            index("app", "idle", "idle_pkey"),
        ];
        let bounds = Bounds { top: 1, max_tables: 100, max_indexes: 100 };
        let filter = NameFilter::new("tables", &[], &[]).expect("valid");
        let (out, capped) = records(rows, &filter, &bounds, 1, 2);
        assert_eq!(reported(&out, "postgresql.table.size"), ["public.big", "public.busy"]);
        assert_eq!(reported(&out, "postgresql.index.size"), ["big_pkey"], "indexes of reported tables only");
        assert_eq!(omitted(&out, "app", "table"), 1);
        assert!(capped.is_none(), "top is a choice, not a cap");
        let count = out.iter().find_map(|r| match r {
            Record::Metric(m) if m.name == "postgresql.table.count" => Some(m.value),
            _ => None,
        });
        assert_eq!(count, Some(dbintel_core::record::Number::Int(3)), "table.count counts every table");
    }

    #[test]
    fn hard_caps_hold_across_databases_and_say_so() {
        let rows =
            vec![table("a", "t1", 3, 0), table("a", "t2", 2, 0), table("b", "t3", 1, 0), index("a", "t1", "i1"), index("a", "t2", "i2")];
        let bounds = Bounds { top: 10, max_tables: 2, max_indexes: 1 };
        let filter = NameFilter::new("tables", &[], &["public.nothing".into()]).expect("valid");
        let (out, capped) = records(rows, &filter, &bounds, 1, 2);
        assert_eq!(reported(&out, "postgresql.table.size"), ["public.t1", "public.t2"]);
        assert_eq!((omitted(&out, "b", "table"), omitted(&out, "a", "index")), (1, 1));
        let capped = capped.expect("a cap was reached");
        assert!(capped.contains("max_tables (2) reached in b") && capped.contains("max_indexes (1)"), "{capped}");
    }

    #[test]
    fn the_table_globs_apply_to_schema_dot_table() {
        let rows = vec![table("app", "orders", 1, 1), table("app", "tmp_x", 1, 1)];
        let bounds = Bounds { top: 10, max_tables: 10, max_indexes: 10 };
        let filter = NameFilter::new("tables", &["public.*".into()], &["*.tmp_*".into()]).expect("valid");
        let (out, _) = records(rows, &filter, &bounds, 1, 2);
        assert_eq!(reported(&out, "postgresql.table.size"), ["public.orders"]);
        assert_eq!(omitted(&out, "app", "table"), 0, "filtered out by choice is not omitted");
    }
}
