//! The circuit breaker against the real PostgreSQL: timeouts open it, and
//! then — checked on the server, in pg_stat_activity — dbintel sends
//! nothing; when the database recovers, a half-open probe closes it.

mod common;

use std::time::{Duration, Instant};

use common::otlp::Run;
use common::{psql, scratch, PG_MONITOR};

#[test]
fn timeouts_open_the_breaker_which_stops_our_queries_and_a_probe_closes_it() {
    psql("CREATE TABLE IF NOT EXISTS breaker_flag (slow boolean); GRANT SELECT ON breaker_flag TO dbintel_monitor; DELETE FROM breaker_flag; INSERT INTO breaker_flag VALUES (true)");
    let dir = scratch("breaker");
    let pipe = dir.join("p.pipe");
    std::fs::write(
        &pipe,
        r#"source slow = sql {
  dsn = env("BREAKER_PG_DSN")
  interval = 300ms
  jitter = 0%
  timeout = 1s
  breaker_failures = 2
  breaker_cooldown = 3s
  breaker_successes = 2
  collect q { query = "SELECT 1 AS n, pg_sleep(CASE WHEN EXISTS (SELECT 1 FROM breaker_flag) THEN 3 ELSE 0 END)::text AS s", metric = "breaker.one", value_column = "n" }
}
sink out = stdout {}
pipeline p = slow.q -> out
"#,
    )
    .unwrap();
    let mut run = Run::start(&[pipe.to_str().unwrap(), "--no-watch"], &[("BREAKER_PG_DSN", PG_MONITOR)]);
    // the breaker's series appear once the source has connected
    let state = |run: &Run| run.metric_opt(r#"dbintel_breaker_state{source="slow"}"#).unwrap_or(-1.0);
    let opened = |run: &Run| run.metric_opt(r#"dbintel_breaker_transitions_total{source="slow",to="open"}"#).unwrap_or(0.0);

    // two timeouts open it; the half-open probe after 3 s times out too and
    // reopens it for 6 s: watch the server for 3.2 s of that second open
    // spell (the margin absorbs a slow poll on a loaded machine)
    run.wait_for("the breaker to reopen after a failed probe", Duration::from_secs(30), || (opened(&run) >= 2.0).then_some(()));
    let spell = Instant::now();
    std::thread::sleep(Duration::from_millis(300)); // the cancelled probe's backend settles
    let ours = "FROM pg_stat_activity WHERE application_name = 'dbintel' AND usename = 'dbintel_monitor'";
    let last_start = psql(&format!("SELECT coalesce(max(query_start)::text, '') {ours}"));
    while spell.elapsed() < Duration::from_millis(3200) {
        assert_eq!(psql(&format!("SELECT count(*) {ours} AND state = 'active'")), "0", "a query ran while the breaker was open");
        assert_eq!(state(&run), 2.0);
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(psql(&format!("SELECT coalesce(max(query_start)::text, '') {ours}")), last_start, "no statement started while open");
    assert!(run.metric(r#"dbintel_breaker_refused_queries_total{source="slow"}"#) > 0.0);
    let emitted_while_failing = run.metric(r#"dbintel_node_emitted_records_total{node="slow",kind="source"}"#);

    // the database recovers: the next probe succeeds, two successes close it
    psql("DELETE FROM breaker_flag");
    run.wait_for("the breaker to close", Duration::from_secs(30), || (state(&run) == 0.0).then_some(()));
    assert_eq!(run.metric(r#"dbintel_breaker_transitions_total{source="slow",to="closed"}"#), 1.0);
    run.wait_for("scrapes again", Duration::from_secs(10), || {
        (run.metric(r#"dbintel_node_emitted_records_total{node="slow",kind="source"}"#) > emitted_while_failing).then_some(())
    });
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert!(
        log.contains("circuit breaker open") && log.contains("circuit breaker half-open") && log.contains("circuit breaker closed"),
        "{log}"
    );
}
