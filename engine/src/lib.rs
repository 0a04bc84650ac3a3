//! dbintel's runtime and command line.
//!
//! # Layout
//! - [`cli`]: the `dbintel` subcommands, one file each.
//! - [`fs_host`]: the language's [`dbintel_dsl::Host`] over the real file
//!   system and environment, and the expansion of directories (a mounted
//!   ConfigMap) into `.pipe` files.
//! - [`report`]: diagnostics for people (miette) and machines (JSON).
//! - [`record`]: the data model (OTLP-shaped logs and metric points).
//! - [`ottl`]: statements compiled to executable form.
//! - [`operators`]: transform, sample, batch, memory_limit.
//! - [`sources`], [`sinks`]: where records come from and go.
//! - [`runtime`]: one task per node, bounded channels, drain on shutdown.
//! - [`export`]: OTLP export (encoding, queue, delivery) for `otlp` and
//!   `newrelic` sinks.
//! - [`daemon`]: `dbintel run` — reloads, signals, the HTTP endpoints.
//! - [`counters`]: per-node in/out/dropped/errors.
//! - [`pipe_tests`]: the `test` blocks of .pipe files.

pub mod cli;
pub mod cluster;
pub mod counters;
pub mod daemon;
pub mod export;
pub mod fs_host;
pub mod operators;
pub mod ottl;
pub mod pipe_tests;
pub mod record;
pub mod report;
pub mod runtime;
pub mod sinks;
pub mod sources;
