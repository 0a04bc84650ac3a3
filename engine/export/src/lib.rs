//! Sinks: where records leave.
//!
//! # Layout
//! - [`exporter`]: the `otlp` and `newrelic` sinks — shaping, queue and
//!   delivery; [`config`] resolves their settings with the environment;
//!   [`encode`] builds the protobuf requests; [`queue`] bounds them in
//!   bytes (memory or disk); [`transport`] sends them over gRPC or HTTP,
//!   with the compression [`compression`] negotiates.
//! - [`stdout`] and [`otlp_json`]: the `stdout` and `file` sinks.

pub mod compression;
pub mod config;
pub mod encode;
pub mod exporter;
pub mod otlp_json;
pub mod queue;
pub mod stdout;
pub mod transport;

pub use exporter::{ExportStats, ExportStatus, Exporter, LATENCY_BUCKETS};
