//! `collect plans`: plans of the top statements, PostgreSQL and MySQL.
//!
//! MySQL / MariaDB: `EXPLAIN FORMAT=JSON` of a real statement text — the
//! digest's `QUERY_SAMPLE_TEXT` on MySQL 8, the recent-statements history
//! (`events_statements_history`) on MariaDB. Digests with no sample text
//! are skipped: a digest text's `?` cannot be explained faithfully.
//!
//! Never ANALYZE, never executing the statement: PostgreSQL 16+ runs
//! `EXPLAIN (GENERIC_PLAN, FORMAT JSON)`; older servers `PREPARE` the text,
//! force a generic plan and `EXPLAIN (FORMAT JSON) EXECUTE` it with NULL
//! parameters. What may be explained is decided from the SQL lexer's
//! tokens by [`dbintel_stdlib::sql::explainable`] (plain reads only, pure
//! built-in functions only, no subquery MySQL could evaluate, parameters
//! counted outside strings and comments and bounded); the text sent is the
//! checked tokens with comments removed. Each query at most once per
//! `every`, at most `per_scrape` per scrape, never dbintel's own
//! statements, and under the session's statement_timeout and the circuit
//! breaker like every other query.
//!
//! Each plan leaves obfuscated (allow-listed keys, normalized expressions)
//! as a `db.server.query_plan` event with its `db.plan.*` attributes; a
//! query whose plan hash differs from the last one seen also gets a
//! `db.server.plan_change` event (a plan regression to look at).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dbintel_core::record::{LogRecord, Record};
use dbintel_core::BoxFuture;
use dbintel_dsl::schema::PlansSettings;
use dbintel_stdlib::sql::{explainable, Dialect, Refusal};
use dbintel_stdlib::{Map, Value};

use crate::catalogue::{Declaration, Event};
use crate::collector::{Collector, Unreplayable};
use crate::postgres::PgTarget;
use crate::rows::Row;
use crate::target::{Engine, Target};
use crate::SourceError;

const PLAN_ATTRIBUTES: &[&str] = &[
    "db.query.id",
    "db.namespace",
    "db.query.plan",
    "db.plan.total_cost",
    "db.plan.startup_cost",
    "db.plan.rows",
    "db.plan.width",
    "db.plan.node_types",
    "db.plan.has_seq_scan",
    "db.plan.seq_scan_relations",
    "db.plan.indexes",
    "db.plan.has_nested_loop",
    "db.plan.has_hash_join",
    "db.plan.has_sort",
    "db.plan.has_materialize",
    "db.plan.depth",
    "db.plan.node_count",
    "db.plan.hash",
    "db.plan.previous_hash",
];

const PLAN_EVENTS: &[Event] = &[
    Event {
        name: "db.server.query_plan",
        attributes: PLAN_ATTRIBUTES,
        db360: None,
        description: "an obfuscated generic plan of a top statement",
    },
    Event { name: "db.server.plan_change", attributes: PLAN_ATTRIBUTES, db360: None, description: "a statement's plan hash changed" },
];

pub const PG_DECLARATION: Declaration = Declaration { collector: "plans", engine: Engine::Postgres, metrics: &[], events: PLAN_EVENTS };
pub const MY_DECLARATION: Declaration = Declaration { collector: "plans", engine: Engine::MySql, metrics: &[], events: PLAN_EVENTS };

pub struct PlansCollector {
    interval: Duration,
    top: i64,
    per_scrape: usize,
    every: Duration,
    cache_ttl: Duration,
    /// queryid → when last explained, and its plan hash.
    seen: HashMap<String, (Instant, String)>,
    /// Statements that may not be explained (see
    /// [`dbintel_stdlib::sql::Refusal`]).
    pub refused: u64,
    /// EXPLAINs that failed or timed out since the last scrape.
    errors: Vec<SourceError>,
}

impl PlansCollector {
    pub fn new(settings: &PlansSettings, interval: Duration) -> PlansCollector {
        PlansCollector {
            interval,
            top: settings.top.max(1),
            per_scrape: settings.per_scrape.max(1) as usize,
            every: settings.every,
            cache_ttl: settings.cache_ttl,
            seen: HashMap::new(),
            refused: 0,
            errors: Vec::new(),
        }
    }

    pub async fn scrape_pg(&mut self, target: &PgTarget, now: u64) -> Result<Vec<Record>, SourceError> {
        let clock = Instant::now();
        self.seen.retain(|_, (at, _)| clock.duration_since(*at) < self.cache_ttl);
        // the top statements of this database, not our own
        let sql = format!(
            "SELECT s.queryid::text AS queryid, s.query, d.datname::text AS datname
               FROM pg_stat_statements(true) s JOIN pg_database d ON d.oid = s.dbid
              WHERE d.datname = current_database() AND s.queryid IS NOT NULL
                AND s.userid <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
              ORDER BY s.{} DESC LIMIT {}",
            super::pg_statements::exec_time_column(target.version()),
            self.top
        );
        let rows = match target.query("plans: top statements", &sql).await {
            Ok(rows) => rows,
            Err(e) => {
                if e.class() == crate::ErrorClass::Configuration {
                    super::pg_statements::require_extension(target, "plans").await?;
                }
                return Err(e);
            }
        };
        let mut out = Vec::new();
        let mut explained = 0;
        for row in rows {
            if explained >= self.per_scrape {
                break;
            }
            let (Some(Value::Str(id)), Some(Value::Str(text))) = (row.get("queryid"), row.get("query")) else { continue };
            if !self.due(id, clock) {
                continue;
            }
            let checked = match explainable(text, Dialect::Postgres) {
                Ok(checked) => checked,
                Err(refusal) => {
                    self.refuse(id, &refusal);
                    continue;
                }
            };
            explained += 1;
            let plan = target.explain_generic(&checked.text, checked.parameters).await;
            let database = row.get("datname").cloned().unwrap_or_default();
            self.record(id, database, plan, Dialect::Postgres, clock, now, &mut out)?;
        }
        Ok(out)
    }

    /// MySQL / MariaDB: the top digests of the connection's schema that
    /// have a sample text.
    pub async fn scrape_mysql(&mut self, target: &crate::mysql::MyTarget, now: u64) -> Result<Vec<Record>, SourceError> {
        let clock = Instant::now();
        self.seen.retain(|_, (at, _)| clock.duration_since(*at) < self.cache_ttl);
        let has_sample = target
            .query(
                "plans: columns",
                "SELECT COUNT(*) AS n FROM information_schema.COLUMNS
                  WHERE TABLE_SCHEMA = 'performance_schema' AND TABLE_NAME = 'events_statements_summary_by_digest'
                    AND COLUMN_NAME = 'QUERY_SAMPLE_TEXT'",
            )
            .await?
            .first()
            .and_then(|r| crate::rows::integer(r, "n"))
            .unwrap_or(0)
            > 0;
        let sql = if has_sample {
            format!(
                "SELECT DIGEST AS digest, SCHEMA_NAME AS db, QUERY_SAMPLE_TEXT AS text
                   FROM performance_schema.events_statements_summary_by_digest
                  WHERE SCHEMA_NAME = DATABASE() AND DIGEST IS NOT NULL
                  ORDER BY SUM_TIMER_WAIT DESC LIMIT {}",
                self.top
            )
        } else {
            format!(
                "SELECT d.DIGEST AS digest, d.SCHEMA_NAME AS db, h.SQL_TEXT AS text
                   FROM (SELECT DIGEST, SCHEMA_NAME, SUM_TIMER_WAIT FROM performance_schema.events_statements_summary_by_digest
                          WHERE SCHEMA_NAME = DATABASE() AND DIGEST IS NOT NULL ORDER BY SUM_TIMER_WAIT DESC LIMIT {}) d
                   JOIN performance_schema.events_statements_history h ON h.DIGEST = d.DIGEST
                  ORDER BY d.SUM_TIMER_WAIT DESC",
                self.top
            )
        };
        let rows = target.query("plans: top digests", &sql).await?;
        let mut out = Vec::new();
        let mut explained = 0;
        let mut tried = std::collections::HashSet::new();
        for row in rows {
            if explained >= self.per_scrape {
                break;
            }
            let (Some(Value::Str(id)), Some(Value::Str(text))) = (row.get("digest"), row.get("text")) else { continue };
            if !tried.insert(id.clone()) || !self.due(id, clock) {
                continue;
            }
            let checked = match explainable(text, Dialect::MySql) {
                Ok(checked) => checked,
                Err(refusal) => {
                    self.refuse(id, &refusal);
                    continue;
                }
            };
            explained += 1;
            let plan = target
                .query("plans: explain", &format!("EXPLAIN FORMAT=JSON {}", checked.text))
                .await
                .map(|rows| rows.first().and_then(|r| r.iter().find_map(|(_, v)| v.as_str().map(str::to_string))).unwrap_or_default());
            let database = row.get("db").cloned().unwrap_or_default();
            self.record(id, database, plan, Dialect::MySql, clock, now, &mut out)?;
        }
        Ok(out)
    }

    /// Counts a statement that may not be explained; the reason never
    /// carries the text.
    fn refuse(&mut self, id: &str, refusal: &Refusal) {
        self.refused += 1;
        tracing::debug!(query_id = %id, reason = %refusal, "plan not explained");
    }

    fn due(&self, id: &str, clock: Instant) -> bool {
        self.seen.get(id).is_none_or(|(at, _)| clock.duration_since(*at) >= self.every)
    }

    /// Turns an EXPLAIN result into events (or counts its failure).
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        id: &str,
        database: Value,
        plan: Result<String, SourceError>,
        dialect: Dialect,
        clock: Instant,
        now: u64,
        out: &mut Vec<Record>,
    ) -> Result<(), SourceError> {
        let plan = match plan {
            Ok(plan) => plan,
            Err(e @ SourceError::BreakerOpen { .. }) => return Err(e),
            Err(e) => {
                // counted and logged once per cause by the supervisor
                self.errors.push(e);
                // not again before `every`
                let hash = self.seen.get(id).map(|(_, h)| h.clone()).unwrap_or_default();
                self.seen.insert(id.to_string(), (clock, hash));
                return Ok(());
            }
        };
        let Some(obfuscated) = dbintel_stdlib::plan::obfuscate(&plan, dialect) else { return Ok(()) };
        let Some(attributes) = dbintel_stdlib::plan::attributes(&obfuscated) else { return Ok(()) };
        let hash = attributes.get("db.plan.hash").and_then(Value::as_str).unwrap_or_default().to_string();
        let mut event = Map::new();
        event.insert("db.query.id", Value::Str(id.to_string()));
        event.insert("db.namespace", database);
        for (k, v) in attributes.iter() {
            event.insert(k, v.clone());
        }
        if let Some((_, previous)) = self.seen.get(id).filter(|(_, h)| !h.is_empty() && *h != hash) {
            let mut change = event.clone();
            change.insert("db.plan.previous_hash", Value::Str(previous.clone()));
            tracing::info!(query_id = %id, from = %previous, to = %hash, "plan changed");
            out.push(log("db.server.plan_change", 13, "WARN", change, now));
        }
        event.insert("db.query.plan", Value::Str(obfuscated));
        out.push(log("db.server.query_plan", 9, "INFO", event, now));
        self.seen.insert(id.to_string(), (clock, hash));
        Ok(())
    }
}

impl Collector for PlansCollector {
    fn interval(&self) -> Duration {
        self.interval
    }

    fn scrape<'a>(&'a mut self, target: &'a Target, now: u64) -> BoxFuture<'a, Result<Vec<Record>, SourceError>> {
        Box::pin(async move {
            match target {
                Target::Pg(pg) => self.scrape_pg(pg, now).await,
                Target::My(my) => self.scrape_mysql(my, now).await,
            }
        })
    }

    /// Plans need the live server to explain: nothing to replay.
    fn replay(&mut self, _rows: Vec<Row>, _now: u64) -> Result<Vec<Record>, Unreplayable> {
        Err(Unreplayable("plans".into()))
    }

    fn take_soft_errors(&mut self) -> Vec<SourceError> {
        std::mem::take(&mut self.errors)
    }
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
    //! The collector asks [`explainable`] with the right dialect; the
    //! decision itself is tested in dbintel_stdlib::sql::explain.
    use super::*;

    #[test]
    fn only_plain_reads_are_explained() {
        for ok in ["SELECT * FROM t WHERE id = $1", "  /* app */ select a, b from t", "WITH x AS (SELECT 1) SELECT * FROM x"] {
            assert!(explainable(ok, Dialect::Postgres).is_ok(), "{ok}");
        }
        for no in ["UPDATE t SET a = $1", "SELECT * FROM t FOR UPDATE", "SELECT 1; DROP TABLE t", "SELECT pg_sleep($1)"] {
            assert!(explainable(no, Dialect::Postgres).is_err(), "{no}");
        }
    }

    #[test]
    fn mysql_reads_that_explain_could_evaluate_are_refused() {
        assert!(explainable("SELECT id FROM t WHERE email = 'a@b.co'", Dialect::MySql).is_ok());
        for no in [
            "SELECT SLEEP/**/(5)",
            "SELECT /*!50000 SLEEP(5) */ 1",
            "SELECT * FROM t WHERE id = (SELECT MAX(id) FROM u)",
            "SELECT * FROM performance_schema.threads",
            "SELECT * FROM t WHERE a = 'cut off...",
        ] {
            assert!(explainable(no, Dialect::MySql).is_err(), "{no}");
        }
    }

    /// Regression: `parameters` counted `$N` anywhere in the text, so one
    /// comment with a huge `$N` made `explain_generic` build a vector of
    /// that many NULLs for PREPARE (terabytes) and abort the process.
    #[test]
    fn a_comment_with_a_huge_parameter_number_does_not_size_prepare() {
        let text = "SELECT a FROM t WHERE b = $1 /* $99999999999999 */";
        let checked = explainable(text, Dialect::Postgres).expect("a plain read");
        assert_eq!(checked.parameters, 1);
        assert_eq!(
            explainable("SELECT $99999999999999", Dialect::Postgres).map(|c| c.parameters),
            Err(Refusal::TooManyParameters(99_999_999_999_999))
        );
    }
}
