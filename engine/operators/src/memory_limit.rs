//! `memory_limit`: a byte budget over the batches in flight, plus a check
//! of the process's resident memory.
//!
//! Every batch that passes is charged its estimated size; the [`Charge`]
//! travels with the batch and is released when the batch is dropped —
//! delivered, discarded or failed. Above the soft limit the budget reports
//! pressure, and sources skip scrapes instead of adding more; at the limit
//! (or when RSS exceeds it) new batches are dropped and counted.

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
    check_interval: Duration,
    last_check: Option<Instant>,
    rss_over: bool,
}

impl MemoryLimit {
    pub fn new(settings: &Settings) -> MemoryLimit {
        let s = MemoryLimitSettings::from_settings(settings);
        MemoryLimit::with_budget(Budget::new(s.limit, s.soft_limit), s.check_interval)
    }

    pub fn with_budget(budget: Arc<Budget>, check_interval: Duration) -> MemoryLimit {
        MemoryLimit { budget, check_interval, last_check: None, rss_over: false }
    }

    pub fn budget(&self) -> Arc<Budget> {
        self.budget.clone()
    }

    fn check_rss(&mut self, now: Instant) {
        if self.last_check.is_some_and(|t| now.duration_since(t) < self.check_interval) {
            return;
        }
        self.last_check = Some(now);
        self.rss_over = resident_bytes().is_some_and(|rss| rss > self.budget.limit);
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
                batch.charges.push(charge);
                NodeCounters::add(&counters.emitted, n);
                out.push(batch);
            }
            None => {
                NodeCounters::add(&counters.dropped, n);
                tracing::warn!(used = self.budget.used(), limit = self.budget.limit, records = n, "memory limit reached: batch dropped");
            }
        }
        Box::pin(std::future::ready(()))
    }
}
