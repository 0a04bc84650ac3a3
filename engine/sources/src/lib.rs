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
//! - [`connect`]: how to reach a target — the driver's typed options,
//!   never a URL pasted together (a database's name cannot redirect a
//!   connection).
//! - [`sessions`]: at most `server_sessions` sessions per server across
//!   everything this process runs; idle shared pools lend their session.
//! - [`target`]: a connected database of either engine; [`postgres`] and
//!   [`mysql`] hold what is particular to each (safe sessions, the role
//!   check, queries under a deadline).
//! - [`fleet`]: one task per source: its targets (listed, from a file,
//!   discovered), server-wide collectors on one target per server, and
//!   the targets a reload changes.
//! - [`plan_book`]: the one shape every plan leaves in (on the top query
//!   or as its own event), whether dbintel's EXPLAIN or the server's log
//!   made it.
//! - [`readers`]: server-wide views read once per server identity across
//!   source blocks.
//! - [`supervisor`]: one task per target: connects lazily and retries
//!   forever with backoff, runs the collectors, fences every scrape,
//!   reports state to the status board. Nothing ends on a database error.
//! - [`apm`]: the APM correlation attributes (query hash, comment tags,
//!   trace context).
//! - [`entity`]: the resource New Relic builds entities from (one per
//!   server, `service.instance.id` as its collector computes it).
//! - [`db360`]: New Relic's Database 360 event contract, as data.
//! - [`checks`]: the hook through which `run` checks a connected
//!   target's setup (dbintel doctor's checks) on its own session.
//! - [`error`]: errors classified by SQLSTATE / MySQL error number.
//! - [`breaker`]: the circuit breaker in front of every statement.
//! - [`statement_deltas`]: cumulative statement statistics as deltas.
//! - [`replay`]: recorded rows (NDJSON) through the same collectors.
//! - [`rows`]: rows as maps, and the generic `sql` row mapping.
//!
//! A new collector is one file in `collectors/` implementing
//! [`Collector`], plus its entry in [`collector::REGISTRY`] and its
//! settings in `dsl/src/schema.rs`.

pub mod apm;
pub mod breaker;
pub mod catalogue;
pub mod checks;
pub mod collector;
pub mod collectors;
pub mod connect;
pub mod db360;
pub mod entity;
pub mod error;
pub mod fleet;
pub mod log_catalogue;
pub mod mysql;
pub mod plan_book;
pub mod postgres;
pub mod readers;
pub mod replay;
pub mod rows;
pub mod sessions;
pub mod statement_deltas;
pub mod supervisor;
pub mod target;

pub use collector::Collector;
pub use connect::ConnectSpec;
pub use dbintel_core::secret;
pub use error::{ErrorClass, SourceError};

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

/// The resource every record of a server carries (see [`entity`]).
pub fn target_resource(
    system: &str,
    host: &str,
    port: u16,
    identity: dbintel_dsl::schema::ServiceInstanceId,
) -> dbintel_core::record::Resource {
    entity::server_resource(system, host, port, identity)
}
