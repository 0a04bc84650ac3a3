//! `memory_limit`: a byte budget over the batches in flight, plus a check
//! of the process's resident memory.
//!
//! Every batch that passes is charged its estimated size; the [`Charge`]
//! travels with the batch and is released when the batch is dropped —
//! delivered, discarded or failed. Above the soft limit the budget reports
//! pressure, and sources skip scrapes instead of adding more; at the limit
//! new batches are dropped and counted. So are they while the process's
//! resident memory is above `rss_limit` (twice `limit` unless set): RSS
//! holds the whole process and what the allocator keeps, so it gets its
//! own, higher limit. A run of drops is logged when it starts and ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dbintel_dsl::plan::Settings;
use dbintel_dsl::schema::MemoryLimitSettings;

use dbintel_core::budget::{resident_bytes, Budget};

use super::Operator;
use dbintel_core::counters::NodeCounters;
use dbintel_core::record::Batch;
use dbintel_core::BoxFuture;

pub struct MemoryLimit {
    budget: Arc<Budget>,
    rss_limit: u64,
    check_interval: Duration,
    last_check: Option<Instant>,
    rss_over: bool,
    /// Records dropped since the current run of drops began (`None`: not
    /// dropping; a run of empty batches is one run too).
    dropping: Option<usize>,
}

impl MemoryLimit {
    pub fn new(settings: &Settings) -> MemoryLimit {
        let s = MemoryLimitSettings::from_settings(settings);
        let rss_limit = s.rss_limit.unwrap_or(s.limit.saturating_mul(2));
        MemoryLimit::with_budget(Budget::new(s.limit, s.soft_limit), rss_limit, s.check_interval)
    }

    pub fn with_budget(budget: Arc<Budget>, rss_limit: u64, check_interval: Duration) -> MemoryLimit {
        MemoryLimit { budget, rss_limit, check_interval, last_check: None, rss_over: false, dropping: None }
    }

    pub fn budget(&self) -> Arc<Budget> {
        self.budget.clone()
    }

    fn check_rss(&mut self, now: Instant) {
        if self.last_check.is_some_and(|t| now.duration_since(t) < self.check_interval) {
            return;
        }
        self.last_check = Some(now);
        self.rss_over = resident_bytes().is_some_and(|rss| rss > self.rss_limit);
    }
}

impl Operator for MemoryLimit {
    fn process<'a>(&'a mut self, mut batch: Batch, out: &'a mut Vec<Batch>, counters: &'a NodeCounters) -> BoxFuture<'a, ()> {
        let n = batch.len();
        NodeCounters::add(&counters.received, n);
        self.check_rss(Instant::now());
        let charge = if self.rss_over { None } else { self.budget.try_charge(batch.approx_bytes() as u64) };
        match charge {
            Some(charge) => {
                if let Some(dropped) = self.dropping.take() {
                    tracing::info!(dropped, "memory limit: batches pass again");
                }
                batch.charges.push(charge);
                NodeCounters::add(&counters.emitted, n);
                out.push(batch);
            }
            None => {
                NodeCounters::add(&counters.dropped, n);
                if self.dropping.is_none() {
                    let (used, limit, what) = if self.rss_over {
                        (resident_bytes().unwrap_or_default(), self.rss_limit, "resident memory")
                    } else {
                        (self.budget.used(), self.budget.limit, "batches in flight")
                    };
                    tracing::warn!(used, limit, cause = what, "memory limit reached: dropping new batches (counted) until there is room");
                }
                *self.dropping.get_or_insert(0) += n;
            }
        }
        Box::pin(std::future::ready(()))
    }
}
