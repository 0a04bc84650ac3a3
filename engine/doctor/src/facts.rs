//! What is known about a connected server before any family runs: its
//! flavour and version, the role and database of the session, whether it
//! is a standby, the settings the checks read — one catalog read each —
//! and which of the pipeline's collectors run on this target.

use std::collections::BTreeMap;

use dbintel_dsl::plan::SourceNode;
use dbintel_sources::collector::{self, Build, Scope};
use dbintel_sources::mysql::MyServer;
use dbintel_sources::rows::Row;
use dbintel_sources::supervisor::TargetPlan;
use dbintel_sources::target::{Engine, Target};
use dbintel_sources::SourceError;
use dbintel_stdlib::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    PostgreSql,
    MariaDb,
    MySql,
}

impl Flavour {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::PostgreSql => "PostgreSQL",
            Flavour::MariaDb => "MariaDB",
            Flavour::MySql => "MySQL",
        }
    }
}

/// One server setting as the session sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    /// PostgreSQL's unit of `value` (`ms`, `kB`…).
    pub unit: Option<String>,
    /// PostgreSQL's `context`: `postmaster` needs a restart, `sighup` and
    /// `superuser` a reload.
    pub context: Option<String>,
}

/// The settings every family may read, fetched once.
const PG_SETTINGS: &[&str] = &[
    "shared_preload_libraries",
    "session_preload_libraries",
    "pg_stat_statements.max",
    "pg_stat_statements.track",
    "pg_stat_statements.track_utility",
    "track_io_timing",
    "track_functions",
    "track_activities",
    "track_counts",
    "track_activity_query_size",
    "compute_query_id",
    "logging_collector",
    "log_destination",
    "log_lock_waits",
    "log_autovacuum_min_duration",
    "log_temp_files",
    "log_checkpoints",
    "auto_explain.log_format",
    "auto_explain.log_min_duration",
    "auto_explain.log_analyze",
    "auto_explain.log_timing",
];

const MY_SETTINGS: &[&str] = &[
    "performance_schema",
    "performance_schema_digests_size",
    "performance_schema_max_sql_text_length",
    "performance_schema_max_digest_length",
    "read_only",
    "slow_query_log",
    "long_query_time",
    "log_output",
    "log_slow_verbosity",
    "log_slow_extra",
    "log_queries_not_using_indexes",
];

/// A connected server, as the checks see it.
#[derive(Debug, Clone)]
pub struct Facts {
    pub engine: Engine,
    pub flavour: Flavour,
    /// PostgreSQL's `server_version_num` (150004); MySQL/MariaDB's
    /// major * 10000 + minor * 100 + patch.
    pub version: i64,
    /// As the server writes it (`15.4`, `10.11.6-MariaDB-0+deb12u1`).
    pub version_text: String,
    /// PostgreSQL: `current_user`; MySQL: `CURRENT_USER()` (`user@host`).
    pub role: String,
    pub database: Option<String>,
    pub standby: bool,
    pub settings: BTreeMap<String, Setting>,
}

impl Facts {
    pub async fn read(target: &Target) -> Result<Facts, SourceError> {
        match target {
            Target::Pg(pg) => {
                let rows = target
                    .query(
                        crate::WHAT,
                        "SELECT current_setting('server_version') AS version_text, current_user::text AS role,
                                current_database()::text AS db, pg_is_in_recovery() AS standby",
                    )
                    .await?;
                let row = rows.first().cloned().unwrap_or_default();
                let names: Vec<String> = PG_SETTINGS.iter().map(|n| crate::quote::pg_literal(n)).collect();
                // pg_settings leaves out what the role may not read
                // (shared_preload_libraries without pg_read_all_settings)
                // and what no loaded library defines
                let sql = format!("SELECT name, setting, unit, context FROM pg_settings WHERE name IN ({})", names.join(", "));
                let mut settings = BTreeMap::new();
                for r in target.query(crate::WHAT, &sql).await? {
                    settings.insert(
                        text(&r, "name"),
                        Setting { value: text(&r, "setting"), unit: opt_text(&r, "unit"), context: opt_text(&r, "context") },
                    );
                }
                Ok(Facts {
                    engine: Engine::Postgres,
                    flavour: Flavour::PostgreSql,
                    version: pg.version(),
                    version_text: text(&row, "version_text"),
                    role: text(&row, "role"),
                    database: opt_text(&row, "db"),
                    standby: row.get("standby") == Some(&Value::Bool(true)),
                    settings,
                })
            }
            Target::My(my) => {
                let rows = target.query(crate::WHAT, "SELECT VERSION() AS v, CURRENT_USER() AS u, DATABASE() AS db").await?;
                let row = rows.first().cloned().unwrap_or_default();
                let names: Vec<String> = MY_SETTINGS.iter().map(|n| crate::quote::my_literal(n)).collect();
                let sql = format!("SHOW GLOBAL VARIABLES WHERE Variable_name IN ({})", names.join(", "));
                let mut settings = BTreeMap::new();
                for r in target.query(crate::WHAT, &sql).await? {
                    settings.insert(text(&r, "Variable_name"), Setting { value: text(&r, "Value"), unit: None, context: None });
                }
                // a replica, seen without the privilege SHOW REPLICA
                // STATUS needs: MariaDB counts its running replication
                // threads; MySQL lists its channels in performance_schema
                let replica_sql = if my.server.mariadb {
                    "SHOW GLOBAL STATUS WHERE Variable_name = 'Slaves_running'"
                } else {
                    "SELECT COUNT(*) AS Value FROM performance_schema.replication_connection_status"
                };
                let standby = target
                    .query(crate::WHAT, replica_sql)
                    .await
                    .ok()
                    .and_then(|rows| rows.first().map(|r| text(r, "Value")))
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|n| n > 0);
                Ok(Facts {
                    engine: Engine::MySql,
                    flavour: if my.server.mariadb { Flavour::MariaDb } else { Flavour::MySql },
                    version: my.server.version,
                    version_text: text(&row, "v"),
                    role: text(&row, "u"),
                    database: opt_text(&row, "db"),
                    standby,
                    settings,
                })
            }
        }
    }

    /// A setting's value, when the session may read it and it exists.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(|s| s.value.as_str())
    }

    /// Whether changing `name` needs a restart (PostgreSQL's context).
    pub fn needs_restart(&self, name: &str) -> bool {
        self.settings.get(name).and_then(|s| s.context.as_deref()) == Some("postmaster")
    }

    /// `MAJOR.MINOR` as people say it (`15.4`, `10.11`, `8.0`).
    pub fn short_version(&self) -> String {
        match self.engine {
            Engine::Postgres if self.version >= 100000 => format!("{}.{}", self.version / 10000, self.version % 10000),
            _ => format!("{}.{}", self.version / 10000, self.version / 100 % 100),
        }
    }

    /// "PostgreSQL 15.4", "MariaDB 10.11".
    pub fn describe(&self) -> String {
        format!("{} {}", self.flavour.as_str(), self.short_version())
    }

    pub fn my_server(&self) -> MyServer {
        MyServer { mariadb: self.flavour == Flavour::MariaDb, version: self.version }
    }
}

/// Which of the pipeline's collectors run on one target, decided exactly
/// as `run` decides it: built from the registry; the server-wide ones
/// only on the target that reads its server.
#[derive(Debug, Clone, Default)]
pub struct Collectors {
    names: Vec<String>,
}

impl Collectors {
    pub fn of(plan: &TargetPlan) -> Collectors {
        // a `sql` source's collectors are its own queries, whatever their
        // names: they need no setup beyond the connection
        if plan.node.kind == "sql" {
            return Collectors::default();
        }
        let engine = Engine::of(&plan.node.kind, None);
        let node: &SourceNode = &plan.node;
        let mut names = Vec::new();
        for (name, spec) in &node.collectors {
            let build = Build {
                source: node,
                engine,
                name,
                spec,
                source_interval: std::time::Duration::from_secs(60),
                interval_override: None,
                fleet_databases: &plan.fleet_databases,
            };
            if let Ok(c) = collector::build(&plan.source, &build) {
                if c.scope() == Scope::Database || plan.server_scope {
                    names.push(name.clone());
                }
            }
        }
        Collectors { names }
    }

    /// Collectors by name (tests, and plans read elsewhere).
    pub fn from_names(names: &[&str]) -> Collectors {
        Collectors { names: names.iter().map(|n| n.to_string()).collect() }
    }

    pub fn runs(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    pub fn any(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.runs(n))
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

pub fn text(row: &Row, column: &str) -> String {
    opt_text(row, column).unwrap_or_default()
}

pub fn opt_text(row: &Row, column: &str) -> Option<String> {
    match row.get(column) {
        None | Some(Value::Nil) => None,
        Some(Value::Str(s)) => Some(s.clone()),
        Some(v) => Some(v.to_string()),
    }
}
