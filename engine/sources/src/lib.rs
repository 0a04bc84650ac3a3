//! Sources: where records come from — real databases, or recorded rows.
//!
//! # Layout
//! - [`collector`]: the [`Collector`] trait (what a collector queries per
//!   server version, how its rows map to records, its cadence) and the one
//!   registry of collectors per engine. `run`, `dry-run --scrapes` and
//!   `dry-run --input` all build collectors from it.
//! - [`collectors`]: one file per collector, each with the
//!   [`catalogue::Declaration`] of what it emits.
//! - [`catalogue`]: the declarations' types, the README's catalogue
//!   tables, and the move of database/table/index attributes onto their
//!   resources; [`log_catalogue`]: what the log sources (`dbintel-logs`)
//!   emit.
//! - [`target`]: a connected database of either engine; [`postgres`] and
//!   [`mysql`] hold what is particular to each (safe sessions, the role
//!   check, queries under a deadline).
//! - [`fleet`]: one task per source: its targets (listed, from a file,
//!   discovered), server-wide collectors on one target per server, and
//!   the targets a reload changes.
//! - [`supervisor`]: one task per target: connects lazily and retries
//!   forever with backoff, runs the collectors, fences every scrape,
//!   reports state to the status board. Nothing ends on a database error.
//! - [`error`]: errors classified by SQLSTATE / MySQL error number.
//! - [`breaker`]: the circuit breaker in front of every statement.
//! - [`statement_deltas`]: cumulative statement statistics as deltas.
//! - [`replay`]: recorded rows (NDJSON) through the same collectors.
//! - [`rows`]: rows as maps, and the generic `sql` row mapping.
//!
//! A new collector is one file in `collectors/` implementing
//! [`Collector`], plus its entry in [`collector::REGISTRY`] and its
//! settings in `dsl/src/schema.rs`.

pub mod breaker;
pub mod catalogue;
pub mod collector;
pub mod collectors;
pub mod error;
pub mod fleet;
pub mod log_catalogue;
pub mod mysql;
pub mod postgres;
pub mod replay;
pub mod rows;
pub mod statement_deltas;
pub mod supervisor;
pub mod target;

pub use collector::Collector;
pub use dbintel_core::secret;
pub use error::{ErrorClass, SourceError};

use dbintel_dsl::plan::{SecretRef, TargetDsn};
use dbintel_dsl::schema::DbSettings;

/// The DSN of a plain `dsn = …` source, read now (a `file(...)` secret
/// may have been rotated since the last attempt).
pub fn resolve_dsn(name: &str, settings: &DbSettings) -> Result<secret::Secret, SourceError> {
    let reference = settings.dsn.as_ref().ok_or_else(|| setup_error(name, "no dsn".into()))?;
    secret::Secret::resolve(reference).map_err(|e| setup_error(name, e.to_string()))
}

/// A target's DSN, read now: the whole DSN from its secret, or the URL or
/// the parts of a targets list with the password read from its file or
/// variable (percent-encoded into the URL).
pub fn resolve_target_dsn(name: &str, dsn: &TargetDsn, engine: target::Engine) -> Result<secret::Secret, SourceError> {
    let password = |reference: &Option<SecretRef>| -> Result<Option<secret::Secret>, SourceError> {
        reference.as_ref().map(|r| secret::Secret::resolve(r).map_err(|e| setup_error(name, e.to_string()))).transpose()
    };
    match dsn {
        TargetDsn::Secret(reference) => secret::Secret::resolve(reference).map_err(|e| setup_error(name, e.to_string())),
        TargetDsn::Url { url, password: reference } => Ok(match password(reference)? {
            None => secret::Secret::plain(url, "the targets list"),
            Some(p) => {
                let (scheme, rest) = url.split_once("://").ok_or_else(|| setup_error(name, "the target's dsn is not a URL".into()))?;
                let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
                let with_password = match rest[..authority_end].rfind('@') {
                    Some(at) => format!("{scheme}://{}:{}{}", &rest[..at], userinfo(p.expose()), &rest[at..]),
                    None => format!("{scheme}://:{}@{rest}", userinfo(p.expose())),
                };
                secret::Secret::plain(&with_password, "the targets list and its password")
            }
        }),
        TargetDsn::Parts { host, port, database, user, password: reference } => {
            let scheme = match engine {
                target::Engine::Postgres => "postgres",
                target::Engine::MySql => "mysql",
            };
            let auth = match (user, password(reference)?) {
                (Some(u), Some(p)) => format!("{}:{}@", userinfo(u), userinfo(p.expose())),
                (Some(u), None) => format!("{}@", userinfo(u)),
                (None, Some(p)) => format!(":{}@", userinfo(p.expose())),
                (None, None) => String::new(),
            };
            let port = port.unwrap_or_else(|| engine.default_port());
            let database = database.as_deref().map(|d| format!("/{}", userinfo(d))).unwrap_or_default();
            Ok(secret::Secret::plain(&format!("{scheme}://{auth}{host}:{port}{database}"), "the targets list and its password"))
        }
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Opens one connection, before a pool is made: a pool only says that no
/// connection became available in time, this says exactly why (refused,
/// no such host, too many connections, a bad password…). The caller may
/// ask it something (the server version) and [`close_probe`] it.
pub async fn probe_connection<C: sqlx::Connection>(
    name: &str,
    what: &str,
    secret: &secret::Secret,
    timeout: std::time::Duration,
    options: &C::Options,
) -> Result<C, SourceError> {
    match tokio::time::timeout(timeout, C::connect_with(options)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(error::from_sqlx(name, what, secret, &e)),
        Err(_) => Err(SourceError::Database {
            source_name: name.to_string(),
            what: what.to_string(),
            class: ErrorClass::Connection,
            code: "connect_timeout".into(),
            message: format!("no answer within {timeout:?}"),
        }),
    }
}

/// Closes a probe connection (best effort: the server ends the session
/// either way).
pub async fn close_probe<C: sqlx::Connection>(name: &str, connection: C) {
    if let Err(e) = connection.close().await {
        tracing::debug!(source = name, error = %e, "closing the probe connection");
    }
}

pub fn setup_error(name: &str, message: String) -> SourceError {
    SourceError::Setup { source_name: name.to_string(), message }
}

/// The resource every batch from a database carries: what New Relic builds
/// its database entities from. PostgreSQL entities are keyed by
/// `service.instance.id`, MySQL ones by `mysql.instance.endpoint`; both are
/// `host:port` as the DSN writes them, and every resource of a server (its
/// databases, tables, indexes, its events) carries the same value, or the
/// data lands on no entity. No `telemetry.sdk.name`: that names an
/// OpenTelemetry SDK (New Relic turns it into the entity's
/// `instrumentation.provider`); dbintel is named by its scope.
pub fn target_resource(system: &str, host: &str, port: u16, database: Option<String>) -> dbintel_core::record::Resource {
    use dbintel_stdlib::Value;
    let mut resource = dbintel_core::record::Resource::default();
    let attrs = &mut resource.attributes;
    let endpoint = format!("{host}:{port}");
    attrs.insert("db.system.name", Value::Str(system.into()));
    attrs.insert("server.address", Value::Str(host.into()));
    attrs.insert("server.port", Value::Int(i64::from(port)));
    attrs.insert("service.instance.id", Value::Str(endpoint.clone()));
    if system == "mysql" {
        attrs.insert("mysql.instance.endpoint", Value::Str(endpoint));
    }
    if let Some(db) = database {
        attrs.insert("db.namespace", Value::Str(db));
    }
    resource
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dsns_get_their_password_encoded() {
        std::env::set_var("DBINTEL_TEST_TARGET_PW", "p@ss:/w rd");
        let password = Some(SecretRef::Env("DBINTEL_TEST_TARGET_PW".into()));
        let parts = TargetDsn::Parts {
            host: "db.internal".into(),
            port: None,
            database: Some("orders".into()),
            user: Some("mon".into()),
            password: password.clone(),
        };
        let dsn = resolve_target_dsn("t", &parts, target::Engine::Postgres).expect("resolves");
        assert_eq!(dsn.expose(), "postgres://mon:p%40ss%3A%2Fw%20rd@db.internal:5432/orders");
        assert!(!format!("{dsn:?} {dsn}").contains("p@ss"), "never printed");
        let url = TargetDsn::Url { url: "mysql://mon@h:3306/db?ssl-mode=REQUIRED".into(), password };
        assert_eq!(
            resolve_target_dsn("t", &url, target::Engine::MySql).expect("resolves").expose(),
            "mysql://mon:p%40ss%3A%2Fw%20rd@h:3306/db?ssl-mode=REQUIRED"
        );
        let missing = TargetDsn::Parts {
            host: "h".into(),
            port: None,
            database: None,
            user: None,
            password: Some(SecretRef::Env("DBINTEL_TEST_NOT_SET".into())),
        };
        assert!(resolve_target_dsn("t", &missing, target::Engine::Postgres).is_err());
    }
}
