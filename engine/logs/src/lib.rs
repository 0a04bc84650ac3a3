//! Log sources: what PostgreSQL and MySQL/MariaDB write in their own logs
//! — actual plans (auto_explain), errors by SQLSTATE, deadlocks, lock
//! waits, temporary files, autovacuum and checkpoints, slow queries —
//! read the way a sidecar sees them, mapped to records, and handed to the
//! pipeline (whose sanitize rules see every message, detail, statement
//! and plan before anything leaves).
//!
//! # Layout
//! - [`follow`]: a directory (or one file) followed across rotation and
//!   truncation, new files picked up by glob, complete lines only, long
//!   lines cut; [`checkpoint`] keeps the offsets (and the metric window)
//!   in a state directory so a restart neither loses nor repeats lines.
//! - [`format`]: one parser per format — PostgreSQL `jsonlog`, `csvlog`,
//!   `stderr` with its `log_line_prefix`; MySQL's slow log and error log —
//!   turning lines into [`entry`] values (multi-line entries joined).
//! - [`classify`]: PostgreSQL's message catalogue: which entry is a plan,
//!   a deadlock, a lock wait, a temporary file, an autovacuum run, a
//!   checkpoint, a connection failure, a cancellation.
//! - [`records`]: entries to records, per collector, with the metric
//!   window ([`records::Window`]); what they are is declared in
//!   `dbintel_sources::log_catalogue`, beside every collector's
//!   declaration.
//! - [`plan`]: the one function that turns an auto_explain plan into its
//!   event (and plan-change detection).
//! - [`resource`]: the one function that gives the records their server's
//!   resource (from the database source the log source names).
//! - [`server_settings`]: which server settings each collector needs — data
//!   `doctor` reads.
//! - [`source`]: a log source running: polls, emits, checkpoints, reports
//!   its state to the status board, retries what is missing; [`replay`]:
//!   one file read once through the same code (`dry-run --input`).
//! - [`stats`]: lines read and problems by cause, for `/metrics`.
//! - [`time`]: the servers' timestamps.

pub mod checkpoint;
pub mod classify;
pub mod entry;
pub mod follow;
pub mod format;
pub mod plan;
pub mod records;
pub mod replay;
pub mod resource;
pub mod server_settings;
pub mod source;
pub mod stats;
pub mod time;

pub use source::run_log_source;

/// Whether `kind` is a log source kind (`postgres_logs`, `mysql_logs`).
pub fn is_log_kind(kind: &str) -> bool {
    dbintel_dsl::schema::source_kind(kind).is_some_and(|k| k.server_kind.is_some())
}
