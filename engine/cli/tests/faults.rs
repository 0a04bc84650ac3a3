//! Faults, for real. Each test runs `dbintel run` against a real server
//! and breaks something — the server is down at start, restarts, hangs
//! behind a proxy, runs out of connections, lacks a privilege, gets a bad
//! query, has a name that does not resolve — then asserts the states
//! `/status` shows on the way, that dbintel recovers by itself (never
//! restarted), and that what it accepted arrived.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use common::otlp::Run;
use common::proxy::{Mode, Proxy};
use common::{psql, scratch};

/// Tests that stop and start the `restarttest` cluster (5433) take this.
static RESTART_CLUSTER: Mutex<()> = Mutex::new(());

const RESTART_DSN: &str = "postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5433/postgres";

fn cluster(action: &str) {
    let ok = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", "15", "restarttest", action])
        .status()
        .expect("pg_ctlcluster")
        .success();
    // "stop" of a stopped cluster and "start" of a running one fail harmlessly
    if !ok && action == "start" {
        let log = std::fs::read_to_string("/var/log/postgresql/postgresql-15-restarttest.log").unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        assert!(pg_ready(5433), "the restarttest cluster does not start; its log ends:\n{}", tail.join("\n"));
    }
}

fn pg_ready(port: u16) -> bool {
    std::process::Command::new("pg_isready").args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()]).status().is_ok_and(|s| s.success())
}

/// Starts the 5433 cluster again however the test ends.
struct ClusterBack;
impl Drop for ClusterBack {
    fn drop(&mut self) {
        cluster("start");
    }
}

/// A pipeline of one source `src` (kind, settings, collectors) into a file.
fn pipe(dir: &Path, kind: &str, settings: &str, collectors: &str) -> (PathBuf, PathBuf) {
    let out = dir.join("out.jsonl");
    let _ = std::fs::remove_file(&out);
    let pipe = dir.join("p.pipe");
    std::fs::write(
        &pipe,
        format!(
            "source src = {kind} {{\n  dsn = env(\"FAULT_DSN\")\n  interval = 500ms\n  jitter = 0%\n  timeout = 1s\n  connect_timeout = 1s\n  reconnect_max = 2s\n  config_retry = 1s\n{settings}\n{collectors}\n}}\nsink out = file {{ path = \"{}\" }}\npipeline p = src -> out\n",
            out.display()
        ),
    )
    .unwrap();
    (pipe, out)
}

/// Metric data points (by metric name) and log records (by event name)
/// in an OTLP/JSON lines file.
fn points(file: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
        let request: serde_json::Value = serde_json::from_str(line).expect("OTLP/JSON line");
        for rm in request["resourceMetrics"].as_array().into_iter().flatten() {
            for m in rm["scopeMetrics"].as_array().into_iter().flatten().flat_map(|s| s["metrics"].as_array().into_iter().flatten()) {
                let n = ["gauge", "sum"].iter().filter_map(|k| m[k]["dataPoints"].as_array()).map(Vec::len).sum::<usize>();
                *counts.entry(m["name"].as_str().unwrap_or("?").to_string()).or_default() += n;
            }
        }
        for rl in request["resourceLogs"].as_array().into_iter().flatten() {
            for l in rl["scopeLogs"].as_array().into_iter().flatten().flat_map(|s| s["logRecords"].as_array().into_iter().flatten()) {
                *counts.entry(l["eventName"].as_str().unwrap_or("?").to_string()).or_default() += 1;
            }
        }
    }
    counts
}

fn total(file: &Path) -> usize {
    points(file).values().sum()
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

/// SIGTERM, then: every record the source emitted is in the file.
fn stop_and_count(mut run: Run, out: &Path) -> String {
    let (status, log) = run.signal("TERM", Duration::from_secs(20));
    assert!(status.success(), "exit {status}:\n{log}");
    assert_eq!(total(out), summary_out(&log, "src"), "what the source emitted is what arrived:\n{log}");
    log
}

fn occurrences(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

#[test]
fn a_database_down_at_start_is_retried_until_it_answers() {
    let _serial = RESTART_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let _back = ClusterBack;
    cluster("stop");
    let dir = scratch("fault-down-at-start");
    let (pipe, out) = pipe(&dir, "postgres", "", "  collect instance");
    let run = Run::spawn(&[pipe.to_str().unwrap()], &[("FAULT_DSN", RESTART_DSN)]);

    let down = run.wait_state("src", "down", Duration::from_secs(10));
    assert_eq!(down["last_error"]["class"], "connection", "{down:#}");
    assert!(down["last_error"]["message"].as_str().unwrap_or_default().contains("refused"), "the cause, precisely: {down:#}");
    assert_eq!(down["connected_once"], false, "{down:#}");
    let (code, body) = run.get("/readyz");
    assert_eq!(code, 503, "not ready while a source has never connected: {body}");
    assert!(body.contains("src has not connected yet (down"), "{body}");
    assert_eq!(run.metric("dbintel_source_up{node=\"src\"}"), 0.0, "{}", run.stderr());
    let table = common::dbintel(&["status", "--listen", &format!("127.0.0.1:{}", run.port)], &[]);
    assert_eq!(common::code(&table), 1, "not ready: exit 1; {}", common::seen(&table));

    let table = common::text(&table.stdout);
    assert!(table.contains("NOT READY") && table.lines().any(|l| l.starts_with("src") && l.contains("down")), "{table}");

    // several attempts fail while it is down (1 s, 2 s, 2 s…)
    std::thread::sleep(Duration::from_secs(4));
    cluster("start");
    let up = run.wait_state("src", "up", Duration::from_secs(15));
    assert_eq!(up["connected_once"], true, "{up:#}");
    run.wait_for("ready", Duration::from_secs(5), || (run.get("/readyz").0 == 200).then_some(()));
    assert_eq!(run.metric("dbintel_source_up{node=\"src\"}"), 1.0, "{}", run.stderr());
    run.wait_for("instance metrics", Duration::from_secs(10), || {
        (points(&out).get("postgresql.backends").copied() >= Some(2)).then_some(())
    });

    let log = stop_and_count(run, &out);
    assert_eq!(occurrences(&log, "cannot connect; retrying"), 1, "logged once per cause, not per attempt:\n{log}");
    assert!(log.contains("connected again"), "{log}");
    assert!(!log.contains("monitor-secret-pw"), "{log}");
}

#[test]
fn a_database_restart_mid_run_reconnects_and_loses_nothing() {
    let _serial = RESTART_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let _back = ClusterBack;
    cluster("start");
    let dir = scratch("fault-restart");
    let (pipe, out) = pipe(&dir, "postgres", "", "  collect instance\n  collect statements");
    let run = Run::start(&[pipe.to_str().unwrap()], &[("FAULT_DSN", RESTART_DSN)]);
    run.wait_state("src", "up", Duration::from_secs(10));
    run.wait_for("a few scrapes", Duration::from_secs(10), || (total(&out) > 20).then_some(()));

    cluster("stop");
    let down = run.wait_state("src", "down", Duration::from_secs(10));
    assert_eq!(down["last_error"]["class"], "connection", "{down:#}");
    assert_eq!(run.get("/readyz").0, 200, "an outage after the first connection does not flap readiness");
    let before = total(&out);
    cluster("start");
    run.wait_state("src", "up", Duration::from_secs(15));
    run.wait_for("data after the restart", Duration::from_secs(10), || (total(&out) > before + 10).then_some(()));
    assert_eq!(run.get("/readyz").0, 200, "{:?}\n{}", run.get("/readyz"), run.stderr());
    let log = stop_and_count(run, &out);
    assert!(log.contains("connection lost; reconnecting") || log.contains("cannot connect; retrying"), "{log}");
}

#[test]
fn a_database_that_hangs_opens_the_breaker_and_recovers() {
    let proxy = Proxy::start(5432);
    let dir = scratch("fault-hang");
    let (pipe, out) = pipe(&dir, "postgres", "  breaker_failures = 2\n  breaker_cooldown = 1s\n  pool = 1", "  collect instance");
    let dsn = format!("postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:{}/dbintel_test", proxy.port);
    let run = Run::start(&[pipe.to_str().unwrap()], &[("FAULT_DSN", &dsn)]);
    run.wait_state("src", "up", Duration::from_secs(10));

    // the server stops answering: queries time out (the breaker opens) and
    // new connections never get through their handshake
    proxy.set(Mode::Pause);
    let hung = run.wait_for("the hang to be noticed", Duration::from_secs(15), || {
        let t = run.target("src");
        (t["state"] == "breaker_open" || t["state"] == "down").then_some(t)
    });
    // the target's error, or (the breaker tripped by a part of a scrape
    // that timed out) the collector's; or none yet when the breaker opened
    // on the queries around the first scrape (the server's identity, the
    // duress probe) — an open breaker is distress
    let class = hung["last_error"]["class"]
        .as_str()
        .or_else(|| hung["collectors"]["instance"]["last_error"]["class"].as_str())
        .unwrap_or(if hung["state"] == "breaker_open" { "distress" } else { "" })
        .to_string();
    assert!(class == "distress" || class == "connection", "{hung:#}");
    let stalled = total(&out);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(total(&out), stalled, "nothing is scraped from a hung server");

    proxy.set(Mode::Forward);
    run.wait_state("src", "up", Duration::from_secs(20));
    run.wait_for("data again", Duration::from_secs(10), || (total(&out) > stalled).then_some(()));

    // a network cut, and new connections disappear into a black hole
    proxy.set(Mode::Blackhole);
    proxy.reset();
    let down = run.wait_state("src", "down", Duration::from_secs(15));
    assert_eq!(down["last_error"]["class"], "connection", "{down:#}");
    let accepted = proxy.accepted();
    proxy.set(Mode::Forward);
    run.wait_state("src", "up", Duration::from_secs(20));
    assert!(
        proxy.accepted() > accepted,
        "it reconnected through the proxy ({} connections, {accepted} before):\n{}",
        proxy.accepted(),
        run.stderr()
    );
    let before = total(&out);
    run.wait_for("data after the cut", Duration::from_secs(10), || (total(&out) > before).then_some(()));
    stop_and_count(run, &out);
}

#[test]
fn too_many_connections_is_distress_that_passes() {
    // the role may hold one connection; a session of its own takes it
    let holder = std::thread::spawn(|| {
        std::process::Command::new("psql")
            .args(["-X", "-q", "postgres://dbintel_limited:limited-secret-pw@127.0.0.1:5432/dbintel_test", "-c", "SELECT pg_sleep(6)"])
            .output()
            .expect("psql")
    });
    let dir = scratch("fault-connections");
    let (pipe, out) = pipe(&dir, "postgres", "  pool = 1", "  collect instance");
    std::thread::sleep(Duration::from_millis(500));
    let run =
        Run::spawn(&[pipe.to_str().unwrap()], &[("FAULT_DSN", "postgres://dbintel_limited:limited-secret-pw@127.0.0.1:5432/dbintel_test")]);
    let down = run.wait_state("src", "down", Duration::from_secs(10));
    assert_eq!(down["last_error"]["code"], "53300", "too many connections, by SQLSTATE: {down:#}");
    assert_eq!(down["last_error"]["class"], "distress", "{down:#}");
    let held = holder.join().expect("holder");
    assert!(held.status.success(), "{}", String::from_utf8_lossy(&held.stderr));
    run.wait_state("src", "up", Duration::from_secs(15));
    run.wait_for("data", Duration::from_secs(10), || (total(&out) > 0).then_some(()));
    let log = stop_and_count(run, &out);
    assert!(!log.contains("limited-secret-pw"), "{log}");
}

/// Takes pg_monitor from dbintel_nopriv again however the test ends.
struct Revoke;
impl Drop for Revoke {
    fn drop(&mut self) {
        psql("REVOKE pg_monitor FROM dbintel_nopriv");
    }
}

#[test]
fn a_missing_privilege_or_a_bad_query_fails_only_that_collector() {
    psql("REVOKE pg_monitor FROM dbintel_nopriv");
    let _revoke = Revoke;
    let dir = scratch("fault-privilege");
    let collectors = r#"  collect alive { query = "SELECT 1 AS n", metric = "fault.alive", value_column = "n" }
  collect waldir { query = "SELECT count(*) AS n FROM pg_ls_waldir()", metric = "fault.waldir", value_column = "n" }
  collect typo { query = "SELEC 1 AS n", metric = "fault.typo", value_column = "n" }"#;
    let (pipe, out) = pipe(&dir, "sql", "", collectors);
    let run =
        Run::start(&[pipe.to_str().unwrap()], &[("FAULT_DSN", "postgres://dbintel_nopriv:nopriv-secret-pw@127.0.0.1:5432/dbintel_test")]);
    let degraded = run.wait_state("src", "degraded", Duration::from_secs(10));
    let c = &degraded["collectors"];
    // each collector's first scrape has happened (they run one after
    // another: `degraded` can come before the healthy one's first scrape)
    run.wait_for("both failures and the healthy collector's first scrape", Duration::from_secs(10), || {
        let t = run.target("src");
        let c = &t["collectors"];
        (c["waldir"]["state"] == "failing" && c["typo"]["state"] == "failing" && c["alive"]["state"] != "pending").then_some(())
    });
    let t = run.target("src");
    assert_eq!(t["collectors"]["waldir"]["last_error"]["code"], "42501", "insufficient privilege: {t:#}");
    assert_eq!(t["collectors"]["typo"]["last_error"]["code"], "42601", "syntax error: {t:#}");
    assert_eq!(t["collectors"]["alive"]["state"], "ok", "{c:#}");
    assert_eq!(t["breaker"], "closed", "configuration errors never open the breaker: {t:#}");

    // retried every second, logged once per cause, the rest keeps flowing
    let alive = points(&out).get("fault.alive").copied().unwrap_or(0);
    std::thread::sleep(Duration::from_secs(4));
    let now = points(&out).get("fault.alive").copied().unwrap_or(0);
    assert!(now >= alive + 4, "the working collector carries on: {alive} → {now} points in 4 s\n{}", run.stderr());

    assert_eq!(run.metric("dbintel_collector_failing{node=\"src\",target=\"src\",collector=\"waldir\"}"), 1.0, "{:#}", run.target("src"));
    let errors = run.metric("dbintel_collector_errors_total{node=\"src\",target=\"src\",collector=\"waldir\",class=\"configuration\"}");
    assert!(errors >= 3.0, "retried every second, each failure counted: {errors}\n{}", run.stderr());
    let log = run.stderr();
    assert_eq!(occurrences(&log, "code=42501"), 1, "one log line per cause:\n{log}");
    assert_eq!(occurrences(&log, "code=42601"), 1, "one log line per cause:\n{log}");
    assert!(!log.contains("SELEC 1"), "the query text is not logged:\n{log}");
    assert_eq!(run.target("src")["breaker"], "closed", "configuration errors never open the breaker: {:#}", run.target("src"));

    // someone grants the privilege: the collector recovers by itself
    psql("GRANT pg_monitor TO dbintel_nopriv");
    run.wait_for("waldir to recover", Duration::from_secs(10), || {
        (run.target("src")["collectors"]["waldir"]["state"] == "ok").then_some(())
    });
    assert!(run.stderr().contains("collector recovered"), "{}", run.stderr());
    assert_eq!(run.target("src")["state"], "degraded", "the typo still fails");
    let log = stop_and_count(run, &out);
    assert!(points(&out).get("fault.waldir").is_some_and(|n| *n >= 1), "{log}");
    assert!(!points(&out).contains_key("fault.typo"), "the bad query produced points: {:?}", points(&out));
}

/// Removes the test's /etc/hosts line however the test ends.
struct HostsLine(&'static str);
impl HostsLine {
    fn add(&self) {
        let hosts = std::fs::read_to_string("/etc/hosts").expect("/etc/hosts");
        std::fs::write("/etc/hosts", format!("{hosts}{}\n", self.0)).expect("/etc/hosts is writable (the suite runs as root)");
    }
}
impl Drop for HostsLine {
    fn drop(&mut self) {
        if let Ok(hosts) = std::fs::read_to_string("/etc/hosts") {
            let kept: Vec<&str> = hosts.lines().filter(|l| *l != self.0).collect();
            let _ = std::fs::write("/etc/hosts", format!("{}\n", kept.join("\n")));
        }
    }
}

#[test]
fn a_name_that_does_not_resolve_is_retried_until_it_does() {
    let line = HostsLine("127.0.0.1 dbintel-fault-dns.internal");
    drop(HostsLine(line.0)); // a leftover from an interrupted run
    let dir = scratch("fault-dns");
    let (pipe, out) = pipe(&dir, "postgres", "", "  collect instance");
    let run = Run::spawn(
        &[pipe.to_str().unwrap()],
        &[("FAULT_DSN", "postgres://dbintel_monitor:monitor-secret-pw@dbintel-fault-dns.internal:5432/dbintel_test")],
    );
    let down = run.wait_state("src", "down", Duration::from_secs(10));
    assert_eq!(down["last_error"]["class"], "connection", "{down:#}");
    assert!(down["last_error"]["message"].as_str().unwrap_or_default().contains("lookup"), "the cause, precisely: {down:#}");
    assert_eq!(run.get("/readyz").0, 503, "{:?}", run.get("/readyz"));
    line.add();
    let up = run.wait_state("src", "up", Duration::from_secs(15));
    assert_eq!(up["connected_once"], true, "{up:#}");
    assert_eq!(run.get("/readyz").0, 200, "{:?}\n{}", run.get("/readyz"), run.stderr());

    run.wait_for("data", Duration::from_secs(10), || (total(&out) > 0).then_some(()));
    stop_and_count(run, &out);
}

#[test]
fn a_mariadb_connection_cut_reconnects() {
    let proxy = Proxy::start(3306);
    let dir = scratch("fault-mariadb");
    let (pipe, out) = pipe(&dir, "mysql", "  pool = 1", "  collect instance");
    let dsn = format!("mysql://dbintel_monitor:monitor-secret-pw@127.0.0.1:{}/performance_schema", proxy.port);
    let run = Run::start(&[pipe.to_str().unwrap()], &[("FAULT_DSN", &dsn)]);
    run.wait_state("src", "up", Duration::from_secs(10));
    run.wait_for("data", Duration::from_secs(10), || (total(&out) > 0).then_some(()));
    proxy.set(Mode::Blackhole);
    proxy.reset();
    let down = run.wait_state("src", "down", Duration::from_secs(15));
    assert_eq!(down["last_error"]["class"], "connection", "{down:#}");
    proxy.set(Mode::Forward);
    run.wait_state("src", "up", Duration::from_secs(20));
    let before = total(&out);
    run.wait_for("data after the cut", Duration::from_secs(10), || (total(&out) > before).then_some(()));
    stop_and_count(run, &out);
}

/// Drops the test's database however the test ends.
struct DropDatabase(&'static str);
impl Drop for DropDatabase {
    fn drop(&mut self) {
        psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
    }
}

#[test]
fn pg_stat_statements_missing_in_the_database_is_named_and_recovers_when_created() {
    // The extension exists only where CREATE EXTENSION ran: a fleet's
    // first database often lacks it, and the server says only
    // `relation "…" does not exist`.
    psql("DROP DATABASE IF EXISTS fault_noext WITH (FORCE)");
    psql("CREATE DATABASE fault_noext");
    let _drop = DropDatabase("fault_noext");
    let dir = scratch("fault-noext");
    let (pipe, out) = pipe(&dir, "postgres", "", "  collect statements");
    let run =
        Run::start(&[pipe.to_str().unwrap()], &[("FAULT_DSN", "postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5432/fault_noext")]);
    let t = run.wait_for("statements to fail", Duration::from_secs(15), || {
        let t = run.target("src");
        (t["collectors"]["statements"]["state"] == "failing").then_some(t)
    });
    let error = &t["collectors"]["statements"]["last_error"];
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("pg_stat_statements is not installed in database `fault_noext`") && message.contains("CREATE EXTENSION"),
        "what is missing, where, and what to do: {t:#}"
    );
    assert_eq!(error["class"], "configuration", "{t:#}");
    assert_eq!(t["breaker"], "closed", "{t:#}");
    let log = run.stderr();
    assert_eq!(occurrences(&log, "pg_stat_statements is not installed"), 1, "logged once per cause:\n{log}");

    // installed: the next attempt (config_retry = 1s) reads it, no restart
    let superuser = common::PG_SUPERUSER.replace("/dbintel_test", "/fault_noext");
    let created = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &superuser, "-c", "CREATE EXTENSION pg_stat_statements"])
        .output()
        .expect("psql");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    run.wait_for("statements to recover", Duration::from_secs(15), || {
        (run.target("src")["collectors"]["statements"]["state"] == "ok").then_some(())
    });
    assert!(run.stderr().contains("collector recovered"), "{}", run.stderr());
    let log = stop_and_count(run, &out);
    assert!(!log.contains("monitor-secret-pw"), "{log}");
}
