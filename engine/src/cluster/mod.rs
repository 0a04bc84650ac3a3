//! High availability on Kubernetes: who of several replicas queries which
//! database. See [`lease`] for the election and its safety argument.
//!
//! - `mode = none` (the default): every source runs.
//! - `mode = leader`: one lease; only its holder runs sources.
//! - `mode = sharded`: one lease per source (target); replicas split them.

pub mod fake;
pub mod lease;
