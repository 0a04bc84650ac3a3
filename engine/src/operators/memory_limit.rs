//! `memory_limit`: a byte budget over the batches in flight, plus a check
//! of the process's resident memory.
//!
//! Every batch that passes is charged its estimated size; the [`Charge`]
//! travels with the batch and is released when the batch is dropped —
//! delivered, discarded or failed. Above the soft limit the budget reports
//! pressure, and sources skip scrapes instead of adding more; at the limit
//! (or when RSS exceeds it) new batches are dropped and counted.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbintel_dsl::plan::Settings;

use super::Operator;
use crate::counters::NodeCounters;
use crate::record::Batch;

#[derive(Debug)]
pub struct Budget {
    used: AtomicU64,
    pub limit: u64,
    pub soft: u64,
}

impl Budget {
    pub fn new(limit: u64, soft_percent: f64) -> Arc<Budget> {
        Arc::new(Budget { used: AtomicU64::new(0), limit, soft: (limit as f64 * soft_percent / 100.0) as u64 })
    }
    pub fn used(&self) -> u64 {
        self.used.load(Relaxed)
    }
    /// Above the soft limit: sources should hold back.
    pub fn under_pressure(&self) -> bool {
        self.used() > self.soft
    }
    /// Charges `bytes` if they fit under the limit.
    pub fn try_charge(self: &Arc<Budget>, bytes: u64) -> Option<Charge> {
        let mut used = self.used();
        loop {
            if used + bytes > self.limit {
                return None;
            }
            match self.used.compare_exchange_weak(used, used + bytes, Relaxed, Relaxed) {
                Ok(_) => return Some(Charge { budget: self.clone(), bytes }),
                Err(actual) => used = actual,
            }
        }
    }
}

/// Memory charged to a budget, given back on drop.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Relaxed);
    }
}

/// Resident set size of this process, from /proc (Linux); None elsewhere.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

pub struct MemoryLimit {
    budget: Arc<Budget>,
    check_interval: Duration,
    last_check: Option<Instant>,
    rss_over: bool,
}

impl MemoryLimit {
    pub fn new(settings: &Settings) -> MemoryLimit {
        let limit = settings.bytes("limit").unwrap_or(256 << 20);
        let soft = settings.percent("soft_limit").unwrap_or(80.0);
        MemoryLimit::with_budget(Budget::new(limit, soft), settings.duration("check_interval").unwrap_or(Duration::from_secs(1)))
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
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>, counters: &NodeCounters) {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_released_when_batches_drop() {
        let budget = Budget::new(1000, 50.0);
        let a = budget.try_charge(400).expect("fits");
        assert!(!budget.under_pressure());
        let b = budget.try_charge(400).expect("fits");
        assert!(budget.under_pressure());
        assert!(budget.try_charge(400).is_none(), "over the limit");
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
