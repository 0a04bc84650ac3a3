//! The log follower against what happens to files in the field, with the
//! real binary: a directory that is not there yet (a precise error in
//! `/status`, retried until it is), logrotate's copytruncate, a
//! half-written last line, a line past `max_line`, binary garbage, lines
//! of another format — each counted by cause in `/metrics`, shown in
//! `/status`, and none of them a stall: the lines after them arrive.
//! The lines are written by the test in PostgreSQL 15's jsonlog format
//! (the server-written case is `logs_postgres.rs`); the `server` source is
//! the shared PostgreSQL, only named (the log source never connects).

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::log_servers::{events, read_file_sink};
use common::otlp::Run;

fn line(i: usize) -> String {
    format!(
        "{{\"timestamp\":\"2024-05-01 12:34:56.789 UTC\",\"user\":\"app\",\"dbname\":\"shop\",\"pid\":{i},\"error_severity\":\"ERROR\",\"state_code\":\"22012\",\"message\":\"division by zero\",\"statement\":\"SELECT {i} / 0\",\"backend_type\":\"client backend\"}}\n"
    )
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open").write_all(text.as_bytes()).expect("write");
}

fn sessions(out: &Path) -> Vec<i64> {
    let mut pids: Vec<i64> = events(&read_file_sink(out), "db.server.error")
        .iter()
        .filter_map(|e| e.attributes.get("db.session.id").and_then(|v| v.as_str().and_then(|s| s.parse().ok()).or(v.as_i64())))
        .collect();
    pids.sort_unstable();
    pids
}

fn pipe(dir: &Path, log_dir: &Path) -> std::path::PathBuf {
    let text = format!(
        r#"use "{sanitize}"
source pg = postgres {{ dsn = env("PG_DSN"), interval = 1h, collect instance }}
source pg_logs = postgres_logs {{
  server = pg
  directory = "{log_dir}"
  format = jsonlog
  start_at = beginning
  state_directory = "{state}"
  poll = 200ms
  retry = 500ms
  max_line = 4KiB
  collect errors
}}
sink out = file {{ path = "{out}" }}
pipeline p = pg_logs -> sanitize_pii -> out
"#,
        sanitize = common::root().join("pipelines/sanitize_pii.pipe").display(),
        log_dir = log_dir.display(),
        state = dir.join("state").display(),
        out = dir.join("out.ndjson").display(),
    );
    let path = dir.join("logs.pipe");
    std::fs::write(&path, text).expect("pipe");
    path
}

#[test]
fn a_missing_directory_is_a_precise_error_in_status_and_is_retried_until_it_appears() {
    let dir = common::scratch("logs-missing");
    let log_dir = dir.join("not-yet");
    let pipe = pipe(&dir, &log_dir);
    let run = Run::spawn(&[pipe.to_str().unwrap()], &[("PG_DSN", common::PG_MONITOR)]);
    let down = run.wait_state("pg_logs", "down", Duration::from_secs(20));
    let message = down["last_error"]["message"].as_str().unwrap_or_default().to_string();
    assert_eq!(message, format!("log directory {}: does not exist", log_dir.display()), "{down:#}");
    let (code, body) = run.get("/readyz");
    assert_eq!(code, 503, "not ready before the log can be read: {body}");
    // the directory appears: read without a restart
    std::fs::create_dir_all(&log_dir).unwrap();
    append(&log_dir.join("postgresql-1.json"), &line(1));
    run.wait_state("pg_logs", "up", Duration::from_secs(20));
    run.wait_for("the line written once the directory was there", Duration::from_secs(20), || {
        (sessions(&dir.join("out.ndjson")) == vec![1]).then_some(())
    });
    // logged once, not once per retry
    assert_eq!(
        run.stderr().matches("cannot start; retrying").count() + run.stderr().matches("cannot read the log; retrying").count(),
        1,
        "{}",
        run.stderr()
    );
}

#[test]
fn copytruncate_half_lines_long_lines_garbage_and_another_format_are_survived_and_counted() {
    let dir = common::scratch("logs-faults");
    let log_dir = dir.join("log");
    std::fs::create_dir_all(&log_dir).unwrap();
    let file = log_dir.join("postgresql-1.json");
    let out = dir.join("out.ndjson");
    append(&file, &format!("{}{}", line(1), line(2)));
    let pipe = pipe(&dir, &log_dir);
    let run = Run::start(&[pipe.to_str().unwrap()], &[("PG_DSN", common::PG_MONITOR)]);
    run.wait_for("the first lines", Duration::from_secs(20), || (sessions(&out) == vec![1, 2]).then_some(()));

    // a half-written line waits for its end
    let third = line(3);
    let (head, tail) = third.split_at(40);
    append(&file, head);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(sessions(&out), vec![1, 2], "half a line is not read");
    append(&file, tail);
    run.wait_for("the completed line", Duration::from_secs(20), || (sessions(&out) == vec![1, 2, 3]).then_some(()));

    // a line past max_line (4 KiB), binary garbage, a stderr line: each
    // counted, and the lines after them read
    let long = format!("{{\"error_severity\":\"ERROR\",\"message\":\"{}\"}}\n", "x".repeat(10_000));
    append(&file, &long);
    std::fs::OpenOptions::new().append(true).open(&file).unwrap().write_all(b"\x00\x01\x02\xfe\xff\x00binary\x00\n").unwrap();
    append(&file, "2024-05-01 12:34:56.789 UTC [42] LOG:  a stderr line in a jsonlog file\n");
    append(&file, &line(4));
    run.wait_for("the line after the bad ones", Duration::from_secs(20), || (sessions(&out) == vec![1, 2, 3, 4]).then_some(()));
    for outcome in ["line_too_long", "binary_garbage", "format_mismatch"] {
        let series = format!("dbintel_log_lines_total{{node=\"pg_logs\",outcome=\"{outcome}\"}}");
        run.wait_for(&series, Duration::from_secs(10), || (run.metric_opt(&series) == Some(1.0)).then_some(()));
    }
    let files = &run.target("pg_logs")["collectors"]["files"];
    assert!(
        files["last_error"]["code"].as_str().is_some_and(|c| ["line_too_long", "binary_garbage", "format_mismatch"].contains(&c)),
        "{files:#}"
    );
    assert_eq!(run.target("pg_logs")["state"], "up", "bad lines do not make the source down");

    // logrotate copytruncate: the file is copied away and emptied in
    // place, and the server goes on writing to it
    std::fs::copy(&file, log_dir.join("postgresql-1.json.1")).unwrap();
    std::fs::OpenOptions::new().write(true).truncate(true).open(&file).unwrap();
    append(&file, &format!("{}{}", line(5), line(6)));
    run.wait_for("the lines written after the truncation", Duration::from_secs(20), || {
        (sessions(&out) == vec![1, 2, 3, 4, 5, 6]).then_some(())
    });
    let restarted = "dbintel_log_lines_total{node=\"pg_logs\",outcome=\"restarted\"}";
    run.wait_for(restarted, Duration::from_secs(10), || (run.metric_opt(restarted) == Some(1.0)).then_some(()));
    // quiet: nothing twice
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sessions(&out), vec![1, 2, 3, 4, 5, 6]);
}
