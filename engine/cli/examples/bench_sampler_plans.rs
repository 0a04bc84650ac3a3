//! Benchmark (benches/sampler_plans.sh): sampler decisions per second with
//! local state and with Redis, and plan attribute extraction per plan.
//!   cargo run --release -p dbintel --example bench_sampler_plans -- [REDIS_URL]
//!
//! With Redis, the sampler runs as the operator does: a batch at a time,
//! the batch's dedup and rate-limit steps in one round trip.

use std::time::Instant;

use dbintel_core::record::{LogRecord, Record, Resource};
use dbintel_dsl::plan::NodeKind;
use dbintel_operators::sample::Sample;
use dbintel_stdlib::Value;

fn sampler(name: &str, state: &str) -> Sample {
    let text = format!(
        "sample s {{\n  state = {state}\n  drop where attributes[\"db.user\"] == \"replication\"\n  dedup by attributes[\"text\"] for 1m\n  rate_limit 1000 per 1m by attributes[\"db\"]\n  keep 10% by attributes[\"id\"] where attributes[\"kind\"] == \"cpu\"\n}}\n"
    );
    let parsed = dbintel_dsl::parse::parse(0, &text);
    let env = |_: &str| true;
    let input = dbintel_dsl::check::CheckInput { modules: &[parsed.module], env_is_set: &env, env_policy: dbintel_dsl::EnvPolicy::Warn };
    let (plan, _) = dbintel_dsl::check::check(input);
    let NodeKind::Sample(node) = &plan.nodes["s"].kind else { panic!("sample") };
    Sample::named(name, node).expect("sampler")
}

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut log = LogRecord::default();
            log.attributes.insert("db", Value::Str(format!("db{}", i % 50)));
            log.attributes.insert("id", Value::Str(format!("q{}", i % 5000)));
            log.attributes.insert("text", Value::Str(format!("t{i}")));
            log.attributes.insert("kind", Value::Str(if i % 2 == 0 { "cpu".into() } else { "io".into() }));
            Record::Log(log)
        })
        .collect()
}

fn decisions_per_second(s: &mut Sample, records: &[Record]) -> f64 {
    let resource = Resource::default();
    let start = Instant::now();
    let mut kept = 0usize;
    for r in records {
        kept += usize::from(s.decide(&resource, r, Instant::now()) == dbintel_operators::sample::Decision::Keep);
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(kept);
    records.len() as f64 / secs
}

const PLAN: &str = r#"[{"Plan": {"Node Type": "Hash Join", "Join Type": "Inner", "Startup Cost": 12.5, "Total Cost": 1543.2, "Plan Rows": 1000, "Plan Width": 64,
  "Hash Cond": "(o.customer_id = c.id)",
  "Plans": [
    {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "orders", "Alias": "o", "Total Cost": 1200.0, "Filter": "(status = 'open'::text)"},
    {"Node Type": "Hash", "Parent Relationship": "Inner", "Total Cost": 10.0,
     "Plans": [{"Node Type": "Index Scan", "Parent Relationship": "Outer", "Relation Name": "customers", "Index Name": "customers_pkey", "Index Cond": "(id = 42)", "Total Cost": 8.3}]}
  ]}}]"#;

/// Decisions per second through the operator's own path: batches of
/// `batch` records, each batch's Redis steps in one round trip.
fn batched_decisions_per_second(s: &mut Sample, records: &[Record], batch: usize) -> (f64, u64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let resource = Resource::default();
    let stats = s.stats();
    let start = Instant::now();
    let mut kept = 0usize;
    runtime.block_on(async {
        for chunk in records.chunks(batch) {
            let decisions = s.decide_batch(&resource, chunk, Instant::now()).await;
            kept += decisions.iter().filter(|d| **d == dbintel_operators::sample::Decision::Keep).count();
        }
    });
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(kept);
    (records.len() as f64 / secs, stats.fallback_decisions.load(std::sync::atomic::Ordering::Relaxed))
}

fn main() {
    let local = records(1_000_000);
    let mut s = sampler("bench", "local");
    println!("sampler, local state:  {:>12.0} decisions/s (1,000,000 records)", decisions_per_second(&mut s, &local));
    if let Some(url) = std::env::args().nth(1) {
        let many = records(1_000_000);
        for (db, batch) in [256, 1024, 4096].into_iter().enumerate() {
            // a sampler and a Redis database of its own per run: each run
            // starts from an empty keyspace
            let url = format!("{}/{}", url.trim_end_matches('/'), db + 1);
            let mut s = sampler(&format!("bench{batch}"), &format!("redis(\"{url}\")"));
            let (rate, fallbacks) = batched_decisions_per_second(&mut s, &many, batch);
            assert_eq!(fallbacks, 0, "Redis must answer every batch for this to measure Redis");
            println!("sampler, Redis state:  {rate:>12.0} decisions/s (1,000,000 records in batches of {batch}, one round trip per batch)");
        }
    }
    let n = 100_000;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(dbintel_stdlib::plan::attributes(std::hint::black_box(PLAN)));
    }
    let per = start.elapsed() / n;
    println!("plan attributes:       {:>12.2?} per plan (4-node plan, {n} runs)", per);
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(dbintel_stdlib::plan::obfuscate(std::hint::black_box(PLAN), dbintel_stdlib::sql::Dialect::Postgres));
    }
    println!("plan obfuscation:      {:>12.2?} per plan", start.elapsed() / n);
}
