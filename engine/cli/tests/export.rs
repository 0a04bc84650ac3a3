//! OTLP export and `dbintel run`, against real peers: the official
//! opentelemetry-proto classes behind grpcio and http.server
//! (tests/otlp_receiver.py), rotel-agent, and the real PostgreSQL.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::otlp::{free_port, points, rows, rows_pipe, Receiver, Rotel, Run};
use common::{psql, scratch, PG_MONITOR};
use serde_json::Value;

fn values(requests: &[Value], name: &str) -> Vec<i64> {
    points(requests).into_iter().filter(|p| p.0 == name).map(|p| p.1 as i64).collect()
}

/// What `/status` says the sink sends with now.
fn compression_in_use(run: &Run) -> String {
    let (_, body) = run.get("/status");
    let status: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"));
    status["sinks"][0]["compression"].as_str().unwrap_or_default().to_string()
}

#[test]
fn grpc_and_http_deliver_every_point_to_the_official_decoder_with_each_compression() {
    let dir = scratch("export-protocols");
    let receiver = Receiver::start(&dir, "r", 0, 0, "[]");
    let input = rows(&dir, "rows.ndjson", 3000, 20);
    // (protocol, configured, what the receiver sees first, then, steps):
    // grpcio has no zstd: the first request is refused and every one
    // after it goes as gzip
    for (protocol, compression, first, then, steps) in [
        ("grpc", "gzip", "gzip", "gzip", 0),
        ("grpc", "zstd", "zstd", "gzip", 1),
        ("grpc", "none", "identity", "identity", 0),
        ("http", "zstd", "zstd", "zstd", 0),
        ("http", "gzip", "gzip", "gzip", 0),
        ("http", "none", "identity", "identity", 0),
    ] {
        let (before, wire_before) = (receiver.accepted().len(), receiver.wire().len());
        let port = if protocol == "grpc" { receiver.grpc } else { receiver.http };
        let pipe = dir.join(format!("{protocol}-{compression}.pipe"));
        let sink = format!(r#"otlp {{ endpoint = "http://127.0.0.1:{port}", protocol = {protocol}, compression = {compression} }}"#);
        std::fs::write(&pipe, rows_pipe(&sink, "size = 1000")).unwrap();
        let input_arg = format!("rows.m={}", input.display());
        let mut run = Run::start(
            &[pipe.to_str().unwrap(), "--input", &input_arg],
            &[("ROWS_DSN", "unused"), ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,team=db%20ops")],
        );
        let got = run.wait_for("3000 points", Duration::from_secs(30), || {
            let accepted: Vec<Value> = receiver.accepted().into_iter().skip(before).collect();
            (values(&accepted, "test.value").len() >= 3000).then_some(accepted)
        });
        let case = format!("{protocol}/{compression}");
        let mut seen = values(&got, "test.value");
        seen.sort_unstable();
        assert_eq!(seen, (0..3000).collect::<Vec<_>>(), "{case}: every value exactly once");
        assert!(got.iter().all(|r| r["transport"] == protocol), "{case}");
        // what the receiver saw: gRPC from the bytes on the wire (refused
        // calls too), HTTP from the Content-Encoding it decoded
        let seen_encodings: Vec<String> = if protocol == "grpc" {
            receiver.wire().into_iter().skip(wire_before).collect()
        } else {
            got.iter().map(|r| r["encoding"].as_str().unwrap_or_default().to_string()).collect()
        };
        assert_eq!(seen_encodings.first().map(String::as_str), Some(first), "{case}: {seen_encodings:?}");
        assert!(seen_encodings[1..].iter().all(|e| e == then), "{case}: {seen_encodings:?}");
        assert_eq!(seen_encodings.len(), got.len() + steps, "{case}: one call per accepted request, one more per step: {seen_encodings:?}");
        assert_eq!(compression_in_use(&run), then, "{case}: /status");
        let pts = points(&got);
        let (_, _, attributes, resource) = pts.iter().find(|p| p.1 == 42.0).expect("point 42");
        assert_eq!(attributes["k"], "key-42", "{case}: {attributes:?}");
        assert_eq!(resource["deployment.environment"], "test", "OTEL_RESOURCE_ATTRIBUTES reaches the resource");
        assert_eq!(resource["team"], "db ops", "percent-decoded");
        assert!(resource.get("telemetry.sdk.name").is_none(), "dbintel is not an OpenTelemetry SDK: {resource:?}");
        assert_eq!(run.metric(r#"dbintel_export_items_total{sink="out",outcome="sent"}"#), 3000.0, "{}", run.stderr());
        assert_eq!(
            run.metric(r#"dbintel_export_items_total{sink="out",outcome="failed"}"#),
            0.0,
            "{case}: a refused encoding drops nothing"
        );
        let (_, log) = run.signal("TERM", Duration::from_secs(30));
        assert_eq!(log.matches("refused our compression; stepping down").count(), steps, "{case}: the step is logged once:\n{log}");
        if steps > 0 {
            assert!(log.contains(r#"from="zstd" to="gzip""#), "{case}: {log}");
        }
    }
}

#[test]
fn http_415_and_a_400_before_any_success_step_down_and_resend_but_a_later_400_is_about_the_data() {
    let dir = scratch("export-http-steps");
    // batch 1: zstd refused with 415, resent as gzip and taken; batch 2:
    // gzip has worked, so its 400 is about the data (dropped, counted);
    // batch 3: taken
    let receiver = Receiver::start(&dir, "r", 0, 0, r#"[{"http": 415}, {}, {"http": 400}]"#);
    let input = rows(&dir, "rows.ndjson", 30, 5);
    let pipe = dir.join("p.pipe");
    // linger = 1ms: each batch is a request of its own
    let sink = format!(r#"otlp {{ endpoint = "http://127.0.0.1:{}", protocol = http, compression = zstd, linger = 1ms }}"#, receiver.http);
    std::fs::write(&pipe, rows_pipe(&sink, "size = 10")).unwrap();
    let input_arg = format!("rows.m={}", input.display());
    let mut run = Run::start(&[pipe.to_str().unwrap(), "--input", &input_arg], &[("ROWS_DSN", "unused")]);
    let requests = run.wait_for("three batches answered", Duration::from_secs(30), || {
        let r = receiver.requests();
        (r.len() >= 4).then_some(r)
    });
    let seen: Vec<(String, String)> =
        requests.iter().map(|r| (r["encoding"].as_str().unwrap_or_default().to_string(), r["answer"].to_string())).collect();
    let want: Vec<(String, String)> = [("zstd", "415"), ("gzip", "\"ok\""), ("gzip", "400"), ("gzip", "\"ok\"")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(seen, want, "(encoding, answer) of each request: {requests:?}");
    assert_eq!(
        run.metric(r#"dbintel_export_items_total{sink="out",outcome="failed"}"#),
        10.0,
        "only the batch refused after gzip worked:\n{}",
        run.stderr()
    );
    let (_, log) = run.signal("TERM", Duration::from_secs(30));
    assert_eq!(log.matches("refused our compression; stepping down").count(), 1, "{log}");

    // a bare 400 on the very first request is treated like a 415
    let dir = scratch("export-http-first-400");
    let receiver = Receiver::start(&dir, "r", 0, 0, r#"[{"http": 400}]"#);
    let sink = format!(r#"otlp {{ endpoint = "http://127.0.0.1:{}", protocol = http, compression = zstd }}"#, receiver.http);
    std::fs::write(&pipe, rows_pipe(&sink, "size = 100")).unwrap();
    let run = Run::start(&[pipe.to_str().unwrap(), "--input", &input_arg], &[("ROWS_DSN", "unused")]);
    let requests = run.wait_for("the resent batch", Duration::from_secs(30), || {
        let r = receiver.requests();
        (r.len() >= 2).then_some(r)
    });
    let seen: Vec<&str> = requests.iter().map(|r| r["encoding"].as_str().unwrap_or_default()).collect();
    assert_eq!(seen, ["zstd", "gzip"], "encodings of the requests: {requests:?}");
    assert_eq!(values(&requests, "test.value").len(), 30, "the resent batch holds every point:\n{}", run.stderr());
    assert_eq!(run.metric(r#"dbintel_export_items_total{sink="out",outcome="failed"}"#), 0.0, "{}", run.stderr());
}

#[test]
fn rotel_agent_takes_every_compression_over_grpc_and_http_with_nothing_lost() {
    let dir = scratch("export-rotel-compression");
    let receiver = Receiver::start(&dir, "r", 0, 0, "[]");
    let rotel = Rotel::start(&dir, receiver.grpc);
    let input = rows(&dir, "rows.ndjson", 300, 5);
    let input_arg = format!("rows.m={}", input.display());
    for (protocol, port) in [("grpc", rotel.grpc), ("http", rotel.http)] {
        for compression in ["gzip", "zstd", "none"] {
            let case = format!("rotel {protocol}/{compression}");
            let before = receiver.accepted().len();
            let pipe = dir.join(format!("{protocol}-{compression}.pipe"));
            let sink = format!(r#"otlp {{ endpoint = "http://127.0.0.1:{port}", protocol = {protocol}, compression = {compression} }}"#);
            std::fs::write(&pipe, rows_pipe(&sink, "size = 100")).unwrap();
            let mut run = Run::start(&[pipe.to_str().unwrap(), "--input", &input_arg], &[("ROWS_DSN", "unused")]);
            let got = run.wait_for(&format!("{case}: 300 points through rotel"), Duration::from_secs(30), || {
                let after: Vec<Value> = receiver.accepted().into_iter().skip(before).collect();
                (values(&after, "test.value").len() >= 300).then_some(after)
            });
            let mut seen = values(&got, "test.value");
            seen.sort_unstable();
            assert_eq!(seen, (0..300).collect::<Vec<_>>(), "{case}: every value exactly once");
            assert_eq!(run.metric(r#"dbintel_export_items_total{sink="out",outcome="failed"}"#), 0.0, "{case}");
            let in_use = compression_in_use(&run);
            let (_, log) = run.signal("TERM", Duration::from_secs(30));
            let steps = log.matches("refused our compression; stepping down").count();
            // what rotel takes is rotel's business; what we claim must hold
            match (compression, steps) {
                ("zstd", 1) => {
                    assert!(log.contains(r#"from="zstd" to="gzip""#), "{case}: {log}");
                    assert_eq!(in_use, "gzip", "{case}: stepped down, so /status must say gzip");
                }
                (_, 0) => assert_eq!(in_use, if compression == "none" { "identity" } else { compression }, "{case}"),
                _ => panic!("{case}: {steps} steps logged:\n{log}"),
            }
        }
    }
}

#[test]
fn the_newrelic_preset_sends_the_license_key_header_and_never_logs_it() {
    let dir = scratch("export-newrelic");
    let receiver = Receiver::start(&dir, "r", 0, 0, "[]");
    let input = rows(&dir, "rows.ndjson", 10, 5);
    let pipe = dir.join("nr.pipe");
    std::fs::write(&pipe, rows_pipe(r#"newrelic { license_key = env("NR_KEY_FOR_TEST"), region = eu }"#, "size = 100")).unwrap();
    let input_arg = format!("rows.m={}", input.display());
    let key = "eu01xxSECRET-license-key-0123456789NRAL";
    let mut run = Run::start(
        &[pipe.to_str().unwrap(), "--input", &input_arg],
        &[
            ("ROWS_DSN", "unused"),
            ("NR_KEY_FOR_TEST", key),
            // the shipped pipelines are pointed elsewhere by environment alone
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://127.0.0.1:{}", receiver.http)),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ],
    );
    let got = run.wait_for("10 points", Duration::from_secs(30), || {
        let a = receiver.accepted();
        (values(&a, "test.value").len() >= 10).then_some(a)
    });
    assert!(
        got.iter().all(|r| r["api_key"] == key),
        "requests without the license key header: {:?}",
        got.iter().map(|r| &r["api_key"]).collect::<Vec<_>>()
    );
    assert!(
        got.iter().all(|r| r["encoding"] == "zstd"),
        "New Relic's preset compresses with zstd: {:?}",
        got.iter().map(|r| &r["encoding"]).collect::<Vec<_>>()
    );
    let (_, metrics) = run.get("/metrics");
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert!(!log.contains(key) && !metrics.contains(key), "the license key leaked:\n{log}");
}

#[test]
fn real_postgres_statements_arrive_with_exact_deltas_and_entity_attributes() {
    let dir = scratch("export-postgres");
    let receiver = Receiver::start(&dir, "r", 0, 0, "[]");
    let marker =
        "SELECT count(*) FROM pg_class WHERE relname = 'dbintel_export_marker' AND relpages >= 0 AND relnatts >= 0 AND relhasindex";
    psql(marker); // known before the baseline scrape
    let pipe = dir.join("pg.pipe");
    let sanitize = common::root().join("pipelines/sanitize_pii.pipe");
    std::fs::write(
        &pipe,
        format!(
            "use \"{}\"\nsource pg = postgres {{\n  dsn = env(\"EXPORT_PG_DSN\")\n  interval = 1s\n  jitter = 0%\n  collect statements {{ top = 10000 }}\n  collect instance\n}}\nsink out = otlp {{ endpoint = \"http://127.0.0.1:{}\", protocol = grpc }}\npipeline q = pg.statements -> sanitize_pii -> batch -> out\npipeline i = pg.instance -> batch -> out\n",
            sanitize.display(),
            receiver.grpc
        ),
    )
    .unwrap();
    let mut run = Run::start(&[pipe.to_str().unwrap()], &[("EXPORT_PG_DSN", PG_MONITOR)]);
    // the baseline scrape has happened once instance metrics arrive
    run.wait_for("instance metrics", Duration::from_secs(20), || {
        (!values(&receiver.accepted(), "postgresql.backends").is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1200));
    for _ in 0..7 {
        psql(marker);
    }
    // the marker's text arrives in a top_query event; its calls deltas sum to 7
    let (id, total) = run.wait_for("the marker's deltas to add up", Duration::from_secs(20), || {
        let accepted = receiver.accepted();
        let id = accepted.iter().filter(|r| r["signal"] == "logs").find_map(|r| {
            let logs = r["request"]["resourceLogs"][0]["scopeLogs"][0]["logRecords"].as_array()?.clone();
            logs.iter().find_map(|l| {
                let attrs = l["attributes"].as_array()?;
                let text = attrs.iter().find(|a| a["key"] == "db.query.text")?["value"]["stringValue"].as_str()?.to_string();
                if !text.contains("relhasindex") {
                    return None;
                }
                assert!(!text.contains("dbintel_export_marker"), "a literal reached the receiver: {text}");
                Some(attrs.iter().find(|a| a["key"] == "db.query.id")?["value"].clone())
            })
        })?;
        let id_value = id.as_object()?.values().next()?.clone();
        let total: f64 = points(&accepted)
            .iter()
            .filter(|p| p.0 == "postgresql.query.calls" && p.2.get("db.query.id") == Some(&id_value))
            .map(|p| p.1)
            .sum();
        (total >= 7.0).then_some((id_value, total))
    });
    assert_eq!(total, 7.0, "Δcalls for query {id}");
    let pts = points(&receiver.accepted());
    let (_, _, _, resource) = pts.iter().find(|p| p.0 == "postgresql.query.calls").expect("a calls point");
    // one resource per server, keyed as New Relic's collector keys it (a
    // loopback host is this machine); the database is on the points
    let (id, here) = (common::nr_service_instance_id("127.0.0.1", 5432), dbintel_sources::entity::hostname());
    for (key, value) in
        [("db.system.name", "postgresql"), ("server.address", here.as_str()), ("server.port", "5432"), ("service.instance.id", id.as_str())]
    {
        assert_eq!(resource[key], value, "{key} of the resource: {resource:?}");
    }
    assert!(resource.get("db.namespace").is_none(), "{resource:?}");
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert!(!log.contains("monitor-secret-pw"), "{log}");
}

#[test]
fn rotel_agent_accepts_the_shipped_postgres_pipeline_over_grpc_and_http() {
    let dir = scratch("export-rotel");
    let receiver = Receiver::start(&dir, "r", 0, 0, "[]");
    let rotel = Rotel::start(&dir, receiver.grpc);
    for (protocol, port) in [("grpc", rotel.grpc), ("http/protobuf", rotel.http)] {
        let before = receiver.accepted().len();
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut run = Run::start(
            &["pipelines/postgres.pipe"],
            &[
                ("PG_DSN", PG_MONITOR),
                ("NEW_RELIC_LICENSE_KEY", "not-a-real-key"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ],
        );
        // the instance collector reports at once; through rotel it reaches
        // the official decoder intact
        let got = run.wait_for("instance metrics through rotel", Duration::from_secs(30), || {
            let after: Vec<Value> = receiver.accepted().into_iter().skip(before).collect();
            (!values(&after, "postgresql.backends").is_empty()).then_some(after)
        });
        let pts = points(&got);
        let (_, _, _, resource) = pts.iter().find(|p| p.0 == "postgresql.backends").expect("backends");
        assert_eq!(resource["db.system.name"], "postgresql", "{protocol}");
        assert_eq!(resource["server.port"], "5432", "{protocol}");
        assert_eq!(run.metric(r#"dbintel_export_requests_total{sink="newrelic",outcome="failed"}"#), 0.0, "{protocol}");
        let (status, log) = run.signal("TERM", Duration::from_secs(30));
        assert!(status.success(), "{log}");
    }
}

#[test]
fn http_429_retry_after_is_honoured_and_each_permanent_refusal_is_logged_once_per_cause() {
    let dir = scratch("export-http-errors");
    // five batches of 20: 429 then 400; 400 again (the same cause); 403 (another
    // cause); 503 then ok; ok
    let script = r#"[{"http": 429, "retry_after": "2"}, {"http": 400}, {"http": 400}, {"http": 403}, {"http": 503}]"#;
    let receiver = Receiver::start(&dir, "r", 0, 0, script);
    let input = rows(&dir, "rows.ndjson", 100, 5);
    let pipe = dir.join("p.pipe");
    let sink = format!(
        r#"otlp {{ endpoint = "http://127.0.0.1:{}", protocol = http, compression = none, retry_initial = 100ms, retry_max = 200ms, linger = 1ms }}"#,
        receiver.http
    );
    std::fs::write(&pipe, rows_pipe(&sink, "size = 20")).unwrap();
    let input_arg = format!("rows.m={}", input.display());
    let mut run = Run::start(&[pipe.to_str().unwrap(), "--input", &input_arg], &[("ROWS_DSN", "unused")]);
    let requests = run.wait_for("the last batch to arrive", Duration::from_secs(30), || {
        let r = receiver.requests();
        (r.len() >= 7).then_some(r)
    });
    let answers: Vec<String> = requests.iter().map(|r| r["answer"].to_string()).collect();
    assert_eq!(answers, ["429", "400", "400", "403", "503", "\"ok\"", "\"ok\""], "{requests:?}");
    let gap = requests[1]["t"].as_f64().unwrap() - requests[0]["t"].as_f64().unwrap();
    assert!(gap >= 1.9, "Retry-After: 2 was not honoured (retried after {gap:.2}s)");
    let gap = requests[5]["t"].as_f64().unwrap() - requests[4]["t"].as_f64().unwrap();
    assert!(gap < 1.5, "503 without Retry-After follows our own backoff (100 ms), not {gap:.2}s");
    assert_eq!(values(&requests, "test.value").len(), 40, "the two batches taken, 20 points each:\n{}", run.stderr());
    assert_eq!(run.metric(r#"dbintel_export_items_total{sink="out",outcome="failed"}"#), 60.0, "{}", run.stderr());
    assert_eq!(
        run.metric(r#"dbintel_export_requests_total{sink="out",outcome="failed"}"#),
        3.0,
        "every refusal counted:\n{}",
        run.stderr()
    );
    assert_eq!(run.metric(r#"dbintel_export_requests_total{sink="out",outcome="retried"}"#), 1.0, "the 503:\n{}", run.stderr());
    assert_eq!(run.metric(r#"dbintel_export_requests_total{sink="out",outcome="throttled"}"#), 1.0, "the 429:\n{}", run.stderr());
    let (_, log) = run.signal("TERM", Duration::from_secs(30));
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains("the receiver refused the data")).collect();
    assert_eq!(refusals.len(), 2, "one line per cause (400 twice, 403 once):\n{log}");
    assert!(refusals[0].contains("400") && refusals[1].contains("403"), "{refusals:?}");
}

#[test]
fn grpc_retry_info_is_honoured_and_invalid_argument_is_permanent() {
    let dir = scratch("export-grpc-errors");
    let script = r#"[{"grpc": "UNAVAILABLE", "retry_delay": 2.0}, {"grpc": "INVALID_ARGUMENT"}, {"grpc": "UNAVAILABLE"}]"#;
    let receiver = Receiver::start(&dir, "r", 0, 0, script);
    let input = rows(&dir, "rows.ndjson", 100, 5);
    let pipe = dir.join("p.pipe");
    let sink =
        format!(r#"otlp {{ endpoint = "http://127.0.0.1:{}", retry_initial = 100ms, retry_max = 200ms, linger = 1ms }}"#, receiver.grpc);
    std::fs::write(&pipe, rows_pipe(&sink, "size = 50")).unwrap();
    let input_arg = format!("rows.m={}", input.display());
    let mut run = Run::start(&[pipe.to_str().unwrap(), "--input", &input_arg], &[("ROWS_DSN", "unused")]);
    let requests = run.wait_for("the second batch to arrive", Duration::from_secs(30), || {
        let r = receiver.requests();
        (r.len() >= 4 && r.iter().any(|x| x["answer"] == "ok")).then_some(r)
    });
    let answers: Vec<&str> = requests.iter().map(|r| r["answer"].as_str().unwrap_or_default()).collect();
    assert_eq!(answers, ["UNAVAILABLE", "INVALID_ARGUMENT", "UNAVAILABLE", "ok"], "{requests:?}\n{}", run.stderr());
    let gap = requests[1]["t"].as_f64().unwrap() - requests[0]["t"].as_f64().unwrap();
    assert!(gap >= 1.9, "RetryInfo of 2 s was not honoured (retried after {gap:.2}s)");
    assert_eq!(run.metric(r#"dbintel_export_items_total{sink="out",outcome="failed"}"#), 50.0, "{}", run.stderr());
    let _ = run.signal("TERM", Duration::from_secs(30));
}

#[test]
fn a_payload_over_one_megabyte_is_split_and_long_values_arrive_truncated() {
    let dir = scratch("export-split");
    let receiver = Receiver::start(&dir, "r", 0, 0, "[]");
    let input = rows(&dir, "rows.ndjson", 3000, 3000);
    // one more row with a 10,000-character value
    let mut text = std::fs::read_to_string(&input).unwrap();
    text.push_str(&format!("{{\"v\": 3000, \"k\": \"long\", \"text\": \"{}\"}}\n", "é".repeat(10_000)));
    std::fs::write(&input, text).unwrap();
    let pipe = dir.join("p.pipe");
    // uncompressed, so the limit as sent is the protobuf's size
    let sink = format!(r#"otlp {{ endpoint = "http://127.0.0.1:{}", protocol = http, compression = none }}"#, receiver.http);
    std::fs::write(&pipe, rows_pipe(&sink, "size = 100000, max_bytes = 64MiB, timeout = 1s")).unwrap();
    let input_arg = format!("rows.m={}", input.display());
    let run = Run::start(&[pipe.to_str().unwrap(), "--input", &input_arg], &[("ROWS_DSN", "unused")]);
    let got = run.wait_for("3001 points", Duration::from_secs(30), || {
        let a = receiver.accepted();
        (values(&a, "test.value").len() >= 3001).then_some(a)
    });
    assert!(got.len() >= 9, "about 9 MB must need at least 9 requests, got {}", got.len());
    for r in &got {
        assert!(r["bytes"].as_u64().unwrap() <= 1_000_000, "a request of {} bytes", r["bytes"]);
    }
    let mut seen = values(&got, "test.value");
    seen.sort_unstable();
    let missing: Vec<i64> = (0..=3000).filter(|v| seen.binary_search(v).is_err()).take(20).collect();
    assert!(missing.is_empty() && seen.len() == 3001, "every value once; {} seen, missing (first 20): {missing:?}", seen.len());

    let pts = points(&got);
    let (_, _, attributes, _) = pts.iter().find(|p| p.1 == 3000.0).expect("the long row");
    let chars = attributes["text"].as_str().map(|t| t.chars().count());
    assert_eq!(chars, Some(4095), "the long value cut to New Relic's limit");
    assert_eq!(attributes["dbintel.truncated"], true, "the cut record is marked: {:?}", attributes.keys().collect::<Vec<_>>());
    assert_eq!(run.metric(r#"dbintel_export_shaped_total{sink="out",change="value_truncated"}"#), 1.0, "{}", run.stderr());
}

#[test]
fn an_endpoint_down_for_a_minute_loses_nothing_and_memory_stays_at_the_bound() {
    let dir = scratch("export-outage");
    let port = free_port();
    let input = rows(&dir, "rows.ndjson", 20_000, 200);
    let pipe = dir.join("p.pipe");
    let sink = format!(
        r#"otlp {{ endpoint = "http://127.0.0.1:{port}", protocol = http, compression = none, queue_size = 1MiB, on_full = block, retry_initial = 1s, retry_max = 2s }}"#
    );
    std::fs::write(&pipe, rows_pipe(&sink, "size = 500")).unwrap();
    let input_arg = format!("rows.m={}", input.display());
    let run = Run::start(&[pipe.to_str().unwrap(), "--input", &input_arg], &[("ROWS_DSN", "unused")]);
    let started = Instant::now();
    let (mut max_queue, mut rss) = (0.0f64, Vec::new());
    while started.elapsed() < Duration::from_secs(60) {
        max_queue = max_queue.max(run.metric(r#"dbintel_export_queue_bytes{sink="out"}"#));
        rss.push(run.metric("process_resident_memory_bytes"));
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(max_queue <= 1024.0 * 1024.0, "the queue grew to {max_queue} bytes, past its 1 MiB bound");
    assert!(max_queue > 512.0 * 1024.0, "the outage should have filled the queue (max {max_queue})");
    // flat: the last half of the outage holds no more than the first half
    let (first, second) = rss.split_at(rss.len() / 2);
    let peak = |s: &[f64]| s.iter().cloned().fold(0.0, f64::max);
    assert!(peak(second) <= peak(first) + 2.0 * 1024.0 * 1024.0, "RSS kept growing while the endpoint was down: {rss:?}");
    assert!(peak(&rss) < 64.0 * 1024.0 * 1024.0, "RSS {} MiB", peak(&rss) / 1048576.0);

    let receiver = Receiver::start(&dir, "r", 0, port, "[]");
    let got = run.wait_for("all 20,000 points after the outage", Duration::from_secs(150), || {
        let a = receiver.accepted();
        (values(&a, "test.value").len() >= 20_000).then_some(a)
    });
    let seen: BTreeSet<i64> = values(&got, "test.value").into_iter().collect();
    assert_eq!(seen.len(), 20_000, "distinct points after the outage:\n{}", run.stderr());
    assert_eq!(run.metric(r#"dbintel_export_items_total{sink="out",outcome="failed"}"#), 0.0, "{}", run.stderr());
}

#[test]
fn kill_9_with_the_disk_queue_then_restart_delivers_everything() {
    let dir = scratch("export-disk");
    let port = free_port();
    let queue = dir.join("queue");
    let input = rows(&dir, "rows.ndjson", 5000, 50);
    let empty = dir.join("empty.ndjson");
    std::fs::write(&empty, "").unwrap();
    let pipe = dir.join("p.pipe");
    let sink = format!(
        r#"otlp {{ endpoint = "http://127.0.0.1:{port}", protocol = http, queue = disk("{}"), retry_initial = 500ms, retry_max = 1s }}"#,
        queue.display()
    );
    std::fs::write(&pipe, rows_pipe(&sink, "size = 500")).unwrap();
    let input_arg = format!("rows.m={}", input.display());
    let mut run = Run::start(&[pipe.to_str().unwrap(), "--input", &input_arg], &[("ROWS_DSN", "unused")]);
    // in the disk queue: packed requests leave the packer within the
    // sink's linger and are on disk (fsynced) once the queue holds them
    run.wait_for("every point accepted into the disk queue", Duration::from_secs(30), || {
        (run.metric(r#"dbintel_export_queue_items{sink="out"}"#) == 5000.0).then_some(())
    });
    let (status, _) = run.signal("KILL", Duration::from_secs(10));
    assert!(!status.success(), "kill -9 ended it with {status}");

    let receiver = Receiver::start(&dir, "r", 0, port, "[]");
    let empty_arg = format!("rows.m={}", empty.display());
    let mut again = Run::start(&[pipe.to_str().unwrap(), "--input", &empty_arg], &[("ROWS_DSN", "unused")]);
    let got = again.wait_for("the queued points after the restart", Duration::from_secs(60), || {
        let a = receiver.accepted();
        (values(&a, "test.value").len() >= 5000).then_some(a)
    });
    let seen: BTreeSet<i64> = values(&got, "test.value").into_iter().collect();
    let missing: Vec<i64> = (0..5000).filter(|v| !seen.contains(v)).take(20).collect();
    assert_eq!(seen.len(), 5000, "every accepted point after kill -9; missing (first 20): {missing:?}\n{}", again.stderr());

    let (status, log) = again.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert!(log.contains("resuming requests left by an earlier run"), "{log}");
}

/// A CA and a server certificate for `localhost` / 127.0.0.1, made with
/// the openssl command line; (ca.pem, server.pem, server.key).
fn certificates(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=dbintel test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
    // and a client certificate from the same CA, for mutual TLS
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=dbintel", "-keyout", "client.key", "-out", "client.csr"]);
    // (with extensions: an X.509 v1 certificate is refused by rustls)
    std::fs::write(dir.join("client.cnf"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "client.cnf",
        "-out",
        "client.pem",
    ]);
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

#[test]
fn tls_with_a_ca_file_delivers_and_an_unknown_issuer_is_refused() {
    let dir = scratch("export-tls");
    let (ca, cert, key) = certificates(&dir);
    let receiver = Receiver::start_with(&dir, "r", 0, 0, "[]", &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let input = rows(&dir, "rows.ndjson", 20, 5);
    let input_arg = format!("rows.m={}", input.display());
    for (protocol, port) in [("grpc", receiver.grpc), ("http", receiver.http)] {
        let before = receiver.accepted().len();
        let pipe = dir.join(format!("{protocol}.pipe"));
        let sink = format!(r#"otlp {{ endpoint = "https://localhost:{port}", protocol = {protocol}, ca_file = "{}" }}"#, ca.display());
        std::fs::write(&pipe, rows_pipe(&sink, "size = 100")).unwrap();
        let run = Run::start(&[pipe.to_str().unwrap(), "--input", &input_arg], &[("ROWS_DSN", "unused")]);
        run.wait_for("20 points over TLS", Duration::from_secs(30), || {
            let a: Vec<Value> = receiver.accepted().into_iter().skip(before).collect();
            (values(&a, "test.value").len() >= 20).then_some(())
        });

        // the same endpoint without our CA: the system roots do not know it
        let before = receiver.requests().len();
        let untrusted = dir.join(format!("{protocol}-untrusted.pipe"));
        let sink = format!(r#"otlp {{ endpoint = "https://localhost:{port}", protocol = {protocol}, retry_initial = 200ms }}"#);
        std::fs::write(&untrusted, rows_pipe(&sink, "size = 100")).unwrap();
        let mut run =
            Run::start(&[untrusted.to_str().unwrap(), "--input", &input_arg, "--shutdown-timeout", "2s"], &[("ROWS_DSN", "unused")]);
        run.wait_for("retries against the unknown issuer", Duration::from_secs(30), || {
            (run.metric(r#"dbintel_export_requests_total{sink="out",outcome="retried"}"#) >= 2.0).then_some(())
        });
        assert_eq!(receiver.requests().len(), before, "nothing may be sent to an unverified server");
        let (status, log) = run.signal("TERM", Duration::from_secs(10));
        assert!(status.success(), "the shutdown deadline ends the retries: {log}");
        assert!(log.contains("queued data not delivered"), "what was lost is said: {log}");
        assert!(log.to_lowercase().contains("certificate") || log.contains("UnknownIssuer"), "{log}");
    }
}

#[test]
fn partial_success_is_logged_and_counted_over_both_protocols() {
    let dir = scratch("export-partial");
    let script = r#"[{"partial": 3, "message": "3 points had bad names"}, {"partial": 2, "message": "2 points too old"}]"#;
    let receiver = Receiver::start(&dir, "r", 0, 0, script);
    let input = rows(&dir, "rows.ndjson", 10, 5);
    let input_arg = format!("rows.m={}", input.display());
    for (protocol, port, rejected, message) in
        [("grpc", receiver.grpc, 3.0, "3 points had bad names"), ("http", receiver.http, 2.0, "2 points too old")]
    {
        let pipe = dir.join(format!("{protocol}.pipe"));
        let sink = format!(r#"otlp {{ endpoint = "http://127.0.0.1:{port}", protocol = {protocol} }}"#);
        std::fs::write(&pipe, rows_pipe(&sink, "size = 100")).unwrap();
        let mut run = Run::start(&[pipe.to_str().unwrap(), "--input", &input_arg], &[("ROWS_DSN", "unused")]);
        run.wait_for("the partial success to be counted", Duration::from_secs(20), || {
            (run.metric(r#"dbintel_export_items_total{sink="out",outcome="rejected"}"#) == rejected).then_some(())
        });
        assert_eq!(run.metric(r#"dbintel_export_items_total{sink="out",outcome="sent"}"#), 10.0 - rejected, "{}", run.stderr());
        let (_, log) = run.signal("TERM", Duration::from_secs(20));
        assert!(log.contains("accepted the request only in part") && log.contains(message), "{log}");
    }
}

#[test]
fn mutual_tls_sends_the_client_certificate_and_fails_without_it() {
    let dir = scratch("export-mtls");
    let (ca, cert, key) = certificates(&dir);
    let (client_cert, client_key) = (dir.join("client.pem"), dir.join("client.key"));
    let extra = ["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap(), "--tls-client-ca", ca.to_str().unwrap()];
    let receiver = Receiver::start_with(&dir, "r", 0, 0, "[]", &extra);
    let input = rows(&dir, "rows.ndjson", 20, 5);
    let input_arg = format!("rows.m={}", input.display());
    for (protocol, port) in [("grpc", receiver.grpc), ("http", receiver.http)] {
        let before = receiver.accepted().len();
        let pipe = dir.join(format!("{protocol}.pipe"));
        let sink = format!(
            r#"otlp {{ endpoint = "https://localhost:{port}", protocol = {protocol}, ca_file = "{}", client_cert = "{}", client_key = file("{}") }}"#,
            ca.display(),
            client_cert.display(),
            client_key.display()
        );
        std::fs::write(&pipe, rows_pipe(&sink, "size = 100")).unwrap();
        let mut run = Run::start(&[pipe.to_str().unwrap(), "--input", &input_arg], &[("ROWS_DSN", "unused")]);
        run.wait_for("20 points over mutual TLS", Duration::from_secs(30), || {
            let a: Vec<Value> = receiver.accepted().into_iter().skip(before).collect();
            (values(&a, "test.value").len() >= 20).then_some(())
        });
        let (_, log) = run.signal("TERM", Duration::from_secs(20));
        assert!(!log.contains("PRIVATE KEY"), "the client key must never be logged: {:?}", common::lines_with(&log, &["PRIVATE KEY"]));

        let bare = dir.join(format!("{protocol}-bare.pipe"));
        let sink = format!(
            r#"otlp {{ endpoint = "https://localhost:{port}", protocol = {protocol}, ca_file = "{}", retry_initial = 200ms }}"#,
            ca.display()
        );
        std::fs::write(&bare, rows_pipe(&sink, "size = 100")).unwrap();
        let before = receiver.accepted().len();
        let mut run = Run::start(&[bare.to_str().unwrap(), "--input", &input_arg, "--shutdown-timeout", "2s"], &[("ROWS_DSN", "unused")]);
        run.wait_for("the refusal without a client certificate", Duration::from_secs(30), || {
            (run.metric(r#"dbintel_export_requests_total{sink="out",outcome="retried"}"#) >= 1.0).then_some(())
        });
        assert_eq!(receiver.accepted().len(), before, "{protocol}: accepted without a client certificate");
        let _ = run.signal("TERM", Duration::from_secs(10));
    }
}

/// Every exported resource, metrics and logs alike, as key → value.
fn resources(requests: &[Value]) -> Vec<serde_json::Map<String, Value>> {
    let mut out = Vec::new();
    for r in requests.iter().filter(|r| r["answer"] == "ok") {
        let list = r["request"]["resourceMetrics"].as_array().or(r["request"]["resourceLogs"].as_array()).cloned().unwrap_or_default();
        for res in list {
            let mut map = serde_json::Map::new();
            for kv in res["resource"]["attributes"].as_array().into_iter().flatten() {
                let v = kv["value"].as_object().and_then(|v| v.values().next()).cloned().unwrap_or(Value::Null);
                map.insert(kv["key"].as_str().unwrap_or_default().to_string(), v);
            }
            out.push(map);
        }
    }
    out
}

#[test]
fn every_resource_carries_the_entity_attributes_for_both_engines() {
    let dir = scratch("export-entities");
    let receiver = Receiver::start(&dir, "r", 0, 0, "[]");
    let sanitize = common::root().join("pipelines/sanitize_pii.pipe");
    for (system, kind, dsn, port, prefix) in [
        ("postgresql", "postgres", PG_MONITOR, "5432", "postgresql."),
        ("mysql", "mysql", "mysql://dbintel_monitor:monitor-secret-pw@127.0.0.1:3306", "3306", "mysql."),
    ] {
        let before = receiver.requests().len();
        let pipe = dir.join(format!("{kind}.pipe"));
        std::fs::write(
            &pipe,
            format!(
                "use \"{}\"\nsource db = {kind} {{\n  dsn = env(\"ENTITY_DSN\")\n  interval = 1s\n  collect statements\n  collect activity {{ every = 500ms, window = 1s, samples_as_logs = true }}\n  collect instance\n}}\nsink out = otlp {{ endpoint = \"http://127.0.0.1:{}\" }}\npipeline q = db.statements -> sanitize_pii -> batch -> out\npipeline a = db.activity -> sanitize_pii -> batch -> out\npipeline i = db.instance -> batch -> out\n",
                sanitize.display(),
                receiver.grpc
            ),
        )
        .unwrap();
        let mut run =
            Run::start(&[pipe.to_str().unwrap()], &[("ENTITY_DSN", dsn), ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci")]);
        let got = run.wait_for("instance metrics", Duration::from_secs(30), || {
            let after: Vec<Value> = receiver.accepted().into_iter().skip(before).collect();
            let names: BTreeSet<String> = points(&after).into_iter().map(|p| p.0).collect();
            (names.len() >= 3).then_some(after)
        });
        // and whatever else arrives in the next seconds (activity windows,
        // statement deltas)
        std::thread::sleep(Duration::from_secs(3));
        let got: Vec<Value> = receiver.accepted().into_iter().skip(before).collect::<Vec<_>>().into_iter().chain(got).collect();
        let all = resources(&got);
        assert!(!all.is_empty(), "no resources in what arrived: {got:?}");
        for r in &all {
            assert_eq!(r["db.system.name"], system, "{r:?}");
            assert_eq!(r["server.address"], dbintel_sources::entity::hostname(), "a loopback host is this machine: {r:?}");
            assert_eq!(r["server.port"], port, "{r:?}");
            let id = common::nr_service_instance_id("127.0.0.1", port.parse().expect("a port"));
            assert_eq!(r["service.instance.id"], id, "{r:?}");
            assert!(r.get("telemetry.sdk.name").is_none(), "no SDK name: {r:?}");
            if system == "mysql" {
                assert_eq!(r["mysql.instance.endpoint"], format!("127.0.0.1:{port}"), "the MySQL entity's key: {r:?}");
            }
            assert_eq!(r["deployment.environment"], "ci", "user-set OTEL_RESOURCE_ATTRIBUTES: {r:?}");
        }
        for (name, ..) in points(&got) {
            assert!(name.starts_with(prefix), "{name} should start with {prefix}");
        }
        let _ = run.signal("TERM", Duration::from_secs(30));
    }
}

#[test]
fn a_request_is_given_up_at_retry_elapsed_readyz_says_why_and_export_goes_on() {
    let dir = scratch("export-give-up");
    let port = free_port();
    let input = rows(&dir, "rows.ndjson", 100, 5);
    let pipe = dir.join("p.pipe");
    let sink = format!(
        r#"otlp {{ endpoint = "http://127.0.0.1:{port}", protocol = http, retry_initial = 200ms, retry_max = 400ms, retry_elapsed = 3s, linger = 1ms }}"#
    );
    std::fs::write(&pipe, rows_pipe(&sink, "size = 50")).unwrap();
    let input_arg = format!("rows.m={}", input.display());
    let started = Instant::now();
    let run = Run::start(&[pipe.to_str().unwrap(), "--input", &input_arg], &[("ROWS_DSN", "unused")]);
    let expired = r#"dbintel_export_requests_total{sink="out",outcome="expired"}"#;
    run.wait_for("the first request to be given up", Duration::from_secs(20), || (run.metric(expired) >= 1.0).then_some(()));
    let gave_up_after = started.elapsed();
    assert!(gave_up_after >= Duration::from_millis(2800), "given up after {gave_up_after:?}, before retry_elapsed = 3s");
    // at retry_elapsed, by the exporter's own clock from the first attempt:
    // when the next pause (at most retry_max, 400 ms) would pass it
    let log = run.stderr();
    let line = log.lines().find(|l| l.contains("giving up on a request")).unwrap_or_else(|| panic!("no give-up logged:\n{log}"));
    let waited = line.split("waited=").nth(1).and_then(|w| w.split_whitespace().next()).unwrap_or_default();
    let secs = match waited.strip_suffix("ms") {
        Some(ms) => ms.parse::<f64>().ok().map(|v| v / 1000.0),
        None => waited.strip_suffix('s').and_then(|s| s.parse::<f64>().ok()),
    }
    .unwrap_or_else(|| panic!("no waited= in {line:?}"));
    assert!((2.6..3.3).contains(&secs), "given up after {secs} s of retrying, not at retry_elapsed = 3s (retry_max 400 ms): {line}");
    assert_eq!(run.metric(expired), 1.0, "one request given up:\n{log}");
    assert_eq!(run.metric(r#"dbintel_export_items_total{sink="out",outcome="failed"}"#), 50.0, "the first batch, counted:\n{log}");
    // nothing delivered for longer than retry_elapsed while the second
    // batch waits (the give-up comes just before retry_elapsed is up: the
    // next pause would have passed it)
    let (status, body) = run.wait_for("/readyz to say the sink is stalled", Duration::from_secs(5), || {
        let (status, body) = run.get("/readyz");
        (status == 503).then_some((status, body))
    });
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("sink `out`") && body.contains("nothing delivered") && body.contains("50 items wait"), "{body}");
    let (_, status_json) = run.get("/status");
    assert!(status_json.contains("gave up") || status_json.contains("retrying"), "{status_json}");

    // the endpoint comes back: the second batch, still within its own
    // retry_elapsed, is delivered and the sink is ready again
    let receiver = Receiver::start(&dir, "r", 0, port, "[]");
    let got = run.wait_for("the second batch", Duration::from_secs(20), || {
        let a = receiver.accepted();
        (values(&a, "test.value").len() >= 50).then_some(a)
    });
    let mut seen = values(&got, "test.value");
    seen.sort_unstable();
    assert_eq!(seen, (50..100).collect::<Vec<_>>(), "export went on after the give-up");
    run.wait_for("/readyz to recover", Duration::from_secs(10), || (run.get("/readyz").0 == 200).then_some(()));
    let (_, status_json) = run.get("/status");
    let status: Value = serde_json::from_str(&status_json).unwrap();
    assert_eq!(status["sinks"][0]["last_outcome"], "delivered", "{status_json}");
    assert!(status["sinks"][0]["last_delivery_unix_seconds"].as_f64().is_some(), "{status_json}");
}

#[test]
fn drop_oldest_keeps_the_newest_within_the_bound_and_counts_the_rest_end_to_end() {
    let dir = scratch("export-drop-oldest");
    let port = free_port();
    let input = rows(&dir, "rows.ndjson", 2000, 200);
    let pipe = dir.join("p.pipe");
    let sink = format!(
        r#"otlp {{ endpoint = "http://127.0.0.1:{port}", protocol = http, compression = none, queue_size = 96KiB, on_full = drop_oldest, retry_initial = 200ms, retry_max = 400ms, linger = 1ms }}"#
    );
    std::fs::write(&pipe, rows_pipe(&sink, "size = 100")).unwrap();
    let input_arg = format!("rows.m={}", input.display());
    let run = Run::start(&[pipe.to_str().unwrap(), "--input", &input_arg], &[("ROWS_DSN", "unused")]);
    // with drop_oldest nothing blocks: every point reaches the sink while
    // the endpoint is down
    run.wait_for("every point offered to the queue", Duration::from_secs(30), || {
        (run.metric(r#"dbintel_node_emitted_records_total{node="out",kind="sink"}"#) == 2000.0).then_some(())
    });
    let dropped = run.metric(r#"dbintel_export_items_total{sink="out",outcome="dropped_queue_full"}"#);
    assert!(dropped >= 1000.0, "a 96 KiB queue cannot hold 2,000 points of ~250 bytes: dropped {dropped}");
    assert!(run.metric(r#"dbintel_export_queue_bytes{sink="out"}"#) <= 96.0 * 1024.0, "{}", run.stderr());

    let receiver = Receiver::start(&dir, "r", 0, port, "[]");
    let got = run.wait_for("the queue to drain", Duration::from_secs(30), || {
        let a = receiver.accepted();
        (values(&a, "test.value").len() as f64 + dropped >= 2000.0).then_some(a)
    });
    let seen: BTreeSet<i64> = values(&got, "test.value").into_iter().collect();
    assert_eq!(
        seen.len() as f64 + dropped,
        2000.0,
        "every point either arrived ({}) or was counted as dropped ({dropped}):\n{}",
        seen.len(),
        run.stderr()
    );

    assert!(seen.contains(&1999) && seen.contains(&1900), "the newest batch survives; kept from {:?} to {:?}", seen.first(), seen.last());
    // what arrived: the request being sent when the queue filled (it is
    // not in the queue, so never evicted: one batch of at most 100) and
    // the newest ones, contiguous up to the last; nothing else
    let mut suffix_start = 1999;
    while suffix_start > 0 && seen.contains(&(suffix_start - 1)) {
        suffix_start -= 1;
    }
    let older: Vec<i64> = seen.iter().copied().filter(|v| *v < suffix_start).collect();
    let one_request = older.len() <= 100 && older.windows(2).all(|w| w[1] == w[0] + 1);
    let ranges = |v: &BTreeSet<i64>| {
        let mut out: Vec<(i64, i64)> = Vec::new();
        for &x in v {
            match out.last_mut() {
                Some((_, end)) if *end + 1 == x => *end = x,
                _ => out.push((x, x)),
            }
        }
        out
    };
    assert!(
        one_request,
        "kept besides the newest {suffix_start}..1999: more than the one request in flight; kept ranges {:?}",
        ranges(&seen)
    );

    assert_eq!(run.metric(r#"dbintel_export_items_total{sink="out",outcome="failed"}"#), 0.0, "{}", run.stderr());
}

#[test]
fn sigterm_leaves_undelivered_data_in_the_disk_queue_and_the_next_start_delivers_it() {
    let dir = scratch("export-disk-sigterm");
    let port = free_port();
    let queue = dir.join("queue");
    let input = rows(&dir, "rows.ndjson", 3000, 50);
    let empty = dir.join("empty.ndjson");
    std::fs::write(&empty, "").unwrap();
    let pipe = dir.join("p.pipe");
    let sink = format!(
        r#"otlp {{ endpoint = "http://127.0.0.1:{port}", protocol = http, queue = disk("{}"), retry_initial = 200ms, retry_max = 400ms }}"#,
        queue.display()
    );
    std::fs::write(&pipe, rows_pipe(&sink, "size = 300")).unwrap();
    let input_arg = format!("rows.m={}", input.display());
    let mut run = Run::start(&[pipe.to_str().unwrap(), "--input", &input_arg, "--shutdown-timeout", "2s"], &[("ROWS_DSN", "unused")]);
    run.wait_for("every point in the disk queue", Duration::from_secs(30), || {
        (run.metric(r#"dbintel_node_emitted_records_total{node="out",kind="sink"}"#) == 3000.0).then_some(())
    });
    let (status, log) = run.signal("TERM", Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert!(log.contains("left in the disk queue for the next start"), "{log}");
    assert!(!log.contains("queued data not delivered"), "a disk queue loses nothing at shutdown: {log}");

    let receiver = Receiver::start(&dir, "r", 0, port, "[]");
    let empty_arg = format!("rows.m={}", empty.display());
    let again = Run::start(&[pipe.to_str().unwrap(), "--input", &empty_arg], &[("ROWS_DSN", "unused")]);
    let got = again.wait_for("the queued points after the restart", Duration::from_secs(30), || {
        let a = receiver.accepted();
        (values(&a, "test.value").len() >= 3000).then_some(a)
    });
    let mut seen = values(&got, "test.value");
    seen.sort_unstable();
    assert_eq!(seen, (0..3000).collect::<Vec<_>>(), "every point exactly once, including the one being retried at SIGTERM");
    assert!(again.stderr().contains("resuming requests left by an earlier run"), "{}", again.stderr());
}

#[test]
fn temporality_cumulative_turns_real_statement_deltas_into_running_totals() {
    let dir = scratch("export-cumulative");
    let receiver = Receiver::start(&dir, "r", 0, 0, "[]");
    let marker =
        "SELECT count(*) FROM pg_class WHERE relname = 'dbintel_cumulative_marker' AND relnatts > -1 AND relkind <> 'x'".to_string();
    psql(&marker); // known before the baseline scrape
    let pipe = dir.join("pg.pipe");
    let sanitize = common::root().join("pipelines/sanitize_pii.pipe");
    std::fs::write(
        &pipe,
        format!(
            "use \"{}\"\nsource pg = postgres {{\n  dsn = env(\"EXPORT_PG_DSN\")\n  interval = 1s\n  jitter = 0%\n  collect statements {{ top = 10000 }}\n  collect instance\n}}\nsink out = otlp {{ endpoint = \"http://127.0.0.1:{}\", protocol = grpc, temporality = cumulative }}\npipeline q = pg.statements -> sanitize_pii -> batch -> out\npipeline i = pg.instance -> batch -> out\n",
            sanitize.display(),
            receiver.grpc
        ),
    )
    .unwrap();
    let run = Run::start(&[pipe.to_str().unwrap()], &[("EXPORT_PG_DSN", PG_MONITOR)]);
    run.wait_for("instance metrics", Duration::from_secs(20), || {
        (!values(&receiver.accepted(), "postgresql.backends").is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1200));
    // 3 calls, at least one scrape, 4 more: deltas 3 and 4, totals 3 and 7
    for _ in 0..3 {
        psql(&marker);
    }
    std::thread::sleep(Duration::from_millis(2500));
    for _ in 0..4 {
        psql(&marker);
    }
    let series = run.wait_for("the marker's total to reach 7", Duration::from_secs(20), || {
        let accepted = receiver.accepted();
        let id = accepted.iter().filter(|r| r["signal"] == "logs").find_map(|r| {
            let logs = r["request"]["resourceLogs"][0]["scopeLogs"][0]["logRecords"].as_array()?.clone();
            logs.iter().find_map(|l| {
                let attrs = l["attributes"].as_array()?;
                let text = attrs.iter().find(|a| a["key"] == "db.query.text")?["value"]["stringValue"].as_str()?.to_string();
                text.contains("relkind").then(|| attrs.iter().find(|a| a["key"] == "db.query.id").map(|a| a["value"].clone()))?
            })
        })?;
        let id = id.as_object()?.values().next()?.clone();
        // every calls point of the marker's series, with its sum's shape
        let mut out = Vec::new();
        for r in accepted.iter().filter(|r| r["signal"] == "metrics") {
            for rm in r["request"]["resourceMetrics"].as_array().into_iter().flatten() {
                for m in rm["scopeMetrics"][0]["metrics"].as_array().into_iter().flatten().filter(|m| m["name"] == "postgresql.query.calls")
                {
                    for p in m["sum"]["dataPoints"].as_array().into_iter().flatten() {
                        let mine = p["attributes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|a| a["key"] == "db.query.id" && a["value"].as_object().and_then(|v| v.values().next()) == Some(&id));
                        if mine {
                            let value: f64 =
                                p["asInt"].as_str().and_then(|v| v.parse().ok()).or(p["asDouble"].as_f64()).unwrap_or(f64::NAN);
                            out.push((
                                value,
                                p["startTimeUnixNano"].as_str().unwrap_or_default().to_string(),
                                m["sum"]["aggregationTemporality"].clone(),
                            ));
                        }
                    }
                }
            }
        }
        (out.last().is_some_and(|(v, ..)| *v >= 7.0)).then_some(out)
    });
    let totals: Vec<f64> = series.iter().map(|(v, ..)| *v).collect();
    assert!(totals.windows(2).all(|w| w[0] <= w[1]), "running totals never go down: {totals:?}");
    assert_eq!(totals.last(), Some(&7.0), "the total is every call since the baseline: {totals:?}");
    assert!(totals.contains(&3.0), "the first scrape's delta of 3 is the first total: {totals:?}");
    assert!(series.iter().all(|(_, start, _)| *start == series[0].1), "one start time for the series: {series:?}");
    assert!(series.iter().all(|(.., t)| t == "AGGREGATION_TEMPORALITY_CUMULATIVE"), "{series:?}");
}

#[test]
fn signal_specific_endpoint_variables_send_metrics_and_logs_to_their_own_urls() {
    let dir = scratch("export-signal-endpoints");
    let metrics = Receiver::start(&dir, "metrics", 0, 0, "[]");
    let logs = Receiver::start(&dir, "logs", 0, 0, "[]");
    let input = dir.join("rows.ndjson");
    std::fs::write(&input, (0..20).map(|i| format!("{{\"v\": {i}, \"msg\": \"event {i}\"}}\n")).collect::<String>()).unwrap();
    let pipe = dir.join("p.pipe");
    std::fs::write(
        &pipe,
        r#"source rows = sql {
  dsn = env("ROWS_DSN")
  collect m { query = "select 1", kind = gauge, metric = "test.value", value_column = "v" }
  collect l { query = "select 1", kind = log, body_column = "msg" }
}
sink out = otlp { protocol = http }
pipeline pm = rows.m -> batch -> out
pipeline pl = rows.l -> batch -> out
"#,
    )
    .unwrap();
    let (m_arg, l_arg) = (format!("rows.m={}", input.display()), format!("rows.l={}", input.display()));
    let dead = free_port();
    let run = Run::start(
        &[pipe.to_str().unwrap(), "--input", &m_arg, "--input", &l_arg],
        &[
            ("ROWS_DSN", "unused"),
            // the generic endpoint is a dead port: only the signal variables can make this work
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://127.0.0.1:{dead}")),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &format!("http://127.0.0.1:{}/v1/metrics", metrics.http)),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &format!("http://127.0.0.1:{}/v1/logs", logs.http)),
        ],
    );
    run.wait_for("20 points and 20 log records", Duration::from_secs(30), || {
        let m = values(&metrics.accepted(), "test.value").len();
        let l: usize = logs
            .accepted()
            .iter()
            .filter_map(|r| r["request"]["resourceLogs"][0]["scopeLogs"][0]["logRecords"].as_array().map(Vec::len))
            .sum();
        (m >= 20 && l >= 20).then_some(())
    });
    let signals = |r: &Receiver| r.accepted().iter().map(|a| a["signal"].as_str().unwrap_or_default().to_string()).collect::<Vec<_>>();
    assert!(metrics.accepted().iter().all(|r| r["signal"] == "metrics"), "logs went to the metrics URL: {:?}", signals(&metrics));
    assert!(logs.accepted().iter().all(|r| r["signal"] == "logs"), "metrics went to the logs URL: {:?}", signals(&logs));

    assert_eq!(run.metric(r#"dbintel_export_items_total{sink="out",outcome="failed"}"#), 0.0, "{}", run.stderr());
}
