//! The export queue between a sink and its sender: bounded in bytes, in
//! memory or on disk.
//!
//! One consumer (the sender) takes the oldest request with [`Queue::next`]
//! and calls [`Queue::ack`] once it is delivered or given up; until then
//! the request still counts against the bound, and on disk it is still
//! there after a crash, so delivery is at-least-once.
//!
//! When full, `block` makes the producer wait (backpressure reaches the
//! sources, which skip scrapes), and `drop_oldest` evicts the oldest
//! requests not being sent (counted).
//!
//! # On disk
//! Segment files `segment-NNNNNNNNNNNNNNNNNNNN.q` of checksummed records
//! ([`segment`]), each appended and fsynced before `push` returns — a
//! request the queue accepted survives `kill -9`; one it could not write
//! (a full disk) is cut back off the segment and refused, so the caller
//! still has it. A file `ack` holds the position of the oldest record
//! still needed ([`disk`]). On open, damaged records are skipped and
//! counted, never the good ones after them; a torn record at a segment's
//! end (a crash mid-write) is ignored; fully acknowledged segments are
//! deleted; writing goes on in a fresh segment.
//!
//! Disk work runs on tokio's blocking pool, never on a runtime thread.
//! Every count (bytes, requests, items) changes only after the store has
//! changed, so the counts stay exact on every error path.

pub mod disk;
pub mod segment;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::config::OnFull;
use super::encode::Encoded;
use disk::{Disk, ReadError};

/// What a request costs in memory beyond its payload.
const OVERHEAD: u64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the export queue is closed (shutting down)")]
    Closed,
    #[error("export queue at `{path}`: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("export queue: the disk worker failed: {0}")]
    Worker(String),
    #[error("export queue directory `{dir}` is in use by {holder} (each disk queue needs a directory of its own)")]
    Locked { dir: String, holder: String },
}

/// Counters `/metrics` and `/status` read.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Bytes held, including the request being sent.
    pub bytes: AtomicU64,
    /// Requests waiting (not the one being sent).
    pub requests: AtomicU64,
    /// Data points / log records held, including the request being sent.
    pub items: AtomicU64,
    /// Data points / log records evicted by `drop_oldest`.
    pub dropped_items: AtomicU64,
    /// Items in records found damaged on disk (skipped).
    pub lost_items: AtomicU64,
    /// Damaged records or byte ranges skipped on disk.
    pub damaged_records: AtomicU64,
    /// Appends that failed (the request was refused, the segment cut back).
    pub write_errors: AtomicU64,
    /// Reads that failed and will be tried again.
    pub read_errors: AtomicU64,
    /// Writes of the ack file that failed (a restart may send some
    /// requests again).
    pub ack_errors: AtomicU64,
}

enum Store {
    Memory { unread: VecDeque<Encoded>, in_flight: Option<Encoded> },
    Disk(Disk),
}

struct State {
    store: Store,
    bytes: u64,
    items: u64,
    closed: bool,
}

impl State {
    fn unread_len(&self) -> usize {
        match &self.store {
            Store::Memory { unread, .. } => unread.len(),
            Store::Disk(d) => d.unread.len(),
        }
    }
}

struct Inner {
    state: Mutex<State>,
    changed: tokio::sync::Notify,
    limit: u64,
    on_full: OnFull,
    stats: Arc<QueueStats>,
    /// A failure episode is logged when it starts, not on every request.
    failing_writes: AtomicBool,
    failing_acks: AtomicBool,
}

pub struct Queue {
    pub stats: Arc<QueueStats>,
    inner: Arc<Inner>,
    disk: bool,
}

enum Pushed {
    Added,
    Full(Encoded),
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, state: &State) {
        self.stats.bytes.store(state.bytes, Relaxed);
        self.stats.items.store(state.items, Relaxed);
        self.stats.requests.store(state.unread_len() as u64, Relaxed);
    }

    fn persist_ack(&self, d: &mut Disk) {
        match d.persist_ack() {
            Ok(()) => {
                if self.failing_acks.swap(false, Relaxed) {
                    tracing::info!("export queue: the ack file is written again");
                }
            }
            Err(e) => {
                self.stats.ack_errors.fetch_add(1, Relaxed);
                if !self.failing_acks.swap(true, Relaxed) {
                    tracing::error!(error = %e, "export queue: cannot record deliveries on disk; a restart would send some requests again");
                }
            }
        }
    }

    /// Evicts the oldest request not being sent; false when there is none.
    fn evict_oldest(&self, state: &mut State) -> bool {
        let evicted = match &mut state.store {
            Store::Memory { unread, .. } => unread.pop_front().map(|e| (e.payload.len() as u64 + OVERHEAD, e.items)),
            Store::Disk(d) => {
                let loc = d.unread.pop_front();
                if loc.is_some() {
                    self.persist_ack(d);
                }
                loc.map(|l| (l.len, l.items))
            }
        };
        let Some((bytes, items)) = evicted else { return false };
        state.bytes -= bytes.min(state.bytes);
        state.items -= u64::from(items).min(state.items);
        self.stats.dropped_items.fetch_add(u64::from(items), Relaxed);
        true
    }

    /// One try at adding: under the lock, so the room check and the add
    /// are one step.
    fn try_push(&self, item: Encoded) -> Result<Pushed, QueueError> {
        let mut state = self.lock();
        let overhead = if matches!(state.store, Store::Disk(_)) { segment::HEADER as u64 } else { OVERHEAD };
        let size = item.payload.len() as u64 + overhead;
        if state.closed {
            // the caller still has it (and counts it)
            return Err(QueueError::Closed);
        }
        if self.on_full == OnFull::DropOldest {
            while state.bytes + size > self.limit && self.evict_oldest(&mut state) {}
        }
        let room = state.bytes + size <= self.limit || state.bytes == 0 || self.on_full == OnFull::DropOldest;
        if !room {
            self.publish(&state);
            return Ok(Pushed::Full(item));
        }
        let items = item.items;
        let added = match &mut state.store {
            Store::Memory { unread, .. } => {
                unread.push_back(item);
                size
            }
            Store::Disk(d) => match d.append(&item) {
                Ok(loc) => {
                    d.unread.push_back(loc);
                    if self.failing_writes.swap(false, Relaxed) {
                        tracing::info!("export queue: writing to disk again");
                    }
                    loc.len
                }
                Err(e) => {
                    self.stats.write_errors.fetch_add(1, Relaxed);
                    if !self.failing_writes.swap(true, Relaxed) {
                        tracing::error!(error = %e, "export queue: a request could not be written; it was not accepted (the sink retries)");
                    }
                    self.publish(&state);
                    return Err(e);
                }
            },
        };
        state.bytes += added;
        state.items += u64::from(items);
        self.publish(&state);
        drop(state);
        self.changed.notify_waiters();
        Ok(Pushed::Added)
    }

    /// The oldest request if there is one; `Ok(None)` when there is none
    /// yet (or, once closed, none left: see `closed`).
    fn try_next(&self) -> Result<(Option<Encoded>, bool), QueueError> {
        let mut state = self.lock();
        let state = &mut *state;
        let item = match &mut state.store {
            Store::Memory { unread, in_flight } => unread.pop_front().inspect(|e| {
                *in_flight = Some(e.clone());
            }),
            Store::Disk(d) => loop {
                let Some(loc) = d.unread.pop_front() else { break None };
                match d.read(loc) {
                    Ok(e) => {
                        d.in_flight = Some(loc);
                        break Some(e);
                    }
                    Err(ReadError::Damaged(why)) => {
                        // the record is gone for good: count it and go on
                        // with the next one
                        state.bytes -= loc.len.min(state.bytes);
                        state.items -= u64::from(loc.items).min(state.items);
                        self.stats.damaged_records.fetch_add(1, Relaxed);
                        self.stats.lost_items.fetch_add(u64::from(loc.items), Relaxed);
                        tracing::error!(items = loc.items, %why, "export queue: a damaged request was skipped");
                        self.persist_ack(d);
                    }
                    Err(ReadError::Io(e)) => {
                        d.unread.push_front(loc);
                        self.stats.read_errors.fetch_add(1, Relaxed);
                        self.publish(state);
                        return Err(e);
                    }
                }
            },
        };
        self.publish(state);
        Ok((item, state.closed))
    }

    fn ack(&self) {
        let mut state = self.lock();
        let state = &mut *state;
        let freed = match &mut state.store {
            Store::Memory { in_flight, .. } => in_flight.take().map(|e| (e.payload.len() as u64 + OVERHEAD, e.items)),
            Store::Disk(d) => {
                let freed = d.in_flight.take().map(|l| (l.len, l.items));
                self.persist_ack(d);
                freed
            }
        };
        if let Some((bytes, items)) = freed {
            state.bytes -= bytes.min(state.bytes);
            state.items -= u64::from(items).min(state.items);
        }
        self.publish(state);
    }
}

impl Queue {
    pub fn memory(limit: u64, on_full: OnFull) -> Queue {
        Queue::with(Store::Memory { unread: VecDeque::new(), in_flight: None }, 0, 0, limit, on_full)
    }

    /// Opens (or creates) a disk queue; requests left by an earlier run are
    /// sent first. Damage found on the way is skipped, logged and counted.
    pub fn disk(dir: &Path, limit: u64, on_full: OnFull) -> Result<Queue, QueueError> {
        // segments small against the bound, so delivered data frees its
        // room as it goes rather than a whole bound at a time
        let segment = (limit / 8).clamp(1 << 20, disk::SEGMENT_BYTES);
        Queue::disk_with(dir, limit, on_full, segment)
    }

    pub(crate) fn disk_with(dir: &Path, limit: u64, on_full: OnFull, segment_bytes: u64) -> Result<Queue, QueueError> {
        let (mut disk, recovered) = Disk::open(dir)?;
        disk.segment_bytes = segment_bytes;
        let left = disk.unread.len();
        let bytes: u64 = disk.unread.iter().map(|l| l.len).sum();
        let items: u64 = disk.unread.iter().map(|l| u64::from(l.items)).sum();
        if left > 0 {
            tracing::info!(dir = %dir.display(), requests = left, items, bytes, "export queue: resuming requests left by an earlier run");
        }
        if recovered.ack_unreadable {
            tracing::error!(dir = %dir.display(), "export queue: the ack file is damaged; every request still on disk is sent again");
        }
        let queue = Queue::with(Store::Disk(disk), bytes, items, limit, on_full);
        queue.stats.damaged_records.store(recovered.damaged_records, Relaxed);
        queue.stats.lost_items.store(recovered.lost_items, Relaxed);
        Ok(queue)
    }

    fn with(store: Store, bytes: u64, items: u64, limit: u64, on_full: OnFull) -> Queue {
        let disk = matches!(store, Store::Disk(_));
        let stats = Arc::new(QueueStats::default());
        let inner = Inner {
            state: Mutex::new(State { store, bytes, items, closed: false }),
            changed: tokio::sync::Notify::new(),
            limit,
            on_full,
            stats: stats.clone(),
            failing_writes: AtomicBool::new(false),
            failing_acks: AtomicBool::new(false),
        };
        inner.publish(&inner.lock());
        Queue { stats, inner: Arc::new(inner), disk }
    }

    /// Runs `f` on the blocking pool for a disk queue (it may write and
    /// fsync), in place for a memory one.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Inner) -> T + Send + 'static) -> Result<T, QueueError> {
        if !self.disk {
            return Ok(f(&self.inner));
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(|e| QueueError::Worker(e.to_string()))
    }

    /// Adds a request; with `block`, waits while the queue is full. A
    /// request larger than the whole bound is still taken when the queue
    /// is empty, so nothing is stuck forever. On an error the request was
    /// not taken (a disk write failed and was cut back, or the queue is
    /// closed).
    pub async fn push(&self, mut item: Encoded) -> Result<(), QueueError> {
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.run(move |inner| inner.try_push(item)).await?? {
                Pushed::Added => return Ok(()),
                Pushed::Full(back) => item = back,
            }
            changed.await;
        }
    }

    /// The oldest request, waiting for one; `None` once closed and empty.
    /// Call [`Queue::ack`] when done with it.
    pub async fn next(&self) -> Result<Option<Encoded>, QueueError> {
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (item, closed) = self.run(|inner| inner.try_next()).await??;
            if item.is_some() || closed {
                return Ok(item);
            }
            changed.await;
        }
    }

    /// The request from [`Queue::next`] is delivered (or given up): free
    /// its room. A failure to record that on disk is counted and logged
    /// (the request may be sent again after a restart), not returned.
    pub async fn ack(&self) {
        if let Err(e) = self.run(|inner| inner.ack()).await {
            self.stats.ack_errors.fetch_add(1, Relaxed);
            tracing::error!(error = %e, "export queue: cannot record a delivery");
        }
        self.inner.changed.notify_waiters();
    }

    /// The request being sent goes back to the front (its sender is
    /// being restarted); the counts do not change.
    pub fn requeue_in_flight(&self) {
        let mut state = self.inner.lock();
        match &mut state.store {
            Store::Memory { unread, in_flight } => {
                if let Some(e) = in_flight.take() {
                    unread.push_front(e);
                }
            }
            Store::Disk(d) => {
                if let Some(loc) = d.in_flight.take() {
                    d.unread.push_front(loc);
                }
            }
        }
        self.inner.publish(&state);
        drop(state);
        self.inner.changed.notify_waiters();
    }

    /// No more pushes: waiting producers get [`QueueError::Closed`]; the
    /// consumer drains what is left and then gets `None`.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.inner.changed.notify_waiters();
    }

    /// The queue is closed and its consumer gone: a disk queue gives its
    /// directory up for whoever opens it next.
    pub fn release(&self) {
        if let Store::Disk(d) = &self.inner.lock().store {
            d.unlock();
        }
    }

    /// Requests and data items not yet taken by the consumer.
    pub fn pending(&self) -> (usize, u64) {
        let state = self.inner.lock();
        let in_flight = match &state.store {
            Store::Memory { in_flight, .. } => in_flight.as_ref().map_or(0, |e| e.items),
            Store::Disk(d) => d.in_flight.map_or(0, |l| l.items),
        };
        (state.unread_len(), state.items - u64::from(in_flight).min(state.items))
    }

    pub fn is_disk(&self) -> bool {
        self.disk
    }
}

#[cfg(test)]
mod tests;
