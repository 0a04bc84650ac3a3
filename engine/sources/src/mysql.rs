//! A MySQL / MariaDB target (MySQL 8, MariaDB 10.5+): a small pool, safe
//! sessions, the role check, and queries under a client deadline.
//!
//! Every session starts with a statement time limit (`max_statement_time`
//! on MariaDB, `max_execution_time` on MySQL), `innodb_lock_wait_timeout`
//! and `lock_wait_timeout` (half of it), and a read-only transaction mode;
//! each query also has a client deadline. Roles with SUPER, ALL PRIVILEGES
//! or any write privilege are refused unless `allow_privileged = true`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use dbintel_dsl::schema::DbSettings;
use dbintel_stdlib::{Map, Value};
use sqlx::mysql::{MySqlPoolOptions, MySqlRow};
use sqlx::MySql;
use sqlx::{Column, ConnectOptions, Executor, Row, TypeInfo};

use super::error::from_sqlx;
use super::rows::{integer, Row as DbRow};
use super::secret::Secret;
use super::sessions::{Checkout, ServerSessions, SessionPool, Sessions};
use super::ConnectSpec;
use super::SourceError;
use dbintel_core::record::Resource;

pub struct MyTarget {
    name: String,
    /// Sessions counted against the server's budget (see `sessions.rs`).
    pool: SessionPool<MySql>,
    secret: Secret,
    timeout: Duration,
    pub resource: Resource,
    database: Option<String>,
    server_key: String,
    /// Bumped when the server's uptime goes backwards (a restart), so deltas
    /// re-baseline.
    generation: AtomicU64,
    last_uptime: AtomicI64,
    pub breaker: super::breaker::Breaker,
    pub server: MyServer,
}

/// Which server this is: MariaDB and MySQL differ in tables, columns and
/// statements (`SHOW SLAVE STATUS` / `SHOW REPLICA STATUS`, lock views).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MyServer {
    pub mariadb: bool,
    /// major * 10000 + minor * 100 + patch, e.g. 101106 or 80036.
    pub version: i64,
}

impl MyServer {
    /// From `SELECT VERSION()`: `10.11.6-MariaDB-0+deb12u1`, `8.0.36`.
    pub fn from_version(text: &str) -> MyServer {
        let numbers: Vec<i64> = text.split(|c: char| !c.is_ascii_digit()).take(3).map(|n| n.parse().unwrap_or(0)).collect();
        let part = |i: usize| numbers.get(i).copied().unwrap_or(0);
        MyServer { mariadb: text.to_ascii_lowercase().contains("mariadb"), version: part(0) * 10_000 + part(1) * 100 + part(2) }
    }
}

impl MyTarget {
    /// Connects, sets up every session, reads the server's flavour and
    /// version, and checks the account's privileges.
    pub async fn connect(name: &str, settings: &DbSettings) -> Result<MyTarget, SourceError> {
        MyTarget::connect_with(name, settings, &ConnectSpec::for_source(name, "mysql", settings)?, Sessions::Pinned).await
    }

    /// Connects to a target resolved by the caller.
    /// `sessions`: whether its pool keeps its sessions (the server's
    /// reader) or lends them out when idle (see `sessions.rs`).
    pub async fn connect_with(name: &str, settings: &DbSettings, spec: &ConnectSpec, sessions: Sessions) -> Result<MyTarget, SourceError> {
        let (timeout, connect_timeout) = (settings.timeout, settings.connect_timeout);
        let secret = spec.secret().clone();
        let mut options = spec
            .clone()
            .with_tls(settings)
            .my_options()
            .cloned()
            .ok_or_else(|| super::setup_error(name, format!("the DSN from {secret} is not a MySQL DSN")))?;
        // never log statements: a `sql` collector's query or an EXPLAIN of
        // a captured statement can carry literals
        options = options.disable_statement_logging();
        let (host, port) = (spec.host(), options.get_port());
        let seconds = timeout.as_secs_f64().max(0.001);
        let lock_seconds = (timeout.as_secs() / 2).max(1);
        let what = format!("connecting to {host}:{port}");
        let server = ServerSessions::of(&spec.server(), settings.server_sessions as u32);
        let permit = server.transient(name, connect_timeout).await?;
        let probe = super::probe_connection::<sqlx::MySqlConnection>(name, &what, &secret, connect_timeout, &options).await?;
        super::close_probe(name, probe).await;
        drop(permit);
        let pool_options = MySqlPoolOptions::new().acquire_timeout(connect_timeout).after_connect(move |conn, _meta| {
            Box::pin(async move {
                // MariaDB and MySQL name the statement limit differently;
                // one of the two exists.
                let limit = format!("SET SESSION max_statement_time = {seconds}");
                if conn.execute(sqlx::AssertSqlSafe(limit)).await.is_err() {
                    let limit = format!("SET SESSION max_execution_time = {}", (seconds * 1000.0) as u64);
                    conn.execute(sqlx::AssertSqlSafe(limit)).await?;
                }
                let locks = format!("SET SESSION innodb_lock_wait_timeout = {lock_seconds}, SESSION lock_wait_timeout = {lock_seconds}");
                conn.execute(sqlx::AssertSqlSafe(locks)).await?;
                conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
                Ok(())
            })
        });
        let pool = SessionPool::new(name, server, sessions, settings.pool.clamp(1, 16) as u32, pool_options, options, connect_timeout);

        let resource = super::target_resource("mysql", &host, port, settings.service_instance_id);
        let mut target = MyTarget {
            name: name.to_string(),
            pool,
            secret,
            timeout,
            resource,
            database: spec.database().map(str::to_string),
            server_key: spec.server(),
            generation: AtomicU64::new(0),
            last_uptime: AtomicI64::new(0),
            breaker: super::breaker::Breaker::new(name, super::breaker::Policy::from_settings(settings)),
            server: MyServer::default(),
        };
        let version = target.send("server version", "SELECT VERSION() AS v").await?;
        let text = version.first().and_then(|r| r.get("v")).map(ToString::to_string).unwrap_or_default();
        target.server = MyServer::from_version(&text);
        if !settings.allow_privileged {
            target.refuse_privileged().await?;
        }
        Ok(target)
    }

    /// Refuses accounts that can change anything, directly or through a
    /// role (followed to any depth): ALL, SUPER, FILE, any administrative
    /// privilege (`*_ADMIN`, MariaDB's `… ADMIN`), GRANT OPTION, and every
    /// write privilege.
    async fn refuse_privileged(&self) -> Result<(), SourceError> {
        let user = self.query("current user", "SELECT CURRENT_USER() AS u").await?;
        let user = user.first().and_then(|r| r.get("u")).map(ToString::to_string).unwrap_or_default();
        let mut pending = vec![("CURRENT_USER()".to_string(), None::<String>)];
        let mut seen = std::collections::HashSet::new();
        while let Some((grantee, via)) = pending.pop() {
            if !seen.insert(grantee.clone()) || seen.len() > 64 {
                continue;
            }
            let grants = self.query("role check", &format!("SHOW GRANTS FOR {grantee}")).await?;
            for row in &grants {
                let Some((_, grant)) = row.iter().next() else { continue };
                match parse_grant(&grant.to_string()) {
                    Grant::Roles(roles) => pending.extend(roles.into_iter().map(|r| (r.clone(), Some(r)))),
                    Grant::Privileges { privileges, on, grant_option } => {
                        let found =
                            privileges.iter().find_map(|p| dangerous(p)).or(grant_option.then_some("can grant privileges".to_string()));
                        if let Some(privilege) = found {
                            let via = via.as_ref().map(|r| format!(" through role {r}")).unwrap_or_default();
                            return Err(SourceError::Privileged {
                                source_name: self.name.clone(),
                                message: format!(
                                    "user {user} {privilege} (on {on}){via}; use a user with only SELECT ON performance_schema.* and PROCESS (README: Database users), or set allow_privileged = true"
                                ),
                            });
                        }
                    }
                    Grant::Other => {}
                }
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
        let session = self.pool.enter().await?;
        let work = async {
            let mut conn = Checkout::acquire(&session.pool).await?;
            let rows = query.fetch_all(&mut *conn).await;
            conn.done();
            rows
        };
        let result = tokio::time::timeout(deadline, work).await;
        dbintel_core::counters::record_query(&self.name, what, started.elapsed());
        match result {
            Err(_) => Err(SourceError::Timeout { source_name: self.name.clone(), what: what.to_string(), after: self.timeout }),
            Ok(Err(e)) => Err(from_sqlx(&self.name, what, &self.secret, &e)),
            Ok(Ok(rows)) => Ok(rows.iter().map(row_to_map).collect()),
        }
    }

    /// Seconds the replica's SQL thread is behind (0 once it has applied
    /// all it received, whatever the primary does); `None` on a primary.
    pub async fn replica_lag(&self) -> Option<f64> {
        let statement = if self.server.mariadb || self.server.version < 80022 { "SHOW SLAVE STATUS" } else { "SHOW REPLICA STATUS" };
        let rows = self.query("replica status", statement).await.ok()?;
        let row = rows.first()?;
        super::rows::number(row, "Seconds_Behind_Master").or_else(|| super::rows::number(row, "Seconds_Behind_Source"))
    }

    /// The target's name, as errors and status give it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server as configured (`host:port`).
    pub fn server_key(&self) -> &str {
        &self.server_key
    }

    /// The database the DSN names (`None`: none selected).
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Host, port and a restart counter (from the uptime going backwards).
    pub async fn identity(&self) -> Result<String, SourceError> {
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
        } else if ty == "DECIMAL" || ty == "NEWDECIMAL" {
            // sent as its digits; the driver only decodes it unchecked
            // (COALESCE of an unsigned column is DECIMAL on MariaDB)
            row.try_get_unchecked::<Option<String>, _>(i).ok().flatten().map(|s| s.parse().map(Value::Double).unwrap_or(Value::Str(s)))
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

/// One line of `SHOW GRANTS`.
#[derive(Debug, PartialEq)]
enum Grant {
    /// `GRANT SELECT, PROCESS ON *.* TO …`
    Privileges {
        privileges: Vec<String>,
        on: String,
        grant_option: bool,
    },
    /// `GRANT `role`@`%` TO …` (MySQL) or `GRANT `role` TO …` (MariaDB).
    Roles(Vec<String>),
    Other,
}

fn parse_grant(line: &str) -> Grant {
    let Some(rest) = line.strip_prefix("GRANT ") else { return Grant::Other };
    let upper = rest.to_ascii_uppercase();
    match upper.find(" ON ") {
        Some(at) if !upper[..at].contains(" TO ") => {
            let privileges = split_top_level(&rest[..at]).into_iter().map(|p| {
                // column privileges: `SELECT (a, b)`
                p.split('(').next().unwrap_or("").trim().to_ascii_uppercase()
            });
            let on = upper[at + 4..].split(" TO ").next().unwrap_or("?").trim().to_string();
            Grant::Privileges { privileges: privileges.collect(), on, grant_option: upper.contains("WITH GRANT OPTION") }
        }
        _ => match upper.find(" TO ") {
            Some(at) => Grant::Roles(split_top_level(&rest[..at]).into_iter().map(|r| r.trim().to_string()).collect()),
            None => Grant::Other,
        },
    }
}

/// Splits at commas outside parentheses and quotes.
fn split_top_level(text: &str) -> Vec<String> {
    let (mut out, mut current, mut depth, mut quote) = (Vec::new(), String::new(), 0usize, None::<char>);
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '`' | '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth = depth.saturating_sub(1),
            (None, ',') if depth == 0 => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// Why a privilege (upper case) is too much for a monitoring account.
fn dangerous(privilege: &str) -> Option<String> {
    const WRITES: &[&str] = &[
        "INSERT",
        "UPDATE",
        "DELETE",
        "CREATE",
        "DROP",
        "ALTER",
        "INDEX",
        "REFERENCES",
        "CREATE VIEW",
        "CREATE ROUTINE",
        "ALTER ROUTINE",
        "EXECUTE",
        "TRIGGER",
        "EVENT",
        "LOCK TABLES",
        "CREATE TABLESPACE",
        "CREATE USER",
        "CREATE ROLE",
        "DROP ROLE",
        "DELETE HISTORY",
        "RELOAD",
        "SHUTDOWN",
    ];
    let p = privilege.trim();
    if p == "ALL" || p == "ALL PRIVILEGES" {
        Some("has ALL PRIVILEGES".into())
    } else if p == "SUPER" || p == "FILE" {
        Some(format!("has {p}"))
    } else if p.ends_with("_ADMIN") || p.ends_with(" ADMIN") {
        Some(format!("has the administrative privilege {p}"))
    } else if WRITES.contains(&p) {
        Some(format!("can write ({p})"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_read_whatever_the_flavour() {
        assert_eq!(
            parse_grant("GRANT SELECT, PROCESS ON *.* TO `mon`@`%`"),
            Grant::Privileges { privileges: vec!["SELECT".into(), "PROCESS".into()], on: "*.*".into(), grant_option: false }
        );
        assert_eq!(parse_grant("GRANT `app_rw`@`%`,`ops` TO `mon`@`%`"), Grant::Roles(vec!["`app_rw`@`%`".into(), "`ops`".into()]));
        assert_eq!(parse_grant("GRANT `reporting` TO `mon`@`localhost`"), Grant::Roles(vec!["`reporting`".into()]));
        let Grant::Privileges { privileges, grant_option, .. } =
            parse_grant("GRANT SELECT (`a`, `b`), INSERT ON `shop`.`t` TO `u`@`%` WITH GRANT OPTION")
        else {
            panic!("privileges")
        };
        assert_eq!(privileges, ["SELECT", "INSERT"]);
        assert!(grant_option);
        assert_eq!(parse_grant("SET DEFAULT ROLE `r` FOR `u`@`%`"), Grant::Other);
    }

    #[test]
    fn administrative_file_and_write_privileges_are_too_much() {
        for p in ["ALL PRIVILEGES", "SUPER", "FILE", "SYSTEM_VARIABLES_ADMIN", "BINLOG ADMIN", "INSERT", "CREATE ROUTINE", "SHUTDOWN"] {
            assert!(dangerous(p).is_some(), "{p}");
        }
        for p in ["SELECT", "PROCESS", "USAGE", "SHOW VIEW", "REPLICATION CLIENT", "SLAVE MONITOR", "SHOW DATABASES"] {
            assert!(dangerous(p).is_none(), "{p}");
        }
    }

    #[test]
    fn versions_say_which_server() {
        assert_eq!(MyServer::from_version("10.11.6-MariaDB-0+deb12u1"), MyServer { mariadb: true, version: 101106 });
        assert_eq!(MyServer::from_version("8.0.36"), MyServer { mariadb: false, version: 80036 });
    }
}
