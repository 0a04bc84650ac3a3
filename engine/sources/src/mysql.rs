//! The `mysql` source (MySQL 8, MariaDB 10.5+): safe sessions, the role
//! check, and the collectors over performance_schema.
//!
//! Every session starts with a statement time limit (`max_statement_time`
//! on MariaDB, `max_execution_time` on MySQL), `innodb_lock_wait_timeout`
//! and `lock_wait_timeout` (half of it), and a read-only transaction mode;
//! each query also has a client deadline. Roles with SUPER, ALL PRIVILEGES
//! or any write privilege are refused unless `allow_privileged = true`.

use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use dbintel_dsl::plan::Settings;
use dbintel_stdlib::{Map, Value};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow, MySqlSslMode};
use sqlx::{Column, Executor, Row, TypeInfo};

use super::rows::{integer, Row as DbRow};
use super::secret::Secret;
use super::statement_deltas::{StatementDeltas, MYSQL};
use super::SourceError;
use dbintel_core::record::{MetricKind, MetricPoint, Number, Record, Resource, Temporality};

pub struct MyTarget {
    name: String,
    pool: MySqlPool,
    secret: Secret,
    timeout: Duration,
    pub resource: Resource,
    /// Bumped when the server's uptime goes backwards (a restart), so deltas
    /// re-baseline.
    generation: AtomicU64,
    last_uptime: AtomicI64,
    pub breaker: super::breaker::Breaker,
}

impl MyTarget {
    pub async fn connect(name: &str, settings: &Settings) -> Result<MyTarget, SourceError> {
        let setup = |message: String| super::setup_error(name, message);
        let connect = super::ConnectSettings::read(name, settings)?;
        let super::ConnectSettings { secret, timeout, connect_timeout, pool } = connect;
        let mut options = MySqlConnectOptions::from_str(secret.expose())
            .map_err(|e| setup(format!("the DSN from {secret} is not valid: {}", secret.scrub(&e.to_string()))))?;
        if let Some(mode) = settings.str("sslmode") {
            options = options.ssl_mode(match mode {
                "disable" => MySqlSslMode::Disabled,
                "require" => MySqlSslMode::Required,
                "verify-ca" => MySqlSslMode::VerifyCa,
                "verify-full" => MySqlSslMode::VerifyIdentity,
                _ => MySqlSslMode::Preferred,
            });
        }
        if let Some(ca) = settings.str("sslrootcert") {
            options = options.ssl_ca(ca);
        }
        let (host, port, database) = (options.get_host().to_string(), options.get_port(), options.get_database().map(str::to_string));
        let seconds = timeout.as_secs_f64().max(0.001);
        let lock_seconds = (timeout.as_secs() / 2).max(1);
        let pool = MySqlPoolOptions::new()
            .max_connections(pool)
            .acquire_timeout(connect_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    // MariaDB and MySQL name the statement limit differently;
                    // one of the two exists.
                    let limit = format!("SET SESSION max_statement_time = {seconds}");
                    if conn.execute(sqlx::AssertSqlSafe(limit)).await.is_err() {
                        let limit = format!("SET SESSION max_execution_time = {}", (seconds * 1000.0) as u64);
                        conn.execute(sqlx::AssertSqlSafe(limit)).await?;
                    }
                    let locks =
                        format!("SET SESSION innodb_lock_wait_timeout = {lock_seconds}, SESSION lock_wait_timeout = {lock_seconds}");
                    conn.execute(sqlx::AssertSqlSafe(locks)).await?;
                    conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| setup(format!("cannot connect to {host}:{port}: {}", secret.scrub(&e.to_string()))))?;

        let resource = super::target_resource("mysql", &host, port, database);
        let target = MyTarget {
            name: name.to_string(),
            pool,
            secret,
            timeout,
            resource,
            generation: AtomicU64::new(0),
            last_uptime: AtomicI64::new(0),
            breaker: super::breaker::Breaker::new(name, super::breaker::Policy::from_settings(settings)),
        };
        if !settings.bool("allow_privileged").unwrap_or(false) {
            target.refuse_privileged().await?;
        }
        Ok(target)
    }

    async fn refuse_privileged(&self) -> Result<(), SourceError> {
        let grants = self.query("role check", "SHOW GRANTS FOR CURRENT_USER()").await?;
        let user = self.query("current user", "SELECT CURRENT_USER() AS u").await?;
        let user = user.first().and_then(|r| r.get("u")).map(ToString::to_string).unwrap_or_default();
        for row in &grants {
            let Some((_, grant)) = row.iter().next() else { continue };
            let grant = grant.to_string().to_ascii_uppercase();
            let privileges = grant.split(" ON ").next().unwrap_or("");
            let found = if privileges.contains("ALL PRIVILEGES") {
                Some("has ALL PRIVILEGES")
            } else if privileges.contains("SUPER") {
                Some("has SUPER")
            } else if ["INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "GRANT OPTION"].iter().any(|p| privileges.contains(p)) {
                Some("can write")
            } else {
                None
            };
            if let Some(privilege) = found {
                let on = grant.split(" ON ").nth(1).and_then(|s| s.split(" TO ").next()).unwrap_or("?").to_string();
                return Err(SourceError::Privileged {
                    source_name: self.name.clone(),
                    message: format!(
                        "user {user} {privilege} (on {on}); use a user with only SELECT ON performance_schema.* and PROCESS (README: Database users), or set allow_privileged = true"
                    ),
                });
            }
        }
        Ok(())
    }

    pub async fn query(&self, what: &str, sql: &str) -> Result<Vec<DbRow>, SourceError> {
        super::breaker::guarded(&self.breaker, &self.name, what, self.send(what, sql)).await
    }

    async fn send(&self, what: &str, sql: &str) -> Result<Vec<DbRow>, SourceError> {
        let deadline = self.timeout + Duration::from_millis(500);
        let query = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(deadline, query.fetch_all(&self.pool)).await;
        dbintel_core::counters::record_query(&self.name, what, started.elapsed());
        match result {
            Err(_) => Err(SourceError::Timeout { source_name: self.name.clone(), what: what.to_string(), after: self.timeout }),
            Ok(Err(e)) => {
                let message = self.secret.scrub(&e.to_string());
                let lower = message.to_ascii_lowercase();
                if lower.contains("max_statement_time")
                    || lower.contains("maximum statement execution time")
                    || lower.contains("lock wait timeout")
                {
                    return Err(SourceError::Timeout {
                        source_name: self.name.clone(),
                        what: format!("{what} ({message})"),
                        after: self.timeout,
                    });
                }
                Err(SourceError::Query { source_name: self.name.clone(), what: what.to_string(), message })
            }
            Ok(Ok(rows)) => Ok(rows.iter().map(row_to_map).collect()),
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Host, port and a restart counter (from the uptime going backwards).
    async fn identity(&self) -> Result<String, SourceError> {
        let rows = self
            .query("uptime", "SELECT VARIABLE_VALUE AS uptime FROM performance_schema.global_status WHERE VARIABLE_NAME = 'UPTIME'")
            .await?;
        let uptime = rows.first().and_then(|r| integer(r, "uptime")).unwrap_or(0);
        if uptime < self.last_uptime.swap(uptime, Relaxed) {
            self.generation.fetch_add(1, Relaxed);
        }
        let instance = self.resource.attributes.get("service.instance.id").map(ToString::to_string).unwrap_or_default();
        Ok(format!("{instance}#{}", self.generation.load(Relaxed)))
    }
}

/// A row as a map; NULL is nil; unsigned counters fit i64 or become floats.
pub fn row_to_map(row: &MySqlRow) -> DbRow {
    let mut map = Map::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_info().name().to_ascii_uppercase();
        let value = if ty.contains("UNSIGNED") {
            row.try_get::<Option<u64>, _>(i).ok().flatten().map(|v| i64::try_from(v).map(Value::Int).unwrap_or(Value::Double(v as f64)))
        } else if ty.contains("INT") {
            row.try_get::<Option<i64>, _>(i).ok().flatten().map(Value::Int)
        } else if ty == "DOUBLE" || ty == "FLOAT" {
            row.try_get::<Option<f64>, _>(i).ok().flatten().map(Value::Double)
        } else if ty == "DECIMAL" {
            row.try_get::<Option<String>, _>(i).ok().flatten().map(|s| s.parse().map(Value::Double).unwrap_or(Value::Str(s)))
        } else if ty == "BOOLEAN" {
            row.try_get::<Option<bool>, _>(i).ok().flatten().map(Value::Bool)
        } else {
            row.try_get::<Option<String>, _>(i)
                .ok()
                .flatten()
                .or_else(|| row.try_get::<Option<Vec<u8>>, _>(i).ok().flatten().map(|b| String::from_utf8_lossy(&b).into_owned()))
                .map(Value::Str)
        };
        map.insert(column.name(), value.unwrap_or(Value::Nil));
    }
    map
}

/// events_statements_summary_by_digest, as per-interval deltas.
pub struct MyStatements {
    deltas: StatementDeltas,
}

impl MyStatements {
    pub fn new(settings: &Settings) -> MyStatements {
        MyStatements { deltas: StatementDeltas::new(&MYSQL, settings.int("top").unwrap_or(200).max(1) as usize) }
    }

    pub async fn scrape(&mut self, target: &MyTarget, now: u64) -> Result<Vec<Record>, SourceError> {
        let server = target.identity().await?;
        let rows = target
            .query(
                "statement digests",
                "SELECT SCHEMA_NAME, DIGEST, DIGEST_TEXT, COUNT_STAR, SUM_TIMER_WAIT, SUM_ROWS_SENT, SUM_ROWS_EXAMINED,
                        SUM_ROWS_AFFECTED, SUM_NO_INDEX_USED, SUM_CREATED_TMP_DISK_TABLES
                   FROM performance_schema.events_statements_summary_by_digest
                  WHERE DIGEST IS NOT NULL",
            )
            .await?;
        Ok(self.deltas.observe(&server, None, rows, now).0)
    }
}

/// The MariaDB/MySQL activity sample: foreground threads that are doing
/// something, with what they wait on now; a thread waiting for an InnoDB row
/// lock is a `Lock` wait and names the threads holding it (MariaDB's
/// information_schema.INNODB_LOCK_WAITS). Columns match the PostgreSQL
/// sample so one aggregator serves both.
pub const MY_SAMPLE_SQL: &str = "SELECT t.PROCESSLIST_ID AS pid, t.PROCESSLIST_DB AS datname, t.PROCESSLIST_USER AS usename,
        t.PROCESSLIST_COMMAND AS state,
        CASE WHEN b.blockers IS NOT NULL THEN 'Lock'
             WHEN w.EVENT_NAME IS NULL THEN NULL
             ELSE SUBSTRING_INDEX(SUBSTRING_INDEX(w.EVENT_NAME, '/', 2), '/', -1) END AS wait_event_type,
        CASE WHEN b.blockers IS NOT NULL THEN 'row lock' ELSE w.EVENT_NAME END AS wait_event,
        NULL AS query_id, t.PROCESSLIST_INFO AS query, b.blockers AS blocking
   FROM performance_schema.threads t
   LEFT JOIN performance_schema.events_waits_current w ON w.THREAD_ID = t.THREAD_ID AND w.END_EVENT_ID IS NULL
   LEFT JOIN (SELECT r.trx_mysql_thread_id AS waiting, GROUP_CONCAT(DISTINCT h.trx_mysql_thread_id) AS blockers
                FROM information_schema.INNODB_LOCK_WAITS lw
                JOIN information_schema.INNODB_TRX r ON r.trx_id = lw.requesting_trx_id
                JOIN information_schema.INNODB_TRX h ON h.trx_id = lw.blocking_trx_id
               GROUP BY r.trx_mysql_thread_id) b ON b.waiting = t.PROCESSLIST_ID
  WHERE t.TYPE = 'FOREGROUND' AND t.PROCESSLIST_COMMAND NOT IN ('Sleep', 'Daemon')
    AND t.PROCESSLIST_ID <> CONNECTION_ID()";

/// Health basics from global status: connections, running threads,
/// queries, commits, rollbacks, buffer pool reads, slow queries.
pub async fn instance(target: &MyTarget, now: u64) -> Result<Vec<Record>, SourceError> {
    let rows = target
        .query(
            "global status",
            "SELECT VARIABLE_NAME AS name, VARIABLE_VALUE AS value FROM performance_schema.global_status
              WHERE VARIABLE_NAME IN ('THREADS_CONNECTED', 'THREADS_RUNNING', 'QUESTIONS', 'COM_COMMIT', 'COM_ROLLBACK',
                    'INNODB_BUFFER_POOL_READ_REQUESTS', 'INNODB_BUFFER_POOL_READS', 'SLOW_QUERIES', 'INNODB_ROW_LOCK_WAITS', 'UPTIME')",
        )
        .await?;
    let cumulative = MetricKind::Sum { monotonic: true, temporality: Temporality::Cumulative };
    let mut out = Vec::new();
    for row in &rows {
        let name = row.get("name").map(|v| v.to_string().to_ascii_uppercase()).unwrap_or_default();
        let Some(value) = integer(row, "value") else { continue };
        let (metric, unit, kind) = match name.as_str() {
            "THREADS_CONNECTED" => ("connections", "{connection}", MetricKind::Gauge),
            "THREADS_RUNNING" => ("threads.running", "{thread}", MetricKind::Gauge),
            "QUESTIONS" => ("queries", "{query}", cumulative),
            "COM_COMMIT" => ("commits", "{transaction}", cumulative),
            "COM_ROLLBACK" => ("rollbacks", "{transaction}", cumulative),
            "INNODB_BUFFER_POOL_READ_REQUESTS" => ("buffer_pool.read_requests", "{request}", cumulative),
            "INNODB_BUFFER_POOL_READS" => ("buffer_pool.reads", "{read}", cumulative),
            "SLOW_QUERIES" => ("slow_queries", "{query}", cumulative),
            "INNODB_ROW_LOCK_WAITS" => ("row_lock.waits", "{wait}", cumulative),
            "UPTIME" => ("uptime", "s", MetricKind::Gauge),
            _ => continue,
        };
        out.push(Record::Metric(MetricPoint::new(format!("mysql.{metric}"), unit, kind, Number::Int(value), now, Map::new())));
    }
    Ok(out)
}
