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
        let active = psql(&format!("SELECT coalesce(string_agg(query, ' | '), '') {ours} AND state = 'active'"));
        assert_eq!(active, "", "a query ran while the breaker was open:\n{}", run.stderr());

        assert_eq!(state(&run), 2.0, "the breaker left the open state early:\n{}", run.stderr());
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(psql(&format!("SELECT coalesce(max(query_start)::text, '') {ours}")), last_start, "no statement started while open");
    let refused = run.metric(r#"dbintel_breaker_refused_queries_total{source="slow"}"#);
    assert!(refused > 0.0, "no query was refused while the breaker was open ({refused}):\n{}", run.stderr());
    let emitted_while_failing = run.metric(r#"dbintel_node_emitted_records_total{node="slow",kind="source"}"#);

    // the database recovers: the next probe succeeds, two successes close it
    psql("DELETE FROM breaker_flag");
    run.wait_for("the breaker to close", Duration::from_secs(30), || (state(&run) == 0.0).then_some(()));
    let closed = run.metric(r#"dbintel_breaker_transitions_total{source="slow",to="closed"}"#);
    assert_eq!(closed, 1.0, "the breaker closed once, after the database recovered:\n{}", run.stderr());
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

/// A pipeline of one `sql` source on `BRK_DSN` with the given breaker
/// settings, scraping `SELECT 1` every 300 ms.
fn duress_pipe(dir: &std::path::Path, settings: &str) -> std::path::PathBuf {
    let pipe = dir.join("p.pipe");
    std::fs::write(
        &pipe,
        format!(
            r#"source db = sql {{
  dsn = env("BRK_DSN")
  interval = 300ms
  jitter = 0%
{settings}
  breaker_cooldown = 2s
  breaker_successes = 2
  collect q {{ query = "SELECT 1 AS v", metric = "duress.one", value_column = "v" }}
}}
sink out = stdout {{}}
pipeline p = db.q -> out
"#
        ),
    )
    .unwrap();
    pipe
}

fn breaker_state(run: &Run) -> f64 {
    run.metric_opt(r#"dbintel_breaker_state{source="db"}"#).unwrap_or(-1.0)
}

fn times_opened(run: &Run) -> f64 {
    run.metric_opt(r#"dbintel_breaker_transitions_total{source="db",to="open"}"#).unwrap_or(0.0)
}

/// Scrapes go on with the breaker closed for a couple of seconds (more
/// than one 5 s duress probe is not needed: the first runs at once).
fn settles_closed(run: &Run) {
    run.wait_for("the source to scrape", Duration::from_secs(20), || {
        (run.metric_opt(r#"dbintel_node_emitted_records_total{node="db",kind="source"}"#).unwrap_or(0.0) >= 3.0).then_some(())
    });
    assert_eq!(breaker_state(run), 0.0, "the breaker is closed while the server is calm:\n{}", run.stderr());
    assert_eq!(times_opened(run), 0.0, "the breaker opened on a calm server:\n{}", run.stderr());
}

/// While the breaker is open, no statement of dbintel's starts on `pg`
/// (by the server's pg_stat_activity), for `spell`.
fn nothing_sent_while_open(run: &Run, pg: &common::private_pg::PrivatePg, spell: Duration) {
    let ours = "FROM pg_stat_activity WHERE application_name = 'dbintel' AND usename = 'proofs_mon'";
    std::thread::sleep(Duration::from_millis(200)); // the probe that tripped it ends
    let last_start = pg.sql(&format!("SELECT coalesce(max(query_start)::text, '') {ours}"));
    let started = Instant::now();
    while started.elapsed() < spell {
        assert_eq!(breaker_state(run), 2.0, "the breaker closed early:\n{}", run.stderr());
        std::thread::sleep(Duration::from_millis(150));
    }
    let now_last = pg.sql(&format!("SELECT coalesce(max(query_start)::text, '') {ours}"));
    assert_eq!(now_last, last_start, "a statement started on the server while the breaker was open:\n{}", run.stderr());
    let refused = run.metric(r#"dbintel_breaker_refused_queries_total{source="db"}"#);
    assert!(refused > 0.0, "no query was refused while open ({refused}):\n{}", run.stderr());
}

#[test]
fn too_many_active_sessions_open_the_breaker_until_they_are_gone() {
    let pg = common::private_pg::PrivatePg::primary("brk-active");
    let dir = scratch("breaker-active");
    let pipe = duress_pipe(&dir, "  breaker_max_active_sessions = 3");
    let mut run = Run::start(&[pipe.to_str().unwrap(), "--no-watch"], &[("BRK_DSN", &pg.dsn("proofs_mon"))]);
    settles_closed(&run);
    // five busy sessions of someone else's on a server that allows three
    let mut sleepers: Vec<_> = (0..5).map(|_| pg.background("SELECT pg_sleep(6)")).collect();
    run.wait_for("the duress probe to open the breaker", Duration::from_secs(10), || (breaker_state(&run) == 2.0).then_some(()));
    let log = run.stderr();
    let reason = log.lines().find(|l| l.contains("circuit breaker open")).unwrap_or_default().to_string();
    assert!(reason.contains("active sessions (limit 3)"), "the breaker names its reason: {reason}\n{log}");
    nothing_sent_while_open(&run, &pg, Duration::from_millis(1500));
    // the sessions end: the breaker closes and stays closed
    for s in &mut sleepers {
        let _ = s.wait();
    }
    run.wait_for("the breaker to close", Duration::from_secs(30), || (breaker_state(&run) == 0.0).then_some(()));
    let opened = times_opened(&run);
    std::thread::sleep(Duration::from_secs(6)); // one more duress probe, calm
    assert_eq!(times_opened(&run), opened, "the breaker reopened with the sessions gone:\n{}", run.stderr());
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
}

#[test]
fn replication_lag_on_a_replica_opens_the_breaker_until_replay_catches_up() {
    replication_lag_opens_the_breaker("brk", true);
}

#[test]
fn a_replica_that_replayed_nothing_since_it_started_still_shows_its_lag() {
    // no transaction replayed: pg_last_xact_replay_timestamp() is NULL, and
    // only how long replay has stood still with WAL waiting tells the lag
    replication_lag_opens_the_breaker("brk0", false);
}

fn replication_lag_opens_the_breaker(name: &str, first_replayed: bool) {
    let primary = common::private_pg::PrivatePg::primary(&format!("{name}-primary"));
    let replica = common::private_pg::PrivatePg::replica_of(&primary, &format!("{name}-replica"));
    let dir = scratch(&format!("breaker-lag-{name}"));
    let pipe = duress_pipe(&dir, "  breaker_max_replication_lag = 1s");
    let mut run = Run::start(&[pipe.to_str().unwrap(), "--no-watch"], &[("BRK_DSN", &replica.dsn("proofs_mon"))]);
    settles_closed(&run);
    if first_replayed {
        // a first transaction replayed, so the replica knows how old its
        // replay is
        primary.sql("CREATE TABLE lagging (n int); INSERT INTO lagging SELECT generate_series(1, 1000)");
        let started = Instant::now();
        while replica.sql("SELECT pg_last_xact_replay_timestamp() IS NOT NULL") != "t" {
            assert!(started.elapsed() < Duration::from_secs(20), "the replica replays nothing; its log:\n{}", replica.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    } else {
        assert_eq!(replica.sql("SELECT pg_last_xact_replay_timestamp() IS NULL"), "t", "the replica has replayed a transaction already");
        replica.sql("SELECT pg_wal_replay_pause()");
        primary.sql("CREATE TABLE lagging (n int)");
    }

    // replay stops on the replica while the primary goes on writing: the
    // replica receives WAL it does not apply
    replica.sql("SELECT pg_wal_replay_pause()");
    let writer = std::thread::spawn({
        let port = primary.port;
        move || {
            for i in 0..40 {
                let _ = std::process::Command::new("psql")
                    .args(["-X", "-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", "postgres"])
                    .args(["-c", &format!("INSERT INTO lagging VALUES ({i})")])
                    .output();
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    });
    run.wait_for("the duress probe to open the breaker", Duration::from_secs(15), || (breaker_state(&run) == 2.0).then_some(()));
    let log = run.stderr();
    let reason = log.lines().find(|l| l.contains("circuit breaker open")).unwrap_or_default().to_string();
    assert!(reason.contains("replication lag") && reason.contains("(limit 1s)"), "the breaker names its reason: {reason}\n{log}");
    nothing_sent_while_open(&run, &replica, Duration::from_millis(1500));
    // replay resumes and catches up: the breaker closes
    let _ = writer.join();
    replica.sql("SELECT pg_wal_replay_resume()");
    run.wait_for("the breaker to close", Duration::from_secs(40), || (breaker_state(&run) == 0.0).then_some(()));
    let opened = times_opened(&run);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(times_opened(&run), opened, "the breaker reopened once replay had caught up:\n{}", run.stderr());
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
}

#[test]
fn a_slow_probe_query_opens_the_breaker() {
    let pg = common::private_pg::PrivatePg::primary("brk-probe");
    let dir = scratch("breaker-probe");
    // the probe reads pg_stat_activity, which joins pg_authid: a lock on
    // it makes the probe wait (under lock_timeout, 10 s here), as a
    // server too busy to answer would
    let pipe = duress_pipe(&dir, "  timeout = 20s\n  breaker_max_probe_time = 500ms");
    let mut run = Run::start(&[pipe.to_str().unwrap(), "--no-watch"], &[("BRK_DSN", &pg.dsn("proofs_mon"))]);
    settles_closed(&run);
    let mut holder = pg.background("BEGIN; LOCK TABLE pg_authid IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(7); COMMIT");
    run.wait_for("the duress probe to open the breaker", Duration::from_secs(20), || (breaker_state(&run) == 2.0).then_some(()));
    let _ = holder.wait();
    let log = run.stderr();
    let reason = log.lines().find(|l| l.contains("circuit breaker open")).unwrap_or_default().to_string();
    assert!(reason.contains("probe query took") && reason.contains("(limit 500ms)"), "the breaker names its reason: {reason}\n{log}");
    run.wait_for("the breaker to close", Duration::from_secs(30), || (breaker_state(&run) == 0.0).then_some(()));
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
}
