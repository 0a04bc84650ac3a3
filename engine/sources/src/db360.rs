//! New Relic's Database 360 contract, written down once.
//!
//! Database 360's pages (query performance, wait events, sessions and
//! blocking, execution plans, APM correlation) read three `Log` events with
//! the attributes New Relic's own collector sends (its fork of the contrib
//! receivers, `receiver/nrpostgresqlreceiver` and `nrmysqlreceiver`, as of
//! v0.162: `metadata.yaml`, the scrapers, their golden files). This module
//! is that contract as data — every attribute, its type, its unit, where it
//! comes from and when a server cannot give it — read by the collectors'
//! declarations, the conformance check the tests run on real output
//! ([`problems`]), and the README's tables ([`markdown`]).
//!
//! Where New Relic's docs and its code disagree, the code is followed: it
//! is what the pages were built against. Top-query times are *delta
//! seconds* (the docs say milliseconds); a sample's
//! `postgresql.total_exec_time` is the *elapsed* milliseconds of the
//! running statement (the docs say a delta); the MySQL names are those of
//! v0.162 (`mysql.client.name`, `…examined_rows`, `…returned_rows`; the
//! docs still show the old ones).
//!
//! New Relic's collector sets every declared attribute on every record,
//! with an empty value when there is nothing to say (no comment tags, not
//! blocked): so does dbintel. What a *server* cannot give is different: it
//! is left out, never faked, and said here ([`Presence`]).

use dbintel_core::record::{LogRecord, Record};
use dbintel_stdlib::Value;

use crate::target::Engine;

/// An attribute's value type, as OTLP carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Double,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Str => "string",
            Kind::Int => "int",
            Kind::Double => "double",
        }
    }

    fn holds(self, value: &Value) -> bool {
        matches!((self, value), (Kind::Str, Value::Str(_)) | (Kind::Int, Value::Int(_)) | (Kind::Double, Value::Double(_)))
    }
}

/// When a record carries the attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// On every record (empty when there is nothing to say).
    Always,
    /// PostgreSQL from this `server_version_num` on; older servers have
    /// no source for it.
    PgFrom(i64),
    /// Not on MariaDB, which has no source for it (the reason).
    NotMariaDb(&'static str),
    /// MySQL from this version (major·10000 + minor·100 + patch); MariaDB
    /// and older MySQL have no source for it (the reason).
    MySqlFrom(i64, &'static str),
    /// Only when there is a value (a plan that could be obtained).
    WhenKnown(&'static str),
}

/// One attribute of an event.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    /// The unit or format (empty: none).
    pub unit: &'static str,
    pub meaning: &'static str,
    pub presence: Presence,
}

const fn f(name: &'static str, kind: Kind, unit: &'static str, meaning: &'static str) -> Field {
    Field { name, kind, unit, meaning, presence: Presence::Always }
}

const fn when(field: Field, presence: Presence) -> Field {
    Field { presence, ..field }
}

/// One event of the contract.
#[derive(Debug, Clone, Copy)]
pub struct Contract {
    pub event: &'static str,
    pub engine: Engine,
    pub fields: &'static [Field],
    /// Whether records may carry a W3C trace and span id (the session's
    /// `traceparent`).
    pub trace_context: bool,
    pub description: &'static str,
}

/// The server a record came from, as far as the contract cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    pub engine: Engine,
    pub mariadb: bool,
    /// PostgreSQL `server_version_num`; MySQL/MariaDB major·10000 +
    /// minor·100 + patch.
    pub version: i64,
}

impl Presence {
    /// Whether `server` can give the attribute at all.
    pub fn possible_on(self, server: Server) -> bool {
        match self {
            Presence::Always | Presence::WhenKnown(_) => true,
            Presence::PgFrom(v) => server.engine != Engine::Postgres || server.version >= v,
            Presence::NotMariaDb(_) => !server.mariadb,
            Presence::MySqlFrom(v, _) => !server.mariadb && server.version >= v,
        }
    }

    /// Whether every record from `server` must carry it.
    pub fn required_on(self, server: Server) -> bool {
        !matches!(self, Presence::WhenKnown(_)) && self.possible_on(server)
    }

    fn describe(self) -> String {
        match self {
            Presence::Always => String::new(),
            Presence::PgFrom(v) => format!("PostgreSQL {}+", v / 10000),
            Presence::NotMariaDb(why) => format!("not on MariaDB: {why}"),
            Presence::MySqlFrom(v, why) => format!("MySQL {}.{}.{}+ ({why})", v / 10000, v / 100 % 100, v % 100),
            Presence::WhenKnown(what) => format!("when {what}"),
        }
    }
}

// ---- the events, attribute for attribute ----

const COMMENT_TAGS: Field = f(
    "db.query.comment_tags",
    Kind::Str,
    "k=v,k=v",
    "allowed keys of the statement's leading comments (APM agents write nr_service_guid there); empty when none (PostgreSQL 18's pg_stat_statements keeps no leading comment: there only samples carry them)",
);
const SERVICE_GUID: Field =
    f("db.query.comment_tags.nr_service_guid", Kind::Str, "", "the APM entity GUID from the leading comment; empty when none");
const HASH: Field = f(
    "db.query.text.normalized.hash",
    Kind::Str,
    "32 hex",
    "MD5 of the statement as New Relic's APM agents normalize it: joins a query to its APM trace",
);

pub const PG_QUERY_SAMPLE: Contract = Contract {
    event: "db.server.query_sample",
    engine: Engine::Postgres,
    trace_context: true,
    description: "one per session that runs a statement, per sample (pg_stat_activity), with what blocks it",
    fields: &[
        f("db.system.name", Kind::Str, "", "`postgresql`"),
        f("db.namespace", Kind::Str, "", "the session's database"),
        f("db.query.text", Kind::Str, "", "the statement, sanitized by the pipeline"),
        COMMENT_TAGS,
        SERVICE_GUID,
        f("user.name", Kind::Str, "", "the session's role"),
        f("postgresql.state", Kind::Str, "", "active, idle in transaction, …"),
        f("postgresql.pid", Kind::Int, "", "the backend's process id"),
        f("postgresql.backend.connection.start", Kind::Str, "YYYY-MM-DDTHH:MM:SSZ", "when the session connected (UTC)"),
        f("postgresql.session.duration", Kind::Int, "s", "how long the session has been connected"),
        f(
            "postgresql.application_name",
            Kind::Str,
            "",
            "the client's application_name (a W3C traceparent there becomes the record's trace)",
        ),
        f("network.peer.address", Kind::Str, "", "the client's address (empty over a Unix socket)"),
        f("network.peer.port", Kind::Int, "", "the client's port (0 over a Unix socket)"),
        f("postgresql.client_hostname", Kind::Str, "", "the client's host name (log_hostname)"),
        f("postgresql.query_start", Kind::Str, "timestamptz text", "when the statement started"),
        f("postgresql.wait_event", Kind::Str, "", "what the session waits on now; empty on CPU"),
        f("postgresql.wait_event_type", Kind::Str, "", "the wait's class; empty on CPU"),
        when(f("postgresql.query_id", Kind::Str, "", "the statement's query id (compute_query_id)"), Presence::PgFrom(140000)),
        f("postgresql.total_exec_time", Kind::Double, "ms", "elapsed time of the running statement (not a delta)"),
        f("postgresql.blocking.pids", Kind::Str, "{pid,…}", "the sessions blocking it; {} when not blocked"),
        when(
            f(
                "postgresql.blocking.start_time",
                Kind::Str,
                "YYYY-MM-DDTHH:MM:SSZ",
                "when its oldest lock wait began; empty when not waiting",
            ),
            Presence::PgFrom(140000),
        ),
        when(
            f("postgresql.blocking.wait_duration", Kind::Int, "s", "how long it has waited for that lock; 0 when not waiting"),
            Presence::PgFrom(140000),
        ),
        f("postgresql.blocking.lock.mode", Kind::Str, "", "the lock mode it waits for; empty when not waiting"),
        f("postgresql.blocking.lock.type", Kind::Str, "", "relation, transactionid, tuple…; empty when not waiting"),
        f("postgresql.blocking.lock.relation", Kind::Str, "", "the relation it waits on; empty when none"),
        f(
            "postgresql.blocking.transaction.start_time",
            Kind::Str,
            "YYYY-MM-DDTHH:MM:SSZ",
            "when the session's transaction began (UTC); empty outside one",
        ),
        HASH,
    ],
};

pub const PG_TOP_QUERY: Contract = Contract {
    event: "db.server.top_query",
    engine: Engine::Postgres,
    trace_context: false,
    description: "one per top statement per interval (pg_stat_statements deltas)",
    fields: &[
        f("db.system.name", Kind::Str, "", "`postgresql`"),
        f("db.namespace", Kind::Str, "", "the statement's database"),
        f("db.query.text", Kind::Str, "", "the statement, sanitized by the pipeline"),
        COMMENT_TAGS,
        SERVICE_GUID,
        f("postgresql.calls", Kind::Int, "delta", "calls in the interval"),
        f("postgresql.rows", Kind::Int, "delta", "rows returned or affected"),
        f("postgresql.shared_blks_dirtied", Kind::Int, "delta", "shared blocks dirtied"),
        f("postgresql.shared_blks_hit", Kind::Int, "delta", "shared buffer hits"),
        f("postgresql.shared_blks_read", Kind::Int, "delta", "shared blocks read"),
        f("postgresql.shared_blks_written", Kind::Int, "delta", "shared blocks written"),
        f("postgresql.temp_blks_read", Kind::Int, "delta", "temporary blocks read"),
        f("postgresql.temp_blks_written", Kind::Int, "delta", "temporary blocks written"),
        f("postgresql.queryid", Kind::Str, "", "the statement's query id"),
        f("postgresql.userid", Kind::Str, "oid", "the role's oid (stays when the role is dropped)"),
        f("postgresql.rolname", Kind::Str, "", "the role's name; empty once dropped"),
        f("postgresql.total_exec_time", Kind::Double, "s, delta", "execution time in the interval"),
        f("postgresql.total_plan_time", Kind::Double, "s, delta", "planning time in the interval (0 before PostgreSQL 13)"),
        when(
            f("postgresql.query_plan", Kind::Str, "JSON", "the statement's plan, obfuscated (with plans on the top query, the default)"),
            Presence::WhenKnown("a plan was obtained and plans go on the top query"),
        ),
        HASH,
    ],
};

/// Where a plan came from: a generic EXPLAIN by dbintel, or the server's
/// own log (`auto_explain`, with actual rows and timings).
const PLAN_SOURCE: Field = f("dbintel.plan.source", Kind::Str, "explain | log", "a generic EXPLAIN by dbintel, or the server's log");

pub const PG_QUERY_PLAN: Contract = Contract {
    event: "db.server.query_plan",
    engine: Engine::Postgres,
    trace_context: false,
    description: "a statement's plan on a record of its own (plans = event)",
    fields: &[
        f("db.system.name", Kind::Str, "", "`postgresql`"),
        f("postgresql.queryid", Kind::Str, "", "the statement's query id"),
        f("db.namespace", Kind::Str, "", "the statement's database"),
        f("postgresql.userid", Kind::Str, "oid", "the role's oid; empty when the plan's source does not say"),
        f("postgresql.rolname", Kind::Str, "", "the role's name; empty when the plan's source does not say"),
        f("postgresql.query_plan", Kind::Str, "JSON", "the plan, obfuscated"),
        PLAN_SOURCE,
    ],
};

pub const MY_QUERY_SAMPLE: Contract = Contract {
    event: "db.server.query_sample",
    engine: Engine::MySql,
    trace_context: true,
    description: "one per thread that runs a statement, per sample (performance_schema threads, statements and waits)",
    fields: &[
        f("db.system.name", Kind::Str, "", "`mysql` (MariaDB too)"),
        f("mysql.threads.thread_id", Kind::Int, "", "the performance_schema thread id"),
        f("user.name", Kind::Str, "", "the session's user"),
        f("db.namespace", Kind::Str, "", "the session's current schema"),
        f("mysql.threads.processlist_command", Kind::Str, "", "Query, Execute, …"),
        f("mysql.threads.processlist_state", Kind::Str, "", "what the thread is doing"),
        f("db.query.text", Kind::Str, "", "the statement, sanitized by the pipeline"),
        f("mysql.events_statements_current.digest", Kind::Str, "64 hex", "the statement's digest; empty when the server has none"),
        when(
            f("mysql.query_plan", Kind::Str, "[JSON]", "the statement's plan, obfuscated, in a one-element array"),
            Presence::WhenKnown("a plan was obtained and plans go on the events"),
        ),
        f("mysql.query_plan.hash", Kind::Str, "", "the plan's key (the digest); empty without a plan"),
        f("mysql.event_id", Kind::Int, "", "the current wait's or statement's event id"),
        f("mysql.wait_event_type", Kind::Str, "", "io, lock, synch, CPU, User sleep, other"),
        f("mysql.wait_event", Kind::Str, "", "the wait instrument without its class (table/sql/handler…)"),
        f("mysql.wait_type", Kind::Str, "", "the wait instrument, CPU, User sleep or other"),
        f("mysql.session.status", Kind::Str, "", "waiting, running or other"),
        f("mysql.session.id", Kind::Int, "", "the processlist id (KILL takes it)"),
        f("mysql.events_statements_current.timer_wait", Kind::Double, "s", "elapsed time of the statement"),
        f("mysql.events_waits_current.timer_wait", Kind::Double, "s", "elapsed time of the current wait"),
        f("client.address", Kind::Str, "", "the client's host"),
        when(
            f("client.port", Kind::Int, "", "the client's port"),
            Presence::MySqlFrom(80022, "only performance_schema.processlist (MySQL 8.0.22+) has it"),
        ),
        f("network.peer.address", Kind::Str, "", "= client.address"),
        when(
            f("network.peer.port", Kind::Int, "", "= client.port"),
            Presence::MySqlFrom(80022, "only performance_schema.processlist (MySQL 8.0.22+) has it"),
        ),
        COMMENT_TAGS,
        SERVICE_GUID,
        HASH,
        f("mysql.events_statements_current.timer_start", Kind::Int, "ps", "when the statement started (the server's timer)"),
        f("mysql.client.name", Kind::Str, "", "the client library (session_connect_attrs _client_name); empty when not sent"),
        f(
            "mysql.blocking.blockers",
            Kind::Str,
            "JSON",
            "[{\"thread_id\":…,\"session_id\":…}] of the threads holding what it waits for; [] when none",
        ),
        f("mysql.blocking.blocker.count", Kind::Int, "", "how many threads block it"),
    ],
};

pub const MY_TOP_QUERY: Contract = Contract {
    event: "db.server.top_query",
    engine: Engine::MySql,
    trace_context: false,
    description: "one per top digest per interval (events_statements_summary_by_digest deltas)",
    fields: &[
        f("db.system.name", Kind::Str, "", "`mysql` (MariaDB too)"),
        f("db.query.text", Kind::Str, "", "the digest text, sanitized by the pipeline"),
        when(
            f("mysql.query_plan", Kind::Str, "[JSON]", "the statement's plan, obfuscated, in a one-element array"),
            Presence::WhenKnown("a plan was obtained and plans go on the events"),
        ),
        f("mysql.query_plan.hash", Kind::Str, "", "the plan's key (the digest); empty without a plan"),
        f("mysql.events_statements_summary_by_digest.digest", Kind::Str, "64 hex", "the digest"),
        f("mysql.events_statements_summary_by_digest.count_star", Kind::Int, "delta", "calls in the interval"),
        f("mysql.events_statements_summary_by_digest.sum_timer_wait", Kind::Double, "s, delta", "execution time in the interval"),
        when(COMMENT_TAGS, Presence::MySqlFrom(80003, "only QUERY_SAMPLE_TEXT (MySQL 8.0.3+) keeps a statement's comments")),
        when(SERVICE_GUID, Presence::MySqlFrom(80003, "only QUERY_SAMPLE_TEXT (MySQL 8.0.3+) keeps a statement's comments")),
        HASH,
        f("db.namespace", Kind::Str, "", "the digest's schema"),
        f("mysql.events_statements_summary_by_digest.examined_rows", Kind::Int, "delta", "rows examined"),
        f("mysql.events_statements_summary_by_digest.returned_rows", Kind::Int, "delta", "rows sent"),
    ],
};

pub const MY_QUERY_PLAN: Contract = Contract {
    event: "db.server.query_plan",
    engine: Engine::MySql,
    trace_context: false,
    description: "a statement's plan on a record of its own (plans = event)",
    fields: &[
        f("db.system.name", Kind::Str, "", "`mysql`"),
        f("mysql.query_plan.hash", Kind::Str, "", "the plan's key (the digest)"),
        f("db.namespace", Kind::Str, "", "the statement's schema"),
        f("mysql.query_plan.source", Kind::Str, "", "db.server.top_query or db.server.query_sample: which statement it explains"),
        f("mysql.query_plan", Kind::Str, "[JSON]", "the plan, obfuscated, in a one-element array"),
        PLAN_SOURCE,
    ],
};

/// Every event of the contract.
pub const ALL: &[&Contract] = &[&PG_TOP_QUERY, &PG_QUERY_SAMPLE, &PG_QUERY_PLAN, &MY_TOP_QUERY, &MY_QUERY_SAMPLE, &MY_QUERY_PLAN];

/// The contract of an event of an engine.
pub fn contract(engine: Engine, event: &str) -> Option<&'static Contract> {
    ALL.iter().copied().find(|c| c.engine == engine && c.event == event)
}

/// What is wrong with a record against the contract, for `server`:
/// attributes missing that the server can give, or of the wrong type.
/// Empty when it conforms (and for events outside the contract).
pub fn problems(server: Server, record: &LogRecord) -> Vec<String> {
    let Some(contract) = contract(server.engine, &record.event_name) else { return Vec::new() };
    let mut out = Vec::new();
    for field in contract.fields {
        match record.attributes.get(field.name) {
            None if field.presence.required_on(server) => out.push(format!("{}: {} missing", contract.event, field.name)),
            None => {}
            Some(_) if !field.presence.possible_on(server) => {
                out.push(format!("{}: {} present, but this server has no source for it (a fake?)", contract.event, field.name))
            }
            Some(v) if !field.kind.holds(v) => {
                out.push(format!("{}: {} = {v:?} is not a {}", contract.event, field.name, field.kind.describe()))
            }
            Some(_) => {}
        }
    }
    out
}

/// Whether a record is an event of the contract.
pub fn covers(engine: Engine, record: &Record) -> bool {
    matches!(record, Record::Log(l) if contract(engine, &l.event_name).is_some())
}

/// The contract as Markdown tables, one per event: what the README shows
/// between its `db360` markers.
pub fn markdown() -> String {
    let mut out = String::new();
    for c in ALL {
        let engine = match c.engine {
            Engine::Postgres => "PostgreSQL",
            Engine::MySql => "MySQL / MariaDB",
        };
        out.push_str(&format!("**{engine} `{}`** — {}", c.event, c.description));
        if c.trace_context {
            out.push_str("; the record's trace and span id from the session's W3C `traceparent`");
        }
        out.push_str(".\n\n| attribute | type | unit | what | when |\n| --- | --- | --- | --- | --- |\n");
        for field in c.fields {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                field.name,
                field.kind.describe(),
                if field.unit.is_empty() { "—".to_string() } else { format!("`{}`", field.unit) },
                field.meaning.replace('|', "\\|"),
                match field.presence.describe() {
                    d if d.is_empty() => "always".to_string(),
                    d => d,
                }
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_names_each_attribute_once_and_mysql_uses_the_v0_162_names() {
        for c in ALL {
            let mut seen = std::collections::BTreeSet::new();
            for field in c.fields {
                assert!(seen.insert(field.name), "{} lists {} twice", c.event, field.name);
            }
        }
        let names: Vec<&str> = MY_TOP_QUERY.fields.iter().chain(MY_QUERY_SAMPLE.fields).map(|f| f.name).collect();
        for old in [
            "mysql.session.client_name",
            "mysql.events_statements_summary_by_digest.sum_rows_examined",
            "mysql.events_statements_summary_by_digest.sum_rows_sent",
        ] {
            assert!(!names.contains(&old), "{old} was renamed in v0.162");
        }
    }

    /// README.md's Database 360 tables are [`markdown`]'s output:
    /// regenerate them with `DBINTEL_BLESS=1 cargo test -p dbintel-sources --lib db360`.
    #[test]
    fn the_readme_db360_tables_follow_the_contract() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(&path).expect("README.md");
        let begin = "<!-- db360:begin (generated; see engine/sources/src/db360.rs) -->\n";
        let end = "<!-- db360:end -->";
        let start = readme.find(begin).expect("the db360 markers in README.md") + begin.len();
        let stop = readme[start..].find(end).expect("the db360 end marker") + start;
        let tables = markdown();
        if std::env::var_os("DBINTEL_BLESS").is_some() {
            std::fs::write(&path, format!("{}{tables}{}", &readme[..start], &readme[stop..])).expect("write README.md");
            return;
        }
        assert_eq!(
            &readme[start..stop],
            tables,
            "README.md's Database 360 tables are stale: DBINTEL_BLESS=1 cargo test -p dbintel-sources --lib db360"
        );
    }

    #[test]
    fn presence_follows_the_server() {
        let pg13 = Server { engine: Engine::Postgres, mariadb: false, version: 130011 };
        let pg15 = Server { engine: Engine::Postgres, mariadb: false, version: 150004 };
        let maria = Server { engine: Engine::MySql, mariadb: true, version: 101106 };
        let mysql = Server { engine: Engine::MySql, mariadb: false, version: 80036 };
        assert!(!Presence::PgFrom(140000).possible_on(pg13) && Presence::PgFrom(140000).required_on(pg15));
        let port = Presence::MySqlFrom(80022, "");
        assert!(!port.possible_on(maria) && port.required_on(mysql));
        assert!(!Presence::WhenKnown("").required_on(mysql) && Presence::WhenKnown("").possible_on(mysql));
    }

    #[test]
    fn a_record_is_checked_for_missing_fake_and_mistyped_attributes() {
        let maria = Server { engine: Engine::MySql, mariadb: true, version: 101106 };
        let mut record = LogRecord { event_name: "db.server.top_query".into(), ..LogRecord::default() };
        for field in MY_TOP_QUERY.fields.iter().filter(|f| f.presence.required_on(maria)) {
            let value = match field.kind {
                Kind::Str => Value::Str(String::new()),
                Kind::Int => Value::Int(0),
                Kind::Double => Value::Double(0.0),
            };
            record.attributes.insert(field.name, value);
        }
        assert_eq!(problems(maria, &record), Vec::<String>::new());
        record.attributes.insert("db.query.comment_tags", Value::Str(String::new()));
        record.attributes.insert("mysql.events_statements_summary_by_digest.count_star", Value::Double(1.0));
        record.attributes.remove("db.namespace");
        let found = problems(maria, &record);
        assert_eq!(found.len(), 3, "{found:?}");
    }
}
