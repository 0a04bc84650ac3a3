//! What each part of a running plan is doing, and why: sources write it as
//! they connect, scrape and fail; `/status`, `/readyz`, `/metrics` and
//! `dbintel status` read it.
//!
//! One [`StatusBoard`] per process (the daemon keeps it across reloads, so
//! a target that keeps its definition keeps its history). Entries are
//! keyed by source node and target name; a reload that drops a source
//! drops its entries ([`StatusBoard::retain`]), and a target that goes (a
//! dropped database) drops its own ([`StatusBoard::remove`]): the board
//! holds the live targets, no more. The daemon prunes the other
//! per-target series (breakers, query times) by it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// What a target is doing, as a person reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// Not connected yet since the source started: trying.
    Connecting,
    /// Connected; every collector works.
    Up,
    /// Connected; some collectors fail (see their errors).
    Degraded,
    /// The circuit breaker stopped sending queries for a while.
    BreakerOpen,
    /// Was reachable, or never was: connecting fails (see the last error).
    Down,
    /// Another replica holds this target's lease; nothing is sent.
    Standby,
}

impl TargetState {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Connecting => "connecting",
            TargetState::Up => "up",
            TargetState::Degraded => "degraded",
            TargetState::BreakerOpen => "breaker_open",
            TargetState::Down => "down",
            TargetState::Standby => "standby",
        }
    }
}

/// One collector of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectorState {
    /// Not run yet.
    Pending,
    Ok,
    /// The last scrape failed for a reason of configuration (privilege,
    /// missing view or extension, a query's syntax): retried slowly.
    Failing,
    /// The last scrape failed for a passing reason (timeout, connection).
    Retrying,
    /// A server-wide view another source reads for this one (the same
    /// records, the same paths): see `read_by`.
    ReadElsewhere,
}

impl CollectorState {
    pub fn as_str(self) -> &'static str {
        match self {
            CollectorState::Pending => "pending",
            CollectorState::Ok => "ok",
            CollectorState::Failing => "failing",
            CollectorState::Retrying => "retrying",
            CollectorState::ReadElsewhere => "read_elsewhere",
        }
    }
}

/// A failure as status shows it: never a secret, never raw query text
/// (the sources scrub both before reporting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `distress`, `configuration`, `connection`, `other`.
    pub class: &'static str,
    /// SQLSTATE, MySQL error number, or our own word (`timeout`, `io`…).
    pub code: String,
    pub message: String,
    pub at: SystemTime,
}

#[derive(Debug, Clone)]
pub struct CollectorStatus {
    pub state: CollectorState,
    /// With `ReadElsewhere`: the source/target that reads for it.
    pub read_by: Option<String>,
    pub last_success: Option<SystemTime>,
    pub last_error: Option<Failure>,
    pub scrapes: u64,
    /// Failed scrapes by error class.
    pub errors: BTreeMap<&'static str, u64>,
}

impl Default for CollectorStatus {
    fn default() -> CollectorStatus {
        CollectorStatus {
            state: CollectorState::Pending,
            read_by: None,
            last_success: None,
            last_error: None,
            scrapes: 0,
            errors: BTreeMap::new(),
        }
    }
}

/// Everything known about one target, at one moment.
#[derive(Debug, Clone)]
pub struct TargetSnapshot {
    pub source: String,
    pub target: String,
    pub state: TargetState,
    /// When `state` last changed.
    pub since: SystemTime,
    pub connected_once: bool,
    pub last_success: Option<SystemTime>,
    pub last_error: Option<Failure>,
    /// `closed`, `half_open`, `open`.
    pub breaker: &'static str,
    /// `Some(held)` when a cluster lease gates this target.
    pub lease: Option<bool>,
    pub collectors: BTreeMap<String, CollectorStatus>,
}

#[derive(Debug)]
struct Inner {
    connection: Connection,
    since: SystemTime,
    shown: TargetState,
    connected_once: bool,
    last_success: Option<SystemTime>,
    last_error: Option<Failure>,
    breaker: &'static str,
    lease: Option<bool>,
    collectors: BTreeMap<String, CollectorStatus>,
    /// Found by discovery: it does not hold readiness back.
    discovered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connection {
    Connecting,
    Connected,
    Down,
}

/// The status of one target, written by its supervisor.
#[derive(Debug)]
pub struct TargetStatus {
    pub source: String,
    pub target: String,
    inner: Mutex<Inner>,
}

impl TargetStatus {
    fn new(source: &str, target: &str) -> TargetStatus {
        TargetStatus {
            source: source.to_string(),
            target: target.to_string(),
            inner: Mutex::new(Inner {
                connection: Connection::Connecting,
                since: SystemTime::now(),
                shown: TargetState::Connecting,
                connected_once: false,
                last_success: None,
                last_error: None,
                breaker: "closed",
                lease: None,
                collectors: BTreeMap::new(),
                discovered: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state shown for `inner`, from its parts.
    fn derive(inner: &Inner) -> TargetState {
        if inner.lease == Some(false) {
            return TargetState::Standby;
        }
        match inner.connection {
            Connection::Connecting => TargetState::Connecting,
            Connection::Down => TargetState::Down,
            Connection::Connected if inner.breaker == "open" => TargetState::BreakerOpen,
            Connection::Connected if inner.collectors.values().any(|c| c.state == CollectorState::Failing) => TargetState::Degraded,
            Connection::Connected => TargetState::Up,
        }
    }

    fn update(&self, change: impl FnOnce(&mut Inner)) -> Option<(TargetState, TargetState)> {
        let mut inner = self.lock();
        change(&mut inner);
        let now = Self::derive(&inner);
        if now == inner.shown {
            return None;
        }
        let before = std::mem::replace(&mut inner.shown, now);
        inner.since = SystemTime::now();
        Some((before, now))
    }

    /// A connection attempt starts (again, after `Down`, it stays `Down`
    /// until one succeeds).
    pub fn connecting(&self) -> Option<(TargetState, TargetState)> {
        self.update(|i| {
            if i.connection != Connection::Down {
                i.connection = Connection::Connecting;
            }
        })
    }

    /// Connected: returns the state change, if any, for logging.
    pub fn connected(&self) -> Option<(TargetState, TargetState)> {
        self.update(|i| {
            i.connection = Connection::Connected;
            i.connected_once = true;
            i.last_success = Some(SystemTime::now());
        })
    }

    /// Connecting failed, or the connection was lost.
    pub fn down(&self, failure: Failure) -> Option<(TargetState, TargetState)> {
        self.update(|i| {
            i.connection = Connection::Down;
            i.last_error = Some(failure);
        })
    }

    pub fn breaker(&self, state: &'static str) -> Option<(TargetState, TargetState)> {
        self.update(|i| i.breaker = state)
    }

    pub fn lease(&self, held: Option<bool>) -> Option<(TargetState, TargetState)> {
        self.update(|i| i.lease = held)
    }

    /// Declares the collectors this target runs (in `pending` state).
    pub fn declare_collectors<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.lock();
        let names: Vec<&str> = names.into_iter().collect();
        inner.collectors.retain(|k, _| names.contains(&k.as_str()));
        for name in names {
            inner.collectors.entry(name.to_string()).or_default();
        }
    }

    /// A server-wide collector another source reads for (`by`), or reads
    /// itself again (`None`).
    pub fn read_elsewhere(&self, collector: &str, by: Option<&str>) -> Option<(TargetState, TargetState)> {
        self.update(|i| {
            let c = i.collectors.entry(collector.to_string()).or_default();
            c.read_by = by.map(str::to_string);
            if by.is_some() {
                c.state = CollectorState::ReadElsewhere;
            } else if c.state == CollectorState::ReadElsewhere {
                c.state = CollectorState::Pending;
            }
        })
    }

    /// Part of a scrape failed and the rest was sent (a plan that could
    /// not be obtained): counted and shown as the collector's last error,
    /// its state unchanged.
    pub fn partly_failed(&self, collector: &str, failure: Failure) {
        self.update(|i| {
            let c = i.collectors.entry(collector.to_string()).or_default();
            *c.errors.entry(failure.class).or_default() += 1;
            c.last_error = Some(failure);
        });
    }

    pub fn scrape_ok(&self, collector: &str) -> Option<(TargetState, TargetState)> {
        self.update(|i| {
            let now = SystemTime::now();
            i.last_success = Some(now);
            let c = i.collectors.entry(collector.to_string()).or_default();
            c.state = CollectorState::Ok;
            c.last_success = Some(now);
            c.scrapes += 1;
        })
    }

    /// A scrape failed; `configuration` failures mark the collector
    /// failing (the target degraded), others retrying.
    pub fn scrape_failed(&self, collector: &str, failure: Failure) -> Option<(TargetState, TargetState)> {
        self.update(|i| {
            let c = i.collectors.entry(collector.to_string()).or_default();
            c.state = if failure.class == "configuration" { CollectorState::Failing } else { CollectorState::Retrying };
            c.scrapes += 1;
            *c.errors.entry(failure.class).or_default() += 1;
            c.last_error = Some(failure.clone());
            i.last_error = Some(failure);
        })
    }

    pub fn snapshot(&self) -> TargetSnapshot {
        let inner = self.lock();
        TargetSnapshot {
            source: self.source.clone(),
            target: self.target.clone(),
            state: inner.shown,
            since: inner.since,
            connected_once: inner.connected_once,
            last_success: inner.last_success,
            last_error: inner.last_error.clone(),
            breaker: inner.breaker,
            lease: inner.lease,
            collectors: inner.collectors.clone(),
        }
    }

    /// Connected at least once since the plan started, or waiting on
    /// purpose (another replica's lease), or found by discovery (a
    /// database that appears later must not make a ready pod unready).
    pub fn settled(&self) -> bool {
        let inner = self.lock();
        inner.connected_once || inner.lease == Some(false) || inner.discovered
    }

    /// Marks it found by discovery.
    pub fn discovered(&self) {
        self.lock().discovered = true;
    }

    /// Forgets that it ever connected: a new plan asks again.
    pub fn restart(&self) {
        self.lock().connected_once = false;
    }
}

/// Every target's status, by source and target name.
#[derive(Debug, Default)]
pub struct StatusBoard {
    targets: Mutex<BTreeMap<(String, String), Arc<TargetStatus>>>,
}

impl StatusBoard {
    pub fn new() -> Arc<StatusBoard> {
        Arc::new(StatusBoard::default())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, String), Arc<TargetStatus>>> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The status of a target, made on first use and kept after.
    pub fn target(&self, source: &str, target: &str) -> Arc<TargetStatus> {
        self.lock().entry((source.to_string(), target.to_string())).or_insert_with(|| Arc::new(TargetStatus::new(source, target))).clone()
    }

    /// Drops the entries of targets no longer in the plan.
    pub fn retain(&self, keep: impl Fn(&str, &str) -> bool) {
        self.lock().retain(|(s, t), _| keep(s, t));
    }

    /// Drops one target's entry (it left the plan, or its database went).
    pub fn remove(&self, source: &str, target: &str) {
        self.lock().remove(&(source.to_string(), target.to_string()));
    }

    /// The key of every target on the board (`source` or
    /// `source/target`, as [`dbintel_dsl::plan::target_key`] spells it):
    /// what the per-target series elsewhere are keyed by.
    pub fn target_keys(&self) -> std::collections::BTreeSet<String> {
        self.lock().keys().map(|(s, t)| dbintel_dsl::plan::target_key(s, t)).collect()
    }

    /// Targets on the board.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub fn snapshot(&self) -> Vec<TargetSnapshot> {
        let targets: Vec<Arc<TargetStatus>> = self.lock().values().cloned().collect();
        targets.iter().map(|t| t.snapshot()).collect()
    }

    /// Targets that have not connected once since they (re)started, with
    /// why: what `/readyz` waits for.
    pub fn unsettled(&self) -> Vec<String> {
        let targets: Vec<Arc<TargetStatus>> = self.lock().values().cloned().collect();
        targets
            .iter()
            .filter(|t| !t.settled())
            .map(|t| {
                let s = t.snapshot();
                let why = s.last_error.map(|e| format!(": {}", e.message)).unwrap_or_default();
                let name = if s.source == s.target { s.source.clone() } else { format!("{}/{}", s.source, s.target) };
                format!("{name} has not connected yet ({}{why})", s.state.as_str())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(class: &'static str) -> Failure {
        Failure { class, code: "x".into(), message: "m".into(), at: SystemTime::now() }
    }

    #[test]
    fn the_shown_state_follows_connection_breaker_collectors_and_lease() {
        let board = StatusBoard::new();
        let t = board.target("pg", "pg");
        assert_eq!(t.snapshot().state, TargetState::Connecting);
        assert_eq!(t.down(failure("connection")), Some((TargetState::Connecting, TargetState::Down)));
        assert_eq!(t.connecting(), None, "a retry after down stays down");
        assert_eq!(board.unsettled().len(), 1);
        assert_eq!(t.connected(), Some((TargetState::Down, TargetState::Up)));
        assert!(board.unsettled().is_empty());
        t.declare_collectors(["statements", "instance"]);
        assert_eq!(t.scrape_failed("instance", failure("configuration")), Some((TargetState::Up, TargetState::Degraded)));
        assert_eq!(t.scrape_failed("statements", failure("distress")), None, "a passing failure does not degrade");
        assert_eq!(t.breaker("open"), Some((TargetState::Degraded, TargetState::BreakerOpen)));
        assert_eq!(t.breaker("closed"), Some((TargetState::BreakerOpen, TargetState::Degraded)));
        assert_eq!(t.scrape_ok("instance"), Some((TargetState::Degraded, TargetState::Up)));
        assert_eq!(t.lease(Some(false)), Some((TargetState::Up, TargetState::Standby)));
        let s = t.snapshot();
        assert_eq!(s.collectors["instance"].errors["configuration"], 1);
        assert_eq!(s.collectors["statements"].state, CollectorState::Retrying);
    }
}
