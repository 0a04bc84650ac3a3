//! Hostile statement texts, end to end: `dbintel run` against the real
//! PostgreSQL and MariaDB, whose pg_stat_statements and performance_schema
//! hold statements written to leak (markers in comments, utility
//! statements pg_stat_statements keeps verbatim, dollar quotes with
//! non-ASCII tags, `\'`, MySQL executable comments and hints, a comment
//! with a huge `$N`) or to make the collector misbehave. Logs are captured
//! at debug level; no marker may appear in them or in what is exported,
//! and the collector must keep running and explaining plans.
//!
//! Everything happens in databases of our own (`hostile_pg`,
//! `hostile_my`); the scene is set with psql / mariadb as superuser.

mod common;

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use common::otlp::Run;
use common::scratch;

const PG_DB: &str = "hostile_pg";
const MY_DB: &str = "hostile_my";
const PG_MONITOR: &str = "postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5432/hostile_pg";
const MY_MONITOR: &str = "mysql://dbintel_monitor:monitor-secret-pw@127.0.0.1:3306/hostile_my";

/// Every marker starts with this; nothing else in the scene does.
const MARK: &str = "zqhostile";

fn psql_in(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-c", sql])
        .output()
        .expect("psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs statements one by one, ignoring their errors (some are meant to fail).
fn psql_each(db: &str, statements: &[String]) {
    for sql in statements {
        let _ = Command::new("psql").args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-c", sql]).output().expect("psql");
    }
}

fn mariadb(sql: &str) -> String {
    let out = Command::new("mariadb").args(["-uroot", "-N", "-B", "-e", sql]).output().expect("mariadb");
    assert!(out.status.success(), "mariadb: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The tests of this file share two databases and their statement
/// statistics (a scene's reset would wipe another's statements, its GRANT
/// races another's with "tuple concurrently updated", and the error test's
/// failed MariaDB statements would land in a scene's digests): each holds
/// this for its whole run.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SCENE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SCENE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn prepare_postgres() {
    if psql_in("postgres", &format!("SELECT 1 FROM pg_database WHERE datname = '{PG_DB}'")).is_empty() {
        psql_in("postgres", &format!("CREATE DATABASE {PG_DB}"));
    }
    psql_in(
        PG_DB,
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
         CREATE TABLE IF NOT EXISTS hostile_t (id int, note text);
         GRANT SELECT ON hostile_t TO dbintel_monitor;",
    );
    psql_in(PG_DB, &format!("GRANT CONNECT ON DATABASE {PG_DB} TO dbintel_monitor"));
    // only this database's statements go: the reset is scoped to it
    psql_in(PG_DB, "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)");
}

/// PostgreSQL statements planted with markers where pg_stat_statements
/// keeps text: comments, utility statements, DO blocks.
fn postgres_statements() -> Vec<String> {
    let m = |n: u32| format!("{MARK}pg{n}");
    // pg_stat_statements keeps the first text of each query id, and
    // comments do not change it: `NOT IN` lists of different lengths make
    // each statement a query of its own
    let own = |n: usize| format!("id NOT IN ({})", vec!["0"; n].join(", "));
    vec![
        format!("SELECT id FROM hostile_t WHERE note = 'x' AND {} /* {} */", own(1), m(1)),
        format!("SELECT id FROM hostile_t -- {}\n WHERE {}", m(2), own(2)),
        format!("SELECT id FROM hostile_t /* nested /* {} */ {} */ WHERE {}", m(3), m(4), own(3)),
        format!("SET application_name = '{}'", m(5)),
        format!("DO $é$ BEGIN PERFORM '{}'; END $é$", m(6)),
        format!("DO $тег$ BEGIN PERFORM E'a\\'{}'; END $тег$", m(7)),
        // PostgreSQL ≤ 15: a huge $N in a comment once sized PREPARE's NULL list
        format!("SELECT id FROM hostile_t WHERE {} /* $99999999999999 {} */", own(8), m(8)),
        format!("SELECT id FROM hostile_t WHERE note = 'y' AND {} /* it's '{}' */", own(9), m(9)),
        format!("SELECT pg_sleep(0) /* {} */", m(10)),
    ]
}

fn prepare_mariadb() {
    mariadb(&format!(
        "CREATE DATABASE IF NOT EXISTS {MY_DB};
         CREATE TABLE IF NOT EXISTS {MY_DB}.hostile_t (id INT PRIMARY KEY, note VARCHAR(80));
         GRANT SELECT ON {MY_DB}.* TO 'dbintel_monitor'@'%';"
    ));
}

/// MariaDB statements: its sample texts (events_statements_history) keep
/// every literal.
fn mysql_statements() -> Vec<String> {
    let m = |n: u32| format!("{MARK}my{n}");
    vec![
        format!("SELECT id FROM hostile_t WHERE note = '{}';", m(1)),
        format!("SELECT id FROM hostile_t WHERE note = \"{}\";", m(2)),
        format!("SELECT id FROM hostile_t WHERE note = 'a\\'{}';", m(3)),
        format!("SELECT id FROM hostile_t WHERE note = _utf8mb4'{}' # {}\n;", m(4), m(5)),
        format!("SELECT /*!100000 '{}' */ id FROM hostile_t;", m(6)),
        format!("SELECT /*+ {} */ id FROM hostile_t WHERE id = 1;", m(7)),
        format!("SELECT id FROM hostile_t WHERE id = 5--'{}'\n;", m(8)),
        format!("SELECT id FROM hostile_t WHERE id = (SELECT SLEEP(0) /* {} */);", m(9)),
        format!("SELECT id FROM hostile_t WHERE note = x'{}';", "7a71686f7374696c65"),
    ]
}

/// A long-lived application connection: MariaDB keeps the recent
/// statements of live threads, which is where plan texts come from.
struct App {
    child: Child,
    stdin: ChildStdin,
}

impl App {
    fn start() -> App {
        let mut child = Command::new("mariadb")
            .args(["-c", "--force", "-uroot", MY_DB])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadb");
        let stdin = child.stdin.take().expect("stdin");
        App { child, stdin }
    }

    fn send(&mut self, sql: &str) {
        self.stdin.write_all(format!("{sql}\n").as_bytes()).and_then(|_| self.stdin.flush()).expect("write to mariadb");
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pipe_file(dir: &std::path::Path, out: &std::path::Path) -> std::path::PathBuf {
    let pipe = dir.join("hostile.pipe");
    let sanitize = common::root().join("pipelines/sanitize_pii.pipe");
    std::fs::write(
        &pipe,
        format!(
            r#"use "{sanitize}"
source pg = postgres {{
  dsn = env("HOSTILE_PG_DSN")
  interval = 1s
  timeout = 2s
  jitter = 0%
  collect statements {{ top = 200 }}
  collect plans {{ top = 50, per_scrape = 50, every = 1s, interval = 1s, emit = event }}
}}
source my = mysql {{
  dsn = env("HOSTILE_MY_DSN")
  interval = 1s
  timeout = 2s
  jitter = 0%
  collect statements {{ top = 200 }}
  collect plans {{ top = 50, per_scrape = 50, every = 1s, interval = 1s, emit = event }}
}}
sink out = file {{ path = "{out}" }}
pipeline pg_statements = pg.statements -> sanitize_pii -> batch -> out
pipeline pg_plans = pg.plans -> sanitize_pii -> batch -> out
pipeline my_statements = my.statements -> sanitize_pii -> batch -> out
pipeline my_plans = my.plans -> sanitize_pii -> batch -> out
"#,
            sanitize = sanitize.display(),
            out = out.display()
        ),
    )
    .expect("write pipe");
    pipe
}

/// Lines of `text` that carry a marker.
fn marked(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.contains(MARK)).collect()
}

/// Sets the scene, runs dbintel with `DBINTEL_LOG=level` until plans of
/// both servers are out, stops it; its log and everything it exported.
fn run_scene(level: &str, extra_mysql: &[String]) -> (String, String) {
    let _one_at_a_time = one_at_a_time();
    prepare_postgres();
    prepare_mariadb();
    // the error test's failed statements (a marker where a column name
    // goes) stay in MariaDB's digests otherwise, and a digest keeps names
    mariadb("TRUNCATE performance_schema.events_statements_summary_by_digest");
    let dir = scratch(&format!("hostile-{level}"));
    let out = dir.join("out.jsonl");
    let pipe = pipe_file(&dir, &out);

    let mut app = App::start();
    let statements = postgres_statements();
    let mysql: Vec<String> = mysql_statements().into_iter().chain(extra_mysql.iter().cloned()).collect();
    // each statement a few times, so it is among the top ones
    for _ in 0..3 {
        psql_each(PG_DB, &statements);
        for sql in &mysql {
            app.send(sql);
        }
    }

    let mut run = Run::start(
        &[pipe.to_str().expect("utf-8 path"), "--no-watch"],
        &[("HOSTILE_PG_DSN", PG_MONITOR), ("HOSTILE_MY_DSN", MY_MONITOR), ("DBINTEL_LOG", level)],
    );
    // plans: the PostgreSQL statement with the huge $N in a comment is
    // explained (and the process stays up), MariaDB's plain reads too
    let exported = || std::fs::read_to_string(&out).unwrap_or_default();
    run.wait_for("PostgreSQL and MariaDB plans", Duration::from_secs(60), || {
        let all = exported();
        let plans = all.matches("db.server.query_plan").count();
        (plans >= 2 && all.contains("hostile_t") && all.contains("\"mysql\"")).then_some(())
    });
    // a few more scrapes, with the statements still coming
    for sql in &mysql {
        app.send(sql);
    }
    psql_each(PG_DB, &statements);
    std::thread::sleep(Duration::from_secs(3));
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    let _ = std::fs::write(dir.join("dbintel.log"), &log);
    assert!(status.success(), "dbintel run did not exit cleanly:\n{log}");
    let all = exported();
    assert!(all.contains("db.query.text"), "statements were exported:\n{}", &all[..all.len().min(2000)]);
    (log, all)
}

fn assert_no_marker(log: &str, exported: &str) {
    let leaked_log = marked(log);
    let leaked_out = marked(exported);
    assert!(
        leaked_log.is_empty() && leaked_out.is_empty(),
        "planted markers left the process\n-- in the log ({} lines):\n{}\n-- in the output ({} lines):\n{}",
        leaked_log.len(),
        leaked_log.iter().take(5).copied().collect::<Vec<_>>().join("\n"),
        leaked_out.len(),
        leaked_out.iter().take(5).map(|l| &l[..l.len().min(600)]).collect::<Vec<_>>().join("\n")
    );
}

/// The query ids of every `db.server.query_plan` event exported.
fn planned_query_ids(exported: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for line in exported.lines() {
        let Ok(request) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        for rl in request["resourceLogs"].as_array().into_iter().flatten() {
            for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
                for l in sl["logRecords"].as_array().into_iter().flatten().filter(|l| l["eventName"] == "db.server.query_plan") {
                    let id = l["attributes"].as_array().into_iter().flatten().find(|kv| kv["key"] == "db.query.id");
                    ids.extend(id.and_then(|kv| kv["value"]["stringValue"].as_str()).map(str::to_string));
                }
            }
        }
    }
    ids
}

#[test]
fn hostile_statement_texts_leave_no_marker_in_logs_or_output() {
    let (log, exported) = run_scene("info", &[]);
    assert!(exported.contains("db.server.query_plan"), "no plans were explained; the log:\n{log}");
    assert_no_marker(&log, &exported);
    // PostgreSQL 15 explains through PREPARE: the statement whose comment
    // holds `$99999999999999` was planned with one parameter, the process
    // did not try to allocate terabytes of NULLs
    let huge = psql_in(PG_DB, "SELECT queryid FROM pg_stat_statements WHERE query LIKE '%$99999999999999%' LIMIT 1");
    assert!(!huge.is_empty(), "the huge-$N statement is in pg_stat_statements");
    let planned = planned_query_ids(&exported);
    assert!(planned.contains(&huge), "the huge-$N statement {huge} was explained; planned: {planned:?}");
}

/// The same at debug level: sqlx would log every statement it runs at
/// DEBUG (`db.statement="…EXPLAIN FORMAT=JSON SELECT id FROM hostile_t
/// WHERE note = 'zqhostilemy1'…"`) were statement logging not off in the
/// sources' connect options, and driver errors quoting SQL go through
/// `dbintel_stdlib::sql::scrub_error_message` before anyone sees them.
#[test]
fn hostile_statement_texts_leave_no_marker_even_at_debug_level() {
    let (log, exported) = run_scene("debug", &[]);
    assert!(log.contains(" DEBUG "), "the log is not at debug level:\n{log}");

    assert_no_marker(&log, &exported);
}

/// Real error messages about hostile texts, from the real servers through
/// sqlx (what the sources see): each quotes a planted marker raw, and
/// [`scrub_error_message`] leaves none of it.
#[test]
fn real_database_errors_are_scrubbed_of_every_quoted_fragment() {
    let _one_at_a_time = one_at_a_time();
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(scrub_real_errors());
}

async fn scrub_real_errors() {
    use dbintel_stdlib::sql::{scrub_error_message, Dialect};
    use sqlx::Executor;
    prepare_postgres();
    prepare_mariadb();
    let mark = |n: u32| format!("{MARK}err{n}");
    let pg = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("postgres://postgres@127.0.0.1:5432/{PG_DB}"))
        .await
        .expect("PostgreSQL");
    let my = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&format!("mysql://root@127.0.0.1:3306/{MY_DB}"))
        .await
        .expect("MariaDB");
    let cases: Vec<(Dialect, String)> = vec![
        (Dialect::Postgres, format!("SELECT * FROM hostile_t WHERE note = 'a' {}", mark(1))),
        (Dialect::Postgres, format!("SELECT '{}", mark(2))),
        (Dialect::Postgres, format!("SELECT '{}'::int", mark(3))),
        (Dialect::Postgres, format!("SELECT $q$ {}", mark(4))),
        (Dialect::Postgres, format!("SELECT {} FROM hostile_t", mark(5))),
        (Dialect::MySql, format!("SELECT * FFROM hostile_t WHERE note = '{}'", mark(6))),
        (Dialect::MySql, format!("SELECT * FROM hostile_t WHERE note = 'x'{}' AND b = '{}'", mark(7), mark(8))),
        (Dialect::MySql, format!("INSERT INTO hostile_t VALUES ('{}', 'a')", mark(9))),
        (Dialect::MySql, format!("SELECT * FROM hostile_t WHERE {} = 1", mark(10))),
    ];
    for (dialect, sql) in cases {
        let error = match dialect {
            Dialect::MySql => my.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))).await.map(|_| ()),
            _ => pg.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))).await.map(|_| ()),
        }
        .expect_err("a hostile statement fails")
        .to_string();
        assert!(error.contains(MARK), "the server quotes the marker, so the test can fail: {error}");
        let scrubbed = scrub_error_message(&error, dialect);
        assert!(!scrubbed.contains(MARK), "{sql}\n  error:    {error}\n  scrubbed: {scrubbed}");
        eprintln!("{error}\n  -> {scrubbed}");
    }
}
