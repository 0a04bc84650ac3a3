//! `mysql.statements`: performance_schema's
//! `events_statements_summary_by_digest` as per-interval deltas, keyed by
//! (server, schema, digest); duplicate rows are summed and timers are
//! picoseconds (see `statement_deltas.rs`).

use std::time::Duration;

use dbintel_core::record::Record;
use dbintel_core::BoxFuture;
use dbintel_dsl::schema::StatementsSettings;

use crate::collector::{Collector, Unreplayable};
use crate::rows::Row;
use crate::statement_deltas::{StatementDeltas, MYSQL};
use crate::target::Target;
use crate::SourceError;

pub struct MyStatements {
    deltas: StatementDeltas,
    interval: Duration,
}

pub const DIGESTS_SQL: &str = "SELECT SCHEMA_NAME, DIGEST, DIGEST_TEXT, COUNT_STAR, SUM_TIMER_WAIT, SUM_ROWS_SENT, SUM_ROWS_EXAMINED,
        SUM_ROWS_AFFECTED, SUM_NO_INDEX_USED, SUM_CREATED_TMP_DISK_TABLES
   FROM performance_schema.events_statements_summary_by_digest
  WHERE DIGEST IS NOT NULL";

impl MyStatements {
    pub fn new(settings: &StatementsSettings, interval: Duration) -> MyStatements {
        MyStatements { deltas: StatementDeltas::new(&MYSQL, settings.top.max(1) as usize), interval }
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
            let server = my.identity().await?;
            let rows = my.query("statement digests", DIGESTS_SQL).await?;
            Ok(self.deltas.observe(&server, None, rows, now).0)
        })
    }

    /// Recorded rows: the digest table's columns, optionally `_server`.
    fn replay(&mut self, rows: Vec<Row>, now: u64) -> Result<Vec<Record>, Unreplayable> {
        let server = rows.iter().find_map(|r| r.get("_server").filter(|v| !v.is_nil()).map(ToString::to_string));
        Ok(self.deltas.observe(server.as_deref().unwrap_or("recorded"), None, rows, now).0)
    }
}
