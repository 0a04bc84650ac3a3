//! What each kind of node accepts: its settings, their types and defaults,
//! its collectors, and which signals flow out of it.
//!
//! The checker validates blocks against these tables and the plan fills in
//! defaults from them, so the engine always sees complete, typed settings.

use crate::plan::Signals;

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

const fn req(name: &'static str, ty: SettingType) -> SettingSpec {
    SettingSpec { name, ty, required: true, default: DefaultValue::None }
}
const fn opt(name: &'static str, ty: SettingType, default: DefaultValue) -> SettingSpec {
    SettingSpec { name, ty, required: false, default }
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

const SSLMODES: &[&str] = &["disable", "prefer", "require", "verify-ca", "verify-full"];

/// Settings every database source shares.
macro_rules! db_settings {
    ($($extra:expr),* $(,)?) => {
        &[
            req("dsn", SettingType::Secret),
            opt("interval", SettingType::Duration, DefaultValue::Duration(30 * SEC)),
            opt("timeout", SettingType::Duration, DefaultValue::Duration(3 * SEC)),
            opt("connect_timeout", SettingType::Duration, DefaultValue::Duration(5 * SEC)),
            opt("pool", SettingType::Int { min: 1, max: 16 }, DefaultValue::Int(2)),
            opt("allow_privileged", SettingType::Bool, DefaultValue::Bool(false)),
            opt("sslmode", SettingType::Word(SSLMODES), DefaultValue::Word("prefer")),
            opt("sslrootcert", SettingType::String, DefaultValue::None),
            opt("jitter", SettingType::Percent, DefaultValue::Percent(10.0)),
            // circuit breaker (see engine/src/sources/breaker.rs)
            opt("breaker_failures", SettingType::Int { min: 1, max: 1000 }, DefaultValue::Int(5)),
            opt("breaker_successes", SettingType::Int { min: 1, max: 100 }, DefaultValue::Int(2)),
            opt("breaker_cooldown", SettingType::Duration, DefaultValue::Duration(30 * SEC)),
            opt("breaker_max_cooldown", SettingType::Duration, DefaultValue::Duration(600 * SEC)),
            opt("breaker_max_active_sessions", SettingType::Int { min: 1, max: 1_000_000 }, DefaultValue::None),
            opt("breaker_max_replication_lag", SettingType::Duration, DefaultValue::None),
            opt("breaker_max_probe_time", SettingType::Duration, DefaultValue::None),
            $($extra),*
        ]
    };
}

const STATEMENTS: CollectorSpec = CollectorSpec {
    name: "statements",
    settings: &[
        opt("top", SettingType::Int { min: 1, max: 10_000 }, DefaultValue::Int(200)),
        opt("interval", SettingType::Duration, DefaultValue::None),
        opt("max_text_length", SettingType::Int { min: 64, max: 1_048_576 }, DefaultValue::Int(4095)),
    ],
    signals: Signals::BOTH,
};

const ACTIVITY: CollectorSpec = CollectorSpec {
    name: "activity",
    settings: &[
        opt("every", SettingType::Duration, DefaultValue::Duration(SEC)),
        opt("window", SettingType::Duration, DefaultValue::Duration(60 * SEC)),
        opt("samples_as_logs", SettingType::Bool, DefaultValue::Bool(false)),
    ],
    signals: Signals::BOTH,
};

/// Generic plans of the top statements (off unless collected): never
/// ANALYZE, never executing the statement.
const PLANS: CollectorSpec = CollectorSpec {
    name: "plans",
    settings: &[
        opt("top", SettingType::Int { min: 1, max: 10_000 }, DefaultValue::Int(10)),
        opt("per_scrape", SettingType::Int { min: 1, max: 1_000 }, DefaultValue::Int(5)),
        opt("every", SettingType::Duration, DefaultValue::Duration(3600 * SEC)),
        opt("cache_ttl", SettingType::Duration, DefaultValue::Duration(24 * 3600 * SEC)),
        opt("interval", SettingType::Duration, DefaultValue::Duration(300 * SEC)),
    ],
    signals: Signals::LOGS,
};

const INSTANCE: CollectorSpec =
    CollectorSpec { name: "instance", settings: &[opt("interval", SettingType::Duration, DefaultValue::None)], signals: Signals::METRICS };

const SQL_QUERY: CollectorSpec = CollectorSpec {
    name: "<query>",
    settings: &[
        req("query", SettingType::String),
        opt("interval", SettingType::Duration, DefaultValue::None),
        opt("kind", SettingType::Word(&["gauge", "sum", "log"]), DefaultValue::Word("gauge")),
        opt("metric", SettingType::String, DefaultValue::None),
        opt("value_column", SettingType::String, DefaultValue::None),
        opt("attribute_columns", SettingType::StringList, DefaultValue::None),
        opt("body_column", SettingType::String, DefaultValue::None),
        opt("unit", SettingType::String, DefaultValue::None),
        opt("monotonic", SettingType::Bool, DefaultValue::Bool(false)),
        opt("tracking_column", SettingType::String, DefaultValue::None),
    ],
    signals: Signals::BOTH,
};

pub const SOURCE_KINDS: &[SourceKindSpec] = &[
    SourceKindSpec {
        name: "postgres",
        settings: db_settings![],
        collectors: &[STATEMENTS, ACTIVITY, INSTANCE, PLANS],
        open_collectors: None,
    },
    SourceKindSpec { name: "mysql", settings: db_settings![], collectors: &[STATEMENTS, ACTIVITY, INSTANCE, PLANS], open_collectors: None },
    SourceKindSpec { name: "sql", settings: db_settings![], collectors: &[], open_collectors: Some(SQL_QUERY) },
];

const COMPRESSION: &[&str] = &["gzip", "zstd", "none"];

pub const SINK_KINDS: &[SinkKindSpec] = &[
    SinkKindSpec {
        name: "otlp",
        settings: &[
            opt("endpoint", SettingType::String, DefaultValue::None),
            opt("protocol", SettingType::Word(&["grpc", "http"]), DefaultValue::None),
            opt("headers", SettingType::Headers, DefaultValue::None),
            opt("compression", SettingType::Word(COMPRESSION), DefaultValue::None),
            opt("timeout", SettingType::Duration, DefaultValue::Duration(10 * SEC)),
            opt("insecure", SettingType::Bool, DefaultValue::Bool(false)),
            opt("ca_file", SettingType::String, DefaultValue::None),
            opt("client_cert", SettingType::String, DefaultValue::None),
            opt("client_key", SettingType::Secret, DefaultValue::None),
            opt("temporality", SettingType::Word(&["delta", "cumulative"]), DefaultValue::Word("delta")),
            opt("queue", SettingType::Queue, DefaultValue::Word("memory")),
            opt("queue_size", SettingType::Size, DefaultValue::Size(64 * MIB)),
            opt("on_full", SettingType::Word(&["block", "drop_oldest"]), DefaultValue::Word("block")),
            opt("retry_initial", SettingType::Duration, DefaultValue::Duration(5 * SEC)),
            opt("retry_max", SettingType::Duration, DefaultValue::Duration(30 * SEC)),
            opt("retry_elapsed", SettingType::Duration, DefaultValue::Duration(300 * SEC)),
            opt("resource", SettingType::StringMap, DefaultValue::None),
        ],
    },
    SinkKindSpec {
        name: "newrelic",
        settings: &[
            req("license_key", SettingType::Secret),
            opt("region", SettingType::Word(&["us", "eu"]), DefaultValue::Word("us")),
            // unset: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc
            opt("protocol", SettingType::Word(&["grpc", "http"]), DefaultValue::None),
            // unset: OTEL_EXPORTER_OTLP_COMPRESSION, else zstd
            opt("compression", SettingType::Word(COMPRESSION), DefaultValue::None),
            opt("timeout", SettingType::Duration, DefaultValue::Duration(10 * SEC)),
            opt("temporality", SettingType::Word(&["delta", "cumulative"]), DefaultValue::Word("delta")),
            opt("queue", SettingType::Queue, DefaultValue::Word("memory")),
            opt("queue_size", SettingType::Size, DefaultValue::Size(64 * MIB)),
            opt("on_full", SettingType::Word(&["block", "drop_oldest"]), DefaultValue::Word("block")),
            opt("retry_initial", SettingType::Duration, DefaultValue::Duration(5 * SEC)),
            opt("retry_max", SettingType::Duration, DefaultValue::Duration(30 * SEC)),
            opt("retry_elapsed", SettingType::Duration, DefaultValue::Duration(300 * SEC)),
            opt("resource", SettingType::StringMap, DefaultValue::None),
        ],
    },
    SinkKindSpec {
        name: "stdout",
        settings: &[opt("format", SettingType::Word(&["otlp-json", "pretty"]), DefaultValue::Word("otlp-json"))],
    },
    SinkKindSpec { name: "file", settings: &[req("path", SettingType::String)] },
];

pub const TRANSFORM_SETTINGS: &[SettingSpec] = &[
    opt("error_mode", SettingType::Word(&["ignore", "silent", "propagate"]), DefaultValue::Word("propagate")),
    opt("context", SettingType::Word(&["log", "datapoint", "any"]), DefaultValue::None),
];

pub const SAMPLE_SETTINGS: &[SettingSpec] = &[
    // local, or redis("redis://host:6379") to share budgets and dedup
    // windows between replicas (rediss:// for TLS; credentials as
    // username = env("…"), password = env("…") or file("…"))
    opt("state", SettingType::SamplerState, DefaultValue::Word("local")),
    // the target: the keep rate of records no rule decided adapts to hold it
    opt("max_records_per_second", SettingType::Int { min: 1, max: 100_000_000 }, DefaultValue::None),
    opt("dedup_max_keys", SettingType::Int { min: 1, max: 10_000_000 }, DefaultValue::Int(100_000)),
];

pub const BATCH_SETTINGS: &[SettingSpec] = &[
    opt("size", SettingType::Int { min: 1, max: 1_000_000 }, DefaultValue::Int(8192)),
    opt("timeout", SettingType::Duration, DefaultValue::Duration(200 * MS)),
    opt("max_bytes", SettingType::Size, DefaultValue::Size(MIB)),
];

pub const MEMORY_LIMIT_SETTINGS: &[SettingSpec] = &[
    opt("limit", SettingType::Size, DefaultValue::Size(256 * MIB)),
    opt("soft_limit", SettingType::Percent, DefaultValue::Percent(80.0)),
    opt("check_interval", SettingType::Duration, DefaultValue::Duration(SEC)),
];

/// `cluster { ... }`: how replicas share the sources (Kubernetes Leases).
pub const CLUSTER_SETTINGS: &[SettingSpec] = &[
    opt("mode", SettingType::Word(&["none", "leader", "sharded"]), DefaultValue::Word("none")),
    opt("lease", SettingType::String, DefaultValue::String("dbintel")),
    // unset: POD_NAMESPACE, else the service account's namespace
    opt("namespace", SettingType::String, DefaultValue::None),
    opt("duration", SettingType::Duration, DefaultValue::Duration(15 * SEC)),
    opt("renew", SettingType::Duration, DefaultValue::Duration(10 * SEC)),
    opt("retry", SettingType::Duration, DefaultValue::Duration(2 * SEC)),
];

pub fn source_kind(name: &str) -> Option<&'static SourceKindSpec> {
    SOURCE_KINDS.iter().find(|k| k.name == name)
}

pub fn sink_kind(name: &str) -> Option<&'static SinkKindSpec> {
    SINK_KINDS.iter().find(|k| k.name == name)
}

impl SourceKindSpec {
    pub fn collector(&self, name: &str) -> Option<CollectorSpec> {
        self.collectors.iter().find(|c| c.name == name).copied().or(self.open_collectors)
    }
}
