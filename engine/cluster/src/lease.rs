//! Lease election over `coordination.k8s.io/v1` Leases, the algorithm of
//! client-go's leader elector, for one lease ([`Claim`]) or one lease per
//! target ([`Sharder`]).
//!
//! Safety rests on two clocks that never compare across machines:
//! - a replica that wants a lease held by another waits until it has seen
//!   the lease *unchanged* for `duration`, measured on its own monotonic
//!   clock from when it first saw that version;
//! - the holder counts its hold from the moment it *sent* its last
//!   successful renewal and lets go after `renew` (shorter than
//!   `duration`) without another one.
//!
//! So a holder cut off from the API stops (its [`Gate`] closes) at
//! `last renew + renew`, while anyone else can take over at
//! `last renew + duration` at the earliest: never two at once.
//!
//! Each side errs its own safe way about when a call happened: the holder
//! dates its hold from *before* its GET (it stops early), and an observer
//! dates a version from *after* the call that returned it (it waits
//! long), as client-go does. A version first seen in the answer to a slow
//! GET may have been written at any moment of that GET; dated from when
//! the GET was sent, it would expire early by as much as the GET took.
//!
//! At fleet scale (one lease per target, hundreds of targets) a pass must
//! fit well inside `renew` whatever the API server's latency: a replica
//! keeps up to [`CALLS_IN_FLIGHT`] leases' calls in flight at once, and
//! leaves a lease it renewed less than `renew / 3` ago for a later pass.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use dbintel_core::BoxFuture;
use futures_util::stream::{self, StreamExt};

/// Leases a sharding replica works on at once (each a GET then a PUT).
/// At 25 ms per call, 200 leases take 200 × 50 ms / 16 ≈ 0.6 s a pass,
/// where one after another took 10 s — all of the default `renew`.
pub const CALLS_IN_FLIGHT: usize = 16;

/// Runs the calls, at most [`CALLS_IN_FLIGHT`] at once; the results in no
/// particular order. (Each starts when first polled: an attempt waiting
/// for a slot dates nothing before it runs.)
async fn bounded<R>(calls: Vec<BoxFuture<'_, R>>) -> Vec<R> {
    stream::iter(calls).buffer_unordered(CALLS_IN_FLIGHT).collect().await
}

/// What a Lease holds (the fields of `LeaseSpec` we use) and its version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRecord {
    pub holder: Option<String>,
    pub duration_secs: i32,
    /// RFC 3339 with microseconds (`MicroTime`), as the API wants them.
    pub acquire_time: Option<String>,
    pub renew_time: Option<String>,
    pub transitions: i32,
    /// Set by the server; a replace must carry the version it read.
    pub resource_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Someone else wrote first (HTTP 409): not an error, a lost race.
    #[error("conflict")]
    Conflict,
    #[error("{0}")]
    Other(String),
}

/// The Lease endpoints: the real API server (kube) or an in-process fake.
pub trait LeaseApi: Send + Sync {
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LeaseRecord>, ApiError>>;
    fn create<'a>(&'a self, name: &'a str, record: LeaseRecord) -> BoxFuture<'a, Result<LeaseRecord, ApiError>>;
    fn replace<'a>(&'a self, name: &'a str, record: LeaseRecord) -> BoxFuture<'a, Result<LeaseRecord, ApiError>>;
    /// Leases whose names start with `prefix`.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<(String, LeaseRecord)>, ApiError>>;
}

/// Time, so tests can drive it: a monotonic reading and a wall-clock
/// timestamp for the lease's fields.
pub trait Clock: Send + Sync {
    /// Monotonic time since some fixed start.
    fn now(&self) -> Duration;
    /// Wall-clock time as RFC 3339 with microseconds.
    fn wall(&self) -> String;
}

pub struct SystemClock {
    start: std::time::Instant,
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock { start: std::time::Instant::now() }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }
    fn wall(&self) -> String {
        rfc3339_micros(std::time::SystemTime::now())
    }
}

/// `2026-11-28T12:00:00.123456Z`.
pub fn rfc3339_micros(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil from days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_micros())
}

/// The Lease object of one target: a valid Kubernetes name (lower case,
/// digits, `-` and `.`; at most 253 characters). A target key that is not
/// one already (`fleet/orders`, `Orders_DB`) is spelled with `-` and keeps
/// a hash of the original, so two keys never share a lease.
pub fn target_lease_name(prefix: &str, target: &str) -> String {
    let spelled: String =
        target.chars().map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' { c } else { '-' }).collect();
    let mut name = format!("{prefix}-target-{spelled}");
    if spelled != target {
        name = format!("{name}-{:08x}", dbintel_stdlib::functions::fnv1a(target.as_bytes()) as u32);
    }
    if name.len() > 253 {
        let hash = format!("-{:016x}", dbintel_stdlib::functions::fnv1a(name.as_bytes()));
        name.truncate(253 - hash.len());
        name.push_str(&hash);
    }
    name
}

/// A lease duration as the API's whole seconds, rounded up (at least 1).
pub fn lease_seconds(d: Duration) -> i32 {
    (d.as_secs_f64().ceil() as i64).clamp(1, i64::from(i32::MAX)) as i32
}

/// Timings, from the `cluster` block.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a lease lasts without renewal, as others see it.
    pub duration: Duration,
    /// How long a holder keeps acting without a successful renewal.
    pub renew: Duration,
    /// How often to try.
    pub retry: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing { duration: Duration::from_secs(15), renew: Duration::from_secs(10), retry: Duration::from_secs(2) }
    }
}

/// Whether this replica may act for a lease right now: sources check it
/// before every scrape (fencing).
#[derive(Debug, Default)]
pub struct Gate {
    /// Monotonic milliseconds (on the elector's clock) until which the
    /// lease is held; 0 when not held.
    until_ms: AtomicU64,
}

impl Gate {
    pub fn holds_at(&self, now: Duration) -> bool {
        (now.as_millis() as u64) < self.until_ms.load(Relaxed)
    }
    fn set(&self, until: Option<Duration>) {
        self.until_ms.store(until.map_or(0, |u| u.as_millis() as u64), Relaxed);
    }
}

/// One lease this replica wants (or holds).
pub struct Claim {
    pub name: String,
    identity: String,
    timing: Timing,
    /// The version last seen and when (monotonic) it was first seen.
    observed: Option<(LeaseRecord, Duration)>,
    /// When the last successful acquire/renew was sent.
    last_renew: Option<Duration>,
    pub gate: Arc<Gate>,
    /// The API's error while its calls fail (logged when it starts, not
    /// on every try).
    failing: Option<String>,
    /// Leave logging API failures to the owner (a sharder sums up
    /// hundreds of leases in one line).
    quiet: bool,
}

impl Claim {
    pub fn new(name: impl Into<String>, identity: impl Into<String>, timing: Timing) -> Claim {
        Claim {
            name: name.into(),
            identity: identity.into(),
            timing,
            observed: None,
            last_renew: None,
            gate: Arc::default(),
            failing: None,
            quiet: false,
        }
    }

    /// The API's error while this lease's calls fail.
    pub fn failing(&self) -> Option<&str> {
        self.failing.as_deref()
    }

    pub fn held(&self, now: Duration) -> bool {
        self.gate.holds_at(now)
    }

    /// Whether a held lease should be renewed now: not while its last
    /// renewal is younger than a third of `renew` (two more tries remain
    /// before the holder must stop).
    pub fn renewal_due(&self, now: Duration) -> bool {
        self.last_renew.is_none_or(|r| now >= r + self.timing.renew / 3)
    }

    /// Whether the last version seen (by a GET or a LIST) is another
    /// replica's and has not had time to expire: an attempt would only
    /// read it again and give up.
    pub fn surely_taken(&self, now: Duration) -> bool {
        self.observed.as_ref().is_some_and(|(seen, at)| {
            let other = seen.holder.as_deref().is_some_and(|h| !h.is_empty() && h != self.identity);
            other && now < *at + Duration::from_secs(seen.duration_secs.max(1) as u64)
        })
    }

    /// Notes a version of the lease seen some other way (a LIST), so the
    /// time a dead holder's lease takes to expire counts from when its
    /// last renewal was seen, not from when we first wanted the lease.
    pub fn observe(&mut self, record: &LeaseRecord, now: Duration) {
        if self.observed.as_ref().is_none_or(|(seen, _)| seen.resource_version != record.resource_version) {
            self.observed = Some((record.clone(), now));
        }
    }

    fn lost(&mut self) {
        self.last_renew = None;
        self.gate.set(None);
    }

    /// One attempt to acquire or renew; true when held afterwards.
    pub async fn tick(&mut self, api: &dyn LeaseApi, clock: &dyn Clock) -> bool {
        let sent = clock.now();
        // a holder that has not renewed in time has already stopped
        if self.last_renew.is_some_and(|r| sent >= r + self.timing.renew) {
            tracing::warn!(lease = %self.name, "lease not renewed in time: stopped acting for it");
            self.lost();
        }
        let result = self.try_acquire_or_renew(api, clock).await;
        if result.is_ok() && self.failing.take().is_some() && !self.quiet {
            tracing::info!(lease = %self.name, "the lease API answers again");
        }
        match result {
            Ok(true) => {
                if self.last_renew.is_none() {
                    tracing::info!(lease = %self.name, identity = %self.identity, "lease acquired");
                }
                self.last_renew = Some(sent);
                self.gate.set(Some(sent + self.timing.renew));
                true
            }
            Ok(false) => {
                if self.last_renew.is_some() {
                    tracing::warn!(lease = %self.name, "lease taken by another replica");
                    self.lost();
                }
                false
            }
            Err(e) => {
                if self.failing.is_none() && !self.quiet {
                    tracing::warn!(lease = %self.name, error = %e, "lease API call failed; retrying every retry period");
                }
                self.failing = Some(e.to_string());
                // keep acting until the renew deadline passes (checked above)
                self.held(clock.now())
            }
        }
    }

    /// What the calls return is dated from when they returned (the
    /// caller dates its hold from before: see the module's safety note).
    async fn try_acquire_or_renew(&mut self, api: &dyn LeaseApi, clock: &dyn Clock) -> Result<bool, ApiError> {
        let wall = clock.wall();
        let fresh = |transitions: i32| LeaseRecord {
            holder: Some(self.identity.clone()),
            // the API keeps whole seconds: round up, so others wait at
            // least as long as this holder may act (2.5 s must not become 2)
            duration_secs: lease_seconds(self.timing.duration),
            acquire_time: Some(wall.clone()),
            renew_time: Some(wall.clone()),
            transitions,
            resource_version: String::new(),
        };
        let Some(current) = api.get(&self.name).await? else {
            return match api.create(&self.name, fresh(0)).await {
                Ok(created) => {
                    self.observed = Some((created, clock.now()));
                    Ok(true)
                }
                Err(ApiError::Conflict) => Ok(false),
                Err(e) => Err(e),
            };
        };
        // after the GET: the version it returned may have been written at
        // any moment while it was in flight
        let now = clock.now();
        if self.observed.as_ref().is_none_or(|(seen, _)| seen.resource_version != current.resource_version) {
            self.observed = Some((current.clone(), now));
        }
        let observed_at = self.observed.as_ref().map_or(now, |(_, at)| *at);
        let mine = current.holder.as_deref() == Some(self.identity.as_str());
        let free = current.holder.as_deref().is_none_or(str::is_empty);
        let lasts = Duration::from_secs(current.duration_secs.max(1) as u64);
        if !mine && !free && now < observed_at + lasts {
            return Ok(false);
        }
        let mut next = if mine {
            LeaseRecord { renew_time: Some(wall.clone()), duration_secs: fresh(0).duration_secs, ..current.clone() }
        } else {
            fresh(current.transitions + 1)
        };
        next.resource_version = current.resource_version.clone();
        match api.replace(&self.name, next).await {
            Ok(updated) => {
                self.observed = Some((updated, clock.now()));
                Ok(true)
            }
            Err(ApiError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up (shutdown, or shedding a target): stop acting
    /// first, then clear the holder so the next replica need not wait.
    pub async fn release(&mut self, api: &dyn LeaseApi, clock: &dyn Clock) {
        if self.last_renew.is_none() {
            return;
        }
        self.lost();
        let Some((seen, _)) = self.observed.clone() else { return };
        let Ok(Some(current)) = api.get(&self.name).await else { return };
        if current.holder.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        let cleared = LeaseRecord { holder: None, duration_secs: 1, renew_time: Some(clock.wall()), ..current };
        match api.replace(&self.name, cleared).await {
            Ok(updated) => {
                self.observed = Some((updated, clock.now()));
                tracing::info!(lease = %self.name, "lease released");
            }
            Err(e) => {
                tracing::warn!(lease = %self.name, error = %e, version = %seen.resource_version, "could not release the lease; it will expire")
            }
        }
    }
}

/// Rendezvous preference of `identity` for `target`: each replica ranks
/// targets differently, so shares are stable and spread.
fn preference(identity: &str, target: &str) -> u64 {
    dbintel_stdlib::functions::fnv1a(format!("{identity}\u{0}{target}").as_bytes())
}

/// Sharded mode: one lease per target, plus a membership lease per
/// replica so each knows how many share the work. Each replica takes at
/// most its fair share (targets ÷ live replicas, rounded up), preferring
/// the targets that rank highest for it, and sheds any excess when
/// replicas join.
pub struct Sharder {
    prefix: String,
    timing: Timing,
    member: Claim,
    pub targets: Vec<(String, Claim)>,
    /// Membership leases and when each last changed (monotonic).
    members_seen: HashMap<String, (String, Duration)>,
    pub live_members: usize,
    /// Why the last pass's calls failed, if they did (logged once).
    failing: Option<String>,
}

impl Sharder {
    pub fn new(prefix: &str, identity: &str, targets: &[String], timing: Timing) -> Sharder {
        let mut targets: Vec<(String, Claim)> = targets
            .iter()
            .map(|t| {
                let mut claim = Claim::new(target_lease_name(prefix, t), identity, timing);
                claim.quiet = true;
                (t.clone(), claim)
            })
            .collect();
        targets.sort_by_key(|(t, _)| std::cmp::Reverse(preference(identity, t)));
        Sharder {
            prefix: prefix.to_string(),
            timing,
            member: Claim::new(format!("{prefix}-member-{identity}"), identity, timing),
            targets,
            members_seen: HashMap::new(),
            live_members: 1,
            failing: None,
        }
    }

    pub fn gate(&self, target: &str) -> Option<Arc<Gate>> {
        self.targets.iter().find(|(t, _)| t == target).map(|(_, c)| c.gate.clone())
    }

    pub fn owned(&self, now: Duration) -> Vec<&str> {
        self.targets.iter().filter(|(_, c)| c.held(now)).map(|(t, _)| t.as_str()).collect()
    }

    /// Live replicas: membership leases that changed within `duration`,
    /// by this replica's own clock.
    async fn count_members(&mut self, api: &dyn LeaseApi, clock: &dyn Clock) -> Result<usize, ApiError> {
        let prefix = format!("{}-member-", self.prefix);
        let leases = api.list(&prefix).await?;
        let now = clock.now();
        // replicas come and go under new names (each rollout): remember
        // only the membership leases that still exist
        self.members_seen.retain(|name, _| leases.iter().any(|(n, _)| n == name));
        let mut live = 0;
        for (name, record) in leases {
            let entry = self.members_seen.entry(name).or_insert_with(|| (record.resource_version.clone(), now));
            if entry.0 != record.resource_version {
                *entry = (record.resource_version.clone(), now);
            }
            let held = record.holder.as_deref().is_some_and(|h| !h.is_empty());
            if held && now < entry.1 + self.timing.duration {
                live += 1;
            }
        }
        Ok(live.max(1))
    }

    pub async fn tick(&mut self, api: &dyn LeaseApi, clock: &dyn Clock) {
        self.member.tick(api, clock).await;
        // what went wrong this pass, logged once per cause at its end
        // (a lease not tried this pass has nothing to say about the API)
        let mut failure = None;
        for (_, claim) in self.targets.iter_mut() {
            claim.failing = None;
        }
        match self.count_members(api, clock).await {
            Ok(n) => self.live_members = n,
            Err(e) => failure = Some(format!("cannot list the membership leases: {e}")),
        }
        // one LIST keeps every target lease observed, so a dead replica's
        // targets can be taken one lease duration after its last renewal
        let listed = match api.list(&format!("{}-target-", self.prefix)).await {
            Ok(leases) => {
                let now = clock.now();
                let by_name: HashMap<String, usize> = self.targets.iter().enumerate().map(|(i, (_, c))| (c.name.clone(), i)).collect();
                for (name, record) in leases {
                    if let Some(&i) = by_name.get(&name) {
                        self.targets[i].1.observe(&record, now);
                    }
                }
                true
            }
            Err(e) => {
                failure = failure.or(Some(format!("cannot list the target leases: {e}")));
                false
            }
        };
        let share = self.targets.len().div_ceil(self.live_members.max(1));
        // renew what is held and due, many at once
        let now = clock.now();
        let mut renewals: Vec<BoxFuture<'_, bool>> = Vec::new();
        for (_, claim) in self.targets.iter_mut() {
            if claim.held(now) && claim.renewal_due(now) {
                renewals.push(Box::pin(claim.tick(api, clock)));
            }
        }
        bounded(renewals).await;
        let mut held = self.targets.iter().filter(|(_, c)| c.held(clock.now())).count();
        // shed the excess, least preferred first
        if held > share {
            for (target, claim) in self.targets.iter_mut().rev() {
                if held <= share {
                    break;
                }
                if claim.held(clock.now()) {
                    tracing::info!(target = %target, share, "shedding a target to a newer replica");
                    claim.release(api, clock).await;
                    held -= 1;
                }
            }
        }
        // take free ones up to the share, most preferred first: as many at
        // once as are missing, then more if some were lost to others. Not
        // while the leases cannot be listed: the API is out of reach, and
        // hundreds of attempts would only add to its load
        let now = clock.now();
        let mut candidates = Vec::new();
        for (i, (_, claim)) in self.targets.iter().enumerate() {
            if listed && !claim.held(now) && !claim.surely_taken(now) {
                candidates.push(i);
            }
        }
        let mut next = 0;
        while held < share && next < candidates.len() {
            let wave = &candidates[next..(next + share - held).min(candidates.len())];
            next += wave.len();
            let mut attempts: Vec<BoxFuture<'_, bool>> = Vec::new();
            for (i, (_, claim)) in self.targets.iter_mut().enumerate() {
                if wave.contains(&i) {
                    attempts.push(Box::pin(claim.tick(api, clock)));
                }
            }
            held += bounded(attempts).await.into_iter().filter(|&won| won).count();
        }
        let failing = self.targets.iter().filter(|(_, c)| c.failing().is_some()).count();
        let first = self.targets.iter().find_map(|(_, c)| c.failing());
        let failure = failure.or_else(|| first.map(|e| format!("{failing} target leases' calls failed, e.g. {e}")));
        self.note_failure(failure);
    }

    /// Logs a pass's failure when its cause changes, and the recovery.
    fn note_failure(&mut self, failure: Option<String>) {
        let cause = |f: &str| f.split(", e.g. ").last().unwrap_or(f).to_string();
        match (&self.failing, failure) {
            (None, Some(f)) => {
                tracing::warn!(error = %f, "the lease API fails; holders keep acting until their renew deadline");
                self.failing = Some(f);
            }
            (Some(old), Some(f)) => {
                if cause(old) != cause(&f) {
                    tracing::warn!(error = %f, "the lease API fails differently");
                }
                self.failing = Some(f);
            }
            (Some(_), None) => {
                tracing::info!("the lease API answers again");
                self.failing = None;
            }
            (None, None) => {}
        }
    }

    pub async fn release_all(&mut self, api: &dyn LeaseApi, clock: &dyn Clock) {
        let mut releases: Vec<BoxFuture<'_, ()>> = Vec::new();
        for (_, claim) in self.targets.iter_mut() {
            releases.push(Box::pin(claim.release(api, clock)));
        }
        bounded(releases).await;
        self.member.release(api, clock).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_times_are_rfc3339() {
        let t = std::time::UNIX_EPOCH + Duration::from_micros(1_795_867_857_123_456);
        assert_eq!(rfc3339_micros(t), "2026-11-28T12:10:57.123456Z");
        assert_eq!(rfc3339_micros(std::time::UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn target_leases_have_valid_distinct_names() {
        assert_eq!(target_lease_name("dbintel", "orders"), "dbintel-target-orders");
        let a = target_lease_name("dbintel", "fleet/t1");
        let b = target_lease_name("dbintel", "fleet-t1");
        assert!(a.starts_with("dbintel-target-fleet-t1-") && a != b, "{a} {b}");
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'));
        assert!(target_lease_name("p", &"x".repeat(400)).len() <= 253);
    }

    #[test]
    fn lease_durations_keep_their_sub_second_part_by_rounding_up() {
        assert_eq!(lease_seconds(Duration::from_millis(2500)), 3, "others must wait at least 2.5 s, not 2");
        assert_eq!(lease_seconds(Duration::from_secs(15)), 15);
        assert_eq!(lease_seconds(Duration::from_millis(10)), 1);
    }
}
