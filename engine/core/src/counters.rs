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

    /// Keeps the counters of the nodes `keep` names (a reload's plan):
    /// a node that left the plan leaves `/metrics` with it, and renaming
    /// nodes reload after reload does not grow the registry.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.nodes.retain(|(name, _, _)| keep(name));
        self.samplers.retain(|(name, _)| keep(name));
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

/// Time spent in each kind of query, per target: `(target key, what)` →
/// (count, microseconds). Process-wide, read by `/metrics`.
type QueryTimes = std::collections::BTreeMap<(String, String), (u64, u64)>;

/// The query-time series, bounded fairly: every target has the same
/// budget of query kinds ([`MAX_QUERY_KINDS_PER_TARGET`]; more fold into
/// its `other`), at most [`MAX_QUERY_TARGETS`] targets are tracked (more
/// fold into one `(other)` target), and a target's series go with it
/// ([`forget_query_times`]). What folds is counted, never dropped: a new
/// target's series always appear while the fleet is under the bound,
/// however many targets came and went before.
struct QueryTimeSeries {
    times: QueryTimes,
    /// Distinct kinds per target (its `other` included).
    kinds: std::collections::BTreeMap<String, usize>,
    /// Recordings folded into an `other` series.
    overflow: u64,
}

static QUERY_TIMES: std::sync::Mutex<QueryTimeSeries> =
    std::sync::Mutex::new(QueryTimeSeries { times: QueryTimes::new(), kinds: std::collections::BTreeMap::new(), overflow: 0 });

/// Query kinds one target keeps apart (`what` comes from the collectors'
/// code: a few dozen at most); the rest share its `other`.
pub const MAX_QUERY_KINDS_PER_TARGET: usize = 32;
/// Targets whose query times are kept apart; the rest share `(other)`.
pub const MAX_QUERY_TARGETS: usize = 4096;
/// The kind, and the target, that overflow folds into.
pub const OTHER_QUERY: &str = "other";
pub const OTHER_TARGET: &str = "(other)";

fn query_series() -> std::sync::MutexGuard<'static, QueryTimeSeries> {
    QUERY_TIMES.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn record_query(source: &str, what: &str, elapsed: std::time::Duration) {
    let mut series = query_series();
    let series = &mut *series;
    let mut key = (source.to_string(), what.to_string());
    if !series.times.contains_key(&key) {
        let known = series.kinds.contains_key(source);
        if !known && series.kinds.len() >= MAX_QUERY_TARGETS {
            key.0 = OTHER_TARGET.to_string();
        } else if series.kinds.get(source).copied().unwrap_or(0) >= MAX_QUERY_KINDS_PER_TARGET - 1 {
            key.1 = OTHER_QUERY.to_string();
        }
        if key.0 != source || key.1 != what {
            if series.overflow == 0 {
                tracing::warn!(
                    target = source,
                    max_targets = MAX_QUERY_TARGETS,
                    max_kinds = MAX_QUERY_KINDS_PER_TARGET,
                    "too many query-time series: folding the excess into `other` (counted in dbintel_series_overflow_total)"
                );
            }
            series.overflow += 1;
        }
        if !series.times.contains_key(&key) {
            *series.kinds.entry(key.0.clone()).or_default() += 1;
        }
    }
    let entry = series.times.entry(key).or_default();
    entry.0 += 1;
    entry.1 += elapsed.as_micros() as u64;
}

pub fn query_times() -> QueryTimes {
    query_series().times.clone()
}

/// Forgets the query times of a target that went (its key as
/// [`dbintel_dsl::plan::target_key`] spells it).
pub fn forget_query_times(target: &str) {
    let mut series = query_series();
    series.times.retain(|(source, _), _| source != target);
    series.kinds.remove(target);
}

/// Recordings folded into an `other` series since the start.
pub fn query_times_overflow() -> u64 {
    query_series().overflow
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    // one process-wide map: each test uses targets of its own
    fn count_of(prefix: &str) -> (usize, usize) {
        let times = query_times();
        let ours: Vec<_> = times.keys().filter(|(s, _)| s.starts_with(prefix)).collect();
        let targets: std::collections::BTreeSet<_> = ours.iter().map(|(s, _)| s.clone()).collect();
        (targets.len(), ours.len())
    }

    /// The bug: the series were capped first-come-first-served at 1,000,
    /// so at ~100 targets the newest targets' series never appeared.
    #[test]
    fn query_times_of_the_150th_target_appear_and_leave_with_it() {
        for t in 0..150 {
            for q in 0..12 {
                record_query(&format!("fair/t{t:03}"), &format!("q{q:02}"), Duration::from_millis(1));
            }
        }
        assert_eq!(count_of("fair/"), (150, 1800), "every target, every kind");
        assert_eq!(query_times().get(&("fair/t149".to_string(), "q11".to_string())), Some(&(1, 1000)));
        for t in 0..100 {
            forget_query_times(&format!("fair/t{t:03}"));
        }
        assert_eq!(count_of("fair/"), (50, 600), "the series of targets that went are gone");
    }

    #[test]
    fn a_target_with_too_many_query_kinds_folds_the_rest_into_other_and_counts_it() {
        let before = query_times_overflow();
        for q in 0..40 {
            record_query("greedy/t", &format!("q{q:02}"), Duration::from_millis(1));
        }
        let times = query_times();
        let kinds: Vec<&String> = times.keys().filter(|(s, _)| s == "greedy/t").map(|(_, w)| w).collect();
        assert_eq!(kinds.len(), MAX_QUERY_KINDS_PER_TARGET, "{kinds:?}");
        let other = times.get(&("greedy/t".to_string(), OTHER_QUERY.to_string())).copied();
        assert_eq!(other, Some((40 - (MAX_QUERY_KINDS_PER_TARGET as u64 - 1), 9000)), "the rest, counted in `other`");
        assert!(query_times_overflow() - before >= 9, "overflow counted");
        // a kind it already has keeps counting in place
        record_query("greedy/t", "q00", Duration::from_millis(1));
        assert_eq!(query_times().get(&("greedy/t".to_string(), "q00".to_string())).map(|v| v.0), Some(2));
        forget_query_times("greedy/t");
    }
}
