//! Sources: where records come from. One file per source.
//!
//! - [`rows`]: database rows (JSON-shaped), and how a generic `sql`
//!   collector maps them to records.
//! - [`statement_deltas`]: pg_stat_statements / performance_schema digests
//!   as per-interval deltas.
//! - [`replay`]: recorded rows from NDJSON in place of a database
//!   (`dry-run --input`).
//! - [`live`], [`postgres`]: real databases: safe sessions, the role check,
//!   scraping on an interval.
//! - [`secret`]: DSNs and keys that never print.

pub mod activity;
pub mod breaker;
pub mod live;
pub mod mysql;
pub mod plans;
pub mod postgres;
pub mod replay;
pub mod rows;
pub mod statement_deltas;

pub use dbintel_core::secret;

/// What every database source reads from its settings before it connects.
pub struct ConnectSettings {
    pub secret: secret::Secret,
    /// Per query: the server-side limit, and (plus a margin) the client's.
    pub timeout: std::time::Duration,
    pub connect_timeout: std::time::Duration,
    pub pool: u32,
}

impl ConnectSettings {
    pub fn read(name: &str, settings: &dbintel_dsl::plan::Settings) -> Result<ConnectSettings, SourceError> {
        let reference = settings.secret("dsn").ok_or_else(|| setup_error(name, "no dsn".into()))?;
        let secret = secret::Secret::resolve(reference).map_err(|e| setup_error(name, e.to_string()))?;
        Ok(ConnectSettings {
            secret,
            timeout: settings.duration("timeout").unwrap_or(std::time::Duration::from_secs(3)),
            connect_timeout: settings.duration("connect_timeout").unwrap_or(std::time::Duration::from_secs(5)),
            pool: settings.int("pool").unwrap_or(2).clamp(1, 16) as u32,
        })
    }
}

pub fn setup_error(name: &str, message: String) -> SourceError {
    SourceError::Setup { source_name: name.to_string(), message }
}

/// The resource every batch from a database carries: what New Relic builds
/// its database entities from.
pub fn target_resource(system: &str, host: &str, port: u16, database: Option<String>) -> dbintel_core::record::Resource {
    use dbintel_stdlib::Value;
    let mut resource = dbintel_core::record::Resource::default();
    let attrs = &mut resource.attributes;
    attrs.insert("db.system.name", Value::Str(system.into()));
    attrs.insert("server.address", Value::Str(host.into()));
    attrs.insert("server.port", Value::Int(i64::from(port)));
    attrs.insert("service.instance.id", Value::Str(format!("{host}:{port}")));
    attrs.insert("telemetry.sdk.name", Value::Str("dbintel".into()));
    if let Some(db) = database {
        attrs.insert("db.namespace", Value::Str(db));
    }
    resource
}

/// Why a live source could not connect or scrape. Never holds a secret:
/// driver messages pass through `Secret::scrub` first.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source `{source_name}`: {message}")]
    Setup { source_name: String, message: String },
    #[error("source `{source_name}`: refused: {message}")]
    Privileged { source_name: String, message: String },
    #[error("source `{source_name}`: {what} did not finish within {after:?}; cancelled")]
    Timeout { source_name: String, what: String, after: std::time::Duration },
    #[error("source `{source_name}`: {what} failed: {message}")]
    Query { source_name: String, what: String, message: String },
    #[error("source `{source_name}`: {what} not sent: the circuit breaker is open ({why})")]
    BreakerOpen { source_name: String, what: String, why: String },
}
