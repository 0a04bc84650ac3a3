//! FAKE Kubernetes Lease API, in process, for tests: it keeps Leases in a
//! map, bumps `resourceVersion` on every write and answers a write that
//! carries a stale version with a conflict, as the API server does. It can
//! be cut off per replica (a network partition) and driven by a
//! [`ManualClock`].

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
    fn with<T>(&self, f: impl FnOnce(&mut Store) -> Result<T, ApiError>) -> Result<T, ApiError> {
        self.reachable()?;
        f(&mut self.server.store.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl LeaseApi for FakeLeaseClient {
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LeaseRecord>, ApiError>> {
        let result = self.with(|s| Ok(s.leases.get(name).cloned()));
        Box::pin(async move { result })
    }
    fn create<'a>(&'a self, name: &'a str, mut record: LeaseRecord) -> BoxFuture<'a, Result<LeaseRecord, ApiError>> {
        let result = self.with(|s| {
            if s.leases.contains_key(name) {
                return Err(ApiError::Conflict);
            }
            s.version += 1;
            record.resource_version = s.version.to_string();
            s.leases.insert(name.to_string(), record.clone());
            Ok(record)
        });
        Box::pin(async move { result })
    }
    fn replace<'a>(&'a self, name: &'a str, mut record: LeaseRecord) -> BoxFuture<'a, Result<LeaseRecord, ApiError>> {
        let result = self.with(|s| {
            let Some(current) = s.leases.get(name) else { return Err(ApiError::Other(format!("lease {name} not found"))) };
            if current.resource_version != record.resource_version {
                return Err(ApiError::Conflict);
            }
            s.version += 1;
            record.resource_version = s.version.to_string();
            s.leases.insert(name.to_string(), record.clone());
            Ok(record)
        });
        Box::pin(async move { result })
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<(String, LeaseRecord)>, ApiError>> {
        let result =
            self.with(|s| Ok(s.leases.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(n, r)| (n.clone(), r.clone())).collect()));
        Box::pin(async move { result })
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
