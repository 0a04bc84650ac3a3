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
    let mut statements =
        MyStatements::new(&StatementsSettings { top: 200, interval: None }, Duration::from_secs(30), vec!["nr_service_guid".into()]);
    // The text protocol: MariaDB digests statements it parses, not ones
    // executed through the binary (prepared) protocol. SLEEP makes the
    // server's timer large and unmistakable: at least 20 ms a call.
    let marker = "SELECT 1 AS mysql_marker_k5, SLEEP(0.02) AS b, 3 AS c";
    sqlx::raw_sql(marker).execute(&admin).await.expect("marker");
    let first = statements.scrape(&target, 1).await.expect("first scrape");
    assert_eq!(calls_for(&first, "mysql_marker_k5"), None, "the first sighting is a baseline: {first:#?}");
    // the server's own timer (picoseconds), read after each scrape; only
    // this test runs the marker, so nothing moves it in between
    let before = server_timer_wait(&admin, "mysql_marker_k5").await;
    for _ in 0..5 {
        sqlx::raw_sql(marker).execute(&admin).await.expect("marker");
    }
    let second = statements.scrape(&target, 2).await.expect("second scrape");
    let after = server_timer_wait(&admin, "mysql_marker_k5").await;
    let server_ms = (after - before) as f64 / 1e9;
    assert!(server_ms >= 100.0, "five 20 ms sleeps took {server_ms} ms by SUM_TIMER_WAIT ({before} → {after} ps)");
    let (calls, duration) = (calls_for(&second, "mysql_marker_k5"), metric_for(&second, "mysql.query.duration", "mysql_marker_k5"));
    assert_eq!(calls, Some(5), "five calls between the scrapes: {second:#?}");
    let (value, unit) = duration.unwrap_or_else(|| panic!("no mysql.query.duration for the marker: {second:#?}"));
    assert_eq!(unit, "ms", "picosecond timers are reported in milliseconds");
    assert!(
        (value - server_ms).abs() <= server_ms * 1e-9,
        "mysql.query.duration is {value} ms; the digest's SUM_TIMER_WAIT grew by {} ps = {server_ms} ms",
        after - before
    );
    assert_eq!(target.resource().attributes.get("db.system.name"), Some(&Value::Str("mysql".into())), "{:?}", target.resource());
}

/// SUM_TIMER_WAIT (picoseconds) of the digests whose text has `marker`,
/// summed over schemas as the collector sums them.
async fn server_timer_wait(admin: &sqlx::MySqlPool, marker: &str) -> u64 {
    let (sum,): (String,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(SUM_TIMER_WAIT), 0) AS CHAR) FROM performance_schema.events_statements_summary_by_digest
          WHERE DIGEST_TEXT LIKE CONCAT('%', ?, '%') AND DIGEST_TEXT NOT LIKE '%events_statements_summary_by_digest%'",
    )
    .bind(marker)
    .fetch_one(admin)
    .await
    .expect("the digest table");
    sum.parse().unwrap_or_else(|e| panic!("SUM_TIMER_WAIT {sum:?}: {e}"))
}

/// The value and unit of `metric` for the statement whose text has
/// `marker` (found through its `db.server.top_query` event).
fn metric_for(records: &[Record], metric: &str, marker: &str) -> Option<(f64, String)> {
    let id = records.iter().find_map(|r| match r {
        Record::Log(l) if l.attributes.get("db.query.text").and_then(Value::as_str).is_some_and(|t| t.contains(marker)) => {
            l.attributes.get("db.query.id").cloned()
        }
        _ => None,
    })?;
    records.iter().find_map(|r| match r {
        Record::Metric(m) if m.name == metric && m.attributes.get("db.query.id") == Some(&id) => {
            let value = match m.value {
                Number::Int(i) => i as f64,
                Number::Double(d) => d,
            };
            Some((value, m.unit.clone()))
        }
        _ => None,
    })
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
    for column in ["a", "b", "c", "d"] {
        assert!(rows[0].get(column).is_some_and(Value::is_nil), "{column} is not nil: {:?}", rows[0]);
    }
    assert_eq!(rows[0].get("big"), Some(&Value::Double(18446744073709551615.0)), "{:?}", rows[0]);
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
        window.add_sample(&target.query("sample", &my_sample_sql(target.server, false, 1000)).await.expect("sample"));
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
        window.add_sample(&target.query("sample", &my_sample_sql(target.server, false, 1000)).await.expect("sample"));
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

#[tokio::test]
async fn privileges_through_roles_file_and_admin_are_refused() {
    let admin = admin(1).await;
    for sql in [
        "CREATE ROLE IF NOT EXISTS dbintel_rw_role",
        "GRANT INSERT ON dbintel_test.* TO dbintel_rw_role",
        "CREATE USER IF NOT EXISTS 'dbintel_roled'@'%' IDENTIFIED BY 'roled-secret-pw'",
        "GRANT SELECT ON performance_schema.* TO 'dbintel_roled'@'%'",
        "GRANT dbintel_rw_role TO 'dbintel_roled'@'%'",
        "SET DEFAULT ROLE dbintel_rw_role FOR 'dbintel_roled'@'%'",
        "CREATE USER IF NOT EXISTS 'dbintel_filer'@'%' IDENTIFIED BY 'filer-secret-pw'",
        "GRANT FILE ON *.* TO 'dbintel_filer'@'%'",
        "GRANT SELECT ON performance_schema.* TO 'dbintel_filer'@'%'",
        "CREATE USER IF NOT EXISTS 'dbintel_binlog'@'%' IDENTIFIED BY 'binlog-secret-pw'",
        "GRANT BINLOG ADMIN ON *.* TO 'dbintel_binlog'@'%'",
        "GRANT SELECT ON performance_schema.* TO 'dbintel_binlog'@'%'",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&admin).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    for (var, user, expect) in [
        ("DBINTEL_M7A_DSN", "dbintel_roled:roled-secret-pw", "through role `dbintel_rw_role`"),
        ("DBINTEL_M7B_DSN", "dbintel_filer:filer-secret-pw", "has FILE"),
        ("DBINTEL_M7C_DSN", "dbintel_binlog:binlog-secret-pw", "administrative privilege BINLOG ADMIN"),
    ] {
        let dsn = format!("mysql://{user}@127.0.0.1:3306/performance_schema");
        match MyTarget::connect("my", &settings(var, &dsn, Duration::from_secs(3))).await {
            Err(e @ SourceError::Privileged { .. }) => {
                let message = e.to_string();
                assert!(message.contains(expect), "{message}");
                assert!(!message.contains("secret-pw"), "{message}");
                assert_eq!(e.class(), ErrorClass::Configuration, "{message}");
            }
            Err(other) => panic!("{user}: expected a refusal, got {other}"),
            Ok(_) => panic!("{user} was accepted"),
        }
    }
}

/// A MariaDB of the test's own with TLS on (a CA and a server certificate
/// for 127.0.0.1 made with openssl), on a free port.
struct TlsMariaDb {
    child: std::process::Child,
    port: u16,
    ca: std::path::PathBuf,
}

impl TlsMariaDb {
    fn start() -> TlsMariaDb {
        let dir = common::scratch("mariadb-tls");
        let run = |cmd: &mut std::process::Command| {
            let out = cmd.current_dir(&dir).output().expect("runs");
            assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(std::process::Command::new("openssl").args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=dbintel test CA",
        ]));
        run(std::process::Command::new("openssl").args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]));
        std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        run(std::process::Command::new("openssl").args([
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ]));
        let data = dir.join("data");
        run(std::process::Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display())));
        let port = common::otlp::free_port();
        let socket = dir.join("sock");
        let child = std::process::Command::new("/usr/sbin/mariadbd")
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1", "--skip-log-bin", "--performance-schema=ON"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--ssl-cert={}", dir.join("server.pem").display()))
            .arg(format!("--ssl-key={}", dir.join("server.key").display()))
            .arg(format!("--ssl-ca={}", dir.join("ca.pem").display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
            .spawn()
            .expect("mariadbd");
        let server = TlsMariaDb { child, port, ca: dir.join("ca.pem") };
        let started = Instant::now();
        while !std::process::Command::new("mariadb")
            .arg(format!("--socket={}", socket.display()))
            .args(["-uroot", "-e", "CREATE USER IF NOT EXISTS 'dbintel_monitor'@'%' IDENTIFIED BY 'monitor-secret-pw'; GRANT SELECT ON performance_schema.* TO 'dbintel_monitor'@'%'; GRANT PROCESS ON *.* TO 'dbintel_monitor'@'%'"])
            .status()
            .is_ok_and(|s| s.success())
        {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            assert!(started.elapsed() < Duration::from_secs(30), "the private MariaDB did not answer within 30 s; its log:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }
}

impl Drop for TlsMariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn tls_modes_are_honoured_on_a_real_mariadb() {
    let server = TlsMariaDb::start();
    let dsn = format!("mysql://dbintel_monitor:monitor-secret-pw@127.0.0.1:{}/performance_schema", server.port);
    let with = |var: &str, mode: &str, ca: Option<&std::path::Path>| {
        let mut s = raw_settings(var, &dsn, Duration::from_secs(3));
        s.0.insert("sslmode".into(), SettingValue::Word(mode.into()));
        if let Some(ca) = ca {
            s.0.insert("sslrootcert".into(), SettingValue::String(ca.display().to_string()));
        }
        DbSettings::from_settings(&s)
    };
    // require: encrypted, whatever the certificate
    let target = MyTarget::connect("my", &with("DBINTEL_M8A_DSN", "require", None)).await.expect("require connects");
    let rows = target.query("tls", "SHOW SESSION STATUS LIKE 'Ssl_cipher'").await.expect("status");
    let cipher = rows.first().and_then(|r| r.get("Value")).map(ToString::to_string).unwrap_or_default();
    assert!(!cipher.is_empty(), "the session is encrypted: {rows:?}");
    target.close().await;
    // verify-full without the CA: the certificate cannot be verified
    let err = MyTarget::connect("my", &with("DBINTEL_M8B_DSN", "verify-full", None)).await.err().expect("verify-full must refuse");
    let message = err.to_string();
    assert_eq!(err.class(), ErrorClass::Connection, "{message}");
    assert!(message.contains("certificate"), "the cause is named: {message}");
    assert!(!message.contains("monitor-secret-pw"), "{message}");
    // and with it, for the name in the certificate: verified
    let target =
        MyTarget::connect("my", &with("DBINTEL_M8C_DSN", "verify-full", Some(&server.ca))).await.expect("verify-full with the CA connects");
    let rows = target.query("tls", "SHOW SESSION STATUS LIKE 'Ssl_cipher'").await.expect("status");
    assert!(rows.first().and_then(|r| r.get("Value")).is_some_and(|v| !v.to_string().is_empty()), "verified, and encrypted: {rows:?}");
}
