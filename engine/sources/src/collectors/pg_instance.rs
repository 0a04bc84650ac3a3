//! `postgres.instance`: health basics per database (backends, commits,
//! rollbacks, deadlocks, block hits and reads, size, the age of the oldest
//! unfrozen transaction id); replication lag on a replica; WAL written and
//! the age of the last checkpoint on a primary.

use std::time::Duration;

use dbintel_core::record::{MetricKind, MetricPoint, Number, Record, Temporality};
use dbintel_core::BoxFuture;
use dbintel_stdlib::Value;

use crate::collector::{Collector, Unreplayable};
use crate::postgres::PgTarget;
use crate::rows::{integer, number, Row};
use crate::target::Target;
use crate::SourceError;

pub struct PgInstance {
    interval: Duration,
    soft_errors: Vec<SourceError>,
}

impl PgInstance {
    pub fn new(interval: Duration) -> PgInstance {
        PgInstance { interval, soft_errors: Vec::new() }
    }

    /// The rows of every query: one per database, then one for the server.
    async fn fetch(&mut self, target: &PgTarget) -> Result<Vec<Row>, SourceError> {
        let mut rows = target
            .query(
                "pg_stat_database",
                "SELECT d.datname::text AS datname, d.numbackends::int8 AS backends, d.xact_commit AS commits,
                        d.xact_rollback AS rollbacks, d.deadlocks, d.blks_hit, d.blks_read,
                        CASE WHEN has_database_privilege(d.datname, 'CONNECT') THEN pg_database_size(d.datid) END AS size_bytes,
                        age(db.datfrozenxid)::int8 AS xid_age
                   FROM pg_stat_database d JOIN pg_database db ON db.oid = d.datid
                  WHERE d.datname IS NOT NULL",
            )
            .await?;
        rows.extend(
            target
                .query(
                    "replication and WAL",
                    "SELECT CASE WHEN pg_is_in_recovery() THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END AS lag,
                            CASE WHEN NOT pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 END AS wal_bytes",
                )
                .await?,
        );
        // seconds since the last checkpoint: how much WAL a crash would
        // replay (needs pg_monitor; the rest does not)
        let checkpoint = "SELECT extract(epoch FROM now() - checkpoint_time)::float8 AS checkpoint_age FROM pg_control_checkpoint()";
        match target.query("checkpoint age", checkpoint).await {
            Ok(found) => rows.extend(found),
            Err(e) => self.soft_errors.push(e),
        }
        Ok(rows)
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
                Target::Pg(pg) => Ok(records(&self.fetch(pg).await?, now)),
                Target::My(_) => Err(crate::setup_error("instance", "a PostgreSQL collector on a MySQL target".into())),
            }
        })
    }

    /// Recorded rows: per database (`datname`, `backends`, `commits`, …)
    /// and server rows (`lag`, `wal_bytes`, `checkpoint_age`).
    fn replay(&mut self, rows: Vec<Row>, now: u64) -> Result<Vec<Record>, Unreplayable> {
        Ok(records(&rows, now))
    }

    fn take_soft_errors(&mut self) -> Vec<SourceError> {
        std::mem::take(&mut self.soft_errors)
    }
}

fn records(rows: &[Row], now: u64) -> Vec<Record> {
    let mut out = Vec::new();
    let metric = |name: &str, unit: &str, kind: MetricKind, value: Number, database: &Value| {
        let mut attributes = dbintel_stdlib::Map::with_capacity(1);
        attributes.insert("db.namespace", database.clone());
        Record::Metric(MetricPoint::new(format!("postgresql.{name}"), unit, kind, value, now, attributes))
    };
    let cumulative = MetricKind::Sum { monotonic: true, temporality: Temporality::Cumulative };
    for row in rows {
        if let Some(database) = row.get("datname").filter(|v| !v.is_nil()) {
            let columns: [(&str, &str, &str, MetricKind); 8] = [
                ("backends", "backends", "{connection}", MetricKind::Gauge),
                ("commits", "commits", "{transaction}", cumulative),
                ("rollbacks", "rollbacks", "{transaction}", cumulative),
                ("deadlocks", "deadlocks", "{deadlock}", cumulative),
                ("blks_hit", "blocks.hit", "{block}", cumulative),
                ("blks_read", "blocks.read", "{block}", cumulative),
                ("size_bytes", "database.size", "By", MetricKind::Gauge),
                ("xid_age", "database.xid_age", "{transaction}", MetricKind::Gauge),
            ];
            for (column, name, unit, kind) in columns {
                if let Some(v) = integer(row, column) {
                    out.push(metric(name, unit, kind, Number::Int(v), database));
                }
            }
            continue;
        }
        if let Some(lag) = number(row, "lag") {
            out.push(metric("replication.lag", "s", MetricKind::Gauge, Number::Double(lag), &Value::Nil));
        }
        if let Some(bytes) = number(row, "wal_bytes") {
            out.push(metric("wal.bytes", "By", cumulative, Number::Int(bytes as i64), &Value::Nil));
        }
        if let Some(age) = number(row, "checkpoint_age") {
            out.push(metric("wal.checkpoint_age", "s", MetricKind::Gauge, Number::Double(age), &Value::Nil));
        }
    }
    out
}
