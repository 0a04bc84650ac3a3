//! New Relic's Database 360 pages, lit for real (issue 23): PostgreSQL 12,
//! 15, 17 and 18 and MariaDB under a workload — an APM-commented query run
//! over and over, a traced session, a long-running statement, a lock wait,
//! an UPDATE only the EXPLAIN helper may plan — run through the shipped
//! sanitize rules and the `newrelic` preset into the OTLP receiver (the
//! official protobuf classes decode every byte). What arrives is held
//! against the contract (`db360.rs`, New Relic's collector's attributes
//! and units, per server version and flavour), and:
//! - the query hash equals what New Relic's rules give for the
//!   `db.query.text` that arrived (a second, independent implementation:
//!   stdlib/tests/apm_hash_oracle/nr_normalizer.py);
//! - the APM comment's `nr_service_guid` arrives as its tag;
//! - the traced session's sample carries its trace and span id;
//! - the blocked session's sample names its blocker, the lock's mode, type
//!   and relation (and since when, from PostgreSQL 14);
//! - plans arrive on their top queries, the UPDATE's through the helper;
//! - `service.instance.id` is New Relic's UUIDv5 of the endpoint.
//!
//! Needs tests/pg-versions.sh's servers and the shared :5432 and :3306;
//! fails, never skips, without them.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::otlp::{Receiver, Run};
use common::{pg_servers, scratch};
use dbintel_core::record::LogRecord;
use dbintel_sources::db360::{problems, Server};
use dbintel_sources::target::Engine;
use dbintel_stdlib::{Map, Value};
use serde_json::Value as Json;

const GUID: &str = "MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn any_value(v: &Json) -> Value {
    let Some((kind, inner)) = v.as_object().and_then(|o| o.iter().next()) else { return Value::Nil };
    match kind.as_str() {
        "stringValue" => Value::Str(inner.as_str().unwrap_or_default().to_string()),
        "intValue" => Value::Int(inner.as_str().and_then(|s| s.parse().ok()).or(inner.as_i64()).unwrap_or_default()),
        "doubleValue" => Value::Double(inner.as_f64().unwrap_or_default()),
        "boolValue" => Value::Bool(inner.as_bool().unwrap_or_default()),
        _ => Value::Str(inner.to_string()),
    }
}

fn attributes(list: &Json) -> Map {
    let mut out = Map::new();
    for kv in list.as_array().into_iter().flatten() {
        out.insert(kv["key"].as_str().unwrap_or_default(), any_value(&kv["value"]));
    }
    out
}

/// Bytes of a protobuf `bytes` field as the receiver's JSON has them
/// (base64, by the official json_format).
fn bytes(v: &Json) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text = v.as_str().unwrap_or_default().trim_end_matches('=');
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let Some(i) = ALPHABET.iter().position(|a| *a == c) else { return Vec::new() };
        acc = (acc << 6) | i as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Every log record that arrived, with its resource.
fn logs(receiver: &Receiver) -> Vec<(Map, LogRecord)> {
    let mut out = Vec::new();
    for r in receiver.accepted().iter().filter(|r| r["answer"] == "ok") {
        for rl in r["request"]["resourceLogs"].as_array().into_iter().flatten() {
            let resource = attributes(&rl["resource"]["attributes"]);
            for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
                for l in sl["logRecords"].as_array().into_iter().flatten() {
                    let mut log = LogRecord {
                        event_name: l["eventName"].as_str().unwrap_or_default().to_string(),
                        attributes: attributes(&l["attributes"]),
                        ..LogRecord::default()
                    };
                    if let Ok(id) = <[u8; 16]>::try_from(bytes(&l["traceId"])) {
                        log.trace_id = id;
                    }
                    if let Ok(id) = <[u8; 8]>::try_from(bytes(&l["spanId"])) {
                        log.span_id = id;
                    }
                    out.push((resource.clone(), log));
                }
            }
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// New Relic's hash of `text` by the independent implementation.
fn oracle_hashes(texts: &[String]) -> Vec<String> {
    let script = common::root().join("stdlib/tests/apm_hash_oracle/nr_normalizer.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 nr_normalizer.py");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        for t in texts {
            writeln!(stdin, "{}", serde_json::to_string(t).unwrap()).unwrap();
        }
    }
    let out = child.wait_with_output().expect("the oracle ran");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // its first line names its Unicode tables
        .filter(|l| l.starts_with('['))
        .map(|l| serde_json::from_str::<(String, String)>(l).expect("[normalized, hash]").1)
        .collect()
}

fn get<'a>(l: &'a LogRecord, k: &str) -> Option<&'a Value> {
    l.attributes.get(k)
}

fn str_of<'a>(l: &'a LogRecord, k: &str) -> &'a str {
    get(l, k).and_then(Value::as_str).unwrap_or_default()
}

/// A background client, killed (and its session ended) on drop.
struct Client(Child);
impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn psql_in(port: u16, database: &str, sql: &str) -> String {
    let url = format!("postgresql://postgres:super-secret-pw@127.0.0.1:{port}/{database}");
    let out = Command::new("psql").args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", &url, "-c", sql]).output().expect("psql");
    assert!(out.status.success(), "psql on {port}: {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn psql_background(port: u16, database: &str, application: &str, sql: &str) -> Client {
    let url = format!("postgresql://postgres:super-secret-pw@127.0.0.1:{port}/{database}?application_name={application}");
    Client(Command::new("psql").args(["-X", "-q", &url, "-c", sql]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("psql"))
}

/// The test's pipeline: the shipped sanitize rules and `newrelic` preset,
/// the collectors at test cadence.
fn pipe(dir: &std::path::Path, kind: &str, var: &str) -> std::path::PathBuf {
    for shipped in ["sanitize_pii.pipe", "newrelic.pipe"] {
        std::fs::copy(common::root().join("pipelines").join(shipped), dir.join(shipped)).expect("copy a shipped pipe");
    }
    let path = dir.join("db360.pipe");
    std::fs::write(
        &path,
        format!(
            r#"use "sanitize_pii.pipe"
use "newrelic.pipe"
source db = {kind} {{
  dsn = env("{var}")
  interval = 2s
  jitter = 0%
  collect statements {{ top = 500 }}
  collect activity {{ every = 1s, window = 10s, samples_as_logs = true, samples_every = 1s }}
  collect plans {{ interval = 2s, per_scrape = 50, top = 100, every = 1h }}
}}
pipeline q = db.statements -> sanitize_pii -> batch -> newrelic
pipeline a = db.activity -> sanitize_pii -> batch -> newrelic
pipeline p = db.plans -> sanitize_pii -> batch -> newrelic
"#
        ),
    )
    .unwrap();
    path
}

fn start(receiver: &Receiver, pipe: &std::path::Path, var: &str, dsn: &str) -> Run {
    let endpoint = format!("http://127.0.0.1:{}", receiver.http);
    Run::start(
        &[pipe.to_str().unwrap(), "--no-watch"],
        &[
            (var, dsn),
            ("NEW_RELIC_LICENSE_KEY", "db360-test-key"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ],
    )
}

/// Polls the receiver until `found` gives something, doing `work` each
/// round; fails with what arrived.
fn wait_for<T>(
    receiver: &Receiver,
    run: &Run,
    limit: Duration,
    mut work: impl FnMut(),
    found: impl Fn(&[(Map, LogRecord)]) -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        work();
        let arrived = logs(receiver);
        if let Some(t) = found(&arrived) {
            return t;
        }
        let names: BTreeMap<String, usize> = arrived.iter().fold(BTreeMap::new(), |mut m, (_, l)| {
            *m.entry(l.event_name.clone()).or_default() += 1;
            m
        });
        let texts: std::collections::BTreeSet<String> = arrived
            .iter()
            .map(|(_, l)| {
                format!(
                    "{} {:.60} plan={}",
                    l.event_name,
                    str_of(l, "db.query.text"),
                    get(l, "postgresql.query_plan").or(get(l, "mysql.query_plan")).is_some()
                )
            })
            .collect();
        assert!(started.elapsed() < limit, "timed out after {limit:?}; events: {names:?}\n{texts:#?}\n{}", run.stderr());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every Database 360 event against the contract for `server`, and every
/// hash against New Relic's rules on the text that arrived.
fn check_contract(server: Server, arrived: &[(Map, LogRecord)]) {
    let mut texts = Vec::new();
    let mut hashes = Vec::new();
    for (_, l) in arrived {
        let found = problems(server, l);
        assert!(found.is_empty(), "{server:?}: {found:?}\nin {l:?}");
        if let (Some(Value::Str(text)), Some(Value::Str(hash))) = (get(l, "db.query.text"), get(l, "db.query.text.normalized.hash")) {
            texts.push(text.clone());
            hashes.push(hash.clone());
        }
    }
    assert!(!texts.is_empty(), "no event carried a query hash");
    let oracle = oracle_hashes(&texts);
    let differ: Vec<(&String, &String, &String)> =
        texts.iter().zip(&hashes).zip(&oracle).filter(|((_, ours), theirs)| ours != theirs).map(|((t, o), n)| (t, o, n)).collect();
    assert!(differ.is_empty(), "(text, our hash, New Relic's rules' hash) where they differ: {differ:#?}");
}

fn check_postgres(name: &str, port: u16) {
    // the scene: a database of this test's own, a table the monitoring role
    // may read, and the EXPLAIN helper (its owner may plan writes)
    if psql_in(port, "postgres", "SELECT count(*) FROM pg_database WHERE datname = 'db360'") == "0" {
        psql_in(port, "postgres", "CREATE DATABASE db360");
    }
    psql_in(
        port,
        "db360",
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
         CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, customer text, total int);
         INSERT INTO orders SELECT g, 'c' || (g % 10), g FROM generate_series(1, 500) g ON CONFLICT DO NOTHING;
         GRANT SELECT ON orders TO dbintel_monitor;",
    );
    let version: i64 = psql_in(port, "db360", "SHOW server_version_num").parse().expect("a version");
    // this database's statements start over (pg_stat_statements keeps the
    // first text it sees of a statement; earlier runs must not decide it)
    psql_in(port, "db360", "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = 'db360'), 0)");
    let helper =
        dbintel_doctor::plans_helper::explain_function_sql("otel.explain_statement", "dbintel_explain", "dbintel_monitor", Some(version));
    psql_in(port, "db360", &helper);
    let write = if version >= 140000 { "GRANT pg_write_all_data TO dbintel_explain" } else { "GRANT UPDATE ON orders TO dbintel_explain" };
    psql_in(port, "db360", write);

    let dir = scratch(&format!("db360-pg{name}"));
    let receiver = Receiver::start(&dir, "nr", 0, 0, "[]");
    let dsn = format!("postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:{port}/db360");
    let run = start(&receiver, &pipe(&dir, "postgres", "DB360_PG_DSN"), "DB360_PG_DSN", &dsn);
    let marker = format!("db360_{}", std::process::id());
    let apm = |n: usize| {
        format!("/* nr_service_guid=\"{GUID}\" */ SELECT count(*) AS {marker} FROM orders WHERE customer = 'c{}' AND total > {n}", n % 10)
    };
    let update = format!("UPDATE orders SET total = total + 1 WHERE id = 7 AND customer <> '{marker}'");
    let mut n = 0;
    let work = || {
        n += 1;
        // one statement per call: pg_stat_statements keeps a statement's
        // leading comment only when it is the whole query string
        psql_in(port, "db360", &apm(n));
        psql_in(port, "db360", &update);
    };
    let mut work = work;
    // the statements and their plans
    let (top, plan_of_update) = wait_for(&receiver, &run, Duration::from_secs(60), &mut work, |arrived| {
        // (pg_stat_statements keeps the text it first saw for a query id,
        // and an alias does not change the id: found by its shape)
        let top = arrived.iter().find(|(_, l)| {
            l.event_name == "db.server.top_query"
                && str_of(l, "db.query.text").contains("FROM orders WHERE customer =")
                && get(l, "postgresql.query_plan").is_some()
        })?;
        let update = arrived.iter().find(|(_, l)| {
            l.event_name == "db.server.top_query"
                && str_of(l, "db.query.text").to_ascii_uppercase().starts_with("UPDATE ORDERS")
                && get(l, "postgresql.query_plan").is_some()
        })?;
        Some((top.1.clone(), update.1.clone()))
    });
    // PostgreSQL 18's pg_stat_statements keeps no leading comment: there
    // the samples carry the tags (checked below), the top queries cannot
    if version >= 180000 {
        assert_eq!(str_of(&top, "db.query.comment_tags"), "", "{top:?}");
    } else {
        assert_eq!(str_of(&top, "db.query.comment_tags.nr_service_guid"), GUID, "{top:?}");
        assert_eq!(str_of(&top, "db.query.comment_tags"), format!("nr_service_guid=\"{GUID}\""));
    }
    assert!(str_of(&top, "postgresql.query_plan").starts_with("[{"), "a plan in New Relic's shape: {top:?}");
    assert_eq!(str_of(&top, "dbintel.plan.source"), "explain");
    assert!(!str_of(&top, "db.query.text").contains("c1'"), "sanitized: {top:?}");
    assert!(
        str_of(&plan_of_update, "postgresql.query_plan").contains("ModifyTable"),
        "the UPDATE planned through the helper: {plan_of_update:?}"
    );

    // the sessions: a traced one running a long statement, and a lock wait
    let _traced = psql_background(port, "db360", TRACEPARENT, &format!("/* nr_service_guid=\"{GUID}\" */ SELECT pg_sleep(30)"));
    let _holder =
        psql_background(port, "db360", "db360_holder", "BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30); COMMIT;");
    std::thread::sleep(Duration::from_millis(500));
    let _waiter = psql_background(port, "db360", "db360_waiter", "SELECT count(*) FROM orders");
    let (traced, blocked) = wait_for(
        &receiver,
        &run,
        Duration::from_secs(30),
        || {},
        |arrived| {
            let traced = arrived.iter().find(|(_, l)| l.event_name == "db.server.query_sample" && l.trace_id != [0; 16])?;
            let blocked = arrived.iter().find(|(_, l)| {
                l.event_name == "db.server.query_sample"
                    && str_of(l, "postgresql.application_name") == "db360_waiter"
                    && str_of(l, "postgresql.blocking.pids") != "{}"
            })?;
            Some((traced.1.clone(), blocked.1.clone()))
        },
    );
    assert_eq!(hex(&traced.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&traced.span_id), "00f067aa0ba902b7");
    assert_eq!(str_of(&traced, "db.query.comment_tags.nr_service_guid"), GUID, "{traced:?}");
    assert!(get(&traced, "postgresql.total_exec_time").and_then(Value::as_f64).is_some_and(|ms| ms > 0.0), "{traced:?}");
    let holder = psql_in(port, "db360", "SELECT pid FROM pg_stat_activity WHERE application_name = 'db360_holder'");
    assert_eq!(str_of(&blocked, "postgresql.blocking.pids"), format!("{{{holder}}}"), "{blocked:?}");
    assert_eq!(str_of(&blocked, "postgresql.blocking.lock.mode"), "AccessShareLock");
    assert_eq!(str_of(&blocked, "postgresql.blocking.lock.type"), "relation");
    assert_eq!(str_of(&blocked, "postgresql.blocking.lock.relation"), "orders");
    assert_eq!(str_of(&blocked, "postgresql.wait_event_type"), "Lock");
    assert!(str_of(&blocked, "postgresql.blocking.transaction.start_time").ends_with('Z'), "{blocked:?}");
    assert!(str_of(&blocked, "postgresql.backend.connection.start").ends_with('Z'), "{blocked:?}");
    if version >= 140000 {
        assert!(str_of(&blocked, "postgresql.blocking.start_time").ends_with('Z'), "{blocked:?}");
    }

    // everything against the contract and New Relic's hash rules
    let arrived = logs(&receiver);
    let server = Server { engine: Engine::Postgres, mariadb: false, version };
    check_contract(server, &arrived);
    let id = common::nr_service_instance_id("127.0.0.1", port);
    assert!(arrived.iter().all(|(r, _)| r.get("service.instance.id").and_then(Value::as_str) == Some(id.as_str())));
    let log = run.stderr();
    assert!(!log.contains("monitor-secret-pw") && !log.contains("FROM orders"), "no secret and no query text in the log");
}

#[test]
fn postgresql_12_lights_every_database_360_page() {
    check_postgres("12", pg_servers::port_of(&pg_servers::servers(), "12"));
}

#[test]
fn postgresql_15_lights_every_database_360_page() {
    check_postgres("15", 5432);
}

#[test]
fn postgresql_17_lights_every_database_360_page() {
    check_postgres("17", pg_servers::port_of(&pg_servers::servers(), "17"));
}

#[test]
fn postgresql_18_lights_every_database_360_page() {
    check_postgres("18", pg_servers::port_of(&pg_servers::servers(), "18"));
}

/// Runs `sql` in database db360, as an application would.
fn mariadb(sql: &str) -> String {
    let out = Command::new("mariadb").args(["-uroot", "-h127.0.0.1", "-N", "-B", "-e", sql]).output().expect("mariadb client");
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One long-lived application session: its statements stay in
/// performance_schema's per-thread history (MariaDB's plans come from
/// there; a thread's history goes with it).
struct AppSession(Child);
impl AppSession {
    fn start() -> AppSession {
        AppSession(
            Command::new("mariadb")
                // --comments: the client would strip the APM agent's comment
                .args(["-uroot", "-h127.0.0.1", "--comments", "-N", "-B", "db360"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("mariadb client"),
        )
    }
    fn run(&mut self, sql: &str) {
        use std::io::Write;
        let stdin = self.0.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{sql};").expect("the session takes the statement");
        stdin.flush().expect("flush");
    }
}
impl Drop for AppSession {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mariadb_background(sql: &str) -> Client {
    Client(
        Command::new("mariadb")
            .args(["-uroot", "-h127.0.0.1", "--comments", "db360", "-e", sql])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadb client"),
    )
}

#[test]
fn mariadb_lights_every_database_360_page_it_has_a_source_for() {
    mariadb(
        "CREATE DATABASE IF NOT EXISTS db360;
         CREATE TABLE IF NOT EXISTS db360.orders (id INT PRIMARY KEY, customer VARCHAR(20), total INT) ENGINE=InnoDB;
         INSERT IGNORE INTO db360.orders SELECT seq, CONCAT('c', seq % 10), seq FROM db360.seq_1_to_500;
         GRANT SELECT ON db360.* TO 'dbintel_monitor'@'%', 'dbintel_monitor'@'localhost';",
    );
    let version = dbintel_sources::mysql::MyServer::from_version(&mariadb("SELECT VERSION()"));
    let dir = scratch("db360-mariadb");
    let receiver = Receiver::start(&dir, "nr", 0, 0, "[]");
    let dsn = "mysql://dbintel_monitor:monitor-secret-pw@127.0.0.1:3306/db360";
    let run = start(&receiver, &pipe(&dir, "mysql", "DB360_MY_DSN"), "DB360_MY_DSN", dsn);
    let marker = format!("db360_{}", std::process::id());
    let mut n = 0;
    let mut app = AppSession::start();
    let top = wait_for(
        &receiver,
        &run,
        Duration::from_secs(60),
        || {
            n += 1;
            app.run(&format!(
                "/* nr_service_guid=\"{GUID}\" */ SELECT count(*) AS {marker} FROM orders WHERE customer = 'c{}' AND total > {n}",
                n % 10
            ));
        },
        |arrived| {
            arrived
                .iter()
                .find(|(_, l)| {
                    l.event_name == "db.server.top_query"
                        && str_of(l, "db.query.text").contains(&marker)
                        && get(l, "mysql.query_plan").is_some()
                })
                .map(|(_, l)| l.clone())
        },
    );
    assert!(str_of(&top, "mysql.query_plan").starts_with("[{"), "wrapped so ingest keeps it whole: {top:?}");
    assert_eq!(str_of(&top, "mysql.query_plan.hash"), str_of(&top, "mysql.events_statements_summary_by_digest.digest"));
    assert!(get(&top, "mysql.events_statements_summary_by_digest.examined_rows").is_some(), "{top:?}");
    // MariaDB keeps no sample text per digest: no comment tags on top queries
    assert!(get(&top, "db.query.comment_tags").is_none(), "never a fake: {top:?}");

    // a traced session waiting on a row lock another transaction holds
    let _holder = mariadb_background("START TRANSACTION; SELECT * FROM orders WHERE id = 3 FOR UPDATE; SELECT SLEEP(30); COMMIT;");
    std::thread::sleep(Duration::from_millis(700));
    let _waiter = mariadb_background(&format!(
        "SET @traceparent = '{TRACEPARENT}'; /* nr_service_guid=\"{GUID}\" */ UPDATE orders SET total = total + 1 WHERE id = 3;"
    ));
    let blocked = wait_for(
        &receiver,
        &run,
        Duration::from_secs(30),
        || {},
        |arrived| {
            arrived
                .iter()
                .find(|(_, l)| {
                    l.event_name == "db.server.query_sample"
                        && matches!(get(l, "mysql.blocking.blocker.count"), Some(Value::Int(n)) if *n > 0)
                })
                .map(|(_, l)| l.clone())
        },
    );
    assert_eq!(hex(&blocked.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736", "{blocked:?}");
    assert_eq!(hex(&blocked.span_id), "00f067aa0ba902b7");
    assert_eq!(str_of(&blocked, "db.query.comment_tags.nr_service_guid"), GUID, "{blocked:?}");
    assert!(str_of(&blocked, "mysql.blocking.blockers").contains("\"session_id\":"), "{blocked:?}");
    assert_eq!(str_of(&blocked, "mysql.session.status"), "waiting");
    assert!(get(&blocked, "client.port").is_none(), "MariaDB has no source for the client's port: {blocked:?}");

    let arrived = logs(&receiver);
    let server = Server { engine: Engine::MySql, mariadb: true, version: version.version };
    check_contract(server, &arrived);
    assert!(arrived.iter().all(|(r, _)| r.get("mysql.instance.endpoint").and_then(Value::as_str) == Some("127.0.0.1:3306")));
    let log = run.stderr();
    assert!(!log.contains("monitor-secret-pw") && !log.contains(&marker));
}
