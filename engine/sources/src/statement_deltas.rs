//! Per-interval deltas of cumulative statement statistics
//! (pg_stat_statements, performance_schema digests).
//!
//! The rules, from what other collectors got wrong:
//! - a statement is keyed by (server identity, database, user, query id,
//!   toplevel); the server identity changes on failover or restart, and
//!   then every statement is re-baselined;
//! - the first scrape (after a start, a restart of the server, a failover
//!   or a reset of the statistics) is a baseline and emits nothing;
//! - after that, a statement that was not in the previous scrape is new
//!   since then: its full counters are the interval's delta (a query that
//!   runs a few times and is evicted is still seen);
//! - a counter that went down means the entry was reset: re-baseline it;
//! - a change of the reset marker (`stats_reset`) re-baselines everything;
//! - only statements that ran in the interval (Δcalls > 0) are emitted, and
//!   of those the top N by Δtime together with the top N by Δcalls;
//! - memory follows the rows fetched: keys not seen in a scrape are
//!   forgotten, and cached texts are bounded in bytes ([`MAX_TEXT_BYTES`]).

use std::collections::{HashMap, HashSet};

use dbintel_stdlib::sql::comment_tags::CommentTags;
use dbintel_stdlib::{Map, Value};

use super::rows::{number, Row};
use dbintel_core::record::{LogRecord, MetricKind, MetricPoint, Number, Record, Temporality};

/// Query texts kept between scrapes, in bytes; past it, a text is used for
/// the scrape that fetched it and fetched again when next needed.
pub const MAX_TEXT_BYTES: usize = 8 << 20;

/// One cumulative counter column, the delta metric it becomes (if any),
/// and the attribute of the `db.server.top_query` event that carries its
/// delta in the contrib receiver's shape (if any).
pub struct Counter {
    pub column: &'static str,
    /// Suffix after `<system>.query.`; empty: no metric (an event
    /// attribute only).
    pub metric: &'static str,
    pub unit: &'static str,
    /// Multiplies the raw delta (picoseconds to milliseconds for MySQL).
    pub scale: f64,
    pub integer: bool,
    /// The contrib event attribute and what multiplies the raw delta for
    /// it (the receivers send times in seconds).
    pub event: Option<(&'static str, f64)>,
}

/// What differs between PostgreSQL and MySQL.
pub struct Flavor {
    /// `postgresql` or `mysql`: the metric prefix.
    pub system: &'static str,
    pub database_column: &'static str,
    /// Column with the database's name, if the rows carry it.
    pub database_name_column: Option<&'static str>,
    pub user_column: Option<&'static str>,
    pub user_name_column: Option<&'static str>,
    pub id_column: &'static str,
    pub toplevel_column: Option<&'static str>,
    pub text_column: &'static str,
    /// A per-entry "counting since" column (PostgreSQL 17's `stats_since`):
    /// when it changes the entry was reset on its own, and its key is new.
    pub since_column: Option<&'static str>,
    /// Index in `counters` of the call count and of the total time.
    pub calls: usize,
    pub time: usize,
    pub counters: &'static [Counter],
    /// The contrib event attributes naming the statement's id and user.
    pub id_attribute: &'static str,
    pub user_attribute: Option<&'static str>,
    /// The column with the statement's text as the client sent it, for
    /// its comment tags, when it is not `text_column` (MySQL's
    /// `QUERY_SAMPLE_TEXT`; `None`: the text is that one).
    pub raw_text_column: Option<&'static str>,
}

const fn c(column: &'static str, metric: &'static str, unit: &'static str, scale: f64, integer: bool) -> Counter {
    Counter { column, metric, unit, scale, integer, event: None }
}

const fn e(counter: Counter, attribute: &'static str, scale: f64) -> Counter {
    Counter { event: Some((attribute, scale)), ..counter }
}

pub const POSTGRES: Flavor = Flavor {
    system: "postgresql",
    database_column: "dbid",
    database_name_column: Some("datname"),
    user_column: Some("userid"),
    user_name_column: Some("rolname"),
    id_column: "queryid",
    toplevel_column: Some("toplevel"),
    text_column: "query",
    since_column: Some("stats_since"),
    calls: 0,
    time: 1,
    counters: &[
        e(c("calls", "calls", "{call}", 1.0, true), "postgresql.calls", 1.0),
        // milliseconds; the contrib event says seconds
        e(c("total_exec_time", "duration", "ms", 1.0, false), "postgresql.total_exec_time", 1e-3),
        e(c("rows", "rows", "{row}", 1.0, true), "postgresql.rows", 1.0),
        e(c("shared_blks_hit", "shared_blocks.hit", "{block}", 1.0, true), "postgresql.shared_blks_hit", 1.0),
        e(c("shared_blks_read", "shared_blocks.read", "{block}", 1.0, true), "postgresql.shared_blks_read", 1.0),
        e(c("shared_blks_written", "shared_blocks.written", "{block}", 1.0, true), "postgresql.shared_blks_written", 1.0),
        c("local_blks_hit", "local_blocks.hit", "{block}", 1.0, true),
        c("local_blks_read", "local_blocks.read", "{block}", 1.0, true),
        e(c("temp_blks_read", "temp_blocks.read", "{block}", 1.0, true), "postgresql.temp_blks_read", 1.0),
        e(c("temp_blks_written", "temp_blocks.written", "{block}", 1.0, true), "postgresql.temp_blks_written", 1.0),
        e(c("shared_blks_dirtied", "", "{block}", 1.0, true), "postgresql.shared_blks_dirtied", 1.0),
        e(c("total_plan_time", "", "ms", 1.0, false), "postgresql.total_plan_time", 1e-3),
    ],
    id_attribute: "postgresql.queryid",
    user_attribute: Some("postgresql.rolname"),
    raw_text_column: None,
};

pub const MYSQL: Flavor = Flavor {
    system: "mysql",
    database_column: "SCHEMA_NAME",
    database_name_column: Some("SCHEMA_NAME"),
    user_column: None,
    user_name_column: None,
    id_column: "DIGEST",
    toplevel_column: None,
    text_column: "DIGEST_TEXT",
    // duplicate digest rows can differ in FIRST_SEEN; they must still sum
    since_column: None,
    calls: 0,
    time: 1,
    counters: &[
        e(c("COUNT_STAR", "calls", "{call}", 1.0, true), "mysql.events_statements_summary_by_digest.count_star", 1.0),
        // picoseconds to milliseconds; the contrib event says seconds
        e(c("SUM_TIMER_WAIT", "duration", "ms", 1e-9, false), "mysql.events_statements_summary_by_digest.sum_timer_wait", 1e-12),
        e(c("SUM_ROWS_SENT", "rows", "{row}", 1.0, true), "mysql.events_statements_summary_by_digest.returned_rows", 1.0),
        e(c("SUM_ROWS_EXAMINED", "rows_examined", "{row}", 1.0, true), "mysql.events_statements_summary_by_digest.examined_rows", 1.0),
        c("SUM_ROWS_AFFECTED", "rows_affected", "{row}", 1.0, true),
        c("SUM_NO_INDEX_USED", "no_index_used", "{call}", 1.0, true),
        c("SUM_CREATED_TMP_DISK_TABLES", "tmp_disk_tables", "{table}", 1.0, true),
    ],
    id_attribute: "mysql.events_statements_summary_by_digest.digest",
    user_attribute: None,
    raw_text_column: Some("QUERY_SAMPLE_TEXT"),
};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    database: String,
    user: String,
    id: String,
    toplevel: bool,
    since: String,
}

#[derive(Debug, Clone)]
struct Seen {
    counters: Vec<f64>,
    database_name: String,
    user_name: String,
    /// The comment tags of the statement's raw text, when the rows carry
    /// one besides its text (`Flavor::raw_text_column`).
    tags: Option<CommentTags>,
}

/// Delta state for one target.
pub struct StatementDeltas {
    flavor: &'static Flavor,
    top: usize,
    /// Comment tag keys to read (`allowed_comment_keys`).
    allowed_keys: Vec<String>,
    /// The server's plans, which ride on the top queries (see
    /// `plan_book.rs`); set by the live collector.
    pub plans: Option<std::sync::Arc<crate::plan_book::PlanBook>>,
    server: Option<String>,
    reset_marker: Option<String>,
    previous: HashMap<Key, Seen>,
    /// Query texts by id, kept only for ids still present, at most
    /// [`MAX_TEXT_BYTES`] in all.
    texts: HashMap<String, String>,
    text_bytes: usize,
    last_scrape: Option<u64>,
}

/// The statements a scrape will emit, before their texts are known.
pub struct Selection {
    chosen: Vec<(Key, Seen, Vec<f64>)>,
    /// Ids among the chosen whose text is not cached yet.
    pub needs_text: Vec<String>,
    /// Texts the rows themselves carried, for chosen statements.
    row_texts: HashMap<String, String>,
    start: u64,
    now: u64,
    summary: ScrapeSummary,
}

/// What one scrape produced, for counters and tests.
#[derive(Debug, Default, PartialEq)]
pub struct ScrapeSummary {
    pub rows: usize,
    pub baselined: usize,
    /// Statements not in the previous scrape, emitted with full counters.
    pub new: usize,
    pub rebaselined: usize,
    pub emitted: usize,
    pub skipped_rows: usize,
}

impl StatementDeltas {
    pub fn new(flavor: &'static Flavor, top: usize, allowed_keys: Vec<String>) -> StatementDeltas {
        StatementDeltas {
            flavor,
            top,
            allowed_keys,
            plans: None,
            server: None,
            reset_marker: None,
            previous: HashMap::new(),
            texts: HashMap::new(),
            text_bytes: 0,
            last_scrape: None,
        }
    }

    /// Whether the text for this query id is already known.
    pub fn knows_text(&self, id: &str) -> bool {
        self.texts.contains_key(id)
    }

    pub fn tracked(&self) -> usize {
        self.previous.len()
    }

    fn key(&self, row: &Row) -> Option<Key> {
        let f = self.flavor;
        let text = |col: &str| row.get(col).filter(|v| !v.is_nil()).map(|v| v.to_string());
        Some(Key {
            database: text(f.database_column).unwrap_or_default(),
            user: f.user_column.and_then(text).unwrap_or_default(),
            id: text(f.id_column)?,
            toplevel: f.toplevel_column.and_then(|c| row.get(c)).is_none_or(|v| !matches!(v, Value::Bool(false))),
            since: f.since_column.and_then(text).unwrap_or_default(),
        })
    }

    /// Takes one scrape's rows (with texts where the rows carry them);
    /// returns the delta records.
    pub fn observe(&mut self, server: &str, reset_marker: Option<String>, rows: Vec<Row>, now: u64) -> (Vec<Record>, ScrapeSummary) {
        let selection = self.select(server, reset_marker, rows, now);
        self.emit(selection, std::collections::HashMap::new())
    }

    /// The first half of a scrape: deltas computed and the top statements
    /// chosen. [`Selection::needs_text`] says which texts are still unknown,
    /// so a live source fetches only those before [`StatementDeltas::emit`].
    pub fn select(&mut self, server: &str, reset_marker: Option<String>, rows: Vec<Row>, now: u64) -> Selection {
        let mut summary = ScrapeSummary { rows: rows.len(), ..ScrapeSummary::default() };
        let mut baseline = self.last_scrape.is_none();
        if self.server.as_deref() != Some(server) || (reset_marker.is_some() && self.reset_marker != reset_marker) {
            // new server, restart, failover or reset: everything starts over
            self.previous.clear();
            self.server = Some(server.to_string());
            self.reset_marker = reset_marker;
            baseline = true;
        }
        let start = self.last_scrape.unwrap_or(now);
        self.last_scrape = Some(now);

        // Sum duplicate keys (MySQL can report one digest twice).
        let mut current: HashMap<Key, Seen> = HashMap::with_capacity(rows.len());
        let mut row_texts: HashMap<String, String> = HashMap::new();
        for row in &rows {
            let Some(key) = self.key(row) else {
                summary.skipped_rows += 1;
                continue;
            };
            let counters: Vec<f64> = self.flavor.counters.iter().map(|c| number(row, c.column).unwrap_or(0.0)).collect();
            if let Some(Value::Str(text)) = row.get(self.flavor.text_column) {
                if !self.texts.contains_key(&key.id) {
                    row_texts.entry(key.id.clone()).or_insert_with(|| text.clone());
                }
            }
            let name = |col: Option<&str>, fallback: &str| {
                col.and_then(|c| row.get(c)).filter(|v| !v.is_nil()).map_or(fallback.to_string(), |v| v.to_string())
            };
            let tags = self.flavor.raw_text_column.filter(|c| row.get(c).is_some()).map(|c| match row.get(c) {
                Some(Value::Str(raw)) => crate::apm::tags(raw, &self.allowed_keys),
                _ => CommentTags::default(),
            });
            let seen = current.entry(key.clone()).or_insert_with(|| Seen {
                counters: vec![0.0; counters.len()],
                database_name: name(self.flavor.database_name_column, &key.database),
                user_name: name(self.flavor.user_name_column, &key.user),
                tags,
            });
            for (total, add) in seen.counters.iter_mut().zip(counters) {
                *total += add;
            }
        }

        let mut deltas: Vec<(Key, Vec<f64>)> = Vec::new();
        for (key, seen) in &current {
            match self.previous.get(key) {
                None if baseline => summary.baselined += 1,
                None => {
                    // new since the last scrape: everything it counted
                    // happened in this interval
                    summary.new += 1;
                    if seen.counters[self.flavor.calls] > 0.0 && seen.counters.iter().all(|c| *c >= 0.0) {
                        deltas.push((key.clone(), seen.counters.clone()));
                    }
                }
                Some(before) => {
                    let delta: Vec<f64> = seen.counters.iter().zip(&before.counters).map(|(now, before)| now - before).collect();
                    if delta.iter().any(|d| *d < 0.0) {
                        summary.rebaselined += 1;
                    } else if delta[self.flavor.calls] > 0.0 {
                        deltas.push((key.clone(), delta));
                    }
                }
            }
        }
        let chosen_indexes = self.top_n(&deltas);
        let chosen: Vec<(Key, Seen, Vec<f64>)> = deltas
            .into_iter()
            .enumerate()
            .filter(|(i, _)| chosen_indexes.contains(i))
            .map(|(_, (key, delta))| {
                let seen = current[&key].clone();
                (key, seen, delta)
            })
            .collect();
        let live_ids: HashSet<&String> = current.keys().map(|k| &k.id).collect();
        let mut freed = 0;
        self.texts.retain(|id, text| {
            let keep = live_ids.contains(id);
            if !keep {
                freed += text.len();
            }
            keep
        });
        self.text_bytes -= freed;
        self.previous = current;
        // texts the rows carried (replay, MySQL's DIGEST_TEXT) for the
        // chosen statements
        let chosen_ids: HashSet<&String> = chosen.iter().map(|(k, _, _)| &k.id).collect();
        row_texts.retain(|id, _| chosen_ids.contains(id));
        let needs_text = chosen
            .iter()
            .map(|(k, _, _)| k.id.clone())
            .filter(|id| !self.texts.contains_key(id) && !row_texts.contains_key(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        Selection { chosen, needs_text, row_texts, start, now, summary }
    }

    /// The second half: records for the chosen statements, with `texts`
    /// (id to text) fetched for the ones that needed it.
    pub fn emit(&mut self, selection: Selection, mut texts: HashMap<String, String>) -> (Vec<Record>, ScrapeSummary) {
        let Selection { chosen, row_texts, start, now, mut summary, .. } = selection;
        texts.extend(row_texts);
        let mut records = Vec::new();
        for (key, seen, delta) in &chosen {
            let text = texts.get(&key.id).or_else(|| self.texts.get(&key.id));
            records.extend(self.records(key, seen, delta, text, start, now));
            summary.emitted += 1;
        }
        for (id, text) in texts {
            if self.text_bytes + text.len() <= MAX_TEXT_BYTES && !self.texts.contains_key(&id) {
                self.text_bytes += text.len();
                self.texts.insert(id, text);
            }
        }
        (records, summary)
    }

    /// Bytes of query text held between scrapes.
    pub fn text_bytes(&self) -> usize {
        self.text_bytes
    }

    /// Indexes of the top N by time together with the top N by calls.
    fn top_n(&self, deltas: &[(Key, Vec<f64>)]) -> HashSet<usize> {
        let by = |index: usize| {
            let mut order: Vec<usize> = (0..deltas.len()).collect();
            order.sort_by(|&a, &b| deltas[b].1[index].total_cmp(&deltas[a].1[index]).then(deltas[a].0.id.cmp(&deltas[b].0.id)));
            order.truncate(self.top);
            order
        };
        by(self.flavor.time).into_iter().chain(by(self.flavor.calls)).collect()
    }

    fn records(&self, key: &Key, seen: &Seen, delta: &[f64], text: Option<&String>, start: u64, now: u64) -> Vec<Record> {
        let system = self.flavor.system;
        let mut attributes = Map::with_capacity(4);
        attributes.insert("db.query.id", Value::Str(key.id.clone()));
        attributes.insert("db.namespace", Value::Str(seen.database_name.clone()));
        if self.flavor.user_column.is_some() {
            attributes.insert("db.user", Value::Str(seen.user_name.clone()));
        }
        if !key.toplevel {
            attributes.insert("db.query.toplevel", Value::Bool(false));
        }
        let mut out = Vec::with_capacity(delta.len() + 1);
        for (counter, d) in self.flavor.counters.iter().zip(delta).filter(|(c, _)| !c.metric.is_empty()) {
            let value = d * counter.scale;
            out.push(Record::Metric(MetricPoint {
                name: format!("{system}.query.{}", counter.metric),
                unit: counter.unit.to_string(),
                description: String::new(),
                kind: MetricKind::Sum { monotonic: true, temporality: Temporality::Delta },
                start_time_unix_nano: start,
                time_unix_nano: now,
                value: if counter.integer { Number::Int(value.round() as i64) } else { Number::Double(value) },
                attributes: attributes.clone(),
            }));
        }
        let calls = delta[self.flavor.calls];
        let total_ms = delta[self.flavor.time] * self.flavor.counters[self.flavor.time].scale;
        let mut event = attributes;
        event.insert("db.query.text", text.map_or(Value::Nil, |t| Value::Str(t.clone())));
        event.insert("db.query.calls", Value::Int(calls as i64));
        event.insert("db.query.duration_ms", Value::Double(if calls > 0.0 { total_ms / calls } else { 0.0 }));
        event.insert("db.query.total_duration_ms", Value::Double(total_ms));
        // the contrib receiver's names, for New Relic's views
        event.insert("db.system.name", Value::Str(system.into()));
        event.insert(self.flavor.id_attribute, Value::Str(key.id.clone()));
        if let Some(user) = self.flavor.user_attribute {
            event.insert(user, Value::Str(seen.user_name.clone()));
        }
        for (counter, d) in self.flavor.counters.iter().zip(delta) {
            if let Some((name, scale)) = counter.event {
                let value = if counter.integer { Value::Int((d * scale).round() as i64) } else { Value::Double(d * scale) };
                event.insert(name, value);
            }
        }
        // joins the statement to its APM trace
        let engine = if system == "mysql" { crate::target::Engine::MySql } else { crate::target::Engine::Postgres };
        crate::apm::insert_hash(&mut event, engine, text.map(String::as_str));
        match (&seen.tags, self.flavor.raw_text_column) {
            (Some(tags), _) => crate::apm::insert_tags(&mut event, tags.clone()),
            // the rows carry no raw text (MariaDB, MySQL before 8.0.3):
            // no comment to read, so no tag attributes at all
            (None, Some(_)) => {}
            (None, None) => crate::apm::insert_tags(&mut event, text.map(|t| crate::apm::tags(t, &self.allowed_keys)).unwrap_or_default()),
        }
        match engine {
            crate::target::Engine::Postgres => {
                event.insert("postgresql.userid", Value::Str(key.user.clone()));
            }
            // the plan's key; empty until a plan is known
            crate::target::Engine::MySql => {
                event.insert("mysql.query_plan.hash", Value::Str(String::new()));
            }
        }
        if let Some(book) = &self.plans {
            crate::plan_book::attach(book, engine, &seen.database_name, &key.id, &mut event);
        }
        out.push(Record::Log(LogRecord {
            time_unix_nano: now,
            observed_time_unix_nano: now,
            severity_number: 9,
            severity_text: "INFO".into(),
            event_name: "db.server.top_query".into(),
            body: Value::Nil,
            attributes: event,
            ..LogRecord::default()
        }));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(queryid: i64, calls: i64, time: f64) -> Row {
        let mut r = Map::new();
        r.insert("dbid", Value::Int(5));
        r.insert("userid", Value::Int(10));
        r.insert("queryid", Value::Int(queryid));
        r.insert("toplevel", Value::Bool(true));
        r.insert("query", Value::Str(format!("select {queryid}")));
        r.insert("calls", Value::Int(calls));
        r.insert("total_exec_time", Value::Double(time));
        r
    }

    fn calls_of(records: &[Record], id: i64) -> Option<i64> {
        records.iter().find_map(|r| match r {
            Record::Metric(m)
                if m.name == "postgresql.query.calls" && m.attributes.get("db.query.id") == Some(&Value::Str(id.to_string())) =>
            {
                match m.value {
                    Number::Int(i) => Some(i),
                    Number::Double(d) => Some(d as i64),
                }
            }
            _ => None,
        })
    }

    #[test]
    fn first_sighting_is_a_baseline_then_deltas() {
        let mut d = StatementDeltas::new(&POSTGRES, 200, Vec::new());
        let (first, s) = d.observe("srv", None, vec![row(1, 10, 5.0)], 1);
        assert!(first.is_empty());
        assert_eq!(s.baselined, 1);
        let (second, _) = d.observe("srv", None, vec![row(1, 17, 9.0)], 2);
        assert_eq!(calls_of(&second, 1), Some(7));
    }

    #[test]
    fn negative_delta_rebaselines_instead_of_emitting() {
        let mut d = StatementDeltas::new(&POSTGRES, 200, Vec::new());
        d.observe("srv", None, vec![row(1, 100, 50.0)], 1);
        let (after_reset, s) = d.observe("srv", None, vec![row(1, 3, 1.0)], 2);
        assert!(after_reset.is_empty());
        assert_eq!(s.rebaselined, 1);
        let (next, _) = d.observe("srv", None, vec![row(1, 5, 2.0)], 3);
        assert_eq!(calls_of(&next, 1), Some(2));
    }

    #[test]
    fn server_change_or_reset_marker_rebaselines_everything() {
        let mut d = StatementDeltas::new(&POSTGRES, 200, Vec::new());
        d.observe("srv-a", None, vec![row(1, 10, 1.0)], 1);
        let (failover, _) = d.observe("srv-b", None, vec![row(1, 50, 9.0)], 2);
        assert!(failover.is_empty(), "a new server identity must not produce a delta against the old one");
        d.observe("srv-b", Some("t1".into()), vec![row(1, 60, 9.5)], 3);
        let (reset, _) = d.observe("srv-b", Some("t2".into()), vec![row(1, 70, 9.9)], 4);
        assert!(reset.is_empty(), "a new stats_reset must re-baseline");
    }

    #[test]
    fn only_statements_that_ran_and_top_n() {
        let mut d = StatementDeltas::new(&POSTGRES, 1, Vec::new());
        d.observe("s", None, vec![row(1, 1, 1.0), row(2, 1, 1.0), row(3, 1, 1.0)], 1);
        // 1: most time; 2: most calls; 3: did not run
        let (out, s) = d.observe("s", None, vec![row(1, 2, 100.0), row(2, 50, 2.0), row(3, 1, 1.0)], 2);
        assert_eq!(s.emitted, 2);
        assert_eq!(calls_of(&out, 1), Some(1));
        assert_eq!(calls_of(&out, 2), Some(49));
        assert_eq!(calls_of(&out, 3), None);
    }

    #[test]
    fn an_entry_reset_on_its_own_is_a_new_baseline() {
        let mut d = StatementDeltas::new(&POSTGRES, 200, Vec::new());
        let mut r = row(1, 10, 1.0);
        r.insert("stats_since", Value::Str("2026-11-28 10:00".into()));
        d.observe("s", None, vec![r.clone()], 1);
        // reset alone and run more often than before: no negative delta
        // gives it away, the new stats_since does — everything it counted
        // since is this interval's
        let mut again = row(1, 25, 2.0);
        again.insert("stats_since", Value::Str("2026-11-28 10:05".into()));
        let (out, s) = d.observe("s", None, vec![again], 2);
        assert_eq!(calls_of(&out, 1), Some(25), "not 25 - 10");
        assert_eq!(s.new, 1);
    }

    #[test]
    fn nulls_do_not_break_a_scrape() {
        let mut d = StatementDeltas::new(&POSTGRES, 10, Vec::new());
        let mut r = row(1, 1, 1.0);
        r.insert("total_exec_time", Value::Nil);
        r.insert("query", Value::Nil);
        let mut no_id = row(2, 1, 1.0);
        no_id.insert("queryid", Value::Nil);
        let (_, s) = d.observe("s", None, vec![r, no_id], 1);
        assert_eq!(s.skipped_rows, 1);
        assert_eq!(s.baselined, 1);
    }

    #[test]
    fn a_statement_new_since_the_last_scrape_sends_its_full_counters() {
        let mut d = StatementDeltas::new(&POSTGRES, 200, Vec::new());
        let (first, s) = d.observe("s", None, vec![row(1, 10, 1.0)], 1);
        assert!(first.is_empty(), "the first scrape is a baseline");
        assert_eq!(s.baselined, 1);
        // statement 2 ran 3 times and appeared since the first scrape
        let (second, s) = d.observe("s", None, vec![row(1, 12, 2.0), row(2, 3, 0.5)], 2);
        assert_eq!((calls_of(&second, 1), calls_of(&second, 2)), (Some(2), Some(3)));
        assert_eq!(s.new, 1);
        // but after a reset or a new server identity, everything is a baseline again
        let (failover, _) = d.observe("other", None, vec![row(1, 5, 1.0), row(3, 4, 1.0)], 3);
        assert!(failover.is_empty());
    }

    #[test]
    fn cached_texts_are_bounded_in_bytes() {
        let mut d = StatementDeltas::new(&POSTGRES, 10_000, Vec::new());
        let big = |id: i64, calls: i64| {
            let mut r = row(id, calls, 1.0);
            r.insert("query", Value::Str(format!("select {id} /* {} */", "x".repeat(1 << 20))));
            r
        };
        d.observe("s", None, (0..20).map(|i| big(i, 1)).collect(), 1);
        let (out, _) = d.observe("s", None, (0..20).map(|i| big(i, 2)).collect(), 2);
        assert!(d.text_bytes() <= MAX_TEXT_BYTES, "{} bytes cached", d.text_bytes());
        let texts =
            out.iter().filter(|r| matches!(r, Record::Log(l) if l.attributes.get("db.query.text").is_some_and(|t| !t.is_nil()))).count();
        assert_eq!(texts, 20, "every emitted statement still carries its text");
    }

    #[test]
    fn forgotten_keys_free_their_memory() {
        let mut d = StatementDeltas::new(&POSTGRES, 10, Vec::new());
        d.observe("s", None, (0..100).map(|i| row(i, 1, 1.0)).collect(), 1);
        assert_eq!(d.tracked(), 100);
        d.observe("s", None, vec![row(1, 2, 2.0)], 2);
        assert_eq!(d.tracked(), 1);
        assert!(d.knows_text("1") && !d.knows_text("50"));
        assert_eq!(d.text_bytes(), "select 1".len());
    }
}
