//! Operators between sources and sinks, one file each.
//!
//! # Layout
//! - [`transform`] (OTTL statements, compiled by [`ottl`]), [`sample`]
//!   (ordered keep/drop rules; shared state through [`redis`]),
//!   [`batch`], [`memory_limit`].

pub mod batch;
pub mod memory_limit;
pub mod ottl;
pub mod pipe_tests;
pub mod redis;
pub mod sample;
pub mod transform;

use std::time::{Duration, Instant};

use dbintel_core::counters::NodeCounters;
use dbintel_core::record::Batch;
use dbintel_core::BoxFuture;

/// A processing node. The runtime calls it from the node's own task.
///
/// `process` is async so that an operator may wait on I/O (the sampler's
/// shared state in Redis) without holding a runtime thread; operators
/// that need none do their work before returning a ready future.
pub trait Operator: Send {
    /// Handles one batch, pushing whatever it emits onto `out`.
    fn process<'a>(&'a mut self, batch: Batch, out: &'a mut Vec<Batch>, counters: &'a NodeCounters) -> BoxFuture<'a, ()>;
    /// How often [`Operator::tick`] should run, if at all.
    fn tick_every(&self) -> Option<Duration> {
        None
    }
    /// Time passes (batch timeouts).
    fn tick(&mut self, _now: Instant, _out: &mut Vec<Batch>) {}
    /// Input ended: emit everything held.
    fn finish(&mut self, _out: &mut Vec<Batch>) {}
}

/// The checked plan of a `.pipe` snippet, for operator tests.
#[cfg(test)]
pub(crate) fn plan_of(source: &str) -> dbintel_dsl::Plan {
    let parsed = dbintel_dsl::parse::parse(0, source);
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let env = |_: &str| true;
    let input = dbintel_dsl::check::CheckInput { modules: &[parsed.module], env_is_set: &env, env_policy: dbintel_dsl::EnvPolicy::Warn };
    let (plan, diagnostics) = dbintel_dsl::check::check(input);
    assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
    plan
}
