//! `postgres.instance`: the server-wide views, once per server, in the
//! contrib `postgresqlreceiver`'s data model.
//!
//! - `pg_stat_database` (with `pg_stat_database_conflicts`): per database,
//!   on that database's resource — backends, commits, rollbacks,
//!   deadlocks, temp files and bytes, tuples, blocks, recovery conflicts;
//!   sizes (`pg_database_size`, which walks the database's files) only
//!   every `sizes_every`;
//! - the server: `max_connections`, the number of databases, WAL archive
//!   age; bgwriter and checkpointer counters (`pg_stat_checkpointer` from
//!   17, where the checkpoint columns left `pg_stat_bgwriter`); locks by
//!   relation, mode and type;
//! - replication: per standby (`pg_stat_replication`) the bytes not yet
//!   replayed and the write/flush/replay delays; the WAL each slot
//!   retains; on a standby, its own replay lag.
//!
//! Every database of the server is covered by this one connection; the
//! per-table views need a connection per database (`tables.rs`).

use std::time::{Duration, Instant};

use dbintel_core::record::Record;
use dbintel_core::BoxFuture;
use dbintel_stdlib::{Map, Value};

use super::optional::OptionalParts;
use crate::catalogue::{attr, Declaration, Instrument as I, Level as L, Metric, Origin as O, DATABASE_NAME};
use crate::collector::{Collector, Unreplayable};
use crate::postgres::PgTarget;
use crate::rows::{number, Row};
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

const fn double(metric: Metric) -> Metric {
    Metric { double: true, ..metric }
}

pub const BACKENDS: Metric = m("postgresql.backends", "1", I::UpDownCounter, L::Database, &[], O::Contrib, "backends connected");
pub const COMMITS: Metric = m("postgresql.commits", "1", I::Counter, L::Database, &[], O::Contrib, "transactions committed");
pub const ROLLBACKS: Metric = m("postgresql.rollbacks", "1", I::Counter, L::Database, &[], O::Contrib, "transactions rolled back");
pub const DEADLOCKS: Metric =
    m("postgresql.deadlocks", "{deadlock}", I::Counter, L::Database, &[], O::ContribOptional, "deadlocks detected");
pub const TEMP_FILES: Metric =
    m("postgresql.temp_files", "{temp_file}", I::Counter, L::Database, &[], O::ContribOptional, "temporary files created");
pub const TEMP_IO: Metric =
    m("postgresql.temp.io", "By", I::Counter, L::Database, &[], O::ContribOptional, "bytes written to temporary files");
pub const BLKS_HIT: Metric = m("postgresql.blks_hit", "{blks_hit}", I::Counter, L::Database, &[], O::ContribOptional, "buffer cache hits");
pub const BLKS_READ: Metric =
    m("postgresql.blks_read", "{blks_read}", I::Counter, L::Database, &[], O::ContribOptional, "blocks read from disk");
pub const TUP_RETURNED: Metric =
    m("postgresql.tup_returned", "{tup_returned}", I::Counter, L::Database, &[], O::ContribOptional, "rows returned by queries");
pub const TUP_FETCHED: Metric =
    m("postgresql.tup_fetched", "{tup_fetched}", I::Counter, L::Database, &[], O::ContribOptional, "rows fetched by queries");
pub const TUP_INSERTED: Metric =
    m("postgresql.tup_inserted", "{tup_inserted}", I::Counter, L::Database, &[], O::ContribOptional, "rows inserted");
pub const TUP_UPDATED: Metric =
    m("postgresql.tup_updated", "{tup_updated}", I::Counter, L::Database, &[], O::ContribOptional, "rows updated");
pub const TUP_DELETED: Metric =
    m("postgresql.tup_deleted", "{tup_deleted}", I::Counter, L::Database, &[], O::ContribOptional, "rows deleted");
pub const CONFLICTS: Metric = m(
    "postgresql.query.conflicts",
    "{query}",
    I::Counter,
    L::Database,
    &[attr("postgresql.conflict.type", &["tablespace", "lock", "snapshot", "bufferpin", "deadlock"])],
    O::ContribOptional,
    "queries cancelled by recovery conflicts (standbys)",
);
pub const DB_SIZE: Metric =
    m("postgresql.db_size", "By", I::UpDownCounter, L::Database, &[], O::Contrib, "database size (every sizes_every)");
pub const XID_AGE: Metric = m(
    "postgresql.database.xid_age",
    "{transaction}",
    I::Gauge,
    L::Database,
    &[],
    O::Dbintel,
    "age of the oldest unfrozen transaction id (wraparound at 2^31)",
);
pub const CONNECTION_MAX: Metric =
    m("postgresql.connection.max", "{connections}", I::Gauge, L::Instance, &[], O::Contrib, "max_connections");
pub const DATABASE_COUNT: Metric =
    m("postgresql.database.count", "{databases}", I::UpDownCounter, L::Instance, &[], O::Contrib, "databases (not templates)");
pub const WAL_AGE: Metric =
    m("postgresql.wal.age", "s", I::Gauge, L::Instance, &[], O::Contrib, "seconds since a WAL segment was last archived");
pub const BUFFERS_ALLOCATED: Metric =
    m("postgresql.bgwriter.buffers.allocated", "{buffers}", I::Counter, L::Instance, &[], O::Contrib, "buffers allocated");
pub const BUFFERS_WRITES: Metric = m(
    "postgresql.bgwriter.buffers.writes",
    "{buffers}",
    I::Counter,
    L::Instance,
    &[attr("source", &["backend", "backend_fsync", "checkpoints", "bgwriter"])],
    O::Contrib,
    "buffers written, by writer (backend and backend_fsync up to 16)",
);
pub const CHECKPOINTS: Metric = m(
    "postgresql.bgwriter.checkpoint.count",
    "{checkpoints}",
    I::Counter,
    L::Instance,
    &[attr("type", &["requested", "scheduled"])],
    O::Contrib,
    "checkpoints (pg_stat_checkpointer from 17)",
);
pub const CHECKPOINT_DURATION: Metric = double(m(
    "postgresql.bgwriter.duration",
    "ms",
    I::Counter,
    L::Instance,
    &[attr("type", &["sync", "write"])],
    O::Contrib,
    "time checkpoints spent writing and syncing",
));
pub const MAXWRITTEN: Metric =
    m("postgresql.bgwriter.maxwritten", "1", I::Counter, L::Instance, &[], O::Contrib, "bgwriter stops for writing too many buffers");
pub const LOCKS: Metric = m(
    "postgresql.database.locks",
    "{lock}",
    I::Gauge,
    L::Instance,
    &[attr("relation", &[]), attr("mode", &[]), attr("lock_type", &[])],
    O::ContribOptional,
    "locks held or awaited, by relation (this database's and shared ones; else empty), mode and type",
);
pub const DATA_DELAY: Metric = m(
    "postgresql.replication.data_delay",
    "By",
    I::Gauge,
    L::Instance,
    &[attr("replication_client", &[])],
    O::Contrib,
    "bytes a standby has not replayed yet",
);
pub const WAL_DELAY: Metric = double(m(
    "postgresql.wal.delay",
    "s",
    I::Gauge,
    L::Instance,
    &[attr("operation", &["flush", "replay", "write"]), attr("replication_client", &[])],
    O::ContribOptional,
    "standby write/flush/replay delay (0 when caught up)",
));
pub const WAL_BYTES: Metric =
    m("postgresql.wal.bytes", "By", I::Counter, L::Instance, &[], O::Dbintel, "WAL written since initdb (primary)");
pub const CHECKPOINT_AGE: Metric =
    double(m("postgresql.wal.checkpoint_age", "s", I::Gauge, L::Instance, &[], O::Dbintel, "seconds since the last checkpoint"));
pub const REPLICATION_LAG: Metric = double(m(
    "postgresql.replication.lag",
    "s",
    I::Gauge,
    L::Instance,
    &[],
    O::Dbintel,
    "on a standby: seconds behind the primary (0 when it has replayed all it received)",
));
pub const SLOT_RETAINED: Metric = m(
    "postgresql.replication.slot.retained",
    "By",
    I::Gauge,
    L::Instance,
    &[attr("slot_name", &[]), attr("slot_type", &["physical", "logical"]), attr("active", &["true", "false"])],
    O::Dbintel,
    "WAL a replication slot keeps from being recycled",
);

pub const DECLARATION: Declaration = Declaration {
    collector: "instance",
    engine: Engine::Postgres,
    metrics: &[
        BACKENDS,
        COMMITS,
        ROLLBACKS,
        DEADLOCKS,
        TEMP_FILES,
        TEMP_IO,
        BLKS_HIT,
        BLKS_READ,
        TUP_RETURNED,
        TUP_FETCHED,
        TUP_INSERTED,
        TUP_UPDATED,
        TUP_DELETED,
        CONFLICTS,
        DB_SIZE,
        XID_AGE,
        CONNECTION_MAX,
        DATABASE_COUNT,
        WAL_AGE,
        BUFFERS_ALLOCATED,
        BUFFERS_WRITES,
        CHECKPOINTS,
        CHECKPOINT_DURATION,
        MAXWRITTEN,
        LOCKS,
        DATA_DELAY,
        WAL_DELAY,
        WAL_BYTES,
        CHECKPOINT_AGE,
        REPLICATION_LAG,
        SLOT_RETAINED,
    ],
    events: &[],
};

/// Per database: statistics and conflicts; template databases left out.
pub const DATABASES_SQL: &str = "SELECT d.datname::text AS datname, d.numbackends::int8 AS backends, d.xact_commit::int8 AS commits,
        d.xact_rollback::int8 AS rollbacks, d.deadlocks::int8 AS deadlocks, d.temp_files::int8 AS temp_files,
        d.temp_bytes::int8 AS temp_bytes, d.blks_hit::int8 AS blks_hit, d.blks_read::int8 AS blks_read,
        d.tup_returned::int8 AS tup_returned, d.tup_fetched::int8 AS tup_fetched, d.tup_inserted::int8 AS tup_inserted,
        d.tup_updated::int8 AS tup_updated, d.tup_deleted::int8 AS tup_deleted, age(db.datfrozenxid)::int8 AS xid_age,
        c.confl_tablespace::int8 AS confl_tablespace, c.confl_lock::int8 AS confl_lock, c.confl_snapshot::int8 AS confl_snapshot,
        c.confl_bufferpin::int8 AS confl_bufferpin, c.confl_deadlock::int8 AS confl_deadlock
   FROM pg_stat_database d
   JOIN pg_database db ON db.oid = d.datid
   LEFT JOIN pg_stat_database_conflicts c ON c.datid = d.datid
  WHERE NOT db.datistemplate";

/// Database sizes, where the role may read them (CONNECT, or
/// pg_read_all_stats through pg_monitor).
pub const SIZES_SQL: &str = "SELECT datname::text AS size_of,
        CASE WHEN has_database_privilege(oid, 'CONNECT') OR pg_has_role('pg_read_all_stats', 'MEMBER')
             THEN pg_database_size(oid) END AS size_bytes
   FROM pg_database WHERE NOT datistemplate AND datallowconn";

/// The server: settings, counts, WAL position, archiver, and (standby) lag.
pub const SERVER_SQL: &str = "SELECT current_setting('max_connections')::int8 AS max_connections,
        (SELECT count(*) FROM pg_database WHERE NOT datistemplate)::int8 AS database_count,
        CASE WHEN NOT pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 END AS wal_bytes,
        CASE WHEN NOT pg_is_in_recovery() THEN NULL
             WHEN pg_last_wal_receive_lsn() IS NOT NULL AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
             ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END AS standby_lag,
        (SELECT extract(epoch FROM now() - last_archived_time)::int8 FROM pg_stat_archiver) AS wal_age";

/// bgwriter and checkpoints: PostgreSQL 17 moved the checkpoint counters
/// to `pg_stat_checkpointer` and dropped the backend writes.
pub fn bgwriter_sql(version: i64) -> &'static str {
    if version >= 170000 {
        "SELECT cp.num_requested::int8 AS checkpoints_req, cp.num_timed::int8 AS checkpoints_timed,
                cp.write_time::float8 AS checkpoint_write_time, cp.sync_time::float8 AS checkpoint_sync_time,
                cp.buffers_written::int8 AS buffers_checkpoint, bg.buffers_clean::int8 AS buffers_clean,
                NULL::int8 AS buffers_backend, NULL::int8 AS buffers_backend_fsync,
                bg.buffers_alloc::int8 AS buffers_alloc, bg.maxwritten_clean::int8 AS maxwritten_clean
           FROM pg_stat_bgwriter bg, pg_stat_checkpointer cp"
    } else {
        "SELECT checkpoints_req::int8 AS checkpoints_req, checkpoints_timed::int8 AS checkpoints_timed,
                checkpoint_write_time::float8 AS checkpoint_write_time, checkpoint_sync_time::float8 AS checkpoint_sync_time,
                buffers_checkpoint::int8 AS buffers_checkpoint, buffers_clean::int8 AS buffers_clean,
                buffers_backend::int8 AS buffers_backend, buffers_backend_fsync::int8 AS buffers_backend_fsync,
                buffers_alloc::int8 AS buffers_alloc, maxwritten_clean::int8 AS maxwritten_clean
           FROM pg_stat_bgwriter"
    }
}

/// Locks by relation, mode and type, dbintel's own sessions left out. A
/// relation is named only when it is this database's or shared (the oids
/// of other databases' relations mean nothing in this pg_class).
pub const LOCKS_SQL: &str =
    "SELECT COALESCE(c.relname::text, '') AS relation, l.mode AS mode, l.locktype AS lock_type, count(*)::int8 AS locks
   FROM pg_locks l
   LEFT JOIN pg_class c ON c.oid = l.relation
        AND l.database IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
  WHERE l.pid IS DISTINCT FROM pg_backend_pid()
    AND l.pid NOT IN (SELECT pid FROM pg_stat_activity WHERE application_name = 'dbintel')
  GROUP BY 1, 2, 3
  ORDER BY 4 DESC
  LIMIT 500";

/// Standbys of this server (a primary, or a cascading standby): bytes not
/// replayed and the delays. PostgreSQL resets a delay to NULL once the
/// standby has caught up and nothing is written: that is 0.
pub const STANDBYS_SQL: &str = "SELECT CAST(client_addr AS varchar) AS client_addr,
        pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, replay_lsn)::float8 AS data_delay,
        COALESCE(extract(epoch FROM write_lag), 0)::float8 AS write_delay,
        COALESCE(extract(epoch FROM flush_lag), 0)::float8 AS flush_delay,
        COALESCE(extract(epoch FROM replay_lag), 0)::float8 AS replay_delay
   FROM pg_stat_replication";

/// WAL each replication slot holds back.
pub const SLOTS_SQL: &str = "SELECT slot_name::text AS slot_name, slot_type, active,
        pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, restart_lsn)::float8 AS retained
   FROM pg_replication_slots WHERE restart_lsn IS NOT NULL";

/// Seconds since the last checkpoint (pg_control_checkpoint needs
/// pg_monitor; the rest does not).
pub const CHECKPOINT_AGE_SQL: &str =
    "SELECT extract(epoch FROM now() - checkpoint_time)::float8 AS checkpoint_age FROM pg_control_checkpoint()";

pub struct PgInstance {
    interval: Duration,
    sizes_every: Duration,
    sizes_read: Option<Instant>,
    /// When the cumulative sums' counting began, for their start time.
    started: Option<u64>,
    parts: OptionalParts,
}

impl PgInstance {
    pub fn new(interval: Duration, sizes_every: Duration, config_retry: Duration) -> PgInstance {
        PgInstance { interval, sizes_every, sizes_read: None, started: None, parts: OptionalParts::new(config_retry) }
    }

    /// The rows of every query; each kind of row says what it is by its
    /// columns (see [`records`]).
    async fn fetch(&mut self, target: &PgTarget) -> Result<Vec<Row>, SourceError> {
        let mut rows = target.query("pg_stat_database", DATABASES_SQL).await?;
        rows.extend(target.query("server", SERVER_SQL).await?);
        rows.extend(target.query("bgwriter", bgwriter_sql(target.version())).await?);
        rows.extend(target.query("locks", LOCKS_SQL).await?);
        rows.extend(target.query("pg_stat_replication", STANDBYS_SQL).await?);
        rows.extend(target.query("replication slots", SLOTS_SQL).await?);
        if self.sizes_read.is_none_or(|at| at.elapsed() >= self.sizes_every) {
            rows.extend(target.query("database sizes", SIZES_SQL).await?);
            self.sizes_read = Some(Instant::now());
        }
        if self.parts.due("checkpoint age") {
            let found = target.query("checkpoint age", CHECKPOINT_AGE_SQL).await;
            rows.extend(self.parts.keep("checkpoint age", found)?.unwrap_or_default());
        }
        Ok(rows)
    }

    fn map(&mut self, rows: &[Row], now: u64) -> Vec<Record> {
        let start = *self.started.get_or_insert(now);
        records(rows, start, now)
    }
}

impl Collector for PgInstance {
    fn scope(&self) -> crate::collector::Scope {
        crate::collector::Scope::Server
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn scrape<'a>(&'a mut self, target: &'a Target, now: u64) -> BoxFuture<'a, Result<Vec<Record>, SourceError>> {
        Box::pin(async move {
            match target {
                Target::Pg(pg) => {
                    let rows = self.fetch(pg).await?;
                    Ok(self.map(&rows, now))
                }
                Target::My(_) => Err(crate::setup_error("instance", "a PostgreSQL collector on a MySQL target".into())),
            }
        })
    }

    /// Recorded rows of any of the queries above, mixed: each row is
    /// recognised by its columns.
    fn replay(&mut self, rows: Vec<Row>, now: u64) -> Result<Vec<Record>, Unreplayable> {
        Ok(self.map(&rows, now))
    }

    fn take_soft_errors(&mut self) -> Vec<SourceError> {
        self.parts.take_errors()
    }
}

fn with(pairs: &[(&str, Value)]) -> Map {
    let mut map = Map::with_capacity(pairs.len());
    for (k, v) in pairs {
        map.insert(*k, v.clone());
    }
    map
}

fn text(row: &Row, column: &str) -> Value {
    match row.get(column) {
        None | Some(Value::Nil) => Value::Str(String::new()),
        Some(Value::Str(s)) => Value::Str(s.clone()),
        Some(v) => Value::Str(v.to_string()),
    }
}

/// Rows to points: database rows (`datname`), size rows (`size_of`), the
/// server row (`max_connections`), the bgwriter row (`buffers_alloc`),
/// lock rows (`lock_type`), standby rows (`data_delay`), slot rows
/// (`slot_name`) and the checkpoint row (`checkpoint_age`).
pub fn records(rows: &[Row], start: u64, now: u64) -> Vec<Record> {
    let mut out = Vec::new();
    let mut push = |metric: &Metric, value: Option<f64>, attributes: Map| {
        if let Some(v) = value {
            out.push(metric.point(v, start, now, attributes));
        }
    };
    for row in rows {
        if let Some(database) = row.get("datname").filter(|v| !v.is_nil()) {
            let db = || with(&[(DATABASE_NAME, database.clone())]);
            for (metric, column) in [
                (&BACKENDS, "backends"),
                (&COMMITS, "commits"),
                (&ROLLBACKS, "rollbacks"),
                (&DEADLOCKS, "deadlocks"),
                (&TEMP_FILES, "temp_files"),
                (&TEMP_IO, "temp_bytes"),
                (&BLKS_HIT, "blks_hit"),
                (&BLKS_READ, "blks_read"),
                (&TUP_RETURNED, "tup_returned"),
                (&TUP_FETCHED, "tup_fetched"),
                (&TUP_INSERTED, "tup_inserted"),
                (&TUP_UPDATED, "tup_updated"),
                (&TUP_DELETED, "tup_deleted"),
                (&XID_AGE, "xid_age"),
            ] {
                push(metric, number(row, column), db());
            }
            for kind in ["tablespace", "lock", "snapshot", "bufferpin", "deadlock"] {
                let mut attributes = db();
                attributes.insert("postgresql.conflict.type", Value::Str(kind.into()));
                push(&CONFLICTS, number(row, &format!("confl_{kind}")), attributes);
            }
        } else if let Some(database) = row.get("size_of").filter(|v| !v.is_nil()) {
            push(&DB_SIZE, number(row, "size_bytes"), with(&[(DATABASE_NAME, database.clone())]));
        } else if row.get("max_connections").is_some() {
            push(&CONNECTION_MAX, number(row, "max_connections"), Map::new());
            push(&DATABASE_COUNT, number(row, "database_count"), Map::new());
            push(&WAL_BYTES, number(row, "wal_bytes"), Map::new());
            push(&REPLICATION_LAG, number(row, "standby_lag"), Map::new());
            push(&WAL_AGE, number(row, "wal_age"), Map::new());
        } else if row.get("buffers_alloc").is_some() {
            push(&BUFFERS_ALLOCATED, number(row, "buffers_alloc"), Map::new());
            push(&MAXWRITTEN, number(row, "maxwritten_clean"), Map::new());
            for (source, column) in [
                ("bgwriter", "buffers_clean"),
                ("checkpoints", "buffers_checkpoint"),
                ("backend", "buffers_backend"),
                ("backend_fsync", "buffers_backend_fsync"),
            ] {
                push(&BUFFERS_WRITES, number(row, column), with(&[("source", Value::Str(source.into()))]));
            }
            for (kind, column) in [("requested", "checkpoints_req"), ("scheduled", "checkpoints_timed")] {
                push(&CHECKPOINTS, number(row, column), with(&[("type", Value::Str(kind.into()))]));
            }
            for (kind, column) in [("write", "checkpoint_write_time"), ("sync", "checkpoint_sync_time")] {
                push(&CHECKPOINT_DURATION, number(row, column), with(&[("type", Value::Str(kind.into()))]));
            }
        } else if row.get("lock_type").is_some() {
            let attributes =
                with(&[("relation", text(row, "relation")), ("mode", text(row, "mode")), ("lock_type", text(row, "lock_type"))]);
            push(&LOCKS, number(row, "locks"), attributes);
        } else if row.get("data_delay").is_some() {
            // a socket connection has no address
            let client = match row.get("client_addr") {
                Some(Value::Str(s)) if !s.is_empty() => Value::Str(s.clone()),
                _ => Value::Str("unix".into()),
            };
            push(&DATA_DELAY, number(row, "data_delay"), with(&[("replication_client", client.clone())]));
            for (operation, column) in [("write", "write_delay"), ("flush", "flush_delay"), ("replay", "replay_delay")] {
                let attributes = with(&[("operation", Value::Str(operation.into())), ("replication_client", client.clone())]);
                push(&WAL_DELAY, number(row, column), attributes);
            }
        } else if row.get("slot_name").is_some() {
            let active = Value::Str(matches!(row.get("active"), Some(Value::Bool(true))).to_string());
            let attributes = with(&[("slot_name", text(row, "slot_name")), ("slot_type", text(row, "slot_type")), ("active", active)]);
            push(&SLOT_RETAINED, number(row, "retained"), attributes);
        } else if row.get("checkpoint_age").is_some() {
            push(&CHECKPOINT_AGE, number(row, "checkpoint_age"), Map::new());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbintel_core::record::{MetricKind, Number, Temporality};

    fn row(pairs: &[(&str, Value)]) -> Row {
        with(pairs)
    }

    #[test]
    fn each_row_kind_becomes_its_contrib_metrics() {
        let rows = vec![
            row(&[
                ("datname", Value::Str("app".into())),
                ("commits", Value::Int(7)),
                ("confl_lock", Value::Int(0)),
                ("backends", Value::Int(3)),
            ]),
            row(&[
                ("buffers_alloc", Value::Int(10)),
                ("buffers_backend", Value::Nil),
                ("checkpoints_timed", Value::Int(4)),
                ("checkpoint_sync_time", Value::Double(1.5)),
            ]),
            row(&[("client_addr", Value::Nil), ("data_delay", Value::Double(100.0)), ("replay_delay", Value::Double(0.25))]),
        ];
        let out = records(&rows, 5, 9);
        let find = |name: &str, key: &str, value: &str| {
            out.iter()
                .find_map(|r| match r {
                    Record::Metric(m)
                        if m.name == name && (key.is_empty() || m.attributes.get(key).and_then(Value::as_str) == Some(value)) =>
                    {
                        Some(m.clone())
                    }
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{name} {key}={value} in {out:?}"))
        };
        let commits = find("postgresql.commits", "", "");
        assert_eq!(commits.attributes.get(DATABASE_NAME), Some(&Value::Str("app".into())));
        assert_eq!((commits.value, commits.start_time_unix_nano), (Number::Int(7), 5));
        assert_eq!(commits.kind, MetricKind::Sum { monotonic: true, temporality: Temporality::Cumulative });
        let backends = find("postgresql.backends", "", "");
        assert_eq!(backends.kind, MetricKind::Sum { monotonic: false, temporality: Temporality::Cumulative });
        find("postgresql.query.conflicts", "postgresql.conflict.type", "lock");
        assert_eq!(find("postgresql.bgwriter.checkpoint.count", "type", "scheduled").value, Number::Int(4));
        assert_eq!(find("postgresql.bgwriter.duration", "type", "sync").value, Number::Double(1.5));
        assert!(
            !out.iter().any(|r| matches!(r, Record::Metric(m) if m.attributes.get("source") == Some(&Value::Str("backend".into())))),
            "a NULL column (17+: no backend writes) is no point"
        );
        let delay = find("postgresql.wal.delay", "operation", "replay");
        assert_eq!(delay.attributes.get("replication_client"), Some(&Value::Str("unix".into())));
        assert_eq!(find("postgresql.replication.data_delay", "", "").value, Number::Int(100));
    }

    #[test]
    fn every_point_conforms_to_the_declaration() {
        let rows = vec![
            row(&[("datname", Value::Str("app".into())), ("commits", Value::Int(7)), ("confl_snapshot", Value::Int(1))]),
            row(&[
                ("relation", Value::Nil),
                ("mode", Value::Str("AccessShareLock".into())),
                ("lock_type", Value::Str("relation".into())),
                ("locks", Value::Int(2)),
            ]),
            row(&[
                ("slot_name", Value::Str("s".into())),
                ("slot_type", Value::Str("physical".into())),
                ("active", Value::Bool(true)),
                ("retained", Value::Double(8.0)),
            ]),
        ];
        let mut records = records(&rows, 1, 2);
        crate::catalogue::name_databases(&mut records, None);
        for r in &records {
            let problems = crate::catalogue::conformance(Engine::Postgres, &Default::default(), r);
            assert!(problems.is_empty(), "{problems:?}");
        }
    }
}
