//! `mysql.statements`: performance_schema's
//! `events_statements_summary_by_digest` as per-interval deltas, keyed by
//! (server, schema, digest); duplicate rows are summed and timers are
//! picoseconds (see `statement_deltas.rs`).

use std::time::Duration;

use dbintel_core::record::Record;
use dbintel_core::BoxFuture;
use dbintel_dsl::schema::StatementsSettings;

use crate::catalogue::{Declaration, Event};
use crate::collector::{Collector, Unreplayable};
use crate::rows::Row;
use crate::statement_deltas::{StatementDeltas, MYSQL};
use crate::target::{Engine, Target};
use crate::SourceError;

pub struct MyStatements {
    deltas: StatementDeltas,
    interval: Duration,
}

pub const DIGESTS_SQL: &str = "SELECT SCHEMA_NAME, DIGEST, DIGEST_TEXT, COUNT_STAR, SUM_TIMER_WAIT, SUM_ROWS_SENT, SUM_ROWS_EXAMINED,
        SUM_ROWS_AFFECTED, SUM_NO_INDEX_USED, SUM_CREATED_TMP_DISK_TABLES
   FROM performance_schema.events_statements_summary_by_digest
  WHERE DIGEST IS NOT NULL";

/// [`DIGESTS_SQL`] with each digest's sample text (MySQL 8.0.3+).
pub const DIGESTS_WITH_SAMPLE_SQL: &str =
    "SELECT SCHEMA_NAME, DIGEST, DIGEST_TEXT, COUNT_STAR, SUM_TIMER_WAIT, SUM_ROWS_SENT, SUM_ROWS_EXAMINED,
        SUM_ROWS_AFFECTED, SUM_NO_INDEX_USED, SUM_CREATED_TMP_DISK_TABLES, LEFT(QUERY_SAMPLE_TEXT, 4096) AS QUERY_SAMPLE_TEXT
   FROM performance_schema.events_statements_summary_by_digest
  WHERE DIGEST IS NOT NULL";

/// The metrics and the event of `mysql.statements` (built from
/// [`MYSQL`]'s counters; a test holds the two together).
pub const DECLARATION: Declaration = Declaration {
    collector: "statements",
    engine: Engine::MySql,
    metrics: &[
        delta("mysql.query.calls", "{call}", false, "calls in the interval"),
        delta("mysql.query.duration", "ms", true, "execution time in the interval"),
        delta("mysql.query.rows", "{row}", false, "rows sent"),
        delta("mysql.query.rows_examined", "{row}", false, "rows examined"),
        delta("mysql.query.rows_affected", "{row}", false, "rows affected"),
        delta("mysql.query.no_index_used", "{call}", false, "calls that used no index"),
        delta("mysql.query.tmp_disk_tables", "{table}", false, "temporary tables created on disk"),
    ],
    events: &[TOP_QUERY],
};

pub const TOP_QUERY: Event = Event {
    name: "db.server.top_query",
    attributes: &["db.query.id", "db.query.calls", "db.query.duration_ms", "db.query.total_duration_ms"],
    db360: Some(&crate::db360::MY_TOP_QUERY),
    description: "one per top digest per interval, with its sanitized text; the contrib time in seconds",
};

const DIGEST_ATTRIBUTES: &[crate::catalogue::Attr] =
    &[crate::catalogue::attr("db.query.id", &[]), crate::catalogue::attr("db.namespace", &[])];

/// A digest delta metric (see `pg_statements::delta`), without a user.
const fn delta(name: &'static str, unit: &'static str, double: bool, description: &'static str) -> crate::catalogue::Metric {
    use crate::catalogue::{Instrument, Level, Metric, Origin};
    Metric {
        name,
        unit,
        instrument: Instrument::DeltaCounter,
        double,
        level: Level::Instance,
        attributes: DIGEST_ATTRIBUTES,
        origin: Origin::Dbintel,
        description,
    }
}

impl MyStatements {
    pub fn new(settings: &StatementsSettings, interval: Duration, comment_keys: Vec<String>) -> MyStatements {
        MyStatements { deltas: StatementDeltas::new(&MYSQL, settings.top.max(1) as usize, comment_keys), interval }
    }
}

impl Collector for MyStatements {
    fn scope(&self) -> crate::collector::Scope {
        crate::collector::Scope::Server
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn scrape<'a>(&'a mut self, target: &'a Target, now: u64) -> BoxFuture<'a, Result<Vec<Record>, SourceError>> {
        Box::pin(async move {
            let Target::My(my) = target else {
                return Err(crate::setup_error("statements", "a MySQL collector on a PostgreSQL target".into()));
            };
            if self.deltas.plans.is_none() {
                self.deltas.plans = Some(crate::plan_book::PlanBook::of(my.server_key()));
            }
            let server = my.identity().await?;
            // MySQL 8.0.3+ keeps a sample of each digest's text, comments
            // and all: its comment tags
            let sql = if !my.server.mariadb && my.server.version >= 80003 { DIGESTS_WITH_SAMPLE_SQL } else { DIGESTS_SQL };
            let rows = my.query("statement digests", sql).await?;
            Ok(self.deltas.observe(&server, None, rows, now).0)
        })
    }

    /// Recorded rows: the digest table's columns, optionally `_server`.
    fn replay(&mut self, rows: Vec<Row>, now: u64) -> Result<Vec<Record>, Unreplayable> {
        let server = rows.iter().find_map(|r| r.get("_server").filter(|v| !v.is_nil()).map(ToString::to_string));
        Ok(self.deltas.observe(server.as_deref().unwrap_or("recorded"), None, rows, now).0)
    }
}
