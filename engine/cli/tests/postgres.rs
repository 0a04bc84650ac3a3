//! The postgres source against the real PostgreSQL on this machine
//! (prepared by tests/prepare-servers.sh; these tests fail, never skip,
//! when it is not there).

mod common;

use std::time::{Duration, Instant};

use dbintel_core::record::{Number, Record};
use dbintel_dsl::plan::{SecretRef, Settings, Value as SettingValue};
use dbintel_dsl::schema::{DbSettings, StatementsSettings};
use dbintel_sources::collectors::pg_statements::PgStatements;
use dbintel_sources::postgres::PgTarget;
use dbintel_sources::{Collector, ErrorClass, SourceError};
use dbintel_stdlib::Value;
use sqlx::postgres::PgPoolOptions;

const MONITOR: &str = "postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5432/dbintel_test";
const SUPERUSER: &str = "postgres://postgres:super-secret-pw@127.0.0.1:5432/dbintel_test";
const WRITER: &str = "postgres://dbintel_writer:writer-secret-pw@127.0.0.1:5432/dbintel_test";

/// Source settings with the DSN in a per-test environment variable.
fn settings(var: &str, dsn: &str, timeout: Duration) -> DbSettings {
    DbSettings::from_settings(&raw_settings(var, dsn, timeout))
}

fn raw_settings(var: &str, dsn: &str, timeout: Duration) -> Settings {
    std::env::set_var(var, dsn);
    let mut s = Settings::default();
    s.0.insert("dsn".into(), SettingValue::Secret(SecretRef::Env(var.into())));
    s.0.insert("timeout".into(), SettingValue::Duration(timeout));
    s.0.insert("connect_timeout".into(), SettingValue::Duration(Duration::from_secs(5)));
    s.0.insert("pool".into(), SettingValue::Int(2));
    s
}

/// Tests that read pg_stat_statements deltas take this: the reset test
/// empties the statistics for everyone.
static STATS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Tests that lock `lock_probe` take this, so one's lock holder is never
/// the other's blocker.
static LOCK_PROBE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A statements collector that keeps every statement (the suite's own
/// queries would otherwise compete for the top N).
fn collector() -> PgStatements {
    PgStatements::new(&StatementsSettings { top: 10_000, interval: None }, Duration::from_secs(30), vec!["nr_service_guid".into()])
}

async fn admin() -> sqlx::PgPool {
    PgPoolOptions::new().max_connections(2).connect(SUPERUSER).await.expect("PostgreSQL at 127.0.0.1:5432 (run tests/prepare-servers.sh)")
}

/// Runs a statement that only this marker produces. pg_stat_statements
/// ignores aliases and constants when it identifies a statement, so each
/// marker selects its own number of columns.
async fn run_marker(admin: &sqlx::PgPool, marker: &str, times: usize) {
    let columns = 20 + marker.len() + marker.bytes().map(usize::from).sum::<usize>() % 50;
    let rest: Vec<String> = (1..columns).map(|i| format!("{i} AS c{i}")).collect();
    let sql = format!("SELECT 0 AS {marker}, {}", rest.join(", "));
    for _ in 0..times {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(admin).await.expect("marker runs");
    }
}

fn calls_for(records: &[Record], marker: &str) -> Option<i64> {
    common::calls_for(records, "postgresql.query.calls", marker)
}

fn no_negative_points(records: &[Record]) {
    for r in records {
        if let Record::Metric(m) = r {
            let v = match m.value {
                Number::Int(i) => i as f64,
                Number::Double(d) => d,
            };
            assert!(v >= 0.0, "negative delta {} = {v}", m.name);
        }
    }
}

#[tokio::test]
async fn a_monitoring_role_sees_exactly_the_calls_made_between_scrapes() {
    let _stats = STATS.lock().await;
    let target =
        PgTarget::connect("pg", &settings("DBINTEL_T1_DSN", MONITOR, Duration::from_secs(3))).await.expect("monitor role connects");
    let admin = admin().await;
    let mut collector = collector();
    // seen once before the first scrape, so that scrape is its baseline
    run_marker(&admin, "marker_k7", 1).await;
    let first = collector.scrape_pg(&target, 1).await.expect("first scrape");
    assert_eq!(calls_for(&first, "marker_k7"), None, "the first sighting is a baseline");
    run_marker(&admin, "marker_k7", 7).await;
    let second = collector.scrape_pg(&target, 2).await.expect("second scrape");
    assert_eq!(calls_for(&second, "marker_k7"), Some(7), "Δcalls for a statement run 7 times");
    no_negative_points(&second);
    // the resource names the server the way New Relic builds entities
    let id = common::nr_service_instance_id("127.0.0.1", 5432);
    assert_eq!(target.resource.attributes.get("service.instance.id"), Some(&Value::Str(id)), "{:?}", target.resource);
    assert_eq!(target.resource.attributes.get("db.system.name"), Some(&Value::Str("postgresql".into())), "{:?}", target.resource);
}

#[tokio::test]
async fn a_stats_reset_rebaselines_instead_of_reporting_garbage() {
    let _stats = STATS.lock().await;
    let target = PgTarget::connect("pg", &settings("DBINTEL_T2_DSN", MONITOR, Duration::from_secs(3))).await.expect("connects");
    let admin = admin().await;
    let mut collector = collector();
    run_marker(&admin, "marker_reset", 5).await;
    collector.scrape_pg(&target, 1).await.expect("baseline");
    run_marker(&admin, "marker_reset", 4).await;
    sqlx::query("SELECT pg_stat_statements_reset()").execute(&admin).await.expect("reset");
    run_marker(&admin, "marker_reset", 2).await;
    let after_reset = collector.scrape_pg(&target, 2).await.expect("scrape after reset");
    no_negative_points(&after_reset);
    assert_eq!(calls_for(&after_reset, "marker_reset"), None, "after a reset everything is a new baseline");
    run_marker(&admin, "marker_reset", 3).await;
    let next = collector.scrape_pg(&target, 3).await.expect("next scrape");
    no_negative_points(&next);
    assert_eq!(calls_for(&next, "marker_reset"), Some(3), "three calls after the new baseline: {next:#?}");
}

#[tokio::test]
async fn superusers_and_writers_are_refused_without_showing_the_password() {
    for (var, dsn, expect) in [("DBINTEL_T3A_DSN", SUPERUSER, "is a superuser"), ("DBINTEL_T3B_DSN", WRITER, "can write to 1 table")] {
        match PgTarget::connect("pg", &settings(var, dsn, Duration::from_secs(3))).await {
            Err(e @ SourceError::Privileged { .. }) => {
                let message = e.to_string();
                assert!(message.contains(expect), "{message}");
                assert!(!message.contains("secret-pw"), "password in: {message}");
            }
            Err(other) => panic!("expected a refusal, got {other}"),
            Ok(_) => panic!("{dsn} was accepted"),
        }
    }
    let mut allowed = settings("DBINTEL_T3C_DSN", SUPERUSER, Duration::from_secs(3));
    allowed.allow_privileged = true;
    let connected = PgTarget::connect("pg", &allowed).await.err().map(|e| e.to_string());
    assert_eq!(connected, None, "allow_privileged lets it through");
}

#[tokio::test]
async fn a_bad_dsn_or_unreachable_server_says_so_without_the_password() {
    for (var, dsn) in [("DBINTEL_T4A_DSN", "postgres://u:hunter2-pw@127.0.0.1:1/x"), ("DBINTEL_T4B_DSN", "not a dsn hunter2-pw")] {
        let err = PgTarget::connect("pg", &settings(var, dsn, Duration::from_secs(1))).await.err().expect("fails");
        let message = err.to_string();
        assert!(!message.contains("hunter2"), "password in: {message}");
        assert!(message.contains("source `pg`"), "{message}");
    }
}

#[tokio::test]
async fn a_slow_query_is_cancelled_and_leaves_no_backend_running() {
    let target = PgTarget::connect("pg", &settings("DBINTEL_T5_DSN", MONITOR, Duration::from_secs(1))).await.expect("connects");
    let started = Instant::now();
    let err = target.query("sleepy", "SELECT pg_sleep(30) AS slept_marker").await.expect_err("times out");
    // the server's statement_timeout (SQLSTATE 57014) or our deadline: distress either way
    assert_eq!(err.class(), ErrorClass::Distress, "{err}");
    assert!(matches!(err.code().as_str(), "57014" | "timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let admin = admin().await;
    let mut still_running = 1;
    for _ in 0..20 {
        let row: (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbintel' AND state = 'active' AND query LIKE '%slept_marker%' AND pid <> pg_backend_pid()",
        )
        .fetch_one(&admin)
        .await
        .expect("pg_stat_activity");
        still_running = row.0;
        if still_running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(still_running, 0, "our pg_sleep is still running on the server");
}

#[tokio::test]
async fn a_locked_table_ends_our_query_by_lock_timeout() {
    let _probe = LOCK_PROBE.lock().await;
    let admin = admin().await;
    let mut holder = admin.begin().await.expect("begin");
    sqlx::query("LOCK TABLE lock_probe IN ACCESS EXCLUSIVE MODE").execute(&mut *holder).await.expect("lock");
    let target = PgTarget::connect("pg", &settings("DBINTEL_T6_DSN", MONITOR, Duration::from_secs(2))).await.expect("connects");
    let err = target.query("probe", "SELECT count(*) AS n FROM lock_probe").await.expect_err("blocked");
    assert!(err.to_string().contains("lock timeout"), "{err}");
    holder.rollback().await.expect("release");
}

#[tokio::test]
async fn nulls_in_every_column_type_are_fine() {
    let target = PgTarget::connect("pg", &settings("DBINTEL_T7_DSN", MONITOR, Duration::from_secs(3))).await.expect("connects");
    let rows = target
        .query(
            "nulls",
            "SELECT NULL::int8 AS a, NULL::int4 AS b, NULL::float8 AS c, NULL::bool AS d, NULL::text AS e, NULL::timestamptz AS f, NULL::jsonb AS g, NULL::oid AS h, NULL::numeric AS i",
        )
        .await
        .expect("query with NULLs");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].len(), 9, "every column, NULL or not: {:?}", rows[0]);
    assert!(rows[0].iter().all(|(_, v)| v.is_nil()), "{:?}", rows[0]);
}

#[tokio::test]
async fn ash_shows_sleepers_and_lock_waiters_with_who_blocks_them() {
    use dbintel_sources::collectors::activity::{pg_sample_sql, AshWindow};
    let _probe = LOCK_PROBE.lock().await;
    let admin = PgPoolOptions::new().max_connections(8).connect(SUPERUSER).await.expect("PostgreSQL");
    let mut holder = admin.begin().await.expect("begin");
    sqlx::query("LOCK TABLE lock_probe IN ACCESS EXCLUSIVE MODE").execute(&mut *holder).await.expect("lock");
    let (holder_pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()").fetch_one(&mut *holder).await.expect("pid");
    let mut busy = Vec::new();
    for _ in 0..4 {
        let pool = admin.clone();
        busy.push(tokio::spawn(async move { sqlx::query("SELECT pg_sleep(4)").execute(&pool).await.map(|_| ()) }));
    }
    for _ in 0..2 {
        let pool = admin.clone();
        busy.push(tokio::spawn(async move { sqlx::query("SELECT count(*) FROM lock_probe").execute(&pool).await.map(|_| ()) }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;

    let target = PgTarget::connect("pg", &settings("DBINTEL_T8_DSN", MONITOR, Duration::from_secs(3))).await.expect("connects");
    let period = Duration::from_millis(250);
    let mut window = AshWindow::new("postgresql", period);
    for _ in 0..8 {
        let rows = target.query("sample", &pg_sample_sql(target.version(), false, 1000)).await.expect("sample");
        window.add_sample(&rows);
        tokio::time::sleep(period).await;
    }
    let records = window.finish(period * 8, 1);
    holder.rollback().await.expect("release");
    for task in busy {
        let _ = task.await;
    }

    let aas = |class: &str, event: &str| -> f64 {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Metric(m)
                    if m.attributes.get("db.wait.class") == Some(&Value::Str(class.into()))
                        && m.attributes.get("db.wait.event") == Some(&Value::Str(event.into())) =>
                {
                    match m.value {
                        Number::Double(d) => Some(d),
                        Number::Int(i) => Some(i as f64),
                    }
                }
                _ => None,
            })
            .sum()
    };
    assert!((aas("Timeout", "PgSleep") - 4.0).abs() < 0.01, "AAS in pg_sleep: {}", aas("Timeout", "PgSleep"));
    assert!((aas("Lock", "relation") - 2.0).abs() < 0.01, "AAS waiting on the lock: {}", aas("Lock", "relation"));
    let chains: Vec<&Value> = records
        .iter()
        .filter_map(|r| match r {
            Record::Log(l) if l.event_name == "db.server.blocking" => l.attributes.get("db.blocking.session.ids"),
            _ => None,
        })
        .collect();
    assert_eq!(chains.len(), 2, "one blocking event per waiting session: {chains:?}");

    for chain in chains {
        assert_eq!(chain, &Value::List(vec![Value::Int(i64::from(holder_pid))]), "blocked by the lock holder");
    }
}

#[tokio::test]
async fn instance_health_metrics_come_from_the_server() {
    let target = PgTarget::connect("pg", &settings("DBINTEL_T9_DSN", MONITOR, Duration::from_secs(3))).await.expect("connects");
    let target = dbintel_sources::target::Target::Pg(target);
    let mut instance = dbintel_sources::collectors::pg_instance::PgInstance::new(
        Duration::from_secs(30),
        Duration::from_secs(300),
        Duration::from_secs(300),
    );
    let records = instance.scrape(&target, 1).await.expect("instance scrape");
    let soft: Vec<String> = instance.take_soft_errors().iter().map(ToString::to_string).collect();
    assert!(soft.is_empty(), "the monitoring role reads every part: {soft:?}");
    let names: std::collections::BTreeSet<&str> =
        records.iter().filter_map(|r| if let Record::Metric(m) = r { Some(m.name.as_str()) } else { None }).collect();
    for expected in [
        "postgresql.backends",
        "postgresql.commits",
        "postgresql.deadlocks",
        "postgresql.blks_hit",
        "postgresql.db_size",
        "postgresql.database.xid_age",
        "postgresql.bgwriter.checkpoint.count",
        "postgresql.connection.max",
        "postgresql.wal.bytes",
        "postgresql.wal.checkpoint_age",
    ] {
        assert!(names.contains(expected), "missing {expected}: {names:?}");
    }
    assert!(!names.contains("postgresql.replication.lag"), "this server is a primary: {names:?}");
}

/// Scrapes, retrying while the pool notices connections a restart broke.
async fn scrape_retrying(collector: &mut PgStatements, target: &PgTarget, now: u64) -> Vec<Record> {
    for attempt in 0..10 {
        match collector.scrape_pg(target, now).await {
            Ok(records) => return records,
            Err(e) if attempt < 9 => {
                eprintln!("scrape after restart: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("scrape kept failing: {e}"),
        }
    }
    unreachable!()
}

#[tokio::test]
async fn a_server_restart_rebaselines() {
    // the second cluster, which only this test restarts
    const RESTART_MONITOR: &str = "postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5433/postgres";
    const RESTART_ADMIN: &str = "postgres://postgres@127.0.0.1:5433/postgres";
    let admin = PgPoolOptions::new().max_connections(1).connect(RESTART_ADMIN).await.expect("the restarttest cluster on 5433");
    let target = PgTarget::connect("pg", &settings("DBINTEL_T10_DSN", RESTART_MONITOR, Duration::from_secs(3))).await.expect("connects");
    let mut collector = collector();
    run_marker(&admin, "marker_restart", 1).await;
    scrape_retrying(&mut collector, &target, 1).await;
    run_marker(&admin, "marker_restart", 3).await;
    admin.close().await;
    let restarted = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", "15", "restarttest", "restart"])
        .status()
        .expect("pg_ctlcluster");
    assert!(restarted.success(), "pg_ctlcluster 15 restarttest restart: {restarted}");
    let admin = PgPoolOptions::new().max_connections(1).connect(RESTART_ADMIN).await.expect("back up");
    // counters survive a clean restart, so without a new identity this
    // scrape would report 3 + 2 calls against the pre-restart baseline
    run_marker(&admin, "marker_restart", 2).await;
    let after = scrape_retrying(&mut collector, &target, 2).await;
    assert_eq!(calls_for(&after, "marker_restart"), None, "a restart is a new baseline");
    no_negative_points(&after);
    run_marker(&admin, "marker_restart", 4).await;
    let next = scrape_retrying(&mut collector, &target, 3).await;
    assert_eq!(calls_for(&next, "marker_restart"), Some(4), "four calls after the restart's baseline: {next:#?}");
}

#[tokio::test]
async fn tls_modes_are_honoured() {
    let with = |var: &str, mode: &str, ca: Option<&str>| {
        let mut s = raw_settings(var, MONITOR, Duration::from_secs(3));
        s.0.insert("sslmode".into(), SettingValue::Word(mode.into()));
        if let Some(ca) = ca {
            s.0.insert("sslrootcert".into(), SettingValue::String(ca.into()));
        }
        DbSettings::from_settings(&s)
    };
    // this server has TLS on (Debian's self-signed "snakeoil" certificate)
    let target = PgTarget::connect("pg", &with("DBINTEL_T11A_DSN", "require", None)).await.expect("require connects");
    let rows = target.query("tls", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").await.expect("pg_stat_ssl");
    assert_eq!(rows[0].get("ssl"), Some(&Value::Bool(true)), "the session is encrypted");
    // verify-full checks the chain and the name: neither holds for a
    // self-signed certificate reached as 127.0.0.1 without its CA
    let err = PgTarget::connect("pg", &with("DBINTEL_T11B_DSN", "verify-full", None)).await.err().expect("verify-full must refuse");
    let message = err.to_string();
    assert!(message.contains("connecting to 127.0.0.1:5432"), "{message}");
    assert_eq!(err.class(), ErrorClass::Connection, "{message}");
    assert!(message.contains("certificate"), "the cause is named: {message}");
    assert!(!message.contains("monitor-secret-pw"), "{message}");
}

#[tokio::test]
async fn a_statement_that_first_runs_between_scrapes_sends_all_its_calls() {
    let _stats = STATS.lock().await;
    let target = PgTarget::connect("pg", &settings("DBINTEL_T12_DSN", MONITOR, Duration::from_secs(3))).await.expect("connects");
    let admin = admin().await;
    let mut collector = collector();
    // a marker nobody has run before this scrape (a fresh name per run)
    let marker = format!("marker_new_{}", std::process::id());
    let first = collector.scrape_pg(&target, 1).await.expect("first scrape");
    assert_eq!(calls_for(&first, &marker), None, "{marker} never ran before the first scrape: {first:#?}");

    run_marker(&admin, &marker, 3).await;
    let second = collector.scrape_pg(&target, 2).await.expect("second scrape");
    assert_eq!(calls_for(&second, &marker), Some(3), "new since the last scrape: all 3 calls are this interval's");
    let event = second.iter().find_map(|r| match r {
        Record::Log(l) if l.attributes.get("db.query.text").and_then(Value::as_str).is_some_and(|t| t.contains(&marker)) => Some(l),
        _ => None,
    });
    assert!(event.is_some(), "its top_query event carries the text it was fetched for: {second:#?}");
}

#[tokio::test]
async fn a_quiet_primary_does_not_look_like_replication_lag() {
    // the streaming replica of this server (tests/pg-versions.sh)
    let port = common::pg_servers::port_of(&common::pg_servers::servers(), common::pg_servers::REPLICA);
    let mut raw = raw_settings(
        "DBINTEL_T13_DSN",
        &format!("postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:{port}/dbintel_test"),
        Duration::from_secs(3),
    );
    raw.0.insert("breaker_max_replication_lag".into(), SettingValue::Duration(Duration::from_secs(1)));
    let target = PgTarget::connect("replica", &DbSettings::from_settings(&raw)).await.expect("the replica");
    // wait for a quiet spell: the last replayed transaction is old, and
    // yet the replica has replayed everything it received
    let started = Instant::now();
    loop {
        let rows = target
            .query(
                "replay",
                "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS age,
                        pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() AS caught_up",
            )
            .await
            .expect("replay state");
        let age = rows.first().and_then(|r| dbintel_sources::rows::number(r, "age")).unwrap_or(0.0);
        if age > 2.0 && rows.first().and_then(|r| r.get("caught_up")) == Some(&Value::Bool(true)) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(40), "the primary was never quiet for 2 s: {rows:?}");

        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let target = dbintel_sources::target::Target::Pg(target);
    target.check_duress().await;
    assert_eq!(target.breaker().label(), "closed", "a caught-up standby of a quiet primary is not lagging");
}
