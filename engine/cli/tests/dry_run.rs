//! `dbintel dry-run` and `dbintel test` as users run them.

mod common;

use common::{code, dbintel, scratch, text, ALL_ENV};

const FIXTURE: &str = "postgres.statements=pipelines/fixtures/pg_stat_statements.ndjson";

/// Secrets planted in the recorded rows (utility statements and comments
/// that pg_stat_statements keeps raw).
const FIXTURE_SECRETS: &[&str] =
    &["Tr0ub4dor", "jane.doe@example.com", "4111111111111111", "123-45-6789", "eyJhbGciOiJIUzI1NiJ9", "billing-worker"];

fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    text(stdout).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

#[test]
fn the_readme_demo_exports_otlp_json_without_pii() {
    let out = dbintel(&["dry-run", "pipelines/postgres.pipe", "--input", FIXTURE], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for secret in FIXTURE_SECRETS {
        assert!(!stdout.contains(secret), "{secret} leaked into the export");
    }
    let lines = json_lines(&out.stdout);
    assert!(!lines.is_empty(), "no OTLP/JSON lines: {}", common::seen(&out));
    let metrics: Vec<&serde_json::Value> = lines.iter().filter_map(|l| l.get("resourceMetrics")).collect();
    let logs: Vec<&serde_json::Value> = lines.iter().filter_map(|l| l.get("resourceLogs")).collect();
    assert!(!metrics.is_empty() && !logs.is_empty(), "metrics and logs both: {} metric and {} log lines", metrics.len(), logs.len());
    let resource = &metrics[0][0]["resource"]["attributes"];
    assert!(
        resource.as_array().is_some_and(|a| a.iter().any(|a| a["key"] == "db.system.name" && a["value"]["stringValue"] == "postgresql")),
        "db.system.name is not postgresql: {resource}"
    );
    let names: Vec<&str> = metrics
        .iter()
        .flat_map(|m| m[0]["scopeMetrics"][0]["metrics"].as_array().unwrap().iter())
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(names.contains(&"postgresql.query.calls") && names.contains(&"postgresql.query.duration"), "{names:?}");
    // deltas: every calls point is a delta sum over a 30 s replayed interval
    let calls = metrics
        .iter()
        .flat_map(|m| m[0]["scopeMetrics"][0]["metrics"].as_array().unwrap().iter())
        .find(|m| m["name"] == "postgresql.query.calls")
        .unwrap();
    assert_eq!(calls["sum"]["aggregationTemporality"], 1, "a delta sum: {calls}");
    assert_eq!(calls["sum"]["isMonotonic"], true, "a monotonic sum: {calls}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("sanitize_pii") && stderr.contains("dropped"), "per-node counts on stderr: {stderr}");
}

#[test]
fn tap_shows_a_nodes_output_and_pretty_is_readable() {
    let out = dbintel(&["dry-run", "pipelines/postgres.pipe", "--input", FIXTURE, "--tap", "sanitize_pii", "--output", "pretty"], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // 10 statements ran in each of the two replayed intervals, except the
    // one that ran only before: 2 × 9 top_query events, unsampled at the tap
    assert_eq!(stdout.lines().filter(|l| l.contains(" log    db.server.top_query INFO ")).count(), 18, "{stdout}");
    assert!(stdout.contains(r#"db.query.text="ALTER ROLE reporting PASSWORD ?""#), "{stdout}");
    assert!(stdout.contains(r#"db.query.text="SELECT * FROM orders WHERE customer_email = ?""#), "{stdout}");
    for secret in FIXTURE_SECRETS {
        assert!(!stdout.contains(secret), "{secret} leaked at the tap");
    }
}

/// The README's first command, as written there: readable values (no
/// `Str("…")`, `Double(…)`, `Nil`, no float noise), grouped under the
/// resource, units after the values.
#[test]
fn the_readme_first_command_prints_readable_values() {
    let out = dbintel(&["dry-run", "pipelines/postgres.pipe", "--input", FIXTURE, "--output", "pretty"], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for debug_form in ["Str(", "Int(", "Double(", "Nil", "0000000", "9999999"] {
        assert!(!stdout.contains(debug_form), "`{debug_form}` in the pretty output:\n{stdout}");
    }
    assert!(stdout.starts_with(r#"resource db.system.name="postgresql""#), "{stdout}");
    let duration = stdout.lines().find(|l| l.contains(" metric postgresql.query.duration ")).expect("a duration line");
    assert!(duration.contains(" ms ") && duration.contains(r#"db.query.id=""#), "{duration}");
    assert!(stdout.contains(r#"db.query.text="SELECT * FROM orders WHERE customer_email = ?""#), "{stdout}");
    for secret in FIXTURE_SECRETS {
        assert!(!stdout.contains(secret), "{secret} leaked into the pretty output");
    }
}

/// `--output table`: one metrics table per batch with a header row, the
/// values right-aligned under VALUE and the unit after them.
#[test]
fn table_output_lines_metrics_up_in_columns() {
    let out = dbintel(&["dry-run", "pipelines/postgres.pipe", "--input", FIXTURE, "--output", "table"], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let header = lines.iter().position(|l| l.starts_with("TIME ") && l.contains(" METRIC ")).expect("a metrics header");
    let value_end = lines[header].find("VALUE").expect("VALUE") + "VALUE".len();
    let rows: Vec<&str> = lines[header + 1..].iter().take_while(|l| !l.is_empty() && !l.starts_with("TIME ")).copied().collect();
    assert!(rows.len() > 10, "{stdout}");
    for row in &rows {
        // each value ends where the VALUE heading ends, followed by its unit
        let before = &row[..value_end];
        assert!(before.ends_with(|c: char| c.is_ascii_digit()), "value not right-aligned under VALUE: {row}");
    }
    assert!(rows.iter().any(|r| r.contains("postgresql.query.duration") && r.trim_end().ends_with(" ms")), "{stdout}");
}

#[test]
fn dry_run_usage_errors_are_clear() {
    let bad = [
        (vec!["--input", "nosuch.statements=x.ndjson"], "no source named `nosuch`"),
        (vec!["--input", "postgres.nope=x.ndjson"], "has no collector `nope`"),
        (vec!["--input", "postgres=pipelines/fixtures/pg_stat_statements.ndjson"], "say which collector"),
        (vec!["--input", "postgres.statements=/does/not/exist"], "cannot read"),
        (vec!["--input", "garbage"], "expected SOURCE[.COLLECTOR]=FILE"),
    ];
    for (extra, message) in bad {
        let mut args = vec!["dry-run", "pipelines/postgres.pipe"];
        args.extend(extra);
        let out = dbintel(&args, &[]);
        assert_eq!(code(&out), 2, "{args:?}");
        assert!(text(&out.stderr).contains(message), "{args:?}: {}", text(&out.stderr));
    }
    let tap = dbintel(&["dry-run", "pipelines/postgres.pipe", "--input", FIXTURE, "--tap", "nowhere"], &[]);
    assert_eq!(code(&tap), 1, "{}", common::seen(&tap));
    assert!(text(&tap.stderr).contains("no node named `nowhere`"), "{}", common::seen(&tap));
}

const ROWS_PIPE: &str = r#"
source rows = sql {
  dsn = env("ROWS_DSN")
  collect q { query = "select * from t", kind = log }
  collect m { query = "select * from t", kind = gauge, metric = "rows.value", value_column = "v", attribute_columns = ["k"] }
}
transform scrub {
  error_mode = ignore
  set(attributes["db.query.text"], NormalizeSQL(attributes["db.query.text"])) where attributes["db.query.text"] != nil
  set(attributes["len"], Len(attributes["db.query.text"]))
  replace_pattern(attributes["re"], "(?=a)(a+)+$", "x")
}
sink out = stdout {}
pipeline p = rows.q -> scrub -> out
pipeline pm = rows.m -> out
"#;

#[test]
fn bad_rows_are_counted_never_fatal_and_never_leak() {
    let dir = scratch("bad-rows");
    let pipe = dir.join("rows.pipe");
    std::fs::write(&pipe, ROWS_PIPE).unwrap();
    let big_secret = format!("select * from t where x = '{}' and token = 'BIGSECRET'", "y".repeat(5 * 1024 * 1024));
    let mut rows = Vec::new();
    rows.extend_from_slice(b"{\"db.query.text\": \"select 1 where email = 'a@leak.example'\", \"k\": null}\n");
    rows.extend_from_slice(b"{\"db.query.text\": null, \"other\": 5}\n");
    rows.extend_from_slice(b"{}\n");
    rows.extend_from_slice(b"{\"db.query.text\": 42, \"nested\": {\"a\": [1, 2.5, true, null]}}\n");
    rows.extend_from_slice(b"{\"db.query.text\": \"bad utf8 \xff\xfe\"}\n");
    rows.extend_from_slice(b"this is not json\n");
    rows.extend_from_slice(b"[1, 2, 3]\n");
    rows.extend_from_slice(format!("{{\"db.query.text\": \"{big_secret}\"}}\n").as_bytes());
    rows.extend_from_slice(format!("{{\"re\": \"{}!\"}}\n", "a".repeat(40)).as_bytes());
    let input = dir.join("rows.ndjson");
    std::fs::write(&input, rows).unwrap();
    let metric_rows = dir.join("metrics.ndjson");
    std::fs::write(
        &metric_rows,
        "{\"v\": 1.5, \"k\": \"a\"}\n{\"v\": null, \"k\": \"b\"}\n{\"k\": \"c\"}\n{\"v\": \"x\", \"k\": \"d\"}\n{\"v\": 7, \"k\": \"e\"}\n",
    )
    .unwrap();

    let q = format!("rows.q={}", input.display());
    let m = format!("rows.m={}", metric_rows.display());
    let out = dbintel(&["dry-run", pipe.to_str().unwrap(), "--input", &q, "--input", &m], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(code(&out), 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let stdout = text(&out.stdout);
    let leaked: Vec<String> =
        common::lines_with(&stdout, &["a@leak.example", "BIGSECRET"]).iter().map(|l| l.chars().take(300).collect()).collect();
    assert!(leaked.is_empty(), "raw text leaked: {leaked:?}");
    // the 5 MB text could not be normalized: removed and marked
    assert!(stdout.contains("dbintel.redacted"), "the oversized text is not marked: {}", stdout.chars().take(2000).collect::<String>());
    // logged, with line numbers, for the rows that could not be read
    assert!(stderr.contains("line=5") && stderr.contains("not valid UTF-8"), "{stderr}");
    assert!(stderr.contains("line=6") && stderr.contains("line=7"), "{stderr}");
    let lines = json_lines(&out.stdout);
    let log_count: usize = lines.iter().filter_map(|l| l["resourceLogs"][0]["scopeLogs"][0]["logRecords"].as_array()).map(Vec::len).sum();
    assert_eq!(log_count, 6, "every readable row is kept (error_mode = ignore)");
    let points: usize = lines.iter().filter_map(|l| l["resourceMetrics"][0]["scopeMetrics"][0]["metrics"].as_array()).map(Vec::len).sum();
    assert_eq!(points, 2, "rows without a numeric value are skipped");
    // counts: source errors = 3 unreadable rows + 3 metric rows without a number
    let source_line = stderr.lines().find(|l| l.starts_with("rows ")).unwrap_or_default().to_string();
    assert!(source_line.trim_end().ends_with(" 6"), "source errors: {source_line}");
    // the runaway regex and the oversized text are errors of the transform
    let scrub = stderr.lines().find(|l| l.starts_with("scrub ")).unwrap_or_default().to_string();
    let errors: u64 = scrub.split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(errors >= 2, "transform errors: {scrub}");
}

/// Counts only: every one of 200,000 rows comes out, sanitized. Whether
/// memory stays flat while they stream is measured, not tested:
/// benches/dry_run_rss.sh (BENCHMARKS.md, "Streaming").
#[test]
fn dry_run_puts_every_row_of_a_200k_row_input_through_the_transform() {
    let dir = scratch("stream");
    let pipe = dir.join("rows.pipe");
    std::fs::write(&pipe, ROWS_PIPE).unwrap();
    let input = dir.join("rows.ndjson");
    let mut data = String::new();
    for i in 0..200_000 {
        data.push_str(&format!("{{\"db.query.text\": \"select {i} from t where e = 'u{i}@x.io'\"}}\n"));
    }
    std::fs::write(&input, data).unwrap();
    let q = format!("rows.q={}", input.display());
    let out = dbintel(&["dry-run", pipe.to_str().unwrap(), "--input", &q, "--output", "pretty"], &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(code(&out), 0, "{stderr}");
    let logs = stdout.lines().filter(|l| l.contains(" log ")).count();
    assert_eq!(logs, 200_000, "records out of 200,000 rows in; per-node counts:\n{stderr}");
    let leaked: Vec<&str> = stdout.lines().filter(|l| l.contains("@x.io")).take(3).collect();
    assert!(leaked.is_empty(), "addresses reached the output: {leaked:?}");
    let sanitized = stdout.lines().filter(|l| l.contains(r#"db.query.text="select ? from t where e = ?""#)).count();
    assert_eq!(
        sanitized,
        200_000,
        "rows sanitized by the transform; first lines:\n{}",
        stdout.lines().take(5).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn dbintel_test_reports_expected_actual_and_the_statement_that_changed_it() {
    let dir = scratch("pipe-test");
    let file = dir.join("t.pipe");
    std::fs::write(
        &file,
        r#"
transform scrub {
  set(attributes["q"], NormalizeSQL(attributes["q"]))
  set(attributes["q"], Concat([attributes["q"], "!"], ""))
}
test "passes" {
  input scrub { attributes["q"] = "select 1" }
  expect { attributes["q"] == "select ?!" }
}
test "fails" {
  input scrub { attributes["q"] = "select 'x'" }
  expect { attributes["q"] == "select ?" }
}
"#,
    )
    .unwrap();
    let junit = dir.join("report.xml");
    let out = dbintel(&["test", file.to_str().unwrap(), "--junit", junit.to_str().unwrap()], ALL_ENV);
    assert_eq!(code(&out), 1, "{}", common::seen(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ok   passes"), "{stdout}");
    assert!(stdout.contains("FAIL fails"), "{stdout}");
    assert!(stdout.contains(r#"expected: attributes["q"] == "select ?""#), "{stdout}");
    assert!(stdout.contains(r#"actual: attributes["q"] = "select ?!""#), "{stdout}");
    assert!(stdout.contains(r#"last changed by: set(attributes["q"], Concat([attributes["q"], "!"], ""))"#), "{stdout}");
    assert!(stdout.contains("1 passed, 1 failed"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"tests="2" failures="1""#) && xml.contains("<failure"), "{xml}");
}

#[test]
fn shipped_pipeline_tests_pass() {
    let out = dbintel(&["test", "pipelines/"], ALL_ENV);
    assert_eq!(code(&out), 0, "{}", common::seen(&out));
    // every test block of the shipped files passes (their number grows)
    let stdout = text(&out.stdout);
    let passed = stdout.lines().find_map(|l| l.strip_suffix(" passed, 0 failed")).and_then(|n| n.trim().parse::<usize>().ok());
    assert!(passed.is_some_and(|n| n >= 3), "all of the shipped pipelines' tests pass: {}", common::seen(&out));
}

#[test]
fn the_readme_runs_exactly_this_demo() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    assert!(
        readme.contains("dry-run pipelines/postgres.pipe --input postgres.statements=pipelines/fixtures/pg_stat_statements.ndjson"),
        "README's first command drifted from the demo these tests run: {:?}",
        common::lines_with(&readme, &["dry-run pipelines/postgres.pipe"])
    );
    assert!(readme.contains("\ntests/run.sh\n"), "README's test command drifted: {:?}", common::lines_with(&readme, &["tests/run.sh"]));
}

#[test]
fn dry_run_scrapes_the_real_postgres_and_sanitizes_what_it_finds() {
    let dir = scratch("live-pg");
    let pipe = dir.join("live.pipe");
    let sanitize = common::root().join("pipelines/sanitize_pii.pipe");
    std::fs::write(
        &pipe,
        format!(
            "use \"{}\"\nsource pg = postgres {{\n  dsn = env(\"LIVE_PG_DSN\")\n  timeout = 3s\n  collect statements {{ top = 10000 }}\n}}\nsink out = stdout {{}}\npipeline p = pg.statements -> sanitize_pii -> out\n",
            sanitize.display()
        ),
    )
    .unwrap();
    // A utility statement keeps its literal in pg_stat_statements; run it
    // all through the dry run so every interval sees new calls.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let load = std::thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = std::process::Command::new("psql")
                .args([
                    "-X",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "dbintel_test",
                    "-c",
                    "SET application_name = 'hunter2-live-secret'",
                ])
                .output();
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
    let dsn = ("LIVE_PG_DSN", "postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5432/dbintel_test");
    let out = dbintel(&["dry-run", pipe.to_str().unwrap(), "--scrapes", "3", "--interval", "1s"], &[dsn]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = load.join();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains("hunter2-live-secret"),
        "a literal from the server leaked: {:?}",
        common::lines_with(&stdout, &["hunter2-live-secret"])
    );
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains("monitor-secret-pw"),
        "the DSN password leaked into logs: {:?}",
        common::lines_with(&stderr, &["monitor-secret-pw"])
    );
    assert!(stdout.contains("postgresql.query.calls"), "no deltas after three scrapes: {}", common::seen(&out));
    assert!(stdout.contains("SET application_name = ?"), "the utility statement is not there, sanitized: {}", common::seen(&out));
    let lines = json_lines(&out.stdout);
    let resource = lines.iter().find_map(|l| l.get("resourceMetrics")).map(|r| r[0]["resource"]["attributes"].clone()).expect("metrics");
    let attrs: Vec<(String, serde_json::Value)> =
        resource.as_array().unwrap().iter().map(|a| (a["key"].as_str().unwrap_or("").to_string(), a["value"].clone())).collect();
    let id = common::nr_service_instance_id("127.0.0.1", 5432);
    assert!(attrs.iter().any(|(k, v)| k == "service.instance.id" && v["stringValue"] == id.as_str()), "{attrs:?}");
    assert!(attrs.iter().any(|(k, v)| k == "server.port" && v["intValue"] == "5432"), "{attrs:?}");
}

/// Feeds OTLP/JSON to tests/otlp_json_check.py (the official
/// opentelemetry-proto package, strict protobuf JSON parsing) and returns
/// its summary.
fn decode_with_official_otlp(otlp_json: &[u8]) -> serde_json::Value {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .arg(common::root().join("tests/otlp_json_check.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().expect("stdin").write_all(otlp_json).expect("write");
    let out = child.wait_with_output().expect("decoder ran");
    assert!(out.status.success(), "the official decoder refused our OTLP/JSON: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("summary")
}

#[test]
fn otlp_json_decodes_with_the_official_protobuf_definitions() {
    let out = dbintel(&["dry-run", "pipelines/postgres.pipe", "--input", FIXTURE], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let summary = decode_with_official_otlp(&out.stdout);
    let lines = json_lines(&out.stdout);
    assert_eq!(summary["requests"], lines.len(), "the official decoder read every line: {summary}");
    let our_logs: usize = lines.iter().filter_map(|l| l["resourceLogs"][0]["scopeLogs"][0]["logRecords"].as_array()).map(Vec::len).sum();
    assert_eq!(summary["logs"], our_logs, "the official decoder's log count: {summary}");
    assert!(summary["points"].as_u64().unwrap_or(0) > 0, "the official decoder found no points: {summary}");
    assert_eq!(summary["delta_sums"], summary["metrics"], "statement metrics are delta sums");

    // every value shape: nested maps, lists, nil, floats, bytes-free rows
    let dir = scratch("otlp-shapes");
    let pipe = dir.join("rows.pipe");
    std::fs::write(&pipe, ROWS_PIPE).unwrap();
    let rows = dir.join("rows.ndjson");
    std::fs::write(
        &rows,
        "{\"db.query.text\": \"select 1\", \"n\": {\"a\": [1, 2.5, true, null, \"x\"]}, \"big\": 18446744073709551615, \"neg\": -3, \"f\": 1e300}\n",
    )
    .unwrap();
    let q = format!("rows.q={}", rows.display());
    let out = dbintel(&["dry-run", pipe.to_str().unwrap(), "--input", &q], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let summary = decode_with_official_otlp(&out.stdout);
    assert_eq!(summary["logs"], 1, "every value shape in one log record: {summary}\n{}", common::seen(&out));
}

#[test]
fn live_activity_sends_aas_and_sanitized_samples() {
    let dir = scratch("live-ash");
    let pipe = dir.join("ash.pipe");
    let sanitize = common::root().join("pipelines/sanitize_pii.pipe");
    std::fs::write(
        &pipe,
        format!(
            "use \"{}\"\nsource pg = postgres {{\n  dsn = env(\"LIVE_PG_DSN\")\n  collect activity {{ every = 200ms, window = 2s, samples_as_logs = true }}\n}}\nsink out = stdout {{ format = pretty }}\npipeline a = pg.activity -> sanitize_pii -> out\n",
            sanitize.display()
        ),
    )
    .unwrap();
    // a session sleeping through the whole window, its text with a literal
    let sleeper = std::thread::spawn(|| {
        std::process::Command::new("psql")
            .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "dbintel_test", "-c", "SELECT pg_sleep(4), 'ash-secret-literal'"])
            .output()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let dsn = ("LIVE_PG_DSN", "postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5432/dbintel_test");
    let out = dbintel(&["dry-run", pipe.to_str().unwrap(), "--scrapes", "1", "--output", "pretty"], &[dsn]);
    let _ = sleeper.join();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains("ash-secret-literal"),
        "a literal from pg_stat_activity leaked: {:?}",
        common::lines_with(&stdout, &["ash-secret-literal"])
    );

    assert!(
        stdout.lines().any(|l| l.contains(" metric postgresql.ash.active_sessions ") && l.contains("PgSleep")),
        "no AAS for the sleeping session: {stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.contains(" log    db.server.query_sample ") && l.contains("SELECT pg_sleep(?), ?")),
        "no sanitized sample log: {stdout}"
    );
}

/// The resource attributes of every request in OTLP/JSON lines.
fn resources(stdout: &[u8]) -> Vec<serde_json::Value> {
    json_lines(stdout)
        .iter()
        .flat_map(|r| ["resourceMetrics", "resourceLogs"].map(|k| r[k].clone()))
        .flat_map(|list| list.as_array().cloned().unwrap_or_default())
        .map(|rm| {
            let mut attrs: Vec<serde_json::Value> = rm["resource"]["attributes"].as_array().cloned().unwrap_or_default();
            attrs.sort_by_key(|kv| kv["key"].as_str().unwrap_or_default().to_string());
            serde_json::Value::Array(attrs)
        })
        .collect()
}

#[test]
fn replay_builds_the_resource_and_records_production_sends() {
    // the same collector, once against the real server and once from rows
    // recorded from it: the output must not tell them apart
    let dir = scratch("replay-same");
    let pipe = dir.join("same.pipe");
    std::fs::write(
        &pipe,
        "source pg = sql {\n  dsn = env(\"SAME_PG_DSN\")\n  collect q { query = \"SELECT 7 AS v, 'x' AS k\", metric = \"same.v\", value_column = \"v\" }\n}\nsink out = stdout {}\npipeline p = pg.q -> out\n",
    )
    .unwrap();
    let rows = dir.join("rows.ndjson");
    std::fs::write(&rows, "{\"v\": 7, \"k\": \"x\"}\n").unwrap();
    let dsn = ("SAME_PG_DSN", "postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5432/dbintel_test");
    let live = dbintel(&["dry-run", pipe.to_str().unwrap(), "--scrapes", "1"], &[dsn]);
    assert_eq!(code(&live), 0, "{}", text(&live.stderr));
    let input = format!("pg.q={}", rows.display());
    let replayed = dbintel(&["dry-run", pipe.to_str().unwrap(), "--input", &input], &[dsn]);
    assert_eq!(code(&replayed), 0, "{}", text(&replayed.stderr));
    let (live_resources, replayed_resources) = (resources(&live.stdout), resources(&replayed.stdout));
    assert_eq!(live_resources.len(), 1, "{}", text(&live.stdout));
    assert_eq!(live_resources, replayed_resources, "replay must build the resource production sends");
    let keys: Vec<&str> = live_resources[0].as_array().unwrap().iter().filter_map(|kv| kv["key"].as_str()).collect();
    for expected in ["db.system.name", "server.address", "server.port", "service.instance.id"] {
        assert!(keys.contains(&expected), "{expected} missing: {keys:?}");
    }
    // one resource per server: the database is on the points
    assert!(!keys.contains(&"db.namespace"), "{keys:?}");
    for out in [&live.stdout, &replayed.stdout] {
        assert!(text(out).contains(r#""key":"db.namespace","value":{"stringValue":"dbintel_test"}"#), "{}", text(out));
    }
    assert!(!keys.contains(&"dbintel.source"), "{keys:?}");
    // and the records: the same point, the same attributes
    let point = |out: &[u8]| {
        let lines = json_lines(out);
        let m = &lines[0]["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0];
        (m["name"].clone(), m["gauge"]["dataPoints"][0]["asInt"].clone(), m["gauge"]["dataPoints"][0]["attributes"].clone())
    };
    assert_eq!(point(&live.stdout), point(&replayed.stdout), "live (left) and replayed (right) records differ");
}

#[test]
fn a_sql_source_names_its_dialect_from_the_dsn() {
    let dir = scratch("sql-dialect");
    let pipe = dir.join("my.pipe");
    std::fs::write(
        &pipe,
        "source any = sql {\n  dsn = env(\"DIALECT_DSN\")\n  collect q { query = \"SELECT 1 AS v\", metric = \"dialect.v\", value_column = \"v\" }\n}\nsink out = stdout {}\npipeline p = any.q -> out\n",
    )
    .unwrap();
    for (dsn, system) in [
        ("mysql://dbintel_monitor:monitor-secret-pw@127.0.0.1:3306/performance_schema", "mysql"),
        ("postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5432/dbintel_test", "postgresql"),
    ] {
        let out = dbintel(&["dry-run", pipe.to_str().unwrap(), "--scrapes", "1"], &[("DIALECT_DSN", dsn)]);
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
        let resource = &resources(&out.stdout)[0];
        let name =
            resource.as_array().unwrap().iter().find(|kv| kv["key"] == "db.system.name").map(|kv| kv["value"]["stringValue"].clone());
        assert_eq!(name, Some(serde_json::json!(system)), "{dsn}");
    }
}
