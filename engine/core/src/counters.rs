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
    /// Scrapes run by a source's collectors, and their total time.
    pub scrapes: AtomicU64,
    pub scrape_micros: AtomicU64,
}

impl NodeCounters {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Relaxed);
    }
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}

/// Counters of one sampler's shared state (Redis).
#[derive(Debug, Default)]
pub struct SamplerStats {
    /// Round trips to Redis that failed (unreachable, timeout, malformed
    /// reply).
    pub redis_errors: AtomicU64,
    /// Records decided from local state because Redis could not answer.
    pub fallback_decisions: AtomicU64,
    /// Records decided with Redis.
    pub redis_decisions: AtomicU64,
}

/// Every node's counters, in plan order; one registry per process (no
/// process-wide statics), kept across reloads.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    pub nodes: Vec<(String, &'static str, Arc<NodeCounters>)>,
    /// Per sample node with shared state.
    pub samplers: Vec<(String, Arc<SamplerStats>)>,
}

impl Registry {
    /// The counters of node `name`; a node registered again (the same name
    /// in a reloaded plan) keeps counting where it was, as Prometheus
    /// counters must.
    pub fn register(&mut self, name: &str, kind: &'static str) -> Arc<NodeCounters> {
        if let Some((_, k, c)) = self.nodes.iter_mut().find(|(n, _, _)| n == name) {
            *k = kind;
            return c.clone();
        }
        let counters = Arc::new(NodeCounters::default());
        self.nodes.push((name.to_string(), kind, counters.clone()));
        counters
    }

    /// The Redis counters of sample node `name` (kept across reloads).
    pub fn sampler(&mut self, name: &str) -> Arc<SamplerStats> {
        if let Some((_, s)) = self.samplers.iter().find(|(n, _)| n == name) {
            return s.clone();
        }
        let stats = Arc::new(SamplerStats::default());
        self.samplers.push((name.to_string(), stats.clone()));
        stats
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

/// Time spent in each kind of query, per source: `(source, what)` →
/// (count, microseconds). Process-wide, read by `/metrics`.
type QueryTimes = std::collections::BTreeMap<(String, String), (u64, u64)>;
static QUERY_TIMES: std::sync::Mutex<QueryTimes> = std::sync::Mutex::new(QueryTimes::new());

/// Most distinct `(source, what)` pairs kept (`what` comes from the plan,
/// so this is a guard, not a limit anyone should meet).
const MAX_QUERY_KINDS: usize = 1000;

pub fn record_query(source: &str, what: &str, elapsed: std::time::Duration) {
    let mut times = QUERY_TIMES.lock().unwrap_or_else(|p| p.into_inner());
    let key = (source.to_string(), what.to_string());
    if times.len() >= MAX_QUERY_KINDS && !times.contains_key(&key) {
        return;
    }
    let entry = times.entry(key).or_default();
    entry.0 += 1;
    entry.1 += elapsed.as_micros() as u64;
}

pub fn query_times() -> QueryTimes {
    QUERY_TIMES.lock().unwrap_or_else(|p| p.into_inner()).clone()
}
