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
        /// `semconv`: New Relic's collector's UUIDv5 of the endpoint (the
        /// same entity whichever collector sends); `endpoint`: the DSN's
        /// `host:port`, as dbintel made it before (keeps existing entities).
        /// Keys of a statement's leading comment tags sent as
        /// `db.query.comment_tags` (APM agents write `nr_service_guid`
        /// there); none: `["nr_service_guid"]`, `[]`: no tags.
        allowed_comment_keys: Option<Vec<String>> = optional(SettingType::StringList, DefaultValue::None),
        service_instance_id: ServiceInstanceId = optional(SettingType::Word(ServiceInstanceId::WORDS), DefaultValue::Word("semconv")),
        sslmode: SslMode = optional(SettingType::Word(SslMode::WORDS), DefaultValue::Word("prefer")),
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
    },
    SourceKindSpec {
        name: "mysql",
        settings: DbSettings::SPECS,
        collectors: &[STATEMENTS, ACTIVITY, MY_INSTANCE, MY_TABLES, PLANS],
        open_collectors: None,
    },
    SourceKindSpec { name: "sql", settings: DbSettings::SPECS, collectors: &[], open_collectors: Some(SQL_QUERY) },
];

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
