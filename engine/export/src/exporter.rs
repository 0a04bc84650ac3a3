//! OTLP export: the `otlp` and `newrelic` sinks.
//!
//! A sink node shapes each batch to the backend's limits ([`crate::shape`]),
//! encodes it into one part per resource ([`crate::encode`]), and hands the
//! parts to the sink's packer ([`crate::pack`]), shared by every pipeline
//! feeding the sink: parts ready together leave together, in requests of
//! up to the size limit as sent. Sealed requests wait in a queue bounded
//! in bytes ([`crate::queue`]); a sender task ([`crate::sender`]) delivers
//! them one at a time.
//!
//! The [`Exporter`] (packer, queue and sender) outlives a plan: a reload
//! that keeps a sink's settings hands the same exporter to the new plan,
//! so nothing queued is lost or sent twice.
//!
//! What is packing (at most `linger`, 200 ms) is memory, like what a
//! `batch` node holds: a disk queue keeps what it has accepted through
//! `kill -9`, and SIGTERM seals what is packing into the queue first.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use dbintel_dsl::plan::SinkNode;
use dbintel_stdlib::Map;

use crate::compression::Negotiated;
use crate::config::{self, ExportConfig, QueueKind};
use crate::encode::{self, Part};
use crate::pack::{Fit, Packer};
use crate::queue::{self, Queue};
use crate::sender::{backoff, Supervisor};
use crate::shape::{self, Shaped};
use crate::stats::ExportStats;
use crate::transport::{self, Transport};
use dbintel_core::record::{Batch, MetricKind, Number, Record, Temporality};
use dbintel_core::sink::{Sink, SinkError, SinkFailure};
use dbintel_core::BoxFuture;

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

/// What a sink did last, for `/status` and `/readyz`.
pub(crate) struct Health {
    pub last_outcome: Option<(Instant, String)>,
    pub last_delivery: Option<(Instant, SystemTime)>,
    /// The last delivery, or the last time nothing was waiting: the clock
    /// `retry_elapsed` runs against.
    pub progress_at: Instant,
}

/// A sink's state as `/status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportStatus {
    pub sink: String,
    pub endpoint: String,
    pub protocol: &'static str,
    /// The compression requests go out with now (after negotiation).
    pub compression: &'static str,
    /// "delivered", "retrying: …", "throttled: …", "refused: …", "gave up:
    /// …", "queue: …".
    pub last_outcome: Option<String>,
    pub last_outcome_age: Option<Duration>,
    pub last_delivery: Option<SystemTime>,
    pub queued_requests: u64,
    pub queued_items: u64,
    pub queued_bytes: u64,
    /// Items and raw bytes in requests still open for more parts.
    pub packing_items: u64,
    pub packing_bytes: u64,
    /// Set when nothing was delivered for longer than `retry_elapsed`
    /// while data waits: why the sink is not ready.
    pub stalled: Option<String>,
    /// Failures that were retried or skipped, by name (for `/metrics` too).
    pub failures: Vec<(&'static str, u64)>,
    /// Items that will never arrive, by cause.
    pub dropped: Vec<(&'static str, u64)>,
    /// Changes made to fit the backend's limits.
    pub shaped: Vec<(&'static str, u64)>,
    /// Requests sent, and resource parts packed into them.
    pub requests_sent: u64,
    pub parts_packed: u64,
}

impl ExportStatus {
    pub fn to_json(&self) -> serde_json::Value {
        let unix = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default();
        let map = |list: &[(&str, u64)]| list.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>();
        serde_json::json!({
            "sink": self.sink,
            "endpoint": self.endpoint,
            "protocol": self.protocol,
            "compression": self.compression,
            "last_outcome": self.last_outcome,
            "last_outcome_seconds_ago": self.last_outcome_age.map(|d| d.as_secs_f64()),
            "last_delivery_unix_seconds": self.last_delivery.map(unix),
            "queued": { "requests": self.queued_requests, "items": self.queued_items, "bytes": self.queued_bytes },
            "packing": { "items": self.packing_items, "bytes": self.packing_bytes },
            "requests_sent": self.requests_sent,
            "parts_packed": self.parts_packed,
            "stalled": self.stalled,
            "failures": map(&self.failures),
            "dropped": map(&self.dropped),
            "shaped": map(&self.shaped),
        })
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
    packer: Mutex<Packer>,
    /// The largest request as sent the receiver takes, as learned (a 413
    /// lowers it below the configured limit).
    limit: Arc<AtomicUsize>,
    cumulative: Mutex<Cumulative>,
    health: Arc<Mutex<Health>>,
    /// What the receiver decodes; the packer compresses with what it says.
    negotiated: Arc<Negotiated>,
    stop: tokio::sync::watch::Sender<Option<Instant>>,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
    linger: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Tells the linger task to stop once what it holds is queued.
    linger_stop: Arc<tokio::sync::Notify>,
    /// Items the linger task has sealed and not yet queued (a shutdown
    /// that cannot wait for them counts them lost).
    lingering: AtomicU64,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Exporter {
    /// Resolves the configuration, opens the queue and starts the sender.
    /// Needs a tokio runtime.
    pub fn start(name: &str, sink: &SinkNode) -> Result<Arc<Exporter>, ExportError> {
        let config = ExportConfig::resolve(sink, &config::ProcessEnv).map_err(|error| ExportError::Config { sink: name.into(), error })?;
        Exporter::start_with(name, sink, config)
    }

    pub fn start_with(name: &str, sink: &SinkNode, config: ExportConfig) -> Result<Arc<Exporter>, ExportError> {
        let negotiated = Arc::new(Negotiated::new(config.compression));
        let transport =
            Transport::with(&config, negotiated.clone()).map_err(|error| ExportError::Transport { sink: name.into(), error })?;
        let queue = match &config.queue {
            QueueKind::Memory => Queue::memory(config.queue_bytes, config.on_full),
            QueueKind::Disk(dir) => {
                Queue::disk(dir, config.queue_bytes, config.on_full).map_err(|error| ExportError::Queue { sink: name.into(), error })?
            }
        };
        let (stop, stop_rx) = tokio::sync::watch::channel(None);
        let limit = config.limits.max_request_bytes;
        let exporter = Arc::new(Exporter {
            name: name.to_string(),
            declared: sink.clone(),
            queue: Arc::new(queue),
            stats: Arc::default(),
            packer: Mutex::new(Packer::new(limit, config.linger)),
            limit: Arc::new(AtomicUsize::new(limit)),
            cumulative: Mutex::default(),
            health: Arc::new(Mutex::new(Health { last_outcome: None, last_delivery: None, progress_at: Instant::now() })),
            negotiated,
            config,
            stop,
            worker: Mutex::new(None),
            linger: Mutex::new(None),
            linger_stop: Arc::default(),
            lingering: AtomicU64::new(0),
        });
        let supervisor = Supervisor {
            name: name.to_string(),
            config: exporter.config.clone(),
            queue: exporter.queue.clone(),
            stats: exporter.stats.clone(),
            health: exporter.health.clone(),
            negotiated: exporter.negotiated.clone(),
            limit: exporter.limit.clone(),
            stop: stop_rx,
        };
        *lock(&exporter.worker) = Some(tokio::spawn(supervisor.run(transport)));
        *lock(&exporter.linger) = Some(tokio::spawn(linger(Arc::downgrade(&exporter), exporter.linger_stop.clone())));
        let c = &exporter.config;
        tracing::info!(sink = %name, endpoint = %c.endpoint, protocol = ?c.protocol, compression = ?c.compression, "exporter started");
        for note in &c.notes {
            tracing::warn!(sink = %name, "{note}");
        }
        Ok(exporter)
    }

    /// Items that will never arrive, by cause (the sender's, shaping's and
    /// the queue's).
    pub fn drops(&self) -> Vec<(&'static str, u64)> {
        let q = &self.queue.stats;
        let mut list = self.stats.drops.list().to_vec();
        list.push(("queue_full", q.dropped_items.load(Relaxed)));
        list.push(("damaged_on_disk", q.lost_items.load(Relaxed)));
        list
    }

    /// What the sink did last, what waits, and whether it is stalled.
    pub fn status(&self) -> ExportStatus {
        let now = Instant::now();
        let health = lock(&self.health);
        let (requests, items, bytes) =
            (self.queue.stats.requests.load(Relaxed), self.queue.stats.items.load(Relaxed), self.queue.stats.bytes.load(Relaxed));
        let (packing_items, packing_bytes) = lock(&self.packer).pending();
        let waited = now.saturating_duration_since(health.progress_at);
        let last_outcome = health.last_outcome.as_ref().map(|(_, o)| o.clone());
        let stalled = (items > 0 && waited > self.config.retry.elapsed).then(|| {
            format!(
                "sink `{}`: nothing delivered for {}s (retry_elapsed is {}s) while {items} items wait; last: {}",
                self.name,
                waited.as_secs(),
                self.config.retry.elapsed.as_secs(),
                last_outcome.as_deref().unwrap_or("no attempt yet")
            )
        });
        ExportStatus {
            sink: self.name.clone(),
            endpoint: self.config.endpoint.clone(),
            protocol: match self.config.protocol {
                config::Protocol::Grpc => "grpc",
                config::Protocol::Http => "http/protobuf",
            },
            compression: crate::compression::name(self.negotiated.current()),
            last_outcome,
            last_outcome_age: health.last_outcome.as_ref().map(|(at, _)| now.saturating_duration_since(*at)),
            last_delivery: health.last_delivery.map(|(_, t)| t),
            queued_requests: requests,
            queued_items: items,
            queued_bytes: bytes,
            packing_items,
            packing_bytes,
            stalled,
            failures: vec![
                ("compression_steps", self.stats.compression_steps.load(Relaxed)),
                ("queue_errors", self.stats.queue_errors.load(Relaxed)),
                ("sender_restarts", self.stats.sender_restarts.load(Relaxed)),
                ("queue_write_errors", self.queue.stats.write_errors.load(Relaxed)),
                ("queue_read_errors", self.queue.stats.read_errors.load(Relaxed)),
                ("queue_ack_errors", self.queue.stats.ack_errors.load(Relaxed)),
                ("queue_damaged_records", self.queue.stats.damaged_records.load(Relaxed)),
                ("queue_lost_items", self.queue.stats.lost_items.load(Relaxed)),
                ("throttled", self.stats.requests_throttled.load(Relaxed)),
                ("retried", self.stats.requests_retried.load(Relaxed)),
                ("split", self.stats.requests_split.load(Relaxed)),
            ],
            dropped: self.drops(),
            shaped: self.stats.shaped.list().to_vec(),
            requests_sent: self.stats.requests_sent.load(Relaxed),
            parts_packed: self.stats.parts_packed.load(Relaxed),
        }
    }

    /// The sink node's side: shape, encode, pack, enqueue.
    pub fn sink(self: &Arc<Exporter>) -> Box<dyn Sink> {
        Box::new(ExportSink { exporter: self.clone() })
    }

    /// Shapes and encodes a batch into parts, one per resource (what the
    /// sink packs). What shaping changes or drops is counted.
    pub fn encode(&self, mut batch: Batch) -> Vec<Part> {
        let limits = &self.config.limits;
        let mut shaped = Shaped::default();
        // the target's own attributes first: they name the entity, and
        // the cap keeps the first ones
        let mut resource = batch.resource.attributes.clone();
        for (k, v) in self.config.resource.iter() {
            if resource.get(k).is_none() {
                resource.insert(k, v.clone());
            }
        }
        shape::shape_resource(&mut resource, limits, &mut shaped);
        let cutoff = limits.cutoff(SystemTime::now());
        let attributes = resource.len();
        batch.records.retain_mut(|r| shape::shape(r, attributes, cutoff, limits, &mut shaped));
        self.count_shaped(&shaped);
        if self.config.cumulative {
            lock(&self.cumulative).apply(&resource, &mut batch);
        }
        let scope = encode::scope(&self.declared.kind, &resource);
        let (parts, fitted) = encode::parts(&batch.records, &resource, &scope, limits.max_request_bytes);
        self.stats.shaped.records_shrunk.fetch_add(fitted.shrunk, Relaxed);
        self.stats.shaped.json_removed.fetch_add(fitted.json_removed, Relaxed);
        self.dropped_too_large(fitted.too_large);
        parts
    }

    fn count_shaped(&self, shaped: &Shaped) {
        self.stats.shaped.add(shaped);
        let drops = &self.stats.drops;
        if shaped.non_finite_points > 0 {
            drops.non_finite.fetch_add(shaped.non_finite_points, Relaxed);
            tracing::debug!(sink = %self.name, points = shaped.non_finite_points, "points with a NaN or infinite value dropped");
        }
        if shaped.expired > 0 {
            drops.expired.fetch_add(shaped.expired, Relaxed);
            tracing::warn!(sink = %self.name, records = shaped.expired, "records older than the backend keeps were not sent (counted as expired)");
        }
    }

    fn dropped_too_large(&self, items: u64) {
        if items > 0 {
            self.stats.drops.too_large.fetch_add(items, Relaxed);
            tracing::error!(sink = %self.name, items, "a record too large for one request, with nothing left to cut, was dropped");
        }
    }

    /// Packs parts; returns the requests they completed.
    fn pack(&self, parts: Vec<Part>) -> Vec<Fit> {
        let compression = self.negotiated.current();
        let now = Instant::now();
        let mut packer = lock(&self.packer);
        packer.set_limit(self.limit.load(Relaxed));
        let mut sealed = Vec::new();
        for part in parts {
            self.stats.parts_packed.fetch_add(1, Relaxed);
            match packer.add(part, compression, now) {
                Ok(fits) => sealed.extend(fits),
                Err(e) => tracing::error!(sink = %self.name, error = %e, "compressing a request failed; its data is dropped"),
            }
        }
        if self.config.linger <= Duration::from_millis(1) {
            // no waiting for more: what this batch made leaves now
            match packer.due(now, compression, true) {
                Ok(fits) => sealed.extend(fits),
                Err(e) => tracing::error!(sink = %self.name, error = %e, "compressing a request failed; its data is dropped"),
            }
        }
        sealed
    }

    /// Puts sealed requests in the queue. A request the queue cannot take
    /// (a disk that is full or failing) is offered again with backoff: it
    /// is not lost, and the wait holds the pipeline back. Only a closed
    /// queue (the process is stopping) gives up, counted by the queue.
    /// `held`, when given, counts down what is still in hand.
    async fn enqueue(&self, sealed: Vec<Fit>, held: Option<&AtomicU64>) -> Result<(), queue::QueueError> {
        let mut closed = None;
        for fit in sealed {
            self.stats.shaped.records_shrunk.fetch_add(fit.shrunk, Relaxed);
            self.stats.shaped.json_removed.fetch_add(fit.json_removed, Relaxed);
            self.dropped_too_large(fit.too_large);
            for request in fit.requests {
                if closed.is_some() {
                    // the queue closed under us: the process is stopping
                    self.stats.drops.shutdown.fetch_add(u64::from(request.items), Relaxed);
                    self.stats.items_failed.fetch_add(u64::from(request.items), Relaxed);
                    continue;
                }
                let mut delays =
                    backoff(config::Retry { initial: Duration::from_millis(200), max: Duration::from_secs(5), elapsed: Duration::MAX });
                loop {
                    match self.queue.push(request.clone()).await {
                        Ok(()) => {
                            if let Some(held) = held {
                                held.fetch_sub(u64::from(request.items), Relaxed);
                            }
                            break;
                        }
                        Err(e @ queue::QueueError::Closed) => {
                            self.stats.drops.shutdown.fetch_add(u64::from(request.items), Relaxed);
                            self.stats.items_failed.fetch_add(u64::from(request.items), Relaxed);
                            closed = Some(e);
                            break;
                        }
                        Err(e) => {
                            self.stats.queue_errors.fetch_add(1, Relaxed);
                            lock(&self.health).last_outcome = Some((Instant::now(), format!("queue: {e}")));
                            let wait = delays.next().unwrap_or(Duration::from_secs(5));
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }
        }
        closed.map_or(Ok(()), Err)
    }

    /// Closes the queue and lets the sender drain it until `deadline`.
    /// What is still packing goes into the queue first. What is still
    /// queued then stays on disk (disk queue) or is counted as lost
    /// (memory queue).
    pub async fn shutdown(&self, deadline: Instant) {
        // a moment for the queue to take what is packing even when the
        // deadline has passed (a reload retires a disk queue at once)
        let flush_by = deadline.max(Instant::now() + Duration::from_secs(2));
        // the linger task may hold sealed requests waiting for room in the
        // queue: they are queued before it stops, or counted
        let task = lock(&self.linger).take();
        if let Some(mut task) = task {
            self.linger_stop.notify_one();
            if tokio::time::timeout_at(flush_by.into(), &mut task).await.is_err() {
                task.abort();
                let lost = self.lingering.swap(0, Relaxed);
                if lost > 0 {
                    self.stats.drops.shutdown.fetch_add(lost, Relaxed);
                    self.stats.items_failed.fetch_add(lost, Relaxed);
                    tracing::error!(sink = %self.name, items = lost, "shutdown deadline reached: the queue never took the last requests");
                }
            }
        }
        let sealed = lock(&self.packer).due(Instant::now(), self.negotiated.current(), true).unwrap_or_default();
        let waiting: u64 = sealed.iter().flat_map(|f| &f.requests).map(|r| u64::from(r.items)).sum();
        if tokio::time::timeout_at(flush_by.into(), self.enqueue(sealed, None)).await.is_err() {
            self.stats.drops.shutdown.fetch_add(waiting, Relaxed);
            self.stats.items_failed.fetch_add(waiting, Relaxed);
            tracing::error!(sink = %self.name, items = waiting, "shutdown deadline reached: the queue never took the last requests");
        }
        self.queue.close();
        let _ = self.stop.send(Some(deadline));
        let worker = lock(&self.worker).take();
        let mut stopped = true;
        if let Some(worker) = worker {
            let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(500);
            if tokio::time::timeout(left, worker).await.is_err() {
                stopped = false;
                tracing::warn!(sink = %self.name, "exporter did not stop by the deadline");
            }
        }
        let (requests, items) = self.queue.pending();
        let held = self.queue.stats.items.load(Relaxed);
        if self.queue.is_disk() && held > 0 {
            tracing::info!(sink = %self.name, items = held, "left in the disk queue for the next start");
        } else if requests > 0 {
            {
                self.stats.drops.shutdown.fetch_add(items, Relaxed);
                self.stats.items_failed.fetch_add(items, Relaxed);
                tracing::error!(sink = %self.name, requests, items, "shutdown deadline reached: queued data not delivered");
            }
        }
        // a sender still running keeps the directory: two owners would
        // share its records
        if stopped {
            self.queue.release();
        }
    }
}

/// Seals requests that have waited their linger and queues them.
/// Stops when told to, never while it holds sealed requests: those are
/// out of the packer, so stopping then would lose them without a trace.
async fn linger(exporter: Weak<Exporter>, stop: Arc<tokio::sync::Notify>) {
    loop {
        let wake = match exporter.upgrade() {
            Some(e) => lock(&e.packer).next_due().unwrap_or_else(|| Instant::now() + e.config.linger.max(Duration::from_millis(50))),
            None => return,
        };
        tokio::select! {
            () = tokio::time::sleep_until(wake.max(Instant::now() + Duration::from_millis(5)).into()) => {}
            () = stop.notified() => return,
        }
        let Some(e) = exporter.upgrade() else { return };
        let sealed = lock(&e.packer).due(Instant::now(), e.negotiated.current(), false);
        match sealed {
            Ok(sealed) if !sealed.is_empty() => {
                let items: u64 = sealed.iter().flat_map(|f| &f.requests).map(|r| u64::from(r.items)).sum();
                e.lingering.store(items, Relaxed);
                let queued = e.enqueue(sealed, Some(&e.lingering)).await;
                e.lingering.store(0, Relaxed);
                if queued.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(err) => tracing::error!(sink = %e.name, error = %err, "compressing a request failed; its data is dropped"),
        }
    }
}

struct ExportSink {
    exporter: Arc<Exporter>,
}

impl Sink for ExportSink {
    /// Shapes, encodes and packs; queues the requests that filled up.
    fn consume(&mut self, batch: Batch) -> BoxFuture<'_, Result<(), SinkFailure>> {
        Box::pin(async move {
            let parts = self.exporter.encode(batch);
            let sealed = self.exporter.pack(parts);
            self.exporter.enqueue(sealed, None).await.map_err(|e| SinkError::Export(e.to_string()).into())
        })
    }

    /// The exporter outlives the plan (see [`Exporter::shutdown`]).
    fn close(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
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
