//! Entries to records, per collector.
//!
//! Events leave as their entries are read; counts and sums add up in a
//! [`Window`] of `interval` and leave as delta points when it closes (the
//! window's state is checkpointed with the offsets, so a restart neither
//! loses nor repeats a count). Every point is built from its declaration
//! in `dbintel_sources::log_catalogue`.
//!
//! Text stays raw here — messages in `db.log.message`, DETAIL/HINT/CONTEXT
//! in `db.log.*`, statements in `db.query.text` (a deadlock's other
//! statements in `db.deadlock.other_query.text`, out of the DETAIL) — for
//! the pipeline's sanitize rules, which run before anything is queued.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use dbintel_core::record::{LogRecord, Record};
use dbintel_dsl::plan::SourceNode;
use dbintel_dsl::schema::{LogSeverity, PgLogErrorsSettings, SlowQueriesSettings};
use dbintel_sources::catalogue::{Metric, DATABASE_NAME, SCHEMA_NAME, TABLE_NAME};
use dbintel_sources::log_catalogue as cat;
use dbintel_stdlib::{Map, Value};

use crate::classify::{self, Kind};
use crate::entry::{Entry, MyErrorEntry, PgEntry, SlowEntry};
use crate::plan::{LogPlans, NoPlan};

/// Records by the collector (pipeline port) they leave through.
pub type Out = Vec<(&'static str, Record)>;

/// Series a window holds at most; past it new series are dropped and
/// counted (a guard against a flood of distinct SQLSTATEs or tables).
pub const MAX_SERIES: usize = 20_000;

/// One metric series of a window.
#[derive(Debug, Clone)]
pub struct Series {
    pub collector: &'static str,
    pub metric: &'static Metric,
    pub attributes: Map,
    pub value: f64,
}

/// Counts and sums over `interval`, closed into delta points.
#[derive(Debug, Clone)]
pub struct Window {
    pub start: u64,
    pub interval: Duration,
    series: HashMap<String, Series>,
    /// Series dropped for [`MAX_SERIES`] since the last close.
    pub overflow: u64,
    /// Where keys are written (most adds find their series: no allocation).
    scratch: String,
}

/// A series' key: collector, metric and attributes in name order (so the
/// order they were built in does not matter), written into `out`.
fn write_key(out: &mut String, collector: &str, metric: &str, attributes: &Map) {
    use std::fmt::Write;
    out.clear();
    out.push_str(collector);
    out.push('\u{1}');
    out.push_str(metric);
    let mut sorted: Vec<(&str, &Value)> = attributes.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (name, value) in sorted {
        let _ = write!(out, "\u{1}{name}={value}");
    }
}

fn key(collector: &str, metric: &str, attributes: &Map) -> String {
    let mut k = String::new();
    write_key(&mut k, collector, metric, attributes);
    k
}

impl Window {
    pub fn new(start: u64, interval: Duration) -> Window {
        Window { start, interval, series: HashMap::new(), overflow: 0, scratch: String::new() }
    }

    fn entry(&mut self, collector: &'static str, metric: &'static Metric, attributes: Map) -> Option<&mut Series> {
        write_key(&mut self.scratch, collector, metric.name, &attributes);
        if !self.series.contains_key(self.scratch.as_str()) {
            if self.series.len() >= MAX_SERIES {
                self.overflow += 1;
                return None;
            }
            // one order of attributes, whatever built them (a restored
            // window comes back sorted)
            let mut sorted = attributes.into_entries();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let attributes: Map = sorted.into_iter().collect();
            self.series.insert(self.scratch.clone(), Series { collector, metric, attributes, value: 0.0 });
        }
        self.series.get_mut(self.scratch.as_str())
    }

    /// Adds to a sum.
    pub fn add(&mut self, collector: &'static str, metric: &'static Metric, attributes: Map, value: f64) {
        if let Some(s) = self.entry(collector, metric, attributes) {
            s.value += value;
        }
    }

    /// Adds to a sum whose attributes are plain strings, given in name
    /// order (the hot path: every error counted): the series' map is
    /// built only the first time.
    pub fn add_text(&mut self, collector: &'static str, metric: &'static Metric, attributes: &[(&'static str, Option<&str>)], value: f64) {
        use std::fmt::Write;
        self.scratch.clear();
        self.scratch.push_str(collector);
        self.scratch.push('\u{1}');
        self.scratch.push_str(metric.name);
        for (name, v) in attributes {
            if let Some(v) = v {
                let _ = write!(self.scratch, "\u{1}{name}={v}");
            }
        }
        if let Some(series) = self.series.get_mut(self.scratch.as_str()) {
            series.value += value;
            return;
        }
        let map: Map = attributes.iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), Value::Str(v.to_string())))).collect();
        self.add(collector, metric, map, value);
    }

    /// Sets a gauge (the last value wins).
    pub fn set(&mut self, collector: &'static str, metric: &'static Metric, attributes: Map, value: f64) {
        if let Some(s) = self.entry(collector, metric, attributes) {
            s.value = value;
        }
    }

    pub fn due(&self, now: u64) -> bool {
        now >= self.start.saturating_add(self.interval.as_nanos() as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The window's points, ending at `now`; a new window starts. The slow
    /// log's statements beyond the `slow_top` by time are summed under
    /// `db.query.id = other`.
    pub fn close(&mut self, now: u64, slow_top: usize) -> Out {
        let series: Vec<Series> = std::mem::take(&mut self.series).into_values().collect();
        let series = top_slow(series, slow_top);
        let start = self.start;
        self.start = now;
        let mut out: Out = series.into_iter().map(|s| (s.collector, s.metric.point(s.value, start, now, s.attributes))).collect();
        // stable order: by collector, metric, attributes
        out.sort_by_cached_key(|(c, r)| match r {
            Record::Metric(m) => key(c, &m.name, &m.attributes),
            Record::Log(_) => String::new(),
        });
        out
    }

    /// The window as JSON, for the checkpoint.
    pub fn to_json(&self) -> serde_json::Value {
        let series: Vec<serde_json::Value> = self
            .series
            .values()
            .map(|s| {
                serde_json::json!({
                    "collector": s.collector,
                    "metric": s.metric.name,
                    "attributes": dbintel_stdlib::functions::to_json(&Value::Map(s.attributes.clone())),
                    "value": s.value,
                })
            })
            .collect();
        serde_json::json!({ "start": self.start, "series": series })
    }

    /// Restores a checkpointed window (series of metrics or collectors
    /// this version does not know are left out).
    pub fn restore(&mut self, json: &serde_json::Value, collectors: &[&'static str]) {
        if let Some(start) = json.get("start").and_then(serde_json::Value::as_u64) {
            self.start = start;
        }
        for s in json.get("series").and_then(serde_json::Value::as_array).into_iter().flatten() {
            let (Some(collector), Some(metric), Some(value)) = (
                s.get("collector").and_then(serde_json::Value::as_str).and_then(|c| collectors.iter().find(|k| **k == c).copied()),
                s.get("metric").and_then(serde_json::Value::as_str).and_then(cat::metric),
                s.get("value").and_then(serde_json::Value::as_f64),
            ) else {
                continue;
            };
            let attributes = match s.get("attributes").cloned().map(dbintel_stdlib::functions::from_json) {
                Some(Value::Map(m)) => m,
                _ => Map::new(),
            };
            self.add(collector, metric, attributes, value);
        }
    }
}

/// Keeps the slow log's `top` statements by time; the others' values go
/// under `db.query.id = other` (per database).
fn top_slow(series: Vec<Series>, top: usize) -> Vec<Series> {
    let id = |s: &Series| s.attributes.get("db.query.id").and_then(Value::as_str).map(str::to_string);
    let mut time: HashMap<String, f64> = HashMap::new();
    for s in series.iter().filter(|s| s.metric.name == cat::MY_SLOW_TIME.name) {
        if let Some(id) = id(s) {
            *time.entry(id).or_default() += s.value;
        }
    }
    if time.len() <= top {
        return series;
    }
    let mut ranked: Vec<(String, f64)> = time.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let kept: HashSet<String> = ranked.into_iter().take(top).map(|(id, _)| id).collect();
    let mut out: Vec<Series> = Vec::new();
    let mut other: HashMap<String, Series> = HashMap::new();
    for mut s in series {
        match id(&s) {
            Some(i) if s.metric.name.starts_with("mysql.slow_query.") && !kept.contains(&i) => {
                s.attributes.insert("db.query.id", Value::Str("other".into()));
                let k = key(s.collector, s.metric.name, &s.attributes);
                other.entry(k).and_modify(|o| o.value += s.value).or_insert(s);
            }
            _ => out.push(s),
        }
    }
    out.extend(other.into_values());
    out
}

/// Which collectors a log source runs, with their settings.
#[derive(Debug, Clone, Default)]
pub struct Enabled {
    pub plans: bool,
    /// The least severe entry `errors` counts (index into
    /// [`classify::ERROR_SEVERITIES`]).
    pub errors: Option<usize>,
    pub locks: bool,
    pub temp_files: bool,
    pub autovacuum: bool,
    pub checkpoints: bool,
    pub connections: bool,
    /// `slow_queries`: the top statements kept per window.
    pub slow_queries: Option<usize>,
    pub my_errors: bool,
}

impl Enabled {
    pub fn of(node: &SourceNode) -> Enabled {
        let mysql = node.kind == "mysql_logs";
        let mut e = Enabled::default();
        for (name, spec) in &node.collectors {
            match (mysql, name.as_str()) {
                (false, "plans") => e.plans = true,
                (false, "errors") => {
                    let s = PgLogErrorsSettings::from_settings(&spec.settings);
                    e.errors = Some(match s.min_severity {
                        LogSeverity::Warning => 0,
                        LogSeverity::Error => 1,
                        LogSeverity::Fatal => 2,
                        LogSeverity::Panic => 3,
                    });
                }
                (false, "locks") => e.locks = true,
                (false, "temp_files") => e.temp_files = true,
                (false, "autovacuum") => e.autovacuum = true,
                (false, "checkpoints") => e.checkpoints = true,
                (false, "connections") => e.connections = true,
                (true, "slow_queries") => e.slow_queries = Some(SlowQueriesSettings::from_settings(&spec.settings).top.max(1) as usize),
                (true, "errors") => e.my_errors = true,
                _ => {}
            }
        }
        e
    }

    /// The collector names, as the pipeline's ports spell them.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        for (on, name) in [
            (self.plans, "plans"),
            (self.errors.is_some() || self.my_errors, "errors"),
            (self.locks, "locks"),
            (self.temp_files, "temp_files"),
            (self.autovacuum, "autovacuum"),
            (self.checkpoints, "checkpoints"),
            (self.connections, "connections"),
            (self.slow_queries.is_some(), "slow_queries"),
        ] {
            if on {
                names.push(name);
            }
        }
        names
    }
}

/// Things worth saying once that a mapping ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Notice {
    /// A plan was not JSON (`auto_explain.log_format` is text).
    PlanNotJson,
    /// An entry's time could not be read (a zone abbreviation in
    /// `log_timezone`): the time it was read was used.
    UnknownTimeZone,
}

/// Turns entries into records; holds the window and what the events
/// need to remember.
pub struct Mapper {
    pub enabled: Enabled,
    pub window: Window,
    /// Where plans go (set by the live source; replay: events).
    pub plans: LogPlans,
    /// The reason of the last `checkpoint starting:` / `restartpoint starting:`.
    checkpoint_reason: [Option<String>; 2],
    /// Slow-log fingerprints sampled in this window.
    slow_sampled: HashSet<String>,
    pub notices: HashSet<Notice>,
}

fn text(v: &Option<String>) -> Option<Value> {
    v.as_ref().map(|s| Value::Str(s.clone()))
}

/// An event. The server's message, when there is one, is the
/// `db.log.message` attribute rather than the body: the shipped sanitize
/// rules work on attributes of every record (a body is a log's only).
fn event(name: &str, severity_number: i32, severity_text: &str, time: u64, now: u64, message: Value, mut attributes: Map) -> Record {
    if !message.is_nil() {
        attributes.insert("db.log.message", message);
    }
    Record::Log(LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: now,
        severity_number,
        severity_text: severity_text.to_string(),
        event_name: name.to_string(),
        body: Value::Nil,
        attributes,
        ..LogRecord::default()
    })
}

fn put(m: &mut Map, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        m.insert(key, v);
    }
}

impl Mapper {
    pub fn new(enabled: Enabled, window_start: u64, interval: Duration) -> Mapper {
        Mapper {
            enabled,
            window: Window::new(window_start, interval),
            plans: LogPlans::default(),
            checkpoint_reason: [None, None],
            slow_sampled: HashSet::new(),
            notices: HashSet::new(),
        }
    }

    /// Closes the window: its points.
    pub fn close_window(&mut self, now: u64) -> Out {
        self.slow_sampled.clear();
        self.window.close(now, self.enabled.slow_queries.unwrap_or(usize::MAX))
    }

    /// The records of one entry.
    pub fn map(&mut self, entry: Entry, file: &str, now: u64, out: &mut Out) {
        match entry {
            Entry::Pg(e) => self.pg(e, file, now, out),
            Entry::Slow(e) => self.slow(&e, file, now, out),
            Entry::MyError(e) => self.my_error(&e, file, now, out),
        }
    }

    fn time(&mut self, time: Option<u64>, now: u64) -> u64 {
        time.unwrap_or_else(|| {
            self.notices.insert(Notice::UnknownTimeZone);
            now
        })
    }

    /// What every event of a PostgreSQL session carries (taken from the
    /// entry; the database is kept for the counts).
    fn session(e: &mut PgEntry, file: &str) -> Map {
        let mut m = Map::with_capacity(12);
        put(&mut m, "db.query.id", e.query_id.take().map(Value::Str));
        put(&mut m, "db.namespace", text(&e.database));
        put(&mut m, "db.user", e.user.take().map(Value::Str));
        put(&mut m, "db.session.id", e.pid.map(Value::Int));
        put(&mut m, "postgresql.application_name", e.application.take().map(Value::Str));
        // a client backend is what most entries come from: named only when
        // it is something else (autovacuum worker, checkpointer, walsender…)
        put(&mut m, "postgresql.backend_type", e.backend_type.take().filter(|b| b != "client backend").map(Value::Str));
        m.insert("log.file.name", Value::Str(file.to_string()));
        m
    }

    fn db(e: &PgEntry) -> Map {
        let mut m = Map::new();
        put(&mut m, "db.namespace", text(&e.database));
        m
    }

    fn pg(&mut self, mut e: PgEntry, file: &str, now: u64, out: &mut Out) {
        let kind = classify::classify(&e);
        let sqlstate = e.sqlstate.clone().or_else(|| classify::implied_sqlstate(&kind).map(str::to_string));
        // every error and warning is counted, whatever else it is
        if let Some(min) = self.enabled.errors {
            if let Some(rank) = classify::ERROR_SEVERITIES.iter().position(|s| *s == e.severity) {
                if rank >= min {
                    let attributes = [
                        ("db.namespace", e.database.as_deref()),
                        ("db.response.status_code", sqlstate.as_deref()),
                        ("severity", Some(e.severity.as_str())),
                    ];
                    self.window.add_text("errors", &cat::PG_ERRORS, &attributes, 1.0);
                }
            }
        }
        let time = self.time(e.time, now);
        let severity = classify::severity_number(&e.severity);
        match kind {
            Kind::Plan { duration_ms, plan_at } if self.enabled.plans => {
                let context = Self::session(&mut e, file);
                let plan = e.message.get(plan_at..).unwrap_or_default();
                match crate::plan::plan_event(plan, duration_ms, context, time, now, &self.plans) {
                    Ok(records) => out.extend(records.into_iter().map(|r| ("plans", r))),
                    Err(NoPlan::NotJson) => {
                        self.notices.insert(Notice::PlanNotJson);
                    }
                }
            }
            Kind::Deadlock if self.enabled.locks => {
                self.window.add("locks", &cat::PG_DEADLOCKS, Self::db(&e), 1.0);
                let mut a = Self::session(&mut e, file);
                put(&mut a, "db.response.status_code", sqlstate.map(Value::Str));
                // the DETAIL's `Process N: statement` lines are statements:
                // out of the detail, into their own attribute
                let (graph, others, pids) = deadlock_detail(e.detail.as_deref().unwrap_or(""), e.statement.as_deref());
                put(&mut a, "db.query.text", e.statement.take().map(Value::Str));
                put(&mut a, "db.log.detail", (!graph.is_empty()).then_some(Value::Str(graph)));
                put(&mut a, "db.deadlock.other_query.text", (!others.is_empty()).then(|| Value::Str(others.join(";\n"))));
                a.insert("db.deadlock.session.ids", Value::List(pids.into_iter().map(Value::Int).collect()));
                out.push((
                    "locks",
                    event("db.server.deadlock", severity, &e.severity, time, now, Value::Str(std::mem::take(&mut e.message)), a),
                ));
            }
            Kind::LockWait(w) if self.enabled.locks => {
                let mut key = Map::new();
                key.insert("db.lock.mode", Value::Str(w.mode.clone()));
                key.insert("db.lock.object", Value::Str(w.object.clone()));
                match w.state {
                    "waiting" => self.window.add("locks", &cat::PG_LOCK_WAITS, key, 1.0),
                    "acquired" => self.window.add("locks", &cat::PG_LOCK_WAIT_TIME, key, w.after_ms),
                    _ => {}
                }
                let mut a = Self::session(&mut e, file);
                a.insert("db.lock.state", Value::Str(w.state.into()));
                a.insert("db.lock.mode", Value::Str(w.mode));
                a.insert("db.lock.object", Value::Str(w.object));
                a.insert("db.lock.wait_ms", Value::Double(w.after_ms));
                a.insert("db.blocking.session.ids", Value::List(w.holders.into_iter().map(Value::Int).collect()));
                put(&mut a, "db.query.text", e.statement.take().map(Value::Str));
                out.push(("locks", event("db.server.lock_wait", 13, "WARN", time, now, Value::Nil, a)));
            }
            Kind::TempFile { size } if self.enabled.temp_files => {
                self.window.add("temp_files", &cat::PG_TEMP_FILES, Self::db(&e), 1.0);
                self.window.add("temp_files", &cat::PG_TEMP_BYTES, Self::db(&e), size as f64);
                let mut a = Self::session(&mut e, file);
                a.insert("db.temp_file.size", Value::Int(size as i64));
                put(&mut a, "db.query.text", e.statement.take().map(Value::Str));
                out.push(("temp_files", event("db.server.temp_file", 9, "INFO", time, now, Value::Nil, a)));
            }
            Kind::Autovacuum(v) if self.enabled.autovacuum => {
                let table = table_attributes(&v.table);
                let mut kind = table.clone();
                kind.insert("kind", Value::Str("vacuum".into()));
                self.window.add("autovacuum", &cat::PG_VACUUM_RUNS, kind.clone(), 1.0);
                if let Some(s) = v.elapsed_s {
                    self.window.add("autovacuum", &cat::PG_VACUUM_TIME, kind, s);
                }
                if let Some(n) = v.pages_removed {
                    self.window.add("autovacuum", &cat::PG_VACUUM_PAGES, table.clone(), n as f64);
                }
                if let Some(n) = v.tuples_removed {
                    self.window.add("autovacuum", &cat::PG_VACUUM_TUPLES, table.clone(), n as f64);
                }
                if let Some(n) = v.dead_tuples_not_removable {
                    self.window.set("autovacuum", &cat::PG_VACUUM_DEAD, table.clone(), n as f64);
                }
                let mut a = table;
                a.insert("postgresql.vacuum.kind", Value::Str("vacuum".into()));
                a.insert("postgresql.vacuum.aggressive", Value::Bool(v.aggressive));
                a.insert("postgresql.vacuum.wraparound", Value::Bool(v.wraparound));
                let int = |n: Option<i64>| n.map(Value::Int);
                put(&mut a, "postgresql.vacuum.index_scans", int(v.index_scans));
                put(&mut a, "postgresql.vacuum.pages_removed", int(v.pages_removed));
                put(&mut a, "postgresql.vacuum.pages_remaining", int(v.pages_remaining));
                put(&mut a, "postgresql.vacuum.tuples_removed", int(v.tuples_removed));
                put(&mut a, "postgresql.vacuum.tuples_remaining", int(v.tuples_remaining));
                put(&mut a, "postgresql.vacuum.dead_tuples", int(v.dead_tuples_not_removable));
                put(&mut a, "postgresql.vacuum.wal_bytes", int(v.wal_bytes));
                put(&mut a, "postgresql.vacuum.elapsed", v.elapsed_s.map(Value::Double));
                a.insert("log.file.name", Value::Str(file.to_string()));
                out.push(("autovacuum", event("db.server.autovacuum", 9, "INFO", time, now, Value::Nil, a)));
            }
            Kind::Autoanalyze(v) if self.enabled.autovacuum => {
                let mut a = table_attributes(&v.table);
                let mut kind = a.clone();
                kind.insert("kind", Value::Str("analyze".into()));
                self.window.add("autovacuum", &cat::PG_VACUUM_RUNS, kind.clone(), 1.0);
                if let Some(s) = v.elapsed_s {
                    self.window.add("autovacuum", &cat::PG_VACUUM_TIME, kind, s);
                }
                a.insert("postgresql.vacuum.kind", Value::Str("analyze".into()));
                put(&mut a, "postgresql.vacuum.elapsed", v.elapsed_s.map(Value::Double));
                a.insert("log.file.name", Value::Str(file.to_string()));
                out.push(("autovacuum", event("db.server.autovacuum", 9, "INFO", time, now, Value::Nil, a)));
            }
            Kind::CheckpointStart { restartpoint, reason } => {
                self.checkpoint_reason[usize::from(restartpoint)] = Some(reason);
            }
            Kind::CheckpointComplete(c) if self.enabled.checkpoints => {
                let kind = if c.restartpoint { "restartpoint" } else { "checkpoint" };
                let mut k = Map::new();
                k.insert("kind", Value::Str(kind.into()));
                self.window.add("checkpoints", &cat::PG_CHECKPOINTS, k, 1.0);
                for (phase, s) in [("write", c.write_s), ("sync", c.sync_s), ("total", c.total_s)] {
                    if let Some(s) = s {
                        let mut p = Map::new();
                        p.insert("phase", Value::Str(phase.into()));
                        self.window.add("checkpoints", &cat::PG_CHECKPOINT_TIME, p, s);
                    }
                }
                if let Some(n) = c.buffers {
                    self.window.add("checkpoints", &cat::PG_CHECKPOINT_BUFFERS, Map::new(), n as f64);
                }
                if let Some(n) = c.distance_bytes {
                    self.window.add("checkpoints", &cat::PG_CHECKPOINT_DISTANCE, Map::new(), n as f64);
                }
                let mut a = Map::new();
                a.insert("postgresql.checkpoint.kind", Value::Str(kind.into()));
                put(&mut a, "postgresql.checkpoint.reason", self.checkpoint_reason[usize::from(c.restartpoint)].take().map(Value::Str));
                let int = |n: Option<i64>| n.map(Value::Int);
                put(&mut a, "postgresql.checkpoint.buffers", int(c.buffers));
                put(&mut a, "postgresql.checkpoint.wal_added", int(c.wal_added));
                put(&mut a, "postgresql.checkpoint.wal_removed", int(c.wal_removed));
                put(&mut a, "postgresql.checkpoint.wal_recycled", int(c.wal_recycled));
                put(&mut a, "postgresql.checkpoint.write_time", c.write_s.map(Value::Double));
                put(&mut a, "postgresql.checkpoint.sync_time", c.sync_s.map(Value::Double));
                put(&mut a, "postgresql.checkpoint.total_time", c.total_s.map(Value::Double));
                put(&mut a, "postgresql.checkpoint.sync_files", int(c.sync_files));
                put(&mut a, "postgresql.checkpoint.distance", int(c.distance_bytes));
                put(&mut a, "postgresql.checkpoint.estimate", int(c.estimate_bytes));
                a.insert("log.file.name", Value::Str(file.to_string()));
                out.push(("checkpoints", event("db.server.checkpoint", 9, "INFO", time, now, Value::Nil, a)));
            }
            Kind::ConnectionFailure { reason } if self.enabled.connections => {
                let mut k = Map::new();
                k.insert("reason", Value::Str(reason.into()));
                self.window.add("connections", &cat::PG_CONNECTION_FAILURES, k, 1.0);
                let mut a = Map::new();
                put(&mut a, "db.response.status_code", sqlstate.map(Value::Str));
                a.insert("db.connection.failure_reason", Value::Str(reason.into()));
                put(&mut a, "db.namespace", text(&e.database));
                put(&mut a, "db.user", e.user.take().map(Value::Str));
                put(&mut a, "db.session.id", e.pid.map(Value::Int));
                put(&mut a, "postgresql.application_name", e.application.take().map(Value::Str));
                a.insert("log.file.name", Value::Str(file.to_string()));
                // the DETAIL names pg_hba.conf lines and roles: not sent
                out.push((
                    "connections",
                    event("db.server.connection_failure", severity, &e.severity, time, now, Value::Str(std::mem::take(&mut e.message)), a),
                ));
            }
            Kind::Cancel { reason } if self.enabled.errors.is_some() => {
                let mut k = Self::db(&e);
                k.insert("reason", Value::Str(reason.into()));
                self.window.add("errors", &cat::PG_CANCELLATIONS, k, 1.0);
                let mut a = Self::error_attributes(&mut e, sqlstate, file);
                a.insert("db.cancellation.reason", Value::Str(reason.into()));
                out.push((
                    "errors",
                    event("db.server.error", severity, &e.severity, time, now, Value::Str(std::mem::take(&mut e.message)), a),
                ));
            }
            Kind::Error => {
                let wanted = self
                    .enabled
                    .errors
                    .is_some_and(|min| classify::ERROR_SEVERITIES.iter().position(|s| *s == e.severity).is_some_and(|r| r >= min));
                if wanted {
                    let a = Self::error_attributes(&mut e, sqlstate, file);
                    out.push((
                        "errors",
                        event("db.server.error", severity, &e.severity, time, now, Value::Str(std::mem::take(&mut e.message)), a),
                    ));
                }
            }
            _ => {}
        }
    }

    fn error_attributes(e: &mut PgEntry, sqlstate: Option<String>, file: &str) -> Map {
        let mut a = Self::session(e, file);
        put(&mut a, "db.response.status_code", sqlstate.map(Value::Str));
        put(&mut a, "db.log.detail", e.detail.take().map(Value::Str));
        put(&mut a, "db.log.hint", e.hint.take().map(Value::Str));
        put(&mut a, "db.log.context", e.context.take().map(Value::Str));
        put(&mut a, "db.query.text", e.statement.take().map(Value::Str));
        a
    }

    fn slow(&mut self, e: &SlowEntry, file: &str, now: u64, out: &mut Out) {
        if self.enabled.slow_queries.is_none() {
            return;
        }
        // our fingerprint of the normalized text: the slow log has no digest
        let id = fingerprint_mysql(&e.statement);
        let mut k = Map::new();
        k.insert("db.query.id", Value::Str(id.clone()));
        put(&mut k, "db.namespace", text(&e.database));
        self.window.add("slow_queries", &cat::MY_SLOW_CALLS, k.clone(), 1.0);
        self.window.add("slow_queries", &cat::MY_SLOW_TIME, k.clone(), e.query_time * 1000.0);
        self.window.add("slow_queries", &cat::MY_SLOW_LOCK, k.clone(), e.lock_time * 1000.0);
        self.window.add("slow_queries", &cat::MY_SLOW_SENT, k.clone(), e.rows_sent as f64);
        self.window.add("slow_queries", &cat::MY_SLOW_EXAMINED, k.clone(), e.rows_examined as f64);
        // one sample per statement per window
        if self.slow_sampled.len() < MAX_SERIES && self.slow_sampled.insert(id) {
            let time = self.time(e.time, now);
            let mut a = k;
            a.insert("db.query.text", Value::Str(e.statement.clone()));
            put(&mut a, "db.user", text(&e.user));
            put(&mut a, "db.session.id", e.thread_id.map(Value::Int));
            a.insert("db.query.duration_ms", Value::Double(e.query_time * 1000.0));
            a.insert("db.query.lock_time_ms", Value::Double(e.lock_time * 1000.0));
            a.insert("db.query.rows_sent", Value::Int(e.rows_sent));
            a.insert("db.query.rows_examined", Value::Int(e.rows_examined));
            put(&mut a, "db.query.rows_affected", e.rows_affected.map(Value::Int));
            a.insert("log.file.name", Value::Str(file.to_string()));
            out.push(("slow_queries", event("db.server.slow_query", 9, "INFO", time, now, Value::Nil, a)));
        }
    }

    fn my_error(&mut self, e: &MyErrorEntry, file: &str, now: u64, out: &mut Out) {
        if !self.enabled.my_errors {
            return;
        }
        let severity = match e.severity.as_str() {
            "ERROR" | "Error" => "error",
            "Warning" => "warning",
            _ => {
                // a Note can still report a deadlock
                if e.message.contains("Transactions deadlock detected") {
                    self.window.add("errors", &cat::MY_DEADLOCKS, Map::new(), 1.0);
                }
                return;
            }
        };
        // MariaDB gives no code: the few messages that matter, by text
        let code = e.code.clone().or_else(|| mariadb_code(&e.message).map(str::to_string));
        let mut k = Map::new();
        k.insert("severity", Value::Str(severity.into()));
        put(&mut k, "db.response.status_code", code.clone().map(Value::Str));
        self.window.add("errors", &cat::MY_ERRORS, k, 1.0);
        if let Some(reason) = my_connection_failure(&e.message) {
            let mut r = Map::new();
            r.insert("reason", Value::Str(reason.into()));
            self.window.add("errors", &cat::MY_CONNECTION_FAILURES, r, 1.0);
        }
        if e.message.contains("deadlock detected") {
            self.window.add("errors", &cat::MY_DEADLOCKS, Map::new(), 1.0);
        }
        let time = self.time(e.time, now);
        let mut a = Map::new();
        put(&mut a, "db.response.status_code", code.map(Value::Str));
        put(&mut a, "mysql.log.subsystem", text(&e.subsystem));
        put(&mut a, "db.session.id", e.thread.filter(|t| *t != 0).map(Value::Int));
        a.insert("log.file.name", Value::Str(file.to_string()));
        let (number, word) = if severity == "error" { (17, "ERROR") } else { (13, "WARN") };
        out.push(("errors", event("db.server.error", number, word, time, now, Value::Str(e.message.clone()), a)));
    }

    /// The collectors this mapper fills (for restoring a window).
    pub fn collector_names(&self) -> Vec<&'static str> {
        self.enabled.names()
    }
}

/// The slow log's statement fingerprint: `Fingerprint()`'s recipe
/// (FNV-1a of the lowercased normalized text) in MySQL's dialect, so `#`
/// comments and `"…"` strings are read as MySQL reads them.
pub fn fingerprint_mysql(statement: &str) -> String {
    match dbintel_stdlib::sql::normalize(statement, dbintel_stdlib::sql::Dialect::MySql) {
        Ok(n) => format!("{:016x}", dbintel_stdlib::functions::fnv1a(n.to_lowercase().as_bytes())),
        Err(_) => "unnormalizable".to_string(),
    }
}

/// MariaDB's error numbers for the messages it writes without one.
fn mariadb_code(message: &str) -> Option<&'static str> {
    Some(if message.starts_with("Access denied for user") {
        "1045"
    } else if message.starts_with("Aborted connection") {
        "1152"
    } else if message.starts_with("Aborted login")
        || message.starts_with("Aborted connection") && message.contains("while reading authorization")
    {
        "1043"
    } else {
        return None;
    })
}

fn my_connection_failure(message: &str) -> Option<&'static str> {
    Some(if message.starts_with("Access denied for user") {
        "authentication_failed"
    } else if message.starts_with("Aborted connection") {
        "aborted_connection"
    } else if message.starts_with("Aborted login") {
        "aborted_login"
    } else {
        return None;
    })
}

/// The resource attributes of an autovacuum report's table (moved onto
/// the table's resource when the records leave).
fn table_attributes(t: &classify::Table) -> Map {
    let mut m = Map::new();
    m.insert(DATABASE_NAME, Value::Str(t.database.clone()));
    m.insert(SCHEMA_NAME, Value::Str(t.schema.clone()));
    m.insert(TABLE_NAME, Value::Str(if t.schema.is_empty() { t.table.clone() } else { format!("{}.{}", t.schema, t.table) }));
    m
}

/// A deadlock's DETAIL split: the wait graph (`Process 1 waits for
/// ShareLock on transaction 2; blocked by process 3.`), the other
/// sessions' statements (`Process 3: UPDATE …`; the one equal to this
/// session's STATEMENT left out), and the processes involved.
pub fn deadlock_detail(detail: &str, own: Option<&str>) -> (String, Vec<String>, Vec<i64>) {
    let mut graph = Vec::new();
    let mut statements: Vec<String> = Vec::new();
    let mut pids = Vec::new();
    let mut in_statement = false;
    for line in detail.lines() {
        if let Some(rest) = line.strip_prefix("Process ") {
            let (pid, tail) = rest.split_once([' ', ':']).unwrap_or((rest, ""));
            if let Ok(pid) = pid.parse::<i64>() {
                if rest[pid.to_string().len()..].starts_with(": ") {
                    if !pids.contains(&pid) {
                        pids.push(pid);
                    }
                    statements.push(rest[pid.to_string().len() + 2..].to_string());
                    in_statement = true;
                    continue;
                }
                if tail.starts_with("waits for ") {
                    if !pids.contains(&pid) {
                        pids.push(pid);
                    }
                    graph.push(line.to_string());
                    in_statement = false;
                    continue;
                }
            }
        }
        // a multi-line statement continues
        if in_statement {
            if let Some(last) = statements.last_mut() {
                last.push('\n');
                last.push_str(line);
            }
        } else if line.starts_with("HINT") || line.trim().is_empty() {
            continue;
        }
    }
    let own = own.map(str::trim);
    let others = statements.into_iter().filter(|s| Some(s.trim()) != own).collect();
    (graph.join("\n"), others, pids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled_all() -> Enabled {
        Enabled {
            plans: true,
            errors: Some(0),
            locks: true,
            temp_files: true,
            autovacuum: true,
            checkpoints: true,
            connections: true,
            slow_queries: Some(2),
            my_errors: true,
        }
    }

    fn pg(severity: &str, state: Option<&str>, message: &str) -> PgEntry {
        PgEntry {
            time: Some(5),
            severity: severity.into(),
            sqlstate: state.map(Into::into),
            message: message.into(),
            database: Some("shop".into()),
            pid: Some(42),
            ..PgEntry::default()
        }
    }

    #[test]
    fn a_deadlock_detail_gives_the_graph_apart_from_the_statements() {
        let detail = "Process 4242 waits for ShareLock on transaction 742; blocked by process 4243.\nProcess 4243 waits for ShareLock on transaction 741; blocked by process 4242.\nProcess 4242: UPDATE accounts SET balance = 100 WHERE id = 1\nProcess 4243: UPDATE accounts\nSET balance = 200 WHERE id = 2";
        let (graph, others, pids) = deadlock_detail(detail, Some("UPDATE accounts SET balance = 100 WHERE id = 1"));
        assert_eq!(graph.lines().count(), 2);
        assert!(!graph.contains("balance"), "{graph}");
        assert_eq!(others, vec!["UPDATE accounts\nSET balance = 200 WHERE id = 2".to_string()]);
        assert_eq!(pids, vec![4242, 4243]);
    }

    #[test]
    fn errors_are_counted_by_sqlstate_and_sampled_with_their_parts() {
        let mut m = Mapper::new(enabled_all(), 0, Duration::from_secs(60));
        let mut out = Out::new();
        let mut e = pg("ERROR", Some("23505"), "duplicate key value violates unique constraint \"users_email_key\"");
        e.detail = Some("Key (email)=(ann@example.com) already exists.".into());
        e.statement = Some("INSERT INTO users VALUES ('ann@example.com')".into());
        m.map(Entry::Pg(e.clone()), "postgresql.json", 9, &mut out);
        m.map(Entry::Pg(e), "postgresql.json", 9, &mut out);
        m.map(Entry::Pg(pg("ERROR", None, "canceling statement due to statement timeout")), "f", 9, &mut out);
        assert_eq!(out.len(), 3);
        let Record::Log(l) = &out[0].1 else { panic!() };
        assert_eq!((out[0].0, l.event_name.as_str(), l.severity_number), ("errors", "db.server.error", 17));
        assert_eq!(l.attributes.get("db.response.status_code"), Some(&Value::Str("23505".into())));
        assert!(l.attributes.get("db.log.detail").is_some() && l.attributes.get("db.query.text").is_some());
        let Record::Log(c) = &out[2].1 else { panic!() };
        assert_eq!(c.attributes.get("db.response.status_code"), Some(&Value::Str("57014".into())), "implied from the message");
        let points = m.close_window(60_000_000_000);
        let value = |name: &str, code: &str| {
            points.iter().find_map(|(_, r)| match r {
                Record::Metric(p)
                    if p.name == name && p.attributes.get("db.response.status_code").and_then(Value::as_str) == Some(code) =>
                {
                    Some(p.value)
                }
                _ => None,
            })
        };
        assert_eq!(value("postgresql.log.errors", "23505"), Some(dbintel_core::record::Number::Int(2)));
        assert_eq!(value("postgresql.log.errors", "57014"), Some(dbintel_core::record::Number::Int(1)));
        assert!(points.iter().any(|(_, r)| matches!(r, Record::Metric(p) if p.name == "postgresql.log.cancellations")));
        assert!(m.window.is_empty(), "a new window starts");
    }

    #[test]
    fn collectors_not_enabled_emit_nothing() {
        let mut m = Mapper::new(Enabled { autovacuum: true, ..Enabled::default() }, 0, Duration::from_secs(60));
        let mut out = Out::new();
        m.map(Entry::Pg(pg("ERROR", Some("23505"), "x")), "f", 1, &mut out);
        m.map(Entry::Pg(pg("LOG", None, "temporary file: path \"base/pgsql_tmp/x\", size 10")), "f", 1, &mut out);
        assert!(out.is_empty());
        assert!(m.close_window(2).is_empty());
    }

    #[test]
    fn the_slow_log_keeps_the_top_statements_and_one_sample_each() {
        let mut m = Mapper::new(enabled_all(), 0, Duration::from_secs(60));
        let mut out = Out::new();
        for (statement, time) in [
            ("select 1", 0.1),
            ("select 2", 0.1),
            ("select * from t where a = 1", 5.0),
            ("update t set a = 2", 3.0),
            ("delete from u", 0.5),
        ] {
            let e = SlowEntry {
                statement: statement.into(),
                query_time: time,
                rows_examined: 10,
                database: Some("shop".into()),
                ..SlowEntry::default()
            };
            m.map(Entry::Slow(e), "slow.log", 1, &mut out);
        }
        assert_eq!(out.len(), 4, "`select 1` and `select 2` share a fingerprint: one sample");
        let points = m.close_window(2);
        let ids: HashSet<String> = points
            .iter()
            .filter_map(|(_, r)| match r {
                Record::Metric(p) if p.name == "mysql.slow_query.calls" => {
                    p.attributes.get("db.query.id").and_then(Value::as_str).map(str::to_string)
                }
                _ => None,
            })
            .collect();
        assert_eq!(ids.len(), 3, "top 2 and other: {ids:?}");
        assert!(ids.contains("other"));
        let other_calls = points.iter().find_map(|(_, r)| match r {
            Record::Metric(p)
                if p.name == "mysql.slow_query.calls" && p.attributes.get("db.query.id") == Some(&Value::Str("other".into())) =>
            {
                Some(p.value)
            }
            _ => None,
        });
        assert_eq!(other_calls, Some(dbintel_core::record::Number::Int(3)));
    }

    #[test]
    fn a_window_survives_a_checkpoint() {
        let mut m = Mapper::new(enabled_all(), 7, Duration::from_secs(60));
        let mut out = Out::new();
        m.map(Entry::Pg(pg("ERROR", Some("23505"), "x")), "f", 1, &mut out);
        let json = m.window.to_json();
        let mut restored = Mapper::new(enabled_all(), 0, Duration::from_secs(60));
        restored.window.restore(&json, &restored.collector_names());
        assert_eq!(restored.window.start, 7);
        assert_eq!(restored.close_window(100), m.close_window(100));
    }
}

#[cfg(test)]
mod catalogue_tests {
    //! What the mapping emits is what the catalogue declares: names,
    //! units, instruments, attributes and resource levels (the README's
    //! tables are generated from the declarations).
    use super::*;
    use dbintel_sources::catalogue::{conformance, name_databases};
    use dbintel_sources::target::Engine;

    fn pg(severity: &str, state: Option<&str>, message: &str) -> Entry {
        Entry::Pg(PgEntry {
            time: Some(5),
            severity: severity.into(),
            sqlstate: state.map(Into::into),
            message: message.into(),
            detail: Some("Process holding the lock: 12. Wait queue: 11.".into()),
            statement: Some("UPDATE t SET a = 1".into()),
            query_id: Some("42".into()),
            database: Some("shop".into()),
            user: Some("app".into()),
            application: Some("psql".into()),
            backend_type: Some("autovacuum worker".into()),
            pid: Some(11),
            ..PgEntry::default()
        })
    }

    #[test]
    fn every_record_of_every_kind_conforms_to_the_catalogue() {
        let all = Enabled {
            plans: true,
            errors: Some(0),
            locks: true,
            temp_files: true,
            autovacuum: true,
            checkpoints: true,
            connections: true,
            slow_queries: Some(10),
            my_errors: true,
        };
        let mut m = Mapper::new(all, 0, Duration::from_secs(60));
        let mut out = Out::new();
        let entries = vec![
            (Engine::Postgres, pg("ERROR", Some("23505"), "duplicate key value violates unique constraint \"u\"")),
            (Engine::Postgres, pg("ERROR", Some("57014"), "canceling statement due to statement timeout")),
            (Engine::Postgres, pg("ERROR", Some("40P01"), "deadlock detected")),
            (Engine::Postgres, pg("LOG", None, "process 11 still waiting for ShareLock on transaction 5 after 1000.1 ms")),
            (Engine::Postgres, pg("LOG", None, "process 11 acquired ShareLock on transaction 5 after 2000.1 ms")),
            (Engine::Postgres, pg("LOG", None, "temporary file: path \"base/pgsql_tmp/pgsql_tmp11.0\", size 1024")),
            (Engine::Postgres, pg("LOG", None, "automatic vacuum of table \"shop.public.t\": index scans: 0\npages: 0 removed, 1 remain\ntuples: 5 removed, 1 remain, 0 are dead but not yet removable\nsystem usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.01 s")),
            (Engine::Postgres, pg("LOG", None, "automatic analyze of table \"shop.public.t\"\nsystem usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.01 s")),
            (Engine::Postgres, pg("LOG", None, "checkpoint starting: time")),
            (Engine::Postgres, pg("LOG", None, "checkpoint complete: wrote 3 buffers (0.0%); 0 WAL file(s) added, 0 removed, 0 recycled; write=0.1 s, sync=0.1 s, total=0.2 s; sync files=1, longest=0.1 s, average=0.1 s; distance=1 kB, estimate=1 kB")),
            (Engine::Postgres, pg("FATAL", Some("28P01"), "password authentication failed for user \"x\"")),
            (Engine::Postgres, pg("LOG", None, "duration: 1.0 ms  plan:\n{\"Query Text\": \"select 1\", \"Plan\": {\"Node Type\": \"Result\", \"Actual Rows\": 1}}")),
            (Engine::Postgres, pg("LOG", None, "duration: 1.0 ms  plan:\n{\"Query Text\": \"select 1\", \"Plan\": {\"Node Type\": \"Seq Scan\", \"Relation Name\": \"t\"}}")),
            (Engine::MySql, Entry::Slow(SlowEntry { statement: "select 1".into(), query_time: 1.0, database: Some("shop".into()), user: Some("app".into()), thread_id: Some(3), rows_affected: Some(0), ..SlowEntry::default() })),
            (
                Engine::MySql,
                Entry::MyError(MyErrorEntry { severity: "Warning".into(), thread: Some(5), code: Some("MY-010068".into()), subsystem: Some("Server".into()), message: "Access denied for user 'x'@'y'".into(), ..MyErrorEntry::default() }),
            ),
            (Engine::MySql, Entry::MyError(MyErrorEntry { severity: "Note".into(), message: "InnoDB: Transactions deadlock detected, dumping detailed information.".into(), ..MyErrorEntry::default() })),
        ];
        let mut engines = Vec::new();
        for (engine, entry) in entries {
            let before = out.len();
            m.map(entry, "f.log", 7, &mut out);
            engines.extend(std::iter::repeat_n(engine, out.len() - before));
        }
        // the window: Postgres and MySQL series share it here; each point
        // is checked against its engine by name
        let points = m.close_window(60_000_000_000);
        let names: std::collections::BTreeSet<String> = out
            .iter()
            .chain(points.iter())
            .map(|(_, r)| match r {
                Record::Metric(p) => p.name.clone(),
                Record::Log(l) => l.event_name.clone(),
            })
            .collect();
        for engine in points.iter().map(|(_, r)| match r {
            Record::Metric(p) if p.name.starts_with("mysql.") => Engine::MySql,
            _ => Engine::Postgres,
        }) {
            engines.push(engine);
        }
        let mut problems = Vec::new();
        for ((collector, record), engine) in out.into_iter().chain(points).zip(engines) {
            let mut group = vec![record];
            name_databases(&mut group, None);
            for r in &group {
                for p in conformance(engine, &Default::default(), r) {
                    problems.push(format!("{collector}: {p}"));
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
        for expected in [
            "db.server.error",
            "db.server.deadlock",
            "db.server.lock_wait",
            "db.server.temp_file",
            "db.server.autovacuum",
            "db.server.checkpoint",
            "db.server.connection_failure",
            "db.server.query_plan",
            "db.server.plan_change",
            "db.server.slow_query",
            "postgresql.log.errors",
            "postgresql.log.cancellations",
            "postgresql.log.deadlocks",
            "postgresql.log.lock_waits",
            "postgresql.log.lock_wait.duration",
            "postgresql.log.temp_files",
            "postgresql.log.temp_files.size",
            "postgresql.log.autovacuum.runs",
            "postgresql.log.autovacuum.duration",
            "postgresql.log.autovacuum.tuples_removed",
            "postgresql.log.autovacuum.dead_tuples",
            "postgresql.log.checkpoints",
            "postgresql.log.checkpoint.duration",
            "postgresql.log.checkpoint.buffers",
            "postgresql.log.checkpoint.distance",
            "postgresql.log.connection_failures",
            "mysql.slow_query.calls",
            "mysql.slow_query.duration",
            "mysql.log.errors",
            "mysql.log.connection_failures",
            "mysql.log.deadlocks",
        ] {
            assert!(names.contains(expected), "{expected} was not emitted: {names:?}");
        }
    }
}
