//! `collect plans` against the real PostgreSQL: a full scan is reported
//! with its relation, an index changes the plan hash and emits a
//! plan_change event, no literal or table data leaves, DML is never
//! explained, and a blocked EXPLAIN gives up under the session's timeouts.

mod common;

use std::time::{Duration, Instant};

use common::otlp::Run;
use common::{psql, scratch, PG_MONITOR, PG_SUPERUSER};
use serde_json::Value;

/// Every log record in an OTLP/JSON lines file: (event name, attributes).
fn events(file: &std::path::Path) -> Vec<(String, serde_json::Map<String, Value>)> {
    let mut out = Vec::new();
    for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
        let request: Value = serde_json::from_str(line).expect("OTLP/JSON");
        for rl in request["resourceLogs"].as_array().into_iter().flatten() {
            for l in rl["scopeLogs"][0]["logRecords"].as_array().into_iter().flatten() {
                let mut attrs = serde_json::Map::new();
                for kv in l["attributes"].as_array().into_iter().flatten() {
                    let v = kv["value"].as_object().and_then(|v| v.values().next()).cloned().unwrap_or(Value::Null);
                    attrs.insert(kv["key"].as_str().unwrap_or_default().to_string(), v);
                }
                out.push((l["eventName"].as_str().unwrap_or_default().to_string(), attrs));
            }
        }
    }
    out
}

fn strings(v: &Value) -> Vec<String> {
    v["values"].as_array().into_iter().flatten().filter_map(|x| x["stringValue"].as_str().map(str::to_string)).collect()
}

#[test]
fn plans_report_full_scans_detect_a_new_index_and_leak_nothing() {
    psql(
        "DROP TABLE IF EXISTS plan_probe;
         CREATE TABLE plan_probe (id int, email text);
         INSERT INTO plan_probe SELECT n, 'secret-' || n || '@corp.example' FROM generate_series(1, 2000) n;
         ANALYZE plan_probe;
         GRANT SELECT ON plan_probe TO dbintel_monitor;
         SELECT pg_stat_statements_reset();",
    );
    let probe = "SELECT id FROM plan_probe WHERE email = 'secret-7@corp.example'";
    let update = "UPDATE plan_probe SET id = id WHERE email = 'secret-8@corp.example'";
    for _ in 0..20 {
        psql(&format!("{probe}; {update}"));
    }
    let id_of = |pattern: &str| psql(&format!("SELECT queryid FROM pg_stat_statements WHERE query LIKE '{pattern}%' LIMIT 1"));
    let (probe_id, update_id) = (id_of("SELECT id FROM plan_probe"), id_of("UPDATE plan_probe"));
    assert!(!probe_id.is_empty() && !update_id.is_empty(), "{probe_id}");

    let dir = scratch("plans");
    let out = dir.join("out.jsonl");
    let pipe = dir.join("p.pipe");
    std::fs::write(
        &pipe,
        format!(
            "source pg = postgres {{\n  dsn = env(\"PLANS_PG_DSN\")\n  timeout = 1s\n  jitter = 0%\n  collect plans {{ top = 50, per_scrape = 50, every = 1s, interval = 1s, emit = event }}\n}}\nsink out = file {{ path = \"{}\" }}\npipeline p = pg.plans -> batch -> out\n",
            out.display()
        ),
    )
    .unwrap();
    let mut run = Run::start(&[pipe.to_str().unwrap(), "--no-watch"], &[("PLANS_PG_DSN", PG_MONITOR)]);
    let plan_of = |id: &str, name: &str| events(&out).into_iter().rev().find(|(n, a)| n == name && a["db.query.id"] == id).map(|(_, a)| a);
    let first = run.wait_for("the probe's plan", Duration::from_secs(30), || plan_of(&probe_id, "db.server.query_plan"));
    assert_eq!(first["db.plan.has_seq_scan"], true, "{first:?}");
    assert_eq!(strings(&first["db.plan.seq_scan_relations"]), ["plan_probe"], "{first:?}");
    let seq_hash = first["db.plan.hash"].as_str().unwrap_or_default().to_string();

    // a lock on the table: EXPLAIN waits for it only as long as
    // lock_timeout (half of the 1 s statement timeout) allows
    let errors = |run: &Run| run.metric(r#"dbintel_node_errors_total{node="pg",kind="source"}"#);
    let errors_before = errors(&run);
    let mut locker = std::process::Command::new("psql")
        .args(["-X", "-q", PG_SUPERUSER, "-c", "BEGIN; LOCK TABLE plan_probe IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(5); COMMIT;"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    let started = Instant::now();
    let mut longest: f64 = 0.0;
    while started.elapsed() < Duration::from_secs(4) {
        let waited = psql(
            "SELECT coalesce(max(extract(epoch FROM now() - query_start)), 0) FROM pg_stat_activity
              WHERE application_name = 'dbintel' AND usename = 'dbintel_monitor' AND wait_event_type = 'Lock'",
        );
        longest = longest.max(waited.parse().unwrap_or(0.0));
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = locker.wait();
    assert!(longest < 1.0, "an EXPLAIN waited {longest:.2}s on a lock");
    assert!(
        errors(&run) > errors_before,
        "the blocked EXPLAINs were cut short and counted ({errors_before} errors before):\n{}",
        run.stderr()
    );

    // an index: the plan hash changes and a plan_change event says so
    psql("CREATE INDEX plan_probe_email ON plan_probe (email); ANALYZE plan_probe;");
    let change = run.wait_for("a plan change", Duration::from_secs(30), || plan_of(&probe_id, "db.server.plan_change"));
    assert_eq!(change["db.plan.previous_hash"], seq_hash.as_str(), "{change:?}");
    assert_ne!(change["db.plan.hash"], seq_hash.as_str(), "{change:?}");
    assert_eq!(change["db.plan.has_seq_scan"], false, "{change:?}");
    assert_eq!(strings(&change["db.plan.indexes"]), ["plan_probe_email"], "{change:?}");

    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    let all = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        !all.contains("corp.example") && !all.contains("secret-"),
        "a literal or table data left in a plan: {:?}",
        common::lines_with(&all, &["corp.example", "secret-"])
    );
    assert!(
        plan_of(&update_id, "db.server.query_plan").is_none(),
        "an UPDATE was explained: {:?}",
        plan_of(&update_id, "db.server.query_plan")
    );
    let dml = psql("SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%dbintel_plan_%' AND query ILIKE '%UPDATE%'");
    assert_eq!(dml, "0", "no PREPARE of a DML statement reached the server");
}

const MY_MONITOR: &str = "mysql://dbintel_monitor:monitor-secret-pw@127.0.0.1:3306/dbintel_test";

fn mariadb(sql: &str) -> String {
    let out = std::process::Command::new("mariadb").args(["-uroot", "-N", "-B", "dbintel_test", "-e", sql]).output().expect("mariadb");
    assert!(out.status.success(), "mariadb: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn mariadb_plans_come_from_real_statement_texts_and_follow_a_new_index() {
    mariadb(
        "DROP TABLE IF EXISTS plan_probe_my;
         CREATE TABLE plan_probe_my (id INT, email VARCHAR(100));
         INSERT INTO plan_probe_my SELECT seq, CONCAT('secret-', seq, '@corp.example') FROM seq_1_to_2000;
         ANALYZE TABLE plan_probe_my;
         GRANT SELECT ON dbintel_test.plan_probe_my TO 'dbintel_monitor'@'%';",
    );
    // an application's long-lived connection: its recent statements are
    // what MariaDB keeps sample texts of
    let mut app = std::process::Command::new("mariadb")
        .args(["-uroot", "dbintel_test"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("mariadb");
    let mut stdin = app.stdin.take().expect("stdin");
    let send = |stdin: &mut std::process::ChildStdin, sql: &str| {
        use std::io::Write;
        stdin.write_all(sql.as_bytes()).and_then(|_| stdin.flush()).expect("write");
    };
    for _ in 0..5 {
        send(&mut stdin, "SELECT id FROM plan_probe_my WHERE email = 'secret-7@corp.example';\n");
        send(&mut stdin, "UPDATE plan_probe_my SET id = id WHERE email = 'secret-8@corp.example';\n");
    }
    std::thread::sleep(Duration::from_millis(500));
    let digest = |like: &str| {
        mariadb(&format!(
            "SELECT DIGEST FROM performance_schema.events_statements_summary_by_digest WHERE DIGEST_TEXT LIKE '{like}%' LIMIT 1"
        ))
    };
    let (probe, update) = (digest("SELECT % FROM `plan_probe_my` WHERE"), digest("UPDATE `plan_probe_my`"));
    assert!(!probe.is_empty() && !update.is_empty(), "digests: {probe:?} {update:?}");

    let dir = scratch("plans-mariadb");
    let out = dir.join("out.jsonl");
    let pipe = dir.join("p.pipe");
    std::fs::write(
        &pipe,
        format!(
            "source my = mysql {{\n  dsn = env(\"PLANS_MY_DSN\")\n  timeout = 1s\n  jitter = 0%\n  collect plans {{ top = 50, per_scrape = 50, every = 1s, interval = 1s, emit = event }}\n}}\nsink out = file {{ path = \"{}\" }}\npipeline p = my.plans -> batch -> out\n",
            out.display()
        ),
    )
    .unwrap();
    let mut run = Run::start(&[pipe.to_str().unwrap(), "--no-watch"], &[("PLANS_MY_DSN", MY_MONITOR)]);
    let plan_of = |id: &str, name: &str| events(&out).into_iter().rev().find(|(n, a)| n == name && a["db.query.id"] == id).map(|(_, a)| a);
    let first = run.wait_for("the probe's plan", Duration::from_secs(30), || plan_of(&probe, "db.server.query_plan"));
    assert_eq!(first["db.plan.has_seq_scan"], true, "{first:?}");
    assert_eq!(strings(&first["db.plan.seq_scan_relations"]), ["plan_probe_my"], "{first:?}");

    mariadb("CREATE INDEX plan_probe_my_email ON plan_probe_my (email)");
    let change = run.wait_for("a plan change", Duration::from_secs(30), || plan_of(&probe, "db.server.plan_change"));
    assert_eq!(change["db.plan.has_seq_scan"], false, "{change:?}");
    assert_eq!(strings(&change["db.plan.indexes"]), ["plan_probe_my_email"], "{change:?}");

    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    drop(stdin);
    let _ = app.wait();
    assert!(status.success(), "{log}");
    let all = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(!all.contains("corp.example") && !all.contains("secret-"), "a literal left in a plan: {all}");
    assert!(plan_of(&update, "db.server.query_plan").is_none(), "an UPDATE was explained: {:?}", plan_of(&update, "db.server.query_plan"));
}
