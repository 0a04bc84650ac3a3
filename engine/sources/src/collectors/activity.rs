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

use crate::catalogue::{attr, Attr, Declaration, Event, Instrument, Level, Metric, Origin};
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
    let (query, details) = if with_text {
        (
            "a.query",
            "a.application_name, a.query_start::text AS query_start,
                (extract(epoch FROM clock_timestamp() - a.query_start) * 1000)::float8 AS duration_ms",
        )
    } else {
        ("NULL::text", "NULL::text AS application_name, NULL::text AS query_start, NULL::float8 AS duration_ms")
    };
    format!(
        "SELECT a.pid, a.datname::text AS datname, a.usename::text AS usename, a.state,
                a.wait_event_type, a.wait_event, {query_id} AS query_id, {query} AS query, {details},
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
    my_sample_sql_from(server, with_text, "performance_schema")
}

/// [`my_sample_sql`] reading performance_schema's tables from `schema`
/// (tests run the MySQL 8 form against look-alike tables in MariaDB).
pub fn my_sample_sql_from(server: crate::mysql::MyServer, with_text: bool, schema: &str) -> String {
    let query = if with_text { format!("LEFT(t.PROCESSLIST_INFO, {MY_SAMPLE_TEXT_CHARS})") } else { "NULL".to_string() };
    let blockers = if server.mariadb || server.version < 80000 {
        "SELECT r.trx_mysql_thread_id AS waiting, GROUP_CONCAT(DISTINCT h.trx_mysql_thread_id) AS blockers
           FROM information_schema.INNODB_LOCK_WAITS lw
           JOIN information_schema.INNODB_TRX r ON r.trx_id = lw.requesting_trx_id
           JOIN information_schema.INNODB_TRX h ON h.trx_id = lw.blocking_trx_id
          GROUP BY r.trx_mysql_thread_id"
            .to_string()
    } else {
        format!(
            "SELECT wt.PROCESSLIST_ID AS waiting, GROUP_CONCAT(DISTINCT bt.PROCESSLIST_ID) AS blockers
           FROM {schema}.data_lock_waits lw
           JOIN {schema}.threads wt ON wt.THREAD_ID = lw.REQUESTING_THREAD_ID
           JOIN {schema}.threads bt ON bt.THREAD_ID = lw.BLOCKING_THREAD_ID
          GROUP BY wt.PROCESSLIST_ID"
        )
    };
    format!(
        "SELECT t.PROCESSLIST_ID AS pid, t.PROCESSLIST_DB AS datname, t.PROCESSLIST_USER AS usename,
                t.PROCESSLIST_COMMAND AS state,
                CASE WHEN b.blockers IS NOT NULL THEN 'Lock'
                     WHEN w.EVENT_NAME IS NULL THEN NULL
                     ELSE SUBSTRING_INDEX(SUBSTRING_INDEX(w.EVENT_NAME, '/', 2), '/', -1) END AS wait_event_type,
                CASE WHEN b.blockers IS NOT NULL THEN 'row lock' ELSE w.EVENT_NAME END AS wait_event,
                NULL AS query_id, {query} AS query, b.blockers AS blocking,
                t.THREAD_ID AS thread_id, t.PROCESSLIST_STATE AS processlist_state, w.TIMER_WAIT / 1e12 AS wait_seconds
           FROM {schema}.threads t
           LEFT JOIN {schema}.events_waits_current w ON w.THREAD_ID = t.THREAD_ID AND w.END_EVENT_ID IS NULL
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
        let mut out = if self.samples_as_logs && !rows.is_empty() { sample_logs(self.engine, &rows, now) } else { Vec::new() };
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

/// Each session of one sample as a `db.server.query_sample` log record in
/// the contrib receivers' shape (and dbintel's `db.*` names), raw query
/// text included: the pipeline must sanitize it (the shipped pipelines
/// route activity through `sanitize_pii`).
pub fn sample_logs(engine: Engine, sessions: &[Row], now: u64) -> Vec<Record> {
    sessions
        .iter()
        .map(|row| {
            let mut attributes = Map::with_capacity(20);
            let class = text(row, "wait_event_type");
            let pid = row.get("pid").cloned().unwrap_or_default();
            let event = if class.is_some() { text(row, "wait_event").unwrap_or_default() } else { "CPU".into() };
            attributes.insert("db.session.id", pid.clone());
            attributes.insert("db.wait.class", Value::Str(class.clone().unwrap_or_else(|| "CPU".into())));
            attributes.insert("db.wait.event", Value::Str(event.clone()));
            for (column, attribute) in
                [("query_id", "db.query.id"), ("datname", "db.namespace"), ("usename", "db.user"), ("query", "db.query.text")]
            {
                if let Some(v) = text(row, column) {
                    attributes.insert(attribute, Value::Str(v));
                }
            }
            attributes.insert("db.system.name", Value::Str(engine.system().into()));
            if let Some(user) = text(row, "usename") {
                attributes.insert("user.name", Value::Str(user));
            }
            let copy = |attributes: &mut Map, column: &str, attribute: &str| {
                if let Some(v) = row.get(column).filter(|v| !v.is_nil()) {
                    attributes.insert(attribute, v.clone());
                }
            };
            match engine {
                Engine::Postgres => {
                    attributes.insert("postgresql.pid", pid);
                    copy(&mut attributes, "state", "postgresql.state");
                    attributes.insert("postgresql.wait_event_type", Value::Str(class.unwrap_or_default()));
                    attributes.insert("postgresql.wait_event", Value::Str(text(row, "wait_event").unwrap_or_default()));
                    if let Some(id) = text(row, "query_id") {
                        attributes.insert("postgresql.query_id", Value::Str(id));
                    }
                    copy(&mut attributes, "application_name", "postgresql.application_name");
                    copy(&mut attributes, "query_start", "postgresql.query_start");
                    copy(&mut attributes, "duration_ms", "postgresql.total_exec_time");
                    attributes.insert("postgresql.blocking.pids", Value::Str(format!("{{{}}}", blocking_list(row))));
                }
                Engine::MySql => {
                    attributes.insert("mysql.session.id", pid);
                    copy(&mut attributes, "thread_id", "mysql.threads.thread_id");
                    copy(&mut attributes, "state", "mysql.threads.processlist_command");
                    copy(&mut attributes, "processlist_state", "mysql.threads.processlist_state");
                    let waiting = class.is_some();
                    attributes.insert("mysql.session.status", Value::Str(if waiting { "waiting" } else { "running" }.into()));
                    attributes.insert("mysql.wait_type", Value::Str(event));
                    copy(&mut attributes, "wait_seconds", "mysql.events_waits_current.timer_wait");
                }
            }
            Record::Log(LogRecord {
                time_unix_nano: now,
                observed_time_unix_nano: now,
                severity_number: 9,
                severity_text: "INFO".into(),
                event_name: "db.server.query_sample".into(),
                body: Value::Nil,
                attributes,
            })
        })
        .collect()
}

/// The blocking session ids of a row, comma-separated.
fn blocking_list(row: &Row) -> String {
    pids(text(row, "blocking")).iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

const ASH_ATTRIBUTES: &[Attr] =
    &[attr("db.wait.class", &[]), attr("db.wait.event", &[]), attr("db.query.id", &[]), attr("db.namespace", &[]), attr("db.user", &[])];

const fn ash(name: &'static str) -> Metric {
    Metric {
        name,
        unit: "{session}",
        instrument: Instrument::Gauge,
        double: true,
        level: Level::Instance,
        attributes: ASH_ATTRIBUTES,
        origin: Origin::Dbintel,
        description: "average active sessions over the window, by wait, statement, database and user",
    }
}

const BLOCKING: Event = Event {
    name: "db.server.blocking",
    attributes: &["db.session.id", "db.blocking.session.ids", "db.wait.event", "db.query.id"],
    description: "a session waiting for a lock, and who holds it (once per window)",
};

const SAMPLE_COMMON: [&str; 9] = [
    "db.session.id",
    "db.wait.class",
    "db.wait.event",
    "db.query.id",
    "db.namespace",
    "db.user",
    "db.query.text",
    "db.system.name",
    "user.name",
];

pub const PG_DECLARATION: Declaration = Declaration {
    collector: "activity",
    engine: Engine::Postgres,
    metrics: &[ash("postgresql.ash.active_sessions")],
    events: &[
        BLOCKING,
        Event {
            name: "db.server.query_sample",
            attributes: &[
                SAMPLE_COMMON[0],
                SAMPLE_COMMON[1],
                SAMPLE_COMMON[2],
                SAMPLE_COMMON[3],
                SAMPLE_COMMON[4],
                SAMPLE_COMMON[5],
                SAMPLE_COMMON[6],
                SAMPLE_COMMON[7],
                SAMPLE_COMMON[8],
                "postgresql.pid",
                "postgresql.state",
                "postgresql.wait_event_type",
                "postgresql.wait_event",
                "postgresql.query_id",
                "postgresql.application_name",
                "postgresql.query_start",
                "postgresql.total_exec_time",
                "postgresql.blocking.pids",
            ],
            description: "each active session of each sample (samples_as_logs = true)",
        },
    ],
};

pub const MY_DECLARATION: Declaration = Declaration {
    collector: "activity",
    engine: Engine::MySql,
    metrics: &[ash("mysql.ash.active_sessions")],
    events: &[
        BLOCKING,
        Event {
            name: "db.server.query_sample",
            attributes: &[
                SAMPLE_COMMON[0],
                SAMPLE_COMMON[1],
                SAMPLE_COMMON[2],
                SAMPLE_COMMON[3],
                SAMPLE_COMMON[4],
                SAMPLE_COMMON[5],
                SAMPLE_COMMON[6],
                SAMPLE_COMMON[7],
                SAMPLE_COMMON[8],
                "mysql.session.id",
                "mysql.threads.thread_id",
                "mysql.threads.processlist_command",
                "mysql.threads.processlist_state",
                "mysql.session.status",
                "mysql.wait_type",
                "mysql.events_waits_current.timer_wait",
            ],
            description: "each active thread of each sample (samples_as_logs = true)",
        },
    ],
};

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
        let logs = sample_logs(Engine::Postgres, &[row], 3);
        let Record::Log(l) = &logs[0] else { panic!("a log") };
        assert_eq!(l.event_name, "db.server.query_sample");
        assert_eq!(l.attributes.get("postgresql.pid"), Some(&Value::Int(5)));
        assert_eq!(l.attributes.get("db.system.name"), Some(&Value::Str("postgresql".into())));
        assert_eq!(l.attributes.get("postgresql.blocking.pids"), Some(&Value::Str("{}".into())));
        for record in &logs {
            let problems = crate::catalogue::conformance(Engine::Postgres, &Map::new(), record);
            assert!(problems.is_empty(), "{problems:?}");
        }
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
