//! OTLP export: the `otlp` and `newrelic` sinks.
//!
//! A sink node shapes each batch to New Relic's limits, encodes it into
//! protobuf export requests of at most 1 MB, and pushes them into a queue
//! bounded in bytes ([`queue`]). A sender task takes requests from the
//! queue one at a time and delivers them ([`transport`]), retrying with
//! capped exponential backoff, or as long as the server asks, until the
//! give-up time.
//!
//! The [`Exporter`] (queue and sender) outlives a plan: a reload that
//! keeps a sink's settings hands the same exporter to the new plan, so
//! nothing queued is lost or sent twice.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dbintel_dsl::plan::SinkNode;
use dbintel_stdlib::Map;

use crate::config::{self, ExportConfig, QueueKind};
use crate::encode::{self, Limits, Shaped};
use crate::queue::{self, Queue};
use crate::transport::{self, Outcome, Transport};
use dbintel_core::record::{Batch, MetricKind, Number, Record, Temporality};
use dbintel_core::sink::{Sink, SinkError};
use dbintel_core::BoxFuture;

/// Upper bounds (seconds) of the export latency histogram.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// What `/metrics` shows for a sink.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub requests_sent: AtomicU64,
    pub requests_retried: AtomicU64,
    pub requests_failed: AtomicU64,
    pub requests_expired: AtomicU64,
    pub items_sent: AtomicU64,
    /// Items dropped for good: permanent errors and give-ups.
    pub items_failed: AtomicU64,
    /// Items a receiver refused inside an accepted request.
    pub items_rejected: AtomicU64,
    pub values_truncated: AtomicU64,
    pub names_truncated: AtomicU64,
    pub attributes_dropped: AtomicU64,
    pub latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    pub latency_count: AtomicU64,
    pub latency_micros: AtomicU64,
}

impl ExportStats {
    fn observe(&self, elapsed: Duration) {
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

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("sink `{sink}`: {error}")]
    Config { sink: String, error: config::ConfigError },
    #[error("sink `{sink}`: {error}")]
    Transport { sink: String, error: transport::TransportError },
    #[error("sink `{sink}`: {error}")]
    Queue { sink: String, error: queue::QueueError },
}

/// Running sums for `temporality = cumulative`: the total since the first
/// delta seen for each series.
#[derive(Default)]
struct Cumulative {
    series: HashMap<u64, (u64, Number)>,
}

const MAX_CUMULATIVE_SERIES: usize = 200_000;

impl Cumulative {
    fn apply(&mut self, resource: &Map, batch: &mut Batch) {
        for record in &mut batch.records {
            let Record::Metric(m) = record else { continue };
            let MetricKind::Sum { monotonic, temporality: Temporality::Delta } = m.kind else { continue };
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for (k, v) in resource.iter().chain(m.attributes.iter()) {
                k.hash(&mut h);
                format!("{v:?}").hash(&mut h);
            }
            m.name.hash(&mut h);
            if self.series.len() >= MAX_CUMULATIVE_SERIES {
                // a restart of every series beats unbounded memory
                tracing::warn!(series = self.series.len(), "cumulative temporality: too many series; starting the sums again");
                self.series.clear();
            }
            let start = if m.start_time_unix_nano != 0 { m.start_time_unix_nano } else { m.time_unix_nano };
            let entry = self.series.entry(h.finish()).or_insert((start, Number::Int(0)));
            entry.1 = match (entry.1, m.value) {
                (Number::Int(a), Number::Int(b)) => Number::Int(a.saturating_add(b)),
                (a, b) => Number::Double(as_f64(a) + as_f64(b)),
            };
            m.value = entry.1;
            m.start_time_unix_nano = entry.0;
            m.kind = MetricKind::Sum { monotonic, temporality: Temporality::Cumulative };
        }
    }
}

fn as_f64(n: Number) -> f64 {
    match n {
        Number::Int(i) => i as f64,
        Number::Double(d) => d,
    }
}

pub struct Exporter {
    pub name: String,
    /// The sink as the plan declared it: a reload that keeps it equal keeps
    /// this exporter.
    pub declared: SinkNode,
    pub config: ExportConfig,
    pub queue: Arc<Queue>,
    pub stats: Arc<ExportStats>,
    limits: Limits,
    cumulative: Mutex<Cumulative>,
    stop: tokio::sync::watch::Sender<Option<Instant>>,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Exporter {
    /// Resolves the configuration, opens the queue and starts the sender.
    /// Needs a tokio runtime.
    pub fn start(name: &str, sink: &SinkNode) -> Result<Arc<Exporter>, ExportError> {
        let config = ExportConfig::resolve(sink, &config::ProcessEnv).map_err(|error| ExportError::Config { sink: name.into(), error })?;
        Exporter::start_with(name, sink, config)
    }

    pub fn start_with(name: &str, sink: &SinkNode, config: ExportConfig) -> Result<Arc<Exporter>, ExportError> {
        let transport = Transport::new(&config).map_err(|error| ExportError::Transport { sink: name.into(), error })?;
        let queue = match &config.queue {
            QueueKind::Memory => Queue::memory(config.queue_bytes, config.on_full),
            QueueKind::Disk(dir) => {
                Queue::disk(dir, config.queue_bytes, config.on_full).map_err(|error| ExportError::Queue { sink: name.into(), error })?
            }
        };
        let (stop, stop_rx) = tokio::sync::watch::channel(None);
        let exporter = Arc::new(Exporter {
            name: name.to_string(),
            declared: sink.clone(),
            config,
            queue: Arc::new(queue),
            stats: Arc::default(),
            limits: Limits::default(),
            cumulative: Mutex::default(),
            stop,
            worker: Mutex::new(None),
        });
        let sender = Sender {
            name: name.to_string(),
            transport,
            queue: exporter.queue.clone(),
            stats: exporter.stats.clone(),
            retry: exporter.config.retry,
            disk: matches!(exporter.config.queue, QueueKind::Disk(_)),
            stop: stop_rx,
            causes: HashSet::new(),
        };
        *exporter.worker.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::spawn(sender.run()));
        tracing::info!(sink = %name, endpoint = %exporter.config.endpoint, protocol = ?exporter.config.protocol, compression = ?exporter.config.compression, "exporter started");
        Ok(exporter)
    }

    /// The sink node's side: shape, encode, enqueue.
    pub fn sink(self: &Arc<Exporter>) -> Box<dyn Sink> {
        Box::new(ExportSink { exporter: self.clone() })
    }

    /// Shapes and encodes a batch into requests (what the sink enqueues).
    pub fn encode(&self, mut batch: Batch) -> Vec<encode::Encoded> {
        let mut shaped = Shaped::default();
        for record in &mut batch.records {
            encode::shape(record, &self.limits, &mut shaped);
        }
        self.stats.values_truncated.fetch_add(shaped.values_truncated, Relaxed);
        self.stats.names_truncated.fetch_add(shaped.names_truncated, Relaxed);
        self.stats.attributes_dropped.fetch_add(shaped.attributes_dropped, Relaxed);
        let mut resource = self.config.resource.clone();
        for (k, v) in batch.resource.attributes.iter() {
            resource.insert(k, v.clone());
        }
        if self.config.cumulative {
            self.cumulative.lock().unwrap_or_else(|p| p.into_inner()).apply(&resource, &mut batch);
        }
        let scope = encode::scope(&self.declared.kind, &resource);
        encode::requests(&batch, &resource, &scope, &self.limits)
    }

    /// Closes the queue and lets the sender drain it until `deadline`.
    /// What is still queued then stays on disk (disk queue) or is counted
    /// as lost (memory queue).
    pub async fn shutdown(&self, deadline: Instant) {
        self.queue.close();
        let _ = self.stop.send(Some(deadline));
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(worker) = worker {
            let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(500);
            if tokio::time::timeout(left, worker).await.is_err() {
                tracing::warn!(sink = %self.name, "exporter did not stop by the deadline");
            }
        }
        let (requests, items) = self.queue.pending();
        if requests > 0 {
            if self.queue.is_disk() {
                tracing::info!(sink = %self.name, requests, items, "left in the disk queue for the next start");
            } else {
                self.stats.items_failed.fetch_add(items, Relaxed);
                tracing::error!(sink = %self.name, requests, items, "shutdown deadline reached: queued data not delivered");
            }
        }
    }
}

struct ExportSink {
    exporter: Arc<Exporter>,
}

impl Sink for ExportSink {
    fn consume(&mut self, batch: Batch) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            for request in self.exporter.encode(batch) {
                self.exporter.queue.push(request).await.map_err(|e| SinkError::Export(e.to_string()))?;
            }
            Ok(())
        })
    }

    /// The exporter outlives the plan (see [`Exporter::shutdown`]).
    fn close(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The sending side: one request at a time, oldest first.
struct Sender {
    name: String,
    transport: Transport,
    queue: Arc<Queue>,
    stats: Arc<ExportStats>,
    retry: config::Retry,
    disk: bool,
    stop: tokio::sync::watch::Receiver<Option<Instant>>,
    /// Permanent failure causes already logged (each is logged once).
    causes: HashSet<String>,
}

enum Delivery {
    Done,
    /// The shutdown deadline came first: leave the request where it is.
    Interrupted,
}

impl Sender {
    async fn run(mut self) {
        loop {
            let item = match self.queue.next().await {
                Ok(Some(item)) => item,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(sink = %self.name, error = %e, "export queue failed; sending stopped");
                    return;
                }
            };
            match self.deliver(&item).await {
                Delivery::Done => {
                    if let Err(e) = self.queue.ack() {
                        tracing::error!(sink = %self.name, error = %e, "export queue: cannot record a delivery");
                    }
                }
                Delivery::Interrupted => {
                    if self.disk {
                        tracing::info!(sink = %self.name, items = item.items, "shutdown deadline reached: the request being retried stays in the disk queue");
                    } else {
                        self.stats.items_failed.fetch_add(u64::from(item.items), Relaxed);
                        tracing::error!(sink = %self.name, items = item.items, "shutdown deadline reached: queued data not delivered (the request being retried)");
                    }
                    return;
                }
            }
        }
    }

    fn deadline_passed(&self) -> bool {
        self.stop.borrow().is_some_and(|d| Instant::now() >= d)
    }

    /// Waits `delay`, or less if the shutdown deadline comes first; false
    /// when it did.
    async fn pause(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            let deadline = *self.stop.borrow();
            let wake = deadline.map_or(until, |d| d.min(until));
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                changed = self.stop.changed() => if changed.is_err() { return false } else { continue },
            }
            return !self.deadline_passed();
        }
    }

    async fn deliver(&mut self, item: &encode::Encoded) -> Delivery {
        let first = Instant::now();
        let mut backoff = self.retry.initial;
        let mut attempt = 0u32;
        loop {
            if self.deadline_passed() {
                return Delivery::Interrupted;
            }
            let started = Instant::now();
            let outcome = self.transport.send(item).await;
            self.stats.observe(started.elapsed());
            match outcome {
                Outcome::Accepted { rejected, message } => {
                    self.stats.requests_sent.fetch_add(1, Relaxed);
                    self.stats.items_sent.fetch_add(u64::from(item.items).saturating_sub(rejected.max(0) as u64), Relaxed);
                    if rejected > 0 || !message.is_empty() {
                        self.stats.items_rejected.fetch_add(rejected.max(0) as u64, Relaxed);
                        tracing::warn!(sink = %self.name, rejected, message = %message, "the receiver accepted the request only in part");
                    }
                    if attempt > 0 {
                        tracing::info!(sink = %self.name, attempts = attempt + 1, "delivered after retrying");
                    }
                    return Delivery::Done;
                }
                Outcome::Permanent { cause } => {
                    self.stats.requests_failed.fetch_add(1, Relaxed);
                    self.stats.items_failed.fetch_add(u64::from(item.items), Relaxed);
                    if self.causes.len() < 100 && self.causes.insert(cause.clone()) {
                        tracing::error!(sink = %self.name, %cause, signal = item.signal.as_str(), "the receiver refused the data; dropped (logged once per cause)");
                    }
                    return Delivery::Done;
                }
                Outcome::Retry { after, cause } => {
                    attempt += 1;
                    // the server's delay wins over ours, within reason
                    let delay = after.map_or(backoff, |a| a.min(self.retry.elapsed));
                    if first.elapsed() + delay > self.retry.elapsed {
                        self.stats.requests_expired.fetch_add(1, Relaxed);
                        self.stats.items_failed.fetch_add(u64::from(item.items), Relaxed);
                        tracing::error!(sink = %self.name, %cause, attempts = attempt, waited = ?first.elapsed(), "giving up on a request");
                        return Delivery::Done;
                    }
                    self.stats.requests_retried.fetch_add(1, Relaxed);
                    if attempt == 1 || attempt.is_multiple_of(10) {
                        tracing::warn!(sink = %self.name, %cause, retry_in = ?delay, attempt, "export failed; will retry");
                    }
                    if !self.pause(delay).await {
                        return Delivery::Interrupted;
                    }
                    backoff = (backoff * 2).min(self.retry.max);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbintel_core::record::{MetricPoint, Resource};

    fn delta(name: &str, value: i64, time: u64, attrs: &[(&str, &str)]) -> Record {
        let mut map = Map::new();
        for (k, v) in attrs {
            map.insert(*k, dbintel_stdlib::Value::Str(v.to_string()));
        }
        let kind = MetricKind::Sum { monotonic: true, temporality: Temporality::Delta };
        Record::Metric(MetricPoint::new(name, "1", kind, Number::Int(value), time, map))
    }

    #[test]
    fn cumulative_temporality_sums_deltas_per_series_from_the_first_start() {
        let mut c = Cumulative::default();
        let resource = Map::new();
        let mut totals = Vec::new();
        for (t, (a, b)) in [(3, 5), (4, 0), (10, 1)].into_iter().enumerate() {
            let time = 100 + t as u64;
            let mut batch = Batch::new(
                Resource::default(),
                vec![delta("calls", a, time, &[("q", "1")]), delta("calls", b, time, &[("q", "2")]), delta("rows", a, time, &[("q", "1")])],
            );
            c.apply(&resource, &mut batch);
            for r in &batch.records {
                let Record::Metric(m) = r else { continue };
                assert_eq!(m.kind, MetricKind::Sum { monotonic: true, temporality: Temporality::Cumulative });
                assert_eq!(m.start_time_unix_nano, 100, "a series starts at its first delta");
                totals.push(m.value);
            }
        }
        let ints: Vec<i64> = totals.iter().map(|n| if let Number::Int(i) = n { *i } else { -1 }).collect();
        assert_eq!(ints, [3, 5, 3, 7, 5, 7, 17, 6, 17]);
    }
}
