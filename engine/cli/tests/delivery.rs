//! Delivery at New Relic's edge, against a fake of it that behaves as New
//! Relic's documents say (tests/nr_edge_fake.py: the official
//! opentelemetry-proto classes behind grpcio and http.server), the real
//! PostgreSQL, and a real full disk (a tmpfs each test mounts).
//!
//! Each scene counts what arrived against what was sent: a `file` sink
//! fed by the same collectors keeps a copy of every point, and every drop
//! that remains must be counted by cause.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::otlp::{free_port, Receiver, Run};
use common::private_pg::PrivatePg;
use common::{dbintel, root, scratch, text, PG_MONITOR};
use serde_json::Value;

/// tests/nr_edge_fake.py on free ports.
struct NrEdge {
    child: Child,
    out: PathBuf,
    grpc: u16,
    http: u16,
}

impl NrEdge {
    fn start(dir: &Path, name: &str, script: &str, extra: &[&str]) -> NrEdge {
        let out = dir.join(format!("{name}.jsonl"));
        let mut child = Command::new("python3")
            .arg(root().join("tests/nr_edge_fake.py"))
            .args(["--out"])
            .arg(&out)
            .args(["--script", script])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 tests/nr_edge_fake.py (run tests/run.sh, which installs its packages)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the fake's ports");
        let ports: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("the fake of New Relic's edge did not start: {line:?}"));
        let port = |k: &str| ports[k].as_u64().expect("port") as u16;
        NrEdge { grpc: port("grpc"), http: port("http"), out, child }
    }

    /// Every request so far (and the fake's own notes), in order.
    fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    fn accepted(&self) -> Vec<Value> {
        self.requests().into_iter().filter(|r| r["answer"] == "ok").collect()
    }

    /// Every request on either protocol is throttled for `seconds`.
    fn throttle(&self, seconds: u64, retry_after: u64) {
        let path = format!("/fake/throttle?seconds={seconds}&retry_after={retry_after}");
        let answer = common::otlp::http(self.http, "GET", &path);
        assert_eq!(answer.map(|a| a.0), Some(200), "the fake refused to throttle");
    }
}

impl Drop for NrEdge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or_default()
}

/// Each point and log record of OTLP/JSON requests, as a key that names
/// it (metric: name, time, value; log: event, time, body), counted.
fn identities<'a>(requests: impl Iterator<Item = &'a Value>, skip_events: &[&str]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in requests {
        for rm in r["resourceMetrics"].as_array().into_iter().flatten() {
            for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                for m in sm["metrics"].as_array().into_iter().flatten() {
                    let data = m.get("gauge").or_else(|| m.get("sum")).cloned().unwrap_or(Value::Null);
                    for p in data["dataPoints"].as_array().into_iter().flatten() {
                        let value = match (p.get("asInt"), p.get("asDouble")) {
                            (Some(i), _) => i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string()),
                            (_, Some(d)) => d.as_f64().map(|f| format!("{f:?}")).unwrap_or_else(|| d.to_string()),
                            _ => "0".to_string(),
                        };
                        let key =
                            format!("{} @{} = {value}", m["name"].as_str().unwrap_or_default(), p["timeUnixNano"].as_str().unwrap_or("0"));
                        *out.entry(key).or_default() += 1;
                    }
                }
            }
        }
        for rl in r["resourceLogs"].as_array().into_iter().flatten() {
            for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
                for l in sl["logRecords"].as_array().into_iter().flatten() {
                    let event = l["eventName"].as_str().unwrap_or_default();
                    if skip_events.contains(&event) {
                        continue;
                    }
                    let key = format!("log {event} @{}", l["timeUnixNano"].as_str().unwrap_or("0"));
                    *out.entry(key).or_default() += 1;
                }
            }
        }
    }
    out
}

/// What `/metrics` counts as dropped, by cause, for `sink` (only causes
/// with a count).
fn drops(run: &Run, sink: &str) -> BTreeMap<String, f64> {
    let (_, body) = run.get("/metrics");
    let prefix = format!("dbintel_export_dropped_items_total{{sink=\"{sink}\",cause=\"");
    body.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (cause, value) = rest.split_once("\"} ")?;
            let v: f64 = value.trim().parse().ok()?;
            (v > 0.0).then(|| (cause.to_string(), v))
        })
        .collect()
}

const KEY: &str = "fake-nr-license-key-0123456789abcdefNRAL";

/// The shipped postgres pipeline plus a `file` copy of what its
/// statements, instance, tables and activity collectors emit (the copy of
/// activity bypasses the sampler, so its sampled events are not compared).
fn shipped_with_copy(dir: &Path) -> (PathBuf, PathBuf) {
    let copy = dir.join("copy.jsonl");
    let pipe = dir.join("copy.pipe");
    std::fs::write(
        &pipe,
        format!(
            r#"sink copy = file {{ path = "{}" }}
pipeline copy_queries = postgres.statements -> memory_limit -> sanitize_pii -> copy
pipeline copy_activity = postgres.activity -> memory_limit -> sanitize_pii -> copy
pipeline copy_instance = postgres.instance -> copy
pipeline copy_tables = postgres.tables -> copy
"#,
            copy.display()
        ),
    )
    .unwrap();
    (pipe, copy)
}

#[test]
fn the_shipped_postgres_pipeline_loses_nothing_during_a_throttling_burst_over_http() {
    throttling_burst("http/protobuf");
}

#[test]
fn the_shipped_postgres_pipeline_loses_nothing_during_a_throttling_burst_over_grpc() {
    throttling_burst("grpc");
}

/// New Relic throttles for a while; every point of a `file` copy of what
/// the shipped pipeline scraped must still arrive, nothing dropped.
fn throttling_burst(protocol: &str) {
    let dir = scratch(&format!("delivery-throttle-{}", protocol.replace('/', "-")));
    let fake = NrEdge::start(&dir, "nr", "[]", &["--keep", "--api-key", KEY]);
    let (copy_pipe, copy) = shipped_with_copy(&dir);
    // a burst from the first request: HTTP 429 + Retry-After: 1, gRPC
    // RESOURCE_EXHAUSTED "Too many requests" without RetryInfo
    fake.throttle(7, 1);
    let port = if protocol == "grpc" { fake.grpc } else { fake.http };
    let mut run = Run::start(
        &["pipelines/postgres.pipe", copy_pipe.to_str().unwrap()],
        &[
            ("PG_DSN", PG_MONITOR),
            ("NEW_RELIC_LICENSE_KEY", KEY),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://127.0.0.1:{port}")),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ],
    );
    run.wait_for("requests throttled during the burst", Duration::from_secs(20), || {
        fake.requests().iter().any(|r| r["answer"] == 429 || r["answer"] == "throttled").then_some(())
    });
    // the burst ends; what waited is delivered; a few more scrapes
    run.wait_for("delivery after the burst", Duration::from_secs(40), || {
        let after = fake.accepted().len() >= 3;
        let empty = run.metric(r#"dbintel_export_queue_items{sink="newrelic"}"#) == 0.0;
        (after && empty && run.metric(r#"dbintel_export_requests_total{sink="newrelic",outcome="throttled"}"#) >= 1.0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let dropped = drops(&run, "newrelic");
    let (status, log) = run.signal("TERM", Duration::from_secs(40));
    assert!(status.success(), "{protocol}: {log}");
    assert!(dropped.is_empty(), "{protocol}: dropped by cause {dropped:?}\n{log}");
    assert!(!log.contains(KEY), "{protocol}: the license key leaked into the log");

    let copied: Vec<Value> =
        std::fs::read_to_string(&copy).unwrap().lines().map(|l| serde_json::from_str(l).expect("a copy line is JSON")).collect();
    let requests = fake.requests();
    let accepted: Vec<Value> = requests.iter().filter(|r| r["answer"] == "ok").map(|r| r["request"].clone()).collect();
    // activity's samples are sampled (rate_limit) on the way to New
    // Relic, not on the way to the copy: compared as metrics only
    let sampled = ["db.server.query_sample", "db.server.blocking"];
    let want = identities(copied.iter(), &sampled);
    let got = identities(accepted.iter(), &sampled);
    let points: usize = want.values().sum();
    let missing: Vec<(&String, usize)> = want
        .iter()
        .filter(|&(k, n)| got.get(k).copied().unwrap_or(0) < *n)
        .map(|(k, n)| (k, n - got.get(k).copied().unwrap_or(0)))
        .collect();
    let throttled = requests.iter().filter(|r| r["answer"] == 429 || r["answer"] == "throttled").count();
    assert!(points > 100, "{protocol}: the copy holds only {points} points and records");
    assert!(
        missing.is_empty(),
        "{protocol}: {} of {points} points and records of the copy never arrived ({throttled} requests throttled); first: {:?}",
        missing.len(),
        missing.iter().take(10).collect::<Vec<_>>()
    );
    assert!(requests.iter().all(|r| r["api_key"] == KEY || r["answer"] == "body"), "{protocol}: a request without the key");
    eprintln!("{protocol}: {points} points and records, every one delivered through {throttled} throttled requests");
}

/// Rows of a `sql` gauge whose text does not compress much (hex of a
/// running hash), `{"v": i, "k": "key-i", "text": …}`.
fn noisy_rows(dir: &Path, name: &str, n: usize, text_len: usize) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..n {
        let mut text = String::with_capacity(text_len);
        while text.len() < text_len {
            h ^= h << 13;
            h ^= h >> 7;
            h ^= h << 17;
            text.push_str(&format!("{h:016x}"));
        }
        text.truncate(text_len);
        writeln!(f, "{{\"v\": {i}, \"k\": \"key-{i}\", \"text\": \"{text}\"}}").unwrap();
    }
    f.flush().unwrap();
    path
}

fn nr_rows_pipe(dir: &Path, settings: &str, batch: &str) -> PathBuf {
    let pipe = dir.join("nr.pipe");
    std::fs::write(&pipe, common::otlp::rows_pipe(&format!(r#"newrelic {{ license_key = env("NR_KEY"), {settings} }}"#), batch)).unwrap();
    pipe
}

fn values(requests: &[Value]) -> Vec<i64> {
    let mut out = Vec::new();
    for r in requests {
        for rm in r["request"]["resourceMetrics"].as_array().into_iter().flatten() {
            for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                for m in sm["metrics"].as_array().into_iter().flatten() {
                    for p in m["gauge"]["dataPoints"].as_array().into_iter().flatten() {
                        out.extend(p["asInt"].as_str().and_then(|v| v.parse::<i64>().ok()));
                    }
                }
            }
        }
    }
    out
}

fn endpoint_env(port: u16, protocol: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ROWS_DSN", "unused".to_string()),
        ("NR_KEY", KEY.to_string()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_string()),
    ]
}

fn start(pipe: &Path, input: &Path, env: &[(&'static str, String)]) -> Run {
    let input_arg = format!("rows.m={}", input.display());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Run::start(&[pipe.to_str().unwrap(), "--input", &input_arg], &env)
}

#[test]
fn requests_over_the_size_limit_as_sent_are_split_and_every_point_arrives_over_http_and_grpc() {
    for protocol in ["http/protobuf", "grpc"] {
        let dir = scratch(&format!("delivery-413-{}", protocol.replace('/', "-")));
        // a receiver that takes 100 kB as sent: the packer's first guess
        // (1 MB) is refused, split, and the limit learned
        let fake = NrEdge::start(&dir, "nr", "[]", &["--keep", "--max-bytes", "100000"]);
        let input = noisy_rows(&dir, "rows.ndjson", 4000, 200);
        let pipe = nr_rows_pipe(&dir, "retry_initial = 100ms, retry_max = 200ms", "size = 1000");
        let port = if protocol == "grpc" { fake.grpc } else { fake.http };
        let run = start(&pipe, &input, &endpoint_env(port, protocol));
        let got = run.wait_for("4000 points", Duration::from_secs(40), || {
            let a = fake.accepted();
            (values(&a).len() >= 4000).then_some(a)
        });
        let mut seen = values(&got);
        seen.sort_unstable();
        assert_eq!(seen, (0..4000).collect::<Vec<_>>(), "{protocol}: every point exactly once");
        let requests = fake.requests();
        let refused = requests.iter().filter(|r| r["answer"] == 413 || r["answer"] == "too_large").count();
        assert!(
            refused >= 1,
            "{protocol}: nothing was ever too large? {:?}",
            requests.iter().map(|r| &r["sent_bytes"]).collect::<Vec<_>>()
        );
        assert!(
            got.iter().all(|r| r["sent_bytes"].as_u64().unwrap_or(u64::MAX) <= 100_000),
            "{protocol}: an accepted request over the limit"
        );
        assert!(run.metric(r#"dbintel_export_requests_total{sink="out",outcome="split"}"#) >= 1.0, "{protocol}:\n{}", run.stderr());
        assert!(drops(&run, "out").is_empty(), "{protocol}: {:?}\n{}", drops(&run, "out"), run.stderr());
        assert!(refused <= 8, "{protocol}: the limit is learned, not refused again and again ({refused} refusals)");
        eprintln!("{protocol}: {refused} requests refused as too large, {} accepted", got.len());
    }
}

#[test]
fn a_record_too_large_for_any_request_is_shrunk_marked_and_its_plan_removed_whole() {
    for protocol in ["http/protobuf", "grpc"] {
        let dir = scratch(&format!("delivery-shrink-{}", protocol.replace('/', "-")));
        // 90 kB as sent at most; one record of 40 noisy texts of 3,000
        // characters and a JSON plan longer than any of them
        let fake = NrEdge::start(&dir, "nr", "[]", &["--keep", "--max-bytes", "90000"]);
        let mut columns: Vec<String> = (0..40).map(|c| format!("c{c}")).collect();
        let mut row = serde_json::Map::new();
        row.insert("v".into(), Value::from(7));
        let mut h: u64 = 0x2545_F491_4F6C_DD1D;
        for c in &columns {
            let mut t = String::new();
            while t.len() < 3000 {
                h ^= h << 13;
                h ^= h >> 7;
                h ^= h << 17;
                t.push_str(&format!("{h:016x}"));
            }
            t.truncate(3000);
            row.insert(c.clone(), Value::from(t));
        }
        let plan = format!(r#"[{{"Plan":{{"Node Type":"Seq Scan","Filter":"{}"}}}}]"#, "p".repeat(3900));
        row.insert("plan".into(), Value::from(plan));
        columns.push("plan".into());
        let input = dir.join("rows.ndjson");
        std::fs::write(&input, format!("{}\n", Value::Object(row))).unwrap();
        let pipe = dir.join("nr.pipe");
        let list = columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
        std::fs::write(
            &pipe,
            format!(
                r#"source rows = sql {{
  dsn = env("ROWS_DSN")
  collect m {{ query = "select 1", kind = gauge, metric = "test.value", value_column = "v", attribute_columns = [{list}] }}
}}
sink out = newrelic {{ license_key = env("NR_KEY"), compression = none, retry_initial = 100ms, retry_max = 200ms }}
pipeline p = rows.m -> out
"#
            ),
        )
        .unwrap();
        let port = if protocol == "grpc" { fake.grpc } else { fake.http };
        let run = start(&pipe, &input, &endpoint_env(port, protocol));
        let got = run.wait_for("the shrunk record", Duration::from_secs(40), || {
            let a = fake.accepted();
            (!a.is_empty()).then_some(a)
        });
        let attrs: BTreeMap<String, Value> = got[0]["request"]["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["gauge"]
            ["dataPoints"][0]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|kv| {
                (
                    kv["key"].as_str().unwrap_or_default().to_string(),
                    kv["value"].as_object().and_then(|o| o.values().next()).cloned().unwrap_or(Value::Null),
                )
            })
            .collect();
        assert_eq!(attrs.get("dbintel.truncated"), Some(&Value::Bool(true)), "{protocol}: the record is marked");
        assert!(
            !attrs.contains_key("plan"),
            "{protocol}: the JSON plan was removed whole, never cut: {:?}",
            attrs.get("plan").map(|p| p.to_string().len())
        );
        let cut = attrs.values().filter(|v| v.as_str().is_some_and(|s| s.len() < 3000)).count();
        assert!(cut >= 1, "{protocol}: texts were cut to fit");
        assert!(got[0]["sent_bytes"].as_u64().unwrap() <= 90_000, "{protocol}");
        assert_eq!(run.metric(r#"dbintel_export_items_total{sink="out",outcome="sent"}"#), 1.0, "{protocol}: delivered, not dropped");
        assert!(run.metric(r#"dbintel_export_shaped_total{sink="out",change="record_shrunk"}"#) >= 1.0, "{protocol}");
        assert!(run.metric(r#"dbintel_export_shaped_total{sink="out",change="json_removed"}"#) >= 1.0, "{protocol}");
        assert!(drops(&run, "out").is_empty(), "{protocol}: {:?}", drops(&run, "out"));
    }
}

#[test]
fn transient_faults_are_retried_a_bounded_number_of_times_and_what_outlasts_them_is_counted() {
    for protocol in ["http/protobuf", "grpc"] {
        let dir = scratch(&format!("delivery-transient-{}", protocol.replace('/', "-")));
        let input = noisy_rows(&dir, "rows.ndjson", 50, 10);
        let pipe = nr_rows_pipe(&dir, "retry_initial = 100ms, retry_max = 200ms, linger = 1ms", "size = 50");
        // three passing faults of New Relic's edge, then success: delivered
        let script = r#"[{"transient": 500}, {"transient": 530}, {"internal": true}]"#;
        let fake = NrEdge::start(&dir, "nr", script, &["--keep"]);
        let port = if protocol == "grpc" { fake.grpc } else { fake.http };
        let run = start(&pipe, &input, &endpoint_env(port, protocol));
        let got = run.wait_for("delivery after three faults", Duration::from_secs(30), || {
            let a = fake.accepted();
            (values(&a).len() >= 50).then_some(a)
        });
        let answers: Vec<String> = fake.requests().iter().map(|r| r["answer"].to_string()).collect();
        assert_eq!(answers.len(), 4, "{protocol}: three faults and the success: {answers:?}");
        assert_eq!(values(&got).len(), 50, "{protocol}");
        assert!(drops(&run, "out").is_empty(), "{protocol}: {:?}", drops(&run, "out"));
        drop(run);

        // a fault that does not pass: given up after a bounded number of
        // attempts, counted as `transient`
        let dir = scratch(&format!("delivery-transient-lasting-{}", protocol.replace('/', "-")));
        let script = format!("[{}]", [r#"{"transient": 500}"#; 10].join(","));
        let fake = NrEdge::start(&dir, "nr", &script, &[]);
        let port = if protocol == "grpc" { fake.grpc } else { fake.http };
        let run = start(&pipe, &input, &endpoint_env(port, protocol));
        run.wait_for("the request given up", Duration::from_secs(30), || drops(&run, "out").get("transient").map(|_| ()));
        assert_eq!(drops(&run, "out"), BTreeMap::from([("transient".to_string(), 50.0)]), "{protocol}:\n{}", run.stderr());
        assert_eq!(fake.requests().len(), 5, "{protocol}: five attempts, then given up");
        assert!(run.stderr().contains("a transient fault persisted"), "{protocol}: {}", run.stderr());
        // and /status, and `dbintel status`, say so
        assert_eq!(run.status()["sinks"][0]["dropped"]["transient"], 50, "{protocol}");
        let table = dbintel(&["status", "--listen", &format!("127.0.0.1:{}", run.port)], &[]);
        assert!(text(&table.stdout).contains("transient=50"), "{protocol}: {}", text(&table.stdout));
    }
}

#[test]
fn a_full_disk_under_the_export_queue_recovers_without_a_restart_and_sigterm_exits_by_its_deadline() {
    let dir = scratch("delivery-full-disk");
    let fs = dir.join("fs");
    std::fs::create_dir_all(&fs).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"]).arg(&fs).output().expect("mount(8)");
    assert!(mounted.status.success(), "mounting a 3 MiB tmpfs: {}", text(&mounted.stderr));
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(fs.clone());
    let port = free_port();
    let pipe = dir.join("fill.pipe");
    // each scrape: 1,000 rows of 256 hex characters, ~0.4 MB uncompressed
    let texts = (0..8).map(|_| "md5(random()::text)").collect::<Vec<_>>().join(" || ");
    std::fs::write(
        &pipe,
        format!(
            r#"source gen = sql {{
  dsn = env("PG_DSN")
  interval = 1s
  collect m {{ query = "select g as v, {texts} as t from generate_series(1, 1000) g", kind = gauge, metric = "fill.value", value_column = "v", attribute_columns = ["t"] }}
}}
batch b {{ size = 5000 }}
sink out = otlp {{ endpoint = "http://127.0.0.1:{port}", protocol = http, compression = none, queue = disk("{}"), queue_size = 64MiB, retry_initial = 200ms, retry_max = 1s }}
pipeline p = gen.m -> b -> out
"#,
            fs.join("q").display()
        ),
    )
    .unwrap();
    let mut run = Run::start(&[pipe.to_str().unwrap(), "--shutdown-timeout", "4s"], &[("PG_DSN", PG_MONITOR)]);
    // the endpoint is down until the filesystem is full
    run.wait_for("the disk to fill", Duration::from_secs(40), || {
        (run.metric(r#"dbintel_export_queue_errors_total{sink="out",error="write"}"#) >= 1.0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let receiver = Receiver::start(&dir, "r", 0, port, "[]");
    let back = unix_nanos();
    // points scraped after the endpoint came back arrive: three scrapes'
    // worth, timed at least a second after it returned
    let scraped_after = |requests: &[Value]| -> usize {
        let mut times = std::collections::BTreeSet::new();
        for r in requests {
            for rm in r["request"]["resourceMetrics"].as_array().into_iter().flatten() {
                for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                    for m in sm["metrics"].as_array().into_iter().flatten() {
                        for p in m["gauge"]["dataPoints"].as_array().into_iter().flatten() {
                            let t: u64 = p["timeUnixNano"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
                            if t > back + 1_000_000_000 {
                                times.insert(t / 1_000_000_000);
                            }
                        }
                    }
                }
            }
        }
        times.len()
    };
    run.wait_for("points scraped after the endpoint returned", Duration::from_secs(45), || {
        (scraped_after(&receiver.accepted()) >= 3).then_some(())
    });
    assert_eq!(run.metric(r#"dbintel_export_queue_errors_total{sink="out",error="ack"}"#), 0.0, "recording deliveries needs no new space");
    let status: Value = run.status();
    assert!(status["sinks"][0]["last_outcome"] == "delivered", "{status:#}");

    // down again until full; SIGTERM cannot drain to a dead endpoint, and
    // still exits by its deadline
    drop(receiver);
    let errors = run.metric(r#"dbintel_export_queue_errors_total{sink="out",error="write"}"#);
    run.wait_for("the disk to fill again", Duration::from_secs(40), || {
        (run.metric(r#"dbintel_export_queue_errors_total{sink="out",error="write"}"#) > errors).then_some(())
    });
    let sent = Instant::now();
    let (status, log) = run.signal("TERM", Duration::from_secs(20));
    let took = sent.elapsed();
    assert!(status.success(), "{log}");
    assert!(took < Duration::from_secs(9), "SIGTERM with --shutdown-timeout 4s took {took:?}:\n{log}");
    assert!(log.contains("left in the disk queue"), "{log}");
    assert!(!log.contains("cannot record deliveries"), "{log}");
}

#[test]
fn two_sinks_on_one_queue_directory_are_refused_at_compile_time_and_a_second_process_fails_clearly() {
    let dir = scratch("delivery-queue-owner");
    let queue = dir.join("queue");
    let pipe = dir.join("shared.pipe");
    std::fs::write(
        &pipe,
        format!(
            r#"source rows = sql {{
  dsn = env("ROWS_DSN")
  collect m {{ query = "select 1", kind = gauge, metric = "m", value_column = "v" }}
}}
sink a = otlp {{ endpoint = "http://127.0.0.1:1", queue = disk("{q}") }}
sink b = otlp {{ endpoint = "http://127.0.0.1:2", queue = disk("{q}/") }}
pipeline pa = rows.m -> a
pipeline pb = rows.m -> b
"#,
            q = queue.display()
        ),
    )
    .unwrap();
    let out = dbintel(&["validate", pipe.to_str().unwrap()], &[("ROWS_DSN", "x")]);
    let stderr = text(&out.stderr) + &text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("E320") && stderr.contains("same disk queue directory"), "{stderr}");

    // two processes: the second is told who holds the directory
    let empty = dir.join("empty.ndjson");
    std::fs::write(&empty, "").unwrap();
    let one = dir.join("one.pipe");
    std::fs::write(
        &one,
        common::otlp::rows_pipe(
            &format!(r#"otlp {{ endpoint = "http://127.0.0.1:1", queue = disk("{}") }}"#, queue.display()),
            "size = 10",
        ),
    )
    .unwrap();
    let input = format!("rows.m={}", empty.display());
    let first = Run::start(&[one.to_str().unwrap(), "--input", &input], &[("ROWS_DSN", "x")]);
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let second = dbintel(&["run", "--listen", &listen, one.to_str().unwrap(), "--input", &input], &[("ROWS_DSN", "x")]);
    let said = text(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{said}");
    assert!(said.contains("in use by process") && said.contains(&first.pid().to_string()), "{said}");
    assert!(said.contains(&queue.display().to_string()), "{said}");
}

#[test]
fn a_scrape_of_many_resources_leaves_in_a_few_requests() {
    let pg = PrivatePg::primary("delivery-many-dbs");
    let mut sql = String::new();
    for d in 0..40 {
        sql.push_str(&format!("CREATE DATABASE many_{d};"));
    }
    for statement in sql.split_inclusive(';') {
        pg.sql(statement);
    }
    for d in 0..40 {
        let out = Command::new("psql")
            .args(["-X", "-q", "-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "postgres", "-d", &format!("many_{d}")])
            .args(["-c", "CREATE TABLE a (id int primary key, t text); CREATE TABLE b (id int primary key); CREATE TABLE c (id int)"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let dir = scratch("delivery-many-resources");
    let fake = NrEdge::start(&dir, "nr", "[]", &["--keep"]);
    let pipe = dir.join("tables.pipe");
    std::fs::write(
        &pipe,
        r#"source postgres = postgres {
  dsn = env("PG_DSN")
  collect tables
}
sink newrelic = newrelic { license_key = env("NR_KEY") }
pipeline t = postgres.tables -> batch -> newrelic
"#,
    )
    .unwrap();
    // the databases a request's data names, whatever the resource model
    // (a resource per database, or one per server with `db.namespace` on
    // each point)
    fn databases(requests: &[Value]) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        let mut take = |attrs: &Value| {
            for kv in attrs.as_array().into_iter().flatten() {
                if kv["key"] == "postgresql.database.name" || kv["key"] == "db.namespace" {
                    out.extend(kv["value"]["stringValue"].as_str().filter(|d| d.starts_with("many_")).map(str::to_string));
                }
            }
        };
        for r in requests {
            for rm in r["request"]["resourceMetrics"].as_array().into_iter().flatten() {
                take(&rm["resource"]["attributes"]);
                for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                    for m in sm["metrics"].as_array().into_iter().flatten() {
                        let data = m.get("gauge").or_else(|| m.get("sum")).cloned().unwrap_or(Value::Null);
                        for p in data["dataPoints"].as_array().into_iter().flatten() {
                            take(&p["attributes"]);
                        }
                    }
                }
            }
        }
        out
    }
    let dsn = pg.dsn("proofs_mon");
    let endpoint = format!("http://127.0.0.1:{}", fake.http);
    let run = Run::start(&[pipe.to_str().unwrap()], &[("PG_DSN", &dsn), ("NR_KEY", KEY), ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    run.wait_for("the first tables scrape of all 40 databases", Duration::from_secs(40), || {
        let queued = run.metric(r#"dbintel_export_queue_items{sink="newrelic"}"#);
        (databases(&fake.accepted()).len() == 40 && queued == 0.0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let accepted = fake.accepted();
    let requests = accepted.len();
    let resources: u64 = accepted.iter().map(|r| r["resources"].as_u64().unwrap_or(0)).sum();
    let parts = run.metric(r#"dbintel_export_packed_parts_total{sink="newrelic"}"#);
    assert!(requests <= 4, "40 databases' tables in {requests} requests ({resources} resources): one request carries everything ready");
    assert_eq!(parts as u64, resources, "every part packed arrived as a resource of its own");
    eprintln!("40 databases, {resources} resources, {requests} requests");
}

#[test]
fn the_license_key_goes_only_where_it_was_sent() {
    let dir = scratch("delivery-credentials");
    let input = noisy_rows(&dir, "rows.ndjson", 10, 10);
    // a redirect to another port is not followed: the key stays home
    let elsewhere = Receiver::start(&dir, "elsewhere", 0, 0, "[]");
    let script = format!(r#"[{{"redirect": "http://127.0.0.1:{}/v1/metrics"}}]"#, elsewhere.http);
    let fake = NrEdge::start(&dir, "nr", &script, &[]);
    let pipe = nr_rows_pipe(&dir, "linger = 1ms", "size = 10");
    let run = start(&pipe, &input, &endpoint_env(fake.http, "http/protobuf"));
    run.wait_for("the redirect answered", Duration::from_secs(20), || drops(&run, "out").get("refused").map(|_| ()));
    std::thread::sleep(Duration::from_secs(1));
    assert!(elsewhere.requests().is_empty(), "the request followed the redirect: {:?}", elsewhere.requests());
    assert!(run.stderr().contains("redirect is not followed"), "{}", run.stderr());
    assert!(!run.stderr().contains(KEY));
    drop(run);

    // a huge response body is not read
    let dir = scratch("delivery-credentials-body");
    let fake = NrEdge::start(&dir, "nr", r#"[{"body_bytes": 500000000}]"#, &[]);
    let run = start(&pipe, &input, &endpoint_env(fake.http, "http/protobuf"));
    let written = run.wait_for("the fake to give up writing its body", Duration::from_secs(30), || {
        fake.requests().iter().find(|r| r["answer"] == "body").and_then(|r| r["body_written"].as_u64())
    });
    assert!(written < 50_000_000, "{written} bytes of the body were taken");
    assert_eq!(run.metric(r#"dbintel_export_items_total{sink="out",outcome="sent"}"#), 10.0, "{}", run.stderr());
    drop(run);

    // plaintext to another host through a signal-specific variable, and a
    // URL carrying a password: refused at start, the password never shown
    let otlp = dir.join("otlp.pipe");
    std::fs::write(&otlp, common::otlp::rows_pipe(r#"otlp { endpoint = "https://otlp.example.com:4318", protocol = http }"#, "size = 10"))
        .unwrap();
    let input_arg = format!("rows.m={}", input.display());
    let listen = format!("127.0.0.1:{}", free_port());
    for (name, url, says) in [
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://collector.example.com:4318/v1/metrics", "plaintext"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://localhost:1@elsewhere.example.com/v1/logs", "user name or password"),
    ] {
        let out = dbintel(&["run", "--listen", &listen, otlp.to_str().unwrap(), "--input", &input_arg], &[("ROWS_DSN", "x"), (name, url)]);
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {said}");
        assert!(said.contains(name) && said.contains(says), "{name}: {said}");
        assert!(!said.contains("localhost:1@"), "{said}");
    }
    let out = dbintel(
        &["run", "--listen", &listen, nr_rows_pipe(&dir, "linger = 1ms", "size = 10").to_str().unwrap(), "--input", &input_arg],
        &[("ROWS_DSN", "x"), ("NR_KEY", KEY), ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://user:hunter2-secret@otlp.nr-data.net:4318")],
    );
    let said = text(&out.stderr) + &text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("user name or password") && !said.contains("hunter2-secret"), "{said}");
}

#[test]
fn new_relic_gets_what_it_keeps_a_json_object_plan_wrapped_arrays_capped_maps_as_json() {
    let dir = scratch("delivery-shape");
    let fake = NrEdge::start(&dir, "nr", "[]", &["--keep"]);
    let row = serde_json::json!({
        "body": "a plan",
        "plan": r#"{"query_block":{"select_id":1,"table":{"table_name":"orders"}}}"#,
        "pg": r#"[{"Plan":{"Node Type":"Seq Scan"}}]"#,
        "list": (0..100).collect::<Vec<i64>>(),
        "tags": {"team": "db", "tier": 1},
    });
    let input = dir.join("rows.ndjson");
    std::fs::write(&input, format!("{row}\n")).unwrap();
    let pipe = dir.join("shape.pipe");
    std::fs::write(
        &pipe,
        r#"source rows = sql {
  dsn = env("ROWS_DSN")
  collect m { query = "select 1", kind = log, body_column = "body", attribute_columns = ["plan", "pg", "list", "tags"] }
}
sink out = newrelic { license_key = env("NR_KEY") }
pipeline p = rows.m -> out
"#,
    )
    .unwrap();
    let run = start(&pipe, &input, &endpoint_env(fake.http, "http/protobuf"));
    let got = run.wait_for("the log record", Duration::from_secs(30), || fake.accepted().into_iter().find(|r| r["signal"] == "logs"));
    let record = &got["request"]["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    let attrs: BTreeMap<String, Value> = record["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|kv| (kv["key"].as_str().unwrap_or_default().to_string(), kv["value"].clone()))
        .collect();
    let text = |k: &str| attrs.get(k).and_then(|v| v["stringValue"].as_str()).unwrap_or_else(|| panic!("{k}: {attrs:?}")).to_string();
    // the MySQL-style plan object arrives as New Relic's collector sends it
    let plan: Value = serde_json::from_str(&text("plan")).expect("still JSON");
    assert_eq!(plan[0]["query_block"]["select_id"], 1, "wrapped in a one-element array: {plan}");
    assert_eq!(text("pg"), r#"[{"Plan":{"Node Type":"Seq Scan"}}]"#, "an array is already kept whole");
    // a map becomes a JSON string, on a log record wrapped like the plan
    // (log ingest would flatten the object too)
    let tags: Value = serde_json::from_str(&text("tags")).expect("a map as a JSON string");
    assert_eq!(tags, serde_json::json!([{"team": "db", "tier": 1}]));
    let list = attrs["list"]["arrayValue"]["values"].as_array().map(Vec::len);
    assert_eq!(list, Some(64), "an array stops at 64 entries: {:?}", attrs["list"]);
    assert_eq!(attrs.get("dbintel.truncated").map(|v| &v["boolValue"]), Some(&Value::Bool(true)));
    for (change, n) in [("json_wrapped", 2.0), ("value_serialized", 1.0), ("array_truncated", 1.0)] {
        assert_eq!(run.metric(&format!(r#"dbintel_export_shaped_total{{sink="out",change="{change}"}}"#)), n, "{change}");
    }
}
