//! `sample`: ordered rules decide which records go on.
//!
//! Each rule either decides or passes the record to the next: `drop where`
//! drops when its condition holds, `keep where` keeps when it holds,
//! `rate_limit` drops what is over its budget, `probabilistic` always
//! decides. A record no rule decided on is kept. Probabilistic decisions by
//! key hash the key (FNV-1a), so every replica decides the same.

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
                        Some(key) => fnv1a(key.as_bytes()),
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
