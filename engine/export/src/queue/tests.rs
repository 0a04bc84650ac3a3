use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

use super::disk::segment_path;
use super::segment::HEADER;
use super::*;
use crate::encode::Signal;

fn item(n: u32, size: usize) -> Encoded {
    Encoded {
        signal: Signal::Metrics,
        items: n,
        encoding: crate::config::Compression::Zstd,
        oldest: u64::from(n),
        payload: vec![n as u8; size].into(),
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dbintel-queue-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

/// Everything left in a queue, in order, each checked against what was
/// pushed (`item(n, size)` fills its payload with `n`).
async fn drain(q: &Queue) -> Vec<u32> {
    q.close();
    let mut seen = Vec::new();
    while let Some(e) = q.next().await.unwrap() {
        assert!(e.payload.iter().all(|&b| b == e.items as u8), "request {} came back altered", e.items);
        seen.push(e.items);
        q.ack().await;
    }
    seen
}

fn record_len(size: usize) -> u64 {
    (HEADER + size) as u64
}

fn flip(path: &Path, at: u64) {
    let mut data = fs::read(path).unwrap();
    data[at as usize] ^= 0x20;
    fs::write(path, data).unwrap();
}

#[tokio::test]
async fn drop_oldest_keeps_the_newest_within_the_bound() {
    let q = Queue::memory(3 * (100 + OVERHEAD), OnFull::DropOldest);
    for n in 1..=5 {
        q.push(item(n, 100)).await.unwrap();
    }
    assert!(q.stats.bytes.load(Relaxed) <= 3 * (100 + OVERHEAD));
    assert_eq!(q.stats.dropped_items.load(Relaxed), 1 + 2);
    assert_eq!(q.stats.items.load(Relaxed), 3 + 4 + 5);
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
    q.ack().await;
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
        assert_eq!(q.stats.bytes.load(Relaxed), 4 * record_len(1000));
        assert_eq!(q.stats.items.load(Relaxed), 10);
        assert_eq!(q.next().await.unwrap().map(|e| e.items), Some(1));
        q.ack().await;
        // taken but never acknowledged: must come back
        assert_eq!(q.next().await.unwrap().map(|e| e.items), Some(2));
        assert_eq!(q.pending(), (2, 7));
    }
    let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
    assert_eq!(q.pending(), (3, 9), "counted from the index, not by reading");
    assert_eq!(drain(&q).await, [2, 3, 4]);
    assert_eq!((q.stats.bytes.load(Relaxed), q.stats.items.load(Relaxed)), (0, 0));
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_torn_tail_is_ignored_and_the_rest_kept() {
    let dir = scratch("torn");
    {
        let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
        q.push(item(7, 500)).await.unwrap();
        q.push(item(8, 500)).await.unwrap();
    }
    // a crash in the middle of writing a third record
    let record = super::segment::encode(Signal::Metrics, 9, crate::config::Compression::Zstd, 9, &[9; 500]);
    let mut f = OpenOptions::new().append(true).open(segment_path(&dir, 0)).unwrap();
    f.write_all(&record[..HEADER + 100]).unwrap();
    drop(f);
    let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
    assert_eq!(q.pending(), (2, 15));
    assert_eq!(q.stats.lost_items.load(Relaxed), 0, "a torn write was never accepted: not a loss");
    q.push(item(10, 500)).await.unwrap();
    assert_eq!(drain(&q).await, [7, 8, 10]);
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_damaged_record_mid_segment_is_skipped_counted_and_the_rest_delivered() {
    let dir = scratch("damaged");
    {
        let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
        for n in 1..=5 {
            q.push(item(n, 300)).await.unwrap();
        }
    }
    let segment = segment_path(&dir, 0);
    // a payload byte of the second record, and the length of the fourth
    flip(&segment, record_len(300) + HEADER as u64 + 7);
    flip(&segment, 3 * record_len(300) + 5);
    let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
    assert_eq!(q.stats.damaged_records.load(Relaxed), 2);
    assert_eq!(q.stats.lost_items.load(Relaxed), 2, "the second record's items are known from its header; the fourth's are not");
    assert_eq!(q.pending(), (3, 1 + 3 + 5));
    assert_eq!(q.stats.bytes.load(Relaxed), 3 * record_len(300));
    assert_eq!(drain(&q).await, [1, 3, 5]);
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn damage_after_opening_is_found_when_read_and_skipped() {
    let dir = scratch("damaged-late");
    let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
    for n in 1..=3 {
        q.push(item(n, 300)).await.unwrap();
    }
    flip(&segment_path(&dir, 0), record_len(300) + HEADER as u64 + 299);
    assert_eq!(q.next().await.unwrap().map(|e| e.items), Some(1));
    q.ack().await;
    assert_eq!(q.next().await.unwrap().map(|e| e.items), Some(3), "the damaged second request is skipped");
    assert_eq!(q.stats.lost_items.load(Relaxed), 2);
    q.ack().await;
    assert_eq!((q.stats.bytes.load(Relaxed), q.stats.items.load(Relaxed), q.stats.requests.load(Relaxed)), (0, 0, 0));
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_damaged_ack_file_sends_everything_again_rather_than_losing_any() {
    for (name, ack) in [("flipped", None), ("huge", Some("99999999999999999999 00000000000000000000 00000000\n")), ("empty", Some(""))] {
        let dir = scratch(&format!("ack-{name}"));
        {
            let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
            for n in 1..=3 {
                q.push(item(n, 100)).await.unwrap();
            }
            assert_eq!(q.next().await.unwrap().map(|e| e.items), Some(1));
            q.ack().await;
        }
        match ack {
            None => flip(&dir.join("ack"), 18),
            Some(text) => fs::write(dir.join("ack"), text).unwrap(),
        }
        let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
        assert_eq!(drain(&q).await, [1, 2, 3], "{name}: nothing deleted on the word of a damaged ack file");
        let _ = fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn acknowledged_segments_are_deleted_and_counts_stay_exact_across_segments() {
    let dir = scratch("segments");
    let q = Queue::disk_with(&dir, 1 << 20, OnFull::Block, 2000).unwrap();
    for n in 1..=10 {
        q.push(item(n, 900)).await.unwrap();
    }
    let segments =
        || fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("segment-")).count();
    assert_eq!(segments(), 4, "three records of 921 bytes per 2000-byte segment");
    for n in 1..=7 {
        assert_eq!(q.next().await.unwrap().map(|e| e.items), Some(n));
        q.ack().await;
    }
    assert_eq!(segments(), 2);
    assert_eq!(q.pending(), (3, 8 + 9 + 10));
    drop(q);
    let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
    assert_eq!(drain(&q).await, [8, 9, 10]);
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn drop_oldest_on_disk_counts_what_it_evicts_and_survives_reopening() {
    let dir = scratch("drop-oldest");
    {
        let q = Queue::disk(&dir, 3 * record_len(100), OnFull::DropOldest).unwrap();
        for n in 1..=6 {
            q.push(item(n, 100)).await.unwrap();
        }
        assert_eq!(q.stats.dropped_items.load(Relaxed), 1 + 2 + 3);
        assert_eq!(q.pending(), (3, 4 + 5 + 6));
    }
    let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
    assert_eq!(drain(&q).await, [4, 5, 6]);
    let _ = fs::remove_dir_all(&dir);
}

/// A tmpfs of `size` mounted for one test (the tests run as root, as the
/// issue asks; a failure to mount fails the test).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Tmpfs {
        let dir = scratch(name);
        fs::create_dir_all(&dir).unwrap();
        let out = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&dir).output();
        let out = out.expect("mount(8)");
        assert!(out.status.success(), "mounting a {size} tmpfs at {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_full_disk_refuses_the_request_cuts_the_segment_back_and_recovers() {
    let fs_ = Tmpfs::mount("enospc", "64k");
    let dir = fs_.0.join("q");
    let q = Queue::disk_with(&dir, 1 << 30, OnFull::Block, 20_000).unwrap();
    let mut accepted = Vec::new();
    let mut refused = None;
    for n in 1..=40u32 {
        match q.push(item(n, 5000)).await {
            Ok(()) => accepted.push(n),
            Err(e) => {
                refused = Some((n, e.to_string()));
                break;
            }
        }
    }
    let (first_refused, error) = refused.expect("a 64 KiB filesystem must fill up");
    assert!(error.contains("No space left"), "{error}");
    assert!(accepted.len() >= 5, "{accepted:?}");
    assert_eq!(q.stats.write_errors.load(Relaxed), 1);
    let total = |dir: &Path| -> u64 {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("segment-"))
            .map(|e| e.metadata().unwrap().len())
            .sum()
    };
    assert_eq!(total(&dir), accepted.len() as u64 * record_len(5000), "the failed write was cut back off its segment");
    assert_eq!(q.stats.bytes.load(Relaxed), accepted.len() as u64 * record_len(5000));
    assert_eq!(q.pending().1, accepted.iter().map(|&n| u64::from(n)).sum::<u64>());

    // the sender delivers; acknowledged segments go, and the refused
    // request, tried again, is taken
    for &n in &accepted[..4] {
        assert_eq!(q.next().await.unwrap().map(|e| e.items), Some(n));
        q.ack().await;
    }
    q.push(item(first_refused, 5000)).await.expect("room again after delivered segments are deleted");
    drop(q);
    let q = Queue::disk(&dir, 1 << 30, OnFull::Block).unwrap();
    let mut expected: Vec<u32> = accepted[4..].to_vec();
    expected.push(first_refused);
    assert_eq!(drain(&q).await, expected, "exactly the accepted requests, each once, after a reopen");
}

#[tokio::test]
async fn a_disk_filled_by_one_segment_frees_it_once_delivered_and_new_requests_are_taken() {
    // the scene at the queue's level: the endpoint is down until
    // the filesystem is full, all in the segment being written; the
    // sender then delivers everything; the next request must find room
    let fs_ = Tmpfs::mount("enospc-one-segment", "64k");
    let dir = fs_.0.join("q");
    let q = Queue::disk_with(&dir, 1 << 30, OnFull::Block, 16 << 20).unwrap();
    let mut accepted = Vec::new();
    for n in 1..=40u32 {
        if q.push(item(n, 5000)).await.is_err() {
            break;
        }
        accepted.push(n);
    }
    assert!(accepted.len() >= 5 && accepted.len() < 40, "{accepted:?}");
    for &n in &accepted {
        assert_eq!(q.next().await.unwrap().map(|e| e.items), Some(n));
        q.ack().await;
    }
    assert_eq!(q.stats.ack_errors.load(Relaxed), 0, "recording deliveries needs no new space");
    for n in 100..=104u32 {
        q.push(item(n, 5000)).await.expect("the delivered segment was closed and deleted: room for new data");
    }
    drop(q);
    let q = Queue::disk(&dir, 1 << 30, OnFull::Block).unwrap();
    assert_eq!(drain(&q).await, [100, 101, 102, 103, 104], "each once, nothing delivered before comes back");
}

#[tokio::test]
async fn a_queue_directory_is_locked_by_its_owner() {
    let dir = scratch("locked");
    let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
    q.push(item(1, 10)).await.unwrap();
    let second = Queue::disk(&dir, 1 << 20, OnFull::Block).err().expect("a second owner is refused");
    let text = second.to_string();
    assert!(matches!(second, QueueError::Locked { .. }), "{text}");
    assert!(text.contains("in use by another sink of this process") && text.contains(&dir.display().to_string()), "{text}");
    drop(q);
    let q = Queue::disk(&dir, 1 << 20, OnFull::Block).expect("free again once the owner closed it");
    assert_eq!(drain(&q).await, [1]);
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn records_an_older_dbintel_left_on_disk_are_sent_uncompressed() {
    let dir = scratch("v1");
    fs::create_dir_all(&dir).unwrap();
    let mut data = super::segment::encode_v1(Signal::Logs, 4, &[4; 50]);
    data.extend(super::segment::encode_v1(Signal::Metrics, 5, &[5; 60]));
    fs::write(segment_path(&dir, 0), data).unwrap();
    let q = Queue::disk(&dir, 1 << 20, OnFull::Block).unwrap();
    let first = q.next().await.unwrap().unwrap();
    assert_eq!((first.signal, first.items, first.encoding, first.payload.len()), (Signal::Logs, 4, crate::config::Compression::None, 50));
    q.ack().await;
    assert_eq!(drain(&q).await, [5]);
    let _ = fs::remove_dir_all(&dir);
}
