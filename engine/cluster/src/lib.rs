//! High availability on Kubernetes: who of several replicas queries which
//! database. See [`lease`] for the election and its safety argument.
//!
//! - `mode = none` (the default): every source runs.
//! - `mode = leader`: one lease; only its holder runs sources.
//! - `mode = sharded`: one lease per source (target); replicas split them.

pub mod fake;
pub mod kube_api;
pub mod lease;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbintel_core::fence::{Fence, Fences, Never};
use dbintel_dsl::plan::{NodeKind, Plan};
use dbintel_dsl::schema::{ClusterMode, ClusterSettings};

use self::lease::{Claim, Clock, Gate, LeaseApi, Sharder, SystemClock, Timing};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    None,
    Leader,
    Sharded,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Leader => "leader",
            Mode::Sharded => "sharded",
        }
    }

    /// This replica's role, given whether it holds any lease.
    pub fn role(self, holds_any: bool) -> &'static str {
        match self {
            Mode::None => "standalone",
            Mode::Leader if holds_any => "leader",
            Mode::Leader => "follower",
            Mode::Sharded => "member",
        }
    }
}

/// A lease gate read through a clock: what a source's [`Fence`] asks.
struct LeaseGate {
    gate: Arc<Gate>,
    clock: Arc<dyn Clock>,
}

impl dbintel_core::fence::Gate for LeaseGate {
    fn holds(&self) -> bool {
        self.gate.holds_at(self.clock.now())
    }
}

fn fence(gate: Arc<Gate>, clock: Arc<dyn Clock>) -> Fence {
    Fence::new(Arc::new(LeaseGate { gate, clock }))
}

struct TargetFences {
    mode: Mode,
    leader: Option<Fence>,
    per_target: HashMap<String, Fence>,
}

impl Fences for TargetFences {
    fn fence(&self, key: &str) -> Option<Fence> {
        match self.mode {
            Mode::None => None,
            Mode::Leader => self.leader.clone(),
            Mode::Sharded => Some(self.per_target.get(key).cloned().unwrap_or_else(|| Fence::new(Arc::new(Never)))),
        }
    }
}

/// What `/metrics` and `/readyz` read.
#[derive(Default)]
pub struct Status {
    /// The first election round has finished: the replica knows its role.
    pub known: AtomicBool,
    pub members: AtomicUsize,
    pub owned: Mutex<Vec<String>>,
    pub targets: Mutex<Vec<String>>,
}

/// The settings that decide whether a running coordinator can stay on
/// after a reload.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub mode: Mode,
    pub lease: String,
    pub namespace: Option<String>,
    pub timing: (Duration, Duration, Duration),
    pub targets: Vec<String>,
}

impl Key {
    pub fn of(plan: &Plan) -> Key {
        let s = ClusterSettings::from_settings(&plan.cluster);
        let mode = match s.mode {
            ClusterMode::Leader => Mode::Leader,
            ClusterMode::Sharded => Mode::Sharded,
            ClusterMode::None => Mode::None,
        };
        Key {
            mode,
            lease: s.lease,
            namespace: s.namespace.or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|v| !v.is_empty())),
            timing: (s.duration, s.renew, s.retry),
            // one lease per target: sharded mode spreads targets, not sources
            targets: plan
                .nodes
                .iter()
                .filter_map(|(name, n)| match &n.kind {
                    NodeKind::Source(s) => Some(s.target_keys(name).collect::<Vec<_>>()),
                    _ => None,
                })
                .flatten()
                .collect(),
        }
    }
    /// Whether a running election for `self` can go on for `other`: the
    /// same mode, lease and timing — and, when sharded, the same targets
    /// (each has its own lease). Targets come and go freely otherwise.
    pub fn keeps(&self, other: &Key) -> bool {
        if self.mode != other.mode {
            return false;
        }
        match self.mode {
            Mode::None => true,
            Mode::Leader => self.lease == other.lease && self.namespace == other.namespace && self.timing == other.timing,
            Mode::Sharded => self == other,
        }
    }

    fn timing(&self) -> Timing {
        Timing { duration: self.timing.0, renew: self.timing.1, retry: self.timing.2 }
    }
}

/// This replica's name: the pod's (downward API), else the host's.
pub fn identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
        .unwrap_or_else(|| format!("dbintel-{}", std::process::id()))
}

enum Election {
    Leader(Claim),
    Sharded(Sharder),
}

/// Runs the election for a plan's `cluster` block in the background.
pub struct Coordinator {
    pub key: Key,
    pub identity: String,
    pub status: Arc<Status>,
    fences: HashMap<String, Fence>,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Coordinator {
    /// Starts electing (nothing to do for `mode = none`).
    pub fn start(key: Key, identity: String, api: Arc<dyn LeaseApi>, clock: Arc<dyn Clock>) -> Coordinator {
        let status = Arc::new(Status::default());
        *status.targets.lock().unwrap_or_else(|p| p.into_inner()) = key.targets.clone();
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let timing = key.timing();
        let mut fences = HashMap::new();
        let mut election = match key.mode {
            Mode::None => {
                status.known.store(true, Relaxed);
                return Coordinator { key, identity, status, fences, stop, task: None };
            }
            Mode::Leader => {
                let claim = Claim::new(key.lease.clone(), identity.clone(), timing);
                for t in &key.targets {
                    fences.insert(t.clone(), fence(claim.gate.clone(), clock.clone()));
                }
                Election::Leader(claim)
            }
            Mode::Sharded => {
                let sharder = Sharder::new(&key.lease, &identity, &key.targets, timing);
                for t in &key.targets {
                    if let Some(gate) = sharder.gate(t) {
                        fences.insert(t.clone(), fence(gate, clock.clone()));
                    }
                }
                Election::Sharded(sharder)
            }
        };
        let task_status = status.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(timing.retry);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stop_rx.changed() => break,
                }
                let owned: Vec<String> = match &mut election {
                    Election::Leader(claim) => {
                        if claim.tick(api.as_ref(), clock.as_ref()).await {
                            // every target, those a reload added included
                            task_status.targets.lock().unwrap_or_else(|p| p.into_inner()).clone()
                        } else {
                            Vec::new()
                        }
                    }
                    Election::Sharded(sharder) => {
                        sharder.tick(api.as_ref(), clock.as_ref()).await;
                        task_status.members.store(sharder.live_members, Relaxed);
                        sharder.owned(clock.now()).into_iter().map(str::to_string).collect()
                    }
                };
                *task_status.owned.lock().unwrap_or_else(|p| p.into_inner()) = owned;
                task_status.known.store(true, Relaxed);
            }
            // shutdown: stop acting, then hand the leases over at once
            match &mut election {
                Election::Leader(claim) => claim.release(api.as_ref(), clock.as_ref()).await,
                Election::Sharded(sharder) => sharder.release_all(api.as_ref(), clock.as_ref()).await,
            }
            task_status.owned.lock().unwrap_or_else(|p| p.into_inner()).clear();
        });
        Coordinator { key, identity, status, fences, stop, task: Some(task) }
    }

    /// Connects to the API server and starts; `mode = none` needs no API.
    pub async fn for_plan(plan: &Plan) -> Result<Coordinator, String> {
        let key = Key::of(plan);
        let identity = identity();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
        if key.mode == Mode::None {
            return Ok(Coordinator::start(key, identity, Arc::new(NoApi), clock));
        }
        let (api, namespace) = kube_api::KubeLeases::connect(key.namespace.as_deref()).await?;
        tracing::info!(mode = ?key.mode, lease = %key.lease, %namespace, %identity, "joining the election");
        Ok(Coordinator::start(key, identity, Arc::new(api), clock))
    }

    /// The fence of each target: in leader mode the one lease guards every
    /// target (those a reload adds too); in sharded mode each has its own,
    /// and one the election does not know waits (never holds) until the
    /// election restarts with it.
    pub fn fences(&self) -> Arc<dyn Fences> {
        Arc::new(TargetFences { mode: self.key.mode, leader: self.fences.values().next().cloned(), per_target: self.fences.clone() })
    }

    /// Goes on with a reload's key (see [`Key::keeps`]): its targets.
    pub fn update(&mut self, key: Key) {
        *self.status.targets.lock().unwrap_or_else(|p| p.into_inner()) = key.targets.clone();
        self.key = key;
    }

    /// Stops electing and releases what is held.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// `mode = none` asks nothing of an API.
struct NoApi;

impl LeaseApi for NoApi {
    fn get<'a>(&'a self, _: &'a str) -> dbintel_core::BoxFuture<'a, Result<Option<lease::LeaseRecord>, lease::ApiError>> {
        Box::pin(async { Ok(None) })
    }
    fn create<'a>(&'a self, _: &'a str, r: lease::LeaseRecord) -> dbintel_core::BoxFuture<'a, Result<lease::LeaseRecord, lease::ApiError>> {
        Box::pin(async { Ok(r) })
    }
    fn replace<'a>(
        &'a self,
        _: &'a str,
        r: lease::LeaseRecord,
    ) -> dbintel_core::BoxFuture<'a, Result<lease::LeaseRecord, lease::ApiError>> {
        Box::pin(async { Ok(r) })
    }
    fn list<'a>(&'a self, _: &'a str) -> dbintel_core::BoxFuture<'a, Result<Vec<(String, lease::LeaseRecord)>, lease::ApiError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
