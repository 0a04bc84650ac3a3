//! The disk queue's files: segments of records ([`super::segment`]), the
//! `ack` file holding where the oldest record still needed starts, and
//! the `lock` file that makes the directory one owner's.
//!
//! Every state change here happens only once the disk has said yes: an
//! append that fails (a full disk, a failed fsync) truncates the segment
//! back to where the record began and is reported; the record was not
//! accepted. The in-memory index (where each record is, how many items
//! it holds) is what the queue counts from, so no count ever needs a
//! read.
//!
//! A full disk never stops delivery for good. Recording a delivery never
//! needs new space: the ack file is written when the queue opens and
//! rewritten in place after that. And a full disk frees itself as the
//! sender delivers: segments wholly delivered are deleted, and when an
//! append fails in a segment whose records are all delivered, that
//! segment is closed and deleted and the append tried again in a new one
//! (otherwise the segment being written, never "before" the acknowledged
//! position, would hold the disk forever).
//!
//! The directory is locked (`flock` on `lock`, which names the owner's
//! pid) for as long as the queue is open: a second sink or a second
//! process naming the same directory gets a clear error, not a share of
//! each other's records.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::super::encode::Encoded;
use super::segment;
use super::QueueError;

/// A segment is closed and a new one started past this size.
pub const SEGMENT_BYTES: u64 = 16 << 20;
/// `{segment:020} {offset:020} {crc:08x}\n`
const ACK_LEN: usize = 51;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QueueError + '_ {
    move |error| QueueError::Io { path: path.display().to_string(), error }
}

pub fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("segment-{segment:020}.q"))
}

/// Where a record is, and what the queue needs to know of it without
/// reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub segment: u64,
    pub offset: u64,
    /// Including the header.
    pub len: u64,
    pub items: u32,
}

/// What opening found that was lost (logged and counted by the queue).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    pub damaged_records: u64,
    pub lost_items: u64,
    pub damaged_bytes: u64,
    /// The ack file could not be read: everything still on disk is sent
    /// again (duplicates rather than loss).
    pub ack_unreadable: bool,
}

/// Why a record could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The bytes on disk are not the record that was written (or the
    /// segment is gone): skip it, counted.
    Damaged(String),
    /// The read itself failed: try again later.
    Io(QueueError),
}

struct Writer {
    file: File,
    segment: u64,
    offset: u64,
}

pub struct Disk {
    dir: PathBuf,
    /// Held (locked) while the queue is open; dropped with it.
    lock: File,
    pub unread: VecDeque<Loc>,
    pub in_flight: Option<Loc>,
    /// `None` after a write failed and the segment could not be cut back:
    /// the next append starts a new segment.
    writer: Option<Writer>,
    next_segment: u64,
    /// The oldest segment file that may still exist.
    oldest_segment: u64,
    /// [`SEGMENT_BYTES`], smaller in tests.
    pub(crate) segment_bytes: u64,
}

fn ack_text(segment: u64, offset: u64) -> String {
    let body = format!("{segment:020} {offset:020}");
    format!("{body} {:08x}\n", crc32fast::hash(body.as_bytes()))
}

fn parse_ack(text: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(text).ok()?;
    let line = text.strip_suffix('\n')?;
    let (body, crc) = line.rsplit_once(' ')?;
    if u32::from_str_radix(crc, 16).ok()? != crc32fast::hash(body.as_bytes()) {
        return None;
    }
    let (segment, offset) = body.split_once(' ')?;
    Some((segment.parse().ok()?, offset.parse().ok()?))
}

/// Takes the directory's lock, or says who holds it.
fn lock(dir: &Path) -> Result<File, QueueError> {
    let path = dir.join("lock");
    let mut file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(io(&path))?;
    match file.try_lock() {
        Ok(()) => {
            // who holds it, for the next one's error (best effort: a full
            // disk may refuse even these few bytes)
            let pid = format!("{}\n", std::process::id());
            let _ = file.set_len(0).and_then(|()| file.write_all_at(pid.as_bytes(), 0));
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = std::io::Read::read_to_string(&mut file, &mut holder);
            let holder = holder.trim();
            let who = match holder.parse::<u32>() {
                Ok(pid) if pid == std::process::id() => "another sink of this process".to_string(),
                Ok(pid) => format!("process {pid}"),
                Err(_) => "another process".to_string(),
            };
            Err(QueueError::Locked { dir: dir.display().to_string(), holder: who })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io(&path)(e)),
    }
}

impl Disk {
    /// Opens the directory: takes its lock, indexes every good record at
    /// or after the acknowledged position, deletes segments wholly
    /// acknowledged, writes the ack file (so recording deliveries never
    /// needs new space), and starts a fresh segment for writing (old
    /// segments are never written again, so a damaged one is only ever
    /// read).
    pub fn open(dir: &Path) -> Result<(Disk, Recovered), QueueError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let lock = lock(dir)?;
        let mut recovered = Recovered::default();
        let ack = match fs::read(dir.join("ack")) {
            Ok(bytes) => {
                let parsed = parse_ack(&bytes);
                recovered.ack_unreadable = parsed.is_none();
                parsed
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&dir.join("ack"))(e)),
        };
        let mut segments: Vec<u64> = fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("segment-")?.strip_suffix(".q")?.parse().ok())
            .collect();
        segments.sort_unstable();
        let mut unread = VecDeque::new();
        for &segment in &segments {
            let path = segment_path(dir, segment);
            if ack.is_some_and(|(s, _)| segment < s) {
                fs::remove_file(&path).map_err(io(&path))?;
                continue;
            }
            let data = fs::read(&path).map_err(io(&path))?;
            let scan = segment::scan(&data);
            // where the acknowledged position falls in this segment: a
            // position that is not a record boundary means the ack file
            // lies, and the whole segment is kept
            let from = match ack {
                Some((s, offset)) if s == segment => {
                    let boundary = offset == data.len() as u64
                        || scan.records.iter().any(|r| r.offset == offset)
                        || scan.damage.iter().any(|d| d.offset == offset)
                        || scan.torn_at == Some(offset);
                    if boundary {
                        offset
                    } else {
                        recovered.ack_unreadable = true;
                        0
                    }
                }
                _ => 0,
            };
            for d in scan.damage.iter().filter(|d| d.offset >= from) {
                recovered.damaged_records += 1;
                recovered.damaged_bytes += d.len;
                recovered.lost_items += d.items.map_or(0, u64::from);
                tracing::error!(
                    segment = %path.display(), offset = d.offset, bytes = d.len, items = ?d.items,
                    "export queue: damaged bytes in a segment skipped; the records after them are kept"
                );
            }
            if let Some(at) = scan.torn_at {
                tracing::warn!(segment = %path.display(), offset = at, "export queue: a record cut short by a crash is ignored");
            }
            for r in scan.records.iter().filter(|r| r.offset >= from) {
                unread.push_back(Loc { segment, offset: r.offset, len: r.len, items: r.items });
            }
        }
        let kept: Vec<u64> = segments.iter().copied().filter(|s| ack.is_none_or(|(a, _)| *s >= a)).collect();
        // never write into the acknowledged segment again: its offset must
        // keep meaning what it meant
        let next_segment = kept.last().map_or(0, |s| s + 1).max(ack.map_or(0, |(s, _)| s + 1));
        let oldest_segment = kept.first().copied().unwrap_or(next_segment);
        let disk = Disk {
            dir: dir.to_path_buf(),
            lock,
            unread,
            in_flight: None,
            writer: None,
            next_segment,
            oldest_segment,
            segment_bytes: SEGMENT_BYTES,
        };
        let (segment, offset) = disk.position();
        if let Err(e) = disk.write_ack(segment, offset) {
            // not fatal: deliveries are recorded once it can be written
            tracing::error!(dir = %dir.display(), error = %e, "export queue: cannot write the ack file; a restart may send some requests again");
        }
        Ok((disk, recovered))
    }

    fn writer(&mut self) -> Result<&mut Writer, QueueError> {
        if self.writer.as_ref().is_none_or(|w| w.offset >= self.segment_bytes) {
            let segment = self.next_segment;
            let path = segment_path(&self.dir, segment);
            let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
            let offset = file.metadata().map_err(io(&path))?.len();
            self.next_segment = segment + 1;
            self.writer = Some(Writer { file, segment, offset });
        }
        self.writer.as_mut().ok_or_else(|| QueueError::Io { path: self.dir.display().to_string(), error: std::io::ErrorKind::Other.into() })
    }

    /// Appends and fsyncs one record. On failure the segment is cut back
    /// to where the record began (or abandoned if even that fails) and
    /// nothing is indexed; if every record of that segment is delivered,
    /// the segment is deleted (freeing its room) and the append tried once
    /// more in a new one.
    pub fn append(&mut self, item: &Encoded) -> Result<Loc, QueueError> {
        let record = segment::encode(item.signal, item.items, item.encoding, item.oldest, &item.payload);
        match self.append_record(&record, item.items) {
            Err(e) if self.writer_delivered() => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "export queue: a write failed in a delivered segment; deleting it and writing a new one");
                self.writer = None;
                // the position moves past the closed segment: it is deleted
                if let Err(ack) = self.persist_ack() {
                    tracing::warn!(error = %ack, "export queue: cannot record the closed segment");
                }
                self.append_record(&record, item.items)
            }
            other => other,
        }
    }

    /// Whether the segment being written holds no record still needed.
    fn writer_delivered(&self) -> bool {
        // an empty segment holds no room worth freeing
        let Some(w) = self.writer.as_ref().filter(|w| w.offset > 0) else { return false };
        let needed = |l: &Loc| l.segment == w.segment;
        !self.unread.iter().any(needed) && !self.in_flight.as_ref().is_some_and(needed)
    }

    fn append_record(&mut self, record: &[u8], items: u32) -> Result<Loc, QueueError> {
        let dir = self.dir.clone();
        let writer = self.writer()?;
        let path = segment_path(&dir, writer.segment);
        let written = writer.file.write_all(record).and_then(|()| writer.file.sync_data());
        if let Err(error) = written {
            let start = writer.offset;
            if let Err(cut) = writer.file.set_len(start).and_then(|()| writer.file.sync_data()) {
                tracing::error!(segment = %path.display(), error = %cut, "export queue: cannot cut a failed write back; starting a new segment");
                self.writer = None;
            }
            return Err(QueueError::Io { path: path.display().to_string(), error });
        }
        let loc = Loc { segment: writer.segment, offset: writer.offset, len: record.len() as u64, items };
        writer.offset += loc.len;
        Ok(loc)
    }

    /// Reads a record back, checking it against its checksums.
    pub fn read(&self, loc: Loc) -> Result<Encoded, ReadError> {
        let path = segment_path(&self.dir, loc.segment);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Damaged(format!("{} is gone", path.display()))),
            Err(e) => return Err(ReadError::Io(io(&path)(e))),
        };
        let mut record = vec![0; loc.len as usize];
        match file.read_exact_at(&mut record, loc.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(ReadError::Damaged(format!("{} is shorter than its index says", path.display())));
            }
            Err(e) => return Err(ReadError::Io(io(&path)(e))),
        }
        let damaged = || ReadError::Damaged(format!("{} at offset {}: checksum mismatch", path.display(), loc.offset));
        let header = segment::header(&record).ok_or_else(damaged)?;
        if (header.size as u64) + u64::from(header.len) != loc.len || !segment::payload_matches(&record, &record[header.size..]) {
            return Err(damaged());
        }
        Ok(Encoded {
            signal: header.signal,
            items: header.items,
            encoding: header.encoding,
            oldest: header.oldest,
            payload: bytes::Bytes::from(record).slice(header.size..),
        })
    }

    /// Gives the directory up (the queue is closed and drained as far as
    /// it goes): a sink that opens it next may.
    pub fn unlock(&self) {
        let _ = self.lock.unlock();
    }

    /// The oldest position still needed.
    fn position(&self) -> (u64, u64) {
        match self.in_flight.or(self.unread.front().copied()) {
            Some(loc) => (loc.segment, loc.offset),
            None => match &self.writer {
                Some(w) => (w.segment, w.offset),
                None => (self.next_segment, 0),
            },
        }
    }

    /// Writes where the oldest record still needed starts (in place: a
    /// full disk has no room for a new file) and deletes the segments
    /// before it. Deleting does not wait on the ack file: a segment
    /// before the position in memory is delivered whatever the file says,
    /// and a stale ack file only means some records are sent again.
    pub fn persist_ack(&mut self) -> Result<(), QueueError> {
        let (segment, offset) = self.position();
        let written = self.write_ack(segment, offset);
        while self.oldest_segment < segment {
            let path = segment_path(&self.dir, self.oldest_segment);
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(segment = %path.display(), error = %e, "export queue: cannot delete a delivered segment");
                }
            }
            self.oldest_segment += 1;
        }
        written
    }

    fn write_ack(&self, segment: u64, offset: u64) -> Result<(), QueueError> {
        let path = self.dir.join("ack");
        let text = ack_text(segment, offset);
        debug_assert_eq!(text.len(), ACK_LEN);
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io(&path))?;
        file.write_all_at(text.as_bytes(), 0).and_then(|()| file.set_len(ACK_LEN as u64)).and_then(|()| file.sync_data()).map_err(io(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ack_file_checks_itself() {
        let text = ack_text(3, 4096);
        assert_eq!(text.len(), ACK_LEN);
        assert_eq!(parse_ack(text.as_bytes()), Some((3, 4096)));
        for i in 0..text.len() {
            let mut bad = text.clone().into_bytes();
            bad[i] ^= 0x01;
            assert_eq!(parse_ack(&bad), None, "a flip at {i} went unnoticed");
        }
        assert_eq!(parse_ack(b"3 4096\n"), None);
        assert_eq!(parse_ack(b""), None);
    }
}
