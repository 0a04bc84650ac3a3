//! dbintel's runtime and command line.
//!
//! # Layout
//! - [`cli`]: the `dbintel` subcommands, one file each.
//! - [`fs_host`]: the language's [`dbintel_dsl::Host`] over the real file
//!   system and environment, and the expansion of directories (a mounted
//!   ConfigMap) into `.pipe` files.
//! - [`report`]: diagnostics for people (miette) and machines (JSON).

pub mod cli;
pub mod fs_host;
pub mod report;
