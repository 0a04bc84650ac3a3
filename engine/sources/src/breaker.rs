//! A circuit breaker per target, at the source, where it can actually
//! stop queries: every statement we send goes through [`Breaker::admit`].
//!
//! - closed: queries go; `failures` consecutive failures or timeouts, or a
//!   sign of duress (too many active sessions, replication lag, our probe
//!   query too slow), open it;
//! - open: nothing is sent to the database for `cooldown`, which doubles
//!   each time the breaker reopens (up to `max_cooldown`);
//! - half-open: one query at a time is let through as a probe; `successes`
//!   in a row close the breaker, one failure opens it again.
//!
//! Transitions are logged and counted for `/metrics`.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dbintel_dsl::schema::DbSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: bool, successes: u32 },
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub failures: u32,
    pub successes: u32,
    pub cooldown: Duration,
    pub max_cooldown: Duration,
    pub max_active_sessions: Option<i64>,
    pub max_replication_lag: Option<Duration>,
    pub max_probe_time: Option<Duration>,
}

impl Policy {
    pub fn from_settings(s: &DbSettings) -> Policy {
        let positive = |d: Option<Duration>| d.filter(|d| !d.is_zero());
        Policy {
            failures: s.breaker_failures.max(1) as u32,
            successes: s.breaker_successes.max(1) as u32,
            cooldown: s.breaker_cooldown,
            max_cooldown: s.breaker_max_cooldown,
            max_active_sessions: s.breaker_max_active_sessions.filter(|n| *n > 0),
            max_replication_lag: positive(s.breaker_max_replication_lag),
            max_probe_time: positive(s.breaker_max_probe_time),
        }
    }
    /// Whether any duress check is configured (each costs one query per
    /// scrape).
    pub fn watches_duress(&self) -> bool {
        self.max_active_sessions.is_some() || self.max_replication_lag.is_some() || self.max_probe_time.is_some()
    }
}

/// What `/metrics` shows per source.
#[derive(Debug, Default)]
pub struct BreakerStats {
    /// 0 closed, 1 half-open, 2 open.
    pub state: AtomicU8,
    pub opened: AtomicU64,
    pub closed: AtomicU64,
    /// Queries not sent because the breaker was open.
    pub refused: AtomicU64,
}

struct Inner {
    state: State,
    consecutive_failures: u32,
    cooldown: Duration,
    last_probe: Option<Instant>,
}

pub struct Breaker {
    source: String,
    policy: Policy,
    inner: Mutex<Inner>,
    pub stats: Arc<BreakerStats>,
}

/// Why a query was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Open { retry_in: Duration },
    ProbeInFlight,
}

impl Breaker {
    pub fn new(source: &str, policy: Policy) -> Breaker {
        Breaker {
            source: source.to_string(),
            policy,
            inner: Mutex::new(Inner { state: State::Closed, consecutive_failures: 0, cooldown: policy.cooldown, last_probe: None }),
            stats: breaker_stats(source),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    /// `closed`, `half_open` or `open`, as status shows it.
    pub fn label(&self) -> &'static str {
        match self.state() {
            State::Closed => "closed",
            State::HalfOpen { .. } => "half_open",
            State::Open { .. } => "open",
        }
    }

    fn publish(&self, state: State) {
        let code = match state {
            State::Closed => 0,
            State::HalfOpen { .. } => 1,
            State::Open { .. } => 2,
        };
        self.stats.state.store(code, Relaxed);
    }

    /// May a query be sent now? Moves open → half-open after the cooldown.
    pub fn admit(&self, now: Instant) -> Result<(), Refused> {
        let mut inner = self.lock();
        let refused = match inner.state {
            State::Closed => None,
            State::Open { until } if now >= until => {
                inner.state = State::HalfOpen { in_flight: true, successes: 0 };
                tracing::info!(source = %self.source, "circuit breaker half-open: sending one probe");
                None
            }
            State::Open { until } => Some(Refused::Open { retry_in: until - now }),
            State::HalfOpen { in_flight: true, .. } => Some(Refused::ProbeInFlight),
            State::HalfOpen { in_flight: false, successes } => {
                inner.state = State::HalfOpen { in_flight: true, successes };
                None
            }
        };
        self.publish(inner.state);
        match refused {
            Some(r) => {
                self.stats.refused.fetch_add(1, Relaxed);
                Err(r)
            }
            None => Ok(()),
        }
    }

    pub fn success(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures = 0;
        if let State::HalfOpen { successes, .. } = inner.state {
            if successes + 1 >= self.policy.successes {
                inner.state = State::Closed;
                inner.cooldown = self.policy.cooldown;
                self.stats.closed.fetch_add(1, Relaxed);
                tracing::info!(source = %self.source, "circuit breaker closed: the database answers again");
            } else {
                inner.state = State::HalfOpen { in_flight: false, successes: successes + 1 };
            }
        }
        self.publish(inner.state);
    }

    pub fn failure(&self, now: Instant, why: &str) {
        let mut inner = self.lock();
        inner.consecutive_failures += 1;
        let open = match inner.state {
            State::HalfOpen { .. } => {
                inner.cooldown = (inner.cooldown * 2).min(self.policy.max_cooldown);
                true
            }
            State::Closed => inner.consecutive_failures >= self.policy.failures,
            State::Open { .. } => false,
        };
        if open {
            self.open(&mut inner, now, why);
        }
        self.publish(inner.state);
    }

    /// Opens at once: the database shows duress.
    pub fn trip(&self, now: Instant, why: &str) {
        let mut inner = self.lock();
        if !matches!(inner.state, State::Open { .. }) {
            self.open(&mut inner, now, why);
        }
        self.publish(inner.state);
    }

    fn open(&self, inner: &mut Inner, now: Instant, why: &str) {
        inner.state = State::Open { until: now + inner.cooldown };
        self.stats.opened.fetch_add(1, Relaxed);
        tracing::warn!(source = %self.source, cooldown = ?inner.cooldown, reason = why, "circuit breaker open: no queries to this database until the cooldown ends");
    }

    /// Whether to run the duress probe now: configured, closed, and not
    /// run in the last `gap` (several collectors share one target).
    pub fn probe_due(&self, now: Instant, gap: Duration) -> bool {
        let mut inner = self.lock();
        if !self.policy.watches_duress() || inner.state != State::Closed || inner.last_probe.is_some_and(|t| now < t + gap) {
            return false;
        }
        inner.last_probe = Some(now);
        true
    }

    /// The reason to trip, if the probe's readings show duress.
    pub fn duress(&self, active_sessions: Option<i64>, replication_lag: Option<f64>, probe_time: Duration) -> Option<String> {
        let p = &self.policy;
        if let (Some(max), Some(n)) = (p.max_active_sessions, active_sessions) {
            if n > max {
                return Some(format!("{n} active sessions (limit {max})"));
            }
        }
        if let (Some(max), Some(lag)) = (p.max_replication_lag, replication_lag) {
            if lag > max.as_secs_f64() {
                return Some(format!("replication lag {lag:.1}s (limit {max:?})"));
            }
        }
        match p.max_probe_time {
            Some(max) if probe_time > max => Some(format!("probe query took {probe_time:?} (limit {max:?})")),
            _ => None,
        }
    }
}

/// Sends a query through the breaker: refused (nothing sent) while open;
/// its outcome counted.
pub async fn guarded<T>(
    breaker: &Breaker,
    source: &str,
    what: &str,
    query: impl std::future::Future<Output = Result<T, super::SourceError>>,
) -> Result<T, super::SourceError> {
    if let Err(refused) = breaker.admit(Instant::now()) {
        let why = match refused {
            Refused::Open { retry_in } => format!("retry in {retry_in:.0?}"),
            Refused::ProbeInFlight => "a probe is in flight".to_string(),
        };
        return Err(super::SourceError::BreakerOpen { source_name: source.to_string(), what: what.to_string(), why });
    }
    let result = query.await;
    match &result {
        // the database answered, even if with a complaint about our
        // configuration: that is not distress
        Ok(_) => breaker.success(),
        Err(e) if !e.class().feeds_breaker() => breaker.success(),
        Err(e) => breaker.failure(Instant::now(), &e.to_string()),
    }
    result
}

type Breakers = std::collections::BTreeMap<String, Arc<BreakerStats>>;
static BREAKERS: std::sync::Mutex<Breakers> = std::sync::Mutex::new(Breakers::new());

/// Breakers whose series `/metrics` shows at most; past it a breaker
/// still works, unlisted, and is counted ([`breakers_overflow`]).
pub const MAX_BREAKER_SERIES: usize = 4096;
static BREAKERS_OVERFLOW: AtomicU64 = AtomicU64::new(0);

/// The breaker counters of a source (kept across reconnects and reloads,
/// until the target goes: [`forget_breaker`]).
pub fn breaker_stats(source: &str) -> Arc<BreakerStats> {
    let mut breakers = BREAKERS.lock().unwrap_or_else(|p| p.into_inner());
    if breakers.len() >= MAX_BREAKER_SERIES && !breakers.contains_key(source) {
        if BREAKERS_OVERFLOW.fetch_add(1, Relaxed) == 0 {
            tracing::warn!(
                max = MAX_BREAKER_SERIES,
                "too many breaker series: new ones are not listed in /metrics (counted in dbintel_series_overflow_total)"
            );
        }
        return Arc::default();
    }
    breakers.entry(source.to_string()).or_default().clone()
}

/// Forgets the series of a target that went. False (and nothing done)
/// while a breaker still counts into them: the caller tries again later.
pub fn forget_breaker(source: &str) -> bool {
    let mut breakers = BREAKERS.lock().unwrap_or_else(|p| p.into_inner());
    match breakers.get(source) {
        Some(stats) if Arc::strong_count(stats) > 1 => false,
        _ => {
            breakers.remove(source);
            true
        }
    }
}

/// Breakers left out of the listing since the start.
pub fn breakers_overflow() -> u64 {
    BREAKERS_OVERFLOW.load(Relaxed)
}

pub fn breakers() -> Breakers {
    BREAKERS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            failures: 3,
            successes: 2,
            cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(25),
            max_active_sessions: Some(50),
            max_replication_lag: Some(Duration::from_secs(30)),
            max_probe_time: Some(Duration::from_millis(500)),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_half_open() {
        let b = Breaker::new("unit-a", policy());
        let t0 = Instant::now();
        b.failure(t0, "x");
        b.failure(t0, "x");
        b.success(); // resets the count
        b.failure(t0, "x");
        b.failure(t0, "x");
        assert_eq!(b.state(), State::Closed);
        b.failure(t0, "x");
        assert!(matches!(b.state(), State::Open { .. }));
        assert_eq!(b.admit(t0 + Duration::from_secs(5)), Err(Refused::Open { retry_in: Duration::from_secs(5) }));
        // after the cooldown: one probe at a time
        assert_eq!(b.admit(t0 + Duration::from_secs(10)), Ok(()));
        assert_eq!(b.admit(t0 + Duration::from_secs(10)), Err(Refused::ProbeInFlight));
        b.success();
        assert_eq!(b.admit(t0 + Duration::from_secs(11)), Ok(()));
        b.success();
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.stats.opened.load(Relaxed), 1);
        assert_eq!(b.stats.closed.load(Relaxed), 1);
    }

    #[test]
    fn a_failed_probe_reopens_with_a_longer_cooldown_up_to_the_cap() {
        let b = Breaker::new("unit-b", policy());
        let mut now = Instant::now();
        for _ in 0..3 {
            b.failure(now, "x");
        }
        let mut cooldowns = Vec::new();
        for _ in 0..4 {
            let State::Open { until } = b.state() else { panic!("open") };
            cooldowns.push(until - now);
            now = until;
            assert_eq!(b.admit(now), Ok(()));
            b.failure(now, "probe failed");
        }
        assert_eq!(cooldowns, [10, 20, 25, 25].map(Duration::from_secs));
    }

    #[test]
    fn duress_readings_name_their_reason() {
        let b = Breaker::new("unit-c", policy());
        assert_eq!(b.duress(Some(10), Some(1.0), Duration::from_millis(10)), None);
        assert!(b.duress(Some(51), None, Duration::ZERO).is_some_and(|r| r.contains("51 active sessions")));
        assert!(b.duress(None, Some(45.0), Duration::ZERO).is_some_and(|r| r.contains("replication lag")));
        assert!(b.duress(None, None, Duration::from_secs(1)).is_some_and(|r| r.contains("probe query")));
    }
}
