//! Benchmark (benches/apm_hash.sh): time per statement of the APM
//! correlation functions over a realistic corpus, release build.
//!   cargo run --release -p dbintel-stdlib --example bench_apm -- ROWS.ndjson
//!
//! The corpus is benches/gen_queries.py's rows (`db.query.text`). As the
//! collectors use them: the query hash over the text after NormalizeSQL
//! (what is emitted as `db.query.text`), the comment tags over the raw text
//! (half of the texts carry the Java agent's `nr_service_guid` comment, a
//! tenth a sqlcommenter-style one), a traceparent per session sample.
//! NormalizeSQL itself is timed too, for scale. Best of five rounds.

use std::time::Instant;

use dbintel_stdlib::sql::{apm_hash, comment_tags, normalize, Dialect};
use dbintel_stdlib::trace_context;

fn best_ns_per_item<T>(items: &[T], mut f: impl FnMut(&T) -> usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut sink = 0usize;
        for item in items {
            sink = sink.wrapping_add(f(item));
        }
        std::hint::black_box(sink);
        best = best.min(start.elapsed().as_nanos() as f64 / items.len() as f64);
    }
    best
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: bench_apm ROWS.ndjson");
    let text = std::fs::read_to_string(&path).expect("the rows file");
    let raw: Vec<String> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|row| row["db.query.text"].as_str().map(str::to_string))
        .collect();
    assert!(!raw.is_empty(), "no db.query.text in {path}");
    let guid = "MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw";
    let commented: Vec<String> = raw
        .iter()
        .enumerate()
        .map(|(i, q)| match i % 10 {
            0..=4 => format!("/* nr_service_guid=\"{guid}\" */ {q}"),
            5 => format!(
                "/*controller='orders',framework='spring',traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/ {q}"
            ),
            _ => q.clone(),
        })
        .collect();
    let sanitized: Vec<String> = commented.iter().map(|q| normalize(q, Dialect::Postgres).unwrap_or_default()).collect();
    let mean = |texts: &[String]| texts.iter().map(String::len).sum::<usize>() / texts.len();
    println!(
        "{} statements, mean {} bytes raw, {} with the comments, {} after NormalizeSQL",
        raw.len(),
        mean(&raw),
        mean(&commented),
        mean(&sanitized)
    );

    let ns = best_ns_per_item(&commented, |q| normalize(q, Dialect::Postgres).map_or(0, |s| s.len()));
    println!("NormalizeSQL (for scale)                        {ns:8.0} ns/statement");
    let ns = best_ns_per_item(&sanitized, |q| apm_hash::normalize_and_hash(q).1.len());
    println!("normalize_and_hash, sanitized text              {ns:8.0} ns/statement");
    let ns = best_ns_per_item(&commented, |q| apm_hash::normalize_and_hash(q).1.len());
    println!("normalize_and_hash, raw text                    {ns:8.0} ns/statement");
    let ns = best_ns_per_item(&commented, |q| comment_tags::extract(q, comment_tags::DEFAULT_ALLOWED_KEYS).tags.len());
    println!("comment_tags::extract, default keys             {ns:8.0} ns/statement");
    let keys = ["nr_service_guid", "traceparent", "controller", "framework"];
    let ns = best_ns_per_item(&commented, |q| comment_tags::extract(q, &keys).tags.len());
    println!("comment_tags::extract, four keys                {ns:8.0} ns/statement");
    let ns = best_ns_per_item(&raw, |q| comment_tags::extract(q, comment_tags::DEFAULT_ALLOWED_KEYS).tags.len());
    println!("comment_tags::extract, no comment               {ns:8.0} ns/statement");
    let names: Vec<String> =
        (0..100_000u64).map(|i| if i % 2 == 0 { format!("00-{:032x}-{:016x}-01", i + 1, i + 7) } else { "psql".to_string() }).collect();
    let ns = best_ns_per_item(&names, |n| usize::from(trace_context::parse(n).is_some()));
    println!("trace_context::parse, half valid                {ns:8.0} ns/value");
}
