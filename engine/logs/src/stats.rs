//! What the log sources read, and what they could not, per source: lines,
//! entries, and problems by cause. Process-wide (counters survive a
//! reload, as Prometheus counters must), read by `/metrics` as
//! `dbintel_log_lines_total{node, outcome}`.

use std::collections::BTreeMap;
use std::sync::Mutex;

type Counts = BTreeMap<(String, &'static str), u64>;
static COUNTS: Mutex<Counts> = Mutex::new(Counts::new());

/// Outcomes counted: `read` (lines), `entries`, each problem's
/// [`crate::entry::Problem::as_str`], `restarted` (a file truncated or
/// rewritten in place, read again), `dropped_series` (metric series past
/// the window's bound).
pub fn add(source: &str, outcome: &'static str, n: u64) {
    if n == 0 {
        return;
    }
    let mut counts = COUNTS.lock().unwrap_or_else(|p| p.into_inner());
    *counts.entry((source.to_string(), outcome)).or_default() += n;
}

/// Every count: (source, outcome, value).
pub fn snapshot() -> Vec<(String, &'static str, u64)> {
    COUNTS.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|((s, o), v)| (s.clone(), *o, *v)).collect()
}

/// One count (tests).
pub fn get(source: &str, outcome: &str) -> u64 {
    COUNTS.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|((s, o), _)| s == source && *o == outcome).map_or(0, |(_, v)| *v)
}
