//! `dbintel run` as a service: reloads (POST /reload, SIGHUP, a ConfigMap
//! `..data` swap), refusal of broken files, SIGTERM flushing, endpoints.

mod common;

use std::path::Path;
use std::time::Duration;

use common::otlp::{Run, RELOAD_TOKEN, RELOAD_TOKEN_ENV};
use common::{scratch, PG_MONITOR};

/// A `sql` source on the real PostgreSQL emitting 5 points per scrape,
/// stamped with `version`, held in a batch that only a flush empties.
fn held_pipe(version: &str, out: &Path) -> String {
    format!(
        r#"source gen = sql {{
  dsn = env("RUN_PG_DSN")
  interval = 300ms
  jitter = 0%
  collect q {{ query = "SELECT n AS v FROM generate_series(1, 5) n", kind = gauge, metric = "test.gen", value_column = "v" }}
}}
transform stamp {{
  set(attributes["version"], "{version}")
}}
batch hold {{ size = 1000000, timeout = 1h, max_bytes = 256MiB }}
sink out = file {{ path = "{}" }}
pipeline p = gen.q -> stamp -> hold -> out
"#,
        out.display()
    )
}

/// Points per `version` in an OTLP/JSON lines file.
fn versions(file: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
        let request: serde_json::Value = serde_json::from_str(line).expect("OTLP/JSON line");
        for rm in request["resourceMetrics"].as_array().into_iter().flatten() {
            for m in rm["scopeMetrics"][0]["metrics"].as_array().into_iter().flatten() {
                for p in m["gauge"]["dataPoints"].as_array().into_iter().flatten() {
                    let v = p["attributes"]
                        .as_array()
                        .and_then(|a| a.iter().find(|kv| kv["key"] == "version"))
                        .map(|kv| kv["value"]["stringValue"].as_str().unwrap_or("?").to_string());
                    *counts.entry(v.unwrap_or_default()).or_default() += 1;
                }
            }
        }
    }
    counts
}

/// The `out` column of a node in the summary table printed on exit.
fn summary_out(log: &str, node: &str) -> usize {
    log.lines()
        .find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() == 6 && cols[0] == node).then(|| cols[3].parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("no summary line for {node}:\n{log}"))
}

#[test]
fn reloads_apply_without_loss_refuse_broken_files_and_sigterm_flushes() {
    let dir = scratch("run-reload");
    let pipe = dir.join("p.pipe");
    let out = dir.join("out.jsonl");
    std::fs::write(&pipe, held_pipe("1", &out)).unwrap();
    let mut run = Run::start(
        &[pipe.to_str().unwrap(), "--no-watch", "--reload-token-env", RELOAD_TOKEN_ENV],
        &[("RUN_PG_DSN", PG_MONITOR), (RELOAD_TOKEN_ENV, RELOAD_TOKEN)],
    );
    let emitted = |run: &Run| run.metric(r#"dbintel_node_emitted_records_total{node="gen",kind="source"}"#);
    run.wait_for("a few scrapes", Duration::from_secs(20), || (emitted(&run) >= 10.0).then_some(()));
    assert!(versions(&out).is_empty(), "the batch holds everything until a flush: {:?}", versions(&out));

    // a valid change: the old plan drains into the file, the new one runs
    std::fs::write(&pipe, held_pipe("2", &out)).unwrap();
    let (status, body) = run.reload();
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("reloaded"), "{body}");
    let after_first = versions(&out);
    assert!(after_first.get("1").is_some_and(|n| *n >= 10 && n % 5 == 0), "{after_first:?}");

    // a broken file: refused with the diagnostic, the running plan stays
    std::fs::write(&pipe, held_pipe("3", &out).replace("-> out", "-> nowhere")).unwrap();
    let (status, body) = run.reload();
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("refused") && body.contains("nowhere") && body.contains("p.pipe"), "{body}");
    assert_eq!(run.metric(r#"dbintel_reloads_total{result="refused"}"#), 1.0, "the refusal is counted:\n{}", run.stderr());
    let before = emitted(&run);
    run.wait_for("the old plan to keep scraping", Duration::from_secs(10), || (emitted(&run) >= before + 10.0).then_some(()));
    let (ready, why) = run.get("/readyz");
    assert_eq!(ready, 200, "the old plan runs on, ready: {why}\n{}", run.stderr());

    // fixed, and applied by SIGHUP
    std::fs::write(&pipe, held_pipe("3", &out)).unwrap();
    let _ = std::process::Command::new("kill").args(["-HUP", &run.pid().to_string()]).status();
    run.wait_for("SIGHUP's reload", Duration::from_secs(20), || {
        (run.metric(r#"dbintel_reloads_total{result="applied"}"#) == 2.0).then_some(())
    });
    run.wait_for("the new plan to scrape", Duration::from_secs(20), || (emitted(&run) >= before + 20.0).then_some(()));

    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    let counts = versions(&out);
    let total: usize = counts.values().sum();
    assert_eq!(total, summary_out(&log, "gen"), "every point the source emitted is in the file: {counts:?}\n{log}");
    for v in ["1", "2", "3"] {
        assert!(counts.get(v).is_some_and(|n| *n > 0 && n % 5 == 0), "version {v}: {counts:?}");
    }
    assert!(!log.contains("monitor-secret-pw"), "{log}");
    assert!(!log.contains(RELOAD_TOKEN), "the reload token was logged:\n{log}");
}

/// The kubelet's ConfigMap update: files live in a timestamped directory,
/// `..data` points at it, and the visible names are symlinks through
/// `..data`; an update writes a new directory and renames a new `..data`
/// symlink over the old one.
fn swap_configmap(cm: &Path, generation: &str, pipe: &str) {
    let target = cm.join(format!("..{generation}"));
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("p.pipe"), pipe).unwrap();
    let tmp = cm.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{generation}"), &tmp).unwrap();
    std::fs::rename(&tmp, cm.join("..data")).unwrap();
    if std::fs::symlink_metadata(cm.join("p.pipe")).is_err() {
        std::os::unix::fs::symlink("..data/p.pipe", cm.join("p.pipe")).unwrap();
    }
}

fn stamped_rows_pipe(version: &str, out: &Path) -> String {
    format!(
        r#"source rows = sql {{
  dsn = env("ROWS_DSN")
  collect m {{ query = "select 1", kind = gauge, metric = "test.value", value_column = "v" }}
}}
transform stamp {{
  set(attributes["version"], "{version}")
}}
sink out = file {{ path = "{}" }}
pipeline p = rows.m -> stamp -> batch -> out
"#,
        out.display()
    )
}

#[test]
fn a_configmap_symlink_swap_is_picked_up_and_a_broken_one_refused() {
    let dir = scratch("run-configmap");
    let cm = dir.join("config");
    std::fs::create_dir_all(&cm).unwrap();
    let out = dir.join("out.jsonl");
    let rows = common::otlp::rows(&dir, "rows.ndjson", 3, 1);
    swap_configmap(&cm, "2026_11_28_12_00_00.1", &stamped_rows_pipe("1", &out));
    let input = format!("rows.m={}", rows.display());
    let mut run = Run::start(&[cm.to_str().unwrap(), "--input", &input, "--watch-interval", "200ms"], &[("ROWS_DSN", "unused")]);
    run.wait_for("the first plan's rows", Duration::from_secs(20), || (versions(&out).get("1") == Some(&3)).then_some(()));

    swap_configmap(&cm, "2026_11_28_12_05_00.2", &stamped_rows_pipe("2", &out));
    run.wait_for("the swapped plan's rows", Duration::from_secs(20), || (versions(&out).get("2") == Some(&3)).then_some(()));
    assert_eq!(run.metric(r#"dbintel_reloads_total{result="applied"}"#), 1.0, "one reload applied:\n{}", run.stderr());

    swap_configmap(&cm, "2026_11_28_12_10_00.3", "source broken = {\n");
    run.wait_for("the broken swap to be refused", Duration::from_secs(20), || {
        (run.metric(r#"dbintel_reloads_total{result="refused"}"#) == 1.0).then_some(())
    });
    assert_eq!(run.get("/readyz").0, 200, "the old plan is still running:\n{}", run.stderr());
    assert_eq!(run.get("/healthz").0, 200, "alive:\n{}", run.stderr());
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert!(log.contains("reload refused"), "{log}");
    assert_eq!(versions(&out).get("2"), Some(&3), "version 2's three rows, once: {:?}\n{log}", versions(&out));
}

#[test]
fn endpoints_answer_and_a_bad_start_is_a_clear_error() {
    let dir = scratch("run-endpoints");
    let out = dir.join("out.jsonl");
    let pipe = dir.join("p.pipe");
    std::fs::write(&pipe, stamped_rows_pipe("1", &out)).unwrap();
    let empty = dir.join("empty.ndjson");
    std::fs::write(&empty, "").unwrap();
    let input = format!("rows.m={}", empty.display());
    let mut run = Run::start(&[pipe.to_str().unwrap(), "--input", &input, "--log-format", "json"], &[("ROWS_DSN", "unused")]);
    let (status, metrics) = run.get("/metrics");
    assert_eq!(status, 200, "{metrics}\n{}", run.stderr());
    for family in ["dbintel_node_received_records_total", "dbintel_reloads_total", "dbintel_ready 1", "process_resident_memory_bytes"] {
        assert!(metrics.contains(family), "{family} missing:\n{metrics}");
    }
    assert_eq!(run.get("/nope").0, 404, "an unknown path: {:?}", run.get("/nope"));
    assert_eq!(run.get("/reload").0, 405, "reload takes POST only");
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    let json_lines: Vec<serde_json::Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(json_lines.iter().any(|l| l["message"].as_str().is_some_and(|m| m.starts_with("running"))), "JSON logs:\n{log}");

    // starting with an unset secret, a taken port, a broken file
    let bad = common::dbintel(&["run", pipe.to_str().unwrap(), "--listen", "127.0.0.1:1"], &[]);
    assert_eq!(common::code(&bad), 1, "{}", common::seen(&bad));
    let stderr = common::text(&bad.stderr);
    assert!(stderr.contains("ROWS_DSN"), "{stderr}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let bad = common::dbintel(&["run", pipe.to_str().unwrap(), "--listen", &addr], &[("ROWS_DSN", "x")]);
    assert_eq!(common::code(&bad), 1, "{}", common::seen(&bad));

    assert!(common::text(&bad.stderr).contains("cannot listen"), "{}", common::text(&bad.stderr));
}

/// Log records of the file sink, as (event name, attributes).
fn events(file: &Path) -> Vec<(String, serde_json::Map<String, serde_json::Value>)> {
    let mut out = Vec::new();
    for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
        let request: serde_json::Value = serde_json::from_str(line).expect("OTLP/JSON line");
        for rl in request["resourceLogs"].as_array().into_iter().flatten() {
            for l in rl["scopeLogs"].as_array().into_iter().flatten().flat_map(|s| s["logRecords"].as_array().into_iter().flatten()) {
                let mut attrs = serde_json::Map::new();
                for kv in l["attributes"].as_array().into_iter().flatten() {
                    let v = kv["value"].as_object().and_then(|v| v.values().next()).cloned().unwrap_or_default();
                    attrs.insert(kv["key"].as_str().unwrap_or_default().to_string(), v);
                }
                out.push((l["eventName"].as_str().unwrap_or_default().to_string(), attrs));
            }
        }
    }
    out
}

fn statements_scrapes(run: &Run) -> u64 {
    run.target("pg")["collectors"]["statements"]["scrapes"].as_u64().unwrap_or(0)
}

#[test]
fn a_reload_keeps_unchanged_sources_running_with_their_baselines() {
    let dir = scratch("run-keep-sources");
    let pipe = dir.join("p.pipe");
    let out = dir.join("out.jsonl");
    let write = |version: &str| {
        std::fs::write(
            &pipe,
            format!(
                "source pg = postgres {{\n  dsn = env(\"KEEP_PG_DSN\")\n  interval = 500ms\n  jitter = 0%\n  collect statements {{ top = 10000 }}\n}}\nsource other = sql {{\n  dsn = env(\"KEEP_PG_DSN\")\n  interval = 500ms\n  collect q {{ query = \"SELECT {version} AS v\", metric = \"keep.v\", value_column = \"v\" }}\n}}\nsink out = file {{ path = \"{}\" }}\npipeline a = pg.statements -> out\npipeline b = other.q -> out\n",
                out.display()
            ),
        )
        .unwrap()
    };
    write("1");
    // a statement the first scrape will see (its baseline). Its own
    // shape, so its own query id: pg_stat_statements keys by shape (an
    // alias or a literal changes nothing) and keeps the text it first saw,
    // so a name in the text cannot tell this run's statement from an
    // earlier run's.
    let columns = 8 + (std::process::id() % 400) as usize;
    let marker_sql = format!("SELECT 1 AS keep_marker, {}", (2..=columns).map(|i| i.to_string()).collect::<Vec<_>>().join(", "));
    let run_marker = |times: usize| {
        for _ in 0..times {
            common::psql(&marker_sql);
        }
    };
    run_marker(1);
    let query_id = common::psql(&format!(
        "SELECT queryid FROM pg_stat_statements WHERE query LIKE 'SELECT $1 AS keep_marker,%' AND array_length(string_to_array(query, ','), 1) = {columns} AND dbid = (SELECT oid FROM pg_database WHERE datname = 'dbintel_test') LIMIT 1"
    ));
    assert!(!query_id.is_empty(), "the marker of {columns} columns is not in pg_stat_statements");
    let mut run = Run::start(
        &[pipe.to_str().unwrap(), "--no-watch", "--reload-token-env", RELOAD_TOKEN_ENV],
        &[("KEEP_PG_DSN", PG_MONITOR), (RELOAD_TOKEN_ENV, RELOAD_TOKEN)],
    );
    run.wait_for("two statements scrapes", Duration::from_secs(10), || (statements_scrapes(&run) >= 2).then_some(()));
    let since = run.target("pg")["since"].clone();

    // only `other` changes: `pg` keeps its connection and its baseline, so
    // its first scrape after the reload sends exactly the calls made since
    write("2");
    let (status, body) = run.reload();
    assert_eq!(status, 200, "{body}");
    run_marker(4);
    let calls = run.wait_for("the marker's delta after the reload", Duration::from_secs(10), || {
        events(&out).into_iter().find_map(|(name, attrs)| {
            let id = attrs.get("db.query.id").and_then(|t| t.as_str()).unwrap_or_default();
            (name == "db.server.top_query" && id == query_id).then(|| attrs["db.query.calls"].clone())
        })
    });
    assert_eq!(calls, serde_json::json!("4"), "a re-baselined source would have sent nothing");
    assert_eq!(run.target("pg")["since"], since, "the kept source never left `up`");
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert_eq!(log.matches("target state source=\"pg\" from=\"connecting\"").count(), 1, "pg connected once:\n{log}");
    assert_eq!(log.matches("target state source=\"other\" from=\"connecting\"").count(), 2, "other restarted:\n{log}");
}

#[test]
fn a_stop_flushes_the_partial_activity_window() {
    let dir = scratch("run-ash-flush");
    let pipe = dir.join("p.pipe");
    let out = dir.join("out.jsonl");
    std::fs::write(
        &pipe,
        format!(
            "source pg = postgres {{\n  dsn = env(\"FLUSH_PG_DSN\")\n  collect activity {{ every = 200ms, window = 1h }}\n}}\nsink out = file {{ path = \"{}\" }}\npipeline a = pg.activity -> out\n",
            out.display()
        ),
    )
    .unwrap();
    let sleeper = std::thread::spawn(|| {
        std::process::Command::new("psql")
            .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "dbintel_test", "-c", "SELECT pg_sleep(4)"])
            .output()
    });
    let mut run = Run::start(&[pipe.to_str().unwrap(), "--no-watch"], &[("FLUSH_PG_DSN", PG_MONITOR)]);
    std::thread::sleep(Duration::from_millis(1500));
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    let _ = sleeper.join();
    assert!(status.success(), "{log}");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(text.contains("postgresql.ash.active_sessions"), "the hour-long window's first samples were dropped:\n{log}");
    assert!(text.contains("PgSleep"), "the sleeping session is in the flushed window:\n{text}\n{log}");
}

#[test]
fn a_reload_while_the_endpoint_is_down_loses_nothing() {
    let dir = scratch("run-reload-outage");
    let port = common::otlp::free_port();
    let pipe = dir.join("p.pipe");
    let write = |version: &str| {
        std::fs::write(
            &pipe,
            format!(
                r#"source gen = sql {{
  dsn = env("OUTAGE_PG_DSN")
  interval = 200ms
  jitter = 0%
  collect q {{ query = "SELECT random() * n AS v FROM generate_series(1, 1000) n", metric = "outage.v", value_column = "v" }}
}}
transform stamp {{
  set(attributes["version"], "{version}")
}}
sink out = otlp {{ endpoint = "http://127.0.0.1:{port}", protocol = http, queue_size = 64KiB, on_full = block, retry_initial = 500ms, retry_max = 1s, retry_elapsed = 10m }}
pipeline p = gen.q -> stamp -> out
"#
            ),
        )
        .unwrap()
    };
    write("1");
    let mut run = Run::start(
        &[pipe.to_str().unwrap(), "--no-watch", "--shutdown-timeout", "3s", "--reload-token-env", RELOAD_TOKEN_ENV],
        &[("OUTAGE_PG_DSN", PG_MONITOR), (RELOAD_TOKEN_ENV, RELOAD_TOKEN)],
    );
    // the endpoint is down: the queue fills, the pipeline blocks, sources skip
    // (the queue holds requests compressed, and the open request up to 4 MiB
    // raw more: 1,000 random values a scrape fill both in seconds)
    run.wait_for("the queue to fill and sources to hold back", Duration::from_secs(40), || {
        (run.metric(r#"dbintel_source_skipped_scrapes_total{node="gen"}"#) > 0.0).then_some(())
    });
    write("2");
    let (status, body) = run.reload();
    assert_eq!(status, 200, "the reload is applied even though the old plan cannot drain: {body}");

    std::thread::sleep(Duration::from_secs(1));
    // the endpoint comes back: everything accepted, before and after the reload, arrives
    let receiver = common::otlp::Receiver::start(&dir, "r", 0, port, "[]");
    run.wait_for("the queue to drain", Duration::from_secs(60), || {
        (common::otlp::points(&receiver.accepted()).iter().any(|p| p.2.get("version") == Some(&serde_json::json!("2")))).then_some(())
    });
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    let points = common::otlp::points(&receiver.accepted());
    assert_eq!(points.len(), summary_out(&log, "gen"), "every point the source emitted arrived:\n{log}");
    let v1 = points.iter().filter(|p| p.2.get("version") == Some(&serde_json::json!("1"))).count();
    assert!(v1 > 0 && points.len() > v1, "points from before and after the reload: {v1} of {}", points.len());
    assert!(!log.contains("closing the export queues"), "{log}");
}

/// A tmpfs of `size` the test mounts (tests run as root; a failure to
/// mount fails the test).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).output();
        let out = out.expect("mount(8)");
        assert!(out.status.success(), "mounting a {size} tmpfs at {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_sink_that_fails_is_retried_with_backoff_and_loses_nothing() {
    let dir = scratch("run-sink-retry");
    let disk = Tmpfs::mount(&dir.join("small"), "64k");
    let out = disk.0.join("out.jsonl");
    // fill the filesystem: every write the file sink tries fails
    let filler = disk.0.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while std::io::Write::write_all(&mut f, &block).is_ok() {}
    }
    let rows = common::otlp::rows(&dir, "rows.ndjson", 200, 40);
    std::fs::write(dir.join("p.pipe"), stamped_rows_pipe("1", &out)).unwrap();
    let input = format!("rows.m={}", rows.display());
    let mut run = Run::start(&[dir.join("p.pipe").to_str().unwrap(), "--input", &input, "--no-watch"], &[("ROWS_DSN", "unused")]);
    let errors = |run: &Run| run.metric(r#"dbintel_node_errors_total{node="out",kind="sink"}"#);
    run.wait_for("the sink to fail and be retried", Duration::from_secs(20), || (errors(&run) >= 3.0).then_some(()));
    assert_eq!(run.get("/readyz").0, 200, "the plan is still running");
    for line in std::fs::read_to_string(&out).unwrap_or_default().lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("a torn line in the file sink ({e}): {line:?}"));
    }
    // room again: the held batch goes through, whole and once
    std::fs::remove_file(&filler).unwrap();
    run.wait_for("every row in the file", Duration::from_secs(20), || (versions(&out).get("1") == Some(&200)).then_some(()));
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert_eq!(versions(&out).get("1"), Some(&200), "every row exactly once");
    assert!(log.contains("the sink failed; offering the batch again with backoff"), "{log}");
    assert_eq!(log.matches("the sink failed; offering the batch again").count(), 1, "logged once for the run of failures:\n{log}");
}

#[test]
fn metrics_parse_with_the_official_openmetrics_parser_and_name_every_failure_counter() {
    let dir = scratch("run-metrics");
    let pipe = dir.join("p.pipe");
    std::fs::write(
        &pipe,
        r#"source gen = sql {
  dsn = env("METRICS_PG_DSN")
  interval = 300ms
  collect q { query = "SELECT 1 AS v", metric = "metrics.one", value_column = "v" }
}
sample some { probabilistic 50% }
sink out = otlp { endpoint = "http://127.0.0.1:9", protocol = http, queue = disk("QUEUE"), retry_initial = 1s }
pipeline p = gen.q -> some -> out
"#
        .replace("QUEUE", dir.join("queue").to_str().unwrap()),
    )
    .unwrap();
    let run = Run::start(&[pipe.to_str().unwrap(), "--no-watch"], &[("METRICS_PG_DSN", PG_MONITOR)]);
    run.wait_for("a scrape", Duration::from_secs(10), || {
        (run.metric(r#"dbintel_node_emitted_records_total{node="gen",kind="source"}"#) > 0.0).then_some(())
    });
    let (code, body) = run.get("/metrics");
    assert_eq!(code, 200);
    // the reference parser, not ours
    let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families\nfor f in text_string_to_metric_families(sys.stdin.read()):\n    print(f.name, f.type, len(f.samples))\n";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (tests/run.sh installs prometheus_client)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let parsed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "the OpenMetrics parser refused /metrics: {}\n{body}", String::from_utf8_lossy(&out.stderr));
    for (family, kind) in [
        ("dbintel_node_errors", "counter"),
        ("dbintel_source_up", "gauge"),
        ("dbintel_target_state", "gauge"),
        ("dbintel_collector_errors", "counter"),
        ("dbintel_export_queue_errors", "counter"),
        ("dbintel_export_sender_events", "counter"),
        ("dbintel_export_latency_seconds", "histogram"),
        ("dbintel_sampler_local_fallback_decisions", "counter"),
        ("dbintel_http_refused", "counter"),
        ("dbintel_breaker_state", "gauge"),
    ] {
        assert!(parsed.lines().any(|l| l.starts_with(&format!("{family} {kind} "))), "{family} ({kind}) missing:\n{parsed}");
    }
}
