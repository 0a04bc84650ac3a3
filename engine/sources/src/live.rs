//! Running sources against real databases: connect (one small pool per
//! target), then each collector in its own loop on its own cadence, with
//! jitter. Within a loop a scrape never starts before the previous one has
//! ended, so a slow query is never started twice; a scrape that fails or
//! times out is counted and the next one goes ahead. When downstream has no
//! room, the scrape is skipped and counted instead of queued.

use std::sync::Arc;
use std::time::Duration;

use dbintel_dsl::plan::{Collector, SourceNode};

use super::activity::{AshWindow, PG13_SAMPLE_SQL, PG_SAMPLE_SQL};
use super::mysql::{MyStatements, MyTarget, MY_SAMPLE_SQL};
use super::postgres::{PgTarget, StatementsCollector};
use super::rows::{now_nanos, SqlMapping};
use super::SourceError;
use dbintel_core::counters::NodeCounters;
use dbintel_core::record::{Batch, MetricKind, MetricPoint, Number, Record, Temporality};
use dbintel_core::routing::SourceOutput;
use dbintel_stdlib::Value;

/// How many scrapes to run and how often (dry-run's `--scrapes`,
/// `--interval`); `None` means as configured, forever.
#[derive(Debug, Clone, Default)]
pub struct LiveOptions {
    pub scrapes: Option<u64>,
    pub interval: Option<Duration>,
    /// Set to true to stop every collector loop (`dbintel run`'s reload
    /// and shutdown): a scrape in progress finishes, no new one starts.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// Per source: the lease that must be held to scrape (`cluster`
    /// leader or sharded mode); a source without one always scrapes.
    pub fences: Option<Arc<std::collections::HashMap<String, dbintel_core::fence::Fence>>>,
}

/// Resolves when `stop` becomes true (never, without one).
pub async fn stopped(stop: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    match stop {
        Some(rx) => {
            let _ = rx.wait_for(|s| *s).await;
        }
        None => std::future::pending().await,
    }
}

/// A connected database of either engine.
pub enum Target {
    Pg(PgTarget),
    My(MyTarget),
}

impl Target {
    pub async fn connect(name: &str, source: &SourceNode) -> Result<Target, SourceError> {
        let mysql_dsn = source
            .settings
            .secret("dsn")
            .and_then(|r| super::secret::Secret::resolve(r).ok())
            .is_some_and(|s| s.expose().starts_with("mysql:") || s.expose().starts_with("mariadb:"));
        if source.kind == "mysql" || (source.kind == "sql" && mysql_dsn) {
            Ok(Target::My(MyTarget::connect(name, &source.settings).await?))
        } else {
            Ok(Target::Pg(PgTarget::connect(name, &source.settings).await?))
        }
    }
    pub async fn query(&self, what: &str, sql: &str) -> Result<Vec<super::rows::Row>, SourceError> {
        match self {
            Target::Pg(t) => t.query(what, sql).await,
            Target::My(t) => t.query(what, sql).await,
        }
    }
    pub fn resource(&self) -> &dbintel_core::record::Resource {
        match self {
            Target::Pg(t) => &t.resource,
            Target::My(t) => &t.resource,
        }
    }
    pub fn breaker(&self) -> &super::breaker::Breaker {
        match self {
            Target::Pg(t) => &t.breaker,
            Target::My(t) => &t.breaker,
        }
    }

    /// The breaker's duress probe (at most every 5 s per target): active
    /// sessions, replication lag, and how long the probe itself took.
    pub async fn check_duress(&self) {
        let now = std::time::Instant::now();
        if !self.breaker().probe_due(now, Duration::from_secs(5)) {
            return;
        }
        let sql = match self {
            Target::Pg(_) => {
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid())::int8 AS active,
                        CASE WHEN pg_is_in_recovery() THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END AS lag"
            }
            Target::My(_) => {
                "SELECT COUNT(*) AS active FROM information_schema.processlist
                  WHERE command NOT IN ('Sleep', 'Daemon', 'Binlog Dump') AND id <> CONNECTION_ID()"
            }
        };
        if let Ok(rows) = self.query("breaker probe", sql).await {
            let took = now.elapsed();
            let row = rows.first();
            let active = row.and_then(|r| super::rows::integer(r, "active"));
            let lag = row.and_then(|r| super::rows::number(r, "lag"));
            if let Some(why) = self.breaker().duress(active, lag, took) {
                self.breaker().trip(std::time::Instant::now(), &format!("duress: {why}"));
            }
        }
    }

    async fn close(&self) {
        match self {
            Target::Pg(t) => t.close().await,
            Target::My(t) => t.close().await,
        }
    }
}

enum Live {
    PgStatements(StatementsCollector),
    Plans(super::plans::PlansCollector),
    MyStatements(MyStatements),
    Activity,
    Instance,
    Sql { query: String, mapping: SqlMapping },
    Unsupported,
}

fn collector(source: &SourceNode, target: &Target, name: &str, spec: &Collector) -> Live {
    match (source.kind.as_str(), name, target) {
        ("postgres", "statements", Target::Pg(_)) => Live::PgStatements(StatementsCollector::new(&spec.settings)),
        ("postgres" | "mysql", "plans", _) => Live::Plans(super::plans::PlansCollector::new(&spec.settings)),
        ("mysql", "statements", Target::My(_)) => Live::MyStatements(MyStatements::new(&spec.settings)),
        ("postgres" | "mysql", "activity", _) => Live::Activity,
        ("postgres" | "mysql", "instance", _) => Live::Instance,
        ("sql", _, _) => match spec.settings.str("query") {
            Some(query) => Live::Sql { query: query.to_string(), mapping: SqlMapping::new(name, &spec.settings) },
            None => Live::Unsupported,
        },
        _ => Live::Unsupported,
    }
}

/// A small deterministic jitter in [-j, +j] of the interval.
fn jittered(interval: Duration, jitter_percent: f64, round: u64) -> Duration {
    let spread = interval.as_secs_f64() * jitter_percent / 100.0;
    let unit = (dbintel_stdlib::functions::fnv1a(&round.to_le_bytes()) % 2001) as f64 / 1000.0 - 1.0;
    Duration::from_secs_f64((interval.as_secs_f64() + spread * unit).max(0.0))
}

/// Everything one collector loop needs.
struct Loop {
    source: String,
    collector: String,
    target: Arc<Target>,
    output: SourceOutput,
    counters: Arc<NodeCounters>,
    scrapes: Option<u64>,
    interval: Duration,
    jitter: f64,
    stop: Option<tokio::sync::watch::Receiver<bool>>,
    fence: Option<dbintel_core::fence::Fence>,
}

impl Loop {
    /// Fencing: the lease this source needs is still held.
    fn ours(&self) -> bool {
        self.fence.as_ref().is_none_or(dbintel_core::fence::Fence::holds)
    }

    async fn emit(&self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        NodeCounters::add(&self.counters.emitted, records.len());
        self.output.send(&self.collector, Batch::new(self.target.resource().clone(), records)).await;
    }

    fn failed(&self, error: &SourceError) {
        if let SourceError::BreakerOpen { .. } = error {
            // expected while open; the breaker logs its transitions
            tracing::debug!(%error, collector = %self.collector, "scrape not sent");
            return;
        }
        NodeCounters::add(&self.counters.errors, 1);
        tracing::warn!(%error, collector = %self.collector, "scrape failed");
    }

    /// Waits for room downstream; false (and a counted skip) when there is none.
    fn has_room(&self) -> bool {
        if self.output.has_room() {
            return true;
        }
        NodeCounters::add(&self.counters.skipped_scrapes, 1);
        tracing::warn!(source = %self.source, collector = %self.collector, "downstream is full: scrape skipped");
        false
    }

    fn timed(&self, started: std::time::Instant) {
        NodeCounters::add(&self.counters.scrapes, 1);
        NodeCounters::add(&self.counters.scrape_micros, started.elapsed().as_micros() as usize);
    }

    /// Waits `d`; false if told to stop first.
    async fn wait(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = stopped(&mut self.stop) => false,
        }
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Statements, instance and `sql` collectors: one scrape per interval.
    async fn periodic(mut self, mut live: Live) {
        let mut round = 0u64;
        loop {
            if self.stopping() || !self.ours() {
                return;
            }
            if self.has_room() {
                self.target.check_duress().await;
                let started = std::time::Instant::now();
                let now = now_nanos();
                let result = match (&mut live, self.target.as_ref()) {
                    (Live::PgStatements(c), Target::Pg(t)) => c.scrape(t, now).await,
                    (Live::Plans(c), target) => {
                        let result = match target {
                            Target::Pg(t) => c.scrape(t, now).await,
                            Target::My(t) => c.scrape_mysql(t, now).await,
                        };
                        NodeCounters::add(&self.counters.errors, c.take_errors() as usize);
                        result
                    }
                    (Live::MyStatements(c), Target::My(t)) => c.scrape(t, now).await,
                    (Live::Instance, Target::Pg(t)) => instance(t, now).await,
                    (Live::Instance, Target::My(t)) => super::mysql::instance(t, now).await,
                    (Live::Sql { query, mapping }, target) => target.query(&self.collector, query).await.map(|rows| {
                        mapping
                            .new_rows(rows)
                            .into_iter()
                            .filter_map(|row| match mapping.record(row, now) {
                                Ok(r) => Some(r),
                                Err(reason) => {
                                    NodeCounters::add(&self.counters.errors, 1);
                                    tracing::warn!(source = %self.source, collector = %self.collector, %reason, "row skipped");
                                    None
                                }
                            })
                            .collect()
                    }),
                    _ => return,
                };
                self.timed(started);
                match result {
                    Ok(records) => self.emit(records).await,
                    Err(e) => self.failed(&e),
                }
            }
            round += 1;
            if self.scrapes.is_some_and(|n| round >= n) {
                return;
            }
            if !self.wait(jittered(self.interval, self.jitter, round)).await {
                return;
            }
        }
    }

    /// Active session history: a sample every `every`, AAS every `window`;
    /// with `samples_as_logs`, every sample's sessions as log records too.
    async fn activity(mut self, every: Duration, window: Duration, samples_as_logs: bool) {
        let (sql, system) = match self.target.as_ref() {
            Target::Pg(t) if t.version() >= 140000 => (PG_SAMPLE_SQL, "postgresql"),
            Target::Pg(_) => (PG13_SAMPLE_SQL, "postgresql"),
            Target::My(_) => (MY_SAMPLE_SQL, "mysql"),
        };
        let mut ash = AshWindow::new(system, every);
        let mut windows = 0u64;
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut window_start = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopped(&mut self.stop) => return,
            }
            if !self.ours() {
                return;
            }
            let started = std::time::Instant::now();
            let sample = self.target.query("activity sample", sql).await;
            self.timed(started);
            match sample {
                Ok(rows) => {
                    ash.add_sample(&rows);
                    if samples_as_logs && !rows.is_empty() && self.has_room() {
                        self.emit(super::activity::sample_logs(&rows, now_nanos())).await;
                    }
                }
                Err(e) => self.failed(&e),
            }
            if window_start.elapsed() + every / 2 >= window {
                let records = ash.finish(window, now_nanos());
                if self.has_room() {
                    self.emit(records).await;
                }
                window_start = tokio::time::Instant::now();
                windows += 1;
                if self.scrapes.is_some_and(|n| windows >= n) {
                    return;
                }
            }
        }
    }
}

/// Health basics per database: backends, commits, rollbacks, deadlocks,
/// block hits and reads, size, the age of the oldest unfrozen transaction
/// id; replication lag on a replica; WAL written and the age of the last
/// checkpoint on a primary.
pub async fn instance(target: &PgTarget, now: u64) -> Result<Vec<Record>, SourceError> {
    let rows = target
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
    let mut out = Vec::new();
    let metric = |name: &str, unit: &str, kind: MetricKind, value: Number, database: &Value| {
        let mut attributes = dbintel_stdlib::Map::with_capacity(1);
        attributes.insert("db.namespace", database.clone());
        Record::Metric(MetricPoint::new(format!("postgresql.{name}"), unit, kind, value, now, attributes))
    };
    let cumulative = MetricKind::Sum { monotonic: true, temporality: Temporality::Cumulative };
    for row in &rows {
        let database = row.get("datname").cloned().unwrap_or_default();
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
            if let Some(v) = super::rows::integer(row, column) {
                out.push(metric(name, unit, kind, Number::Int(v), &database));
            }
        }
    }
    let wal = target
        .query(
            "replication and WAL",
            "SELECT CASE WHEN pg_is_in_recovery() THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END AS lag,
                    CASE WHEN NOT pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 END AS wal_bytes",
        )
        .await?;
    if let Some(lag) = wal.first().and_then(|r| super::rows::number(r, "lag")) {
        out.push(metric("replication.lag", "s", MetricKind::Gauge, Number::Double(lag), &Value::Nil));
    }
    if let Some(bytes) = wal.first().and_then(|r| super::rows::number(r, "wal_bytes")) {
        out.push(metric("wal.bytes", "By", cumulative, Number::Int(bytes as i64), &Value::Nil));
    }
    // seconds since the last checkpoint: how much WAL a crash would replay
    let checkpoint = "SELECT extract(epoch FROM now() - checkpoint_time)::float8 AS age FROM pg_control_checkpoint()";
    if let Ok(rows) = target.query("checkpoint age", checkpoint).await {
        if let Some(age) = rows.first().and_then(|r| super::rows::number(r, "age")) {
            out.push(metric("wal.checkpoint_age", "s", MetricKind::Gauge, Number::Double(age), &Value::Nil));
        }
    }
    Ok(out)
}

/// Runs a source's collectors. Under a `cluster` lease, only while the
/// lease is held: it waits to become the owner, connects, scrapes (each
/// scrape first checks the lease), and when the lease is lost stops,
/// closes its connections and waits again.
pub async fn run(
    name: String,
    source: SourceNode,
    output: SourceOutput,
    counters: Arc<NodeCounters>,
    options: LiveOptions,
) -> Result<(), SourceError> {
    let Some(fence) = options.fences.as_ref().and_then(|f| f.get(&name)).cloned() else {
        return run_owned(&name, &source, &output, &counters, &options, None).await;
    };
    let mut stop = options.stop.clone();
    loop {
        while !fence.holds() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stopped(&mut stop) => return Ok(()),
            }
        }
        tracing::info!(source = %name, "this replica holds the lease: scraping");
        if let Err(e) = run_owned(&name, &source, &output, &counters, &options, Some(fence.clone())).await {
            NodeCounters::add(&counters.errors, 1);
            tracing::warn!(source = %name, error = %e, "source failed; trying again while the lease is held");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stopped(&mut stop) => return Ok(()),
            }
        }
        if stop.as_ref().is_some_and(|s| *s.borrow()) {
            return Ok(());
        }
        if !fence.holds() {
            tracing::info!(source = %name, "lease lost: stopped scraping");
        }
    }
}

async fn run_owned(
    name: &str,
    source: &SourceNode,
    output: &SourceOutput,
    counters: &Arc<NodeCounters>,
    options: &LiveOptions,
    fence: Option<dbintel_core::fence::Fence>,
) -> Result<(), SourceError> {
    let name = name.to_string();
    let target = Arc::new(Target::connect(&name, source).await?);
    let source_interval = source.settings.duration("interval").unwrap_or(Duration::from_secs(30));
    let jitter = source.settings.percent("jitter").unwrap_or(10.0);
    let mut loops = tokio::task::JoinSet::new();
    for (collector_name, spec) in &source.collectors {
        let live = collector(source, &target, collector_name, spec);
        let interval = options.interval.or(spec.settings.duration("interval")).unwrap_or(source_interval);
        let l = Loop {
            source: name.clone(),
            collector: collector_name.clone(),
            target: target.clone(),
            output: output.clone(),
            counters: counters.clone(),
            scrapes: options.scrapes,
            interval,
            jitter,
            stop: options.stop.clone(),
            fence: fence.clone(),
        };
        match live {
            Live::Unsupported => {
                tracing::warn!(source = %name, collector = %collector_name, "this collector is not built yet; it produces nothing")
            }
            Live::Activity => {
                let every = spec.settings.duration("every").unwrap_or(Duration::from_secs(1));
                let window = options.interval.or(spec.settings.duration("window")).unwrap_or(Duration::from_secs(60));
                let as_logs = spec.settings.bool("samples_as_logs").unwrap_or(false);
                loops.spawn(l.activity(every, window, as_logs));
            }
            live => {
                loops.spawn(l.periodic(live));
            }
        }
    }
    while loops.join_next().await.is_some() {}
    target.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bounds() {
        let base = Duration::from_secs(30);
        for round in 0..1000 {
            let d = jittered(base, 10.0, round);
            assert!(d >= Duration::from_secs(27) && d <= Duration::from_secs(33), "{d:?}");
        }
        assert_ne!(jittered(base, 10.0, 1), jittered(base, 10.0, 2));
    }
}
