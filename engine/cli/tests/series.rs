//! Process-wide state is bounded and pruned with what it describes
//! (issue 21, finding 6), seen from `/metrics` of the real binary: the
//! series of a database discovered on the real PostgreSQL and then dropped
//! go with it; a node renamed by a reload leaves no series behind; and a
//! Redis-backed sampler's counters (against the real Redis) show at all.

mod common;

use std::time::Duration;

use common::otlp::Run;
use common::{psql, scratch};

/// The `/metrics` lines that mention `needle`.
fn lines_mentioning(run: &Run, needle: &str) -> Vec<String> {
    run.get("/metrics").1.lines().filter(|l| !l.starts_with('#') && l.contains(needle)).map(str::to_string).collect()
}

/// The bug: every database discovered and then dropped left its breaker
/// series (four) and its query-time series in `/metrics` forever.
#[test]
fn a_discovered_then_dropped_database_leaves_no_series_in_metrics() {
    let db = format!("dbintel_series_{}", std::process::id());
    psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    let dir = scratch("series-discover");
    std::fs::write(
        dir.join("p.pipe"),
        r#"source srv = sql {
  dsn = env("DISC_DSN")
  discover = databases
  discover_every = 1s
  exclude_databases = ["template0", "template1"]
  interval = 500ms
  pool = 1
  collect q { query = "SELECT 1 AS v", metric = "disc.one", value_column = "v" }
}
sink out = stdout {}
pipeline p = srv.q -> out
"#,
    )
    .unwrap();
    let run = Run::start(
        &[dir.join("p.pipe").to_str().unwrap(), "--no-watch"],
        &[("DISC_DSN", "postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5432/postgres")],
    );
    let dropped = DropDatabase(db.clone());
    psql(&format!("CREATE DATABASE {db}"));
    // a discovered database's target is `srv/<db>` under source `srv`
    let needle = format!("/{db}\"");
    run.wait_for("the new database's breaker and query series", Duration::from_secs(30), || {
        let lines = lines_mentioning(&run, &needle);
        let has = |family: &str| lines.iter().any(|l| l.starts_with(family));
        (has("dbintel_breaker_state{") && has("dbintel_query_seconds_total{") && has("dbintel_target_up{")).then_some(lines)
    });
    psql(&format!("DROP DATABASE {db} WITH (FORCE)"));
    drop(dropped);
    let started = std::time::Instant::now();
    loop {
        let left = lines_mentioning(&run, &db);
        if left.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the dropped database's series stay: {left:#?}\n{}", run.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    // and they stay gone (a late sweep or scrape does not bring them back)
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lines_mentioning(&run, &db), Vec::<String>::new(), "{}", run.stderr());
    // the databases that remain keep theirs
    assert!(!lines_mentioning(&run, "/dbintel_test\"").is_empty(), "dbintel_test's series are kept");
    assert_eq!(run.metric(r#"dbintel_series_overflow_total{map="query_times"}"#), 0.0);
}

/// A node renamed by a reload: its counters leave `/metrics` (they were
/// kept for every name a node ever had).
#[test]
fn a_node_renamed_by_a_reload_leaves_no_series_behind() {
    let dir = scratch("series-rename");
    let rows = common::otlp::rows(&dir, "rows.ndjson", 3, 1);
    let pipe = dir.join("p.pipe");
    let write = |transform: &str| {
        std::fs::write(
            &pipe,
            format!(
                "source rows = sql {{\n  dsn = env(\"ROWS_DSN\")\n  collect m {{ query = \"select 1\", metric = \"t.v\", value_column = \"v\" }}\n}}\ntransform {transform} {{\n  set(attributes[\"x\"], \"y\")\n}}\nsink out = stdout {{}}\npipeline p = rows.m -> {transform} -> out\n"
            ),
        )
        .unwrap()
    };
    write("first_name");
    let input = format!("rows.m={}", rows.display());
    let run = Run::start(&[pipe.to_str().unwrap(), "--input", &input, "--watch-interval", "300ms"], &[("ROWS_DSN", "unused")]);
    run.wait_for("the first transform's series", Duration::from_secs(20), || {
        (!lines_mentioning(&run, "node=\"first_name\"").is_empty()).then_some(())
    });
    write("second_name");
    run.wait_for("the reload", Duration::from_secs(20), || {
        (run.metric_opt(r#"dbintel_reloads_total{result="applied"}"#) == Some(1.0)).then_some(())
    });
    assert!(!lines_mentioning(&run, "node=\"second_name\"").is_empty(), "the new name's series");
    assert_eq!(lines_mentioning(&run, "node=\"first_name\""), Vec::<String>::new(), "the old name's series are gone");
}

/// A sampler sharing its state in Redis: its counters reach `/metrics`
/// (the daemon's registry never saw the graph's samplers, so the families
/// were always empty).
#[test]
fn a_redis_backed_samplers_counters_show_in_metrics() {
    let dir = scratch("series-sampler");
    let rows = common::otlp::rows(&dir, "rows.ndjson", 20, 1);
    let node = format!("shared_{}", std::process::id());
    let pipe = dir.join("p.pipe");
    std::fs::write(
        &pipe,
        format!(
            "source rows = sql {{\n  dsn = env(\"ROWS_DSN\")\n  collect m {{ query = \"select 1\", metric = \"t.v\", value_column = \"v\", attribute_columns = [\"k\"] }}\n}}\nsample {node} {{\n  state = redis(\"redis://127.0.0.1:6379\")\n  rate_limit 5 per 1h by attributes[\"k\"]\n}}\nsink out = stdout {{}}\npipeline p = rows.m -> {node} -> out\n"
        ),
    )
    .unwrap();
    let input = format!("rows.m={}", rows.display());
    let run = Run::start(&[pipe.to_str().unwrap(), "--input", &input, "--no-watch"], &[("ROWS_DSN", "unused")]);
    let series = format!("dbintel_sampler_redis_decisions_total{{node=\"{node}\"}}");
    let decided = run.wait_for("the sampler's Redis decisions", Duration::from_secs(20), || run.metric_opt(&series).filter(|n| *n >= 20.0));
    assert_eq!(decided, 20.0, "each of the 20 records decided with Redis");
    assert_eq!(run.metric(&format!("dbintel_sampler_redis_errors_total{{node=\"{node}\"}}")), 0.0, "{}", run.stderr());
}

/// Drops the test's database however the test ends.
struct DropDatabase(String);
impl Drop for DropDatabase {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args(["-X", "-q", common::PG_SUPERUSER, "-c", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0)])
            .output();
    }
}
