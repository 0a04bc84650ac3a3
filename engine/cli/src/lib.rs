//! dbintel's runtime and command line.
//!
//! # Layout
//! - [`cli`]: the `dbintel` subcommands, one file each.
//! - [`fs_host`]: the language's [`dbintel_dsl::Host`] over the real file
//!   system and environment, and the expansion of directories (a mounted
//!   ConfigMap) into `.pipe` files.
//! - [`report`]: diagnostics for people (miette) and machines (JSON).
//! - [`daemon`]: `dbintel run` — reloads, signals, the HTTP endpoints.
//!
//! The engine itself lives in the crates next to this one (see the
//! README's layout): `dbintel-core` (records, budgets, secrets, routing),
//! `dbintel-operators` (transform, sample, batch, memory_limit),
//! `dbintel-sources` (databases), `dbintel-export` (sinks),
//! `dbintel-cluster` (leases) and `dbintel-runtime` (running a plan).

pub mod cli;
pub mod daemon;
pub mod fs_host;
pub mod report;
