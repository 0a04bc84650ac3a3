//! `collect plans`: plans of the top statements, PostgreSQL and MySQL,
//! obtained without ever running a statement, and sent in the one shape
//! every plan leaves in (`plan_book.rs`: on the statement's top-query
//! events, New Relic's default, or as `db.server.query_plan` events with
//! `emit = event`).
//!
//! PostgreSQL: a generic plan, never ANALYZE — 16+ runs `EXPLAIN
//! (GENERIC_PLAN, FORMAT JSON)`, older servers `PREPARE` the text, force a
//! generic plan and `EXPLAIN (FORMAT JSON) EXECUTE` it with NULLs. EXPLAIN
//! checks the role's privileges on every table the statement reads, and a
//! monitoring role reads none of the application's: so when the database
//! has the EXPLAIN helper New Relic documents (a `SECURITY DEFINER`
//! function, `explain_function_name`, default `otel.explain_statement`;
//! `dbintel doctor --print-setup-sql` prints ours, which plans without
//! executing in a read-only transaction), statements are planned through
//! it — plain DML and `FOR UPDATE` too ([`explainable_by_helper`]).
//! Without it, plain reads are planned as the role, and what the role may
//! not read is skipped: counted, logged once, in `/status`, with the fix.
//!
//! MySQL / MariaDB: `EXPLAIN FORMAT=JSON` of a real statement text — the
//! digest's `QUERY_SAMPLE_TEXT` on MySQL 8, the recent-statements history
//! (`events_statements_history`) on MariaDB, whose consumer must be on (a
//! precise configuration error with the fix when it is off). Digests with
//! no sample text are skipped: a digest text's `?` cannot be explained
//! faithfully.
//!
//! What may be explained is decided from the SQL lexer's tokens
//! ([`explainable`]: plain reads, pure built-ins only, no subquery MySQL
//! could evaluate, parameters counted outside strings and comments and
//! bounded); the text sent is the checked tokens with comments removed.
//! Each query at most once per `every`, at most `per_scrape` per scrape,
//! never dbintel's own statements, under the session's statement_timeout
//! and the circuit breaker like every other query. A query whose plan
//! shape changes gets a `db.server.plan_change` event.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbintel_core::record::Record;
use dbintel_core::BoxFuture;
use dbintel_dsl::schema::{PlanPlacement, PlansSettings};
use dbintel_stdlib::sql::{explainable, explainable_by_helper, Dialect, Refusal};
use dbintel_stdlib::Value;

use crate::catalogue::{Declaration, Event};
use crate::collector::{Collector, Unreplayable};
use crate::plan_book::{publish, Placement, Plan, PlanBook, PlanSource};
use crate::postgres::PgTarget;
use crate::rows::Row;
use crate::target::{Engine, Target};
use crate::{ErrorClass, SourceError};

/// dbintel's own attributes of a plan (beside New Relic's).
const PLAN_ATTRIBUTES: &[&str] = &[
    "db.query.id",
    "db.namespace",
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
    "dbintel.plan.source",
];

const PLAN_CHANGE: Event = Event {
    name: "db.server.plan_change",
    attributes: PLAN_ATTRIBUTES,
    db360: None,
    description: "a statement's plan shape changed (plans of one source compared: explain with explain, log with log)",
};

pub const PG_DECLARATION: Declaration = Declaration {
    collector: "plans",
    engine: Engine::Postgres,
    metrics: &[],
    events: &[
        Event {
            name: "db.server.query_plan",
            attributes: PLAN_ATTRIBUTES,
            db360: Some(&crate::db360::PG_QUERY_PLAN),
            description: "a statement's obfuscated plan (emit = event; else it rides on the top query as postgresql.query_plan)",
        },
        PLAN_CHANGE,
    ],
};
pub const MY_DECLARATION: Declaration = Declaration {
    collector: "plans",
    engine: Engine::MySql,
    metrics: &[],
    events: &[
        Event {
            name: "db.server.query_plan",
            attributes: PLAN_ATTRIBUTES,
            db360: Some(&crate::db360::MY_QUERY_PLAN),
            description: "a digest's obfuscated plan (emit = event; else it rides on the top query as mysql.query_plan)",
        },
        PLAN_CHANGE,
    ],
};

/// How long a database's answer about the EXPLAIN helper holds.
const HELPER_RECHECK: Duration = Duration::from_secs(300);

pub struct PlansCollector {
    interval: Duration,
    top: i64,
    per_scrape: usize,
    every: Duration,
    cache_ttl: Duration,
    placement: Placement,
    helper: String,
    /// Whether the helper may be called here, and since when known.
    helper_here: Option<(bool, Instant)>,
    book: Option<Arc<PlanBook>>,
    /// queryid → when last tried.
    tried: HashMap<String, Instant>,
    /// Statements that may not be explained, by reason.
    pub refused: HashMap<&'static str, u64>,
    /// Plans not obtained since the last scrape (counted and shown by the
    /// supervisor, logged once per cause).
    errors: Vec<SourceError>,
    /// Causes already reported (each is reported once, then counted).
    reported: BTreeSet<String>,
}

impl PlansCollector {
    pub fn new(settings: &PlansSettings, interval: Duration) -> PlansCollector {
        PlansCollector {
            interval,
            top: settings.top.max(1),
            per_scrape: settings.per_scrape.max(1) as usize,
            every: settings.every,
            cache_ttl: settings.cache_ttl,
            placement: match settings.emit {
                PlanPlacement::TopQuery => Placement::TopQuery,
                PlanPlacement::Event => Placement::Event,
            },
            helper: settings.explain_function_name.trim().to_string(),
            helper_here: None,
            book: None,
            tried: HashMap::new(),
            refused: HashMap::new(),
            errors: Vec::new(),
            reported: BTreeSet::new(),
        }
    }

    /// How long a plan is kept for the top queries: until it is asked
    /// again, with room.
    fn keep(&self) -> Duration {
        (self.every * 2).max(Duration::from_secs(600))
    }

    /// A plan that could not be obtained: reported (once per cause by the
    /// supervisor), never fatal to the scrape.
    fn skip(&mut self, name: &str, label: &'static str, class: ErrorClass, reason: String) {
        self.errors.push(SourceError::PlanSkipped { source_name: name.to_string(), label, class, reason });
    }

    /// Counts a statement that may not be explained; the reason never
    /// carries the text.
    fn refuse(&mut self, name: &str, id: &str, refusal: &Refusal) {
        *self.refused.entry(refusal.label()).or_default() += 1;
        tracing::debug!(query_id = %id, reason = %refusal, "plan not explained");
        if self.reported.insert(format!("refused:{}", refusal.label())) {
            self.skip(
                name,
                "refused",
                ErrorClass::Other,
                format!("statements not planned: {refusal} (dbintel plans only what it can plan without running anything)"),
            );
        }
    }

    fn due(&self, id: &str, clock: Instant) -> bool {
        self.tried.get(id).is_none_or(|at| clock.duration_since(*at) >= self.every)
    }

    /// Whether the EXPLAIN helper exists here and the role may call it
    /// (asked every few minutes: a DBA may install it any time).
    async fn helper_callable(&mut self, target: &PgTarget) -> bool {
        if self.helper.is_empty() {
            return false;
        }
        if let Some((known, at)) = self.helper_here {
            if at.elapsed() < HELPER_RECHECK {
                return known;
            }
        }
        let Some(signature) = helper_signature(&self.helper) else {
            if self.reported.insert("helper-name".into()) {
                let reason = format!("explain_function_name {:?} is not a [schema.]name of letters, digits and _", self.helper);
                self.skip(target.name(), "helper_name", ErrorClass::Configuration, reason);
            }
            self.helper_here = Some((false, Instant::now()));
            return false;
        };
        let sql = format!("SELECT coalesce(has_function_privilege(to_regprocedure('{signature}(text)'), 'EXECUTE'), false) AS callable");
        let known = match target.query("plans: explain helper", &sql).await {
            Ok(rows) => rows.first().and_then(|r| r.get("callable")).is_some_and(|v| *v == Value::Bool(true)),
            Err(_) => false,
        };
        self.helper_here = Some((known, Instant::now()));
        known
    }

    pub async fn scrape_pg(&mut self, target: &PgTarget, now: u64) -> Result<Vec<Record>, SourceError> {
        let clock = Instant::now();
        self.tried.retain(|_, at| clock.duration_since(*at) < self.cache_ttl);
        let book = self.book.get_or_insert_with(|| PlanBook::of(target.server_key())).clone();
        // the top statements of this database, not our own
        let sql = format!(
            "SELECT s.queryid::text AS queryid, s.query, d.datname::text AS datname, s.userid::text AS userid, r.rolname::text AS rolname
               FROM pg_stat_statements(true) s JOIN pg_database d ON d.oid = s.dbid LEFT JOIN pg_roles r ON r.oid = s.userid
              WHERE d.datname = current_database() AND s.queryid IS NOT NULL
                AND s.userid <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
              ORDER BY s.{} DESC LIMIT {}",
            super::pg_statements::exec_time_column(target.version()),
            self.top
        );
        let rows = match target.query("plans: top statements", &sql).await {
            Ok(rows) => rows,
            Err(e) => {
                if e.class() == ErrorClass::Configuration {
                    super::pg_statements::require_extension(target, "plans").await?;
                }
                return Err(e);
            }
        };
        let helper = self.helper_callable(target).await;
        let mut out = Vec::new();
        let mut explained = 0;
        for row in rows {
            if explained >= self.per_scrape {
                break;
            }
            let (Some(Value::Str(id)), Some(Value::Str(text))) = (row.get("queryid"), row.get("query")) else { continue };
            let id = id.clone();
            if !self.due(&id, clock) {
                continue;
            }
            self.tried.insert(id.clone(), clock);
            let checked = if helper { explainable_by_helper(text, Dialect::Postgres) } else { explainable(text, Dialect::Postgres) };
            let checked = match checked {
                Ok(checked) => checked,
                Err(refusal) => {
                    self.refuse(target.name(), &id, &refusal);
                    continue;
                }
            };
            explained += 1;
            let plan = if helper {
                target.explain_with_helper(&self.helper, &checked.text).await
            } else {
                target.explain_generic(&checked.text, checked.parameters).await
            };
            let plan = match plan {
                Ok(plan) => plan,
                Err(e @ SourceError::BreakerOpen { .. }) => return Err(e),
                Err(e) => {
                    self.failed(target.name(), e, helper);
                    continue;
                }
            };
            let Some(json) = dbintel_stdlib::plan::obfuscate(&plan, Dialect::Postgres) else { continue };
            let text = |c: &str| row.get(c).filter(|v| !v.is_nil()).map(ToString::to_string);
            let plan = Plan {
                engine: Engine::Postgres,
                database: text("datname").unwrap_or_default(),
                query_id: id,
                user_id: text("userid"),
                role: text("rolname"),
                json,
                source: PlanSource::Explain,
                explained_from: None,
            };
            out.extend(publish(&book, plan, self.placement, self.keep(), now));
        }
        Ok(out)
    }

    /// An EXPLAIN that failed: a missing privilege says what to do about
    /// it (once); anything else is counted as it is.
    fn failed(&mut self, name: &str, e: SourceError, helper: bool) {
        let denied = matches!(&e, SourceError::Database { code, .. } if code == "42501" || code == "1142" || code == "1143");
        if denied && !helper {
            if self.reported.insert("denied".into()) {
                let fix = match &e {
                    SourceError::Database { code, .. } if code.starts_with('4') => format!(
                        "the role may not read a table a top statement uses, and EXPLAIN needs that: install the EXPLAIN helper `{}`                          (dbintel doctor --print-setup-sql prints it) or grant SELECT on those tables",
                        if self.helper.is_empty() { "otel.explain_statement" } else { &self.helper }
                    ),
                    _ => "the user may not read a table a top statement uses, and EXPLAIN needs that: GRANT SELECT ON the schema's tables to it".into(),
                };
                self.skip(name, "no_privilege", ErrorClass::Configuration, fix);
            }
            return;
        }
        self.errors.push(e);
    }

    /// MySQL / MariaDB: the top digests of the connection's schema that
    /// have a sample text.
    pub async fn scrape_mysql(&mut self, target: &crate::mysql::MyTarget, now: u64) -> Result<Vec<Record>, SourceError> {
        let clock = Instant::now();
        self.tried.retain(|_, at| clock.duration_since(*at) < self.cache_ttl);
        let book = self.book.get_or_insert_with(|| PlanBook::of(target.server_key())).clone();
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
        if !has_sample {
            // MariaDB keeps statement texts only in the history tables
            let rows = target
                .query(
                    "plans: history consumer",
                    "SELECT COUNT(*) AS n FROM performance_schema.setup_consumers
                      WHERE NAME IN ('events_statements_history', 'events_statements_history_long') AND ENABLED = 'YES'",
                )
                .await?;
            if rows.first().and_then(|r| crate::rows::integer(r, "n")).unwrap_or(0) == 0 {
                return Err(SourceError::Setup {
                    source_name: target.name().to_string(),
                    message: "plans: performance_schema's events_statements_history consumer is off, so the server keeps no statement                               text to explain: run UPDATE performance_schema.setup_consumers SET ENABLED = 'YES' WHERE NAME =                               'events_statements_history' (and add performance-schema-consumer-events-statements-history = ON to the                               server's configuration so it survives a restart)"
                        .into(),
                });
            }
        }
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
        for row in rows {
            if explained >= self.per_scrape {
                break;
            }
            let (Some(Value::Str(id)), Some(Value::Str(text))) = (row.get("digest"), row.get("text")) else { continue };
            let id = id.clone();
            if !self.due(&id, clock) {
                continue;
            }
            let checked = match explainable(text, Dialect::MySql) {
                Ok(checked) => checked,
                // history holds several texts of one digest: another may pass
                Err(refusal) => {
                    self.refuse(target.name(), &id, &refusal);
                    continue;
                }
            };
            self.tried.insert(id.clone(), clock);
            explained += 1;
            let plan = target
                .query("plans: explain", &format!("EXPLAIN FORMAT=JSON {}", checked.text))
                .await
                .map(|rows| rows.first().and_then(|r| r.iter().find_map(|(_, v)| v.as_str().map(str::to_string))).unwrap_or_default());
            let plan = match plan {
                Ok(plan) => plan,
                Err(e @ SourceError::BreakerOpen { .. }) => return Err(e),
                Err(e) => {
                    self.failed(target.name(), e, false);
                    continue;
                }
            };
            let Some(json) = dbintel_stdlib::plan::obfuscate(&plan, Dialect::MySql) else { continue };
            let plan = Plan {
                engine: Engine::MySql,
                database: row.get("db").filter(|v| !v.is_nil()).map(ToString::to_string).unwrap_or_default(),
                query_id: id,
                user_id: None,
                role: None,
                json,
                source: PlanSource::Explain,
                explained_from: Some("db.server.top_query"),
            };
            out.extend(publish(&book, plan, self.placement, self.keep(), now));
        }
        Ok(out)
    }
}

/// `schema.name` as a quoted identifier chain, or `None` when it is not a
/// plain `[schema.]name` (nothing else is ever pasted into SQL).
pub fn helper_signature(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('.').collect();
    let plain = |p: &&str| !p.is_empty() && p.len() <= 63 && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if parts.is_empty() || parts.len() > 2 || !parts.iter().all(plain) {
        return None;
    }
    Some(parts.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join("."))
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

#[cfg(test)]
mod tests {
    //! The collector asks [`explainable`] with the right dialect; the
    //! decision itself is tested in dbintel_stdlib::sql::explain.
    use super::*;

    #[test]
    fn only_a_plain_schema_dot_name_becomes_the_helper_call() {
        assert_eq!(helper_signature("otel.explain_statement").as_deref(), Some("\"otel\".\"explain_statement\""));
        assert_eq!(helper_signature("explain").as_deref(), Some("\"explain\""));
        for bad in ["", "a.b.c", "x'); DROP TABLE t; --", "a b", "\"quoted\""] {
            assert_eq!(helper_signature(bad), None, "{bad}");
        }
    }

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
