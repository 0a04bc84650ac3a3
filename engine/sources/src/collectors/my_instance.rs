//! `mysql.instance`: server health from global status.

use std::time::Duration;

use dbintel_core::record::{MetricKind, MetricPoint, Number, Record, Temporality};
use dbintel_core::BoxFuture;
use dbintel_stdlib::Map;

use crate::collector::{Collector, Unreplayable};
use crate::mysql::MyTarget;
use crate::rows::{integer, Row};
use crate::target::Target;
use crate::SourceError;

pub struct MyInstance {
    interval: Duration,
}

impl MyInstance {
    pub fn new(interval: Duration) -> MyInstance {
        MyInstance { interval }
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
                Target::My(my) => Ok(records(&fetch(my).await?, now)),
                Target::Pg(_) => Err(crate::setup_error("instance", "a MySQL collector on a PostgreSQL target".into())),
            }
        })
    }

    /// Recorded rows: `name`, `value` pairs of global status.
    fn replay(&mut self, rows: Vec<Row>, now: u64) -> Result<Vec<Record>, Unreplayable> {
        Ok(records(&rows, now))
    }
}

async fn fetch(target: &MyTarget) -> Result<Vec<Row>, SourceError> {
    target
        .query(
            "global status",
            "SELECT VARIABLE_NAME AS name, VARIABLE_VALUE AS value FROM performance_schema.global_status
              WHERE VARIABLE_NAME IN ('THREADS_CONNECTED', 'THREADS_RUNNING', 'QUESTIONS', 'COM_COMMIT', 'COM_ROLLBACK',
                    'INNODB_BUFFER_POOL_READ_REQUESTS', 'INNODB_BUFFER_POOL_READS', 'SLOW_QUERIES', 'INNODB_ROW_LOCK_WAITS', 'UPTIME')",
        )
        .await
}

/// Health basics from global status: connections, running threads,
/// queries, commits, rollbacks, buffer pool reads, slow queries.
fn records(rows: &[Row], now: u64) -> Vec<Record> {
    let cumulative = MetricKind::Sum { monotonic: true, temporality: Temporality::Cumulative };
    let mut out = Vec::new();
    for row in rows {
        let name = row.get("name").map(|v| v.to_string().to_ascii_uppercase()).unwrap_or_default();
        let Some(value) = integer(row, "value") else { continue };
        let (metric, unit, kind) = match name.as_str() {
            "THREADS_CONNECTED" => ("connections", "{connection}", MetricKind::Gauge),
            "THREADS_RUNNING" => ("threads.running", "{thread}", MetricKind::Gauge),
            "QUESTIONS" => ("queries", "{query}", cumulative),
            "COM_COMMIT" => ("commits", "{transaction}", cumulative),
            "COM_ROLLBACK" => ("rollbacks", "{transaction}", cumulative),
            "INNODB_BUFFER_POOL_READ_REQUESTS" => ("buffer_pool.read_requests", "{request}", cumulative),
            "INNODB_BUFFER_POOL_READS" => ("buffer_pool.reads", "{read}", cumulative),
            "SLOW_QUERIES" => ("slow_queries", "{query}", cumulative),
            "INNODB_ROW_LOCK_WAITS" => ("row_lock.waits", "{wait}", cumulative),
            "UPTIME" => ("uptime", "s", MetricKind::Gauge),
            _ => continue,
        };
        out.push(Record::Metric(MetricPoint::new(format!("mysql.{metric}"), unit, kind, Number::Int(value), now, Map::new())));
    }
    out
}
