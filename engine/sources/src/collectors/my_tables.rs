//! `mysql.tables`: per-table and per-index I/O waits
//! (`performance_schema.table_io_waits_summary_by_table` and
//! `…_by_index_usage`, timers in picoseconds sent as nanoseconds) and table
//! sizes (`information_schema.TABLES`), as the contrib `mysqlreceiver`
//! names them: on the server's one resource, with `schema` and `table` (and
//! `index`) as point attributes.
//!
//! Bounded like `postgres.tables`: after the `databases` (schemas) and
//! `tables` (`schema.table`) globs, the `top` tables by size together with
//! the `top` by I/O, their indexes, at most `max_tables` / `max_indexes`;
//! what is left out is counted (`mysql.objects.omitted`) and a hard cap
//! reached is a soft error. Its own, slower cadence (5 min): reading
//! `information_schema.TABLES` makes the server look at every table.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use dbintel_core::record::Record;
use dbintel_core::BoxFuture;
use dbintel_dsl::schema::MyTablesSettings;
use dbintel_stdlib::{Map, Value};

use super::name_filter::NameFilter;
use super::optional::OptionalParts;
use crate::catalogue::{attr, Attr, Declaration, Instrument as I, Level, Metric, Origin as O};
use crate::collector::{Collector, Unreplayable};
use crate::rows::{number, Row};
use crate::target::{Engine, Target};
use crate::SourceError;

const fn m(
    name: &'static str,
    unit: &'static str,
    instrument: I,
    attributes: &'static [Attr],
    origin: O,
    description: &'static str,
) -> Metric {
    Metric { name, unit, instrument, double: false, level: Level::Instance, attributes, origin, description }
}

const IO: &[Attr] = &[attr("operation", &["delete", "fetch", "insert", "update"]), attr("table", &[]), attr("schema", &[])];
const INDEX_IO: &[Attr] =
    &[attr("operation", &["delete", "fetch", "insert", "update"]), attr("table", &[]), attr("schema", &[]), attr("index", &[])];
const TABLE: &[Attr] = &[attr("table", &[]), attr("schema", &[])];

pub const TABLE_IO_COUNT: Metric = m("mysql.table.io.wait.count", "1", I::Counter, IO, O::Contrib, "table I/O wait events");
pub const TABLE_IO_TIME: Metric = m("mysql.table.io.wait.time", "ns", I::Counter, IO, O::Contrib, "table I/O wait time");
pub const INDEX_IO_COUNT: Metric =
    m("mysql.index.io.wait.count", "1", I::Counter, INDEX_IO, O::Contrib, "index I/O wait events (`index` NONE: no index used)");
pub const INDEX_IO_TIME: Metric = m("mysql.index.io.wait.time", "ns", I::Counter, INDEX_IO, O::Contrib, "index I/O wait time");
pub const TABLE_SIZE: Metric = m(
    "mysql.table.size",
    "By",
    I::UpDownCounter,
    &[attr("table", &[]), attr("schema", &[]), attr("kind", &["data", "index"])],
    O::ContribOptional,
    "data and index bytes per table",
);
pub const TABLE_ROWS: Metric = m("mysql.table.rows", "1", I::UpDownCounter, TABLE, O::ContribOptional, "rows per table (an estimate)");
pub const TABLE_ROW_LENGTH: Metric =
    m("mysql.table.average_row_length", "By", I::UpDownCounter, TABLE, O::ContribOptional, "average row length per table");
pub const OMITTED: Metric = m(
    "mysql.objects.omitted",
    "{object}",
    I::Gauge,
    &[attr("kind", &["table", "index"])],
    O::Dbintel,
    "tables and indexes left out by `top`, `max_tables` or `max_indexes`",
);

pub const DECLARATION: Declaration = Declaration {
    collector: "tables",
    engine: Engine::MySql,
    metrics: &[TABLE_IO_COUNT, TABLE_IO_TIME, INDEX_IO_COUNT, INDEX_IO_TIME, TABLE_SIZE, TABLE_ROWS, TABLE_ROW_LENGTH, OMITTED],
    events: &[],
};

const SYSTEM_SCHEMAS: &str = "('mysql', 'performance_schema', 'information_schema', 'sys')";

pub fn table_io_sql() -> String {
    format!(
        "SELECT OBJECT_SCHEMA AS io_schema, OBJECT_NAME AS io_table,
                COUNT_DELETE AS count_delete, COUNT_FETCH AS count_fetch, COUNT_INSERT AS count_insert, COUNT_UPDATE AS count_update,
                SUM_TIMER_DELETE DIV 1000 AS time_delete, SUM_TIMER_FETCH DIV 1000 AS time_fetch,
                SUM_TIMER_INSERT DIV 1000 AS time_insert, SUM_TIMER_UPDATE DIV 1000 AS time_update
           FROM performance_schema.table_io_waits_summary_by_table
          WHERE OBJECT_SCHEMA NOT IN {SYSTEM_SCHEMAS}"
    )
}

pub fn index_io_sql() -> String {
    format!(
        "SELECT OBJECT_SCHEMA AS index_schema, OBJECT_NAME AS index_table, IFNULL(INDEX_NAME, 'NONE') AS index_name,
                COUNT_DELETE AS count_delete, COUNT_FETCH AS count_fetch, COUNT_INSERT AS count_insert, COUNT_UPDATE AS count_update,
                SUM_TIMER_DELETE DIV 1000 AS time_delete, SUM_TIMER_FETCH DIV 1000 AS time_fetch,
                SUM_TIMER_INSERT DIV 1000 AS time_insert, SUM_TIMER_UPDATE DIV 1000 AS time_update
           FROM performance_schema.table_io_waits_summary_by_index_usage
          WHERE OBJECT_SCHEMA NOT IN {SYSTEM_SCHEMAS}"
    )
}

pub fn sizes_sql() -> String {
    format!(
        "SELECT TABLE_SCHEMA AS size_schema, TABLE_NAME AS size_table, COALESCE(TABLE_ROWS, 0) AS table_rows,
                COALESCE(AVG_ROW_LENGTH, 0) AS avg_row_length, COALESCE(DATA_LENGTH, 0) AS data_length,
                COALESCE(INDEX_LENGTH, 0) AS index_length
           FROM information_schema.TABLES
          WHERE TABLE_SCHEMA NOT IN {SYSTEM_SCHEMAS} AND TABLE_TYPE = 'BASE TABLE'"
    )
}

struct Bounds {
    top: usize,
    max_tables: usize,
    max_indexes: usize,
}

pub struct MyTables {
    interval: Duration,
    schemas: Result<NameFilter, String>,
    tables: Result<NameFilter, String>,
    bounds: Bounds,
    started: Option<u64>,
    parts: OptionalParts,
}

impl MyTables {
    pub fn new(settings: &MyTablesSettings, interval: Duration, config_retry: Duration) -> MyTables {
        MyTables {
            interval,
            schemas: NameFilter::new("databases", &settings.databases, &settings.exclude_databases),
            tables: NameFilter::new("tables", &settings.tables, &settings.exclude_tables),
            bounds: Bounds {
                top: settings.top.max(1) as usize,
                max_tables: settings.max_tables.max(1) as usize,
                max_indexes: settings.max_indexes.max(1) as usize,
            },
            started: None,
            parts: OptionalParts::new(config_retry),
        }
    }

    fn map(&mut self, rows: Vec<Row>, now: u64) -> Vec<Record> {
        let start = *self.started.get_or_insert(now);
        let (Ok(schemas), Ok(tables)) = (&self.schemas, &self.tables) else { return Vec::new() };
        let (out, capped) = records(&rows, schemas, tables, &self.bounds, start, now);
        if let Some(what) = capped {
            self.parts.push(SourceError::Database {
                source_name: String::new(),
                what: "tables".into(),
                class: crate::ErrorClass::Other,
                code: "series_cap".into(),
                message: format!("{what}; the rest are counted in mysql.objects.omitted"),
            });
        }
        out
    }
}

impl Collector for MyTables {
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
            let Target::My(my) = target else {
                return Err(crate::setup_error("tables", "a MySQL collector on a PostgreSQL target".into()));
            };
            for filter in [&self.schemas, &self.tables] {
                if let Err(e) = filter {
                    return Err(crate::setup_error("tables", e.clone()));
                }
            }
            let mut rows = my.query("table I/O waits", &table_io_sql()).await?;
            rows.extend(my.query("index I/O waits", &index_io_sql()).await?);
            rows.extend(my.query("table sizes", &sizes_sql()).await?);
            Ok(self.map(rows, now))
        })
    }

    /// Recorded rows of the three queries (told apart by their columns).
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

/// What is known of one table.
#[derive(Default)]
struct Table<'r> {
    io: Option<&'r Row>,
    size: Option<&'r Row>,
    indexes: Vec<&'r Row>,
}

impl Table<'_> {
    fn bytes(&self) -> f64 {
        self.size.map_or(0.0, |r| number(r, "data_length").unwrap_or(0.0) + number(r, "index_length").unwrap_or(0.0))
    }
    fn waits(&self) -> f64 {
        self.io.map_or(0.0, |r| ["count_delete", "count_fetch", "count_insert", "count_update"].iter().filter_map(|c| number(r, c)).sum())
    }
}

fn records(
    rows: &[Row],
    schemas: &NameFilter,
    filter: &NameFilter,
    bounds: &Bounds,
    start: u64,
    now: u64,
) -> (Vec<Record>, Option<String>) {
    let mut tables: HashMap<(String, String), Table<'_>> = HashMap::new();
    for row in rows {
        let key = if row.get("io_table").is_some() {
            (s(row, "io_schema"), s(row, "io_table"))
        } else if row.get("index_table").is_some() {
            (s(row, "index_schema"), s(row, "index_table"))
        } else if row.get("size_table").is_some() {
            (s(row, "size_schema"), s(row, "size_table"))
        } else {
            continue;
        };
        if !schemas.admits(&key.0) || !filter.admits(&format!("{}.{}", key.0, key.1)) {
            continue;
        }
        let table = tables.entry(key).or_default();
        if row.get("io_table").is_some() {
            table.io = Some(row);
        } else if row.get("index_table").is_some() {
            table.indexes.push(row);
        } else {
            table.size = Some(row);
        }
    }
    let mut keys: Vec<&(String, String)> = tables.keys().collect();
    keys.sort();
    let rank = |value: fn(&Table<'_>) -> f64| {
        let mut order = keys.clone();
        order.sort_by(|a, b| value(&tables[*b]).total_cmp(&value(&tables[*a])).then_with(|| a.cmp(b)));
        order.truncate(bounds.top);
        order
    };
    let mut chosen = rank(|t| t.bytes());
    for key in rank(|t| t.waits()) {
        if !chosen.contains(&key) {
            chosen.push(key);
        }
    }
    let mut capped = Vec::new();
    let mut omitted_tables = keys.len() - chosen.len();
    if chosen.len() > bounds.max_tables {
        omitted_tables += chosen.len() - bounds.max_tables;
        capped.push(format!("max_tables ({}) reached", bounds.max_tables));
        chosen.truncate(bounds.max_tables);
    }
    let mut out = Vec::new();
    let mut indexes_left = bounds.max_indexes;
    let mut omitted_indexes = 0;
    let chosen: HashSet<&(String, String)> = chosen.into_iter().collect();
    for key in keys.iter().filter(|k| chosen.contains(*k)) {
        let table = &tables[*key];
        let named = |extra: &[(&str, String)]| {
            let mut a = Map::with_capacity(4);
            for (k, v) in extra {
                a.insert(*k, Value::Str(v.clone()));
            }
            a.insert("table", Value::Str(key.1.clone()));
            a.insert("schema", Value::Str(key.0.clone()));
            a
        };
        let io_points = |out: &mut Vec<Record>, row: &Row, count: &Metric, time: &Metric, index: Option<String>| {
            for operation in ["delete", "fetch", "insert", "update"] {
                let mut extra = vec![("operation", operation.to_string())];
                if let Some(index) = &index {
                    extra.push(("index", index.clone()));
                }
                if let Some(v) = number(row, &format!("count_{operation}")) {
                    out.push(count.point(v, start, now, named(&extra)));
                }
                if let Some(v) = number(row, &format!("time_{operation}")) {
                    out.push(time.point(v, start, now, named(&extra)));
                }
            }
        };
        if let Some(row) = table.io {
            io_points(&mut out, row, &TABLE_IO_COUNT, &TABLE_IO_TIME, None);
        }
        for row in &table.indexes {
            if indexes_left == 0 {
                omitted_indexes += 1;
                continue;
            }
            indexes_left -= 1;
            io_points(&mut out, row, &INDEX_IO_COUNT, &INDEX_IO_TIME, Some(s(row, "index_name")));
        }
        if let Some(row) = table.size {
            for (kind, column) in [("data", "data_length"), ("index", "index_length")] {
                if let Some(v) = number(row, column) {
                    out.push(TABLE_SIZE.point(v, start, now, named(&[("kind", kind.to_string())])));
                }
            }
            if let Some(v) = number(row, "table_rows") {
                out.push(TABLE_ROWS.point(v, start, now, named(&[])));
            }
            if let Some(v) = number(row, "avg_row_length") {
                out.push(TABLE_ROW_LENGTH.point(v, start, now, named(&[])));
            }
        }
    }
    if omitted_indexes > 0 {
        capped.push(format!("max_indexes ({}) reached", bounds.max_indexes));
    }
    for (kind, n) in [("table", omitted_tables), ("index", omitted_indexes)] {
        let mut a = Map::new();
        a.insert("kind", Value::Str(kind.into()));
        out.push(OMITTED.point(n as f64, start, now, a));
    }
    (out, (!capped.is_empty()).then(|| capped.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, Value)]) -> Row {
        let mut r = Map::new();
        for (k, v) in pairs {
            r.insert(*k, v.clone());
        }
        r
    }

    fn io(schema: &str, table: &str, fetches: i64) -> Row {
        row(&[
            ("io_schema", Value::Str(schema.into())),
            ("io_table", Value::Str(table.into())),
            ("count_fetch", Value::Int(fetches)),
            ("time_fetch", Value::Int(fetches * 10)),
        ])
    }

    fn size(schema: &str, table: &str, bytes: i64) -> Row {
        row(&[("size_schema", Value::Str(schema.into())), ("size_table", Value::Str(table.into())), ("data_length", Value::Int(bytes))])
    }

    #[test]
    fn the_biggest_and_the_busiest_tables_are_reported_the_rest_counted() {
        let rows = vec![io("shop", "orders", 500), io("shop", "tiny", 1), size("shop", "archive", 1 << 30), size("shop", "tiny", 10)];
        let everything = NameFilter::new("tables", &[], &[]).expect("valid");
        let bounds = Bounds { top: 1, max_tables: 10, max_indexes: 10 };
        let (out, capped) = records(&rows, &everything, &everything, &bounds, 1, 2);
        let tables: HashSet<String> = out
            .iter()
            .filter_map(|r| match r {
                Record::Metric(m) if m.name != OMITTED.name => m.attributes.get("table").map(ToString::to_string),
                _ => None,
            })
            .collect();
        assert_eq!(tables, ["orders", "archive"].into_iter().map(String::from).collect());
        assert!(capped.is_none());
        for r in &out {
            assert!(crate::catalogue::conformance(Engine::MySql, &Map::new(), r).is_empty(), "{r:?}");
        }
    }
}
