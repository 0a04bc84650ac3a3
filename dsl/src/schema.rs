//! What each kind of node accepts: its settings, their types and defaults,
//! its collectors, and which signals flow out of it.
//!
//! The checker validates blocks against these tables and the plan fills in
//! defaults from them, so the engine always sees complete, typed settings.

use std::time::Duration;

use indexmap::IndexMap;

use crate::plan::{RedisState, SecretRef, Signals, Value};
use crate::typed::QueueSetting;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SettingType {
    Duration,
    /// 0–100 %.
    Percent,
    /// Bytes, written with KiB/MiB/GiB (or KB/MB/GB, B).
    Size,
    Int {
        min: i64,
        max: i64,
    },
    Float,
    Bool,
    String,
    /// Only `env("NAME")` or `file("/path")`: never written inline.
    Secret,
    /// One of a few bare words, e.g. `compression = zstd`.
    Word(&'static [&'static str]),
    StringList,
    /// `{ "header": "value" | env("X") }`. Values of keys that look like
    /// credentials must be secrets.
    Headers,
    /// `{ "key": "value" }` of plain strings.
    StringMap,
    /// `memory` or `disk("/path")` for the export queue.
    Queue,
    /// `local` or `redis("redis://…")` for a sampler's state.
    SamplerState,
    /// A string written inline, or `env("NAME")` read when the engine
    /// starts (a log directory or file that differs per deployment).
    Text,
    /// The name of another node, bare (`server = postgres`) or quoted.
    NodeName,
}

impl SettingType {
    pub fn describe(self) -> String {
        match self {
            SettingType::Duration => "a duration like 500ms, 30s, 5m, 1h".into(),
            SettingType::Percent => "a percentage like 25%".into(),
            SettingType::Size => "a size like 512KiB, 64MiB, 1GiB".into(),
            SettingType::Int { min, max } => format!("an integer from {min} to {max}"),
            SettingType::Float => "a number".into(),
            SettingType::Bool => "true or false".into(),
            SettingType::String => "a string".into(),
            SettingType::Secret => "env(\"NAME\") or file(\"/path\")".into(),
            SettingType::Word(words) => format!("one of {}", words.join(", ")),
            SettingType::StringList => "a list of strings".into(),
            SettingType::Headers => "a map of header names to strings or env(\"NAME\")".into(),
            SettingType::StringMap => "a map of strings".into(),
            SettingType::Queue => "memory or disk(\"/path\")".into(),
            SettingType::SamplerState => {
                "local or redis(\"redis://host:6379\") (rediss:// for TLS; username = env(\"…\"), password = env(\"…\"))".into()
            }
            SettingType::Text => "a string, or env(\"NAME\")".into(),
            SettingType::NodeName => "the name of a node, e.g. postgres".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    None,
    Duration(u64),
    Percent(f64),
    Size(u64),
    Int(i64),
    Bool(bool),
    Word(&'static str),
    String(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    pub name: &'static str,
    pub ty: SettingType,
    pub required: bool,
    pub default: DefaultValue,
}

impl DefaultValue {
    /// The default as a checked setting value.
    pub fn value(self) -> Option<crate::plan::Value> {
        use crate::plan::Value;
        Some(match self {
            DefaultValue::None => return None,
            DefaultValue::Duration(ms) => Value::Duration(Duration::from_millis(ms)),
            DefaultValue::Percent(p) => Value::Percent(p),
            DefaultValue::Size(b) => Value::Bytes(b),
            DefaultValue::Int(i) => Value::Int(i),
            DefaultValue::Bool(b) => Value::Bool(b),
            DefaultValue::Word(w) => Value::Word(w.to_string()),
            DefaultValue::String(s) => Value::String(s.to_string()),
        })
    }
}

impl SettingSpec {
    /// The spec under its field's name (see [`crate::settings!`]).
    pub const fn named(self, name: &'static str) -> SettingSpec {
        SettingSpec { name, ..self }
    }
}

/// A required setting (named by its field in a [`crate::settings!`] struct).
pub const fn required(ty: SettingType) -> SettingSpec {
    SettingSpec { name: "", ty, required: true, default: DefaultValue::None }
}
/// An optional setting with its default.
pub const fn optional(ty: SettingType, default: DefaultValue) -> SettingSpec {
    SettingSpec { name: "", ty, required: false, default }
}
const fn opt(name: &'static str, ty: SettingType, default: DefaultValue) -> SettingSpec {
    optional(ty, default).named(name)
}

const MS: u64 = 1;
const SEC: u64 = 1000 * MS;
const MIB: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct CollectorSpec {
    pub name: &'static str,
    pub settings: &'static [SettingSpec],
    pub signals: Signals,
}

#[derive(Debug, Clone, Copy)]
pub struct SourceKindSpec {
    pub name: &'static str,
    pub settings: &'static [SettingSpec],
    pub collectors: &'static [CollectorSpec],
    /// The generic `sql` source names its own collectors (one per query).
    pub open_collectors: Option<CollectorSpec>,
    /// A log source: the kind of database source whose server writes the
    /// log (its `server` setting names one). Log sources connect nowhere
    /// themselves: they have no `dsn` or `targets`.
    pub server_kind: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
pub struct SinkKindSpec {
    pub name: &'static str,
    pub settings: &'static [SettingSpec],
}

crate::words! {
    /// `sslmode`, as libpq spells it (MySQL's modes are mapped onto these).
    pub enum SslMode {
        Disable = "disable",
        Prefer = "prefer",
        Require = "require",
        VerifyCa = "verify-ca",
        VerifyFull = "verify-full",
    } default Prefer
}

crate::words! {
    /// How `service.instance.id` (the PostgreSQL entity's key) is made.
    pub enum ServiceInstanceId {
        /// New Relic's collector's: a UUIDv5 of the endpoint.
        Semconv = "semconv",
        /// dbintel's before: the DSN's `host:port`.
        Endpoint = "endpoint",
    } default Semconv
}

crate::words! {
    /// Where plans go (New Relic's collector offers both).
    pub enum PlanPlacement {
        /// On the statement's `db.server.top_query` events (New Relic's default).
        TopQuery = "top_query",
        /// As `db.server.query_plan` events of their own.
        Event = "event",
    } default TopQuery
}

crate::words! {
    /// Whether a source finds more targets by itself.
    pub enum Discover {
        None = "none",
        Databases = "databases",
    } default None
}

crate::settings! {
    /// Settings every database source (`postgres`, `mysql`, `sql`) shares.
    pub struct DbSettings {
        /// One database; `targets` names several instead.
        dsn: Option<SecretRef> = optional(SettingType::Secret, DefaultValue::None),
        interval: Duration = optional(SettingType::Duration, DefaultValue::Duration(30 * SEC)),
        /// Per query: the server-side limit, and (plus a margin) the client's.
        timeout: Duration = optional(SettingType::Duration, DefaultValue::Duration(3 * SEC)),
        connect_timeout: Duration = optional(SettingType::Duration, DefaultValue::Duration(5 * SEC)),
        pool: i64 = optional(SettingType::Int { min: 1, max: 16 }, DefaultValue::Int(2)),
        /// Sessions this process opens on one server at most, across every
        /// source, target and collector reaching it (`host:port` as
        /// configured): discovered databases and other databases' tables
        /// share what the server's reader (`pool`) leaves.
        server_sessions: i64 = optional(SettingType::Int { min: 1, max: 1000 }, DefaultValue::Int(8)),
        allow_privileged: bool = optional(SettingType::Bool, DefaultValue::Bool(false)),
        /// Keys of a statement's leading comment tags sent as
        /// `db.query.comment_tags` (APM agents write `nr_service_guid`
        /// there); none: `["nr_service_guid"]`, `[]`: no tags.
        allowed_comment_keys: Option<Vec<String>> = optional(SettingType::StringList, DefaultValue::None),
        /// `semconv`: New Relic's collector's UUIDv5 of the endpoint (the
        /// same entity whichever collector sends); `endpoint`: the DSN's
        /// `host:port`, as dbintel made it before (keeps existing entities).
        service_instance_id: ServiceInstanceId = optional(SettingType::Word(ServiceInstanceId::WORDS), DefaultValue::Word("semconv")),
        /// TLS, as libpq's `sslmode`. Unset: the DSN's own `sslmode`
        /// (`ssl-mode`), else `prefer`; where both are written, the
        /// stricter of the two (a setting never weakens the DSN's).
        sslmode: Option<SslMode> = optional(SettingType::Word(SslMode::WORDS), DefaultValue::None),
        sslrootcert: Option<String> = optional(SettingType::String, DefaultValue::None),
        jitter: f64 = optional(SettingType::Percent, DefaultValue::Percent(10.0)),
        /// How often a collector that fails for a reason of configuration
        /// (a privilege, a missing view, a query's syntax) is tried again.
        config_retry: Duration = optional(SettingType::Duration, DefaultValue::Duration(300 * SEC)),
        /// Reconnecting after a failure waits from 1 s, doubling, up to this.
        reconnect_max: Duration = optional(SettingType::Duration, DefaultValue::Duration(60 * SEC)),
        /// `databases`: every database of each target's server becomes a
        /// target of its own (PostgreSQL), found again every `discover_every`.
        discover: Discover = optional(SettingType::Word(Discover::WORDS), DefaultValue::Word("none")),
        discover_every: Duration = optional(SettingType::Duration, DefaultValue::Duration(300 * SEC)),
        /// Databases discovery leaves out (the templates always are).
        exclude_databases: Vec<String> = optional(SettingType::StringList, DefaultValue::None),
        /// `run` checks each target's setup as `dbintel doctor` does when
        /// it connects and then this often (`/status`, under `checks`);
        /// 0s: only when it connects.
        checks_every: Duration = optional(SettingType::Duration, DefaultValue::Duration(3600 * SEC)),
        // circuit breaker (see engine/sources/src/breaker.rs)
        breaker_failures: i64 = optional(SettingType::Int { min: 1, max: 1000 }, DefaultValue::Int(5)),
        breaker_successes: i64 = optional(SettingType::Int { min: 1, max: 100 }, DefaultValue::Int(2)),
        breaker_cooldown: Duration = optional(SettingType::Duration, DefaultValue::Duration(30 * SEC)),
        breaker_max_cooldown: Duration = optional(SettingType::Duration, DefaultValue::Duration(600 * SEC)),
        breaker_max_active_sessions: Option<i64> = optional(SettingType::Int { min: 1, max: 1_000_000 }, DefaultValue::None),
        breaker_max_replication_lag: Option<Duration> = optional(SettingType::Duration, DefaultValue::None),
        breaker_max_probe_time: Option<Duration> = optional(SettingType::Duration, DefaultValue::None),
    }
}

crate::settings! {
    /// `collect statements { … }`: pg_stat_statements / digest deltas.
    pub struct StatementsSettings {
        top: i64 = optional(SettingType::Int { min: 1, max: 10_000 }, DefaultValue::Int(200)),
        interval: Option<Duration> = optional(SettingType::Duration, DefaultValue::None),
    }
}

crate::settings! {
    /// `collect activity { … }`: active session history.
    pub struct ActivitySettings {
        every: Duration = optional(SettingType::Duration, DefaultValue::Duration(SEC)),
        window: Duration = optional(SettingType::Duration, DefaultValue::Duration(60 * SEC)),
        /// Sessions also leave as `db.server.query_sample` events (New
        /// Relic's Database 360 sessions and blocking pages).
        samples_as_logs: bool = optional(SettingType::Bool, DefaultValue::Bool(false)),
        /// One sample in this many leaves as events (the others only feed
        /// Average Active Sessions).
        samples_every: Duration = optional(SettingType::Duration, DefaultValue::Duration(10 * SEC)),
        /// Sessions a sample reads at most (lock waiters first); the
        /// active ones beyond count in Average Active Sessions as `other`.
        max_sessions: i64 = optional(SettingType::Int { min: 1, max: 100_000 }, DefaultValue::Int(1000)),
    }
}

crate::settings! {
    /// `collect plans { … }`: generic plans of the top statements (off
    /// unless collected); never ANALYZE, never executing the statement.
    pub struct PlansSettings {
        top: i64 = optional(SettingType::Int { min: 1, max: 10_000 }, DefaultValue::Int(10)),
        per_scrape: i64 = optional(SettingType::Int { min: 1, max: 1_000 }, DefaultValue::Int(5)),
        every: Duration = optional(SettingType::Duration, DefaultValue::Duration(3600 * SEC)),
        cache_ttl: Duration = optional(SettingType::Duration, DefaultValue::Duration(24 * 3600 * SEC)),
        interval: Option<Duration> = optional(SettingType::Duration, DefaultValue::Duration(300 * SEC)),
        /// PostgreSQL: a `SECURITY DEFINER` function (`[schema.]name`,
        /// taking the statement's text, returning its generic plan as
        /// JSON, as New Relic documents it) for statements the role may
        /// not plan itself (writes, `FOR UPDATE`, tables it cannot read).
        /// `dbintel doctor
        /// --print-setup-sql` prints it; "" never calls one. Used only
        /// where it exists and the role may execute it.
        explain_function_name: String = optional(SettingType::String, DefaultValue::String("otel.explain_statement")),
        /// `top_query`: each plan rides on its statement's top-query
        /// events (New Relic's default); `event`: a `db.server.query_plan`
        /// event of its own.
        emit: PlanPlacement = optional(SettingType::Word(PlanPlacement::WORDS), DefaultValue::Word("top_query")),
    }
}

crate::settings! {
    /// MySQL's `collect instance { … }`: server health (global status,
    /// buffer pool, replica status).
    pub struct InstanceSettings {
        interval: Option<Duration> = optional(SettingType::Duration, DefaultValue::None),
    }
}

crate::settings! {
    /// PostgreSQL's `collect instance { … }`: the server-wide views.
    pub struct PgInstanceSettings {
        interval: Option<Duration> = optional(SettingType::Duration, DefaultValue::None),
        /// Database sizes walk every file of a database: read this often.
        sizes_every: Duration = optional(SettingType::Duration, DefaultValue::Duration(300 * SEC)),
    }
}

crate::settings! {
    /// PostgreSQL's `collect tables { … }`: per-table, per-index and
    /// per-function statistics, read in each database.
    pub struct PgTablesSettings {
        interval: Option<Duration> = optional(SettingType::Duration, DefaultValue::Duration(300 * SEC)),
        /// Globs of the databases to read (none: every one the role may
        /// connect to), and of those to leave out.
        databases: Vec<String> = optional(SettingType::StringList, DefaultValue::None),
        exclude_databases: Vec<String> = optional(SettingType::StringList, DefaultValue::None),
        /// Globs on `schema.table`.
        tables: Vec<String> = optional(SettingType::StringList, DefaultValue::None),
        exclude_tables: Vec<String> = optional(SettingType::StringList, DefaultValue::None),
        /// Per database: the top tables by size, with the top by activity.
        top: i64 = optional(SettingType::Int { min: 1, max: 100_000 }, DefaultValue::Int(200)),
        /// Across all databases, hard caps.
        max_tables: i64 = optional(SettingType::Int { min: 1, max: 1_000_000 }, DefaultValue::Int(1000)),
        max_indexes: i64 = optional(SettingType::Int { min: 1, max: 1_000_000 }, DefaultValue::Int(2000)),
        /// Connections open at a time across the databases.
        pool: i64 = optional(SettingType::Int { min: 1, max: 16 }, DefaultValue::Int(2)),
    }
}

crate::settings! {
    /// MySQL's `collect tables { … }`: per-table and per-index I/O waits
    /// and table sizes.
    pub struct MyTablesSettings {
        interval: Option<Duration> = optional(SettingType::Duration, DefaultValue::Duration(300 * SEC)),
        /// Globs of the schemas to read, and of those to leave out.
        databases: Vec<String> = optional(SettingType::StringList, DefaultValue::None),
        exclude_databases: Vec<String> = optional(SettingType::StringList, DefaultValue::None),
        /// Globs on `schema.table`.
        tables: Vec<String> = optional(SettingType::StringList, DefaultValue::None),
        exclude_tables: Vec<String> = optional(SettingType::StringList, DefaultValue::None),
        top: i64 = optional(SettingType::Int { min: 1, max: 100_000 }, DefaultValue::Int(200)),
        max_tables: i64 = optional(SettingType::Int { min: 1, max: 1_000_000 }, DefaultValue::Int(1000)),
        max_indexes: i64 = optional(SettingType::Int { min: 1, max: 1_000_000 }, DefaultValue::Int(2000)),
    }
}

crate::words! {
    /// What a `sql` collector's rows become.
    pub enum SqlKind {
        Gauge = "gauge",
        Sum = "sum",
        Log = "log",
    } default Gauge
}

crate::settings! {
    /// One query of a `sql` source.
    pub struct SqlQuerySettings {
        query: String = required(SettingType::String),
        interval: Option<Duration> = optional(SettingType::Duration, DefaultValue::None),
        kind: SqlKind = optional(SettingType::Word(SqlKind::WORDS), DefaultValue::Word("gauge")),
        metric: Option<String> = optional(SettingType::String, DefaultValue::None),
        value_column: Option<String> = optional(SettingType::String, DefaultValue::None),
        attribute_columns: Option<Vec<String>> = optional(SettingType::StringList, DefaultValue::None),
        body_column: Option<String> = optional(SettingType::String, DefaultValue::None),
        unit: Option<String> = optional(SettingType::String, DefaultValue::None),
        monotonic: bool = optional(SettingType::Bool, DefaultValue::Bool(false)),
        tracking_column: Option<String> = optional(SettingType::String, DefaultValue::None),
    }
}

const STATEMENTS: CollectorSpec = CollectorSpec { name: "statements", settings: StatementsSettings::SPECS, signals: Signals::BOTH };
const ACTIVITY: CollectorSpec = CollectorSpec { name: "activity", settings: ActivitySettings::SPECS, signals: Signals::BOTH };
const PLANS: CollectorSpec = CollectorSpec { name: "plans", settings: PlansSettings::SPECS, signals: Signals::LOGS };
const MY_INSTANCE: CollectorSpec = CollectorSpec { name: "instance", settings: InstanceSettings::SPECS, signals: Signals::METRICS };
const PG_INSTANCE: CollectorSpec = CollectorSpec { name: "instance", settings: PgInstanceSettings::SPECS, signals: Signals::METRICS };
const PG_TABLES: CollectorSpec = CollectorSpec { name: "tables", settings: PgTablesSettings::SPECS, signals: Signals::METRICS };
const MY_TABLES: CollectorSpec = CollectorSpec { name: "tables", settings: MyTablesSettings::SPECS, signals: Signals::METRICS };
const SQL_QUERY: CollectorSpec = CollectorSpec { name: "<query>", settings: SqlQuerySettings::SPECS, signals: Signals::BOTH };

pub const SOURCE_KINDS: &[SourceKindSpec] = &[
    SourceKindSpec {
        name: "postgres",
        settings: DbSettings::SPECS,
        collectors: &[STATEMENTS, ACTIVITY, PG_INSTANCE, PG_TABLES, PLANS],
        open_collectors: None,
        server_kind: None,
    },
    SourceKindSpec {
        name: "mysql",
        settings: DbSettings::SPECS,
        collectors: &[STATEMENTS, ACTIVITY, MY_INSTANCE, MY_TABLES, PLANS],
        open_collectors: None,
        server_kind: None,
    },
    SourceKindSpec { name: "sql", settings: DbSettings::SPECS, collectors: &[], open_collectors: Some(SQL_QUERY), server_kind: None },
    SourceKindSpec {
        name: "postgres_logs",
        settings: &PG_LOG_SPECS,
        collectors: &[LOG_PLANS, LOG_ERRORS, LOG_LOCKS, LOG_TEMP_FILES, LOG_AUTOVACUUM, LOG_CHECKPOINTS, LOG_CONNECTIONS],
        open_collectors: None,
        server_kind: Some("postgres"),
    },
    SourceKindSpec {
        name: "mysql_logs",
        settings: LogSourceSettings::SPECS,
        collectors: &[LOG_SLOW_QUERIES, LOG_MY_ERRORS],
        open_collectors: None,
        server_kind: Some("mysql"),
    },
];

// ---- log sources (engine/logs) ----

crate::words! {
    /// How PostgreSQL writes its log (`log_destination`): `jsonlog` (15+),
    /// `csvlog`, or `stderr` with the server's `log_line_prefix`.
    pub enum PgLogFormat {
        Jsonlog = "jsonlog",
        Csvlog = "csvlog",
        Stderr = "stderr",
    } default Jsonlog
}

crate::words! {
    /// Where a log source starts in the files it finds on its very first
    /// start (no checkpoint yet). Files that appear later are read whole.
    pub enum StartAt {
        End = "end",
        Beginning = "beginning",
    } default End
}

crate::settings! {
    /// Settings every log source (`postgres_logs`, `mysql_logs`) shares.
    pub struct LogSourceSettings {
        /// The database source (a `postgres` or `mysql` node) whose server
        /// writes these logs: its records carry that server's resource.
        server: Option<String> = required(SettingType::NodeName),
        /// When that source has several targets: the one whose server this is.
        target: Option<String> = optional(SettingType::String, DefaultValue::None),
        start_at: StartAt = optional(SettingType::Word(StartAt::WORDS), DefaultValue::Word("end")),
        /// Where read offsets are checkpointed, so a restart neither loses
        /// nor repeats lines (one file per source).
        state_directory: String = optional(SettingType::String, DefaultValue::String("/var/lib/dbintel/logs")),
        /// How often the files are looked at.
        poll: Duration = optional(SettingType::Duration, DefaultValue::Duration(SEC)),
        /// The window of the count metrics (errors, deadlocks, …).
        interval: Duration = optional(SettingType::Duration, DefaultValue::Duration(60 * SEC)),
        /// A longer line is cut there (and counted).
        max_line: u64 = optional(SettingType::Size, DefaultValue::Size(MIB)),
        /// A missing or unreadable directory or file is looked for again
        /// this often.
        retry: Duration = optional(SettingType::Duration, DefaultValue::Duration(10 * SEC)),
    }
}

crate::settings! {
    /// What only `postgres_logs` takes: where the logging collector writes.
    pub struct PgLogSettings {
        /// `log_directory` as the server sees it from here (a shared volume).
        directory: crate::typed::TextSetting = required(SettingType::Text),
        format: PgLogFormat = optional(SettingType::Word(PgLogFormat::WORDS), DefaultValue::Word("jsonlog")),
        /// Globs of file names in `directory` (none: `*.json`, `*.csv` or
        /// `*.log` by format).
        files: Vec<String> = optional(SettingType::StringList, DefaultValue::None),
        /// `stderr` only: the server's `log_line_prefix`, as set there.
        log_line_prefix: String = optional(SettingType::String, DefaultValue::String("%m [%p] ")),
    }
}

crate::settings! {
    /// `collect errors { file = … }` of `mysql_logs`: the error log
    /// (`log_error`) the collector follows (`mysql_logs` takes no
    /// settings of its own: its files are its collectors').
    pub struct LogFileSettings {
        file: crate::typed::TextSetting = required(SettingType::Text),
    }
}

crate::settings! {
    /// `collect slow_queries { … }`: per-statement statistics of the slow
    /// log, the `top` statements by time per interval.
    pub struct SlowQueriesSettings {
        file: crate::typed::TextSetting = required(SettingType::Text),
        top: i64 = optional(SettingType::Int { min: 1, max: 10_000 }, DefaultValue::Int(200)),
    }
}

crate::settings! {
    /// `collect errors { … }` of `postgres_logs`.
    pub struct PgLogErrorsSettings {
        /// The least severe entry counted and sampled.
        min_severity: LogSeverity = optional(SettingType::Word(LogSeverity::WORDS), DefaultValue::Word("warning")),
    }
}

crate::words! {
    /// PostgreSQL's message severities that count as errors or warnings.
    pub enum LogSeverity {
        Warning = "warning",
        Error = "error",
        Fatal = "fatal",
        Panic = "panic",
    } default Warning
}

/// Two spec lists as one (a log kind's settings are the shared ones plus
/// its own).
const fn concat<const N: usize>(a: &[SettingSpec], b: &[SettingSpec]) -> [SettingSpec; N] {
    let mut out = [optional(SettingType::Bool, DefaultValue::None); N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    while i - a.len() < b.len() {
        out[i] = b[i - a.len()];
        i += 1;
    }
    out
}

pub const PG_LOG_SPECS: [SettingSpec; LogSourceSettings::SPECS.len() + PgLogSettings::SPECS.len()] =
    concat(LogSourceSettings::SPECS, PgLogSettings::SPECS);

crate::settings! {
    /// `collect plans { … }` of `postgres_logs`: auto_explain's actual plans.
    pub struct LogPlansSettings {
        /// `event` (here the default: a log source may have no statements
        /// to ride on): `db.server.query_plan` events; `top_query`: on the
        /// linked source's top-query events (it must collect statements).
        emit: PlanPlacement = optional(SettingType::Word(PlanPlacement::WORDS), DefaultValue::Word("event")),
    }
}

const LOG_PLANS: CollectorSpec = CollectorSpec { name: "plans", settings: LogPlansSettings::SPECS, signals: Signals::LOGS };
const LOG_ERRORS: CollectorSpec = CollectorSpec { name: "errors", settings: PgLogErrorsSettings::SPECS, signals: Signals::BOTH };
const LOG_LOCKS: CollectorSpec = CollectorSpec { name: "locks", settings: &[], signals: Signals::BOTH };
const LOG_TEMP_FILES: CollectorSpec = CollectorSpec { name: "temp_files", settings: &[], signals: Signals::BOTH };
const LOG_AUTOVACUUM: CollectorSpec = CollectorSpec { name: "autovacuum", settings: &[], signals: Signals::BOTH };
const LOG_CHECKPOINTS: CollectorSpec = CollectorSpec { name: "checkpoints", settings: &[], signals: Signals::BOTH };
const LOG_CONNECTIONS: CollectorSpec = CollectorSpec { name: "connections", settings: &[], signals: Signals::BOTH };
const LOG_SLOW_QUERIES: CollectorSpec =
    CollectorSpec { name: "slow_queries", settings: SlowQueriesSettings::SPECS, signals: Signals::BOTH };
const LOG_MY_ERRORS: CollectorSpec = CollectorSpec { name: "errors", settings: LogFileSettings::SPECS, signals: Signals::BOTH };

crate::words! {
    pub enum OtlpProtocol {
        Grpc = "grpc",
        Http = "http",
    } default Grpc
}

crate::words! {
    pub enum CompressionWord {
        Gzip = "gzip",
        Zstd = "zstd",
        None = "none",
    } default Gzip
}

crate::words! {
    pub enum TemporalityWord {
        Delta = "delta",
        Cumulative = "cumulative",
    } default Delta
}

crate::words! {
    /// What a full export queue does with a new request.
    pub enum OnFullWord {
        Block = "block",
        DropOldest = "drop_oldest",
    } default Block
}

crate::words! {
    pub enum Region {
        Us = "us",
        Eu = "eu",
    } default Us
}

crate::words! {
    pub enum StdoutFormat {
        OtlpJson = "otlp-json",
        Pretty = "pretty",
        Table = "table",
    } default OtlpJson
}

crate::settings! {
    /// `sink NAME = otlp { … }`. What is unset comes from the
    /// `OTEL_EXPORTER_OTLP_*` environment, then defaults.
    pub struct OtlpSinkSettings {
        endpoint: Option<String> = optional(SettingType::String, DefaultValue::None),
        protocol: Option<OtlpProtocol> = optional(SettingType::Word(OtlpProtocol::WORDS), DefaultValue::None),
        headers: IndexMap<String, Value> = optional(SettingType::Headers, DefaultValue::None),
        compression: Option<CompressionWord> = optional(SettingType::Word(CompressionWord::WORDS), DefaultValue::None),
        timeout: Duration = optional(SettingType::Duration, DefaultValue::Duration(10 * SEC)),
        insecure: bool = optional(SettingType::Bool, DefaultValue::Bool(false)),
        ca_file: Option<String> = optional(SettingType::String, DefaultValue::None),
        client_cert: Option<String> = optional(SettingType::String, DefaultValue::None),
        client_key: Option<SecretRef> = optional(SettingType::Secret, DefaultValue::None),
        temporality: TemporalityWord = optional(SettingType::Word(TemporalityWord::WORDS), DefaultValue::Word("delta")),
        queue: QueueSetting = optional(SettingType::Queue, DefaultValue::Word("memory")),
        queue_size: u64 = optional(SettingType::Size, DefaultValue::Size(64 * MIB)),
        on_full: OnFullWord = optional(SettingType::Word(OnFullWord::WORDS), DefaultValue::Word("block")),
        retry_initial: Duration = optional(SettingType::Duration, DefaultValue::Duration(5 * SEC)),
        retry_max: Duration = optional(SettingType::Duration, DefaultValue::Duration(30 * SEC)),
        retry_elapsed: Duration = optional(SettingType::Duration, DefaultValue::Duration(300 * SEC)),
        resource: IndexMap<String, Value> = optional(SettingType::StringMap, DefaultValue::None),
        /// How long a request waits for more resources (from any pipeline
        /// feeding the sink) before it leaves; 1ms: no waiting, each batch
        /// leaves as it comes
        linger: Duration = optional(SettingType::Duration, DefaultValue::Duration(200 * MS)),
    }
}

crate::settings! {
    /// `sink NAME = newrelic { … }`: the OTLP sink preset for New Relic.
    pub struct NewRelicSinkSettings {
        license_key: Option<SecretRef> = required(SettingType::Secret),
        region: Region = optional(SettingType::Word(Region::WORDS), DefaultValue::Word("us")),
        /// unset: OTEL_EXPORTER_OTLP_ENDPOINT, else the region's endpoint
        /// (a FedRAMP or proxy endpoint goes here)
        endpoint: Option<String> = optional(SettingType::String, DefaultValue::None),
        /// unset: OTEL_EXPORTER_OTLP_PROTOCOL, else http (New Relic's
        /// recommendation), or grpc for an endpoint on port 4317
        protocol: Option<OtlpProtocol> = optional(SettingType::Word(OtlpProtocol::WORDS), DefaultValue::None),
        /// unset: OTEL_EXPORTER_OTLP_COMPRESSION, else zstd
        compression: Option<CompressionWord> = optional(SettingType::Word(CompressionWord::WORDS), DefaultValue::None),
        timeout: Duration = optional(SettingType::Duration, DefaultValue::Duration(10 * SEC)),
        temporality: TemporalityWord = optional(SettingType::Word(TemporalityWord::WORDS), DefaultValue::Word("delta")),
        queue: QueueSetting = optional(SettingType::Queue, DefaultValue::Word("memory")),
        queue_size: u64 = optional(SettingType::Size, DefaultValue::Size(64 * MIB)),
        on_full: OnFullWord = optional(SettingType::Word(OnFullWord::WORDS), DefaultValue::Word("block")),
        retry_initial: Duration = optional(SettingType::Duration, DefaultValue::Duration(5 * SEC)),
        retry_max: Duration = optional(SettingType::Duration, DefaultValue::Duration(30 * SEC)),
        retry_elapsed: Duration = optional(SettingType::Duration, DefaultValue::Duration(300 * SEC)),
        resource: IndexMap<String, Value> = optional(SettingType::StringMap, DefaultValue::None),
        /// How long a request waits for more resources (from any pipeline
        /// feeding the sink) before it leaves; 1ms: no waiting, each batch
        /// leaves as it comes
        linger: Duration = optional(SettingType::Duration, DefaultValue::Duration(200 * MS)),
    }
}

crate::settings! {
    /// `sink NAME = stdout { … }`.
    pub struct StdoutSinkSettings {
        format: StdoutFormat = optional(SettingType::Word(StdoutFormat::WORDS), DefaultValue::Word("otlp-json")),
    }
}

crate::settings! {
    /// `sink NAME = file { … }`: OTLP/JSON lines.
    pub struct FileSinkSettings {
        path: String = required(SettingType::String),
    }
}

pub const SINK_KINDS: &[SinkKindSpec] = &[
    SinkKindSpec { name: "otlp", settings: OtlpSinkSettings::SPECS },
    SinkKindSpec { name: "newrelic", settings: NewRelicSinkSettings::SPECS },
    SinkKindSpec { name: "stdout", settings: StdoutSinkSettings::SPECS },
    SinkKindSpec { name: "file", settings: FileSinkSettings::SPECS },
];

pub const TRANSFORM_SETTINGS: &[SettingSpec] = &[
    opt("error_mode", SettingType::Word(&["ignore", "silent", "propagate"]), DefaultValue::Word("propagate")),
    opt("context", SettingType::Word(&["log", "datapoint", "any"]), DefaultValue::None),
];

crate::settings! {
    /// `sample NAME { … }` besides its rules.
    pub struct SampleSettings {
        /// local, or redis("redis://host:6379") to share budgets and dedup
        /// windows between replicas (rediss:// for TLS; credentials as
        /// username = env("…"), password = env("…") or file("…"))
        state: Option<RedisState> = optional(SettingType::SamplerState, DefaultValue::Word("local")),
        /// the target: the keep rate of records no rule decided adapts to hold it
        max_records_per_second: Option<i64> = optional(SettingType::Int { min: 1, max: 100_000_000 }, DefaultValue::None),
        dedup_max_keys: i64 = optional(SettingType::Int { min: 1, max: 10_000_000 }, DefaultValue::Int(100_000)),
    }
}
pub const SAMPLE_SETTINGS: &[SettingSpec] = SampleSettings::SPECS;

crate::settings! {
    /// `batch { … }`.
    pub struct BatchSettings {
        size: i64 = optional(SettingType::Int { min: 1, max: 1_000_000 }, DefaultValue::Int(8192)),
        timeout: Duration = optional(SettingType::Duration, DefaultValue::Duration(200 * MS)),
        max_bytes: u64 = optional(SettingType::Size, DefaultValue::Size(MIB)),
    }
}
pub const BATCH_SETTINGS: &[SettingSpec] = BatchSettings::SPECS;

crate::settings! {
    /// `memory_limit { … }`.
    pub struct MemoryLimitSettings {
        limit: u64 = optional(SettingType::Size, DefaultValue::Size(256 * MIB)),
        soft_limit: f64 = optional(SettingType::Percent, DefaultValue::Percent(80.0)),
        /// The process's resident memory above which new batches are
        /// dropped (none: twice `limit`). RSS holds the whole process,
        /// not only the batches in flight `limit` counts.
        rss_limit: Option<u64> = optional(SettingType::Size, DefaultValue::None),
        check_interval: Duration = optional(SettingType::Duration, DefaultValue::Duration(SEC)),
    }
}
pub const MEMORY_LIMIT_SETTINGS: &[SettingSpec] = MemoryLimitSettings::SPECS;

crate::words! {
    /// How replicas share the sources.
    pub enum ClusterMode {
        None = "none",
        Leader = "leader",
        Sharded = "sharded",
    } default None
}

crate::settings! {
    /// `cluster { ... }`: how replicas share the sources (Kubernetes Leases).
    pub struct ClusterSettings {
        mode: ClusterMode = optional(SettingType::Word(ClusterMode::WORDS), DefaultValue::Word("none")),
        lease: String = optional(SettingType::String, DefaultValue::String("dbintel")),
        /// unset: POD_NAMESPACE, else the service account's namespace
        namespace: Option<String> = optional(SettingType::String, DefaultValue::None),
        duration: Duration = optional(SettingType::Duration, DefaultValue::Duration(15 * SEC)),
        renew: Duration = optional(SettingType::Duration, DefaultValue::Duration(10 * SEC)),
        retry: Duration = optional(SettingType::Duration, DefaultValue::Duration(2 * SEC)),
    }
}
pub const CLUSTER_SETTINGS: &[SettingSpec] = ClusterSettings::SPECS;

pub fn source_kind(name: &str) -> Option<&'static SourceKindSpec> {
    SOURCE_KINDS.iter().find(|k| k.name == name)
}

pub fn sink_kind(name: &str) -> Option<&'static SinkKindSpec> {
    SINK_KINDS.iter().find(|k| k.name == name)
}

impl DbSettings {
    /// The comment tag keys to read (see `allowed_comment_keys`).
    pub fn comment_keys(&self) -> Vec<String> {
        self.allowed_comment_keys.clone().unwrap_or_else(|| vec!["nr_service_guid".to_string()])
    }
}

impl SourceKindSpec {
    pub fn collector(&self, name: &str) -> Option<CollectorSpec> {
        self.collectors.iter().find(|c| c.name == name).copied().or(self.open_collectors)
    }
}
