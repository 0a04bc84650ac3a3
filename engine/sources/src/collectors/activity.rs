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
//!
//! With `samples_as_logs`, one sample every `samples_every` also leaves as
//! `db.server.query_sample` events, one per session, in New Relic's
//! Database 360 shape (`session_samples.rs`). The sample query itself is
//! bounded on the server (`max_sessions`, blockers looked up for lock
//! waiters only).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dbintel_core::record::{LogRecord, MetricKind, MetricPoint, Number, Record};
use dbintel_core::BoxFuture;
use dbintel_dsl::schema::ActivitySettings;
use dbintel_stdlib::{Map, Value};

use super::session_samples::{sample_logs, ServerFlavor};
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

impl Key {
    /// Where sessions past the key limit, or past the sample's row limit,
    /// are counted.
    fn other() -> Key {
        Key { class: "other".into(), event: "other".into(), query_id: String::new(), database: String::new(), user: String::new() }
    }
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

// the sample queries and the events live with the samples
pub use super::session_samples::{my_sample_sql, my_sample_sql_from, pg_sample_sql, MY_SAMPLE_TEXT_CHARS};

/// `{12,34}` (a PostgreSQL int array as text) or `12,34`.
fn pids(value: Option<String>) -> BTreeSet<i64> {
    value.map(|v| v.trim_matches(['{', '}']).split(',').filter_map(|p| p.trim().parse().ok()).collect()).unwrap_or_default()
}

impl AshWindow {
    /// `system` is the metric prefix (`postgresql`, `mysql`).
    pub fn new(system: &'static str, period: Duration) -> AshWindow {
        AshWindow { system, period, samples: 0, counts: BTreeMap::new(), blocked: BTreeMap::new() }
    }

    /// Adds one sample: the sessions at one instant. Expected columns:
    /// `state`, `wait_event_type`, `wait_event`, `query_id`, `datname`,
    /// `usename`, `pid`, `blocking` (any may be NULL), and optionally
    /// `active_total`, the active sessions the server counted (more than
    /// the rows when the sample was cut at `max_sessions`: the rest count
    /// as `other`). Only active sessions count (PostgreSQL's idle-in-
    /// transaction sessions come along for their locks).
    pub fn add_sample(&mut self, sessions: &[Row]) {
        self.samples += 1;
        let mut active = 0u64;
        let mut total = None;
        for row in sessions {
            total = total.or_else(|| crate::rows::integer(row, "active_total"));
            if text(row, "state").is_some_and(|s| s.starts_with("idle")) {
                continue;
            }
            active += 1;
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
            let key = if self.counts.len() >= MAX_KEYS && !self.counts.contains_key(&key) { Key::other() } else { key };
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
        // sessions the server counted beyond the rows it sent
        let beyond = total.map_or(0, |t| (t.max(0) as u64).saturating_sub(active));
        if beyond > 0 {
            *self.counts.entry(Key::other()).or_default() += beyond;
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
                ..LogRecord::default()
            }));
        }
        self.samples = 0;
        out
    }
}

/// `collect activity`: a sample every `every`, AAS every window; with
/// `samples_as_logs`, each sample's sessions as log records too.
pub struct Activity {
    engine: Engine,
    every: Duration,
    window_samples: u64,
    samples_as_logs: bool,
    /// Samples between two that leave as events (`samples_every`).
    samples_apart: u64,
    /// Samples since the last that left as events.
    since_events: u64,
    max_sessions: usize,
    comment_keys: Vec<String>,
    /// The server, once connected (what a sample's events carry depends
    /// on its version and flavour).
    server: Option<ServerFlavor>,
    ash: AshWindow,
}

impl Activity {
    pub fn new(engine: Engine, settings: &ActivitySettings, comment_keys: Vec<String>) -> Activity {
        let every = settings.every.max(Duration::from_millis(10));
        let window_samples = (settings.window.as_secs_f64() / every.as_secs_f64()).round().max(1.0) as u64;
        let samples_apart = (settings.samples_every.as_secs_f64() / every.as_secs_f64()).round().max(1.0) as u64;
        let system = engine.system();
        Activity {
            engine,
            every,
            window_samples,
            samples_as_logs: settings.samples_as_logs,
            samples_apart,
            // the first sample leaves as events
            since_events: samples_apart,
            max_sessions: settings.max_sessions.max(1) as usize,
            comment_keys,
            server: None,
            ash: AshWindow::new(system, every),
        }
    }

    /// Whether this sample leaves as events too.
    fn events_due(&self) -> bool {
        self.samples_as_logs && self.since_events >= self.samples_apart
    }

    /// Adds one sample; its events when due, and the window's records
    /// when it is complete.
    fn sample(&mut self, rows: Vec<Row>, now: u64, with_events: bool) -> Vec<Record> {
        self.ash.add_sample(&rows);
        let mut out = Vec::new();
        if with_events {
            self.since_events = 0;
            out = sample_logs(self.engine, self.server, &rows, now, &self.comment_keys);
        }
        self.since_events += 1;
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
            // the details (text, client, the lock waited for) only when
            // this sample leaves as events
            let details = self.events_due();
            let sql = match target {
                Target::Pg(pg) => {
                    self.server = Some(ServerFlavor { mariadb: false, version: pg.version() });
                    pg_sample_sql(pg.version(), details, self.max_sessions)
                }
                Target::My(my) => {
                    self.server = Some(ServerFlavor { mariadb: my.server.mariadb, version: my.server.version });
                    my_sample_sql(my.server, details, self.max_sessions)
                }
            };
            debug_assert_eq!(target.engine(), self.engine);
            let rows = target.query("activity sample", &sql).await?;
            Ok(self.sample(rows, now, details))
        })
    }

    /// Each recorded scrape is one sample.
    fn replay(&mut self, rows: Vec<Row>, now: u64) -> Result<Vec<Record>, Unreplayable> {
        let details = self.events_due();
        Ok(self.sample(rows, now, details))
    }

    fn flush(&mut self, now: u64) -> Vec<Record> {
        match self.ash.samples() {
            0 => Vec::new(),
            n => self.ash.finish(self.every * n as u32, now),
        }
    }
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
    db360: None,
    description: "a session waiting for a lock, and who holds it (once per window)",
};

/// dbintel's own names on a sample, beside New Relic's.
const SAMPLE_OWN: &[&str] = &["db.session.id", "db.wait.class", "db.wait.event", "db.query.id", "db.user"];

pub const PG_DECLARATION: Declaration = Declaration {
    collector: "activity",
    engine: Engine::Postgres,
    metrics: &[ash("postgresql.ash.active_sessions")],
    events: &[
        BLOCKING,
        Event {
            name: "db.server.query_sample",
            attributes: SAMPLE_OWN,
            db360: Some(&crate::db360::PG_QUERY_SAMPLE),
            description:
                "each session running a statement (or idle in a transaction), one sample per samples_every (samples_as_logs = true)",
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
            attributes: SAMPLE_OWN,
            db360: Some(&crate::db360::MY_QUERY_SAMPLE),
            description: "each thread running a statement, one sample per samples_every (samples_as_logs = true)",
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
        let flavor = ServerFlavor { mariadb: false, version: 150004 };
        let logs = sample_logs(Engine::Postgres, Some(flavor), &[row], 3, &["nr_service_guid".into()]);
        let Record::Log(l) = &logs[0] else { panic!("a log") };
        assert_eq!(l.event_name, "db.server.query_sample");
        assert_eq!(l.attributes.get("postgresql.pid"), Some(&Value::Int(5)));
        assert_eq!(l.attributes.get("db.system.name"), Some(&Value::Str("postgresql".into())));
        assert_eq!(l.attributes.get("postgresql.blocking.pids"), Some(&Value::Str("{}".into())));
        let server = crate::db360::Server { engine: Engine::Postgres, mariadb: false, version: 150004 };
        for record in &logs {
            let problems = crate::catalogue::conformance(Engine::Postgres, &Map::new(), record);
            assert!(problems.is_empty(), "{problems:?}");
            let Record::Log(l) = record else { continue };
            assert_eq!(crate::db360::problems(server, l), Vec::<String>::new());
        }
        assert_eq!(l.attributes.get("db.wait.class"), Some(&Value::Str("CPU".into())));
        assert_eq!(l.attributes.get("db.query.text"), Some(&Value::Str("select 1".into())));
        assert_eq!(l.attributes.get("db.session.id"), Some(&Value::Int(5)));
    }

    #[test]
    fn a_window_closes_after_its_samples_and_a_stop_flushes_the_partial_one() {
        let settings = ActivitySettings {
            every: Duration::from_secs(1),
            window: Duration::from_secs(4),
            samples_as_logs: false,
            samples_every: Duration::from_secs(10),
            max_sessions: 1000,
        };
        let mut a = Activity::new(Engine::Postgres, &settings, Vec::new());
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
