//! A connected database of either engine, as collectors see it.

use std::time::{Duration, Instant};

use dbintel_core::record::Resource;
use dbintel_dsl::schema::DbSettings;

use super::mysql::MyTarget;
use super::postgres::PgTarget;
use super::rows::Row;
use super::sessions::Sessions;
use super::SourceError;

/// Which engine a source talks to: from its kind, or for a generic `sql`
/// source from its DSN's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    MySql,
}

impl Engine {
    /// `postgres` and `mysql` sources say so; a `sql` source's DSN scheme
    /// (`mysql://`, `mariadb://`, else PostgreSQL) decides.
    pub fn of(kind: &str, dsn: Option<&str>) -> Engine {
        match kind {
            "mysql" => Engine::MySql,
            "postgres" => Engine::Postgres,
            _ if dsn.is_some_and(|d| d.starts_with("mysql:") || d.starts_with("mariadb:")) => Engine::MySql,
            _ => Engine::Postgres,
        }
    }

    /// The `db.system.name` New Relic and OpenTelemetry use.
    pub fn system(self) -> &'static str {
        match self {
            Engine::Postgres => "postgresql",
            Engine::MySql => "mysql",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::MySql => 3306,
        }
    }
}

/// A connected database.
pub enum Target {
    Pg(PgTarget),
    My(MyTarget),
}

impl Target {
    /// Connects to a target the caller has just resolved. `sessions`:
    /// whether its pool keeps its sessions (the server's reader) or lends
    /// them out when idle (see `sessions.rs`).
    pub async fn connect(name: &str, settings: &DbSettings, spec: &super::ConnectSpec, sessions: Sessions) -> Result<Target, SourceError> {
        Ok(match spec.engine() {
            Engine::MySql => Target::My(MyTarget::connect_with(name, settings, spec, sessions).await?),
            Engine::Postgres => Target::Pg(PgTarget::connect_with(name, settings, spec, sessions).await?),
        })
    }

    /// A target's own resource attributes (from a targets list), next to
    /// the ones New Relic builds entities from (which they never replace).
    pub fn add_attributes(&mut self, attributes: &indexmap::IndexMap<String, String>) {
        let resource = match self {
            Target::Pg(t) => &mut t.resource,
            Target::My(t) => &mut t.resource,
        };
        for (k, v) in attributes {
            if resource.attributes.get(k).is_none() {
                resource.attributes.insert(k.clone(), dbintel_stdlib::Value::Str(v.clone()));
            }
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Target::Pg(_) => Engine::Postgres,
            Target::My(_) => Engine::MySql,
        }
    }

    /// Runs `sql` through the breaker under the client deadline.
    pub async fn query(&self, what: &str, sql: &str) -> Result<Vec<Row>, SourceError> {
        match self {
            Target::Pg(t) => t.query(what, sql).await,
            Target::My(t) => t.query(what, sql).await,
        }
    }

    /// Which server this is, whatever name it was reached by: PostgreSQL's
    /// system identifier and postmaster start (a standby differs from its
    /// primary); MySQL's `server_uuid`, MariaDB's host name, port and
    /// server id. Server-wide views are claimed by it (`readers.rs`).
    pub async fn server_identity(&self) -> Result<String, SourceError> {
        match self {
            Target::Pg(t) => t.identity().await,
            Target::My(t) => {
                let rows = t
                    .query(
                        "server identity",
                        "SELECT LOWER(VARIABLE_NAME) AS name, VARIABLE_VALUE AS value FROM performance_schema.global_variables
                          WHERE VARIABLE_NAME IN ('server_uuid', 'hostname', 'port', 'server_id')",
                    )
                    .await?;
                let get = |name: &str| {
                    rows.iter()
                        .find(|r| r.get("name").and_then(|v| v.as_str()) == Some(name))
                        .and_then(|r| r.get("value"))
                        .map(ToString::to_string)
                };
                Ok(match get("server_uuid") {
                    Some(uuid) if !uuid.is_empty() => uuid,
                    _ => format!(
                        "{}:{}#{}",
                        get("hostname").unwrap_or_default(),
                        get("port").unwrap_or_default(),
                        get("server_id").unwrap_or_default()
                    ),
                })
            }
        }
    }

    /// The server as configured (`host:port`): what its session budget
    /// and plan book are kept under.
    pub fn server_key(&self) -> &str {
        match self {
            Target::Pg(t) => t.server_key(),
            Target::My(t) => t.server_key(),
        }
    }

    /// The database the DSN names (`None`: the server's default).
    pub fn database(&self) -> Option<&str> {
        match self {
            Target::Pg(t) => t.database(),
            Target::My(t) => t.database(),
        }
    }

    pub fn resource(&self) -> &Resource {
        match self {
            Target::Pg(t) => &t.resource,
            Target::My(t) => &t.resource,
        }
    }

    pub fn breaker(&self) -> &super::breaker::Breaker {
        match self {
            Target::Pg(t) => &t.breaker,
            Target::My(t) => &t.breaker,
        }
    }

    /// The breaker's duress probe (at most every 5 s per target): active
    /// sessions, replication lag, and how long the probe itself took.
    ///
    /// Replication lag is read from positions, not only from the age of
    /// the last replayed transaction: a standby that has replayed
    /// everything it received is not lagging, however quiet the primary,
    /// and one whose replay stands still with WAL waiting is lagging by as
    /// long as it has stood (see [`PgTarget::replication_lag`]).
    ///
    /// [`PgTarget::replication_lag`]: super::postgres::PgTarget::replication_lag
    pub async fn check_duress(&self) {
        let now = Instant::now();
        if !self.breaker().probe_due(now, Duration::from_secs(5)) {
            return;
        }
        let sql = match self {
            Target::Pg(_) => {
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid())::int8 AS active,
                        pg_is_in_recovery() AS standby,
                        pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8 AS pending,
                        pg_last_wal_replay_lsn()::text AS replayed,
                        extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS lag"
            }
            Target::My(_) => {
                "SELECT COUNT(*) AS active FROM information_schema.processlist
                  WHERE command NOT IN ('Sleep', 'Daemon', 'Binlog Dump') AND id <> CONNECTION_ID()"
            }
        };
        if let Ok(rows) = self.query("breaker probe", sql).await {
            let took = now.elapsed();
            let row = rows.first();
            let active = row.and_then(|r| super::rows::integer(r, "active"));
            let lag = match self {
                Target::Pg(pg) => row.and_then(|r| pg.replication_lag(r, now)),
                Target::My(my) if self.breaker().policy().max_replication_lag.is_some() => my.replica_lag().await,
                Target::My(_) => None,
            };
            if let Some(why) = self.breaker().duress(active, lag, took) {
                self.breaker().trip(Instant::now(), &format!("duress: {why}"));
            }
        }
    }

    pub async fn close(&self) {
        match self {
            Target::Pg(t) => t.close().await,
            Target::My(t) => t.close().await,
        }
    }
}
