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
//! Segment files `segment-NNNNNNNNNNNNNNNNNNNN.q` of records
//! `[payload length u32][crc32 u32][signal u8][items u32][payload]`, each
//! appended and fsynced before `push` returns — a request the queue
//! accepted survives `kill -9`. A file `ack` holds the position of the
//! oldest record still needed, replaced atomically (write, fsync,
//! rename). On open, a torn record at a segment's end (a crash mid-write)
//! is cut off, fully acknowledged segments are deleted, and writing goes
//! on in a fresh segment.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use super::config::OnFull;
use super::encode::{Encoded, Signal};

const HEADER: usize = 13;
const SEGMENT_BYTES: u64 = 16 << 20;
/// What a request costs in memory beyond its payload.
const OVERHEAD: u64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the export queue is closed (shutting down)")]
    Closed,
    #[error("export queue at `{path}`: {error}")]
    Io { path: String, error: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QueueError + '_ {
    move |error| QueueError::Io { path: path.display().to_string(), error }
}

/// Counters `/metrics` reads.
#[derive(Debug, Default)]
pub struct QueueStats {
    pub bytes: AtomicU64,
    pub requests: AtomicU64,
    /// Data points / log records evicted by `drop_oldest` or refused at
    /// shutdown.
    pub dropped_items: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Loc {
    segment: u64,
    offset: u64,
    /// Record length including the header.
    len: u64,
}

struct Disk {
    dir: PathBuf,
    unread: VecDeque<Loc>,
    writer: File,
    write_segment: u64,
    write_offset: u64,
    in_flight: Option<Loc>,
    /// The oldest segment file that may still exist.
    oldest_segment: u64,
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("segment-{segment:020}.q"))
}

fn checksum(signal: u8, items: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&[signal]);
    h.update(&items.to_le_bytes());
    h.update(payload);
    h.finalize()
}

impl Disk {
    fn open(dir: &Path) -> Result<(Disk, u64), QueueError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let ack_path = dir.join("ack");
        let (ack_segment, ack_offset) = match fs::read_to_string(&ack_path) {
            Ok(text) => {
                let mut parts = text.split_whitespace().map(|p| p.parse::<u64>().unwrap_or(0));
                (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
            }
            Err(_) => (0, 0),
        };
        let mut segments: Vec<u64> = fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("segment-")?.strip_suffix(".q")?.parse().ok())
            .collect();
        segments.sort_unstable();
        let mut unread = VecDeque::new();
        let mut bytes = 0;
        for &segment in &segments {
            let path = segment_path(dir, segment);
            if segment < ack_segment {
                fs::remove_file(&path).map_err(io(&path))?;
                continue;
            }
            let start = if segment == ack_segment { ack_offset } else { 0 };
            let data = fs::read(&path).map_err(io(&path))?;
            let mut at = start as usize;
            while at + HEADER <= data.len() {
                let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap_or_default()) as usize;
                let crc = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap_or_default());
                let signal = data[at + 8];
                let items = u32::from_le_bytes(data[at + 9..at + 13].try_into().unwrap_or_default());
                let end = at + HEADER + len;
                if end > data.len() || checksum(signal, items, &data[at + HEADER..end]) != crc || Signal::from_u8(signal).is_none() {
                    break;
                }
                unread.push_back(Loc { segment, offset: at as u64, len: (HEADER + len) as u64 });
                bytes += (HEADER + len) as u64;
                at = end;
            }
            if at < data.len() {
                tracing::warn!(segment = %path.display(), bytes = data.len() - at, "export queue: cut a torn record at the end of a segment");
                let file = OpenOptions::new().write(true).open(&path).map_err(io(&path))?;
                file.set_len(at as u64).map_err(io(&path))?;
            }
        }
        let write_segment = segments.last().map_or(0, |s| s + 1).max(ack_segment);
        let path = segment_path(dir, write_segment);
        let writer = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        let write_offset = writer.metadata().map_err(io(&path))?.len();
        let oldest_segment = segments.iter().copied().find(|s| *s >= ack_segment).unwrap_or(write_segment);
        let disk = Disk { dir: dir.to_path_buf(), unread, writer, write_segment, write_offset, in_flight: None, oldest_segment };
        Ok((disk, bytes))
    }

    fn append(&mut self, item: &Encoded) -> Result<u64, QueueError> {
        if self.write_offset >= SEGMENT_BYTES {
            self.write_segment += 1;
            let path = segment_path(&self.dir, self.write_segment);
            self.writer = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
            self.write_offset = 0;
        }
        let signal = item.signal.as_u8();
        let mut record = Vec::with_capacity(HEADER + item.payload.len());
        record.extend_from_slice(&(item.payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&checksum(signal, item.items, &item.payload).to_le_bytes());
        record.push(signal);
        record.extend_from_slice(&item.items.to_le_bytes());
        record.extend_from_slice(&item.payload);
        let path = segment_path(&self.dir, self.write_segment);
        self.writer.write_all(&record).map_err(io(&path))?;
        self.writer.sync_data().map_err(io(&path))?;
        let len = record.len() as u64;
        self.unread.push_back(Loc { segment: self.write_segment, offset: self.write_offset, len });
        self.write_offset += len;
        Ok(len)
    }

    fn read(&self, loc: Loc) -> Result<Encoded, QueueError> {
        let path = segment_path(&self.dir, loc.segment);
        let mut file = File::open(&path).map_err(io(&path))?;
        file.seek(SeekFrom::Start(loc.offset)).map_err(io(&path))?;
        let mut record = vec![0; loc.len as usize];
        file.read_exact(&mut record).map_err(io(&path))?;
        let signal = Signal::from_u8(record[8]).unwrap_or(Signal::Metrics);
        let items = u32::from_le_bytes(record[9..13].try_into().unwrap_or_default());
        Ok(Encoded { signal, items, payload: bytes::Bytes::from(record).slice(HEADER..) })
    }

    /// Records where the oldest record still needed starts, and deletes
    /// segments before it.
    fn persist_ack(&mut self) -> Result<(), QueueError> {
        let (segment, offset) = match self.in_flight.or(self.unread.front().copied()) {
            Some(loc) => (loc.segment, loc.offset),
            None => (self.write_segment, self.write_offset),
        };
        let tmp = self.dir.join("ack.tmp");
        let mut file = File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(format!("{segment} {offset}\n").as_bytes()).map_err(io(&tmp))?;
        file.sync_data().map_err(io(&tmp))?;
        let ack = self.dir.join("ack");
        fs::rename(&tmp, &ack).map_err(io(&ack))?;
        // segments wholly acknowledged: only when the oldest one needed
        // moves on (not a directory scan per delivered request)
        while self.oldest_segment < segment {
            let _ = fs::remove_file(segment_path(&self.dir, self.oldest_segment));
            self.oldest_segment += 1;
        }
        Ok(())
    }
}

enum Store {
    Memory { unread: VecDeque<Encoded>, in_flight: u64 },
    Disk(Disk),
}

struct State {
    store: Store,
    bytes: u64,
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

pub struct Queue {
    state: Mutex<State>,
    changed: tokio::sync::Notify,
    limit: u64,
    on_full: OnFull,
    pub stats: QueueStats,
}

impl Queue {
    pub fn memory(limit: u64, on_full: OnFull) -> Queue {
        Queue::with(Store::Memory { unread: VecDeque::new(), in_flight: 0 }, 0, limit, on_full)
    }

    /// Opens (or creates) a disk queue; requests left by an earlier run are
    /// sent first.
    pub fn disk(dir: &Path, limit: u64, on_full: OnFull) -> Result<Queue, QueueError> {
        let (disk, bytes) = Disk::open(dir)?;
        let left = disk.unread.len();
        if left > 0 {
            tracing::info!(dir = %dir.display(), requests = left, bytes, "export queue: resuming requests left by an earlier run");
        }
        Ok(Queue::with(Store::Disk(disk), bytes, limit, on_full))
    }

    fn with(store: Store, bytes: u64, limit: u64, on_full: OnFull) -> Queue {
        let queue = Queue {
            state: Mutex::new(State { store, bytes, closed: false }),
            changed: tokio::sync::Notify::new(),
            limit,
            on_full,
            stats: QueueStats::default(),
        };
        {
            let state = queue.lock();
            queue.publish(&state);
        }
        queue
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, state: &State) {
        self.stats.bytes.store(state.bytes, Relaxed);
        self.stats.requests.store(state.unread_len() as u64, Relaxed);
    }

    /// Evicts the oldest request not being sent; false when there is none.
    fn evict_oldest(&self, state: &mut State) -> Result<bool, QueueError> {
        let evicted = match &mut state.store {
            Store::Memory { unread, .. } => unread.pop_front().map(|e| (e.payload.len() as u64 + OVERHEAD, u64::from(e.items))),
            Store::Disk(d) => match d.unread.pop_front() {
                Some(loc) => {
                    let items = d.read(loc).map(|e| u64::from(e.items)).unwrap_or(0);
                    d.persist_ack()?;
                    Some((loc.len, items))
                }
                None => None,
            },
        };
        Ok(match evicted {
            Some((bytes, items)) => {
                state.bytes -= bytes.min(state.bytes);
                self.stats.dropped_items.fetch_add(items, Relaxed);
                true
            }
            None => false,
        })
    }

    /// Adds a request; with `block`, waits while the queue is full. A
    /// request larger than the whole bound is still taken when the queue
    /// is empty, so nothing is stuck forever.
    pub async fn push(&self, item: Encoded) -> Result<(), QueueError> {
        let size = item.payload.len() as u64 + OVERHEAD;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.lock();
                if state.closed {
                    self.stats.dropped_items.fetch_add(u64::from(item.items), Relaxed);
                    return Err(QueueError::Closed);
                }
                if self.on_full == OnFull::DropOldest {
                    while state.bytes + size > self.limit && self.evict_oldest(&mut state)? {}
                }
                if state.bytes + size <= self.limit || state.bytes == 0 || self.on_full == OnFull::DropOldest {
                    let added = match &mut state.store {
                        Store::Memory { unread, .. } => {
                            unread.push_back(item);
                            size
                        }
                        Store::Disk(d) => d.append(&item)?,
                    };
                    state.bytes += added;
                    self.publish(&state);
                    drop(state);
                    self.changed.notify_waiters();
                    return Ok(());
                }
            }
            changed.await;
        }
    }

    /// The oldest request, waiting for one; `None` once closed and empty.
    /// Call [`Queue::ack`] when done with it.
    pub async fn next(&self) -> Result<Option<Encoded>, QueueError> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.lock();
                let item = match &mut state.store {
                    Store::Memory { unread, in_flight } => unread.pop_front().inspect(|e| {
                        *in_flight = e.payload.len() as u64 + OVERHEAD;
                    }),
                    Store::Disk(d) => match d.unread.pop_front() {
                        Some(loc) => {
                            d.in_flight = Some(loc);
                            Some(d.read(loc)?)
                        }
                        None => None,
                    },
                };
                if item.is_some() || state.closed {
                    self.publish(&state);
                    return Ok(item);
                }
            }
            changed.await;
        }
    }

    /// The request from [`Queue::next`] is delivered (or given up): free
    /// its room.
    pub fn ack(&self) -> Result<(), QueueError> {
        let mut state = self.lock();
        let freed = match &mut state.store {
            Store::Memory { in_flight, .. } => std::mem::take(in_flight),
            Store::Disk(d) => {
                let freed = d.in_flight.take().map_or(0, |l| l.len);
                d.persist_ack()?;
                freed
            }
        };
        state.bytes -= freed.min(state.bytes);
        self.publish(&state);
        drop(state);
        self.changed.notify_waiters();
        Ok(())
    }

    /// No more pushes: waiting producers get [`QueueError::Closed`]; the
    /// consumer drains what is left and then gets `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_waiters();
    }

    /// Requests and data items not yet taken by the consumer.
    pub fn pending(&self) -> (usize, u64) {
        let state = self.lock();
        let items = match &state.store {
            Store::Memory { unread, .. } => unread.iter().map(|e| u64::from(e.items)).sum(),
            Store::Disk(d) => d.unread.iter().filter_map(|l| d.read(*l).ok()).map(|e| u64::from(e.items)).sum(),
        };
        (state.unread_len(), items)
    }

    pub fn is_disk(&self) -> bool {
        matches!(self.lock().store, Store::Disk(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u32, size: usize) -> Encoded {
        Encoded { signal: Signal::Metrics, items: n, payload: vec![n as u8; size].into() }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dbintel-queue-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test]
    async fn drop_oldest_keeps_the_newest_within_the_bound() {
        let q = Queue::memory(3 * (100 + OVERHEAD), OnFull::DropOldest);
        for n in 1..=5 {
            q.push(item(n, 100)).await.unwrap();
        }
        assert!(q.stats.bytes.load(Relaxed) <= 3 * (100 + OVERHEAD));
        assert_eq!(q.stats.dropped_items.load(Relaxed), 1 + 2);
        assert_eq!(q.next().await.unwrap().map(|e| e.items), Some(3));
    }

    #[tokio::test]
    async fn block_waits_until_the_consumer_acks() {
        let q = std::sync::Arc::new(Queue::memory(100 + OVERHEAD, OnFull::Block));
        q.push(item(1, 100)).await.unwrap();
        let producer = {
            let q = q.clone();
            tokio::spawn(async move { q.push(item(2, 100)).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!producer.is_finished(), "a full queue must block the producer");
        assert_eq!(q.next().await.unwrap().map(|e| e.items), Some(1));
        q.ack().unwrap();
        producer.await.unwrap().unwrap();
        assert_eq!(q.next().await.unwrap().map(|e| e.items), Some(2));
    }

    #[tokio::test]
    async fn disk_queue_survives_reopening_and_redelivers_unacked() {
        let dir = scratch("reopen");
        {
            let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
            for n in 1..=4 {
                q.push(item(n, 1000)).await.unwrap();
            }
            assert_eq!(q.next().await.unwrap().map(|e| e.items), Some(1));
            q.ack().unwrap();
            // taken but never acknowledged: must come back
            assert_eq!(q.next().await.unwrap().map(|e| e.items), Some(2));
        }
        let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
        let mut seen = Vec::new();
        q.close();
        while let Some(e) = q.next().await.unwrap() {
            assert_eq!(e.payload.len(), 1000);
            assert!(e.payload.iter().all(|&b| b == e.items as u8));
            seen.push(e.items);
            q.ack().unwrap();
        }
        assert_eq!(seen, [2, 3, 4]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_the_rest_kept() {
        let dir = scratch("torn");
        {
            let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
            q.push(item(7, 500)).await.unwrap();
            q.push(item(8, 500)).await.unwrap();
        }
        // a crash in the middle of writing a third record
        let segment = segment_path(&dir, 0);
        let mut f = OpenOptions::new().append(true).open(&segment).unwrap();
        f.write_all(&[200, 1, 0, 0, 9, 9]).unwrap();
        drop(f);
        let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
        assert_eq!(q.pending(), (2, 15));
        let _ = fs::remove_dir_all(&dir);
    }
}
