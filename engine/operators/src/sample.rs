//! `sample`: ordered rules decide which records go on.
//!
//! Each rule either decides or passes the record to the next: `drop where`
//! drops when its condition holds, `keep where` keeps when it holds,
//! `rate_limit` drops what is over its budget, `probabilistic` always
//! decides. A record no rule decided on is kept. Probabilistic decisions by
//! key hash the key (FNV-1a, then a 64-bit finalizer), so every replica
//! decides the same.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dbintel_dsl::plan::{SampleNode, SampleRule};
use dbintel_stdlib::functions::fnv1a;
use dbintel_stdlib::Value;

use super::Operator;
use crate::ottl::{compile_condition, compile_path, truthy, CExpr, CPath, CompileError, Ctx};
use dbintel_core::counters::NodeCounters;
use dbintel_core::record::{Batch, Record, Resource};

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

/// Shared state in Redis, with local state as the fallback while Redis
/// cannot be reached (retried every few seconds).
struct Shared {
    redis: super::redis::Redis,
    node: String,
    down_until: Option<Instant>,
}

/// Process-wide sampler/Redis counters for `/metrics`.
pub static REDIS_ERRORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static REDIS_FALLBACK_DECISIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

const RETRY_REDIS: Duration = Duration::from_secs(3);

const RATE_SCRIPT: &str = "local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n";

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

    fn failed(&mut self, now: Instant, error: &str) {
        REDIS_ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.down_until.is_none() {
            tracing::warn!(sampler = %self.node, %error, "Redis unavailable: deciding with local state until it is back");
        }
        self.down_until = Some(now + RETRY_REDIS);
    }

    /// The count in this key's fixed window (aligned to wall-clock time, so
    /// every replica shares it), after adding this record.
    fn rate_count(&mut self, rule: usize, key: &str, per: Duration) -> Result<u64, String> {
        let per_ms = per.as_millis().max(1) as u64;
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let redis_key = format!("dbintel:sample:{}:{rule}:rl:{key}:{}", self.node, now_ms / per_ms);
        let ttl = (per_ms * 2).to_string();
        match self.redis.command(&[b"EVAL", RATE_SCRIPT.as_bytes(), b"1", redis_key.as_bytes(), ttl.as_bytes()])? {
            super::redis::Reply::Int(n) => Ok(n.max(0) as u64),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }

    /// True for the first record with this key in the window, across
    /// replicas.
    fn dedup_first(&mut self, rule: usize, key: &str, window: Duration) -> Result<bool, String> {
        let redis_key = format!("dbintel:sample:{}:{rule}:dedup:{key}", self.node);
        let ttl = window.as_millis().max(1).to_string();
        match self.redis.command(&[b"SET", redis_key.as_bytes(), b"1", b"NX", b"PX", ttl.as_bytes()])? {
            super::redis::Reply::Simple(_) => Ok(true),
            super::redis::Reply::Bulk(None) => Ok(false),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }
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
        let max_keys = node.settings.int("dedup_max_keys").unwrap_or(100_000).max(1) as usize;
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
        let shared = match node.settings.get("state") {
            Some(dbintel_dsl::plan::Value::Redis(url)) => Some(Shared {
                redis: super::redis::Redis::new(url, Duration::from_millis(250))
                    .map_err(|message| CompileError { statement: "state".into(), message })?,
                node: name.to_string(),
                down_until: None,
            }),
            _ => None,
        };
        let target = node.settings.int("max_records_per_second").map(|n| Target {
            per_second: n as f64,
            ratio: 1.0,
            window_start: None,
            offered: 0,
        });
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        Ok(Sample { rules, random: seed | 1, shared, target })
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

    /// Asks the shared state when there is one and it answers; `None`
    /// means: decide from local state (counted when Redis should have
    /// answered).
    fn remote<T>(&mut self, now: Instant, ask: impl FnOnce(&mut Shared) -> Result<T, String>) -> Option<T> {
        let shared = self.shared.as_mut()?;
        if shared.usable(now) {
            match ask(shared) {
                Ok(answer) => return Some(answer),
                Err(e) => shared.failed(now, &e),
            }
        }
        REDIS_FALLBACK_DECISIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        None
    }

    fn count_in_window(&mut self, rule: usize, key: &str, per: Duration, now: Instant) -> u64 {
        if let Some(n) = self.remote(now, |s| s.rate_count(rule, key, per)) {
            return n;
        }
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
        if let Some(first) = self.remote(now, |s| s.dedup_first(rule, key, window)) {
            return first;
        }
        let Rule::Dedup { seen, .. } = &mut self.rules[rule] else { return true };
        seen.first(key, now, window)
    }
}

impl Operator for Sample {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>, counters: &NodeCounters) {
        NodeCounters::add(&counters.received, batch.len());
        let now = Instant::now();
        let mut records = std::mem::take(&mut batch.records);
        let mut dropped = 0;
        records.retain(|record| {
            let keep = self.decide(&batch.resource, record, now) == Decision::Keep;
            dropped += usize::from(!keep);
            keep
        });
        batch.records = records;
        NodeCounters::add(&counters.dropped, dropped);
        NodeCounters::add(&counters.emitted, batch.len());
        if !batch.is_empty() {
            out.push(batch);
        }
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

    fn redis_server(port: u16) -> std::process::Child {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    fn keys(port: u16) -> usize {
        let mut r = crate::redis::Redis::new(&format!("redis://127.0.0.1:{port}"), Duration::from_secs(1)).unwrap();
        match r.command(&[b"KEYS", b"dbintel:*"]) {
            Ok(crate::redis::Reply::Array(items)) => items.len(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn redis_stopping_mid_run_falls_back_to_local_state_and_recovers() {
        use std::sync::atomic::Ordering::Relaxed;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = redis_server(port);
        let mut s = sample(&format!("state = redis(\"redis://127.0.0.1:{port}\")\nrate_limit 2 per 1h by attributes[\"k\"]"));
        let r = Resource::default();
        let t0 = Instant::now();
        let decide = |s: &mut Sample, at: Instant| s.decide(&r, &record(&[("k", "a".into())]), at);
        assert_eq!(decide(&mut s, t0), Decision::Keep);
        assert_eq!(keys(port), 1, "the budget lives in Redis");

        let _ = server.kill();
        let _ = server.wait();
        let errors = REDIS_ERRORS.load(Relaxed);
        let fallbacks = REDIS_FALLBACK_DECISIONS.load(Relaxed);
        // still deciding, from local state: its own budget of 2
        let local: Vec<Decision> = (0..3).map(|_| decide(&mut s, t0)).collect();
        assert_eq!(local, [Decision::Keep, Decision::Keep, Decision::Drop]);
        assert!(REDIS_ERRORS.load(Relaxed) > errors);
        assert!(REDIS_FALLBACK_DECISIONS.load(Relaxed) >= fallbacks + 3);

        let mut server = redis_server(port);
        // before the retry delay: still local; after it: Redis again
        decide(&mut s, t0 + Duration::from_secs(1));
        assert_eq!(keys(port), 0);
        assert_eq!(decide(&mut s, t0 + RETRY_REDIS + Duration::from_secs(1)), Decision::Keep);
        assert_eq!(keys(port), 1, "back on the shared state");
        let _ = server.kill();
        let _ = server.wait();
    }
}
