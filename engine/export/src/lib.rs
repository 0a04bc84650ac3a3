//! Sinks: where records leave.
//!
//! # Layout
//! - [`exporter`]: the `otlp` and `newrelic` sinks. A batch is shaped to
//!   what the backend keeps ([`shape`]), encoded into one part per
//!   resource ([`encode`]), packed with the parts of every pipeline
//!   feeding the sink into requests of up to the size limit as sent
//!   ([`pack`]), queued, bounded in bytes, in memory or on disk
//!   ([`queue`]), and delivered by the [`sender`] over gRPC or HTTP
//!   ([`transport`], with the compression [`compression`] negotiates).
//!   [`reshape`] takes encoded requests apart again (split, shrink,
//!   expire); [`config`] resolves the settings with the environment;
//!   [`stats`] is what `/metrics` and `/status` read.
//! - [`stdout`] and [`otlp_json`]: the `stdout` and `file` sinks.

pub mod compression;
pub mod config;
pub mod encode;
pub mod exporter;
pub mod otlp_json;
pub mod pack;
pub mod queue;
pub mod reshape;
pub mod sender;
pub mod shape;
pub mod stats;
pub mod stdout;
pub mod transport;

pub use exporter::{ExportStatus, Exporter};
pub use stats::{ExportStats, LATENCY_BUCKETS};
