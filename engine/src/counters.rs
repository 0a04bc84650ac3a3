//! Per-node counters: what went in, what came out, what was dropped and
//! why. Read by dry-run's summary now and by `/metrics` later.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct NodeCounters {
    pub received: AtomicU64,
    pub emitted: AtomicU64,
    pub dropped: AtomicU64,
    pub errors: AtomicU64,
    /// Scrapes a source skipped because downstream was full or memory was
    /// short.
    pub skipped_scrapes: AtomicU64,
}

impl NodeCounters {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Relaxed);
    }
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}

/// Every node's counters, in plan order.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    pub nodes: Vec<(String, &'static str, Arc<NodeCounters>)>,
}

impl Registry {
    pub fn register(&mut self, name: &str, kind: &'static str) -> Arc<NodeCounters> {
        let counters = Arc::new(NodeCounters::default());
        self.nodes.push((name.to_string(), kind, counters.clone()));
        counters
    }

    pub fn get(&self, name: &str) -> Option<&Arc<NodeCounters>> {
        self.nodes.iter().find(|(n, _, _)| n == name).map(|(_, _, c)| c)
    }

    /// A table for people.
    pub fn summary(&self) -> String {
        let mut out = format!("{:<24} {:<13} {:>10} {:>10} {:>10} {:>10}\n", "node", "kind", "in", "out", "dropped", "errors");
        for (name, kind, c) in &self.nodes {
            out.push_str(&format!(
                "{:<24} {:<13} {:>10} {:>10} {:>10} {:>10}\n",
                name,
                kind,
                NodeCounters::get(&c.received),
                NodeCounters::get(&c.emitted),
                NodeCounters::get(&c.dropped),
                NodeCounters::get(&c.errors)
            ));
        }
        out
    }
}
