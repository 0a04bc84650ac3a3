//! PostgreSQL's own log through `postgres_logs`, against real servers of
//! the test's own (the machine's 15, the npm 17) with the logging
//! collector, auto_explain and every `log_*` setting the README asks for:
//! real plans, unique violations with PII in their DETAIL, type errors
//! quoting input, a statement timeout, lock waits, a deadlock, temporary
//! files, autovacuum runs, checkpoints, refused connections, rotations by
//! `pg_rotate_logfile()`, and a restart of dbintel in the middle of it —
//! through the shipped sanitize rules into a `file` sink, counted.

mod common;

use std::path::Path;
use std::time::Duration;

use common::log_servers::{events, logging_settings, metric_sum, npm_bin, read_file_sink, LogPg, Out, PG15_BIN};
use common::otlp::Run;

/// Values planted in statements, DETAILs and errors: none may leave.
const SECRETS: &[&str] = &[
    "leak-ann.smith@example.com",
    "4111 1111 1111 1111",
    "plan-secret@example.com",
    "deadlock-secret-one",
    "deadlock-secret-two",
    "waiter-secret",
    "Zebulon Quixote",
];

/// A pipe with one `postgres_logs` source per `(name, settings, collects)`,
/// each into its own `file` sink `NAME.ndjson`, through the shipped
/// sanitize rules.
fn pipe_of(dir: &Path, file: &str, sources: &[(&str, String, &str)]) -> std::path::PathBuf {
    let sanitize = common::root().join("pipelines/sanitize_pii.pipe");
    let mut text = format!(
        "use \"{}\"\nsource pg = postgres {{ dsn = env(\"PG_DSN\"), allow_privileged = true, interval = 1h, collect instance }}\nsink pg_out = file {{ path = \"{}\" }}\npipeline pg_p = pg -> pg_out\n",
        sanitize.display(),
        dir.join("pg.ndjson").display()
    );
    for (source, settings, collects) in sources {
        text.push_str(&format!(
            r#"source {source} = postgres_logs {{
  server = pg
  start_at = beginning
  state_directory = "{state}"
  interval = 2s
  poll = 200ms
  {settings}
  {collects}
}}
sink {source}_out = file {{ path = "{out}" }}
pipeline {source}_p = {source} -> sanitize_pii -> {source}_out
"#,
            state = dir.join("state").display(),
            out = dir.join(format!("{source}.ndjson")).display(),
        ));
    }
    let path = dir.join(file);
    std::fs::write(&path, text).expect("pipe");
    path
}

fn pipe(dir: &Path, source: &str, settings: &str, collects: &str) -> std::path::PathBuf {
    pipe_of(dir, &format!("{source}.pipe"), &[(source, settings.to_string(), collects)])
}

const ALL_COLLECTORS: &str =
    "collect plans\n  collect errors\n  collect locks\n  collect temp_files\n  collect autovacuum\n  collect checkpoints\n  collect connections";

fn text_of(o: &Out, key: &str) -> String {
    o.attributes.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string()
}

fn no_secret_in(path: &Path) {
    let raw = std::fs::read_to_string(path).unwrap_or_default();
    for s in SECRETS {
        assert!(!raw.contains(s), "`{s}` left dbintel: {:?}", common::lines_with(&raw, &[s]));
    }
}

#[test]
fn jsonlog_of_postgres_15_gives_every_event_sanitized_on_the_servers_entity() {
    let pg = LogPg::start("jsonlog15", Path::new(PG15_BIN), &logging_settings("jsonlog"));
    pg.sql("CREATE EXTENSION pg_stat_statements");
    pg.sql("CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE, name text)");
    pg.sql("INSERT INTO users (email, name) VALUES ('leak-ann.smith@example.com', 'Zebulon Quixote')");
    pg.sql("CREATE TABLE accounts (id int PRIMARY KEY, v int, note text); INSERT INTO accounts VALUES (1, 0, ''), (2, 0, '')");
    let dir = common::scratch("logs-jsonlog15");
    let out_path = dir.join("pg_logs.ndjson");
    let pipe = pipe(&dir, "pg_logs", &format!("directory = \"{}\"\n  format = jsonlog", pg.log_dir.display()), ALL_COLLECTORS);
    let run = Run::start(&[pipe.to_str().unwrap()], &[("PG_DSN", &pg.dsn())]);
    run.wait_state("pg_logs", "up", Duration::from_secs(20));

    // errors quoting what they were given
    pg.failing("postgres", "postgres", "INSERT INTO users (email, name) VALUES ('leak-ann.smith@example.com', 'Zebulon Quixote')");
    pg.failing("postgres", "postgres", "SELECT '4111 1111 1111 1111'::integer");
    pg.failing("postgres", "postgres", "SET statement_timeout = '100ms'; SELECT pg_sleep(3)");
    // an actual plan, joined to pg_stat_statements by query id
    pg.sql("SELECT count(*) FROM users WHERE email = 'plan-secret@example.com'");
    // the log rotates; what follows is in the next file (whose name has
    // the time to the second: a rotation within the server's first second
    // would reopen the same file)
    std::thread::sleep(Duration::from_millis(1100));
    pg.sql("SELECT pg_rotate_logfile()");
    // a lock wait past deadlock_timeout
    let holder = pg.background("BEGIN; UPDATE accounts SET v = v + 1 WHERE id = 1; SELECT pg_sleep(1.5); COMMIT");
    std::thread::sleep(Duration::from_millis(400));
    pg.sql("UPDATE accounts SET note = 'waiter-secret' WHERE id = 1");
    let _ = { holder }.wait();
    // a deadlock: each session holds the row the other wants
    let one = pg.background("BEGIN; UPDATE accounts SET note = 'deadlock-secret-one' WHERE id = 1; SELECT pg_sleep(1); UPDATE accounts SET note = 'deadlock-secret-one' WHERE id = 2; COMMIT");
    std::thread::sleep(Duration::from_millis(300));
    pg.failing("postgres", "postgres", "BEGIN; UPDATE accounts SET note = 'deadlock-secret-two' WHERE id = 2; SELECT pg_sleep(1); UPDATE accounts SET note = 'deadlock-secret-two' WHERE id = 1; COMMIT");
    let _ = { one }.wait();
    // a temporary file (work_mem = 64kB)
    pg.sql("SELECT g FROM generate_series(1, 300000) g ORDER BY g DESC LIMIT 1");
    // dead rows for autovacuum (naptime 1s)
    pg.sql("CREATE TABLE churn (id int); INSERT INTO churn SELECT generate_series(1, 5000); DELETE FROM churn WHERE id > 1000");
    pg.sql("CHECKPOINT");
    // refused connections
    pg.failing("no_such_db", "postgres", "SELECT 1");
    pg.failing("postgres", "no_such_role", "SELECT 1");

    let out = run.wait_for("every kind of log record", Duration::from_secs(60), || {
        let out = read_file_sink(&out_path);
        let kinds = [
            "db.server.error",
            "db.server.query_plan",
            "db.server.lock_wait",
            "db.server.deadlock",
            "db.server.temp_file",
            "db.server.autovacuum",
            "db.server.checkpoint",
            "db.server.connection_failure",
        ];
        let deadlocks = metric_sum(&out, "postgresql.log.deadlocks", None);
        let vacuumed = events(&out, "db.server.autovacuum")
            .iter()
            .any(|e| text_of(e, "postgresql.table.name") == "public.churn" && text_of(e, "postgresql.vacuum.kind") == "vacuum");
        // the windows (2 s) that count them have closed
        let counted = metric_sum(&out, "postgresql.log.autovacuum.tuples_removed", None) >= 4000.0
            && metric_sum(&out, "postgresql.log.connection_failures", Some(("reason", "role_does_not_exist"))) >= 1.0
            && metric_sum(&out, "postgresql.log.checkpoints", None) >= 1.0;
        (kinds.iter().all(|k| !events(&out, k).is_empty()) && deadlocks >= 1.0 && vacuumed && counted).then_some(out)
    });

    // the server's entity
    let error = events(&out, "db.server.error")
        .into_iter()
        .find(|e| text_of(e, "db.response.status_code") == "23505")
        .expect("the unique violation");
    // the same entity as the server's metrics from its postgres source
    let server = read_file_sink(&dir.join("pg.ndjson"));
    let server = server.first().expect("the postgres source's instance metrics");
    for key in ["service.instance.id", "server.address", "server.port", "db.system.name"] {
        assert!(server.resource.get(key).is_some(), "{key} on the server's resource: {:?}", server.resource);
        assert_eq!(error.resource.get(key), server.resource.get(key), "{key}");
    }
    assert_eq!(error.resource.get("db.system.name").and_then(|v| v.as_str()), Some("postgresql"));
    assert_eq!(text_of(error, "db.log.detail"), "Key (email)=(?) already exists.");
    assert!(text_of(error, "db.query.text").starts_with("INSERT INTO users"), "{error:?}");
    let type_error =
        events(&out, "db.server.error").into_iter().find(|e| text_of(e, "db.response.status_code") == "22P02").expect("the type error");
    assert_eq!(text_of(type_error, "db.log.message"), "invalid input syntax for type integer: \"?\"");
    let cancel =
        events(&out, "db.server.error").into_iter().find(|e| text_of(e, "db.response.status_code") == "57014").expect("the timeout");
    assert_eq!(text_of(cancel, "db.cancellation.reason"), "statement_timeout");
    assert!(metric_sum(&out, "postgresql.log.cancellations", Some(("reason", "statement_timeout"))) >= 1.0);
    assert!(metric_sum(&out, "postgresql.log.errors", Some(("db.response.status_code", "23505"))) >= 1.0);

    // the plan: actual, obfuscated, from the log, joined by query id
    let queryid = pg.sql("SELECT queryid FROM pg_stat_statements WHERE query LIKE 'SELECT count(*) FROM users WHERE email = %'");
    let plan = events(&out, "db.server.query_plan")
        .into_iter()
        .find(|p| text_of(p, "db.query.text").starts_with("SELECT count(*) FROM users WHERE email ="))
        .expect("the plan of the marker query");
    assert_eq!(text_of(plan, "dbintel.plan.source"), "log");
    assert_eq!(text_of(plan, "db.query.id"), queryid, "the plan joins its statement");
    assert!(text_of(plan, "postgresql.query_plan").contains("\"Actual Rows\""), "{plan:?}");
    assert!(text_of(plan, "postgresql.query_plan").contains("users_email_key"), "the index the email lookup used: {plan:?}");

    // locks
    let wait = events(&out, "db.server.lock_wait").into_iter().find(|w| text_of(w, "db.lock.state") == "waiting").expect("a wait");
    assert_eq!(text_of(wait, "db.lock.mode"), "ShareLock");
    assert!(
        wait.attributes.get("db.blocking.session.ids").and_then(|v| v["values"].as_array().or(v.as_array())).is_some_and(|a| !a.is_empty()),
        "{wait:?}"
    );
    assert!(metric_sum(&out, "postgresql.log.lock_waits", None) >= 1.0);
    assert!(metric_sum(&out, "postgresql.log.lock_wait.duration", None) >= 200.0, "the acquired wait's time");
    let deadlock = &events(&out, "db.server.deadlock")[0];
    assert!(text_of(deadlock, "db.log.detail").contains("waits for ShareLock on transaction"), "{deadlock:?}");
    assert!(text_of(deadlock, "db.deadlock.other_query.text").contains("UPDATE accounts SET note = ?"), "{deadlock:?}");
    assert!(text_of(deadlock, "db.query.text").contains("UPDATE accounts SET note = ?"), "{deadlock:?}");

    // the rest
    let temp = &events(&out, "db.server.temp_file")[0];
    assert!(
        temp.attributes.get("db.temp_file.size").and_then(|v| v.as_str().and_then(|s| s.parse::<i64>().ok()).or(v.as_i64())).unwrap_or(0)
            > 0,
        "{temp:?}"
    );
    assert!(metric_sum(&out, "postgresql.log.temp_files.size", None) > 0.0);
    let vacuum = events(&out, "db.server.autovacuum")
        .into_iter()
        .find(|e| text_of(e, "postgresql.table.name") == "public.churn" && text_of(e, "postgresql.vacuum.kind") == "vacuum")
        .expect("churn vacuumed");
    assert_eq!(text_of(vacuum, "postgresql.database.name"), "postgres");
    assert!(metric_sum(&out, "postgresql.log.autovacuum.tuples_removed", None) >= 4000.0);
    assert!(events(&out, "db.server.checkpoint").iter().any(|c| text_of(c, "postgresql.checkpoint.reason").contains("immediate")));
    assert!(metric_sum(&out, "postgresql.log.checkpoints", Some(("kind", "checkpoint"))) >= 1.0);
    assert!(metric_sum(&out, "postgresql.log.connection_failures", Some(("reason", "database_does_not_exist"))) >= 1.0);
    assert!(metric_sum(&out, "postgresql.log.connection_failures", Some(("reason", "role_does_not_exist"))) >= 1.0);

    // both files of the rotation were read
    let files: std::collections::BTreeSet<String> = out.iter().filter(|o| o.log).map(|o| text_of(o, "log.file.name")).collect();
    assert!(files.len() >= 2, "records from both sides of pg_rotate_logfile(): {files:?} of {:?}", pg.log_files());
    assert!(run.metric("dbintel_log_lines_total{node=\"pg_logs\",outcome=\"read\"}") > 0.0);
    no_secret_in(&out_path);
    assert!(!run.stderr().contains("leak-ann"), "dbintel's own log holds no log text");
}

#[test]
fn csvlog_and_stderr_of_postgres_17_read_the_same_entries() {
    let prefix = "%m [%p] %q%u@%d %e %Q ";
    let mut settings = logging_settings("csvlog,stderr");
    settings.push(("log_line_prefix", format!("'{prefix}'")));
    let pg = LogPg::start("csv17", &npm_bin(17), &settings);
    pg.sql("CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE)");
    pg.sql("INSERT INTO users (email) VALUES ('leak-ann.smith@example.com')");
    let dir = common::scratch("logs-csv17");
    let both = pipe_of(
        &dir,
        "both.pipe",
        &[
            ("pg_csv", format!("directory = \"{}\"\n  format = csvlog", pg.log_dir.display()), "collect plans\n  collect errors"),
            (
                "pg_stderr",
                format!("directory = \"{}\"\n  format = stderr\n  log_line_prefix = \"{prefix}\"", pg.log_dir.display()),
                "collect plans\n  collect errors",
            ),
        ],
    );
    let run = Run::start(&[both.to_str().unwrap()], &[("PG_DSN", &pg.dsn())]);
    run.wait_state("pg_csv", "up", Duration::from_secs(20));
    run.wait_state("pg_stderr", "up", Duration::from_secs(20));

    pg.failing("postgres", "postgres", "INSERT INTO users (email) VALUES ('leak-ann.smith@example.com')");
    pg.failing("postgres", "postgres", "SELECT '4111 1111 1111 1111'::integer");
    pg.sql("SELECT id FROM users WHERE email = 'plan-secret@example.com'");

    for (source, file) in [("pg_csv", "pg_csv.ndjson"), ("pg_stderr", "pg_stderr.ndjson")] {
        let path = dir.join(file);
        let out = run.wait_for(&format!("{source}'s records"), Duration::from_secs(40), || {
            let out = read_file_sink(&path);
            let errors = events(&out, "db.server.error");
            let plan = events(&out, "db.server.query_plan")
                .into_iter()
                .any(|p| text_of(p, "db.query.text").starts_with("SELECT id FROM users WHERE email"));
            (errors.iter().any(|e| text_of(e, "db.response.status_code") == "23505")
                && errors.iter().any(|e| text_of(e, "db.response.status_code") == "22P02")
                && plan)
                .then_some(out)
        });
        let unique = events(&out, "db.server.error").into_iter().find(|e| text_of(e, "db.response.status_code") == "23505").unwrap();
        assert_eq!(text_of(unique, "db.log.detail"), "Key (email)=(?) already exists.", "{source}: {unique:?}");
        assert!(text_of(unique, "db.query.text").starts_with("INSERT INTO users"), "{source}: the STATEMENT part joined: {unique:?}");
        assert_eq!(text_of(unique, "db.user"), "postgres", "{source}");
        let plan = events(&out, "db.server.query_plan")
            .into_iter()
            .find(|p| text_of(p, "db.query.text").starts_with("SELECT id FROM users WHERE email"))
            .unwrap();
        assert!(!text_of(plan, "db.query.id").is_empty(), "{source}: the query id (csvlog's column, stderr's %Q): {plan:?}");
        assert!(text_of(plan, "postgresql.query_plan").contains("\"Node Type\""), "{source}: the multi-line JSON plan: {plan:?}");
        let mismatches = run.metric_opt(&format!("dbintel_log_lines_total{{node=\"{source}\",outcome=\"format_mismatch\"}}"));
        assert_eq!(mismatches, None, "{source}: every line read in its format");
        no_secret_in(&path);
    }
    // the same plan, read from both formats, has one shape
    let hash = |file: &str| {
        events(&read_file_sink(&dir.join(file)), "db.server.query_plan")
            .into_iter()
            .find(|p| text_of(p, "db.query.text").starts_with("SELECT id FROM users WHERE email"))
            .map(|p| (text_of(p, "db.plan.hash"), text_of(p, "db.query.id")))
    };
    assert_eq!(hash("pg_csv.ndjson"), hash("pg_stderr.ndjson"));
}

#[test]
fn a_restart_mid_file_and_a_rotation_lose_nothing_and_repeat_nothing() {
    let pg = LogPg::start("restart15", Path::new(PG15_BIN), &logging_settings("jsonlog"));
    let dir = common::scratch("logs-restart15");
    let out_path = dir.join("pg_logs.ndjson");
    let pipe = pipe(&dir, "pg_logs", &format!("directory = \"{}\"\n  format = jsonlog", pg.log_dir.display()), "collect errors");
    let env = [("PG_DSN", pg.dsn())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // 1/0 in a loop of separate statements, while dbintel stops and starts
    let generate = |n: usize| {
        let statements: String = (0..n).map(|i| format!("SELECT {i} / 0;\n")).collect();
        let script = dir.join(format!("gen-{n}.sql"));
        std::fs::write(&script, statements).unwrap();
        std::process::Command::new("psql")
            .args([
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-f",
                script.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("psql");
    };
    let mut run = Run::start(&[pipe.to_str().unwrap()], &env);
    generate(150);
    // stop in the middle of a file: a writer keeps going while dbintel is down
    let writer = {
        let port = pg.port;
        let script = dir.join("gen-during.sql");
        std::fs::write(&script, (0..400).map(|i| format!("SELECT {i} / 0;\nSELECT pg_sleep(0.002);\n")).collect::<String>()).unwrap();
        std::process::Command::new("psql")
            .args([
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-f",
                script.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("psql")
    };
    std::thread::sleep(Duration::from_millis(400));
    let (status, _) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "a clean stop");
    pg.sql("SELECT pg_rotate_logfile()");
    std::thread::sleep(Duration::from_millis(300));
    let run = Run::start(&[pipe.to_str().unwrap()], &env);
    let _ = { writer }.wait();
    generate(100);
    pg.sql("SELECT pg_rotate_logfile()");
    generate(50);

    let written = || pg.log_text().lines().filter(|l| l.contains("\"state_code\":\"22012\"")).count();
    let expected = run.wait_for("every division by zero the server logged", Duration::from_secs(60), || {
        let w = written();
        let got = events(&read_file_sink(&out_path), "db.server.error")
            .into_iter()
            .filter(|e| text_of(e, "db.response.status_code") == "22012")
            .count();
        (w >= 700 && got >= w).then_some(w)
    });
    // quiet: nothing more may come
    std::thread::sleep(Duration::from_secs(2));
    let out = read_file_sink(&out_path);
    let got = events(&out, "db.server.error").into_iter().filter(|e| text_of(e, "db.response.status_code") == "22012").count();
    assert_eq!(got, expected, "every logged error once: {got} events for {expected} lines across {:?}", pg.log_files());
    // the counts too: each window went out once, the one open at the
    // stop with the stop, the rest of it after the restart
    let mut run = run;
    let (status, _) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success());
    let counted = metric_sum(&read_file_sink(&out_path), "postgresql.log.errors", Some(("db.response.status_code", "22012")));
    assert_eq!(counted, expected as f64, "every error counted once");
}
