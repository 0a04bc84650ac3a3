//! What the servers themselves say of dbintel's sessions (README: "Every
//! session is safe for a production server"): a `sql` collector reads the
//! session's settings as the server holds them (PostgreSQL's pg_settings,
//! with where each value came from; MariaDB's session variables), and a
//! write sent through the same kind of session is refused by the server
//! as a write in a read-only transaction — its own SQLSTATE / error
//! number, not a missing privilege. Against the real PostgreSQL and
//! MariaDB, through `dbintel dry-run --scrapes 1`.

mod common;

use std::collections::BTreeMap;

use common::{code, dbintel, psql, scratch, text, PG_MONITOR};

/// The points of OTLP/JSON lines on stdout: (metric, point attributes).
fn points(stdout: &[u8]) -> Vec<(String, BTreeMap<String, String>)> {
    let requests: Vec<serde_json::Value> = text(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|request| serde_json::json!({ "answer": "ok", "signal": "metrics", "request": request }))
        .collect();
    common::otlp::points(&requests)
        .into_iter()
        .map(|(name, _, attributes, _)| {
            let attributes =
                attributes.into_iter().map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect();
            (name, attributes)
        })
        .collect()
}

/// The one scrape failure of `collector` in the log: its line.
fn failure<'a>(stderr: &'a str, collector: &str) -> Option<&'a str> {
    stderr.lines().find(|l| l.contains("scrape failed") && l.contains(&format!("collector={collector}")))
}

#[test]
fn postgres_sessions_are_read_only_with_dbintels_limits_by_the_servers_account() {
    // a table the monitoring role may read but never write
    psql("CREATE TABLE IF NOT EXISTS proofs_session_probe (n int); GRANT SELECT ON proofs_session_probe TO dbintel_monitor");
    let dir = scratch("sessions-pg");
    let pipe = dir.join("p.pipe");
    std::fs::write(
        &pipe,
        r#"source pg = sql {
  dsn = env("SESS_PG_DSN")
  timeout = 4s
  collect settings { query = "SELECT name, setting, source, 1 AS v FROM pg_settings WHERE name IN ('default_transaction_read_only', 'idle_in_transaction_session_timeout', 'statement_timeout', 'lock_timeout', 'application_name')", metric = "session.setting", value_column = "v", attribute_columns = ["name", "setting", "source"] }
  collect write { query = "WITH w AS (INSERT INTO proofs_session_probe VALUES (1) RETURNING n) SELECT count(*) AS n FROM w", metric = "session.write", value_column = "n" }
}
sink out = stdout {}
pipeline p = pg.settings -> out
pipeline w = pg.write -> out
"#,
    )
    .unwrap();
    let out = dbintel(&["dry-run", pipe.to_str().unwrap(), "--scrapes", "1"], &[("SESS_PG_DSN", PG_MONITOR)]);
    let stderr = text(&out.stderr);
    assert_eq!(code(&out), 0, "{stderr}");
    let settings: BTreeMap<String, (String, String)> = points(&out.stdout)
        .into_iter()
        .filter(|(name, _)| name == "session.setting")
        .map(|(_, a)| (a["name"].clone(), (a["setting"].clone(), a["source"].clone())))
        .collect();
    // each value as the server holds it for dbintel's session, set by the
    // client at connection (source "client"): 2 × and ½ × the 4 s timeout
    let client = |v: &str| (v.to_string(), "client".to_string());
    let expected = BTreeMap::from([
        ("application_name".to_string(), client("dbintel")),
        ("default_transaction_read_only".to_string(), client("on")),
        ("idle_in_transaction_session_timeout".to_string(), client("8000")),
        ("lock_timeout".to_string(), client("2000")),
        ("statement_timeout".to_string(), client("4000")),
    ]);
    assert_eq!(settings, expected, "pg_settings in dbintel's own session:\n{}\n{stderr}", text(&out.stdout));
    // and the server enforces it: the write is refused as a write in a
    // read-only transaction (25006), before any privilege check (42501)
    let refused = failure(&stderr, "write").unwrap_or_else(|| panic!("the write was not refused:\n{stderr}\n{}", text(&out.stdout)));
    assert!(refused.contains("code=25006"), "refused, but not as read-only: {refused}");
    assert_eq!(psql("SELECT count(*) FROM proofs_session_probe"), "0", "the write went through");
}

#[test]
fn mariadb_sessions_are_read_only_with_dbintels_limits_by_the_servers_account() {
    let root = std::process::Command::new("mariadb")
        .args([
            "-uroot",
            "-h127.0.0.1",
            "dbintel_test",
            "-e",
            "CREATE TABLE IF NOT EXISTS proofs_session_probe (n INT) ENGINE=InnoDB; DELETE FROM proofs_session_probe",
        ])
        .output()
        .expect("mariadb (the client)");
    assert!(root.status.success(), "MariaDB at 127.0.0.1:3306 (tests/prepare-servers.sh): {}", text(&root.stderr));
    let dir = scratch("sessions-my");
    let pipe = dir.join("p.pipe");
    // a role that may write (dbintel_writer: INSERT on dbintel_test.*),
    // allowed on purpose, so only the session's read-only mode stands in
    // the way of the write
    std::fs::write(
        &pipe,
        r#"source my = sql {
  dsn = env("SESS_MY_DSN")
  timeout = 4s
  allow_privileged = true
  collect settings { query = "SELECT @@SESSION.tx_read_only AS read_only, @@SESSION.max_statement_time AS statement_time, @@SESSION.innodb_lock_wait_timeout AS innodb_lock_wait, @@SESSION.lock_wait_timeout AS lock_wait, 1 AS v", metric = "session.setting", value_column = "v", attribute_columns = ["read_only", "statement_time", "innodb_lock_wait", "lock_wait"] }
  collect write { query = "INSERT INTO proofs_session_probe VALUES (1)", metric = "session.write", value_column = "n" }
}
sink out = stdout {}
pipeline p = my.settings -> out
pipeline w = my.write -> out
"#,
    )
    .unwrap();
    let dsn = ("SESS_MY_DSN", "mysql://dbintel_writer:writer-secret-pw@127.0.0.1:3306/dbintel_test");
    let out = dbintel(&["dry-run", pipe.to_str().unwrap(), "--scrapes", "1"], &[dsn]);
    let stderr = text(&out.stderr);
    assert_eq!(code(&out), 0, "{stderr}");
    let settings: Vec<BTreeMap<String, String>> =
        points(&out.stdout).into_iter().filter(|(name, _)| name == "session.setting").map(|(_, a)| a).collect();
    assert_eq!(settings.len(), 1, "one row of session variables:\n{}\n{stderr}", text(&out.stdout));
    let s = &settings[0];
    // the server's defaults are 0, 0, 50 and 86400: these are dbintel's
    // (the 4 s timeout, its half for locks)
    let seen = (s["read_only"].as_str(), s["statement_time"].parse::<f64>().ok(), s["innodb_lock_wait"].as_str(), s["lock_wait"].as_str());
    assert_eq!(seen, ("1", Some(4.0), "2", "2"), "session variables in dbintel's own session: {s:?}");
    // MariaDB refuses the write as one in a READ ONLY transaction (1792),
    // though the account may insert
    let refused = failure(&stderr, "write").unwrap_or_else(|| panic!("the write was not refused:\n{stderr}"));
    assert!(refused.contains("code=1792"), "refused, but not as read-only: {refused}");
    let count = std::process::Command::new("mariadb")
        .args(["-uroot", "-h127.0.0.1", "dbintel_test", "-N", "-e", "SELECT COUNT(*) FROM proofs_session_probe"])
        .output()
        .expect("mariadb");
    assert_eq!(text(&count.stdout).trim(), "0", "the write went through");
}
