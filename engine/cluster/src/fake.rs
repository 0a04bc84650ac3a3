//! FAKE Kubernetes Lease API, in process, for tests: it keeps Leases in a
//! map, bumps `resourceVersion` on every write and answers a write that
//! carries a stale version with a conflict, as the API server does. It can
//! be cut off per replica (a network partition), answer with a latency
//! (half on the way in, half on the way out: the server reads and writes
//! in the middle of a call, as a real one does), and be driven by a
//! [`ManualClock`] or, under tokio's paused time, a [`TokioClock`].

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::lease::{ApiError, Clock, LeaseApi, LeaseRecord};
use dbintel_core::BoxFuture;

#[derive(Default)]
struct Store {
    leases: BTreeMap<String, LeaseRecord>,
    version: u64,
}

/// The fake server; hand each replica a [`FakeLeaseServer::client`].
#[derive(Default, Clone)]
pub struct FakeLeaseServer {
    store: Arc<Mutex<Store>>,
    cut_off: Arc<Mutex<HashSet<String>>>,
    /// Each call's round trip (tokio time; zero: answered at once).
    latency: Arc<Mutex<Duration>>,
    /// Calls answered, per replica.
    calls: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl FakeLeaseServer {
    pub fn client(&self, replica: &str) -> FakeLeaseClient {
        FakeLeaseClient { server: self.clone(), replica: replica.to_string() }
    }
    /// Requests from `replica` fail until [`FakeLeaseServer::reconnect`].
    pub fn cut_off(&self, replica: &str) {
        self.cut_off.lock().unwrap_or_else(|p| p.into_inner()).insert(replica.to_string());
    }
    pub fn reconnect(&self, replica: &str) {
        self.cut_off.lock().unwrap_or_else(|p| p.into_inner()).remove(replica);
    }
    pub fn lease(&self, name: &str) -> Option<LeaseRecord> {
        self.store.lock().unwrap_or_else(|p| p.into_inner()).leases.get(name).cloned()
    }
    /// Every call from now on takes `latency` (needs a tokio runtime with
    /// time enabled).
    pub fn set_latency(&self, latency: Duration) {
        *self.latency.lock().unwrap_or_else(|p| p.into_inner()) = latency;
    }
    /// Calls `replica` made so far (any verb, answered or refused).
    pub fn calls_from(&self, replica: &str) -> u64 {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).get(replica).copied().unwrap_or(0)
    }
}

pub struct FakeLeaseClient {
    server: FakeLeaseServer,
    replica: String,
}

impl FakeLeaseClient {
    fn reachable(&self) -> Result<(), ApiError> {
        if self.server.cut_off.lock().unwrap_or_else(|p| p.into_inner()).contains(&self.replica) {
            return Err(ApiError::Other("connection refused (fake partition)".into()));
        }
        Ok(())
    }
    /// One call: half the latency on the way in, the server's work, half
    /// on the way out.
    fn call<'a, T: Send + 'a>(
        &'a self,
        f: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'a,
    ) -> BoxFuture<'a, Result<T, ApiError>> {
        let half = *self.server.latency.lock().unwrap_or_else(|p| p.into_inner()) / 2;
        Box::pin(async move {
            if !half.is_zero() {
                tokio::time::sleep(half).await;
            }
            *self.server.calls.lock().unwrap_or_else(|p| p.into_inner()).entry(self.replica.clone()).or_default() += 1;
            let result = self.reachable().and_then(|()| f(&mut self.server.store.lock().unwrap_or_else(|p| p.into_inner())));
            if !half.is_zero() {
                tokio::time::sleep(half).await;
            }
            result
        })
    }
}

impl LeaseApi for FakeLeaseClient {
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LeaseRecord>, ApiError>> {
        self.call(move |s| Ok(s.leases.get(name).cloned()))
    }
    fn create<'a>(&'a self, name: &'a str, mut record: LeaseRecord) -> BoxFuture<'a, Result<LeaseRecord, ApiError>> {
        self.call(move |s| {
            if s.leases.contains_key(name) {
                return Err(ApiError::Conflict);
            }
            s.version += 1;
            record.resource_version = s.version.to_string();
            s.leases.insert(name.to_string(), record.clone());
            Ok(record)
        })
    }
    fn replace<'a>(&'a self, name: &'a str, mut record: LeaseRecord) -> BoxFuture<'a, Result<LeaseRecord, ApiError>> {
        self.call(move |s| {
            let Some(current) = s.leases.get(name) else { return Err(ApiError::Other(format!("lease {name} not found"))) };
            if current.resource_version != record.resource_version {
                return Err(ApiError::Conflict);
            }
            s.version += 1;
            record.resource_version = s.version.to_string();
            s.leases.insert(name.to_string(), record.clone());
            Ok(record)
        })
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<(String, LeaseRecord)>, ApiError>> {
        self.call(move |s| Ok(s.leases.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(n, r)| (n.clone(), r.clone())).collect()))
    }
}

/// A clock tests move by hand.
#[derive(Default, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Duration>>,
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn wall(&self) -> String {
        super::lease::rfc3339_micros(std::time::UNIX_EPOCH + Duration::from_secs(1_790_000_000) + self.now())
    }
}

/// Tokio's clock, for tests under paused time (`start_paused`): time
/// moves when every task waits, so long spans run in moments.
#[derive(Clone)]
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> TokioClock {
        TokioClock { start: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }
    fn wall(&self) -> String {
        super::lease::rfc3339_micros(std::time::UNIX_EPOCH + Duration::from_secs(1_790_000_000) + self.now())
    }
}
