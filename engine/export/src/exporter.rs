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
use std::time::{Duration, Instant, SystemTime};

use backon::BackoffBuilder;
use dbintel_dsl::plan::SinkNode;
use dbintel_stdlib::Map;

use crate::config::{self, ExportConfig, QueueKind};
use crate::encode::{self, Limits, Shaped};
use crate::queue::{self, Queue};
use crate::transport::{self, Outcome, Transport};
use dbintel_core::record::{Batch, MetricKind, Number, Record, Temporality};
use dbintel_core::sink::{Sink, SinkError, SinkFailure};
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

/// What a sink did last, for `/status` and `/readyz`.
struct Health {
    last_outcome: Option<(Instant, String)>,
    last_delivery: Option<(Instant, SystemTime)>,
    /// The last delivery, or the last time nothing was waiting: the clock
    /// `retry_elapsed` runs against.
    progress_at: Instant,
}

/// A sink's state as `/status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportStatus {
    pub sink: String,
    pub endpoint: String,
    /// The compression requests go out with now (after negotiation).
    pub compression: &'static str,
    /// "delivered", "retrying: …", "refused: …", "gave up: …", "queue: …".
    pub last_outcome: Option<String>,
    pub last_outcome_age: Option<Duration>,
    pub last_delivery: Option<SystemTime>,
    pub queued_requests: u64,
    pub queued_items: u64,
    pub queued_bytes: u64,
    /// Set when nothing was delivered for longer than `retry_elapsed`
    /// while data waits: why the sink is not ready.
    pub stalled: Option<String>,
    /// Failures that were retried or skipped, by name (for `/metrics` too).
    pub failures: Vec<(&'static str, u64)>,
}

impl ExportStatus {
    pub fn to_json(&self) -> serde_json::Value {
        let unix = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default();
        serde_json::json!({
            "sink": self.sink,
            "endpoint": self.endpoint,
            "compression": self.compression,
            "last_outcome": self.last_outcome,
            "last_outcome_seconds_ago": self.last_outcome_age.map(|d| d.as_secs_f64()),
            "last_delivery_unix_seconds": self.last_delivery.map(unix),
            "queued": { "requests": self.queued_requests, "items": self.queued_items, "bytes": self.queued_bytes },
            "stalled": self.stalled,
            "failures": self.failures.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
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
    limits: Limits,
    cumulative: Mutex<Cumulative>,
    health: Arc<Mutex<Health>>,
    /// The compression in use, as the sender last saw it.
    compression: Arc<std::sync::atomic::AtomicU8>,
    stop: tokio::sync::watch::Sender<Option<Instant>>,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn compression_code(c: config::Compression) -> u8 {
    match c {
        config::Compression::None => 0,
        config::Compression::Gzip => 1,
        config::Compression::Zstd => 2,
    }
}

fn compression_name(code: u8) -> &'static str {
    match code {
        2 => "zstd",
        1 => "gzip",
        _ => "identity",
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
            queue: Arc::new(queue),
            stats: Arc::default(),
            limits: Limits::default(),
            cumulative: Mutex::default(),
            health: Arc::new(Mutex::new(Health { last_outcome: None, last_delivery: None, progress_at: Instant::now() })),
            compression: Arc::new(compression_code(config.compression).into()),
            config,
            stop,
            worker: Mutex::new(None),
        });
        let supervisor = Supervisor {
            name: name.to_string(),
            config: exporter.config.clone(),
            queue: exporter.queue.clone(),
            stats: exporter.stats.clone(),
            health: exporter.health.clone(),
            compression: exporter.compression.clone(),
            stop: stop_rx,
        };
        *lock(&exporter.worker) = Some(tokio::spawn(supervisor.run(transport)));
        tracing::info!(sink = %name, endpoint = %exporter.config.endpoint, protocol = ?exporter.config.protocol, compression = ?exporter.config.compression, "exporter started");
        Ok(exporter)
    }

    /// What the sink did last, what waits, and whether it is stalled.
    pub fn status(&self) -> ExportStatus {
        let now = Instant::now();
        let health = lock(&self.health);
        let (requests, items, bytes) =
            (self.queue.stats.requests.load(Relaxed), self.queue.stats.items.load(Relaxed), self.queue.stats.bytes.load(Relaxed));
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
            compression: compression_name(self.compression.load(Relaxed)),
            last_outcome,
            last_outcome_age: health.last_outcome.as_ref().map(|(at, _)| now.saturating_duration_since(*at)),
            last_delivery: health.last_delivery.map(|(_, t)| t),
            queued_requests: requests,
            queued_items: items,
            queued_bytes: bytes,
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
            ],
        }
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
            lock(&self.cumulative).apply(&resource, &mut batch);
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
        let worker = lock(&self.worker).take();
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

/// Retry delays: capped exponential with jitter, each within
/// [`config::Retry`]'s bounds (half to all of the nominal delay).
fn backoff(retry: config::Retry) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(retry.initial / 2)
        .with_max_delay(retry.max / 2)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

struct ExportSink {
    exporter: Arc<Exporter>,
}

impl Sink for ExportSink {
    /// Encodes and enqueues. A request the queue cannot take (a disk that
    /// is full or failing) is offered again with backoff: it is not lost,
    /// and the wait holds the pipeline back. Only a closed queue (the
    /// process is stopping) gives up, counted by the queue.
    fn consume(&mut self, batch: Batch) -> BoxFuture<'_, Result<(), SinkFailure>> {
        Box::pin(async move {
            let mut closed = None;
            for request in self.exporter.encode(batch) {
                let mut delays =
                    backoff(config::Retry { initial: Duration::from_millis(200), max: Duration::from_secs(5), elapsed: Duration::MAX });
                loop {
                    match self.exporter.queue.push(request.clone()).await {
                        Ok(()) => break,
                        Err(e @ queue::QueueError::Closed) => {
                            closed = Some(e);
                            break;
                        }
                        Err(e) => {
                            self.exporter.stats.queue_errors.fetch_add(1, Relaxed);
                            lock(&self.exporter.health).last_outcome = Some((Instant::now(), format!("queue: {e}")));
                            tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
                        }
                    }
                }
            }
            match closed {
                Some(e) => Err(SinkError::Export(e.to_string()).into()),
                None => Ok(()),
            }
        })
    }

    /// The exporter outlives the plan (see [`Exporter::shutdown`]).
    fn close(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Runs the sender and starts it again if it panics.
struct Supervisor {
    name: String,
    config: ExportConfig,
    queue: Arc<Queue>,
    stats: Arc<ExportStats>,
    health: Arc<Mutex<Health>>,
    compression: Arc<std::sync::atomic::AtomicU8>,
    stop: tokio::sync::watch::Receiver<Option<Instant>>,
}

impl Supervisor {
    async fn run(self, first: Transport) {
        let mut transport = Some(first);
        loop {
            let transport = match transport.take() {
                Some(t) => t,
                None => match Transport::new(&self.config) {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::error!(sink = %self.name, error = %e, "cannot set the sender up again; retrying");
                        if self.stop.borrow().is_some() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            let sender = Sender {
                name: self.name.clone(),
                transport,
                queue: self.queue.clone(),
                stats: self.stats.clone(),
                health: self.health.clone(),
                compression: self.compression.clone(),
                retry: self.config.retry,
                disk: matches!(self.config.queue, QueueKind::Disk(_)),
                stop: self.stop.clone(),
                causes: HashSet::new(),
            };
            match tokio::spawn(sender.run()).await {
                Ok(()) => return,
                Err(e) if e.is_cancelled() => return,
                Err(e) => {
                    self.stats.sender_restarts.fetch_add(1, Relaxed);
                    let why = e.into_panic();
                    let why = why.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| why.downcast_ref::<String>().cloned());
                    tracing::error!(sink = %self.name, panic = why.as_deref().unwrap_or("?"), "the sender panicked; starting it again (the request it held is sent again)");
                    lock(&self.health).last_outcome = Some((Instant::now(), "sender restarted after a panic".into()));
                    self.queue.requeue_in_flight();
                    if self.stop.borrow().is_some_and(|d| Instant::now() >= d) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// The sending side: one request at a time, oldest first.
struct Sender {
    name: String,
    transport: Transport,
    queue: Arc<Queue>,
    stats: Arc<ExportStats>,
    health: Arc<Mutex<Health>>,
    compression: Arc<std::sync::atomic::AtomicU8>,
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
    fn outcome(&self, what: String) {
        lock(&self.health).last_outcome = Some((Instant::now(), what));
    }

    async fn run(mut self) {
        let mut queue_delays = backoff(self.retry);
        let mut queue_failing = false;
        loop {
            if self.queue.pending().0 == 0 {
                // nothing waits on us: the stall clock starts again
                lock(&self.health).progress_at = Instant::now();
            }
            let item = match self.queue.next().await {
                Ok(Some(item)) => item,
                Ok(None) => return,
                Err(e) => {
                    self.stats.queue_errors.fetch_add(1, Relaxed);
                    self.outcome(format!("queue: {e}"));
                    if !queue_failing {
                        tracing::error!(sink = %self.name, error = %e, "export queue cannot be read; retrying");
                    }
                    queue_failing = true;
                    let delay = queue_delays.next().unwrap_or(self.retry.max);
                    if !self.pause(delay).await {
                        return;
                    }
                    continue;
                }
            };
            if std::mem::take(&mut queue_failing) {
                tracing::info!(sink = %self.name, "export queue readable again");
                queue_delays = backoff(self.retry);
            }
            match self.deliver(&item).await {
                Delivery::Done => self.queue.ack().await,
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
        let mut delays = backoff(self.retry);
        let mut attempt = 0u32;
        loop {
            if self.deadline_passed() {
                return Delivery::Interrupted;
            }
            let started = Instant::now();
            let outcome = self.transport.send(item, &self.stats.compression_steps).await;
            self.stats.observe(started.elapsed());
            self.compression.store(compression_code(self.transport.compression()), Relaxed);
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
                    let now = Instant::now();
                    let mut health = lock(&self.health);
                    health.last_outcome = Some((now, "delivered".into()));
                    health.last_delivery = Some((now, SystemTime::now()));
                    health.progress_at = now;
                    return Delivery::Done;
                }
                Outcome::Permanent { cause } => {
                    self.stats.requests_failed.fetch_add(1, Relaxed);
                    self.stats.items_failed.fetch_add(u64::from(item.items), Relaxed);
                    if self.causes.len() < 100 && self.causes.insert(cause.clone()) {
                        tracing::error!(sink = %self.name, %cause, signal = item.signal.as_str(), "the receiver refused the data; dropped (logged once per cause)");
                    }
                    self.outcome(format!("refused: {cause}"));
                    return Delivery::Done;
                }
                Outcome::Retry { after, cause } => {
                    attempt += 1;
                    // the server's delay wins over ours, within reason
                    let ours = delays.next().unwrap_or(self.retry.max);
                    let delay = after.map_or(ours, |a| a.min(self.retry.elapsed));
                    if first.elapsed() + delay > self.retry.elapsed {
                        self.stats.requests_expired.fetch_add(1, Relaxed);
                        self.stats.items_failed.fetch_add(u64::from(item.items), Relaxed);
                        tracing::error!(sink = %self.name, %cause, attempts = attempt, waited = ?first.elapsed(), "giving up on a request");
                        self.outcome(format!("gave up after {attempt} attempts: {cause}"));
                        return Delivery::Done;
                    }
                    self.stats.requests_retried.fetch_add(1, Relaxed);
                    if attempt == 1 || attempt.is_multiple_of(10) {
                        tracing::warn!(sink = %self.name, %cause, retry_in = ?delay, attempt, "export failed; will retry");
                    }
                    self.outcome(format!("retrying: {cause}"));
                    if !self.pause(delay).await {
                        return Delivery::Interrupted;
                    }
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
