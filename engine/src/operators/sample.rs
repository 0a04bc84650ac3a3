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
use crate::counters::NodeCounters;
use crate::ottl::{compile_condition, compile_path, truthy, CExpr, CPath, CompileError, Ctx};
use crate::record::{Batch, Record, Resource};

/// Most keys a rate limit tracks; past it, expired windows are forgotten.
const MAX_RATE_KEYS: usize = 100_000;

enum Rule {
    Probabilistic { threshold: u64, by: Option<CPath> },
    Keep(CExpr),
    Drop(CExpr),
    RateLimit { count: u64, per: Duration, by: Option<CPath>, windows: HashMap<String, (Instant, u64)> },
}

pub struct Sample {
    rules: Vec<Rule>,
    /// For probabilistic rules without a key.
    random: u64,
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

impl Sample {
    pub fn new(node: &SampleNode) -> Result<Sample, CompileError> {
        let compile_by = |by: &Option<dbintel_dsl::ast::Path>| {
            by.as_ref().map(|p| compile_path(p).map_err(|message| CompileError { statement: p.dotted(), message })).transpose()
        };
        let rules = node
            .rules
            .iter()
            .map(|rule| {
                Ok(match rule {
                    SampleRule::Probabilistic { ratio, by } => {
                        Rule::Probabilistic { threshold: (ratio.clamp(0.0, 1.0) * u64::MAX as f64) as u64, by: compile_by(by)? }
                    }
                    SampleRule::Keep(c) => Rule::Keep(compile_condition(c)?),
                    SampleRule::Drop(c) => Rule::Drop(compile_condition(c)?),
                    SampleRule::RateLimit { count, per, by } => {
                        Rule::RateLimit { count: *count, per: *per, by: compile_by(by)?, windows: HashMap::new() }
                    }
                })
            })
            .collect::<Result<_, CompileError>>()?;
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        Ok(Sample { rules, random: seed | 1 })
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64
        self.random = self.random.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.random;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    pub fn decide(&mut self, resource: &Resource, record: &Record, now: Instant) -> Decision {
        let ctx = Ctx { resource, record };
        for i in 0..self.rules.len() {
            let random = if matches!(&self.rules[i], Rule::Probabilistic { by: None, .. }) { self.next_random() } else { 0 };
            match &mut self.rules[i] {
                Rule::Drop(c) => {
                    if c.eval(&ctx).is_ok_and(|v| truthy(&v)) {
                        return Decision::Drop;
                    }
                }
                Rule::Keep(c) => {
                    if c.eval(&ctx).is_ok_and(|v| truthy(&v)) {
                        return Decision::Keep;
                    }
                }
                Rule::Probabilistic { threshold, by } => {
                    let hash = match key_of(by, &ctx) {
                        Some(key) => mix(fnv1a(key.as_bytes())),
                        None if by.is_some() => random,
                        None => random,
                    };
                    return if hash <= *threshold && *threshold > 0 { Decision::Keep } else { Decision::Drop };
                }
                Rule::RateLimit { count, per, by, windows } => {
                    let key = key_of(by, &ctx).unwrap_or_default();
                    if windows.len() >= MAX_RATE_KEYS && !windows.contains_key(&key) {
                        windows.retain(|_, (start, _)| now.duration_since(*start) < *per);
                        if windows.len() >= MAX_RATE_KEYS {
                            windows.clear();
                        }
                    }
                    let window = windows.entry(key).or_insert((now, 0));
                    if now.duration_since(window.0) >= *per {
                        *window = (now, 0);
                    }
                    window.1 += 1;
                    if window.1 > *count {
                        return Decision::Drop;
                    }
                }
            }
        }
        Decision::Keep
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
    use crate::record::LogRecord;

    fn sample(rules: &str) -> Sample {
        let plan = crate::operators::plan_of(&format!("sample s {{\n{rules}\n}}\n"));
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
}
