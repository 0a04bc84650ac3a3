//! A byte budget over batches in flight. Every batch that passes a
//! `memory_limit` node is charged its estimated size; the [`Charge`]
//! travels with the batch and is given back when the batch is dropped
//! (delivered, discarded or failed).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

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
