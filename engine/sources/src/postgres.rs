//! The `postgres` source: a small pool per target, sessions that cannot
//! hurt the server, and the collectors.
//!
//! Every session starts with `statement_timeout`, `lock_timeout` (half of
//! it, so a lock wait ends as a lock wait), `idle_in_transaction_session_timeout`,
//! `default_transaction_read_only = on` and `application_name = dbintel`,
//! passed as startup options so no query runs before they hold. Each query
//! also has a client-side deadline. At connect the role is checked:
//! superusers and roles that can write are refused unless the source says
//! `allow_privileged = true`.

use std::str::FromStr;
use std::time::Duration;

use dbintel_dsl::plan::Settings;
use dbintel_stdlib::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgSslMode};
use sqlx::{Column, Row, TypeInfo};

use super::rows::Row as DbRow;
use super::secret::Secret;
use super::statement_deltas::{StatementDeltas, POSTGRES};
use super::SourceError;
use dbintel_core::record::{Record, Resource};

/// One PostgreSQL server as dbintel sees it.
pub struct PgTarget {
    name: String,
    pool: PgPool,
    secret: Secret,
    timeout: Duration,
    pub resource: Resource,
    version: i64,
    pub breaker: super::breaker::Breaker,
}

fn ms(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

impl PgTarget {
    pub async fn connect(name: &str, settings: &Settings) -> Result<PgTarget, SourceError> {
        let setup = |message: String| super::setup_error(name, message);
        let connect = super::ConnectSettings::read(name, settings)?;
        let super::ConnectSettings { secret, timeout, connect_timeout, pool } = connect;
        let mut options = PgConnectOptions::from_str(secret.expose())
            .map_err(|e| setup(format!("the DSN from {secret} is not valid: {}", secret.scrub(&e.to_string()))))?;
        options = options.application_name("dbintel").options([
            ("statement_timeout", ms(timeout)),
            ("lock_timeout", ms(timeout / 2)),
            ("idle_in_transaction_session_timeout", ms(timeout * 2)),
            ("default_transaction_read_only", "on".to_string()),
        ]);
        if let Some(mode) = settings.str("sslmode") {
            let mode = match mode {
                "disable" => PgSslMode::Disable,
                "require" => PgSslMode::Require,
                "verify-ca" => PgSslMode::VerifyCa,
                "verify-full" => PgSslMode::VerifyFull,
                _ => PgSslMode::Prefer,
            };
            options = options.ssl_mode(mode);
        }
        if let Some(ca) = settings.str("sslrootcert") {
            options = options.ssl_root_cert(ca);
        }
        let (host, port, database) = (options.get_host().to_string(), options.get_port(), options.get_database().map(str::to_string));
        let pool = PgPoolOptions::new()
            .max_connections(pool)
            .acquire_timeout(connect_timeout)
            .connect_with(options)
            .await
            .map_err(|e| setup(format!("cannot connect to {host}:{port}: {}", secret.scrub(&e.to_string()))))?;

        let resource = super::target_resource("postgresql", &host, port, database);
        let breaker = super::breaker::Breaker::new(name, super::breaker::Policy::from_settings(settings));
        let mut target = PgTarget { name: name.to_string(), pool, secret, timeout, resource, version: 0, breaker };
        let version = target.query("server version", "SELECT current_setting('server_version_num')::int8 AS v").await?;
        target.version = version.first().and_then(|r| super::rows::integer(r, "v")).unwrap_or(0);
        if !settings.bool("allow_privileged").unwrap_or(false) {
            target.refuse_privileged().await?;
        }
        Ok(target)
    }

    /// Refuses superusers and roles that can change data.
    async fn refuse_privileged(&self) -> Result<(), SourceError> {
        let rows = self
            .query(
                "role check",
                "SELECT r.rolname::text AS role, r.rolsuper AS superuser, r.rolcreaterole AS createrole, r.rolbypassrls AS bypassrls,
                        (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                            AND (pg_has_role(c.relowner, 'USAGE')
                                 OR has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE'))) AS writable
                   FROM pg_roles r WHERE r.rolname = current_user",
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| SourceError::Privileged { source_name: self.name.clone(), message: "cannot see its own role".into() })?;
        let role = row.get("role").map(ToString::to_string).unwrap_or_default();
        let found = if row.get("superuser") == Some(&Value::Bool(true)) {
            Some("is a superuser".to_string())
        } else if row.get("createrole") == Some(&Value::Bool(true)) {
            Some("can create roles".to_string())
        } else if row.get("bypassrls") == Some(&Value::Bool(true)) {
            Some("bypasses row-level security".to_string())
        } else {
            super::rows::integer(row, "writable").filter(|n| *n > 0).map(|n| format!("can write to {n} table(s) in this database"))
        };
        match found {
            Some(privilege) => Err(SourceError::Privileged {
                source_name: self.name.clone(),
                message: format!(
                    "role `{role}` {privilege}; use a read-only role granted pg_monitor (README: Database users), or set allow_privileged = true"
                ),
            }),
            None => Ok(()),
        }
    }

    /// Runs `sql` under the client deadline; rows come back as maps, NULL
    /// as nil.
    pub async fn query(&self, what: &str, sql: &str) -> Result<Vec<DbRow>, SourceError> {
        // our own fixed statements, or a `sql` collector's configured query
        self.query_with(what, sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))).await
    }

    async fn query_with(
        &self,
        what: &str,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<DbRow>, SourceError> {
        super::breaker::guarded(&self.breaker, &self.name, what, self.send(what, query)).await
    }

    async fn send(
        &self,
        what: &str,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<DbRow>, SourceError> {
        // A little past the server's statement_timeout, so the server
        // normally ends the query itself (and the backend is freed).
        let deadline = self.timeout + Duration::from_millis(500);
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(deadline, query.fetch_all(&self.pool)).await;
        dbintel_core::counters::record_query(&self.name, what, started.elapsed());
        match result {
            Err(_) => Err(SourceError::Timeout { source_name: self.name.clone(), what: what.to_string(), after: self.timeout }),
            Ok(Err(e)) => Err(self.error(what, &e)),
            Ok(Ok(rows)) => Ok(rows.iter().map(row_to_map).collect()),
        }
    }

    /// A driver error as ours: scrubbed of the DSN, server-side timeouts
    /// named as such.
    fn error(&self, what: &str, e: &sqlx::Error) -> SourceError {
        let message = self.secret.scrub(&e.to_string());
        if message.contains("statement timeout") || message.contains("lock timeout") {
            return SourceError::Timeout { source_name: self.name.clone(), what: format!("{what} ({message})"), after: self.timeout };
        }
        SourceError::Query { source_name: self.name.clone(), what: what.to_string(), message }
    }

    /// The generic plan of a statement text (see `plans.rs`), as EXPLAIN's
    /// JSON. Never ANALYZE: nothing is executed.
    pub async fn explain_generic(&self, text: &str, parameters: usize) -> Result<String, SourceError> {
        super::breaker::guarded(&self.breaker, &self.name, "plans: explain", self.explain_unguarded(text, parameters)).await
    }

    async fn explain_unguarded(&self, text: &str, parameters: usize) -> Result<String, SourceError> {
        use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        const WHAT: &str = "plans: explain";
        let work = async {
            let mut conn = self.pool.acquire().await.map_err(|e| self.error(WHAT, &e))?;
            let run = |sql: String| sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
            let row = if self.version >= 160000 {
                run(format!("EXPLAIN (GENERIC_PLAN, FORMAT JSON) {text}")).fetch_one(&mut *conn).await
            } else {
                // a fresh name each time: a cancelled attempt can leave its
                // statement behind on the connection
                let name = format!("dbintel_plan_{}", NEXT.fetch_add(1, Relaxed));
                run("SET plan_cache_mode = force_generic_plan".into()).execute(&mut *conn).await.map_err(|e| self.error(WHAT, &e))?;
                let result = match run(format!("PREPARE {name} AS {text}")).execute(&mut *conn).await {
                    Ok(_) => {
                        let args = vec!["NULL"; parameters].join(", ");
                        let execute = if parameters > 0 { format!("EXECUTE {name}({args})") } else { format!("EXECUTE {name}") };
                        run(format!("EXPLAIN (FORMAT JSON) {execute}")).fetch_one(&mut *conn).await
                    }
                    Err(e) => Err(e),
                };
                let _ = run(format!("DEALLOCATE {name}")).execute(&mut *conn).await;
                let _ = run("RESET plan_cache_mode".into()).execute(&mut *conn).await;
                result
            };
            let row = row.map_err(|e| self.error(WHAT, &e))?;
            row.try_get_unchecked::<String, _>(0).map_err(|e| self.error(WHAT, &e))
        };
        // the statements run one after another, each under statement_timeout
        let deadline = self.timeout * 3 + Duration::from_millis(500);
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(deadline, work).await;
        dbintel_core::counters::record_query(&self.name, WHAT, started.elapsed());
        result.unwrap_or_else(|_| Err(SourceError::Timeout { source_name: self.name.clone(), what: WHAT.into(), after: self.timeout }))
    }

    /// `server_version_num`, e.g. 150004.
    pub fn version(&self) -> i64 {
        self.version
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// server identity: system identifier and postmaster start time, so a
    /// failover or restart is a new identity.
    async fn identity(&self) -> Result<String, SourceError> {
        let start = self.query("server identity", "SELECT pg_postmaster_start_time()::text AS started").await?;
        let started = start.first().and_then(|r| r.get("started")).map(ToString::to_string).unwrap_or_default();
        let system = match self.query("system identifier", "SELECT system_identifier::text AS id FROM pg_control_system()").await {
            Ok(rows) => rows.first().and_then(|r| r.get("id")).map(ToString::to_string).unwrap_or_default(),
            // not granted to this role: host and port stand in for it
            Err(_) => self.resource.attributes.get("service.instance.id").map(ToString::to_string).unwrap_or_default(),
        };
        Ok(format!("{system}:{started}"))
    }
}

/// A row as a map from column name to value; NULL is nil. Values are read by
/// their SQL type; anything unusual is read as text.
pub fn row_to_map(row: &PgRow) -> DbRow {
    let mut map = Map::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let value = match column.type_info().name() {
            "INT8" => row.try_get::<Option<i64>, _>(i).ok().flatten().map(Value::Int),
            "INT4" => row.try_get::<Option<i32>, _>(i).ok().flatten().map(|v| Value::Int(i64::from(v))),
            "INT2" => row.try_get::<Option<i16>, _>(i).ok().flatten().map(|v| Value::Int(i64::from(v))),
            "FLOAT8" => row.try_get::<Option<f64>, _>(i).ok().flatten().map(Value::Double),
            "FLOAT4" => row.try_get::<Option<f32>, _>(i).ok().flatten().map(|v| Value::Double(f64::from(v))),
            "BOOL" => row.try_get::<Option<bool>, _>(i).ok().flatten().map(Value::Bool),
            "OID" => row.try_get::<Option<sqlx::postgres::types::Oid>, _>(i).ok().flatten().map(|v| Value::Int(i64::from(v.0))),
            _ => row.try_get::<Option<String>, _>(i).ok().flatten().map(Value::Str),
        };
        map.insert(column.name(), value.unwrap_or(Value::Nil));
    }
    map
}

/// pg_stat_statements, as per-interval deltas.
pub struct StatementsCollector {
    deltas: StatementDeltas,
    databases: std::collections::HashMap<i64, String>,
    roles: std::collections::HashMap<i64, String>,
}

impl StatementsCollector {
    pub fn new(settings: &Settings) -> StatementsCollector {
        StatementsCollector {
            deltas: StatementDeltas::new(&POSTGRES, settings.int("top").unwrap_or(200).max(1) as usize),
            databases: std::collections::HashMap::new(),
            roles: std::collections::HashMap::new(),
        }
    }

    pub async fn scrape(&mut self, target: &PgTarget, now: u64) -> Result<Vec<Record>, SourceError> {
        let server = target.identity().await?;
        let reset = if target.version >= 140000 {
            let rows = target.query("stats_reset", "SELECT stats_reset::text AS reset FROM pg_stat_statements_info").await?;
            rows.first().and_then(|r| r.get("reset")).filter(|v| !v.is_nil()).map(ToString::to_string)
        } else {
            None
        };
        let toplevel = if target.version >= 140000 { "s.toplevel" } else { "true" };
        let since = if target.version >= 170000 { "s.stats_since::text" } else { "NULL::text" };
        // Counters only: no texts (read from disk by pg_stat_statements) and
        // no joins; names come from a small cache, texts are fetched only for
        // the statements about to be emitted that have none cached.
        let sql = format!(
            "SELECT s.userid::int8 AS userid, s.dbid::int8 AS dbid, {toplevel} AS toplevel, s.queryid, s.calls,
                    s.total_exec_time, s.rows, s.shared_blks_hit, s.shared_blks_read, s.shared_blks_written,
                    s.local_blks_hit, s.local_blks_read, s.temp_blks_read, s.temp_blks_written, {since} AS stats_since
               FROM pg_stat_statements(false) s
              WHERE s.queryid IS NOT NULL"
        );
        let mut rows = target.query("pg_stat_statements", &sql).await?;
        self.name_rows(target, &mut rows).await?;
        let selection = self.deltas.select(&server, reset, rows, now);
        let mut texts = std::collections::HashMap::new();
        let ids: Vec<i64> = selection.needs_text.iter().filter_map(|id| id.parse().ok()).collect();
        if !ids.is_empty() {
            let rows = target
                .query_with(
                    "query texts",
                    sqlx::query("SELECT DISTINCT ON (queryid) queryid, query FROM pg_stat_statements(true) WHERE queryid = ANY($1)")
                        .bind(ids),
                )
                .await?;
            for row in rows {
                if let (Some(id), Some(Value::Str(text))) = (super::rows::integer(&row, "queryid"), row.get("query")) {
                    texts.insert(id.to_string(), text.clone());
                }
            }
        }
        let (records, _) = self.deltas.emit(selection, texts);
        Ok(records)
    }

    /// Adds `datname` and `rolname` from a cache of database and role names,
    /// refreshed when an unknown oid shows up.
    async fn name_rows(&mut self, target: &PgTarget, rows: &mut [DbRow]) -> Result<(), SourceError> {
        let unknown = rows.iter().any(|r| {
            let db = super::rows::integer(r, "dbid");
            let user = super::rows::integer(r, "userid");
            db.is_some_and(|d| !self.databases.contains_key(&d)) || user.is_some_and(|u| !self.roles.contains_key(&u))
        });
        if unknown {
            for row in target.query("database names", "SELECT oid::int8 AS oid, datname::text AS name FROM pg_database").await? {
                if let (Some(oid), Some(Value::Str(name))) = (super::rows::integer(&row, "oid"), row.get("name")) {
                    self.databases.insert(oid, name.clone());
                }
            }
            for row in target.query("role names", "SELECT oid::int8 AS oid, rolname::text AS name FROM pg_roles").await? {
                if let (Some(oid), Some(Value::Str(name))) = (super::rows::integer(&row, "oid"), row.get("name")) {
                    self.roles.insert(oid, name.clone());
                }
            }
        }
        for row in rows {
            if let Some(name) = super::rows::integer(row, "dbid").and_then(|d| self.databases.get(&d)) {
                row.insert("datname", Value::Str(name.clone()));
            }
            if let Some(name) = super::rows::integer(row, "userid").and_then(|u| self.roles.get(&u)) {
                row.insert("rolname", Value::Str(name.clone()));
            }
        }
        Ok(())
    }
}
