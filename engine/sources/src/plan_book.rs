//! The one shape every plan leaves in, whoever obtained it.
//!
//! Plans come from dbintel's own generic EXPLAIN (the `plans` collector,
//! never ANALYZE) or from the server's log (`auto_explain`: the plan a
//! statement actually ran, with real rows and timings; the `logs`
//! sources). Both go through here, so New Relic's pages see them the way
//! New Relic's own collector sends them (see `db360.rs`):
//!
//! - `emit = top_query` (New Relic's default): the plan rides on the
//!   statement's next `db.server.top_query` events —
//!   `postgresql.query_plan`, or `mysql.query_plan` with
//!   `mysql.query_plan.hash` — read from this book by the statements
//!   collector;
//! - `emit = event` (New Relic's opt-in): a `db.server.query_plan` event
//!   of its own, joined to its statement by query id (PostgreSQL) or plan
//!   hash (MySQL), and the top queries carry none.
//!
//! A plan is obfuscated before it gets here, in New Relic's JSON shape (a
//! top-level array: PostgreSQL's EXPLAIN is one; MySQL's object is wrapped
//! in `[…]` so New Relic's log ingest keeps it whole instead of flattening
//! it), and says where it came from (`dbintel.plan.source`: `explain` or
//! `log`). Plan changes (`db.server.plan_change`) compare plans of the same
//! source only — a generic plan and an actual one of the same statement
//! differ without anything having changed.
//!
//! The book is per server (its configured `host:port`: a database source
//! and the sources that name it agree on it), bounded in bytes, entries
//! expire, and a server's book goes when no source of it is left.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use dbintel_core::record::{LogRecord, Record};
use dbintel_stdlib::{Map, Value};

use crate::target::Engine;

/// Bytes of plans a server's book keeps, at most; the oldest go first.
pub const MAX_BOOK_BYTES: usize = 16 << 20;

/// Where a plan came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanSource {
    /// dbintel's generic EXPLAIN (or the server's EXPLAIN helper).
    Explain,
    /// The server's log (`auto_explain`): the plan the statement ran.
    Log,
}

impl PlanSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanSource::Explain => "explain",
            PlanSource::Log => "log",
        }
    }
}

/// Where plans go: on the top queries, or as events of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    TopQuery,
    Event,
}

/// One obfuscated plan of one statement.
#[derive(Debug, Clone)]
pub struct Plan {
    pub engine: Engine,
    /// The statement's database (schema on MySQL).
    pub database: String,
    /// PostgreSQL's query id, MySQL's digest.
    pub query_id: String,
    /// PostgreSQL: the role's oid and name, when the source knows them.
    pub user_id: Option<String>,
    pub role: Option<String>,
    /// The obfuscated plan as EXPLAIN's JSON.
    pub json: String,
    pub source: PlanSource,
    /// MySQL: which statement was explained (`db.server.top_query` or
    /// `db.server.query_sample`).
    pub explained_from: Option<&'static str>,
}

impl Plan {
    /// The plan as New Relic's collector sends it: a top-level JSON array
    /// (PostgreSQL's EXPLAIN already is one; an object is wrapped).
    pub fn nr_json(&self) -> String {
        if self.json.trim_start().starts_with('[') {
            self.json.clone()
        } else {
            format!("[{}]", self.json)
        }
    }

    /// dbintel's comparable attributes of the plan (`db.plan.*`, with its
    /// structural `db.plan.hash`).
    pub fn attributes(&self) -> Map {
        dbintel_stdlib::plan::attributes(&self.json).unwrap_or_default()
    }

    fn bytes(&self) -> usize {
        self.json.len() + self.database.len() + self.query_id.len() + 64
    }
}

struct Entry {
    plan: Plan,
    placement: Placement,
    hash: String,
    at: Instant,
    expires: Instant,
}

/// The latest plans of one server's statements.
pub struct PlanBook {
    key: String,
    inner: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    /// (database, query id, source) → the plan.
    entries: HashMap<(String, String, PlanSource), Entry>,
    bytes: usize,
}

static BOOKS: Mutex<Vec<(String, Weak<PlanBook>)>> = Mutex::new(Vec::new());

impl PlanBook {
    /// The book of server `key` (`host:port` as configured).
    pub fn of(key: &str) -> Arc<PlanBook> {
        let mut books = BOOKS.lock().unwrap_or_else(|p| p.into_inner());
        books.retain(|(_, w)| w.strong_count() > 0);
        if let Some(book) = books.iter().find(|(k, _)| k == key).and_then(|(_, w)| w.upgrade()) {
            return book;
        }
        let book = Arc::new(PlanBook { key: key.to_string(), inner: Mutex::new(Book::default()) });
        books.push((key.to_string(), Arc::downgrade(&book)));
        book
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Files a plan for `keep`; the previous plan's structural hash of the
    /// same statement from the same source, when it differs (a plan
    /// change).
    pub fn put(&self, plan: Plan, placement: Placement, keep: Duration) -> Option<String> {
        let now = Instant::now();
        let hash = plan.attributes().get("db.plan.hash").and_then(Value::as_str).unwrap_or_default().to_string();
        let key = (plan.database.clone(), plan.query_id.clone(), plan.source);
        let mut book = self.book();
        let size = plan.bytes();
        let previous = book.entries.remove(&key).map(|old| {
            book.bytes -= old.plan.bytes();
            old.hash
        });
        book.entries.insert(key, Entry { plan, placement, hash: hash.clone(), at: now, expires: now + keep });
        book.bytes += size;
        // expired plans go, then the oldest while over the bound
        let expired: Vec<_> = book.entries.iter().filter(|(_, e)| e.expires <= now).map(|(k, _)| k.clone()).collect();
        for k in expired {
            if let Some(e) = book.entries.remove(&k) {
                book.bytes -= e.plan.bytes();
            }
        }
        while book.bytes > MAX_BOOK_BYTES {
            let Some(oldest) = book.entries.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| k.clone()) else { break };
            if let Some(e) = book.entries.remove(&oldest) {
                book.bytes -= e.plan.bytes();
            }
        }
        previous.filter(|p| !p.is_empty() && !hash.is_empty() && *p != hash)
    }

    /// The latest plan of a statement that rides on its top queries, the
    /// server's actual one first.
    pub fn for_top_query(&self, database: &str, query_id: &str) -> Option<Plan> {
        let now = Instant::now();
        let book = self.book();
        [PlanSource::Log, PlanSource::Explain]
            .iter()
            .find_map(|s| {
                book.entries
                    .get(&(database.to_string(), query_id.to_string(), *s))
                    .filter(|e| e.expires > now && e.placement == Placement::TopQuery)
            })
            .map(|e| e.plan.clone())
    }

    /// Plans held (tests, /status).
    pub fn len(&self) -> usize {
        self.book().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Files `plan` in its server's book and returns the records it becomes
/// now: under `Placement::Event` its `db.server.query_plan` event; under
/// either, a `db.server.plan_change` when its shape differs from the last
/// plan of the same statement from the same source.
pub fn publish(book: &PlanBook, plan: Plan, placement: Placement, keep: Duration, now: u64) -> Vec<Record> {
    let previous = book.put(plan.clone(), placement, keep);
    let mut out = Vec::new();
    let mut own = plan.attributes();
    own.insert("db.query.id", Value::Str(plan.query_id.clone()));
    own.insert("db.namespace", Value::Str(plan.database.clone()));
    own.insert("dbintel.plan.source", Value::Str(plan.source.as_str().into()));
    if let Some(previous) = previous {
        let mut change = own.clone();
        change.insert("db.plan.previous_hash", Value::Str(previous.clone()));
        tracing::info!(query_id = %plan.query_id, source = plan.source.as_str(), from = %previous, "plan changed");
        out.push(log("db.server.plan_change", 13, "WARN", change, now));
    }
    if placement == Placement::Event {
        let mut event = own;
        match plan.engine {
            Engine::Postgres => {
                event.insert("db.system.name", Value::Str("postgresql".into()));
                event.insert("postgresql.queryid", Value::Str(plan.query_id.clone()));
                event.insert("postgresql.userid", Value::Str(plan.user_id.clone().unwrap_or_default()));
                event.insert("postgresql.rolname", Value::Str(plan.role.clone().unwrap_or_default()));
                event.insert("postgresql.query_plan", Value::Str(plan.nr_json()));
            }
            Engine::MySql => {
                event.insert("db.system.name", Value::Str("mysql".into()));
                event.insert("mysql.query_plan.hash", Value::Str(plan.query_id.clone()));
                event.insert("mysql.query_plan.source", Value::Str(plan.explained_from.unwrap_or("db.server.top_query").into()));
                event.insert("mysql.query_plan", Value::Str(plan.nr_json()));
            }
        }
        out.push(log("db.server.query_plan", 9, "INFO", event, now));
    }
    out
}

/// Puts a statement's latest plan on its `db.server.top_query` event
/// (`emit = top_query`); MySQL's plan hash stays empty without a plan.
pub fn attach(book: &PlanBook, engine: Engine, database: &str, query_id: &str, event: &mut Map) {
    let Some(plan) = book.for_top_query(database, query_id) else { return };
    match engine {
        Engine::Postgres => event.insert("postgresql.query_plan", Value::Str(plan.nr_json())),
        Engine::MySql => {
            event.insert("mysql.query_plan.hash", Value::Str(plan.query_id.clone()));
            event.insert("mysql.query_plan", Value::Str(plan.nr_json()))
        }
    };
    event.insert("dbintel.plan.source", Value::Str(plan.source.as_str().into()));
}

fn log(name: &str, severity: i32, text: &str, attributes: Map, now: u64) -> Record {
    Record::Log(LogRecord {
        time_unix_nano: now,
        observed_time_unix_nano: now,
        severity_number: severity,
        severity_text: text.into(),
        event_name: name.into(),
        body: Value::Nil,
        attributes,
        ..LogRecord::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(source: PlanSource, node: &str) -> Plan {
        Plan {
            engine: Engine::Postgres,
            database: "shop".into(),
            query_id: "42".into(),
            user_id: Some("10".into()),
            role: Some("app".into()),
            json: format!(r#"[{{"Plan": {{"Node Type": "{node}", "Relation Name": "orders", "Total Cost": 1.0}}}}]"#),
            source,
            explained_from: None,
        }
    }

    #[test]
    fn a_plan_rides_on_its_top_query_or_leaves_as_its_own_event() {
        let book = PlanBook::of("test-book:1");
        assert!(publish(&book, plan(PlanSource::Explain, "Seq Scan"), Placement::TopQuery, Duration::from_secs(60), 1).is_empty());
        let mut top = Map::new();
        attach(&book, Engine::Postgres, "shop", "42", &mut top);
        assert!(top.get("postgresql.query_plan").and_then(Value::as_str).is_some_and(|p| p.starts_with('[')));
        assert_eq!(top.get("dbintel.plan.source"), Some(&Value::Str("explain".into())));
        let book = PlanBook::of("test-book:2");
        let records = publish(&book, plan(PlanSource::Log, "Index Scan"), Placement::Event, Duration::from_secs(60), 1);
        let Record::Log(event) = &records[0] else { panic!("an event") };
        let server = crate::db360::Server { engine: Engine::Postgres, mariadb: false, version: 150004 };
        assert_eq!(crate::db360::problems(server, event), Vec::<String>::new());
        assert_eq!(event.attributes.get("dbintel.plan.source"), Some(&Value::Str("log".into())));
    }

    #[test]
    fn plan_changes_compare_plans_of_one_source() {
        let book = PlanBook::of("test-book:3");
        let keep = Duration::from_secs(60);
        assert!(publish(&book, plan(PlanSource::Explain, "Seq Scan"), Placement::TopQuery, keep, 1).is_empty());
        // the server's actual plan differs from the generic one: no change
        assert!(publish(&book, plan(PlanSource::Log, "Index Scan"), Placement::TopQuery, keep, 2).is_empty());
        // the generic plan itself changes: a change
        let records = publish(&book, plan(PlanSource::Explain, "Index Scan"), Placement::TopQuery, keep, 3);
        assert!(matches!(&records[..], [Record::Log(l)] if l.event_name == "db.server.plan_change"), "{records:?}");
        // the actual plan is what rides on the top query
        let mut top = Map::new();
        attach(&book, Engine::Postgres, "shop", "42", &mut top);
        assert_eq!(top.get("dbintel.plan.source"), Some(&Value::Str("log".into())));
    }

    #[test]
    fn a_mysql_plan_is_wrapped_in_an_array_so_ingest_keeps_it_whole() {
        let p = Plan { engine: Engine::MySql, json: r#"{"query_block": {"select_id": 1}}"#.into(), ..plan(PlanSource::Explain, "x") };
        assert_eq!(p.nr_json(), r#"[{"query_block": {"select_id": 1}}]"#);
    }
}
