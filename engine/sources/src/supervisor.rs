//! One task per target, and nothing ends it but a stop.
//!
//! The supervisor connects lazily and keeps trying: a target that cannot be
//! reached (at start, after a restart, a failover, a DNS hiccup) is retried
//! with capped, jittered exponential backoff (1 s doubling up to
//! `reconnect_max`); a refusal only a person can fix (a bad DSN, a role
//! with too many privileges, a wrong password) is retried every
//! `config_retry`. Once connected, every collector runs in its own loop
//! on its own cadence:
//!
//! - a scrape never starts before the previous one of the same collector
//!   has ended, and is skipped (and counted) when downstream has no room
//!   or memory is above its soft limit;
//! - a failure is classified ([`crate::error`]): distress feeds the
//!   breaker and the collector tries again at its cadence; a configuration
//!   failure marks only that collector failing and retries it every
//!   `config_retry`; a lost connection ends the connection (every loop),
//!   and the supervisor reconnects with backoff — the collectors keep their
//!   state (delta baselines, activity windows) across it;
//! - under a cluster lease, the lease is checked before each scrape and
//!   again before emitting; losing it cancels the scrapes in flight (their
//!   futures are dropped) and nothing from them is emitted;
//! - each cause is logged once, when it appears, and once more when it is
//!   gone; every failure is counted and shown in the status board.
//!
//! When told to stop, the supervisor flushes what the collectors hold (a
//! partial activity window) and returns.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use dbintel_core::counters::NodeCounters;
use dbintel_core::fence::{Fence, Fences};
use dbintel_core::record::{Batch, Record, Resource};
use dbintel_core::routing::SharedOutput;
use dbintel_core::status::{StatusBoard, TargetState, TargetStatus};
use dbintel_dsl::plan::{SourceNode, TargetSpec};
use dbintel_dsl::schema::DbSettings;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::collector::{self, Build, Collector};
use crate::readers::{Claim, Role};
use crate::rows::now_nanos;
use crate::sessions::Sessions;
use crate::target::{Engine, Target};
use crate::{ConnectSpec, ErrorClass, SourceError};

/// How a source runs: forever as configured (`dbintel run`), or a fixed
/// number of rounds (`dry-run --scrapes`).
#[derive(Clone)]
pub struct LiveOptions {
    /// Rounds per collector, then stop (`dry-run --scrapes N`).
    pub scrapes: Option<u64>,
    /// Replaces every collector's interval (`dry-run --interval`).
    pub interval: Option<Duration>,
    /// Set to true to stop (reload, shutdown): scrapes in flight end, the
    /// collectors flush, no new scrape starts.
    pub stop: Option<watch::Receiver<bool>>,
    /// Per source: the lease that must be held to scrape (`cluster`
    /// leader or sharded mode); a source without one always scrapes.
    pub fences: Option<Arc<dyn Fences>>,
    pub status: Arc<StatusBoard>,
    /// Give up when the first connection attempt fails (dry-run), instead
    /// of retrying forever.
    pub fail_fast: bool,
    /// Checks of each connected target's setup, on its own session (the
    /// daemon's doctor checks); `None`: none.
    pub checks: Option<Arc<dyn crate::checks::Checks>>,
}

impl Default for LiveOptions {
    fn default() -> LiveOptions {
        LiveOptions { scrapes: None, interval: None, stop: None, fences: None, status: StatusBoard::new(), fail_fast: false, checks: None }
    }
}

/// Resolves when `stop` becomes true (never, without one).
pub async fn stopped(stop: &mut Option<watch::Receiver<bool>>) {
    match stop {
        Some(rx) => {
            let _ = rx.wait_for(|s| *s).await;
        }
        None => std::future::pending().await,
    }
}

/// How often a fenced source looks at its lease while it waits for it or
/// scrapes: well inside the margin between renew deadline and lease
/// duration.
const FENCE_POLL: Duration = Duration::from_millis(100);

/// A collector and what its loop keeps between scrapes.
struct Slot {
    name: String,
    collector: Box<dyn Collector>,
    /// Scrapes left (dry-run); `None`: forever.
    left: Option<u64>,
    next_at: Instant,
    round: u64,
    /// The cause of the last failure, logged when it appeared.
    cause: Option<String>,
    /// Soft-failure causes already logged.
    soft_causes: HashSet<String>,
    /// Scrapes skipped in a row for want of room downstream (logged when
    /// the first is skipped and when scrapes resume).
    skipped: u64,
    /// A server-wide collector: what its records look like and where they
    /// go besides (see `readers.rs`), its claim on the server's view, and
    /// its role the last round.
    reader: Option<ReaderSlot>,
    /// Its state (baselines, windows) no longer follows the server: it was
    /// covered by another reader, or another replica held the target. It
    /// is rebuilt before it reads again, so its first read is a baseline
    /// and never a delta over time someone else already sent.
    stale: bool,
    rebuild: Box<dyn Fn() -> Option<Box<dyn Collector>> + Send>,
}

impl Slot {
    /// A fresh collector for a stale one.
    fn refresh(&mut self) {
        if std::mem::take(&mut self.stale) {
            if let Some(fresh) = (self.rebuild)() {
                self.collector = fresh;
            }
        }
    }
}

/// A server-wide collector's place among the readers of its server.
struct ReaderSlot {
    /// The source's kind, the collector's settings, and the source's
    /// settings that shape its records (resource attributes, entity key,
    /// comment tags).
    settings: String,
    claim: Option<Claim>,
    role: Option<Role>,
}

/// Releases every claim on a server's views (the connection or the lease
/// went): a covered source may read meanwhile.
fn release_claims(slots: &mut [Slot]) {
    for reader in slots.iter_mut().filter_map(|s| s.reader.as_mut()) {
        reader.claim = None;
    }
}

/// Why a connection's run of the collectors ended.
#[derive(Debug)]
enum End {
    /// Told to stop, or every collector has done its rounds.
    Stopped,
    LeaseLost,
    ConnectionLost(SourceError),
}

/// What every collector loop of one connection shares.
struct Epoch {
    source: String,
    target: Target,
    output: SharedOutput,
    counters: Arc<NodeCounters>,
    status: Arc<TargetStatus>,
    fence: Option<Fence>,
    config_retry: Duration,
    jitter: f64,
    /// The server's identity (server-wide collectors claim their view
    /// by it; see `readers.rs`).
    identity: Option<String>,
    /// The role it connected as (part of what a server-wide view shows).
    user: String,
    /// Set once, by whoever ends the connection first.
    end_reason: std::sync::Mutex<Option<End>>,
    end: watch::Sender<bool>,
}

impl Epoch {
    fn ours(&self) -> bool {
        self.fence.as_ref().is_none_or(Fence::holds)
    }

    fn finish(&self, why: End) {
        let mut reason = self.end_reason.lock().unwrap_or_else(|p| p.into_inner());
        if reason.is_none() {
            *reason = Some(why);
            self.end.send_replace(true);
        }
    }

    fn take_end(&self) -> End {
        self.end_reason.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or(End::Stopped)
    }

    async fn ended(&self) {
        let mut rx = self.end.subscribe();
        let _ = rx.wait_for(|ended| *ended).await;
    }

    fn publish_breaker(&self) {
        log_transition(&self.source, self.status.breaker(self.target.breaker().label()));
    }

    async fn emit(&self, collector: &str, scope: collector::Scope, records: Vec<Record>) {
        let connected = (scope == collector::Scope::Database).then(|| self.target.database()).flatten();
        emit(&self.output, &self.counters, self.target.resource(), connected, collector, records).await;
    }
}

/// Sends a scrape's records on the server's resource, each point naming
/// its database (`connected`: the one a database-scope collector reads).
async fn emit(
    output: &SharedOutput,
    counters: &NodeCounters,
    resource: &Resource,
    connected: Option<&str>,
    collector: &str,
    mut records: Vec<Record>,
) {
    if records.is_empty() {
        return;
    }
    let n = records.len();
    crate::catalogue::name_databases(&mut records, connected);
    let lost = output.current().send(collector, Batch::new(resource.clone(), records)).await;
    NodeCounters::add(&counters.emitted, n);
    if lost > 0 {
        NodeCounters::add(&counters.dropped, lost);
        tracing::warn!(collector, records = lost, "the plan ended before these records could be handed on; dropped");
    }
}

fn log_transition(source: &str, change: Option<(TargetState, TargetState)>) {
    if let Some((from, to)) = change {
        tracing::info!(source, from = from.as_str(), to = to.as_str(), "target state");
    }
}

/// Backoff between connection attempts: 1 s doubling up to `max`, each
/// wait jittered by ±20 % so many targets do not retry in step.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Backoff {
        Backoff { next: Duration::from_secs(1).min(max), max }
    }
    fn reset(&mut self) {
        self.next = Duration::from_secs(1).min(self.max);
    }
    fn wait(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base.mul_f64(0.8 + 0.4 * random_unit())
    }
}

/// A number in [0, 1) that differs between calls and processes.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A deterministic jitter in [-j, +j] % of the interval, per round.
pub fn jittered(interval: Duration, jitter_percent: f64, round: u64) -> Duration {
    let spread = interval.as_secs_f64() * jitter_percent / 100.0;
    let unit = (dbintel_stdlib::functions::fnv1a(&round.to_le_bytes()) % 2001) as f64 / 1000.0 - 1.0;
    Duration::from_secs_f64((interval.as_secs_f64() + spread * unit).max(0.0))
}

/// One target, as its supervisor runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetPlan {
    /// The source node it belongs to.
    pub source: String,
    pub target: TargetSpec,
    /// The source's kind, settings and collectors, shared by all its
    /// targets, without the target list (each plan has its own target:
    /// a copy of the list per target grew with the square of the fleet).
    pub node: Arc<SourceNode>,
    /// Whether the server-wide collectors run here (on one target per
    /// server).
    pub server_scope: bool,
    /// Where they run when not here: the name of the target that reads
    /// this one's server.
    pub covered_by: Option<String>,
    /// On the target that reads a server for several targets: the
    /// databases they name (see [`collector::Build::fleet_databases`]).
    pub fleet_databases: Vec<String>,
    /// A discovered database: the target's DSN pointed at it.
    pub database: Option<String>,
    /// The key of its lease: `source` for a source's only target, else
    /// `source/target` (a discovered database shares its parent's).
    pub key: String,
    /// Found by discovery (it does not hold readiness back).
    pub discovered: bool,
}

impl TargetPlan {
    /// Whether `other` runs the same way: same target, same collectors,
    /// same role on its server (the rest of the source, other targets
    /// included, does not matter).
    pub fn runs_like(&self, other: &TargetPlan) -> bool {
        self.target == other.target
            && self.server_scope == other.server_scope
            && self.fleet_databases == other.fleet_databases
            && self.database == other.database
            && self.key == other.key
            && self.node.kind == other.node.kind
            && self.node.collectors == other.node.collectors
    }

    /// How to reach it, read now (a mounted secret may have been rotated
    /// since the last attempt): a discovered database is its parent's
    /// options with that database set — a field, never a URL pasted
    /// together, so no name can send the connection elsewhere.
    pub fn connect_spec(&self) -> Result<ConnectSpec, SourceError> {
        let name = TargetPlan::key_of(&self.source, &self.target.name);
        let spec = ConnectSpec::resolve(&name, &self.node.kind, &self.target.dsn)?;
        Ok(match &self.database {
            Some(database) => spec.with_database(database),
            None => spec,
        })
    }

    /// The key a target's lease and log lines use.
    pub fn key_of(source: &str, target: &str) -> String {
        dbintel_dsl::plan::target_key(source, target)
    }
}

/// Runs one target until told to stop. Only with `fail_fast` does it
/// return an error: the first failed connection.
pub async fn run_target(
    plan: TargetPlan,
    output: SharedOutput,
    counters: Arc<NodeCounters>,
    options: LiveOptions,
) -> Result<(), SourceError> {
    let name = TargetPlan::key_of(&plan.source, &plan.target.name);
    let settings = DbSettings::from_settings(&plan.target.settings);
    let status = options.status.target(&plan.source, &plan.target.name);
    if plan.discovered {
        status.discovered();
    }
    let fence = options.fences.as_ref().and_then(|f| f.fence(&plan.key));
    let mut stop = options.stop.clone();
    let source = &plan.node;
    let mut slots = build_slots(&name, source, &settings, &options, &plan);
    status.declare_collectors(slots.iter().map(|s| s.name.as_str()));
    // every collector of this target runs on another of its server: it
    // connects once (DSN, password, role checked; its state in /status)
    // and holds no session after
    if slots.is_empty() {
        if let Some(owner) = &plan.covered_by {
            tracing::info!(source = %name, reader = %owner, "this target's server is read through another target; checking the connection only");
        }
    }
    let done = |slots: &[Slot]| if slots.is_empty() { options.scrapes.is_some() } else { slots.iter().all(|s| s.left == Some(0)) };
    let mut backoff = Backoff::new(settings.reconnect_max.max(Duration::from_secs(1)));
    let mut connect_cause: Option<String> = None;
    let mut resource: Option<Resource> = None;
    let mut database: Option<String> = None;
    let checks = options.checks.clone().map(|hook| CheckLoop { hook, plan: plan.clone(), last: Arc::default() });

    loop {
        if stop.as_ref().is_some_and(|s| *s.borrow()) || done(&slots) {
            break;
        }
        if let Some(fence) = &fence {
            if !fence.holds() {
                log_transition(&name, status.lease(Some(false)));
                while !fence.holds() {
                    tokio::select! {
                        _ = tokio::time::sleep(FENCE_POLL) => {}
                        _ = stopped(&mut stop) => break,
                    }
                }
                if !fence.holds() {
                    break;
                }
            }
            log_transition(&name, status.lease(Some(true)));
            tracing::info!(source = %name, "this replica holds the lease: connecting");
        }

        log_transition(&name, status.connecting());
        let connect = async {
            let spec = plan.connect_spec()?;
            // the server's reader keeps its sessions; every other target
            // lends its one session out when idle
            let sessions = if plan.server_scope { Sessions::Pinned } else { Sessions::Shared };
            let mut target = Target::connect(&name, &settings, &spec, sessions).await?;
            target.add_attributes(&plan.target.attributes);
            Ok((target, spec.username().to_string()))
        };
        let attempt = tokio::select! {
            result = connect => Some(result),
            _ = stopped(&mut stop) => None,
        };
        let (target, user) = match attempt {
            None => break,
            Some(Ok(connected)) => connected,
            Some(Err(e)) => {
                if options.fail_fast {
                    return Err(e);
                }
                NodeCounters::add(&counters.errors, 1);
                let wait = if e.class() == ErrorClass::Configuration { settings.config_retry } else { backoff.wait() };
                if connect_cause.as_deref() != Some(&e.cause()) {
                    tracing::warn!(source = %name, class = e.class().as_str(), code = %e.code(), error = %e, retry_in = ?wait, "cannot connect; retrying");
                    connect_cause = Some(e.cause());
                }
                log_transition(&name, status.down(e.failure()));
                release_claims(&mut slots);
                wait_or_stop(wait, &mut stop, fence.as_ref()).await;
                continue;
            }
        };
        backoff.reset();
        if connect_cause.take().is_some() {
            tracing::info!(source = %name, "connected again");
        }
        log_transition(&name, status.connected());
        resource = Some(target.resource().clone());
        database = target.database().map(str::to_string);
        let reads_server = slots.iter().any(|s| s.reader.is_some());
        let identity = match reads_server {
            true => target.server_identity().await.ok(),
            false => None,
        };

        let (end_tx, _) = watch::channel(false);
        let epoch = Arc::new(Epoch {
            source: name.clone(),
            target,
            output: output.clone(),
            counters: counters.clone(),
            status: status.clone(),
            fence: fence.clone(),
            config_retry: settings.config_retry,
            jitter: settings.jitter,
            identity,
            user,
            end_reason: std::sync::Mutex::new(None),
            end: end_tx,
        });
        let (returned, end) = run_epoch(epoch.clone(), std::mem::take(&mut slots), &mut stop, checks.clone()).await;
        slots = returned;
        epoch.target.close().await;
        match end {
            End::Stopped => break,
            End::LeaseLost => {
                // another replica reads now: so may another source here;
                // and what these collectors hold is behind what it sends
                release_claims(&mut slots);
                for slot in &mut slots {
                    slot.stale = true;
                }
                tracing::info!(source = %name, "lease lost: stopped scraping; scrapes in flight were cancelled");
                log_transition(&name, status.lease(Some(false)));
            }
            End::ConnectionLost(e) => {
                release_claims(&mut slots);
                NodeCounters::add(&counters.errors, 1);
                let wait = backoff.wait();
                tracing::warn!(source = %name, class = e.class().as_str(), code = %e.code(), error = %e, retry_in = ?wait, "connection lost; reconnecting");
                connect_cause = Some(e.cause());
                log_transition(&name, status.down(e.failure()));
                wait_or_stop(wait, &mut stop, fence.as_ref()).await;
            }
        }
    }

    // what the collectors hold goes out, unless another replica owns the
    // target now
    if let Some(resource) = resource.filter(|_| fence.as_ref().is_none_or(Fence::holds)) {
        let now = now_nanos();
        for slot in &mut slots {
            let records = slot.collector.flush(now);
            let connected = (slot.collector.scope() == collector::Scope::Database).then_some(database.as_deref()).flatten();
            emit(&output, &counters, &resource, connected, &slot.name, records).await;
        }
    }
    Ok(())
}

/// Sleeps `wait`; false if told to stop first (or the lease went).
async fn wait_or_stop(wait: Duration, stop: &mut Option<watch::Receiver<bool>>, fence: Option<&Fence>) -> bool {
    let lease_lost = async {
        match fence {
            Some(f) => loop {
                tokio::time::sleep(FENCE_POLL).await;
                if !f.holds() {
                    break;
                }
            },
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = stopped(stop) => false,
        _ = lease_lost => false,
    }
}

fn build_slots(name: &str, source: &SourceNode, settings: &DbSettings, options: &LiveOptions, plan: &TargetPlan) -> Vec<Slot> {
    let engine = Engine::of(&source.kind, None);
    let mut slots = Vec::new();
    for (collector_name, spec) in &source.collectors {
        let build = Build {
            source,
            engine,
            name: collector_name,
            spec,
            source_interval: settings.interval,
            interval_override: options.interval,
            fleet_databases: &plan.fleet_databases,
        };
        match collector::build(name, &build) {
            // server-wide views are read on one target per server
            Ok(collector) if collector.scope() == collector::Scope::Server && !plan.server_scope => {}
            Ok(collector) => {
                let left = options.scrapes.map(|n| n * collector.scrapes_per_round());
                let rebuild: Box<dyn Fn() -> Option<Box<dyn Collector>> + Send> = {
                    let (node, target, spec, collector_name) = (plan.node.clone(), name.to_string(), spec.clone(), collector_name.clone());
                    let (interval, fleet) = (options.interval, plan.fleet_databases.clone());
                    Box::new(move || {
                        let settings = DbSettings::from_settings(&node.settings);
                        let build = Build {
                            source: &node,
                            engine: Engine::of(&node.kind, None),
                            name: &collector_name,
                            spec: &spec,
                            source_interval: settings.interval,
                            interval_override: interval,
                            fleet_databases: &fleet,
                        };
                        collector::build(&target, &build).ok()
                    })
                };
                let reader = (collector.scope() == collector::Scope::Server).then(|| ReaderSlot {
                    settings: format!(
                        "{}|{:?}|{:?}|{:?}|{:?}",
                        source.kind, spec.settings, settings.service_instance_id, settings.allowed_comment_keys, plan.target.attributes
                    ),
                    claim: None,
                    role: None,
                });
                slots.push(Slot {
                    name: collector_name.clone(),
                    collector,
                    left,
                    next_at: Instant::now(),
                    round: 0,
                    cause: None,
                    soft_causes: HashSet::new(),
                    skipped: 0,
                    reader,
                    stale: false,
                    rebuild,
                });
            }
            // the checker knows the same registry: only a mismatch between
            // a kind and its DSN's engine gets here
            Err(e) => tracing::error!(source = %name, error = %e, "collector not run"),
        }
    }
    slots
}

/// Runs every collector until the connection ends; returns the slots (with
/// their state) and why it ended.
async fn run_epoch(
    epoch: Arc<Epoch>,
    slots: Vec<Slot>,
    stop: &mut Option<watch::Receiver<bool>>,
    checks: Option<CheckLoop>,
) -> (Vec<Slot>, End) {
    let now = Instant::now();
    let mut loops = tokio::task::JoinSet::new();
    for mut slot in slots {
        slot.next_at = slot.next_at.max(now);
        let epoch = epoch.clone();
        loops.spawn(async move { collector_loop(epoch, slot).await });
    }
    let checking = checks.map(|c| tokio::spawn(checks_loop(epoch.clone(), c)));
    let watcher = {
        let epoch = epoch.clone();
        let mut stop = stop.clone();
        async move {
            loop {
                tokio::select! {
                    _ = stopped(&mut stop) => return epoch.finish(End::Stopped),
                    _ = tokio::time::sleep(FENCE_POLL), if epoch.fence.is_some() => {
                        if !epoch.ours() {
                            return epoch.finish(End::LeaseLost);
                        }
                    }
                    _ = epoch.ended() => return,
                }
            }
        }
    };
    let watcher = tokio::spawn(watcher);
    let mut slots = Vec::new();
    while let Some(joined) = loops.join_next().await {
        match joined {
            Ok(slot) => slots.push(slot),
            Err(e) => {
                // a collector that panicked is gone from this source: say so
                // loudly (the node's error count shows it too)
                NodeCounters::add(&epoch.counters.errors, 1);
                tracing::error!(source = %epoch.source, error = %e, "a collector loop panicked; it will not run again until a reload");
            }
        }
    }
    // every loop returned: either one ended the epoch, or all are done
    epoch.finish(End::Stopped);
    watcher.abort();
    if let Some(checking) = checking {
        checking.abort();
    }
    (slots, epoch.take_end())
}

/// Whether a server-wide collector reads its server this round, or another
/// source's collector reads the same records for it (see `readers.rs`).
/// Logs and shows each change of role.
fn claim_the_view(epoch: &Epoch, slot: &mut Slot) -> bool {
    let (Some(reader), Some(identity)) = (slot.reader.as_mut(), epoch.identity.as_deref()) else { return true };
    // what the role may see is part of what the records are
    let signature = format!("{}|{}|{}", epoch.user, reader.settings, epoch.output.current().route_signature(&slot.name));
    let stale = crate::readers::stale_after(slot.collector.interval());
    let (role, claim) = Claim::take(identity, &slot.name, &signature, &epoch.source, reader.claim.take(), stale);
    reader.claim = claim;
    if reader.role.as_ref() != Some(&role) {
        match &role {
            Role::Reads if reader.role.is_some() => {
                tracing::info!(source = %epoch.source, collector = %slot.name, "reading the server's view now (its reader went)")
            }
            Role::Reads => {}
            Role::TookOver { from } => tracing::warn!(
                source = %epoch.source, collector = %slot.name, reader = %from, stale = ?stale,
                "the server's view had not been read successfully by its reader for a while; reading it here instead"
            ),
            Role::Covered { by } => tracing::info!(
                source = %epoch.source, collector = %slot.name, reader = %by,
                "the server's view is read once, by another source with the same settings and paths; not reading it twice"
            ),
            // the one that finds the other warns; the other only notes it
            Role::ReadsToo { with } if reader.role != Some(Role::Reads) => tracing::warn!(
                source = %epoch.source, collector = %slot.name, other = %with,
                "another source reads this server's view with other settings or paths: both read, and its series leave twice; make them one source (a targets list) or give them the same settings and pipelines"
            ),
            Role::ReadsToo { with } => tracing::info!(
                source = %epoch.source, collector = %slot.name, other = %with,
                "another source with other settings or paths reads this server's view too"
            ),
        }
        let by = match &role {
            Role::Covered { by } => Some(by.as_str()),
            _ => None,
        };
        log_transition(&epoch.source, epoch.status.read_elsewhere(&slot.name, by));
        reader.role = Some(role.clone());
    }
    match role {
        Role::Covered { .. } => {
            slot.stale = true;
            false
        }
        Role::Reads | Role::ReadsToo { .. } | Role::TookOver { .. } => true,
    }
}

/// The setup checks of one target: the hook, its target, and when they
/// last ran (kept across reconnections, so a flapping connection does not
/// check on every reconnect).
#[derive(Clone)]
struct CheckLoop {
    hook: Arc<dyn crate::checks::Checks>,
    plan: TargetPlan,
    last: Arc<std::sync::Mutex<Option<Instant>>>,
}

/// Runs the checks on the epoch's session when due (at once after
/// connecting, unless they ran less than `every` ago), until the epoch
/// ends. Fenced like a scrape.
async fn checks_loop(epoch: Arc<Epoch>, checks: CheckLoop) {
    let every = checks.hook.every(&checks.plan);
    loop {
        let last = *checks.last.lock().unwrap_or_else(|p| p.into_inner());
        let due = match (last, every) {
            (Some(at), Some(every)) => at + every,
            _ => Instant::now(),
        };
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = epoch.ended() => return,
        }
        if !epoch.ours() {
            return;
        }
        tokio::select! {
            _ = checks.hook.check(&checks.plan, &epoch.target) => {}
            _ = epoch.ended() => return,
        }
        *checks.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        if every.is_none() {
            // once per connection
            epoch.ended().await;
            return;
        }
    }
}

async fn collector_loop(epoch: Arc<Epoch>, mut slot: Slot) -> Slot {
    loop {
        if slot.left == Some(0) {
            return slot;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(slot.next_at) => {}
            _ = epoch.ended() => return slot,
        }
        if !epoch.ours() {
            epoch.finish(End::LeaseLost);
            return slot;
        }
        slot.round += 1;
        let interval = slot.collector.interval();
        slot.next_at = Instant::now() + jittered(interval, epoch.jitter, slot.round);
        if let Some(left) = slot.left.as_mut() {
            *left -= 1;
        }
        if let Err(why) = epoch.output.current().has_room() {
            NodeCounters::add(&epoch.counters.skipped_scrapes, 1);
            if slot.skipped == 0 {
                tracing::warn!(source = %epoch.source, collector = %slot.name, %why, "scrapes skipped until there is room downstream");
            }
            slot.skipped += 1;
            continue;
        }
        if slot.skipped > 0 {
            tracing::info!(source = %epoch.source, collector = %slot.name, skipped = slot.skipped, "room downstream again: scraping");
            slot.skipped = 0;
        }
        if !claim_the_view(&epoch, &mut slot) {
            continue;
        }
        slot.refresh();
        let scrape = async {
            epoch.target.check_duress().await;
            let started = std::time::Instant::now();
            let result = slot.collector.scrape(&epoch.target, now_nanos()).await;
            (result, started.elapsed())
        };
        let (result, took) = tokio::select! {
            done = scrape => done,
            // cancelled in flight: the lease went or the connection ended
            _ = epoch.ended() => return slot,
        };
        NodeCounters::add(&epoch.counters.scrapes, 1);
        NodeCounters::add(&epoch.counters.scrape_micros, took.as_micros() as usize);
        for soft in slot.collector.take_soft_errors() {
            NodeCounters::add(&epoch.counters.errors, 1);
            if slot.soft_causes.len() < 64 && slot.soft_causes.insert(soft.cause()) {
                tracing::warn!(source = %epoch.source, collector = %slot.name, class = soft.class().as_str(), code = %soft.code(), error = %soft, "part of a scrape failed; the rest was sent");
            }
            epoch.status.partly_failed(&slot.name, soft.failure());
        }
        // fencing: nothing from a scrape goes out once the lease is gone
        if !epoch.ours() {
            epoch.finish(End::LeaseLost);
            return slot;
        }
        epoch.publish_breaker();
        match result {
            Ok(records) => {
                if let Some(claim) = slot.reader.as_ref().and_then(|r| r.claim.as_ref()) {
                    claim.read_ok();
                }
                if slot.cause.take().is_some() {
                    tracing::info!(source = %epoch.source, collector = %slot.name, "collector recovered");
                }
                log_transition(&epoch.source, epoch.status.scrape_ok(&slot.name));
                epoch.emit(&slot.name, slot.collector.scope(), records).await;
            }
            // expected while open; the breaker logs its own transitions
            Err(SourceError::BreakerOpen { .. }) => {}
            Err(e) => {
                NodeCounters::add(&epoch.counters.errors, 1);
                if e.class() == ErrorClass::Connection {
                    epoch.finish(End::ConnectionLost(e));
                    return slot;
                }
                let cause = e.cause();
                if e.class() == ErrorClass::Configuration {
                    slot.next_at = Instant::now() + epoch.config_retry;
                }
                if slot.cause.as_deref() != Some(&cause) {
                    let retry_in = slot.next_at.saturating_duration_since(Instant::now());
                    tracing::warn!(source = %epoch.source, collector = %slot.name, class = e.class().as_str(), code = %e.code(), error = %e, ?retry_in, "scrape failed");
                    slot.cause = Some(cause);
                }
                log_transition(&epoch.source, epoch.status.scrape_failed(&slot.name, e.failure()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bounds() {
        let base = Duration::from_secs(30);
        for round in 0..1000 {
            let d = jittered(base, 10.0, round);
            assert!(d >= Duration::from_secs(27) && d <= Duration::from_secs(33), "{d:?}");
        }
        assert_ne!(jittered(base, 10.0, 1), jittered(base, 10.0, 2));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_secs(60));
        let waits: Vec<f64> = (0..9).map(|_| b.wait().as_secs_f64()).collect();
        for (wait, base) in waits.iter().zip([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]) {
            assert!(*wait >= base * 0.8 - 1e-9 && *wait <= base * 1.2 + 1e-9, "{waits:?}");
        }
        b.reset();
        assert!(b.wait() <= Duration::from_millis(1200));
    }
}
