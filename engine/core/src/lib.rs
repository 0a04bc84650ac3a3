//! The types every other dbintel crate shares.
//!
//! # Layout
//! - [`record`]: the data model (OTLP-shaped logs and metric points) and
//!   batches that share a resource.
//! - [`budget`]: the memory budget batches are charged against.
//! - [`routing`]: where a source's batches go.
//! - [`sink`]: the trait every sink implements.
//! - [`fence`]: whether this replica may query a target right now.
//! - [`secret`]: DSNs and keys that never print.
//! - [`counters`]: per-node in/out/dropped/errors.
//! - [`status`]: what each target and collector is doing, and why.

pub mod budget;
pub mod counters;
pub mod fence;
pub mod record;
pub mod routing;
pub mod secret;
pub mod sink;
pub mod status;

use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
