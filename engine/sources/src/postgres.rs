//! A PostgreSQL target: a small pool, sessions that cannot hurt the
//! server, the role check, and queries under a client deadline.
//!
//! Every session starts with `statement_timeout`, `lock_timeout` (half of
//! it, so a lock wait ends as a lock wait), `idle_in_transaction_session_timeout`,
//! `default_transaction_read_only = on` and `application_name = dbintel`,
//! passed as startup options so no query runs before they hold. Each query
//! also has a client-side deadline. At connect the role is checked:
//! superusers and roles that can write are refused unless the source says
//! `allow_privileged = true`.

use std::time::Duration;

use dbintel_dsl::schema::DbSettings;
use dbintel_stdlib::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::Postgres;
use sqlx::{Column, ConnectOptions, Row, TypeInfo};

use super::error::from_sqlx;
use super::rows::Row as DbRow;
use super::secret::Secret;
use super::sessions::{Checkout, ServerSessions, SessionPool, Sessions};
use super::ConnectSpec;
use super::SourceError;
use dbintel_core::record::Resource;
use std::sync::Arc;

/// One PostgreSQL server as dbintel sees it.
pub struct PgTarget {
    name: String,
    /// Sessions counted against the server's budget (see `sessions.rs`).
    pool: SessionPool<Postgres>,
    sessions: Arc<ServerSessions>,
    secret: Secret,
    timeout: Duration,
    pub resource: Resource,
    version: i64,
    pub breaker: super::breaker::Breaker,
    /// How sessions are opened (the DSN's, with the safe settings), for
    /// connections to the server's other databases.
    options: Box<PgConnectOptions>,
    connect_timeout: Duration,
    /// On a standby with WAL received but not replayed: the replay
    /// position first seen, and when (see [`PgTarget::replication_lag`]).
    replay_stall: std::sync::Mutex<Option<(String, std::time::Instant)>>,
}

fn ms(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

impl PgTarget {
    /// Connects, reads the server version and checks the role. Every error
    /// is classified (see `error.rs`) so the supervisor knows whether to
    /// back off or wait for a person.
    pub async fn connect(name: &str, settings: &DbSettings) -> Result<PgTarget, SourceError> {
        PgTarget::connect_with(name, settings, &ConnectSpec::for_source(name, "postgres", settings)?, Sessions::Pinned).await
    }

    /// Connects to a target resolved by the caller.
    /// `sessions`: whether its pool keeps its sessions (the server's
    /// reader) or lends them out when idle (see `sessions.rs`).
    pub async fn connect_with(name: &str, settings: &DbSettings, spec: &ConnectSpec, sessions: Sessions) -> Result<PgTarget, SourceError> {
        let (timeout, connect_timeout) = (settings.timeout, settings.connect_timeout);
        let secret = spec.secret().clone();
        let mut options = spec
            .clone()
            .with_tls(settings)
            .pg_options()
            .cloned()
            .ok_or_else(|| super::setup_error(name, format!("the DSN from {secret} is not a PostgreSQL DSN")))?;
        // never log statements: a `sql` collector's query or an EXPLAIN of
        // a captured statement can carry literals
        options = options.disable_statement_logging().application_name("dbintel").options([
            ("statement_timeout", ms(timeout)),
            ("lock_timeout", ms(timeout / 2)),
            ("idle_in_transaction_session_timeout", ms(timeout * 2)),
            ("default_transaction_read_only", "on".to_string()),
        ]);
        let (host, port) = (spec.host(), options.get_port());
        let what = format!("connecting to {host}:{port}");
        let server = ServerSessions::of(&spec.server(), settings.server_sessions as u32);
        let permit = server.transient(name, connect_timeout).await?;
        let mut probe = super::probe_connection::<sqlx::PgConnection>(name, &what, &secret, connect_timeout, &options).await?;
        let version = sqlx::query_scalar::<_, i64>("SELECT current_setting('server_version_num')::int8").fetch_one(&mut probe).await;
        super::close_probe(name, probe).await;
        drop(permit);
        let version = version.map_err(|e| from_sqlx(name, "server version", &secret, &e))?;
        if version >= 140000 {
            // a query we stop waiting for (a deadline, a lost lease) ends on
            // the server within a second instead of running to its limit
            options = options.options([("client_connection_check_interval", "1000")]);
        }
        let pool_options = PgPoolOptions::new().acquire_timeout(connect_timeout);
        let pool = SessionPool::new(
            name,
            server.clone(),
            sessions,
            settings.pool.clamp(1, 16) as u32,
            pool_options,
            options.clone(),
            connect_timeout,
        );

        let resource = super::target_resource("postgresql", &host, port, settings.service_instance_id);
        let breaker = super::breaker::Breaker::new(name, super::breaker::Policy::from_settings(settings));
        let target = PgTarget {
            name: name.to_string(),
            pool,
            sessions: server,
            secret,
            timeout,
            resource,
            version,
            breaker,
            options: Box::new(options),
            connect_timeout,
            replay_stall: std::sync::Mutex::new(None),
        };
        if !settings.allow_privileged {
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

    pub async fn query_with(
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
        let session = self.pool.enter().await?;
        self.send_on(&session.pool, what, query).await
    }

    async fn send_on(
        &self,
        pool: &PgPool,
        what: &str,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<DbRow>, SourceError> {
        // A little past the server's statement_timeout, so the server
        // normally ends the query itself (and the backend is freed).
        let deadline = self.timeout + Duration::from_millis(500);
        let started = std::time::Instant::now();
        let work = async {
            let mut conn = Checkout::acquire(pool).await?;
            let rows = query.fetch_all(&mut *conn).await;
            conn.done();
            rows
        };
        let result = tokio::time::timeout(deadline, work).await;
        dbintel_core::counters::record_query(&self.name, what, started.elapsed());
        match result {
            Err(_) => Err(SourceError::Timeout { source_name: self.name.clone(), what: what.to_string(), after: self.timeout }),
            Ok(Err(e)) => Err(self.error(what, &e)),
            Ok(Ok(rows)) => Ok(rows.iter().map(row_to_map).collect()),
        }
    }

    /// A driver error as ours: classified by SQLSTATE, scrubbed of the DSN
    /// and of any SQL the server quoted.
    fn error(&self, what: &str, e: &sqlx::Error) -> SourceError {
        from_sqlx(&self.name, what, &self.secret, e)
    }

    /// The generic plan of a statement text through the server's EXPLAIN
    /// helper (a `SECURITY DEFINER` function a DBA installed, see
    /// `plans.rs`), as EXPLAIN's JSON. `function` is a plain
    /// `[schema.]name` (anything else is refused before it reaches SQL);
    /// the text goes as a parameter, never pasted.
    pub async fn explain_with_helper(&self, function: &str, text: &str) -> Result<String, SourceError> {
        let Some(signature) = super::collectors::plans::helper_signature(function) else {
            return Err(super::setup_error(&self.name, format!("explain_function_name {function:?} is not a [schema.]name")));
        };
        let sql = format!("SELECT {signature}($1::text)::text AS plan");
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(text.to_string());
        let rows = self.query_with("plans: explain helper", query).await?;
        rows.first()
            .and_then(|r| r.get("plan"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| super::setup_error(&self.name, format!("the EXPLAIN helper {function} returned no plan")))
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
            let session = self.pool.enter().await?;
            let mut conn = Checkout::acquire(&session.pool).await.map_err(|e| self.error(WHAT, &e))?;
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
            conn.done();
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

    /// The database the DSN names (`None`: the server's default, the
    /// user's name).
    pub fn database(&self) -> Option<&str> {
        self.options.get_database()
    }

    /// A pool of one connection to another database of this server,
    /// opened on first use with the same role and the same safe session
    /// settings, its session counted against the server's budget (and
    /// lent out when idle).
    pub fn database_pool(&self, database: &str) -> SessionPool<Postgres> {
        let options = PgPoolOptions::new().acquire_timeout(self.connect_timeout);
        let connect = (*self.options).clone().database(database);
        SessionPool::new(&self.name, self.sessions.clone(), Sessions::Shared, 1, options, connect, self.connect_timeout)
    }

    /// Runs `sql` on `pool` (a [`PgTarget::database_pool`]) like
    /// [`PgTarget::query`]: through the breaker, under the deadline,
    /// errors classified and scrubbed.
    pub async fn query_on(&self, pool: &SessionPool<Postgres>, what: &str, sql: &str) -> Result<Vec<DbRow>, SourceError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
        let send = async {
            let session = pool.enter().await?;
            self.send_on(&session.pool, what, query).await
        };
        super::breaker::guarded(&self.breaker, &self.name, what, send).await
    }

    /// `server_version_num`, e.g. 150004.
    /// A standby's replication lag in seconds from the duress probe's row
    /// (`standby`, `pending`: bytes received and not replayed, `replayed`,
    /// `lag`: the age of the last replayed transaction). Nothing on a
    /// primary. None when everything received is replayed, however quiet
    /// the primary (and a receive position behind replay, as right after
    /// a restart, is nothing pending). With WAL pending: the larger of the
    /// age and how long replay has stood still, which covers a standby
    /// that has replayed no transaction since it started (the age is NULL
    /// then) and a paused replay. Without streaming: the age alone.
    pub fn replication_lag(&self, row: &DbRow, now: std::time::Instant) -> Option<f64> {
        let mut stall = self.replay_stall.lock().unwrap_or_else(|p| p.into_inner());
        if row.get("standby") != Some(&Value::Bool(true)) {
            *stall = None;
            return None;
        }
        let age = super::rows::number(row, "lag");
        let replayed = row.get("replayed").and_then(|v| v.as_str()).map(str::to_string);
        match (super::rows::number(row, "pending"), replayed) {
            (Some(pending), Some(replayed)) if pending > 0.0 => {
                let stood = match stall.as_ref() {
                    Some((at, since)) if *at == replayed => now.duration_since(*since).as_secs_f64(),
                    _ => {
                        *stall = Some((replayed, now));
                        0.0
                    }
                };
                Some(age.unwrap_or(0.0).max(stood))
            }
            (Some(_), _) => {
                *stall = None;
                Some(0.0)
            }
            (None, _) => {
                *stall = None;
                age
            }
        }
    }

    /// The server as configured (`host:port`).
    pub fn server_key(&self) -> &str {
        self.sessions.key()
    }

    /// The target's name, as errors and status give it.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// server identity: system identifier and postmaster start time, so a
    /// failover or restart is a new identity.
    pub async fn identity(&self) -> Result<String, SourceError> {
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
