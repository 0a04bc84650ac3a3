//! MariaDB's slow query log and error log through `mysql_logs`, against a
//! private MariaDB 10.11 with `long_query_time = 0`: statements become
//! per-fingerprint statistics with one sanitized sample each, refused
//! logins are counted, and a logrotate-style rotation (rename, then
//! `FLUSH SLOW LOGS`) loses nothing — through the shipped sanitize rules
//! into a `file` sink.

mod common;

use std::time::Duration;

use common::log_servers::{events, metric_sum, read_file_sink, LogMaria};
use common::otlp::Run;

const SECRETS: &[&str] = &["leak-ann.smith@example.com", "slow-secret", "zq_login_secret", "wrong-pass-secret", "after-rotation-secret"];

#[test]
fn mariadb_slow_and_error_logs_give_statement_statistics_samples_and_refused_logins() {
    let db = LogMaria::start("slow");
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.users (id int PRIMARY KEY, email varchar(100))");
    db.sql("CREATE USER 'zq_login_secret'@'%' IDENTIFIED BY 'right-password'");
    let dir = common::scratch("logs-mariadb");
    let out_path = dir.join("out.ndjson");
    let pipe = dir.join("my.pipe");
    std::fs::write(
        &pipe,
        format!(
            r#"use "{sanitize}"
source my = mysql {{ dsn = env("MYSQL_DSN"), interval = 1h, allow_privileged = true, collect instance }}
source my_logs = mysql_logs {{
  server = my
  start_at = beginning
  state_directory = "{state}"
  interval = 2s
  poll = 200ms
  collect slow_queries {{ file = "{slow}", top = 50 }}
  collect errors {{ file = "{error}" }}
}}
sink out = file {{ path = "{out}" }}
pipeline p = my_logs -> sanitize_pii -> out
"#,
            sanitize = common::root().join("pipelines/sanitize_pii.pipe").display(),
            state = dir.join("state").display(),
            slow = db.slow_log.display(),
            error = db.error_log.display(),
            out = out_path.display(),
        ),
    )
    .unwrap();
    let run = Run::spawn(&[pipe.to_str().unwrap()], &[("MYSQL_DSN", &db.dsn())]);
    run.wait_state("my_logs", "up", Duration::from_secs(20));

    db.sql("INSERT INTO shop.users VALUES (1, 'leak-ann.smith@example.com')");
    for i in 0..3 {
        db.sql(&format!("USE shop; SELECT * FROM users WHERE email = 'slow-secret-{i}@example.com'"));
    }
    db.failing_login("zq_login_secret", "wrong-pass-secret");
    // logrotate without copytruncate: rename, then the server reopens
    db.sql("SELECT 'before-rotation' AS marker");
    std::fs::rename(&db.slow_log, db.slow_log.with_extension("log.1")).unwrap();
    db.sql("FLUSH SLOW LOGS");
    db.sql("USE shop; SELECT id FROM users WHERE email = 'after-rotation-secret@example.com'");

    let fingerprint = |out: &[common::log_servers::Out], text: &str| {
        events(out, "db.server.slow_query")
            .into_iter()
            .find(|e| e.attributes.get("db.query.text").and_then(|v| v.as_str()).is_some_and(|t| t.starts_with(text)))
            .cloned()
    };
    let out = run.wait_for("the slow log's statements and the refused login", Duration::from_secs(40), || {
        let out = read_file_sink(&out_path);
        let sample = fingerprint(&out, "SELECT * FROM users WHERE email =")?;
        let id = sample.attributes.get("db.query.id")?.as_str()?.to_string();
        let calls = metric_sum(&out, "mysql.slow_query.calls", Some(("db.query.id", &id)));
        let refused = metric_sum(&out, "mysql.log.connection_failures", Some(("reason", "authentication_failed")));
        (calls >= 3.0
            && refused >= 1.0
            && fingerprint(&out, "SELECT id FROM users WHERE email =").is_some()
            && fingerprint(&out, "SELECT ? AS marker").is_some())
        .then_some(out)
    });
    let sample = fingerprint(&out, "SELECT * FROM users WHERE email =").unwrap();
    assert_eq!(sample.attributes.get("db.query.text").and_then(|v| v.as_str()), Some("SELECT * FROM users WHERE email = ?"));
    assert_eq!(sample.attributes.get("db.namespace").and_then(|v| v.as_str()), Some("shop"));
    assert_eq!(sample.resource.get("mysql.instance.endpoint").and_then(|v| v.as_str()), Some(format!("127.0.0.1:{}", db.port).as_str()));
    assert_eq!(sample.resource.get("db.system.name").and_then(|v| v.as_str()), Some("mysql"));
    let samples_of_it = events(&out, "db.server.slow_query")
        .into_iter()
        .filter(|e| e.attributes.get("db.query.id") == sample.attributes.get("db.query.id"))
        .count();
    assert_eq!(samples_of_it, 1, "one sample per statement per window");
    assert!(metric_sum(&out, "mysql.slow_query.duration", None) > 0.0);
    let refused = events(&out, "db.server.error")
        .into_iter()
        .find(|e| e.attributes.get("db.response.status_code").and_then(|v| v.as_str()) == Some("1045"))
        .expect("the refused login's event");
    assert!(
        refused.attributes.get("db.log.message").and_then(|v| v.as_str()).is_some_and(|m| m.starts_with("Access denied for user")),
        "{refused:?}"
    );

    let raw = std::fs::read_to_string(&out_path).unwrap();
    for s in SECRETS {
        assert!(!raw.contains(s), "`{s}` left dbintel: {:?}", common::lines_with(&raw, &[s]));
    }
}
