//! Operators between sources and sinks, one file each.

pub mod batch;
pub mod memory_limit;
pub mod sample;
pub mod transform;

use std::time::{Duration, Instant};

use crate::counters::NodeCounters;
use crate::record::Batch;

/// A processing node. The runtime calls it from the node's own task.
pub trait Operator: Send {
    /// Handles one batch, pushing whatever it emits onto `out`.
    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>, counters: &NodeCounters);
    /// How often [`Operator::tick`] should run, if at all.
    fn tick_every(&self) -> Option<Duration> {
        None
    }
    /// Time passes (batch timeouts).
    fn tick(&mut self, _now: Instant, _out: &mut Vec<Batch>) {}
    /// Input ended: emit everything held.
    fn finish(&mut self, _out: &mut Vec<Batch>) {}
}
