//! A byte budget over batches in flight. Every batch that passes a
//! `memory_limit` node is charged its estimated size; the [`Charge`]
//! travels with the batch and is given back when the batch is dropped
//! (delivered, discarded or failed).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

#[derive(Debug)]
pub struct Budget {
    used: AtomicU64,
    pub limit: u64,
    pub soft: u64,
}

impl Budget {
    pub fn new(limit: u64, soft_percent: f64) -> Arc<Budget> {
        Arc::new(Budget { used: AtomicU64::new(0), limit, soft: (limit as f64 * soft_percent / 100.0) as u64 })
    }
    pub fn used(&self) -> u64 {
        self.used.load(Relaxed)
    }
    /// Above the soft limit: sources should hold back.
    pub fn under_pressure(&self) -> bool {
        self.used() > self.soft
    }
    /// Charges `bytes` if they fit under the limit.
    pub fn try_charge(self: &Arc<Budget>, bytes: u64) -> Option<Charge> {
        let mut used = self.used();
        loop {
            if used + bytes > self.limit {
                return None;
            }
            match self.used.compare_exchange_weak(used, used + bytes, Relaxed, Relaxed) {
                Ok(_) => return Some(Charge { budget: self.clone(), bytes }),
                Err(actual) => used = actual,
            }
        }
    }
}

/// Memory charged to a budget, given back on drop.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Relaxed);
    }
}

/// Resident set size of this process, from /proc (Linux); None elsewhere.
/// `/proc/self/statm` counts pages, whose size the kernel decides: 4 KiB on
/// x86-64, 16 or 64 KiB on many arm64 kernels — read at 4 KiB a page, RSS
/// there would look a quarter or a sixteenth of itself and `rss_limit`
/// would never fire before the kernel's OOM killer did.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    resident_bytes_from_statm(&statm, page_size())
}

/// The resident pages of a `/proc/<pid>/statm` line, in bytes.
pub fn resident_bytes_from_statm(statm: &str, page_size: u64) -> Option<u64> {
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page_size)
}

/// The system's page size, asked once.
pub fn page_size() -> u64 {
    static PAGE_SIZE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE_SIZE.get_or_init(|| {
        // SAFETY: sysconf takes a constant and reads a value of the running
        // system; no memory of ours is involved.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// VmRSS of /proc/self/status, in bytes (the kernel's own figure in kB,
    /// independent of the page size).
    fn vm_rss() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
        let kb: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB");
        kb * 1024
    }

    #[test]
    fn resident_bytes_match_vm_rss_with_the_systems_page_size() {
        let page = page_size();
        let getconf = std::process::Command::new("getconf").arg("PAGESIZE").output().expect("getconf");
        let expected: u64 = String::from_utf8_lossy(&getconf.stdout).trim().parse().expect("getconf PAGESIZE");
        assert_eq!(page, expected, "the page size is the system's");
        // RSS moves between two reads; take the closest of a few tries
        let closest = (0..5)
            .map(|_| {
                let ours = resident_bytes().expect("RSS from /proc/self/statm");
                ours.abs_diff(vm_rss())
            })
            .min()
            .unwrap_or(u64::MAX);
        assert!(closest <= 4 * page, "RSS from statm is {closest} bytes away from VmRSS");
    }

    /// The bug: statm's pages were counted at 4 KiB each, so on a kernel
    /// with 64 KiB pages RSS read a sixteenth of itself.
    #[test]
    fn rss_pages_are_counted_at_4k_16k_and_64k_page_sizes_alike() {
        let statm = "12345 2560 300 10 0 900 0\n";
        for page in [4096, 16384, 65536] {
            assert_eq!(resident_bytes_from_statm(statm, page), Some(2560 * page), "{page}-byte pages");
        }
        assert_eq!(resident_bytes_from_statm("garbage", 4096), None);
        assert_eq!(resident_bytes_from_statm("1 18446744073709551615", 65536), None, "overflow is no reading, not a wrap");
    }

    #[test]
    fn charges_are_released_when_batches_drop() {
        let budget = Budget::new(1000, 50.0);
        let a = budget.try_charge(400).expect("fits");
        assert!(!budget.under_pressure());
        let b = budget.try_charge(400).expect("fits");
        assert!(budget.under_pressure());
        assert!(budget.try_charge(400).is_none(), "over the limit");
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
