//! Server-wide views read once per server *identity*, however many source
//! blocks point at the server.
//!
//! Within one source, the targets of a server share one reader (see
//! `fleet.rs`). Across source blocks — a generated config of a hundred
//! blocks, one per database, or a migration from one receiver per
//! database — every block used to re-read pg_stat_statements, the
//! activity, bgwriter, replication… once per block, and New Relic received
//! every server-wide series a hundred times over the same entity.
//!
//! Each server-wide collector of a connected target claims
//! `(server identity, collector)` here before it scrapes. The identity is
//! the server's own (PostgreSQL: system identifier and postmaster start
//! time, so a primary and its standby differ; MySQL: its endpoint and
//! restarts), learned when the target connects, so two spellings of one
//! server (an IP and a name) are one server. The first claimant reads;
//! another claimant whose collector would send the same records the same
//! way — the same collector settings, the same paths downstream — is
//! *covered*: it does not scrape, its status says who reads for it, and it
//! takes over when the reader goes (stopped, reloaded, its connection or
//! lease lost, or it cannot connect) or when the reader has not read
//! successfully for longer than [`stale_after`] (its role lacks a
//! privilege, its collector fails every round: another claimant may well
//! succeed). A claimant whose settings or paths differ reads too (its
//! records go elsewhere or look different); that is logged once, since New
//! Relic then receives the server's series twice.
//!
//! Claims live while their holder holds them: the map never holds more
//! entries than there are running server-wide collectors.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Reader {
    holder: String,
    signature: String,
    token: u64,
    /// When it claimed or last read successfully.
    last_ok: Instant,
}

/// How long a reader may go without a successful read, for a collector of
/// `interval`, before a covered claimant takes the view over.
pub fn stale_after(interval: Duration) -> Duration {
    (interval * 2).max(Duration::from_secs(10))
}

/// The readers of each `(identity, collector)`: one per signature.
type Readers = HashMap<(String, String), Vec<Reader>>;

static READERS: Mutex<Option<Readers>> = Mutex::new(None);
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

fn with<T>(f: impl FnOnce(&mut Readers) -> T) -> T {
    let mut guard = READERS.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

/// What a claimant does this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// It reads the view.
    Reads,
    /// Another claimant reads the same records for it.
    Covered { by: String },
    /// It reads the view in place of a reader whose reads have failed for
    /// longer than [`stale_after`].
    TookOver { from: String },
    /// It reads the view, and so does another claimant with other settings
    /// or paths (the server's series leave twice).
    ReadsToo { with: String },
}

/// One server-wide collector's claim; released when dropped.
pub struct Claim {
    key: (String, String),
    token: u64,
    /// False once handed back to [`Claim::take`] (which renews or ends it).
    live: bool,
}

impl Claim {
    /// Claims `collector` of the server `identity` for `holder`, whose
    /// records have `signature` (settings and paths downstream). A holder
    /// keeps its claim across calls (pass the claim back as `held`) as long
    /// as its signature stays the same. A reader that has not read
    /// successfully for `stale` gives the view up to the next claimant.
    pub fn take(
        identity: &str,
        collector: &str,
        signature: &str,
        holder: &str,
        held: Option<Claim>,
        stale: Duration,
    ) -> (Role, Option<Claim>) {
        let key = (identity.to_string(), collector.to_string());
        let held = held.map(|mut claim| {
            claim.live = false;
            (claim.key.clone(), claim.token)
        });
        with(|map| {
            let readers = map.entry(key.clone()).or_default();
            let other = |readers: &[Reader], token: u64| readers.iter().find(|r| r.token != token).map(|r| r.holder.clone());
            if let Some((held_key, token)) = held {
                if held_key == key && readers.iter().any(|r| r.token == token && r.signature == signature) {
                    let role = match other(readers, token) {
                        Some(with) => Role::ReadsToo { with },
                        None => Role::Reads,
                    };
                    return (role, Some(Claim { key, token, live: true }));
                }
                // another server, or what it sends changed: claimed anew
                if let Some(old) = map.get_mut(&held_key) {
                    old.retain(|r| r.token != token);
                    if old.is_empty() && held_key != key {
                        map.remove(&held_key);
                    }
                }
            }
            let readers = map.entry(key.clone()).or_default();
            let mut took_over = None;
            if let Some(at) = readers.iter().position(|r| r.signature == signature) {
                if readers[at].last_ok.elapsed() <= stale {
                    return (Role::Covered { by: readers[at].holder.clone() }, None);
                }
                // its holder finds its token gone and is covered from now on
                took_over = Some(readers.remove(at).holder);
            }
            let token = NEXT_TOKEN.fetch_add(1, Relaxed);
            let role = match (took_over, other(readers, token)) {
                (Some(from), _) => Role::TookOver { from },
                (None, Some(with)) => Role::ReadsToo { with },
                (None, None) => Role::Reads,
            };
            readers.push(Reader { holder: holder.to_string(), signature: signature.to_string(), token, last_ok: Instant::now() });
            (role, Some(Claim { key, token, live: true }))
        })
    }

    /// The holder read the view successfully just now.
    pub fn read_ok(&self) {
        with(|map| {
            if let Some(r) = map.get_mut(&self.key).and_then(|readers| readers.iter_mut().find(|r| r.token == self.token)) {
                r.last_ok = Instant::now();
            }
        });
    }

    /// Claims held now (tests, /status).
    pub fn held() -> usize {
        with(|map| map.values().map(Vec::len).sum())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        with(|map| {
            if let Some(readers) = map.get_mut(&self.key) {
                readers.retain(|r| r.token != self.token);
                if readers.is_empty() {
                    map.remove(&self.key);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: Duration = Duration::from_secs(3600);

    #[test]
    fn a_reader_that_stopped_succeeding_hands_the_view_over() {
        let id = "sys-test-stale@2026";
        let (a, claim_a) = Claim::take(id, "statements", "sig", "a/a", None, FRESH);
        assert_eq!(a, Role::Reads);
        let (b, none) = Claim::take(id, "statements", "sig", "b/b", None, FRESH);
        assert_eq!((b, none.is_none()), (Role::Covered { by: "a/a".into() }, true));
        // a reads successfully: still fresh for a claimant with a short limit
        claim_a.as_ref().unwrap().read_ok();
        let (b, _) = Claim::take(id, "statements", "sig", "b/b", None, Duration::from_millis(200));
        assert_eq!(b, Role::Covered { by: "a/a".into() });
        // a fails for longer than that: b takes over
        std::thread::sleep(Duration::from_millis(250));
        let (b, claim_b) = Claim::take(id, "statements", "sig", "b/b", None, Duration::from_millis(200));
        assert_eq!(b, Role::TookOver { from: "a/a".into() });
        assert!(claim_b.is_some());
        // a comes back with its old claim: covered by b, whose claim is live
        let (a, claim_a) = Claim::take(id, "statements", "sig", "a/a", claim_a, FRESH);
        assert_eq!(a, Role::Covered { by: "b/b".into() });
        assert!(claim_a.is_none());
        let (b, claim_b) = Claim::take(id, "statements", "sig", "b/b", claim_b, FRESH);
        assert_eq!(b, Role::Reads);
        drop(claim_b);
        assert_eq!(Claim::take(id, "statements", "sig", "a/a", None, FRESH).0, Role::Reads);
    }

    #[test]
    fn one_reader_per_identity_and_collector_and_the_next_takes_over() {
        let id = "sys-test-1@2026";
        let (a, claim_a) = Claim::take(id, "statements", "sig", "a/a", None, FRESH);
        assert_eq!(a, Role::Reads);
        let (b, claim_b) = Claim::take(id, "statements", "sig", "b/b", None, FRESH);
        assert_eq!(b, Role::Covered { by: "a/a".into() });
        assert!(claim_b.is_none());
        // other settings or paths: both read, one per signature
        let (c, claim_c) = Claim::take(id, "statements", "other", "c/c", None, FRESH);
        assert_eq!(c, Role::ReadsToo { with: "a/a".into() });
        assert_eq!(Claim::take(id, "statements", "other", "d/d", None, FRESH).0, Role::Covered { by: "c/c".into() });
        drop(claim_c);
        // the holder keeps it round after round
        let (a, claim_a) = Claim::take(id, "statements", "sig", "a/a", claim_a, FRESH);
        assert_eq!(a, Role::Reads);
        // another server, another collector: independent
        assert_eq!(Claim::take("sys-test-2@2026", "statements", "sig", "b/b", None, FRESH).0, Role::Reads);
        assert_eq!(Claim::take(id, "activity", "sig", "b/b", None, FRESH).0, Role::Reads);
        // the reader goes: the next claimant reads
        drop(claim_a);
        let (b, claim_b) = Claim::take(id, "statements", "sig", "b/b", None, FRESH);
        assert_eq!(b, Role::Reads);
        assert!(claim_b.is_some());
    }
}
