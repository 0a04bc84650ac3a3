//! The sending side of a sink: one request at a time, oldest first, until
//! it is delivered or its loss is counted.
//!
//! Before a request goes out it is made to fit: data older than the
//! backend keeps is removed (counted as expired), and a request over the
//! size limit as sent (a receiver that refused a smaller one, or a
//! compression the receiver made us step down from) is split
//! ([`crate::pack::fit`]). Then its answer decides:
//!
//! - accepted: delivered (a partial success counts what was rejected);
//! - throttled (429, `RESOURCE_EXHAUSTED` from New Relic): wait — as long
//!   as the server asks, or with capped exponential backoff — and send
//!   again, until `retry_elapsed`;
//! - retryable (the network, 502/503/504, `UNAVAILABLE`): the same;
//! - transient (New Relic's HTTP 500/530, gRPC `UNKNOWN`/`INTERNAL`):
//!   sent again at most [`TRANSIENT_ATTEMPTS`] times;
//! - too large (413, a gRPC "larger than max"): split in halves and each
//!   half sent; the limit is lowered for what is packed next; a single
//!   record is shrunk;
//! - refused for good: dropped, counted by cause, logged once per cause.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use backon::BackoffBuilder;

use crate::compression::Negotiated;
use crate::config::{self, ExportConfig, QueueKind};
use crate::encode::Encoded;
use crate::exporter::{lock, Health};
use crate::queue::Queue;
use crate::shape::Limits;
use crate::stats::ExportStats;
use crate::transport::{Outcome, Transport};
use crate::{pack, reshape};

/// Attempts at a request answered with a transient fault before it is
/// given up (New Relic: "retry a bounded number of times").
pub const TRANSIENT_ATTEMPTS: u32 = 5;
/// A receiver's refusals never lower the request size below this.
const MIN_LIMIT: usize = 1 << 10;

/// Retry delays: capped exponential with jitter, each within
/// [`config::Retry`]'s bounds (half to all of the nominal delay).
pub fn backoff(retry: config::Retry) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(retry.initial / 2)
        .with_max_delay(retry.max / 2)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Runs the sender and starts it again if it panics.
pub(crate) struct Supervisor {
    pub name: String,
    pub config: ExportConfig,
    pub queue: Arc<Queue>,
    pub stats: Arc<ExportStats>,
    pub health: Arc<Mutex<Health>>,
    pub negotiated: Arc<Negotiated>,
    pub limit: Arc<AtomicUsize>,
    pub stop: tokio::sync::watch::Receiver<Option<Instant>>,
}

impl Supervisor {
    pub async fn run(self, first: Transport) {
        let mut transport = Some(first);
        loop {
            let transport = match transport.take() {
                Some(t) => t,
                None => match Transport::with(&self.config, self.negotiated.clone()) {
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
                negotiated: self.negotiated.clone(),
                limit: self.limit.clone(),
                limits: self.config.limits,
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

struct Sender {
    name: String,
    transport: Transport,
    queue: Arc<Queue>,
    stats: Arc<ExportStats>,
    health: Arc<Mutex<Health>>,
    negotiated: Arc<Negotiated>,
    limit: Arc<AtomicUsize>,
    limits: Limits,
    retry: config::Retry,
    disk: bool,
    stop: tokio::sync::watch::Receiver<Option<Instant>>,
    /// Causes already logged (each is logged once).
    causes: HashSet<String>,
}

enum Delivery {
    Done,
    /// The shutdown deadline came first: leave the request where it is.
    Interrupted,
}

/// How one request (or part of one) ended.
enum Settled {
    /// Delivered, or its loss counted.
    Done,
    /// Too large for the receiver: split it.
    TooLarge,
    /// The compression changed under it: fit it again.
    Refit,
    Interrupted,
}

impl Sender {
    fn outcome(&self, what: String) {
        lock(&self.health).last_outcome = Some((Instant::now(), what));
    }

    /// Logs `what` the first time `cause` is seen (at most 100 causes).
    fn once(&mut self, cause: &str) -> bool {
        self.causes.len() < 100 && self.causes.insert(cause.to_string())
    }

    /// Items that will never arrive.
    fn lost(&self, counter: &AtomicU64, items: u32) {
        counter.fetch_add(u64::from(items), Relaxed);
        self.stats.items_failed.fetch_add(u64::from(items), Relaxed);
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
            match self.deliver(item).await {
                Delivery::Done => self.queue.ack().await,
                Delivery::Interrupted => return,
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

    /// A request's protobuf, or its loss counted (bytes that do not
    /// decompress: damage the checksums missed).
    fn raw(&self, item: &Encoded) -> Option<Vec<u8>> {
        match item.raw() {
            Ok(raw) => Some(raw),
            Err(e) => {
                self.queue.stats.lost_items.fetch_add(u64::from(item.items), Relaxed);
                self.stats.items_failed.fetch_add(u64::from(item.items), Relaxed);
                tracing::error!(sink = %self.name, items = item.items, error = %e, "a queued request cannot be read; dropped");
                None
            }
        }
    }

    /// Splits (or shrinks) what does not fit `limit` as sent now.
    fn fit(&self, item: &Encoded, raw: Vec<u8>, limit: usize) -> Vec<Encoded> {
        match pack::fit(item.signal, raw, item.items, item.oldest, self.negotiated.current(), limit) {
            Ok(fit) => {
                if fit.requests.len() > 1 {
                    self.stats.requests_split.fetch_add(1, Relaxed);
                }
                self.stats.shaped.records_shrunk.fetch_add(fit.shrunk, Relaxed);
                self.stats.shaped.json_removed.fetch_add(fit.json_removed, Relaxed);
                if fit.too_large > 0 {
                    self.lost(&self.stats.drops.too_large, fit.too_large as u32);
                    tracing::error!(sink = %self.name, items = fit.too_large, "a record too large for one request, with nothing left to cut, was dropped");
                }
                fit.requests
            }
            Err(e) => {
                self.lost(&self.stats.drops.refused, item.items);
                tracing::error!(sink = %self.name, error = %e, "cannot compress a request; dropped");
                Vec::new()
            }
        }
    }

    /// The requests to send for a queued one: expired data out, the rest
    /// within the limit in the compression the receiver takes now.
    fn prepare(&mut self, item: Encoded) -> VecDeque<Encoded> {
        let mut item = item;
        let mut raw = None;
        if let Some(cutoff) = self.limits.cutoff(SystemTime::now()) {
            if item.oldest == 0 || item.oldest < cutoff {
                let Some(bytes) = self.raw(&item) else { return VecDeque::new() };
                match reshape::drop_older_than(item.signal, &bytes, cutoff) {
                    Some((left, gone)) if gone > 0 => {
                        self.lost(&self.stats.drops.expired, gone);
                        if self.once("expired") {
                            tracing::warn!(sink = %self.name, items = gone, "queued data older than the backend keeps was not sent (counted as expired; logged once)");
                        }
                        let Some(left) = left else { return VecDeque::new() };
                        item.items = item.items.saturating_sub(gone);
                        item.oldest = cutoff;
                        raw = Some(left);
                    }
                    _ => raw = Some(bytes),
                }
            }
        }
        let limit = self.limit.load(Relaxed);
        if raw.is_none() && item.encoding == self.negotiated.current() && item.payload.len() <= limit {
            return VecDeque::from([item]);
        }
        let raw = match raw {
            Some(r) => r,
            None => match self.raw(&item) {
                Some(r) => r,
                None => return VecDeque::new(),
            },
        };
        self.fit(&item, raw, limit).into()
    }

    async fn deliver(&mut self, item: Encoded) -> Delivery {
        let mut work = self.prepare(item);
        // transient faults are bounded per queued request, across its
        // splits and refits
        let mut transient = 0u32;
        while let Some(request) = work.pop_front() {
            match self.settle(&request, &mut transient).await {
                Settled::Done => {}
                Settled::TooLarge => {
                    // the receiver takes less than we thought: remember it
                    // for what is packed next, and split this one
                    let refused = request.payload.len();
                    let learned = (refused * 3 / 4).max(MIN_LIMIT);
                    if learned < self.limit.load(Relaxed) {
                        self.limit.store(learned, Relaxed);
                        tracing::warn!(sink = %self.name, refused_bytes = refused, limit_bytes = learned, "the receiver refused a request as too large; requests are held below that from now on");
                    }
                    let Some(raw) = self.raw(&request) else { continue };
                    let limit = learned.min(refused.saturating_sub(1)).max(1);
                    for part in self.fit(&request, raw, limit).into_iter().rev() {
                        work.push_front(part);
                    }
                }
                Settled::Refit => {
                    let Some(raw) = self.raw(&request) else { continue };
                    for part in self.fit(&request, raw, self.limit.load(Relaxed)).into_iter().rev() {
                        work.push_front(part);
                    }
                }
                Settled::Interrupted => {
                    let items: u32 = request.items + work.iter().map(|r| r.items).sum::<u32>();
                    if self.disk {
                        tracing::info!(sink = %self.name, items, "shutdown deadline reached: the request being sent stays in the disk queue");
                    } else {
                        self.lost(&self.stats.drops.shutdown, items);
                        tracing::error!(sink = %self.name, items, "shutdown deadline reached: queued data not delivered (the request being sent)");
                    }
                    return Delivery::Interrupted;
                }
            }
        }
        Delivery::Done
    }

    /// Sends one request until it is delivered, its loss counted, or it
    /// must be split.
    async fn settle(&mut self, request: &Encoded, transient: &mut u32) -> Settled {
        let first = Instant::now();
        let mut delays = backoff(self.retry);
        let mut attempt = 0u32;
        loop {
            if self.deadline_passed() {
                return Settled::Interrupted;
            }
            if request.encoding != self.negotiated.current() {
                return Settled::Refit;
            }
            let started = Instant::now();
            let outcome = self.transport.send(request, &self.stats.compression_steps).await;
            self.stats.observe(started.elapsed());
            let (after, cause, throttled) = match outcome {
                Outcome::Accepted { rejected, message } => {
                    let rejected = u32::try_from(rejected.max(0)).unwrap_or(u32::MAX).min(request.items);
                    self.stats.requests_sent.fetch_add(1, Relaxed);
                    self.stats.bytes_sent.fetch_add(request.payload.len() as u64, Relaxed);
                    self.stats.items_sent.fetch_add(u64::from(request.items - rejected), Relaxed);
                    if rejected > 0 || !message.is_empty() {
                        self.stats.items_rejected.fetch_add(u64::from(rejected), Relaxed);
                        self.lost(&self.stats.drops.rejected, rejected);
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
                    return Settled::Done;
                }
                Outcome::TooLarge { cause } => {
                    if self.once(&format!("too large: {cause}")) {
                        tracing::warn!(sink = %self.name, %cause, bytes = request.payload.len(), items = request.items, "the receiver refused a request as too large; sending it in halves (logged once per cause)");
                    }
                    self.stats.requests_split.fetch_add(1, Relaxed);
                    return Settled::TooLarge;
                }
                Outcome::Permanent { cause, auth } => {
                    self.stats.requests_failed.fetch_add(1, Relaxed);
                    let counter = if auth { &self.stats.drops.unauthorized } else { &self.stats.drops.refused };
                    self.lost(counter, request.items);
                    if self.once(&cause) {
                        tracing::error!(sink = %self.name, %cause, signal = request.signal.as_str(), "the receiver refused the data; dropped (logged once per cause)");
                    }
                    self.outcome(format!("refused: {cause}"));
                    return Settled::Done;
                }
                Outcome::Transient { cause } => {
                    *transient += 1;
                    if *transient >= TRANSIENT_ATTEMPTS {
                        self.stats.requests_expired.fetch_add(1, Relaxed);
                        self.lost(&self.stats.drops.transient, request.items);
                        tracing::error!(sink = %self.name, %cause, attempts = *transient, "a transient fault persisted; giving up on the request");
                        self.outcome(format!("gave up after {transient} transient faults: {cause}"));
                        return Settled::Done;
                    }
                    (None, cause, false)
                }
                Outcome::Throttled { after, cause } => (after, cause, true),
                Outcome::Retry { after, cause } => (after, cause, false),
            };
            attempt += 1;
            // the server's delay wins over ours, within reason
            let ours = delays.next().unwrap_or(self.retry.max);
            let delay = after.map_or(ours, |a| a.min(self.retry.elapsed));
            if first.elapsed() + delay > self.retry.elapsed {
                self.stats.requests_expired.fetch_add(1, Relaxed);
                self.lost(&self.stats.drops.gave_up, request.items);
                tracing::error!(sink = %self.name, %cause, attempts = attempt, waited = ?first.elapsed(), "giving up on a request");
                self.outcome(format!("gave up after {attempt} attempts: {cause}"));
                return Settled::Done;
            }
            if throttled {
                self.stats.requests_throttled.fetch_add(1, Relaxed);
            } else {
                self.stats.requests_retried.fetch_add(1, Relaxed);
            }
            if attempt == 1 || attempt.is_multiple_of(10) {
                let what = if throttled { "the receiver is throttling; will retry" } else { "export failed; will retry" };
                tracing::warn!(sink = %self.name, %cause, retry_in = ?delay, attempt, "{what}");
            }
            self.outcome(format!("{}: {cause}", if throttled { "throttled" } else { "retrying" }));
            if !self.pause(delay).await {
                return Settled::Interrupted;
            }
        }
    }
}
