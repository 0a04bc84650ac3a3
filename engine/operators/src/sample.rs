//! `sample`: ordered rules decide which records go on.
//!
//! Each rule either decides or passes the record to the next: `drop where`
//! drops when its condition holds, `keep where` keeps when it holds,
//! `rate_limit` drops what is over its budget, `probabilistic` always
//! decides. A record no rule decided on is kept. Probabilistic decisions by
//! key hash the key (FNV-1a, then a 64-bit finalizer), so every replica
//! decides the same.
//!
//! With `state = redis(…)`, rate limits and dedup windows are shared by
//! every replica: a batch is planned locally (the cheap rules decide
//! what they can; for the rest each record's Redis steps are listed in
//! rule order) and the steps of the whole batch go to Redis in one round
//! trip ([`crate::redis`]). While Redis cannot be reached, or answers
//! nonsense, the sampler decides from local state (counted), and tries
//! Redis again a few seconds later.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbintel_dsl::plan::{SampleNode, SampleRule};
use dbintel_dsl::schema::SampleSettings;
use dbintel_stdlib::functions::fnv1a;
use dbintel_stdlib::Value;

use super::Operator;
use crate::ottl::{compile_condition, compile_path, truthy, CExpr, CPath, CompileError, Ctx};
use crate::redis::{SharedState, StateError, Step};
use dbintel_core::counters::NodeCounters;
use dbintel_core::record::{Batch, Record, Resource};
use dbintel_core::BoxFuture;

/// Most keys a rate limit tracks; past it, expired windows are forgotten.
const MAX_RATE_KEYS: usize = 100_000;

enum Rule {
    Probabilistic { threshold: u64, by: Option<CPath> },
    Keep { condition: CExpr, threshold: Option<u64>, by: Option<CPath> },
    Drop(CExpr),
    RateLimit { count: u64, per: Duration, by: Option<CPath>, condition: Option<CExpr>, windows: HashMap<String, (Instant, u64)> },
    Dedup { by: CPath, window: Duration, seen: Lru },
}

/// Keys seen in a dedup window, bounded: the oldest are forgotten first.
#[derive(Default)]
struct Lru {
    at: HashMap<String, Instant>,
    order: std::collections::VecDeque<(String, Instant)>,
    max: usize,
}

impl Lru {
    /// True when `key` was not seen within `window` (and remembers it).
    fn first(&mut self, key: &str, now: Instant, window: Duration) -> bool {
        while let Some((k, t)) = self.order.front() {
            let stale = now.duration_since(*t) >= window;
            if !(stale || self.order.len() > self.max) {
                break;
            }
            if self.at.get(k) == Some(t) {
                self.at.remove(k);
            }
            self.order.pop_front();
        }
        match self.at.get(key) {
            Some(t) if now.duration_since(*t) < window => false,
            _ => {
                self.at.insert(key.to_string(), now);
                self.order.push_back((key.to_string(), now));
                true
            }
        }
    }
}

pub use dbintel_core::counters::SamplerStats;

/// Shared state in Redis, with local state as the fallback while Redis
/// cannot be reached (retried every few seconds).
struct Shared {
    redis: SharedState,
    node: String,
    down_until: Option<Instant>,
}

const RETRY_REDIS: Duration = Duration::from_secs(3);
/// How long a batch's round trip may take before the batch is decided
/// locally.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

impl Shared {
    fn usable(&mut self, now: Instant) -> bool {
        match self.down_until {
            Some(t) if now < t => false,
            Some(_) => {
                self.down_until = None;
                tracing::info!(sampler = %self.node, "trying Redis again");
                true
            }
            None => true,
        }
    }

    fn failed(&mut self, now: Instant, error: &StateError, stats: &SamplerStats) {
        stats.redis_errors.fetch_add(1, Relaxed);
        if self.down_until.is_none() {
            tracing::warn!(sampler = %self.node, %error, "Redis unavailable: deciding with local state until it is back");
        }
        self.down_until = Some(now + RETRY_REDIS);
    }

    /// The key of a rate limit's fixed window (aligned to wall-clock time,
    /// `now_ms`, so every replica shares it).
    fn rate_key(&self, rule: usize, key: &str, per: Duration, now_ms: u64) -> String {
        let per_ms = per.as_millis().max(1) as u64;
        format!("dbintel:sample:{}:{rule}:rl:{key}:{}", self.node, now_ms / per_ms)
    }

    fn dedup_key(&self, rule: usize, key: &str) -> String {
        format!("dbintel:sample:{}:{rule}:dedup:{key}", self.node)
    }
}

/// What planning a record against the rules found: decided, or the Redis
/// steps it must pass and what happens if it passes them all.
enum Planned {
    Decided(Decision),
    Steps(Vec<Step>, Then),
}

/// After every Redis step let a record through.
#[derive(Clone, Copy)]
enum Then {
    Decided(Decision),
    /// The target throughput decides (or keeps, without one).
    Undecided,
}

/// Holds `max_records_per_second` for the records no rule decided on:
/// once a second the keep ratio becomes target ÷ what arrived.
struct Target {
    per_second: f64,
    ratio: f64,
    window_start: Option<Instant>,
    offered: u64,
}

impl Target {
    fn threshold(&mut self, now: Instant) -> u64 {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.duration_since(start);
        if elapsed >= Duration::from_secs(1) {
            let rate = self.offered as f64 / elapsed.as_secs_f64();
            self.ratio = if rate > 0.0 { (self.per_second / rate).min(1.0) } else { 1.0 };
            self.window_start = Some(now);
            self.offered = 0;
        }
        self.offered += 1;
        (self.ratio * u64::MAX as f64) as u64
    }
}

pub struct Sample {
    rules: Vec<Rule>,
    /// For probabilistic rules without a key.
    random: u64,
    shared: Option<Shared>,
    target: Option<Target>,
    stats: Arc<SamplerStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Keep,
    Drop,
}

fn key_of(by: &Option<CPath>, ctx: &Ctx<'_>) -> Option<String> {
    let value = by.as_ref()?.get(ctx).ok()?;
    match value.as_ref() {
        Value::Nil => None,
        Value::Str(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// FNV-1a alone leaves the high bits of short, similar keys (`q1`, `q2`)
/// poorly spread; this finalizer (MurmurHash3's fmix64) spreads them so a
/// threshold on the whole 64 bits keeps the intended share.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ceb9fe1a85ec53);
    h ^ (h >> 33)
}

fn threshold(ratio: f64) -> u64 {
    (ratio.clamp(0.0, 1.0) * u64::MAX as f64) as u64
}

impl Sample {
    pub fn new(node: &SampleNode) -> Result<Sample, CompileError> {
        Sample::named("sample", node)
    }

    pub fn named(name: &str, node: &SampleNode) -> Result<Sample, CompileError> {
        let compile_by = |by: &Option<dbintel_dsl::ast::Path>| {
            by.as_ref().map(|p| compile_path(p).map_err(|message| CompileError { statement: p.dotted(), message })).transpose()
        };
        let settings = SampleSettings::from_settings(&node.settings);
        let max_keys = settings.dedup_max_keys.max(1) as usize;
        let rules = node
            .rules
            .iter()
            .map(|rule| {
                Ok(match rule {
                    SampleRule::Probabilistic { ratio, by } => Rule::Probabilistic { threshold: threshold(*ratio), by: compile_by(by)? },
                    SampleRule::Keep { condition, ratio, by } => {
                        Rule::Keep { condition: compile_condition(condition)?, threshold: ratio.map(threshold), by: compile_by(by)? }
                    }
                    SampleRule::Drop(c) => Rule::Drop(compile_condition(c)?),
                    SampleRule::RateLimit { count, per, by, condition } => Rule::RateLimit {
                        count: *count,
                        per: *per,
                        by: compile_by(by)?,
                        condition: condition.as_ref().map(compile_condition).transpose()?,
                        windows: HashMap::new(),
                    },
                    SampleRule::Dedup { by, window } => Rule::Dedup {
                        by: compile_path(by).map_err(|message| CompileError { statement: by.dotted(), message })?,
                        window: *window,
                        seen: Lru { max: max_keys, ..Lru::default() },
                    },
                })
            })
            .collect::<Result<_, CompileError>>()?;
        let shared = match &settings.state {
            Some(state) => Some(Shared {
                redis: SharedState::new(state, REDIS_TIMEOUT)
                    .map_err(|e| CompileError { statement: "state".into(), message: e.to_string() })?,
                node: name.to_string(),
                down_until: None,
            }),
            None => None,
        };
        let target = settings.max_records_per_second.map(|n| Target { per_second: n as f64, ratio: 1.0, window_start: None, offered: 0 });
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        Ok(Sample { rules, random: seed | 1, shared, target, stats: Arc::default() })
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64
        self.random = self.random.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.random;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    /// A hash of the key (deterministic on every replica), or a random
    /// number without one.
    fn draw(&mut self, key: Option<String>) -> u64 {
        match key {
            Some(key) => mix(fnv1a(key.as_bytes())),
            None => self.next_random(),
        }
    }

    pub fn decide(&mut self, resource: &Resource, record: &Record, now: Instant) -> Decision {
        let ctx = Ctx { resource, record };
        for i in 0..self.rules.len() {
            match &self.rules[i] {
                Rule::Drop(c) => {
                    if c.eval(&ctx).is_ok_and(|v| truthy(&v)) {
                        return Decision::Drop;
                    }
                }
                Rule::Keep { condition, threshold, by } => {
                    if condition.eval(&ctx).is_ok_and(|v| truthy(&v)) {
                        let Some(t) = *threshold else { return Decision::Keep };
                        let key = key_of(by, &ctx);
                        let draw = self.draw(key);
                        return if draw <= t && t > 0 { Decision::Keep } else { Decision::Drop };
                    }
                }
                Rule::Probabilistic { threshold, by } => {
                    let t = *threshold;
                    let key = key_of(by, &ctx);
                    let draw = self.draw(key);
                    return if draw <= t && t > 0 { Decision::Keep } else { Decision::Drop };
                }
                Rule::RateLimit { count, per, by, condition, .. } => {
                    if condition.as_ref().is_some_and(|c| !c.eval(&ctx).is_ok_and(|v| truthy(&v))) {
                        continue;
                    }
                    let (count, per) = (*count, *per);
                    let key = key_of(by, &ctx).unwrap_or_default();
                    if self.count_in_window(i, &key, per, now) > count {
                        return Decision::Drop;
                    }
                }
                Rule::Dedup { by, window, .. } => {
                    let window = *window;
                    let key = match by.get(&ctx) {
                        Ok(v) if !v.is_nil() => v.to_string(),
                        _ => continue,
                    };
                    if !self.first_in_window(i, &key, window, now) {
                        return Decision::Drop;
                    }
                }
            }
        }
        self.undecided(now)
    }

    fn count_in_window(&mut self, rule: usize, key: &str, per: Duration, now: Instant) -> u64 {
        let Rule::RateLimit { windows, .. } = &mut self.rules[rule] else { return 0 };
        if windows.len() >= MAX_RATE_KEYS && !windows.contains_key(key) {
            windows.retain(|_, (start, _)| now.duration_since(*start) < per);
            if windows.len() >= MAX_RATE_KEYS {
                windows.clear();
            }
        }
        let window = windows.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(window.0) >= per {
            *window = (now, 0);
        }
        window.1 += 1;
        window.1
    }

    fn first_in_window(&mut self, rule: usize, key: &str, window: Duration, now: Instant) -> bool {
        let Rule::Dedup { seen, .. } = &mut self.rules[rule] else { return true };
        seen.first(key, now, window)
    }

    /// This sampler's shared-state counters.
    pub fn stats(&self) -> Arc<SamplerStats> {
        self.stats.clone()
    }

    /// Counts into `stats` (the node's, kept across reloads by the
    /// registry) instead of its own.
    pub fn with_stats(mut self, stats: Arc<SamplerStats>) -> Sample {
        self.stats = stats;
        self
    }

    /// The undecided end of the rules: the target throughput, or keep.
    fn undecided(&mut self, now: Instant) -> Decision {
        match self.target.as_mut() {
            Some(target) => {
                let t = target.threshold(now);
                if self.next_random() <= t {
                    Decision::Keep
                } else {
                    Decision::Drop
                }
            }
            None => Decision::Keep,
        }
    }

    /// Walks the rules for one record, deciding what local rules decide
    /// and listing the Redis steps for the rest (see the module doc).
    fn plan(&mut self, shared: &Shared, resource: &Resource, record: &Record, now: Instant, now_ms: u64) -> Planned {
        let ctx = Ctx { resource, record };
        let mut steps = Vec::new();
        for i in 0..self.rules.len() {
            let decided = match &self.rules[i] {
                Rule::Drop(c) => c.eval(&ctx).is_ok_and(|v| truthy(&v)).then_some(Decision::Drop),
                Rule::Keep { condition, threshold, by } => {
                    if condition.eval(&ctx).is_ok_and(|v| truthy(&v)) {
                        Some(match *threshold {
                            None => Decision::Keep,
                            Some(t) => {
                                let draw = self.draw(key_of(by, &ctx));
                                if draw <= t && t > 0 {
                                    Decision::Keep
                                } else {
                                    Decision::Drop
                                }
                            }
                        })
                    } else {
                        None
                    }
                }
                Rule::Probabilistic { threshold, by } => {
                    let t = *threshold;
                    let draw = self.draw(key_of(by, &ctx));
                    Some(if draw <= t && t > 0 { Decision::Keep } else { Decision::Drop })
                }
                Rule::RateLimit { count, per, by, condition, .. } => {
                    if condition.as_ref().is_none_or(|c| c.eval(&ctx).is_ok_and(|v| truthy(&v))) {
                        let key = key_of(by, &ctx).unwrap_or_default();
                        steps.push(Step::Rate { key: shared.rate_key(i, &key, *per, now_ms), limit: *count, window: *per });
                    }
                    None
                }
                Rule::Dedup { by, window, .. } => {
                    if let Ok(v) = by.get(&ctx) {
                        if !v.is_nil() {
                            steps.push(Step::Dedup { key: shared.dedup_key(i, &v.to_string()), window: *window });
                        }
                    }
                    None
                }
            };
            if let Some(d) = decided {
                return if steps.is_empty() { Planned::Decided(d) } else { Planned::Steps(steps, Then::Decided(d)) };
            }
        }
        if steps.is_empty() {
            Planned::Decided(self.undecided(now))
        } else {
            Planned::Steps(steps, Then::Undecided)
        }
    }

    /// Decides every record of a batch: locally, or with the shared state
    /// in one round trip.
    pub async fn decide_batch(&mut self, resource: &Resource, records: &[Record], now: Instant) -> Vec<Decision> {
        let Some(mut shared) = self.shared.take() else {
            return records.iter().map(|r| self.decide(resource, r, now)).collect();
        };
        let decisions = self.decide_shared(&mut shared, resource, records, now).await;
        self.shared = Some(shared);
        decisions
    }

    async fn decide_shared(&mut self, shared: &mut Shared, resource: &Resource, records: &[Record], now: Instant) -> Vec<Decision> {
        let local = |s: &mut Sample| -> Vec<Decision> {
            s.stats.fallback_decisions.fetch_add(records.len() as u64, Relaxed);
            records.iter().map(|r| s.decide(resource, r, now)).collect()
        };
        if !shared.usable(now) {
            return local(self);
        }
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let mut planned: Vec<Planned> = records.iter().map(|r| self.plan(shared, resource, r, now, now_ms)).collect();
        let chains: Vec<Vec<Step>> = planned
            .iter_mut()
            .filter_map(|p| match p {
                Planned::Steps(steps, _) => Some(std::mem::take(steps)),
                Planned::Decided(_) => None,
            })
            .collect();
        let answers = match shared.redis.decide(&chains).await {
            Ok(a) => a,
            Err(e) => {
                shared.failed(now, &e, &self.stats);
                return local(self);
            }
        };
        self.stats.redis_decisions.fetch_add(chains.len() as u64, Relaxed);
        let mut answers = answers.into_iter();
        let mut out = Vec::with_capacity(records.len());
        for p in planned {
            out.push(match p {
                Planned::Decided(d) => d,
                Planned::Steps(_, then) => match (answers.next(), then) {
                    (Some(0), Then::Decided(d)) => d,
                    (Some(0), Then::Undecided) => self.undecided(now),
                    _ => Decision::Drop,
                },
            });
        }
        out
    }
}

impl Operator for Sample {
    fn process<'a>(&'a mut self, mut batch: Batch, out: &'a mut Vec<Batch>, counters: &'a NodeCounters) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            NodeCounters::add(&counters.received, batch.len());
            let errors = self.stats.redis_errors.load(Relaxed);
            let decisions = self.decide_batch(&batch.resource, &batch.records, Instant::now()).await;
            NodeCounters::add(&counters.errors, (self.stats.redis_errors.load(Relaxed) - errors) as usize);
            let mut decisions = decisions.into_iter();
            let before = batch.records.len();
            batch.records.retain(|_| decisions.next() == Some(Decision::Keep));
            NodeCounters::add(&counters.dropped, before - batch.records.len());
            NodeCounters::add(&counters.emitted, batch.len());
            if !batch.is_empty() {
                out.push(batch);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbintel_core::record::LogRecord;

    fn sample(rules: &str) -> Sample {
        let plan = crate::plan_of(&format!("sample s {{\n{rules}\n}}\n"));
        let dbintel_dsl::plan::NodeKind::Sample(node) = &plan.nodes["s"].kind else { panic!("not a sample") };
        Sample::new(node).expect("compiles")
    }

    fn record(pairs: &[(&str, Value)]) -> Record {
        let mut log = LogRecord::default();
        for (k, v) in pairs {
            log.attributes.insert(*k, v.clone());
        }
        Record::Log(log)
    }

    #[test]
    fn probabilistic_by_key_is_the_same_on_every_replica() {
        let rules = r#"probabilistic 30% by attributes["id"]"#;
        let (mut a, mut b) = (sample(rules), sample(rules));
        let now = Instant::now();
        let mut kept = 0;
        for i in 0..10_000 {
            let r = record(&[("id", Value::Str(format!("q{i}")))]);
            let da = a.decide(&Resource::default(), &r, now);
            assert_eq!(da, b.decide(&Resource::default(), &r, now), "replicas disagree on q{i}");
            kept += usize::from(da == Decision::Keep);
        }
        assert!((2_700..=3_300).contains(&kept), "kept {kept} of 10,000 at 30%");
    }

    #[test]
    fn rules_decide_in_order() {
        let mut s = sample(
            r#"drop where attributes["user"] == "replication"
keep where attributes["slow"] == true
probabilistic 0%"#,
        );
        let now = Instant::now();
        let r = Resource::default();
        assert_eq!(s.decide(&r, &record(&[("user", "replication".into()), ("slow", true.into())]), now), Decision::Drop);
        assert_eq!(s.decide(&r, &record(&[("slow", true.into())]), now), Decision::Keep);
        assert_eq!(s.decide(&r, &record(&[("slow", false.into())]), now), Decision::Drop);
    }

    #[test]
    fn rate_limit_keeps_exactly_the_budget_per_key_and_window() {
        let mut s = sample(r#"rate_limit 3 per 1m by attributes["id"]"#);
        let start = Instant::now();
        let r = Resource::default();
        let mut kept =
            |id: &str, at: Instant| (0..10).filter(|_| s.decide(&r, &record(&[("id", id.into())]), at) == Decision::Keep).count();
        assert_eq!(kept("a", start), 3);
        assert_eq!(kept("b", start), 3, "each key has its own budget");
        assert_eq!(kept("a", start + Duration::from_secs(61)), 3, "a new window, a new budget");
    }

    type Decide<'a> = dyn FnMut(&[(&str, Value)]) -> Decision + 'a;

    #[test]
    fn priorities_rates_limits_and_dedup_give_exact_counts() {
        let mut s = sample(
            r#"drop where attributes["user"] == "replication"
keep where attributes["slow"] == true
dedup by attributes["text"] for 1m
rate_limit 2 per 1m by attributes["db"] where attributes["kind"] == "event"
keep 50% by attributes["id"] where attributes["kind"] == "sampled"
probabilistic 100%"#,
        );
        let r = Resource::default();
        let now = Instant::now();
        let mut kept = 0;
        let mut decide = |pairs: &[(&str, Value)]| {
            let d = s.decide(&r, &record(pairs), now);
            kept += usize::from(d == Decision::Keep);
            d
        };
        // 1: replication is dropped even when slow (rule order)
        assert_eq!(decide(&[("user", "replication".into()), ("slow", true.into())]), Decision::Drop);
        // 2: slow is kept even when a duplicate
        for _ in 0..3 {
            assert_eq!(decide(&[("slow", true.into()), ("text", "t1".into())]), Decision::Keep);
        }
        // 3: dedup: t2 once in the window
        assert_eq!(decide(&[("text", "t2".into())]), Decision::Keep);
        assert_eq!(decide(&[("text", "t2".into())]), Decision::Drop);
        // 4: rate limit, per db, only for events: 2 of 5 for db a, 2 of 3 for b
        let events = |db: &str, n: usize, decide: &mut Decide<'_>| {
            (0..n)
                .filter(|i| decide(&[("kind", "event".into()), ("db", db.into()), ("text", format!("{db}{i}").into())]) == Decision::Keep)
                .count()
        };
        assert_eq!(events("a", 5, &mut decide), 2);
        assert_eq!(events("b", 3, &mut decide), 2);
        // 5: keep 50% by id: the same ids always get the same answer
        let ids: Vec<Decision> = (0..1000).map(|i| decide(&[("kind", "sampled".into()), ("id", format!("q{i}").into())])).collect();
        let again: Vec<Decision> = (0..1000)
            .map(|i| {
                let mut other = sample(r#"keep 50% by attributes["id"] where attributes["kind"] == "sampled""#);
                other.decide(&r, &record(&[("kind", "sampled".into()), ("id", format!("q{i}").into())]), now)
            })
            .collect();
        assert_eq!(ids, again, "deterministic by key");
        let half = ids.iter().filter(|d| **d == Decision::Keep).count();
        assert!((450..=550).contains(&half), "{half}");
        assert_eq!(kept, 3 + 1 + 2 + 2 + half);
    }

    #[test]
    fn a_target_throughput_adapts_the_default_rate() {
        let mut s = sample("max_records_per_second = 100");
        let r = Resource::default();
        let start = Instant::now();
        let mut kept_per_second = Vec::new();
        for second in 0..5 {
            let at = start + Duration::from_secs(second);
            kept_per_second.push((0..1000).filter(|_| s.decide(&r, &record(&[]), at) == Decision::Keep).count());
        }
        assert_eq!(kept_per_second[0], 1000, "nothing to go on in the first second");
        for k in &kept_per_second[1..] {
            assert!((60..=140).contains(k), "about 100 per second: {kept_per_second:?}");
        }
    }

    /// A private redis-server on a free port (killed on drop).
    struct RedisServer {
        child: std::process::Child,
        port: u16,
    }

    impl RedisServer {
        fn start(port: u16) -> RedisServer {
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server (Debian's redis-server package)");
            let server = RedisServer { child, port };
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("redis-server did not start on {port}");
        }

        fn query(&self, args: &[&str]) -> ::redis::Value {
            let client = ::redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).unwrap();
            let mut conn = client.get_connection().expect("a test connection");
            let mut cmd = ::redis::cmd(args[0]);
            for a in &args[1..] {
                cmd.arg(*a);
            }
            cmd.query(&mut conn).expect("a test query")
        }

        fn keys(&self) -> usize {
            match self.query(&["KEYS", "dbintel:*"]) {
                ::redis::Value::Array(items) => items.len(),
                other => panic!("{other:?}"),
            }
        }

        /// Calls of `command` the server has run so far (INFO
        /// commandstats; commands a script runs are counted apart).
        fn calls(&self, command: &str) -> u64 {
            let ::redis::Value::BulkString(info) = self.query(&["INFO", "commandstats"]) else { panic!("INFO") };
            let info = String::from_utf8_lossy(&info).into_owned();
            let prefix = format!("cmdstat_{command}:calls=");
            info.lines().find_map(|l| l.strip_prefix(prefix.as_str())).and_then(|v| v.split(',').next()?.parse().ok()).unwrap_or(0)
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    fn keyed(k: &str) -> Record {
        record(&[("k", k.into())])
    }

    #[tokio::test]
    async fn redis_stopping_mid_run_falls_back_to_local_state_and_recovers() {
        let port = free_port();
        let server = RedisServer::start(port);
        let mut s = sample(&format!("state = redis(\"redis://127.0.0.1:{port}\")\nrate_limit 2 per 1h by attributes[\"k\"]"));
        let stats = s.stats();
        let r = Resource::default();
        let t0 = Instant::now();
        assert_eq!(s.decide_batch(&r, &[keyed("a")], t0).await, [Decision::Keep]);
        assert_eq!(server.keys(), 1, "the budget lives in Redis");

        drop(server);
        // still deciding, from local state: its own budget of 2
        let local = s.decide_batch(&r, &[keyed("a"), keyed("a"), keyed("a")], t0).await;
        assert_eq!(local, [Decision::Keep, Decision::Keep, Decision::Drop]);
        assert_eq!(stats.redis_errors.load(Relaxed), 1);
        assert_eq!(stats.fallback_decisions.load(Relaxed), 3);

        let server = RedisServer::start(port);
        // before the retry delay: still local; after it: Redis again
        s.decide_batch(&r, &[keyed("a")], t0 + Duration::from_secs(1)).await;
        assert_eq!(server.keys(), 0);
        assert_eq!(stats.fallback_decisions.load(Relaxed), 4);
        assert_eq!(s.decide_batch(&r, &[keyed("a")], t0 + RETRY_REDIS + Duration::from_secs(1)).await, [Decision::Keep]);
        assert_eq!(server.keys(), 1, "back on the shared state");
        assert_eq!(stats.redis_decisions.load(Relaxed), 2);
    }

    #[tokio::test]
    async fn a_batch_is_decided_in_one_round_trip_exactly_as_one_record_at_a_time() {
        let port = free_port();
        let server = RedisServer::start(port);
        let rules = r#"drop where attributes["user"] == "replication"
dedup by attributes["text"] for 1h
keep where attributes["slow"] == true
rate_limit 3 per 1h by attributes["db"]"#;
        let mut shared = sample(&format!("state = redis(\"redis://127.0.0.1:{port}\")\n{rules}"));
        let mut local = sample(rules);
        let records: Vec<Record> = (0..300)
            .map(|i| {
                record(&[
                    ("user", if i % 7 == 0 { "replication" } else { "app" }.into()),
                    ("text", format!("t{}", i % 40).into()),
                    ("slow", (i % 5 == 0).into()),
                    ("db", format!("db{}", i % 3).into()),
                ])
            })
            .collect();
        let (r, now) = (Resource::default(), Instant::now());
        let got = shared.decide_batch(&r, &records, now).await;
        let want: Vec<Decision> = records.iter().map(|rec| local.decide(&r, rec, now)).collect();
        assert_eq!(got, want, "the same decisions as the rules taken one record at a time");
        assert_eq!(server.calls("evalsha"), 1, "one script call for 300 records");
        shared.decide_batch(&r, &records[..100], now).await;
        assert_eq!(server.calls("evalsha"), 2, "one more for the next batch");
        assert_eq!(server.calls("script|load"), 1, "the script is loaded once and called by its SHA");
    }

    /// A RESP server that answers every command `+OK`, and every EVALSHA
    /// with `reply` — a fake (nothing real sends garbage on purpose), as
    /// faithful as it needs to be for the client to get that far.
    async fn garbage_server(reply: &'static [u8]) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1 << 16];
                    let mut pending = Vec::new();
                    loop {
                        let n = match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        pending.extend_from_slice(&buf[..n]);
                        // one answer per command seen (`*N\r\n$len\r\nNAME`)
                        let text = String::from_utf8_lossy(&pending).into_owned();
                        let commands: Vec<&str> = text.split('*').filter(|c| c.contains("\r\n$")).collect();
                        if !text.ends_with("\r\n") {
                            continue;
                        }
                        for c in commands {
                            let name = c.split("\r\n").nth(2).unwrap_or_default().to_ascii_uppercase();
                            let answer: &[u8] = if name == "EVALSHA" { reply } else { b"+OK\r\n" };
                            if conn.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                        pending.clear();
                    }
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn malformed_replies_from_a_fake_server_are_errors_and_decisions_fall_back_locally() {
        let garbage: [&'static [u8]; 8] = [
            b":7\r\n",
            b"*1\r\n:0\r\n",
            b"*2\r\n:9\r\n:0\r\n",
            b"*2\r\n+x\r\n:0\r\n",
            b"\x00\x01garbage\r\n",
            b"$99999999999\r\n",
            b"-ERR nope\r\n",
            b"*-1\r\n",
        ];
        for reply in garbage {
            let port = garbage_server(reply).await;
            let rules = "dedup by attributes[\"k\"] for 1h";
            let mut s = sample(&format!("state = redis(\"redis://127.0.0.1:{port}\")\n{rules}"));
            let stats = s.stats();
            let records = [keyed("a"), keyed("a")];
            let got = s.decide_batch(&Resource::default(), &records, Instant::now()).await;
            let shown = String::from_utf8_lossy(reply);
            assert_eq!(got, [Decision::Keep, Decision::Drop], "{shown:?}: decided from local state");
            assert_eq!(stats.redis_errors.load(Relaxed), 1, "{shown:?}: counted as a Redis error");
            assert_eq!(stats.fallback_decisions.load(Relaxed), 2, "{shown:?}");
            assert_eq!(stats.redis_decisions.load(Relaxed), 0, "{shown:?}");
        }
    }
}

#[cfg(test)]
mod tls_tests {
    use super::*;
    use dbintel_core::record::LogRecord;
    use std::process::{Command, Stdio};

    fn keyed(k: &str) -> Record {
        let mut log = LogRecord::default();
        log.attributes.insert("k", Value::Str(k.into()));
        Record::Log(log)
    }

    fn sample(name: &str, rules: &str) -> Sample {
        let plan = crate::plan_of(&format!("sample {name} {{\n{rules}\n}}\n"));
        let dbintel_dsl::plan::NodeKind::Sample(node) = &plan.nodes[name].kind else { panic!("not a sample") };
        Sample::named(name, node).expect("compiles")
    }

    /// A CA and a certificate for localhost, by the openssl command line.
    fn certificates(dir: &std::path::Path) {
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=dbintel test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        run(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"]);
        std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ]);
    }

    struct Server(std::process::Child);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[tokio::test]
    async fn rediss_with_credentials_from_the_environment_shares_state_and_a_wrong_password_falls_back() {
        let dir = std::env::temp_dir().join(format!("dbintel-redis-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        certificates(&dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // TLS only, the default user off, one ACL user with a password
        std::fs::write(
            dir.join("redis.conf"),
            format!(
                "port 0\ntls-port {port}\nbind 127.0.0.1\ntls-cert-file server.pem\ntls-key-file server.key\ntls-ca-cert-file ca.pem\ntls-auth-clients no\nsave \"\"\nappendonly no\nuser default off\nuser sampler on >tls-pw-93e1 ~dbintel:* +@all\n"
            ),
        )
        .unwrap();
        let child = Command::new("redis-server").arg("redis.conf").current_dir(&dir).stdout(Stdio::null()).spawn().expect("redis-server");
        let _server = Server(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // the CA is trusted the way an operator would: SSL_CERT_FILE
        std::env::set_var("SSL_CERT_FILE", dir.join("ca.pem"));
        std::env::set_var("DBINTEL_TEST_TLS_USER", "sampler");
        std::env::set_var("DBINTEL_TEST_TLS_PASSWORD", "tls-pw-93e1");
        std::env::set_var("DBINTEL_TEST_TLS_WRONG", "not-the-password");
        let state = |password: &str| {
            format!("state = redis(\"rediss://localhost:{port}\", username = env(\"DBINTEL_TEST_TLS_USER\"), password = env(\"{password}\"))\ndedup by attributes[\"k\"] for 1h")
        };
        let (r, now) = (Resource::default(), Instant::now());
        let mut one = sample("shared", &state("DBINTEL_TEST_TLS_PASSWORD"));
        let mut two = sample("shared", &state("DBINTEL_TEST_TLS_PASSWORD"));
        assert_eq!(one.decide_batch(&r, &[keyed("a"), keyed("b")], now).await, [Decision::Keep, Decision::Keep]);
        assert_eq!(
            two.decide_batch(&r, &[keyed("a"), keyed("c")], now).await,
            [Decision::Drop, Decision::Keep],
            "the second replica sees the first's window"
        );
        for s in [&one, &two] {
            assert_eq!(s.stats().fallback_decisions.load(Relaxed), 0, "decided over TLS with the ACL user");
            assert_eq!(s.stats().redis_decisions.load(Relaxed), 2);
        }

        let mut wrong = sample("shared", &state("DBINTEL_TEST_TLS_WRONG"));
        let got = wrong.decide_batch(&r, &[keyed("a")], now).await;
        assert_eq!(got, [Decision::Keep], "local state: `a` was never seen here");
        assert_eq!(wrong.stats().redis_errors.load(Relaxed), 1);
        assert_eq!(wrong.stats().fallback_decisions.load(Relaxed), 1);
        // and the error says why without the password
        let refused = dbintel_dsl::plan::RedisState {
            url: format!("rediss://localhost:{port}"),
            username: Some(dbintel_dsl::plan::SecretRef::Env("DBINTEL_TEST_TLS_USER".into())),
            password: Some(dbintel_dsl::plan::SecretRef::Env("DBINTEL_TEST_TLS_WRONG".into())),
        };
        let mut direct = crate::redis::SharedState::new(&refused, Duration::from_secs(1)).unwrap();
        let err = direct
            .decide(&[vec![crate::redis::Step::Dedup { key: "dbintel:x".into(), window: Duration::from_secs(1) }]])
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("not-the-password") && !text.contains("tls-pw-93e1"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
