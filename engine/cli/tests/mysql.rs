//! The mysql source against the real MariaDB on this machine (prepared by
//! tests/prepare-servers.sh; these tests fail, never skip, without it).

mod common;

use std::time::{Duration, Instant};

use dbintel_core::record::{Number, Record};
use dbintel_dsl::plan::{SecretRef, Settings, Value as SettingValue};
use dbintel_dsl::schema::{DbSettings, StatementsSettings};
use dbintel_sources::collectors::activity::my_sample_sql;
use dbintel_sources::collectors::my_statements::MyStatements;
use dbintel_sources::mysql::MyTarget;
use dbintel_sources::target::Target;
use dbintel_sources::SourceError;
use dbintel_sources::{Collector, ErrorClass};
use dbintel_stdlib::Value;
use sqlx::mysql::MySqlPoolOptions;

const MONITOR: &str = "mysql://dbintel_monitor:monitor-secret-pw@127.0.0.1:3306";
const ROOT: &str = "mysql://root@127.0.0.1:3306/dbintel_test";
const WRITER: &str = "mysql://dbintel_writer:writer-secret-pw@127.0.0.1:3306/dbintel_test";

fn settings(var: &str, dsn: &str, timeout: Duration) -> DbSettings {
    DbSettings::from_settings(&raw_settings(var, dsn, timeout))
}

fn raw_settings(var: &str, dsn: &str, timeout: Duration) -> Settings {
    std::env::set_var(var, dsn);
    let mut s = Settings::default();
    s.0.insert("dsn".into(), SettingValue::Secret(SecretRef::Env(var.into())));
    s.0.insert("timeout".into(), SettingValue::Duration(timeout));
    s.0.insert("pool".into(), SettingValue::Int(2));
    s.0.insert("top".into(), SettingValue::Int(10_000));
    s
}

/// Activity tests take this so one's sessions do not show in the other's
/// samples.
static LOCKS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn admin(connections: u32) -> sqlx::MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(connections)
        .connect(ROOT)
        .await
        .expect("MariaDB at 127.0.0.1:3306 (run tests/prepare-servers.sh)")
}

fn calls_for(records: &[Record], marker: &str) -> Option<i64> {
    common::calls_for(records, "mysql.query.calls", marker)
}

#[tokio::test]
async fn digests_give_exactly_the_calls_made_between_scrapes() {
    let target = Target::My(
        MyTarget::connect("my", &settings("DBINTEL_M1_DSN", MONITOR, Duration::from_secs(3))).await.expect("monitor user connects"),
    );
    let admin = admin(2).await;
    let mut statements = MyStatements::new(&StatementsSettings { top: 200, interval: None }, Duration::from_secs(30));
    // The text protocol: MariaDB digests statements it parses, not ones
    // executed through the binary (prepared) protocol.
    let marker = "SELECT 1 AS mysql_marker_k5, 2 AS b, 3 AS c";
    sqlx::raw_sql(marker).execute(&admin).await.expect("marker");
    let first = statements.scrape(&target, 1).await.expect("first scrape");
    assert_eq!(calls_for(&first, "mysql_marker_k5"), None, "the first sighting is a baseline");
    for _ in 0..5 {
        sqlx::raw_sql(marker).execute(&admin).await.expect("marker");
    }
    let second = statements.scrape(&target, 2).await.expect("second scrape");
    assert_eq!(calls_for(&second, "mysql_marker_k5"), Some(5));
    let duration = second.iter().find_map(|r| match r {
        Record::Metric(m) if m.name == "mysql.query.duration" => Some(m.unit.clone()),
        _ => None,
    });
    assert_eq!(duration.as_deref(), Some("ms"), "picosecond timers are reported in milliseconds");
    assert_eq!(target.resource().attributes.get("db.system.name"), Some(&Value::Str("mysql".into())));
}

#[tokio::test]
async fn root_and_writers_are_refused_without_showing_the_password() {
    for (var, dsn, expect) in [("DBINTEL_M2A_DSN", ROOT, "ALL PRIVILEGES"), ("DBINTEL_M2B_DSN", WRITER, "can write")] {
        match MyTarget::connect("my", &settings(var, dsn, Duration::from_secs(3))).await {
            Err(e @ SourceError::Privileged { .. }) => {
                let message = e.to_string();
                assert!(message.contains(expect), "{message}");
                assert!(!message.contains("secret-pw"), "{message}");
            }
            Err(other) => panic!("expected a refusal, got {other}"),
            Ok(_) => panic!("{dsn} was accepted"),
        }
    }
}

#[tokio::test]
async fn a_slow_query_is_stopped_by_the_server_limit() {
    let target = MyTarget::connect("my", &settings("DBINTEL_M3_DSN", MONITOR, Duration::from_secs(1))).await.expect("connects");
    let started = Instant::now();
    let result = target.query("sleepy", "SELECT SLEEP(30) AS slept_marker_my").await;
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // MariaDB either fails the statement or cuts SLEEP short (returning 1)
    match result {
        // MariaDB's max_statement_time (1969) or our deadline
        Err(e) if e.class() == ErrorClass::Distress => {}
        Ok(rows) => assert_eq!(rows[0].get("slept_marker_my"), Some(&Value::Int(1)), "SLEEP was interrupted"),
        Err(other) => panic!("unexpected error: {other}"),
    }
    let admin = admin(1).await;
    let (running,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%slept_marker_my%' AND INFO NOT LIKE '%PROCESSLIST%'",
    )
    .fetch_one(&admin)
    .await
    .expect("processlist");
    assert_eq!(running, 0, "our SLEEP is still running on the server");
}

#[tokio::test]
async fn nulls_and_unsigned_counters_are_fine() {
    let target = MyTarget::connect("my", &settings("DBINTEL_M4_DSN", MONITOR, Duration::from_secs(3))).await.expect("connects");
    let rows = target
        .query("nulls", "SELECT NULL AS a, CAST(NULL AS SIGNED) AS b, CAST(NULL AS DECIMAL(10,2)) AS c, CAST(NULL AS DATETIME) AS d, CAST(18446744073709551615 AS UNSIGNED) AS big")
        .await
        .expect("query");
    assert!(rows[0].get("a").is_some_and(Value::is_nil));
    assert!(rows[0].get("b").is_some_and(Value::is_nil));
    assert!(rows[0].get("c").is_some_and(Value::is_nil));
    assert!(rows[0].get("d").is_some_and(Value::is_nil));
    assert_eq!(rows[0].get("big"), Some(&Value::Double(18446744073709551615.0)));
}

#[tokio::test]
async fn activity_samples_see_sleeping_sessions() {
    let _probe = LOCKS.lock().await;
    let admin = admin(6).await;
    let mut busy = Vec::new();
    for _ in 0..4 {
        let pool = admin.clone();
        busy.push(tokio::spawn(async move { sqlx::query("SELECT SLEEP(3)").execute(&pool).await.map(|_| ()) }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let target = MyTarget::connect("my", &settings("DBINTEL_M5_DSN", MONITOR, Duration::from_secs(3))).await.expect("connects");
    let period = Duration::from_millis(250);
    let mut window = dbintel_sources::collectors::activity::AshWindow::new("mysql", period);
    for _ in 0..4 {
        window.add_sample(&target.query("sample", &my_sample_sql(target.server, false)).await.expect("sample"));
        tokio::time::sleep(period).await;
    }
    let records = window.finish(period * 4, 1);
    for task in busy {
        let _ = task.await;
    }
    let total: f64 = records
        .iter()
        .filter_map(|r| match r {
            Record::Metric(m)
                if m.name == "mysql.ash.active_sessions"
                    && m.attributes.get("db.user") == Some(&Value::Str("root".into()))
                    && m.attributes.get("db.wait.event").and_then(Value::as_str).is_some_and(|e| e.contains("Item_func_sleep")) =>
            {
                match m.value {
                    Number::Double(d) => Some(d),
                    Number::Int(i) => Some(i as f64),
                }
            }
            _ => None,
        })
        .sum();
    assert!((total - 4.0).abs() < 0.01, "AAS of the four sleeping sessions: {total} from {records:?}");
}

#[tokio::test]
async fn instance_status_metrics_come_from_the_server() {
    let target = MyTarget::connect("my", &settings("DBINTEL_M6_DSN", MONITOR, Duration::from_secs(3))).await.expect("connects");
    let target = Target::My(target);
    let mut instance = dbintel_sources::collectors::my_instance::MyInstance::new(Duration::from_secs(30), Duration::from_secs(300));
    let records = instance.scrape(&target, 1).await.expect("status");
    let names: Vec<String> = records.iter().filter_map(|r| if let Record::Metric(m) = r { Some(m.name.clone()) } else { None }).collect();
    for expected in ["mysql.threads", "mysql.buffer_pool.usage", "mysql.query.count", "mysql.uptime", "mysql.buffer_pool.limit"] {
        assert!(names.iter().any(|n| n == expected), "missing {expected}: {names:?}");
    }
}

#[tokio::test]
async fn row_lock_waiters_show_as_lock_waits_with_their_blocker() {
    let _probe = LOCKS.lock().await;
    let admin = admin(4).await;
    let mut holder = admin.begin().await.expect("begin");
    sqlx::raw_sql("SELECT v FROM lock_probe WHERE id = 1 FOR UPDATE").execute(&mut *holder).await.expect("hold the row");
    let (holder_id,): (i64,) = sqlx::query_as("SELECT CAST(CONNECTION_ID() AS SIGNED)").fetch_one(&mut *holder).await.expect("id");
    let mut waiters = Vec::new();
    for _ in 0..2 {
        let pool = admin.clone();
        waiters.push(tokio::spawn(async move {
            sqlx::raw_sql("UPDATE lock_probe SET v = v + 1 WHERE id = 1").execute(&pool).await.map(|_| ())
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let target = MyTarget::connect("my", &settings("DBINTEL_M7_DSN", MONITOR, Duration::from_secs(3))).await.expect("connects");
    let period = Duration::from_millis(250);
    let mut window = dbintel_sources::collectors::activity::AshWindow::new("mysql", period);
    for _ in 0..4 {
        window.add_sample(&target.query("sample", &my_sample_sql(target.server, false)).await.expect("sample"));
        tokio::time::sleep(period).await;
    }
    let records = window.finish(period * 4, 1);
    holder.rollback().await.expect("release");
    for w in waiters {
        let _ = w.await;
    }
    let lock_aas: f64 = records
        .iter()
        .filter_map(|r| match r {
            Record::Metric(m) if m.attributes.get("db.wait.class") == Some(&Value::Str("Lock".into())) => match m.value {
                Number::Double(d) => Some(d),
                Number::Int(i) => Some(i as f64),
            },
            _ => None,
        })
        .sum();
    assert!((lock_aas - 2.0).abs() < 0.01, "AAS of the two row-lock waiters: {lock_aas}");
    let chains: Vec<&Value> = records
        .iter()
        .filter_map(|r| match r {
            Record::Log(l) if l.event_name == "db.server.blocking" => l.attributes.get("db.blocking.session.ids"),
            _ => None,
        })
        .collect();
    assert_eq!(chains.len(), 2, "one blocking event per waiter: {records:?}");
    for chain in chains {
        assert!(matches!(chain, Value::List(ids) if ids.contains(&Value::Int(holder_id))), "blocked by the holder {holder_id}: {chain:?}");
    }
}
