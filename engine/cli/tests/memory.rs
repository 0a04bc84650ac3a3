//! `memory_limit` in a running pipeline (`dbintel run` against the real
//! PostgreSQL, exporting to tests/otlp_receiver.py): above the soft limit
//! sources hold back (skip scrapes, counted); at the limit new batches are
//! dropped and counted; resident memory over the limit drops too. Each
//! test ends by counting what arrived against what was emitted and
//! dropped: nothing disappears uncounted.

mod common;

use std::time::Duration;

use common::otlp::{Receiver, Run};
use common::{scratch, PG_MONITOR};

/// A source of `rows` points a scrape, each carrying `pad` bytes, every
/// 100 ms, through `memory_limit m { … }` and a batcher that holds what
/// it gets for 3 s (so batches in flight add up) into an OTLP/HTTP sink.
fn pipe(rows: usize, pad: usize, limit: &str, endpoint_port: u16) -> String {
    format!(
        r#"source gen = sql {{
  dsn = env("MEM_PG_DSN")
  interval = 100ms
  jitter = 0%
  collect q {{ query = "SELECT n AS v, repeat('x', {pad}) AS pad FROM generate_series(1, {rows}) n", metric = "mem.v", value_column = "v", attribute_columns = ["pad"] }}
}}
memory_limit m {{ {limit} }}
batch hold {{ size = 1000000, max_bytes = 1GiB, timeout = 3s }}
sink out = otlp {{ endpoint = "http://127.0.0.1:{endpoint_port}", protocol = http, queue_size = 256MiB, retry_initial = 200ms, retry_max = 500ms }}
pipeline p = gen.q -> m -> hold -> out
"#
    )
}

/// A receiver that records how many points each request carried, not the
/// requests (these tests send hundreds of megabytes).
fn counting_receiver(dir: &std::path::Path) -> Receiver {
    Receiver::start_with(dir, "r", 0, 0, "[]", &["--count-only"])
}

/// Points the receiver took (decoded by the official classes).
fn arrived(receiver: &Receiver) -> usize {
    receiver.accepted().iter().filter(|r| r["signal"] == "metrics").filter_map(|r| r["items"].as_u64()).sum::<u64>() as usize
}

fn counter(run: &Run, series: &str) -> f64 {
    run.metric_opt(series).unwrap_or(0.0)
}

const EMITTED: &str = r#"dbintel_node_emitted_records_total{node="gen",kind="source"}"#;
const SKIPPED: &str = r#"dbintel_source_skipped_scrapes_total{node="gen"}"#;
const PASSED_BY_M: &str = r#"dbintel_node_emitted_records_total{node="m",kind="memory_limit"}"#;
const DROPPED_BY_M: &str = r#"dbintel_node_dropped_records_total{node="m",kind="memory_limit"}"#;

/// The per-node summary `run` prints on exit: (node, in, out, dropped).
fn summary(log: &str, node: &str) -> Option<(usize, usize, usize)> {
    log.lines().find_map(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        (words.len() == 6 && words[0] == node).then(|| {
            let n = |i: usize| words.get(i).and_then(|w| w.parse().ok()).unwrap_or(usize::MAX);
            (n(2), n(3), n(4))
        })
    })
}

#[test]
fn above_the_soft_limit_sources_skip_scrapes_and_nothing_is_dropped() {
    let dir = scratch("mem-soft");
    let receiver = counting_receiver(&dir);
    // ~1 MB a scrape, 10 a second, held 3 s by the batcher: the budget's
    // soft limit (10 % of 128 MiB, ~13 MB) is passed within 2 s, long
    // before the limit; the channels never fill (the batcher takes all)
    std::fs::write(dir.join("p.pipe"), pipe(1000, 1000, "limit = 128MiB, soft_limit = 10%", receiver.http)).unwrap();
    let mut run =
        Run::start(&[dir.join("p.pipe").to_str().unwrap(), "--no-watch", "--shutdown-timeout", "10s"], &[("MEM_PG_DSN", PG_MONITOR)]);
    run.wait_for("the source to hold back", Duration::from_secs(20), || (counter(&run, SKIPPED) >= 3.0).then_some(()));
    // the batcher flushes, the budget empties, scraping resumes
    let emitted = counter(&run, EMITTED);
    run.wait_for("scraping to resume", Duration::from_secs(20), || (counter(&run, EMITTED) > emitted).then_some(()));
    let skipped = counter(&run, SKIPPED) as usize;
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert!(log.contains("is above the soft limit"), "the skips name the memory budget as their cause:\n{log}");
    assert!(!log.contains("downstream is full"), "skips were caused by full channels, not memory:\n{log}");
    let (holds, resumes) = (log.matches("scrapes skipped until there is room").count(), log.matches("room downstream again").count());
    assert!(
        holds >= 1 && holds < skipped && resumes >= 1,
        "a hold-back is logged when it starts and ends ({holds}, {resumes}), not per skipped scrape ({skipped}):\n{log}"
    );
    let (_, out, _) = summary(&log, "gen").unwrap_or_else(|| panic!("no summary line for gen:\n{log}"));
    let (m_in, m_out, m_dropped) = summary(&log, "m").unwrap_or_else(|| panic!("no summary line for m:\n{log}"));
    assert_eq!((m_in, m_out, m_dropped), (out, out, 0), "nothing is dropped below the limit (in, out, dropped at m):\n{log}");
    let arrived = arrived(&receiver);
    assert_eq!(arrived, out, "every point the source emitted arrived:\n{log}");
}

#[test]
fn at_the_budget_limit_new_batches_are_dropped_and_counted_and_the_rest_arrives() {
    let dir = scratch("mem-hard");
    let receiver = counting_receiver(&dir);
    // ~3 MB a scrape, 10 a second; soft_limit = 100 %: never holding
    // back, so what the batcher holds (3 s of it, ~90 MB) reaches the
    // 64 MiB budget and what comes next drops. The resident-memory check
    // runs once, at the first batch (1 h interval): this test is about the
    // byte budget alone.
    let limit = "limit = 64MiB, soft_limit = 100%, check_interval = 1h";
    std::fs::write(dir.join("p.pipe"), pipe(1000, 3000, limit, receiver.http)).unwrap();
    let mut run =
        Run::start(&[dir.join("p.pipe").to_str().unwrap(), "--no-watch", "--shutdown-timeout", "10s"], &[("MEM_PG_DSN", PG_MONITOR)]);
    run.wait_for("batches dropped at the limit", Duration::from_secs(20), || (counter(&run, DROPPED_BY_M) >= 1000.0).then_some(()));
    // the batcher flushes: the budget empties and batches pass again
    let passed = counter(&run, PASSED_BY_M);
    run.wait_for("batches to pass again", Duration::from_secs(20), || (counter(&run, PASSED_BY_M) > passed).then_some(()));
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    let starts = log.matches("memory limit reached: dropping new batches").count();
    let ends = log.matches("memory limit: batches pass again").count();
    assert!(
        starts >= 1 && (ends == starts || ends + 1 == starts),
        "each run of drops is logged when it starts and ends ({starts}, {ends}), not per batch:\n{log}"
    );
    assert!(log.contains("cause=\"batches in flight\""), "{log}");
    assert!(!log.contains("scrapes skipped"), "with soft_limit = 100% the source never holds back:\n{log}");
    let (_, out, _) = summary(&log, "gen").unwrap_or_else(|| panic!("no summary line for gen:\n{log}"));
    let (m_in, m_out, m_dropped) = summary(&log, "m").unwrap_or_else(|| panic!("no summary line for m:\n{log}"));
    assert_eq!(m_in, out, "memory_limit took in what the source sent:\n{log}");
    assert!(m_dropped > 0 && m_in == m_out + m_dropped, "in = out + dropped at the memory limit:\n{log}");
    let arrived = arrived(&receiver);
    assert_eq!(arrived, m_out, "everything memory_limit let through arrived, the drops are counted:\n{log}");
}

#[test]
fn resident_memory_over_the_limit_drops_batches_however_small() {
    let dir = scratch("mem-rss");
    let receiver = counting_receiver(&dir);
    // a few hundred bytes a batch never fill a 1 MiB budget, but the
    // process itself is resident well above its 1 MiB rss_limit
    std::fs::write(
        dir.join("p.pipe"),
        pipe(1, 10, "limit = 1MiB, rss_limit = 1MiB, soft_limit = 100%, check_interval = 100ms", receiver.http),
    )
    .unwrap();
    let mut run =
        Run::start(&[dir.join("p.pipe").to_str().unwrap(), "--no-watch", "--shutdown-timeout", "5s"], &[("MEM_PG_DSN", PG_MONITOR)]);
    run.wait_for("ten scrapes", Duration::from_secs(20), || (counter(&run, EMITTED) >= 10.0).then_some(()));
    let rss = run.metric("process_resident_memory_bytes");
    assert!(rss > 1024.0 * 1024.0, "the process is resident at {rss} bytes, not above the 1 MiB limit");
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    let (m_in, m_out, m_dropped) = summary(&log, "m").unwrap_or_else(|| panic!("no summary line for m:\n{log}"));
    assert!(m_in >= 10, "{m_in} records reached memory_limit:\n{log}");
    assert_eq!((m_out, m_dropped), (0, m_in), "with RSS above the limit every batch is dropped and counted:\n{log}");
    assert_eq!(arrived(&receiver), 0, "points got past the RSS check:\n{log}");
    assert_eq!(log.matches("memory limit reached: dropping new batches").count(), 1, "logged once, not per batch:\n{log}");
    assert!(log.contains("cause=\"resident memory\""), "{log}");
}

#[test]
fn resident_memory_is_held_to_its_own_limit_not_the_budget() {
    // these tiny batches never fill the 1 MiB budget; the process is
    // resident above `limit` but far under its 1 GiB rss_limit: nothing
    // drops (one limit for both dropped everything once RSS passed it)
    let dir = scratch("mem-rss-own");
    let receiver = counting_receiver(&dir);
    std::fs::write(
        dir.join("p.pipe"),
        pipe(1, 10, "limit = 1MiB, rss_limit = 1GiB, soft_limit = 100%, check_interval = 100ms", receiver.http),
    )
    .unwrap();
    let mut run =
        Run::start(&[dir.join("p.pipe").to_str().unwrap(), "--no-watch", "--shutdown-timeout", "5s"], &[("MEM_PG_DSN", PG_MONITOR)]);
    run.wait_for("ten scrapes", Duration::from_secs(20), || (counter(&run, EMITTED) >= 10.0).then_some(()));
    let rss = run.metric("process_resident_memory_bytes");
    assert!(rss > 1024.0 * 1024.0, "the process is resident at {rss} bytes, above `limit`");
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    let (m_in, m_out, m_dropped) = summary(&log, "m").unwrap_or_else(|| panic!("no summary line for m:\n{log}"));
    assert!(
        m_in >= 10 && m_dropped == 0 && m_out == m_in,
        "RSS under rss_limit drops nothing ({m_in} in, {m_out} out, {m_dropped} dropped):\n{log}"
    );
    assert_eq!(arrived(&receiver), m_out, "{log}");
}
