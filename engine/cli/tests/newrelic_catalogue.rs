//! The shipped pipelines, run as they ship (`dbintel run
//! pipelines/postgres.pipe`, `pipelines/mysql.pipe`, the `newrelic` sink
//! pointed at tests/otlp_receiver.py — the official OTLP classes decode
//! every byte) against real servers: PostgreSQL 12, 15, 17, 18 and a
//! streaming standby of 15, and MariaDB 10.11. What arrives is held
//! against what New Relic reads (docs/catalogue/newrelic.md, from
//! `newrelic/entity-definitions`):
//!
//! - every metric the entity definitions, golden metrics and OpenTelemetry
//!   dashboards query is there, with every attribute (and value) they
//!   filter or facet on — on the point or its resource, as New Relic
//!   flattens both;
//! - every resource satisfies its entity rule: PostgreSQL data carries the
//!   server's `service.instance.id` on every resource (databases, tables,
//!   indexes, events), MySQL data `mysql.instance.endpoint`; events carry
//!   `db.system.name` = `postgresql` / `mysql`;
//! - golden metrics that divide by `endTimestamp - timestamp` get sums
//!   with a start time;
//! - every point and event matches its collector's declaration (the same
//!   check the README's catalogue is generated from);
//! - the scope is the contrib receiver's (the `newrelic` preset);
//! - every top statement's event has its metric points: nothing of the
//!   top N is sampled away.
//!
//! Needs `tests/pg-versions.sh start 12 13 14 16 17 18 replica` (the suite
//! runs it) and the shared :5432 and :3306; fails, never skips, without
//! them. About 40 s: the statements' second scrape comes 30 s after the
//! first, as shipped.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::otlp::{Receiver, Run};
use common::pg_servers;
use common::scratch;
use dbintel_core::record::{LogRecord, MetricKind, MetricPoint, Number, Record, Temporality};
use dbintel_sources::target::Engine;
use dbintel_stdlib::{Map, Value};
use serde_json::Value as Json;

/// A metric New Relic queries and the attributes it filters or facets on
/// (`Some(v)`: that value must occur).
type Need = (&'static str, &'static [(&'static str, Option<&'static str>)]);

const DB: &[(&str, Option<&str>)] = &[("postgresql.database.name", None)];

/// docs/catalogue/newrelic.md §4, PostgreSQL.
const POSTGRES_NEEDS: &[Need] = &[
    ("postgresql.backends", DB),
    ("postgresql.connection.max", &[]),
    ("postgresql.database.count", &[]),
    ("postgresql.table.count", &[]),
    ("postgresql.db_size", DB),
    ("postgresql.database.locks", &[("mode", None), ("lock_type", None)]),
    ("postgresql.deadlocks", DB),
    ("postgresql.commits", DB),
    ("postgresql.rollbacks", DB),
    ("postgresql.blocks_read", &[("source", Some("heap_hit")), ("source", Some("heap_read"))]),
    ("postgresql.temp_files", DB),
    ("postgresql.temp.io", DB),
    ("postgresql.operations", &[("operation", None)]),
    ("postgresql.rows", &[("state", None)]),
    ("postgresql.sequential_scans", &[("postgresql.table.name", None)]),
    ("postgresql.function.calls", &[("function", None)]),
    ("postgresql.bgwriter.buffers.writes", &[("source", None)]),
    ("postgresql.bgwriter.checkpoint.count", &[("type", Some("scheduled")), ("type", Some("requested"))]),
    ("postgresql.bgwriter.duration", &[("type", None)]),
    ("postgresql.bgwriter.buffers.allocated", &[]),
    ("postgresql.bgwriter.maxwritten", &[]),
    ("postgresql.table.size", &[("postgresql.table.name", None)]),
    ("postgresql.index.size", &[("postgresql.index.name", None)]),
    ("postgresql.index.scans", &[("postgresql.index.name", None)]),
    ("postgresql.table.vacuum.count", &[("postgresql.table.name", None)]),
    ("postgresql.query.conflicts", &[("postgresql.conflict.type", None)]),
];

/// The golden metrics: `sum(x) / sum((endTimestamp - timestamp) / 1000)`.
const POSTGRES_GOLDEN: &[&str] = &["postgresql.bgwriter.checkpoint.count", "postgresql.bgwriter.buffers.allocated"];

/// docs/catalogue/newrelic.md §4, MySQL.
const MYSQL_NEEDS: &[Need] = &[
    ("mysql.threads", &[("kind", Some("connected")), ("kind", Some("running"))]),
    ("mysql.query.count", &[]),
    (
        "mysql.buffer_pool.operations",
        &[("operation", Some("reads")), ("operation", Some("read_requests")), ("operation", Some("wait_free"))],
    ),
    ("mysql.buffer_pool.usage", &[]),
    ("mysql.buffer_pool.limit", &[]),
    ("mysql.buffer_pool.pages", &[("kind", Some("data")), ("kind", Some("free"))]),
    ("mysql.buffer_pool.data_pages", &[("status", None)]),
    ("mysql.operations", &[("operation", None)]),
    ("mysql.log_operations", &[("operation", None)]),
    ("mysql.double_writes", &[]),
    ("mysql.buffer_pool.page_flushes", &[]),
    ("mysql.row_locks", &[("kind", Some("waits")), ("kind", Some("time"))]),
    ("mysql.locks", &[("kind", None)]),
    ("mysql.table.size", &[("kind", Some("data")), ("schema", None), ("table", None)]),
    ("mysql.query.slow.count", &[]),
    ("mysql.uptime", &[]),
    ("mysql.max_used_connections", &[]),
    ("mysql.connection.errors", &[("error", None)]),
    ("mysql.joins", &[("kind", None)]),
    ("mysql.sorts", &[("kind", None)]),
    ("mysql.commands", &[("command", None)]),
    ("mysql.row_operations", &[("operation", None)]),
    ("mysql.tmp_resources", &[("resource", Some("disk_tables"))]),
    ("mysql.table_open_cache", &[("status", None)]),
    ("mysql.opened_resources", &[("kind", None)]),
];

/// What MariaDB has no source for (no `Innodb_rows_*`), exactly: the
/// test says so if one appears.
const MARIADB_WITHOUT: &[&str] = &["mysql.row_operations"];

struct Point {
    record: Record,
    resource: Map,
    scope: String,
}

struct Received {
    points: Vec<Point>,
    logs: Vec<Point>,
}

fn any_value(v: &Json) -> Value {
    let Some((kind, inner)) = v.as_object().and_then(|o| o.iter().next()) else { return Value::Nil };
    match kind.as_str() {
        "stringValue" => Value::Str(inner.as_str().unwrap_or_default().to_string()),
        "intValue" => Value::Int(inner.as_str().and_then(|s| s.parse().ok()).or(inner.as_i64()).unwrap_or_default()),
        "doubleValue" => Value::Double(inner.as_f64().unwrap_or_default()),
        "boolValue" => Value::Bool(inner.as_bool().unwrap_or_default()),
        "arrayValue" => Value::List(inner["values"].as_array().into_iter().flatten().map(any_value).collect()),
        _ => Value::Str(inner.to_string()),
    }
}

fn attributes(list: &Json) -> Map {
    let mut out = Map::new();
    for kv in list.as_array().into_iter().flatten() {
        out.insert(kv["key"].as_str().unwrap_or_default(), any_value(&kv["value"]));
    }
    out
}

fn nanos(v: &Json) -> u64 {
    v.as_str().and_then(|s| s.parse().ok()).or(v.as_u64()).unwrap_or_default()
}

/// The receiver's records back as dbintel records, with their resource
/// and scope: decoded by the official classes, read from their JSON.
fn decode(requests: &[Json]) -> Received {
    let mut received = Received { points: Vec::new(), logs: Vec::new() };
    for r in requests.iter().filter(|r| r["answer"] == "ok") {
        for rm in r["request"]["resourceMetrics"].as_array().into_iter().flatten() {
            let resource = attributes(&rm["resource"]["attributes"]);
            for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                let scope = sm["scope"]["name"].as_str().unwrap_or_default().to_string();
                for m in sm["metrics"].as_array().into_iter().flatten() {
                    let (data, kind) = match (m.get("gauge"), m.get("sum")) {
                        (Some(g), _) => (g, MetricKind::Gauge),
                        (_, Some(s)) => {
                            let temporality = if s["aggregationTemporality"].as_str() == Some("AGGREGATION_TEMPORALITY_DELTA")
                                || s["aggregationTemporality"] == 1
                            {
                                Temporality::Delta
                            } else {
                                Temporality::Cumulative
                            };
                            (s, MetricKind::Sum { monotonic: s["isMonotonic"] == true, temporality })
                        }
                        _ => continue,
                    };
                    for p in data["dataPoints"].as_array().into_iter().flatten() {
                        let value = match (p.get("asInt"), p.get("asDouble")) {
                            (Some(i), _) => Number::Int(i.as_str().and_then(|s| s.parse().ok()).or(i.as_i64()).unwrap_or_default()),
                            (_, Some(d)) => Number::Double(d.as_f64().unwrap_or_default()),
                            _ => Number::Int(0),
                        };
                        let point = MetricPoint {
                            name: m["name"].as_str().unwrap_or_default().to_string(),
                            unit: m["unit"].as_str().unwrap_or_default().to_string(),
                            description: String::new(),
                            kind,
                            start_time_unix_nano: nanos(&p["startTimeUnixNano"]),
                            time_unix_nano: nanos(&p["timeUnixNano"]),
                            value,
                            attributes: attributes(&p["attributes"]),
                        };
                        received.points.push(Point { record: Record::Metric(point), resource: resource.clone(), scope: scope.clone() });
                    }
                }
            }
        }
        for rl in r["request"]["resourceLogs"].as_array().into_iter().flatten() {
            let resource = attributes(&rl["resource"]["attributes"]);
            for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
                let scope = sl["scope"]["name"].as_str().unwrap_or_default().to_string();
                for l in sl["logRecords"].as_array().into_iter().flatten() {
                    let log = LogRecord {
                        event_name: l["eventName"].as_str().unwrap_or_default().to_string(),
                        attributes: attributes(&l["attributes"]),
                        ..LogRecord::default()
                    };
                    received.logs.push(Point { record: Record::Log(log), resource: resource.clone(), scope: scope.clone() });
                }
            }
        }
    }
    received
}

impl Point {
    fn metric(&self) -> Option<&MetricPoint> {
        match &self.record {
            Record::Metric(m) => Some(m),
            Record::Log(_) => None,
        }
    }
    fn log(&self) -> Option<&LogRecord> {
        match &self.record {
            Record::Log(l) => Some(l),
            Record::Metric(_) => None,
        }
    }
    /// An attribute as New Relic sees it: the point's, else its resource's.
    fn attribute(&self, key: &str) -> Option<&Value> {
        self.record.attributes().get(key).or_else(|| self.resource.get(key))
    }
}

/// The entity key attribute of `engine`.
fn entity_key(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "service.instance.id",
        Engine::MySql => "mysql.instance.endpoint",
    }
}

/// What New Relic could not show for `endpoint`: checklist entries
/// missing (but `without`), broken entity rules, undeclared shapes, wrong
/// scopes, sampled top statements.
fn problems(received: &Received, engine: Engine, endpoint: &str, needs: &[Need], golden: &[&str], without: &[&str]) -> Vec<String> {
    let key = entity_key(engine);
    let system = engine.system();
    let ours = |p: &&Point| p.resource.get(key).and_then(Value::as_str) == Some(endpoint);
    let points: Vec<&Point> = received.points.iter().filter(ours).collect();
    let logs: Vec<&Point> = received.logs.iter().filter(ours).collect();
    let mut problems = Vec::new();
    for (metric, wanted) in needs {
        let of: Vec<&&Point> = points.iter().filter(|p| p.metric().is_some_and(|m| m.name == *metric)).collect();
        if without.contains(metric) {
            if !of.is_empty() {
                problems.push(format!("{metric} arrived, but this server was thought to have no source for it"));
            }
            continue;
        }
        if of.is_empty() {
            problems.push(format!("{metric}: no point"));
            continue;
        }
        for (attribute, value) in *wanted {
            let found = of.iter().any(|p| match (p.attribute(attribute), value) {
                (Some(v), Some(want)) => v.as_str() == Some(*want),
                (Some(v), None) => !v.is_nil(),
                (None, _) => false,
            });
            if !found {
                problems.push(format!("{metric}: no point with {attribute}{}", value.map(|v| format!(" = {v}")).unwrap_or_default()));
            }
        }
    }
    for metric in golden {
        for p in points.iter().filter_map(|p| p.metric()).filter(|m| m.name == *metric) {
            if !(p.start_time_unix_nano > 0 && p.start_time_unix_nano <= p.time_unix_nano) {
                problems
                    .push(format!("{metric}: a golden rate needs a start time, got {} .. {}", p.start_time_unix_nano, p.time_unix_nano));
            }
        }
    }
    // every point of the engine's prefix and every event: on an entity
    let everything =
        received.points.iter().chain(&received.logs).filter(|p| p.resource.get("db.system.name").and_then(Value::as_str) == Some(system));
    for p in everything {
        if p.resource.get(key).is_none() {
            problems.push(format!("a resource without {key}: {:?}", p.resource));
        }
    }
    for p in &points {
        let name = &p.metric().map(|m| m.name.clone()).unwrap_or_default();
        if !name.starts_with(&format!("{system}.")) {
            problems.push(format!("{name}: not a {system}.* name, matches no entity rule"));
        }
    }
    if logs.is_empty() {
        problems.push("no events".into());
    }
    for p in &logs {
        if p.attribute("db.system.name").and_then(Value::as_str) != Some(system) {
            problems.push(format!("event {}: db.system.name is not {system}", p.log().map(|l| l.event_name.as_str()).unwrap_or("?")));
        }
    }
    // the declarations hold, and the scope is the receiver's
    let scope = format!("github.com/open-telemetry/opentelemetry-collector-contrib/receiver/{system}receiver");
    for p in points.iter().chain(&logs) {
        problems.extend(dbintel_sources::catalogue::conformance(engine, &p.resource, &p.record));
        if p.scope != scope {
            problems.push(format!("scope {:?}, not {scope}", p.scope));
        }
    }
    // the top statements: every event has its metric points
    let events: BTreeSet<String> = logs
        .iter()
        .filter_map(|p| p.log())
        .filter(|l| l.event_name == "db.server.top_query")
        .filter_map(|l| l.attributes.get("db.query.id").map(ToString::to_string))
        .collect();
    let calls: BTreeSet<String> = points
        .iter()
        .filter_map(|p| p.metric())
        .filter(|m| m.name == format!("{system}.query.calls"))
        .filter_map(|m| m.attributes.get("db.query.id").map(ToString::to_string))
        .collect();
    if events.is_empty() {
        problems.push("no db.server.top_query events".into());
    }
    if events != calls {
        problems.push(format!(
            "top statements with an event but no calls point, or the reverse: {:?}",
            events.symmetric_difference(&calls).collect::<Vec<_>>()
        ));
    }
    problems
}

/// Whether everything `problems` would look for has had time to arrive:
/// the checklist's metrics and a top_query event.
fn arrived(received: &Received, engine: Engine, endpoint: &str, needs: &[Need], without: &[&str]) -> bool {
    let key = entity_key(engine);
    let names: BTreeSet<&str> = received
        .points
        .iter()
        .filter(|p| p.resource.get(key).and_then(Value::as_str) == Some(endpoint))
        .filter_map(|p| p.metric().map(|m| m.name.as_str()))
        .collect();
    let events = received.logs.iter().any(|p| {
        p.resource.get(key).and_then(Value::as_str) == Some(endpoint) && p.log().is_some_and(|l| l.event_name == "db.server.top_query")
    });
    events && needs.iter().all(|(m, _)| without.contains(m) || names.contains(m))
}

fn psql(port: u16, database: &str, sql: &str) -> String {
    let url = format!("postgresql://postgres:super-secret-pw@127.0.0.1:{port}/{database}");
    let out = Command::new("psql").args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", &url, "-c", sql]).output().expect("psql");
    assert!(out.status.success(), "psql on {port}: {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A database of this test's own with a table, an index and a function
/// that have statistics: rows written, scanned, vacuumed, a function
/// called with `track_functions`.
fn prepare_postgres(port: u16) {
    if psql(port, "dbintel_test", "SELECT count(*) FROM pg_database WHERE datname = 'catalogue2_nr'") == "0" {
        psql(port, "dbintel_test", "CREATE DATABASE catalogue2_nr");
    }
    psql(
        port,
        "catalogue2_nr",
        "CREATE TABLE IF NOT EXISTS catalogue2_orders (id serial PRIMARY KEY, customer text, total numeric);
         CREATE INDEX IF NOT EXISTS catalogue2_orders_customer ON catalogue2_orders (customer);
         CREATE OR REPLACE FUNCTION catalogue2_total(c text) RETURNS numeric LANGUAGE plpgsql
           AS $$ BEGIN RETURN (SELECT sum(total) FROM catalogue2_orders WHERE customer = c); END $$;",
    );
    psql(
        port,
        "catalogue2_nr",
        "TRUNCATE catalogue2_orders;
         INSERT INTO catalogue2_orders (customer, total) SELECT 'c' || g % 10, g FROM generate_series(1, 200) g;
         UPDATE catalogue2_orders SET total = total + 1 WHERE id % 3 = 0;
         DELETE FROM catalogue2_orders WHERE id % 7 = 0;",
    );
    psql(port, "catalogue2_nr", "VACUUM catalogue2_orders");
    psql(port, "catalogue2_nr", "SET track_functions = 'pl'; SELECT catalogue2_total('c1'), count(*) FROM catalogue2_orders");
}

/// A session holding a lock (so `postgresql.database.locks` has one to
/// show), ended by terminating it.
struct LockHolder {
    port: u16,
    child: Child,
}

impl LockHolder {
    fn start(port: u16) -> LockHolder {
        let url = format!("postgresql://postgres:super-secret-pw@127.0.0.1:{port}/catalogue2_nr?application_name=catalogue2_lock");
        let child = Command::new("psql")
            .args(["-X", "-q", &url, "-c", "BEGIN; LOCK TABLE catalogue2_orders IN ROW EXCLUSIVE MODE; SELECT pg_sleep(90); COMMIT;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql");
        LockHolder { port, child }
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let url = format!("postgresql://postgres:super-secret-pw@127.0.0.1:{}/dbintel_test", self.port);
        let _ = Command::new("psql")
            .args([
                "-X",
                "-q",
                &url,
                "-c",
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'catalogue2_lock'",
            ])
            .output();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped pipeline, pointed at the receiver by environment alone,
/// over OTLP/HTTP (what New Relic recommends).
fn shipped(pipe: &str, dsn_var: &str, dsn: &str, receiver: &Receiver) -> Run {
    let endpoint = format!("http://127.0.0.1:{}", receiver.http);
    Run::start(
        &[pipe],
        &[
            (dsn_var, dsn),
            ("NEW_RELIC_LICENSE_KEY", "catalogue2-test-key"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ],
    )
}

/// Polls until `ready`, doing `work` each round; on timeout, fails with
/// what is still missing.
fn wait_until(
    limit: Duration,
    receiver: &Receiver,
    mut work: impl FnMut(),
    ready: impl Fn(&Received) -> bool,
    missing: impl Fn(&Received) -> String,
) -> Received {
    let started = std::time::Instant::now();
    loop {
        work();
        let received = decode(&receiver.accepted());
        if ready(&received) {
            return received;
        }
        assert!(started.elapsed() < limit, "timed out after {limit:?}; missing: {}", missing(&received));
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn postgresql_12_15_17_18_and_a_standby_feed_every_new_relic_view_from_the_shipped_pipeline() {
    let servers = pg_servers::servers();
    let targets: Vec<(&str, u16)> =
        ["12", "15", "17", "18", pg_servers::REPLICA].into_iter().map(|name| (name, pg_servers::port_of(&servers, name))).collect();
    let primaries: Vec<u16> = targets.iter().filter(|(name, _)| *name != pg_servers::REPLICA).map(|(_, port)| *port).collect();
    for port in &primaries {
        prepare_postgres(*port);
    }
    // the standby replays the new database before it is scraped, and
    // keeps statistics of its own: a function call there too
    std::thread::sleep(Duration::from_secs(1));
    let standby_port = pg_servers::port_of(&servers, pg_servers::REPLICA);
    psql(standby_port, "catalogue2_nr", "SET track_functions = 'pl'; SELECT catalogue2_total('c1')");
    let _locks: Vec<LockHolder> = primaries.iter().map(|p| LockHolder::start(*p)).collect();
    std::thread::sleep(Duration::from_millis(500));

    let dir = scratch("newrelic-catalogue-pg");
    let receiver = Receiver::start(&dir, "nr", 0, 0, "[]");
    let runs: Vec<(&str, String, Run)> = targets
        .iter()
        .map(|(name, port)| {
            let dsn = format!("postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:{port}/dbintel_test");
            // New Relic's entity key for the server
            (*name, common::nr_service_instance_id("127.0.0.1", *port), shipped("pipelines/postgres.pipe", "PG_DSN", &dsn, &receiver))
        })
        .collect();
    // statements for the second statements scrape to find
    let done = wait_until(
        Duration::from_secs(80),
        &receiver,
        || {
            for port in &primaries {
                psql(*port, "catalogue2_nr", "SELECT count(*) FROM catalogue2_orders WHERE customer = 'c3'");
            }
        },
        |received| runs.iter().all(|(_, endpoint, _)| arrived(received, Engine::Postgres, endpoint, POSTGRES_NEEDS, &[])),
        |received| {
            let by_server: Vec<(String, Vec<String>, String)> = runs
                .iter()
                .map(|(_, e, run)| (e.clone(), problems(received, Engine::Postgres, e, POSTGRES_NEEDS, POSTGRES_GOLDEN, &[]), run.stderr()))
                .collect();
            format!("{by_server:#?}")
        },
    );
    let mut failures = BTreeMap::new();
    for (name, endpoint, run) in &runs {
        let found = problems(&done, Engine::Postgres, endpoint, POSTGRES_NEEDS, POSTGRES_GOLDEN, &[]);
        if !found.is_empty() {
            failures.insert(*name, (found, run.stderr()));
        }
    }
    assert!(failures.is_empty(), "what New Relic would miss, by server: {failures:#?}");

    // the standby: its own lag, and no primary-only series
    let standby = common::nr_service_instance_id("127.0.0.1", pg_servers::port_of(&servers, pg_servers::REPLICA));
    let names = |endpoint: &str| -> BTreeSet<String> {
        done.points
            .iter()
            .filter(|p| p.resource.get("service.instance.id").and_then(Value::as_str) == Some(endpoint))
            .filter_map(|p| p.metric().map(|m| m.name.clone()))
            .collect()
    };
    let on_standby = names(&standby);
    assert!(on_standby.contains("postgresql.replication.lag") && !on_standby.contains("postgresql.wal.bytes"), "{on_standby:?}");
    // the primary: its standby's delays
    let on_primary = names(&common::nr_service_instance_id("127.0.0.1", 5432));
    for metric in ["postgresql.replication.data_delay", "postgresql.wal.delay"] {
        assert!(on_primary.contains(metric), "{metric} on the primary of the standby: {on_primary:?}");
    }
    // PostgreSQL 17+ reads the checkpointer: no backend writes there
    for (name, endpoint, _) in &runs {
        let backend = done.points.iter().any(|p| {
            p.resource.get("service.instance.id").and_then(Value::as_str) == Some(endpoint.as_str())
                && p.metric().is_some_and(|m| m.name == "postgresql.bgwriter.buffers.writes")
                && p.attribute("source").and_then(Value::as_str) == Some("backend")
        });
        assert_eq!(backend, name.parse::<u32>().is_ok_and(|v| v < 17) || name.starts_with("15"), "PostgreSQL {name}: backend writes");
    }
    // the top statements' events in the contrib shape
    let event = done.logs.iter().filter_map(|p| p.log()).find(|l| l.event_name == "db.server.top_query").expect("a top_query event");
    for attribute in ["postgresql.queryid", "postgresql.rolname", "postgresql.calls", "postgresql.total_exec_time", "db.query.text"] {
        assert!(event.attributes.get(attribute).is_some(), "{attribute} on {event:?}");
    }
}

fn mariadb(sql: &str) {
    let out = Command::new("mariadb").args(["-uroot", "-h127.0.0.1", "-e", sql]).output().expect("mariadb client");
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn mariadb_feeds_every_new_relic_view_it_has_a_source_for_from_the_shipped_pipeline() {
    // a schema of this test's own, and a user with the documented grants
    // (SLAVE MONITOR too, so the replica status query runs for real)
    mariadb(
        "CREATE DATABASE IF NOT EXISTS catalogue2_nr;
         USE catalogue2_nr;
         CREATE TABLE IF NOT EXISTS catalogue2_nr.orders (id INT PRIMARY KEY AUTO_INCREMENT, customer VARCHAR(20), total INT, KEY customer (customer)) ENGINE=InnoDB;
         TRUNCATE catalogue2_nr.orders;
         INSERT INTO catalogue2_nr.orders (customer, total) SELECT CONCAT('c', seq % 10), seq FROM seq_1_to_200;
         CREATE USER IF NOT EXISTS 'catalogue2_monitor'@'%' IDENTIFIED BY 'catalogue2-pw';
         CREATE USER IF NOT EXISTS 'catalogue2_monitor'@'localhost' IDENTIFIED BY 'catalogue2-pw';
         GRANT SELECT ON performance_schema.* TO 'catalogue2_monitor'@'%', 'catalogue2_monitor'@'localhost';
         GRANT PROCESS, SLAVE MONITOR ON *.* TO 'catalogue2_monitor'@'%', 'catalogue2_monitor'@'localhost';
         GRANT SELECT ON catalogue2_nr.* TO 'catalogue2_monitor'@'%', 'catalogue2_monitor'@'localhost';",
    );
    let dir = scratch("newrelic-catalogue-my");
    let receiver = Receiver::start(&dir, "nr", 0, 0, "[]");
    let run = shipped("pipelines/mysql.pipe", "MYSQL_DSN", "mysql://catalogue2_monitor:catalogue2-pw@127.0.0.1:3306", &receiver);
    let endpoint = "127.0.0.1:3306";
    let done = wait_until(
        Duration::from_secs(80),
        &receiver,
        || mariadb("SELECT count(*) FROM catalogue2_nr.orders WHERE customer = 'c3'"),
        |received| arrived(received, Engine::MySql, endpoint, MYSQL_NEEDS, MARIADB_WITHOUT),
        |received| format!("{:#?}\n{}", problems(received, Engine::MySql, endpoint, MYSQL_NEEDS, &[], MARIADB_WITHOUT), run.stderr()),
    );
    let found = problems(&done, Engine::MySql, endpoint, MYSQL_NEEDS, &[], MARIADB_WITHOUT);
    assert!(found.is_empty(), "what New Relic would miss: {found:#?}\n{}", run.stderr());
    assert!(!run.stderr().contains("replica status failed"), "the replica status query runs: {}", run.stderr());
    let event = done.logs.iter().filter_map(|p| p.log()).find(|l| l.event_name == "db.server.top_query").expect("a top_query event");
    for attribute in [
        "mysql.events_statements_summary_by_digest.digest",
        "mysql.events_statements_summary_by_digest.count_star",
        "mysql.events_statements_summary_by_digest.sum_timer_wait",
    ] {
        assert!(event.attributes.get(attribute).is_some(), "{attribute} on {event:?}");
    }
}

/// The shipped pipeline sends every metric point and every event of every
/// top statement: the recorded fixture's statements that ran in each of
/// its two intervals (9 each) all arrive at the sink, not a sample of
/// them (the pipeline once kept a quarter by query id).
#[test]
fn the_shipped_postgres_pipeline_sends_every_top_statement() {
    let out = common::dbintel(
        &["dry-run", "pipelines/postgres.pipe", "--input", "postgres.statements=pipelines/fixtures/pg_stat_statements.ndjson"],
        &[],
    );
    assert_eq!(common::code(&out), 0, "{}", common::text(&out.stderr));
    let lines: Vec<Json> = common::text(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let requests: Vec<Json> = lines
        .into_iter()
        .map(|l| {
            let signal = if l.get("resourceMetrics").is_some() { "metrics" } else { "logs" };
            serde_json::json!({"answer": "ok", "signal": signal, "request": l})
        })
        .collect();
    let received = decode(&requests);
    let ids = |interval: u64, metric: bool| -> BTreeSet<String> {
        let points = if metric { &received.points } else { &received.logs };
        points
            .iter()
            .filter(|p| match &p.record {
                Record::Metric(m) => m.name == "postgresql.query.calls" && m.time_unix_nano == interval,
                Record::Log(l) => l.event_name == "db.server.top_query",
            })
            .filter_map(|p| p.record.attributes().get("db.query.id").map(ToString::to_string))
            .collect()
    };
    let times: BTreeSet<u64> = received.points.iter().filter_map(|p| p.metric()).map(|m| m.time_unix_nano).collect();
    assert_eq!(times.len(), 2, "two replayed intervals: {times:?}");
    for t in &times {
        assert_eq!(ids(*t, true).len(), 9, "every statement that ran in the interval has its calls point");
    }
    assert_eq!(received.logs.iter().filter(|p| p.log().is_some_and(|l| l.event_name == "db.server.top_query")).count(), 18);
    assert_eq!(ids(0, false).len(), 9, "and each its events");
}
