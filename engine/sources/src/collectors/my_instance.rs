//! `mysql.instance`: server health in the contrib `mysqlreceiver`'s data
//! model, from `SHOW GLOBAL STATUS` (InnoDB buffer pool, data and log
//! operations, row locks, handlers, threads, connections and their errors,
//! temporary resources, sorts, joins, commands, client network I/O, …),
//! the configured buffer pool size, and on a replica its replication
//! status (`SHOW REPLICA STATUS` on MySQL 8.0.22+, `SHOW SLAVE STATUS` on
//! MariaDB and older MySQL; it needs `REPLICATION CLIENT` / `SLAVE
//! MONITOR`, and without it only that part fails).
//!
//! One resource per server, as the receiver sends it: `mysql.instance.endpoint`
//! is what New Relic's MySQL entity is keyed by. A status variable the
//! server does not have (MariaDB has no `Innodb_rows_*`, no
//! `Innodb_os_log_fsyncs`, no `Locked_connects`; only MySQL with the X
//! plugin has `Mysqlx_*`) is no point, never a zero.

use std::time::Duration;

use dbintel_core::record::Record;
use dbintel_core::BoxFuture;
use dbintel_stdlib::{Map, Value};

use super::optional::OptionalParts;
use crate::catalogue::{attr, Attr, Declaration, Instrument as I, Level, Metric, Origin as O};
use crate::collector::{Collector, Unreplayable};
use crate::mysql::{MyServer, MyTarget};
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

/// Status variables, lower-cased, and the points they make: the metric
/// and, for metrics with an attribute, its name and value.
type Source = (&'static str, &'static Metric, Option<(&'static str, &'static str)>);

macro_rules! metrics {
    ($( $id:ident = $name:literal, $unit:literal, $instrument:ident, $origin:ident, $description:literal,
        [ $( $attr:literal : [ $( $value:literal ),* ] ),* ] ; )*) => {
        $( pub const $id: Metric = m($name, $unit, I::$instrument, &[ $( attr($attr, &[ $( $value ),* ]) ),* ], O::$origin, $description); )*
        const METRICS: &[Metric] = &[ $( $id ),* ];
    };
}

metrics! {
    BUFFER_POOL_DATA_PAGES = "mysql.buffer_pool.data_pages", "1", UpDownCounter, Contrib, "buffer pool data pages, dirty and clean", ["status": ["dirty", "clean"]];
    BUFFER_POOL_LIMIT = "mysql.buffer_pool.limit", "By", UpDownCounter, Contrib, "configured buffer pool size (innodb_buffer_pool_size)", [];
    BUFFER_POOL_OPERATIONS = "mysql.buffer_pool.operations", "1", Counter, Contrib, "buffer pool operations", ["operation": ["read_ahead_rnd", "read_ahead", "read_ahead_evicted", "read_requests", "reads", "wait_free", "write_requests"]];
    BUFFER_POOL_PAGE_FLUSHES = "mysql.buffer_pool.page_flushes", "1", Counter, Contrib, "buffer pool page flush requests", [];
    BUFFER_POOL_PAGES = "mysql.buffer_pool.pages", "1", UpDownCounter, Contrib, "buffer pool pages", ["kind": ["data", "free", "misc", "total"]];
    BUFFER_POOL_USAGE = "mysql.buffer_pool.usage", "By", UpDownCounter, Contrib, "bytes in the buffer pool, dirty and clean", ["status": ["dirty", "clean"]];
    CLIENT_NETWORK_IO = "mysql.client.network.io", "By", Counter, ContribOptional, "bytes received from and sent to clients", ["kind": ["received", "sent"]];
    COMMANDS = "mysql.commands", "1", Counter, ContribOptional, "statements executed, by command", ["command": ["delete", "delete_multi", "insert", "select", "update", "update_multi", "alter_table", "create_index", "create_table", "optimize"]];
    CONNECTION_COUNT = "mysql.connection.count", "1", Counter, ContribOptional, "connection attempts", [];
    CONNECTION_ERRORS = "mysql.connection.errors", "1", Counter, ContribOptional, "connection errors", ["error": ["accept", "internal", "max_connections", "peer_address", "select", "tcpwrap", "aborted", "aborted_clients", "locked"]];
    DOUBLE_WRITES = "mysql.double_writes", "1", Counter, Contrib, "doublewrite buffer writes", ["kind": ["pages_written", "writes"]];
    HANDLERS = "mysql.handlers", "1", Counter, Contrib, "handler requests", ["kind": ["commit", "delete", "discover", "external_lock", "mrr_init", "prepare", "read_first", "read_key", "read_last", "read_next", "read_prev", "read_rnd", "read_rnd_next", "rollback", "savepoint", "savepoint_rollback", "update", "write"]];
    JOINS = "mysql.joins", "1", Counter, ContribOptional, "joins that scan", ["kind": ["full", "full_range", "range", "range_check", "scan"]];
    LOCKS = "mysql.locks", "1", Counter, Contrib, "table locks, immediate and waited for", ["kind": ["immediate", "waited"]];
    LOG_OPERATIONS = "mysql.log_operations", "1", Counter, Contrib, "InnoDB log operations", ["operation": ["waits", "write_requests", "writes", "fsyncs"]];
    MAX_USED_CONNECTIONS = "mysql.max_used_connections", "1", UpDownCounter, ContribOptional, "most connections in use at once since the start", [];
    MYSQLX_CONNECTIONS = "mysql.mysqlx_connections", "1", Counter, Contrib, "X plugin connections (MySQL)", ["status": ["accepted", "closed", "rejected"]];
    MYSQLX_WORKER_THREADS = "mysql.mysqlx_worker_threads", "1", UpDownCounter, ContribOptional, "X plugin worker threads (MySQL)", ["kind": ["available", "active"]];
    OPENED_RESOURCES = "mysql.opened_resources", "1", Counter, Contrib, "files, table definitions and tables opened", ["kind": ["file", "table_definition", "table"]];
    OPERATIONS = "mysql.operations", "1", Counter, Contrib, "InnoDB data operations", ["operation": ["fsyncs", "reads", "writes"]];
    PAGE_OPERATIONS = "mysql.page_operations", "1", Counter, Contrib, "InnoDB pages created, read, written", ["operation": ["created", "read", "written"]];
    PREPARED_STATEMENTS = "mysql.prepared_statements", "1", Counter, Contrib, "prepared-statement commands", ["command": ["execute", "close", "fetch", "prepare", "reset", "send_long_data"]];
    QUERY_CLIENT_COUNT = "mysql.query.client.count", "1", Counter, ContribOptional, "statements sent by clients (Questions)", [];
    QUERY_COUNT = "mysql.query.count", "1", Counter, ContribOptional, "statements executed (Queries)", [];
    QUERY_SLOW_COUNT = "mysql.query.slow.count", "1", Counter, ContribOptional, "slow queries", [];
    ROW_LOCKS = "mysql.row_locks", "1", Counter, Contrib, "InnoDB row lock waits, and their time in ms", ["kind": ["waits", "time"]];
    ROW_OPERATIONS = "mysql.row_operations", "1", Counter, Contrib, "InnoDB row operations (MySQL; MariaDB has no source)", ["operation": ["deleted", "inserted", "read", "updated"]];
    SORTS = "mysql.sorts", "1", Counter, Contrib, "sorts", ["kind": ["merge_passes", "range", "rows", "scan"]];
    TABLE_OPEN_CACHE = "mysql.table_open_cache", "1", Counter, ContribOptional, "table open cache lookups", ["status": ["hit", "miss", "overflow"]];
    THREADS = "mysql.threads", "1", UpDownCounter, Contrib, "threads", ["kind": ["cached", "connected", "created", "running"]];
    TMP_RESOURCES = "mysql.tmp_resources", "1", Counter, Contrib, "temporary tables and files created", ["resource": ["disk_tables", "files", "tables"]];
    UPTIME = "mysql.uptime", "s", Counter, Contrib, "seconds since the server started", [];
    REPLICA_TIME_BEHIND_SOURCE = "mysql.replica.time_behind_source", "s", UpDownCounter, ContribOptional, "seconds the replica is behind its source", [];
    REPLICA_SQL_DELAY = "mysql.replica.sql_delay", "s", UpDownCounter, ContribOptional, "configured replication delay", [];
}

pub const DECLARATION: Declaration = Declaration { collector: "instance", engine: Engine::MySql, metrics: METRICS, events: &[] };

/// Status variables (lower case) to points.
const STATUS: &[Source] = &[
    ("innodb_buffer_pool_read_ahead_rnd", &BUFFER_POOL_OPERATIONS, Some(("operation", "read_ahead_rnd"))),
    ("innodb_buffer_pool_read_ahead", &BUFFER_POOL_OPERATIONS, Some(("operation", "read_ahead"))),
    ("innodb_buffer_pool_read_ahead_evicted", &BUFFER_POOL_OPERATIONS, Some(("operation", "read_ahead_evicted"))),
    ("innodb_buffer_pool_read_requests", &BUFFER_POOL_OPERATIONS, Some(("operation", "read_requests"))),
    ("innodb_buffer_pool_reads", &BUFFER_POOL_OPERATIONS, Some(("operation", "reads"))),
    ("innodb_buffer_pool_wait_free", &BUFFER_POOL_OPERATIONS, Some(("operation", "wait_free"))),
    ("innodb_buffer_pool_write_requests", &BUFFER_POOL_OPERATIONS, Some(("operation", "write_requests"))),
    ("innodb_buffer_pool_pages_flushed", &BUFFER_POOL_PAGE_FLUSHES, None),
    ("innodb_buffer_pool_pages_data", &BUFFER_POOL_PAGES, Some(("kind", "data"))),
    ("innodb_buffer_pool_pages_free", &BUFFER_POOL_PAGES, Some(("kind", "free"))),
    ("innodb_buffer_pool_pages_misc", &BUFFER_POOL_PAGES, Some(("kind", "misc"))),
    ("innodb_buffer_pool_pages_total", &BUFFER_POOL_PAGES, Some(("kind", "total"))),
    ("bytes_received", &CLIENT_NETWORK_IO, Some(("kind", "received"))),
    ("bytes_sent", &CLIENT_NETWORK_IO, Some(("kind", "sent"))),
    ("com_delete", &COMMANDS, Some(("command", "delete"))),
    ("com_delete_multi", &COMMANDS, Some(("command", "delete_multi"))),
    ("com_insert", &COMMANDS, Some(("command", "insert"))),
    ("com_select", &COMMANDS, Some(("command", "select"))),
    ("com_update", &COMMANDS, Some(("command", "update"))),
    ("com_update_multi", &COMMANDS, Some(("command", "update_multi"))),
    ("com_alter_table", &COMMANDS, Some(("command", "alter_table"))),
    ("com_create_index", &COMMANDS, Some(("command", "create_index"))),
    ("com_create_table", &COMMANDS, Some(("command", "create_table"))),
    ("com_optimize", &COMMANDS, Some(("command", "optimize"))),
    ("connections", &CONNECTION_COUNT, None),
    ("connection_errors_accept", &CONNECTION_ERRORS, Some(("error", "accept"))),
    ("connection_errors_internal", &CONNECTION_ERRORS, Some(("error", "internal"))),
    ("connection_errors_max_connections", &CONNECTION_ERRORS, Some(("error", "max_connections"))),
    ("connection_errors_peer_address", &CONNECTION_ERRORS, Some(("error", "peer_address"))),
    ("connection_errors_select", &CONNECTION_ERRORS, Some(("error", "select"))),
    ("connection_errors_tcpwrap", &CONNECTION_ERRORS, Some(("error", "tcpwrap"))),
    ("aborted_connects", &CONNECTION_ERRORS, Some(("error", "aborted"))),
    ("aborted_clients", &CONNECTION_ERRORS, Some(("error", "aborted_clients"))),
    ("locked_connects", &CONNECTION_ERRORS, Some(("error", "locked"))),
    ("innodb_dblwr_pages_written", &DOUBLE_WRITES, Some(("kind", "pages_written"))),
    ("innodb_dblwr_writes", &DOUBLE_WRITES, Some(("kind", "writes"))),
    ("handler_commit", &HANDLERS, Some(("kind", "commit"))),
    ("handler_delete", &HANDLERS, Some(("kind", "delete"))),
    ("handler_discover", &HANDLERS, Some(("kind", "discover"))),
    ("handler_external_lock", &HANDLERS, Some(("kind", "external_lock"))),
    ("handler_mrr_init", &HANDLERS, Some(("kind", "mrr_init"))),
    ("handler_prepare", &HANDLERS, Some(("kind", "prepare"))),
    ("handler_read_first", &HANDLERS, Some(("kind", "read_first"))),
    ("handler_read_key", &HANDLERS, Some(("kind", "read_key"))),
    ("handler_read_last", &HANDLERS, Some(("kind", "read_last"))),
    ("handler_read_next", &HANDLERS, Some(("kind", "read_next"))),
    ("handler_read_prev", &HANDLERS, Some(("kind", "read_prev"))),
    ("handler_read_rnd", &HANDLERS, Some(("kind", "read_rnd"))),
    ("handler_read_rnd_next", &HANDLERS, Some(("kind", "read_rnd_next"))),
    ("handler_rollback", &HANDLERS, Some(("kind", "rollback"))),
    ("handler_savepoint", &HANDLERS, Some(("kind", "savepoint"))),
    ("handler_savepoint_rollback", &HANDLERS, Some(("kind", "savepoint_rollback"))),
    ("handler_update", &HANDLERS, Some(("kind", "update"))),
    ("handler_write", &HANDLERS, Some(("kind", "write"))),
    ("select_full_join", &JOINS, Some(("kind", "full"))),
    ("select_full_range_join", &JOINS, Some(("kind", "full_range"))),
    ("select_range", &JOINS, Some(("kind", "range"))),
    ("select_range_check", &JOINS, Some(("kind", "range_check"))),
    ("select_scan", &JOINS, Some(("kind", "scan"))),
    ("table_locks_immediate", &LOCKS, Some(("kind", "immediate"))),
    ("table_locks_waited", &LOCKS, Some(("kind", "waited"))),
    ("innodb_log_waits", &LOG_OPERATIONS, Some(("operation", "waits"))),
    ("innodb_log_write_requests", &LOG_OPERATIONS, Some(("operation", "write_requests"))),
    ("innodb_log_writes", &LOG_OPERATIONS, Some(("operation", "writes"))),
    ("innodb_os_log_fsyncs", &LOG_OPERATIONS, Some(("operation", "fsyncs"))),
    ("max_used_connections", &MAX_USED_CONNECTIONS, None),
    ("mysqlx_connections_accepted", &MYSQLX_CONNECTIONS, Some(("status", "accepted"))),
    ("mysqlx_connections_closed", &MYSQLX_CONNECTIONS, Some(("status", "closed"))),
    ("mysqlx_connections_rejected", &MYSQLX_CONNECTIONS, Some(("status", "rejected"))),
    ("mysqlx_worker_threads", &MYSQLX_WORKER_THREADS, Some(("kind", "available"))),
    ("mysqlx_worker_threads_active", &MYSQLX_WORKER_THREADS, Some(("kind", "active"))),
    ("opened_files", &OPENED_RESOURCES, Some(("kind", "file"))),
    ("opened_table_definitions", &OPENED_RESOURCES, Some(("kind", "table_definition"))),
    ("opened_tables", &OPENED_RESOURCES, Some(("kind", "table"))),
    ("innodb_data_fsyncs", &OPERATIONS, Some(("operation", "fsyncs"))),
    ("innodb_data_reads", &OPERATIONS, Some(("operation", "reads"))),
    ("innodb_data_writes", &OPERATIONS, Some(("operation", "writes"))),
    ("innodb_pages_created", &PAGE_OPERATIONS, Some(("operation", "created"))),
    ("innodb_pages_read", &PAGE_OPERATIONS, Some(("operation", "read"))),
    ("innodb_pages_written", &PAGE_OPERATIONS, Some(("operation", "written"))),
    ("com_stmt_execute", &PREPARED_STATEMENTS, Some(("command", "execute"))),
    ("com_stmt_close", &PREPARED_STATEMENTS, Some(("command", "close"))),
    ("com_stmt_fetch", &PREPARED_STATEMENTS, Some(("command", "fetch"))),
    ("com_stmt_prepare", &PREPARED_STATEMENTS, Some(("command", "prepare"))),
    ("com_stmt_reset", &PREPARED_STATEMENTS, Some(("command", "reset"))),
    ("com_stmt_send_long_data", &PREPARED_STATEMENTS, Some(("command", "send_long_data"))),
    ("questions", &QUERY_CLIENT_COUNT, None),
    ("queries", &QUERY_COUNT, None),
    ("slow_queries", &QUERY_SLOW_COUNT, None),
    ("innodb_row_lock_waits", &ROW_LOCKS, Some(("kind", "waits"))),
    ("innodb_row_lock_time", &ROW_LOCKS, Some(("kind", "time"))),
    ("innodb_rows_deleted", &ROW_OPERATIONS, Some(("operation", "deleted"))),
    ("innodb_rows_inserted", &ROW_OPERATIONS, Some(("operation", "inserted"))),
    ("innodb_rows_read", &ROW_OPERATIONS, Some(("operation", "read"))),
    ("innodb_rows_updated", &ROW_OPERATIONS, Some(("operation", "updated"))),
    ("sort_merge_passes", &SORTS, Some(("kind", "merge_passes"))),
    ("sort_range", &SORTS, Some(("kind", "range"))),
    ("sort_rows", &SORTS, Some(("kind", "rows"))),
    ("sort_scan", &SORTS, Some(("kind", "scan"))),
    ("table_open_cache_hits", &TABLE_OPEN_CACHE, Some(("status", "hit"))),
    ("table_open_cache_misses", &TABLE_OPEN_CACHE, Some(("status", "miss"))),
    ("table_open_cache_overflows", &TABLE_OPEN_CACHE, Some(("status", "overflow"))),
    ("threads_cached", &THREADS, Some(("kind", "cached"))),
    ("threads_connected", &THREADS, Some(("kind", "connected"))),
    ("threads_created", &THREADS, Some(("kind", "created"))),
    ("threads_running", &THREADS, Some(("kind", "running"))),
    ("created_tmp_disk_tables", &TMP_RESOURCES, Some(("resource", "disk_tables"))),
    ("created_tmp_files", &TMP_RESOURCES, Some(("resource", "files"))),
    ("created_tmp_tables", &TMP_RESOURCES, Some(("resource", "tables"))),
    ("uptime", &UPTIME, None),
];

/// Global status as name/value rows, plus the buffer pool's configured
/// size (bytes; `information_schema.innodb_metrics` says pages on MariaDB).
pub const STATUS_SQL: &str = "SHOW GLOBAL STATUS";
pub const BUFFER_POOL_SIZE_SQL: &str = "SELECT 'innodb_buffer_pool_size' AS Variable_name, @@innodb_buffer_pool_size AS Value";

/// The replica status statement for this server.
pub fn replica_status_sql(server: MyServer) -> &'static str {
    if server.mariadb || server.version < 80022 {
        "SHOW SLAVE STATUS"
    } else {
        "SHOW REPLICA STATUS"
    }
}

pub struct MyInstance {
    interval: Duration,
    started: Option<u64>,
    parts: OptionalParts,
}

impl MyInstance {
    pub fn new(interval: Duration, config_retry: Duration) -> MyInstance {
        MyInstance { interval, started: None, parts: OptionalParts::new(config_retry) }
    }

    async fn fetch(&mut self, target: &MyTarget) -> Result<Vec<Row>, SourceError> {
        let mut rows = target.query("global status", STATUS_SQL).await?;
        rows.extend(target.query("buffer pool size", BUFFER_POOL_SIZE_SQL).await?);
        if self.parts.due("replica status") {
            let found = target.query("replica status", replica_status_sql(target.server)).await;
            rows.extend(self.parts.keep("replica status", found)?.unwrap_or_default());
        }
        Ok(rows)
    }

    fn map(&mut self, rows: &[Row], now: u64) -> Vec<Record> {
        let start = *self.started.get_or_insert(now);
        records(rows, start, now)
    }
}

impl Collector for MyInstance {
    fn scope(&self) -> crate::collector::Scope {
        crate::collector::Scope::Server
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn scrape<'a>(&'a mut self, target: &'a Target, now: u64) -> BoxFuture<'a, Result<Vec<Record>, SourceError>> {
        Box::pin(async move {
            match target {
                Target::My(my) => {
                    let rows = self.fetch(my).await?;
                    Ok(self.map(&rows, now))
                }
                Target::Pg(_) => Err(crate::setup_error("instance", "a MySQL collector on a PostgreSQL target".into())),
            }
        })
    }

    /// Recorded rows: `Variable_name`/`Value` pairs of global status (and
    /// `innodb_buffer_pool_size`), and replica status rows.
    fn replay(&mut self, rows: Vec<Row>, now: u64) -> Result<Vec<Record>, Unreplayable> {
        Ok(self.map(&rows, now))
    }

    fn take_soft_errors(&mut self) -> Vec<SourceError> {
        self.parts.take_errors()
    }
}

fn column<'r>(row: &'r Row, names: &[&str]) -> Option<&'r Value> {
    row.iter().find(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n))).map(|(_, v)| v).filter(|v| !v.is_nil())
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Double(d) => Some(*d),
        Value::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn one(key: &str, value: &str) -> Map {
    let mut map = Map::with_capacity(1);
    map.insert(key, Value::Str(value.into()));
    map
}

/// Status rows (`Variable_name`, `Value`, any case) and replica status
/// rows (`Seconds_Behind_Source` / `_Master`, `SQL_Delay`) to points.
pub fn records(rows: &[Row], start: u64, now: u64) -> Vec<Record> {
    let mut status: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for row in rows {
        if let (Some(name), Some(value)) = (column(row, &["variable_name", "name"]), column(row, &["value"])) {
            if let Some(v) = as_number(value) {
                status.insert(name.to_string().to_ascii_lowercase(), v);
            }
            continue;
        }
        // a replica status row; NULL while the SQL thread is stopped
        if let Some(behind) = column(row, &["seconds_behind_source", "seconds_behind_master"]).and_then(as_number) {
            out.push(REPLICA_TIME_BEHIND_SOURCE.point(behind, start, now, Map::new()));
        }
        if let Some(delay) = column(row, &["sql_delay"]).and_then(as_number) {
            out.push(REPLICA_SQL_DELAY.point(delay, start, now, Map::new()));
        }
    }
    for (variable, metric, attribute) in STATUS {
        if let Some(v) = status.get(*variable) {
            let attributes = attribute.map_or_else(Map::new, |(k, v)| one(k, v));
            out.push(metric.point(*v, start, now, attributes));
        }
    }
    // clean = data - dirty, as the receiver computes them
    let pairs = [
        (&BUFFER_POOL_DATA_PAGES, "innodb_buffer_pool_pages_data", "innodb_buffer_pool_pages_dirty"),
        (&BUFFER_POOL_USAGE, "innodb_buffer_pool_bytes_data", "innodb_buffer_pool_bytes_dirty"),
    ];
    for (metric, data, dirty) in pairs {
        if let (Some(data), Some(dirty)) = (status.get(data), status.get(dirty)) {
            out.push(metric.point(*dirty, start, now, one("status", "dirty")));
            out.push(metric.point((data - dirty).max(0.0), start, now, one("status", "clean")));
        }
    }
    if let Some(size) = status.get("innodb_buffer_pool_size") {
        out.push(BUFFER_POOL_LIMIT.point(*size, start, now, Map::new()));
    }
    out
}

/// `number` for replica rows read by other collectors.
pub fn seconds_behind(row: &Row) -> Option<f64> {
    number(row, "Seconds_Behind_Source").or_else(|| number(row, "Seconds_Behind_Master"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, value: &str) -> Row {
        let mut r = Map::new();
        r.insert("Variable_name", Value::Str(name.into()));
        r.insert("Value", Value::Str(value.into()));
        r
    }

    #[test]
    fn status_variables_become_contrib_points_and_missing_ones_none() {
        let rows = vec![
            status("Threads_connected", "4"),
            status("Innodb_buffer_pool_pages_data", "100"),
            status("Innodb_buffer_pool_pages_dirty", "30"),
            status("Innodb_rows_read", "77"),
            status("Uptime", "12"),
            status("innodb_buffer_pool_size", "134217728"),
        ];
        let out = records(&rows, 3, 9);
        let value = |name: &str, key: &str, v: &str| {
            out.iter().find_map(|r| match r {
                Record::Metric(m) if m.name == name && (key.is_empty() || m.attributes.get(key).and_then(Value::as_str) == Some(v)) => {
                    Some(m.value)
                }
                _ => None,
            })
        };
        use dbintel_core::record::Number::Int;
        assert_eq!(value("mysql.threads", "kind", "connected"), Some(Int(4)));
        assert_eq!(value("mysql.buffer_pool.data_pages", "status", "clean"), Some(Int(70)));
        assert_eq!(value("mysql.row_operations", "operation", "read"), Some(Int(77)));
        assert_eq!(value("mysql.buffer_pool.limit", "", ""), Some(Int(134217728)));
        assert_eq!(value("mysql.threads", "kind", "running"), None, "not in the rows: no point, not a zero");
        for r in &out {
            assert!(crate::catalogue::conformance(Engine::MySql, &Map::new(), r).is_empty(), "{r:?}");
        }
    }

    #[test]
    fn replica_rows_of_either_flavour_give_the_lag() {
        let mut mariadb = Map::new();
        mariadb.insert("Seconds_Behind_Master", Value::Int(5));
        mariadb.insert("SQL_Delay", Value::Int(0));
        let mut mysql = Map::new();
        mysql.insert("Seconds_Behind_Source", Value::Int(7));
        for (row, lag) in [(mariadb, 5.0), (mysql, 7.0)] {
            assert_eq!(seconds_behind(&row), Some(lag));
            let out = records(&[row], 1, 2);
            assert!(out.iter().any(|r| matches!(r, Record::Metric(m) if m.name == "mysql.replica.time_behind_source")));
        }
        let server = MyServer { mariadb: false, version: 80036 };
        assert_eq!(replica_status_sql(server), "SHOW REPLICA STATUS");
        assert_eq!(replica_status_sql(MyServer { mariadb: true, version: 101106 }), "SHOW SLAVE STATUS");
        assert_eq!(replica_status_sql(MyServer { mariadb: false, version: 80021 }), "SHOW SLAVE STATUS");
    }
}
