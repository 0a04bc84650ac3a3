//! Active session history: sample the server's sessions every second and
//! turn each window of samples into Average Active Sessions.
//!
//! AAS for a key = samples seen × sampling period / window. Keys are (wait
//! class, wait event, query id, database, user); an active session with no
//! wait event is on CPU. Lock waits also carry who blocks them, emitted as
//! `db.server.blocking` events. Memory is bounded by [`MAX_KEYS`] whatever
//! the number of sessions: keys past it are counted under `other`.
//!
//! A window is a number of samples (`window / every`): AAS is then the
//! average number of active sessions per sample, exact even when a slow
//! server makes a sample late. A stopping source flushes its partial
//! window rather than dropping it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dbintel_core::record::{LogRecord, MetricKind, MetricPoint, Number, Record};
use dbintel_core::BoxFuture;
use dbintel_dsl::schema::ActivitySettings;
use dbintel_stdlib::{Map, Value};

use crate::collector::{Collector, Unreplayable};
use crate::rows::Row;
use crate::target::{Engine, Target};
use crate::SourceError;

/// Distinct keys kept per window.
pub const MAX_KEYS: usize = 2_000;
/// Distinct blocked sessions reported per window.
pub const MAX_BLOCKED: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    class: String,
    event: String,
    query_id: String,
    database: String,
    user: String,
}

/// One window's aggregation.
#[derive(Debug)]
pub struct AshWindow {
    system: &'static str,
    period: Duration,
    samples: u64,
    counts: BTreeMap<Key, u64>,
    /// blocked pid -> (blocking pids, wait event, query id)
    blocked: BTreeMap<i64, (BTreeSet<i64>, String, String)>,
}

fn text(row: &Row, column: &str) -> Option<String> {
    match row.get(column) {
        None | Some(Value::Nil) => None,
        Some(v) => Some(v.to_string()).filter(|s| !s.is_empty()),
    }
}

/// `{12,34}` (a PostgreSQL int array as text) or `12,34`.
fn pids(value: Option<String>) -> BTreeSet<i64> {
    value.map(|v| v.trim_matches(['{', '}']).split(',').filter_map(|p| p.trim().parse().ok()).collect()).unwrap_or_default()
}

impl AshWindow {
    /// `system` is the metric prefix (`postgresql`, `mysql`).
    pub fn new(system: &'static str, period: Duration) -> AshWindow {
        AshWindow { system, period, samples: 0, counts: BTreeMap::new(), blocked: BTreeMap::new() }
    }

    /// Adds one sample: the active sessions at one instant. Expected
    /// columns: `state`, `wait_event_type`, `wait_event`, `query_id`,
    /// `datname`, `usename`, `pid`, `blocking` (any may be NULL).
    pub fn add_sample(&mut self, sessions: &[Row]) {
        self.samples += 1;
        for row in sessions {
            let class = text(row, "wait_event_type");
            let (class, event) = match class {
                Some(c) => (c, text(row, "wait_event").unwrap_or_default()),
                None => ("CPU".to_string(), "CPU".to_string()),
            };
            let key = Key {
                class,
                event,
                query_id: text(row, "query_id").unwrap_or_default(),
                database: text(row, "datname").unwrap_or_default(),
                user: text(row, "usename").unwrap_or_default(),
            };
            let key = if self.counts.len() >= MAX_KEYS && !self.counts.contains_key(&key) {
                Key { class: "other".into(), event: "other".into(), query_id: String::new(), database: String::new(), user: String::new() }
            } else {
                key
            };
            if key.class == "Lock" && self.blocked.len() < MAX_BLOCKED {
                if let Some(pid) = crate::rows::integer(row, "pid") {
                    let blockers = pids(text(row, "blocking"));
                    if !blockers.is_empty() {
                        let entry = self.blocked.entry(pid).or_insert_with(|| (BTreeSet::new(), key.event.clone(), key.query_id.clone()));
                        entry.0.extend(blockers);
                    }
                }
            }
            *self.counts.entry(key).or_default() += 1;
        }
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The window's records (AAS gauges and blocking events); resets the
    /// window.
    pub fn finish(&mut self, window: Duration, now: u64) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.counts.len() + self.blocked.len());
        let window_secs = window.as_secs_f64().max(f64::EPSILON);
        for (key, count) in std::mem::take(&mut self.counts) {
            let mut attributes = Map::with_capacity(5);
            attributes.insert("db.wait.class", Value::Str(key.class));
            attributes.insert("db.wait.event", Value::Str(key.event));
            if !key.query_id.is_empty() {
                attributes.insert("db.query.id", Value::Str(key.query_id));
            }
            attributes.insert("db.namespace", Value::Str(key.database));
            attributes.insert("db.user", Value::Str(key.user));
            out.push(Record::Metric(MetricPoint {
                name: format!("{}.ash.active_sessions", self.system),
                unit: "{session}".into(),
                description: "Average active sessions over the window".into(),
                kind: MetricKind::Gauge,
                start_time_unix_nano: 0,
                time_unix_nano: now,
                value: Number::Double(count as f64 * self.period.as_secs_f64() / window_secs),
                attributes,
            }));
        }
        for (pid, (blockers, event, query_id)) in std::mem::take(&mut self.blocked) {
            let mut attributes = Map::with_capacity(4);
            attributes.insert("db.session.id", Value::Int(pid));
            attributes.insert("db.blocking.session.ids", Value::List(blockers.into_iter().map(Value::Int).collect()));
            attributes.insert("db.wait.event", Value::Str(event));
            if !query_id.is_empty() {
                attributes.insert("db.query.id", Value::Str(query_id));
            }
            out.push(Record::Log(LogRecord {
                time_unix_nano: now,
                observed_time_unix_nano: now,
                severity_number: 13,
                severity_text: "WARN".into(),
                event_name: "db.server.blocking".into(),
                body: Value::Nil,
                attributes,
            }));
        }
        self.samples = 0;
        out
    }
}

/// The PostgreSQL sample: active sessions but our own; blockers only for
/// Lock waits (pg_blocking_pids is not free). The statement text is read
/// only when samples go out as logs; `query_id` exists from 14.
pub fn pg_sample_sql(version: i64, with_text: bool) -> String {
    let query_id = if version >= 140000 { "a.query_id" } else { "NULL::int8" };
    let query = if with_text { "a.query" } else { "NULL::text" };
    format!(
        "SELECT a.pid, a.datname::text AS datname, a.usename::text AS usename, a.state,
                a.wait_event_type, a.wait_event, {query_id} AS query_id, {query} AS query,
                CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid)::text END AS blocking
           FROM pg_stat_activity a
          WHERE a.pid <> pg_backend_pid() AND a.state = 'active' AND a.backend_type = 'client backend'"
    )
}

/// Statement text read per session in a MySQL sample, at most (a bulk
/// load's `PROCESSLIST_INFO` can be megabytes, every second).
pub const MY_SAMPLE_TEXT_CHARS: usize = 4096;

/// The MariaDB/MySQL activity sample: foreground threads that are doing
/// something, with what they wait on now; a thread waiting for an InnoDB row
/// lock is a `Lock` wait and names the threads holding it — MariaDB from
/// information_schema.INNODB_LOCK_WAITS, MySQL 8 (which dropped it) from
/// performance_schema.data_lock_waits. Columns match the PostgreSQL sample
/// so one aggregator serves both. Text only when samples go out as logs,
/// cut in the query.
pub fn my_sample_sql(server: crate::mysql::MyServer, with_text: bool) -> String {
    let query = if with_text { format!("LEFT(t.PROCESSLIST_INFO, {MY_SAMPLE_TEXT_CHARS})") } else { "NULL".to_string() };
    let blockers = if server.mariadb || server.version < 80000 {
        "SELECT r.trx_mysql_thread_id AS waiting, GROUP_CONCAT(DISTINCT h.trx_mysql_thread_id) AS blockers
           FROM information_schema.INNODB_LOCK_WAITS lw
           JOIN information_schema.INNODB_TRX r ON r.trx_id = lw.requesting_trx_id
           JOIN information_schema.INNODB_TRX h ON h.trx_id = lw.blocking_trx_id
          GROUP BY r.trx_mysql_thread_id"
    } else {
        "SELECT wt.PROCESSLIST_ID AS waiting, GROUP_CONCAT(DISTINCT bt.PROCESSLIST_ID) AS blockers
           FROM performance_schema.data_lock_waits lw
           JOIN performance_schema.threads wt ON wt.THREAD_ID = lw.REQUESTING_THREAD_ID
           JOIN performance_schema.threads bt ON bt.THREAD_ID = lw.BLOCKING_THREAD_ID
          GROUP BY wt.PROCESSLIST_ID"
    };
    format!(
        "SELECT t.PROCESSLIST_ID AS pid, t.PROCESSLIST_DB AS datname, t.PROCESSLIST_USER AS usename,
                t.PROCESSLIST_COMMAND AS state,
                CASE WHEN b.blockers IS NOT NULL THEN 'Lock'
                     WHEN w.EVENT_NAME IS NULL THEN NULL
                     ELSE SUBSTRING_INDEX(SUBSTRING_INDEX(w.EVENT_NAME, '/', 2), '/', -1) END AS wait_event_type,
                CASE WHEN b.blockers IS NOT NULL THEN 'row lock' ELSE w.EVENT_NAME END AS wait_event,
                NULL AS query_id, {query} AS query, b.blockers AS blocking
           FROM performance_schema.threads t
           LEFT JOIN performance_schema.events_waits_current w ON w.THREAD_ID = t.THREAD_ID AND w.END_EVENT_ID IS NULL
           LEFT JOIN ({blockers}) b ON b.waiting = t.PROCESSLIST_ID
          WHERE t.TYPE = 'FOREGROUND' AND t.PROCESSLIST_COMMAND NOT IN ('Sleep', 'Daemon')
            AND t.PROCESSLIST_ID <> CONNECTION_ID()"
    )
}

/// `collect activity`: a sample every `every`, AAS every window; with
/// `samples_as_logs`, each sample's sessions as log records too.
pub struct Activity {
    engine: Engine,
    every: Duration,
    window_samples: u64,
    samples_as_logs: bool,
    ash: AshWindow,
}

impl Activity {
    pub fn new(engine: Engine, settings: &ActivitySettings) -> Activity {
        let every = settings.every.max(Duration::from_millis(10));
        let window_samples = (settings.window.as_secs_f64() / every.as_secs_f64()).round().max(1.0) as u64;
        let system = engine.system();
        Activity { engine, every, window_samples, samples_as_logs: settings.samples_as_logs, ash: AshWindow::new(system, every) }
    }

    /// Adds one sample; the window's records when it is complete.
    fn sample(&mut self, rows: Vec<Row>, now: u64) -> Vec<Record> {
        self.ash.add_sample(&rows);
        let mut out = if self.samples_as_logs && !rows.is_empty() { sample_logs(&rows, now) } else { Vec::new() };
        if self.ash.samples() >= self.window_samples {
            let window = self.every * self.ash.samples() as u32;
            out.extend(self.ash.finish(window, now));
        }
        out
    }
}

impl Collector for Activity {
    fn scope(&self) -> crate::collector::Scope {
        crate::collector::Scope::Server
    }

    fn interval(&self) -> Duration {
        self.every
    }

    fn scrapes_per_round(&self) -> u64 {
        self.window_samples
    }

    fn scrape<'a>(&'a mut self, target: &'a Target, now: u64) -> BoxFuture<'a, Result<Vec<Record>, SourceError>> {
        Box::pin(async move {
            let sql = match target {
                Target::Pg(pg) => pg_sample_sql(pg.version(), self.samples_as_logs),
                Target::My(my) => my_sample_sql(my.server, self.samples_as_logs),
            };
            debug_assert_eq!(target.engine(), self.engine);
            let rows = target.query("activity sample", &sql).await?;
            Ok(self.sample(rows, now))
        })
    }

    /// Each recorded scrape is one sample.
    fn replay(&mut self, rows: Vec<Row>, now: u64) -> Result<Vec<Record>, Unreplayable> {
        Ok(self.sample(rows, now))
    }

    fn flush(&mut self, now: u64) -> Vec<Record> {
        match self.ash.samples() {
            0 => Vec::new(),
            n => self.ash.finish(self.every * n as u32, now),
        }
    }
}

/// Each session of one sample as a `db.server.session_sample` log record,
/// raw query text included: the pipeline must sanitize it (the shipped
/// pipelines route activity through `sanitize_pii`).
pub fn sample_logs(sessions: &[Row], now: u64) -> Vec<Record> {
    sessions
        .iter()
        .map(|row| {
            let mut attributes = Map::with_capacity(8);
            let class = text(row, "wait_event_type");
            attributes.insert("db.session.id", row.get("pid").cloned().unwrap_or_default());
            attributes.insert("db.wait.class", Value::Str(class.clone().unwrap_or_else(|| "CPU".into())));
            attributes.insert(
                "db.wait.event",
                Value::Str(if class.is_some() { text(row, "wait_event").unwrap_or_default() } else { "CPU".into() }),
            );
            for (column, attribute) in
                [("query_id", "db.query.id"), ("datname", "db.namespace"), ("usename", "db.user"), ("query", "db.query.text")]
            {
                if let Some(v) = text(row, column) {
                    attributes.insert(attribute, Value::Str(v));
                }
            }
            Record::Log(LogRecord {
                time_unix_nano: now,
                observed_time_unix_nano: now,
                severity_number: 9,
                severity_text: "INFO".into(),
                event_name: "db.server.session_sample".into(),
                body: Value::Nil,
                attributes,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(pid: i64, class: Option<&str>, event: Option<&str>, blocking: Option<&str>) -> Row {
        let mut r = Map::new();
        r.insert("pid", Value::Int(pid));
        r.insert("state", Value::Str("active".into()));
        r.insert("wait_event_type", class.map_or(Value::Nil, |c| Value::Str(c.into())));
        r.insert("wait_event", event.map_or(Value::Nil, |e| Value::Str(e.into())));
        r.insert("query_id", Value::Int(7));
        r.insert("datname", Value::Str("app".into()));
        r.insert("usename", Value::Nil);
        r.insert("blocking", blocking.map_or(Value::Nil, |b| Value::Str(b.into())));
        r
    }

    fn aas(records: &[Record], class: &str) -> f64 {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Metric(m) if m.attributes.get("db.wait.class") == Some(&Value::Str(class.into())) => match m.value {
                    Number::Double(d) => Some(d),
                    Number::Int(i) => Some(i as f64),
                },
                _ => None,
            })
            .sum()
    }

    #[test]
    fn average_active_sessions_is_samples_times_period_over_window() {
        let mut w = AshWindow::new("postgresql", Duration::from_secs(1));
        for _ in 0..60 {
            w.add_sample(&[
                session(1, None, None, None),
                session(2, Some("Timeout"), Some("PgSleep"), None),
                session(3, Some("Timeout"), Some("PgSleep"), None),
            ]);
        }
        for _ in 0..30 {
            w.add_sample(&[session(4, Some("Lock"), Some("relation"), Some("{9}"))]);
        }
        let records = w.finish(Duration::from_secs(60), 1);
        assert!((aas(&records, "CPU") - 1.0).abs() < 1e-9);
        assert!((aas(&records, "Timeout") - 2.0).abs() < 1e-9);
        assert!((aas(&records, "Lock") - 0.5).abs() < 1e-9);
        let blocking: Vec<&LogRecord> = records.iter().filter_map(|r| if let Record::Log(l) = r { Some(l) } else { None }).collect();
        assert_eq!(blocking.len(), 1);
        assert_eq!(blocking[0].attributes.get("db.blocking.session.ids"), Some(&Value::List(vec![Value::Int(9)])));
        assert!(w.finish(Duration::from_secs(60), 2).is_empty(), "a finished window starts empty");
    }

    #[test]
    fn samples_become_logs_with_their_text() {
        let mut row = session(5, None, None, None);
        row.insert("query", Value::Str("select 1".into()));
        let logs = sample_logs(&[row], 3);
        let Record::Log(l) = &logs[0] else { panic!("a log") };
        assert_eq!(l.event_name, "db.server.session_sample");
        assert_eq!(l.attributes.get("db.wait.class"), Some(&Value::Str("CPU".into())));
        assert_eq!(l.attributes.get("db.query.text"), Some(&Value::Str("select 1".into())));
        assert_eq!(l.attributes.get("db.session.id"), Some(&Value::Int(5)));
    }

    #[test]
    fn a_window_closes_after_its_samples_and_a_stop_flushes_the_partial_one() {
        let settings = ActivitySettings { every: Duration::from_secs(1), window: Duration::from_secs(4), samples_as_logs: false };
        let mut a = Activity::new(Engine::Postgres, &settings);
        let busy = || vec![session(1, None, None, None), session(2, Some("Timeout"), Some("PgSleep"), None)];
        for _ in 0..3 {
            assert!(a.replay(busy(), 1).expect("replays").is_empty(), "the window is not complete yet");
        }
        let window = a.replay(busy(), 2).expect("replays");
        assert!((aas(&window, "CPU") - 1.0).abs() < 1e-9);
        // two samples into the next window, then the source stops
        a.replay(busy(), 3).expect("replays");
        a.replay(vec![session(1, None, None, None)], 3).expect("replays");
        let flushed = a.flush(4);
        assert!((aas(&flushed, "CPU") - 1.0).abs() < 1e-9, "two samples of one CPU session: AAS 1");
        assert!((aas(&flushed, "Timeout") - 0.5).abs() < 1e-9, "one of two samples: AAS 0.5");
        assert!(a.flush(5).is_empty(), "nothing twice");
    }

    #[test]
    fn memory_is_bounded_by_keys_not_sessions() {
        let mut w = AshWindow::new("postgresql", Duration::from_secs(1));
        let sessions: Vec<Row> = (0..10_000)
            .map(|i| {
                let mut r = session(i, Some("IO"), Some("DataFileRead"), None);
                r.insert("query_id", Value::Int(i));
                r
            })
            .collect();
        w.add_sample(&sessions);
        let records = w.finish(Duration::from_secs(1), 1);
        assert_eq!(records.len(), MAX_KEYS + 1, "the rest folds into `other`");
        assert!((aas(&records, "other") - (10_000 - MAX_KEYS) as f64).abs() < 1e-9);
    }
}
