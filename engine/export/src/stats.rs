//! What a sink counts, for `/metrics` and `/status`: requests and items by
//! outcome, what shaping changed, and every item dropped, by cause.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::shape::Shaped;

/// Upper bounds (seconds) of the export latency histogram.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Items (data points, log records) that will never reach the receiver,
/// by why. Queue evictions and damage on disk are counted by the queue
/// ([`crate::queue::QueueStats`]); [`crate::Exporter::drops`] lists all.
#[derive(Debug, Default)]
pub struct Drops {
    /// Refused for good by the receiver (a 4xx, INVALID_ARGUMENT…).
    pub refused: AtomicU64,
    /// Refused for the credentials (401/403, UNAUTHENTICATED…).
    pub unauthorized: AtomicU64,
    /// Taken by the receiver but rejected inside (OTLP partial success).
    pub rejected: AtomicU64,
    /// A single record too large to send however shrunk.
    pub too_large: AtomicU64,
    /// Older than the backend's window (New Relic: 48 hours).
    pub expired: AtomicU64,
    /// Retried until `retry_elapsed` without success.
    pub gave_up: AtomicU64,
    /// Transient faults that outlasted their bounded retries.
    pub transient: AtomicU64,
    /// NaN or ±Infinity values (New Relic stores neither).
    pub non_finite: AtomicU64,
    /// Still in a memory queue when the shutdown deadline came.
    pub shutdown: AtomicU64,
}

impl Drops {
    pub fn list(&self) -> [(&'static str, u64); 9] {
        [
            ("refused", self.refused.load(Relaxed)),
            ("unauthorized", self.unauthorized.load(Relaxed)),
            ("rejected", self.rejected.load(Relaxed)),
            ("too_large", self.too_large.load(Relaxed)),
            ("expired", self.expired.load(Relaxed)),
            ("gave_up", self.gave_up.load(Relaxed)),
            ("transient", self.transient.load(Relaxed)),
            ("non_finite", self.non_finite.load(Relaxed)),
            ("shutdown", self.shutdown.load(Relaxed)),
        ]
    }
}

/// Changes made so New Relic keeps what it is sent.
#[derive(Debug, Default)]
pub struct ShapedStats {
    pub values_truncated: AtomicU64,
    pub names_truncated: AtomicU64,
    pub attributes_dropped: AtomicU64,
    pub arrays_truncated: AtomicU64,
    pub values_serialized: AtomicU64,
    pub json_removed: AtomicU64,
    pub json_wrapped: AtomicU64,
    pub non_finite_attributes: AtomicU64,
    /// Single records shrunk to fit a request (texts cut, JSON removed).
    pub records_shrunk: AtomicU64,
}

impl ShapedStats {
    pub fn add(&self, s: &Shaped) {
        let add = |c: &AtomicU64, n: u64| {
            if n > 0 {
                c.fetch_add(n, Relaxed);
            }
        };
        add(&self.values_truncated, s.values_truncated);
        add(&self.names_truncated, s.names_truncated);
        add(&self.attributes_dropped, s.attributes_dropped);
        add(&self.arrays_truncated, s.arrays_truncated);
        add(&self.values_serialized, s.values_serialized);
        add(&self.json_removed, s.json_removed);
        add(&self.json_wrapped, s.json_wrapped);
        add(&self.non_finite_attributes, s.non_finite_attributes);
    }

    pub fn list(&self) -> [(&'static str, u64); 9] {
        [
            ("value_truncated", self.values_truncated.load(Relaxed)),
            ("name_truncated", self.names_truncated.load(Relaxed)),
            ("attribute_dropped", self.attributes_dropped.load(Relaxed)),
            ("array_truncated", self.arrays_truncated.load(Relaxed)),
            ("value_serialized", self.values_serialized.load(Relaxed)),
            ("json_removed", self.json_removed.load(Relaxed)),
            ("json_wrapped", self.json_wrapped.load(Relaxed)),
            ("non_finite_attribute", self.non_finite_attributes.load(Relaxed)),
            ("record_shrunk", self.records_shrunk.load(Relaxed)),
        ]
    }
}

/// What `/metrics` shows for a sink.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Requests the receiver took.
    pub requests_sent: AtomicU64,
    /// Attempts answered with a retryable fault (sent again).
    pub requests_retried: AtomicU64,
    /// Requests refused for good.
    pub requests_failed: AtomicU64,
    /// Requests given up at `retry_elapsed` (or after their bounded
    /// transient retries).
    pub requests_expired: AtomicU64,
    /// Throttling answers (429, RESOURCE_EXHAUSTED) waited out.
    pub requests_throttled: AtomicU64,
    /// Requests split in halves (too large for the receiver, or to fit
    /// once compressed).
    pub requests_split: AtomicU64,
    /// Resource parts packed into requests (parts ÷ requests sent is the
    /// packing).
    pub parts_packed: AtomicU64,
    /// Bytes as sent of the requests taken.
    pub bytes_sent: AtomicU64,
    pub items_sent: AtomicU64,
    /// Items that entered the queue and were not delivered (every sender
    /// drop, and a memory queue's leftovers at shutdown).
    pub items_failed: AtomicU64,
    /// Items a receiver refused inside an accepted request.
    pub items_rejected: AtomicU64,
    pub drops: Drops,
    pub shaped: ShapedStats,
    /// Times the receiver refused our compression and we stepped down.
    pub compression_steps: AtomicU64,
    /// Queue reads that failed (retried) and pushes the queue refused
    /// (the sink retries).
    pub queue_errors: AtomicU64,
    /// Times the sender panicked and was started again.
    pub sender_restarts: AtomicU64,
    pub latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    pub latency_count: AtomicU64,
    pub latency_micros: AtomicU64,
}

impl ExportStats {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_micros.fetch_add(elapsed.as_micros() as u64, Relaxed);
    }
}
