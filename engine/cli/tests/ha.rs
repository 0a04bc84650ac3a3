//! Several `dbintel run` replicas electing through kube against a FAKE
//! Kubernetes API server (tests/fake_kube_api.py: the Lease endpoints with
//! resourceVersion conflicts; no real API server can run here), scraping
//! the real PostgreSQL. Every test name says `fake_api`.

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::otlp::Run;
use common::{scratch, PG_MONITOR};

struct FakeApi {
    child: Child,
    port: u16,
}

impl FakeApi {
    fn start() -> FakeApi {
        let mut child = Command::new("python3")
            .arg(common::root().join("tests/fake_kube_api.py"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 tests/fake_kube_api.py");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("port");
        let port = serde_json::from_str::<serde_json::Value>(&line).ok().and_then(|v| v["port"].as_u64()).expect("fake API port") as u16;
        FakeApi { child, port }
    }

    /// A kubeconfig for one replica (its pod name is its token, so the
    /// fake can cut it off alone).
    fn kubeconfig(&self, dir: &Path, pod: &str) -> PathBuf {
        let path = dir.join(format!("kubeconfig-{pod}"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{}\nusers:\n- name: {pod}\n  user:\n    token: {pod}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: {pod}\n    namespace: dbintel\ncurrent-context: fake\n",
                self.port
            ),
        )
        .unwrap();
        path
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pipe(mode: &str, sources: usize) -> String {
    let mut text = format!("cluster {{\n  mode = {mode}\n  lease = \"dbintel-ha\"\n  duration = 3s\n  renew = 2s\n  retry = 500ms\n}}\n");
    for i in 0..sources {
        text.push_str(&format!(
            "source s{i} = sql {{\n  dsn = env(\"HA_PG_DSN\")\n  interval = 300ms\n  jitter = 0%\n  collect q {{ query = \"SELECT 1 AS v\", metric = \"ha.one\", value_column = \"v\" }}\n}}\npipeline p{i} = s{i}.q -> out\n"
        ));
    }
    text.push_str("sink out = stdout {}\n");
    text
}

fn replicas(api: &FakeApi, dir: &Path, mode: &str, sources: usize, n: usize) -> Vec<Run> {
    let file = dir.join(format!("{mode}.pipe"));
    std::fs::write(&file, pipe(mode, sources)).unwrap();
    (0..n)
        .map(|i| {
            let pod = format!("dbintel-{i}");
            let kubeconfig = api.kubeconfig(dir, &pod);
            Run::start(
                &[file.to_str().unwrap(), "--no-watch"],
                &[("HA_PG_DSN", PG_MONITOR), ("POD_NAME", &pod), ("KUBECONFIG", kubeconfig.to_str().unwrap())],
            )
        })
        .collect()
}

fn series(run: &Run, prefix: &str) -> Vec<String> {
    run.get("/metrics").1.lines().filter(|l| l.starts_with(prefix)).map(str::to_string).collect()
}

fn is_leader(run: &Run) -> bool {
    series(run, "dbintel_cluster_role").iter().any(|l| l.contains("role=\"leader\""))
}

fn emitted(run: &Run) -> f64 {
    run.metric(r#"dbintel_node_emitted_records_total{node="s0",kind="source"}"#)
}

fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn fake_api_only_the_leader_scrapes_and_a_clean_shutdown_hands_over_at_once() {
    let dir = scratch("ha-leader");
    let api = FakeApi::start();
    let mut rs = replicas(&api, &dir, "leader", 1, 3);
    wait("one leader", Duration::from_secs(20), || rs.iter().filter(|r| is_leader(r)).count() == 1);
    std::thread::sleep(Duration::from_secs(2));
    let leader = rs.iter().position(is_leader).expect("a leader");
    for (i, r) in rs.iter().enumerate() {
        let n = emitted(r);
        if i == leader {
            assert!(n >= 3.0, "the leader scrapes ({n})");
        } else {
            assert_eq!(n, 0.0, "follower {i} must not query the database");
            assert!(series(r, "dbintel_cluster_role").iter().any(|l| l.contains("role=\"follower\"")));
            assert_eq!(r.get("/readyz").0, 200, "a follower is ready: it knows its role");
        }
    }
    // SIGTERM: stop scraping, release; the next leader needs no expiry
    let mut old = rs.remove(leader);
    let (status, log) = old.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert!(log.contains("lease released"), "{log}");
    let released = Instant::now();
    wait("a new leader", Duration::from_secs(10), || rs.iter().any(is_leader));
    assert!(released.elapsed() < Duration::from_millis(2500), "took {:?}; the lease lasts 3 s", released.elapsed());
    wait("the new leader to scrape", Duration::from_secs(10), || rs.iter().any(|r| emitted(r) > 0.0));
    assert_eq!(rs.iter().filter(|r| emitted(r) > 0.0).count(), 1);
}

#[test]
fn fake_api_three_replicas_shard_six_sources_two_each() {
    let dir = scratch("ha-sharded");
    let api = FakeApi::start();
    let rs = replicas(&api, &dir, "sharded", 6, 3);
    wait("two targets each", Duration::from_secs(30), || {
        rs.iter().all(|r| r.metric("dbintel_cluster_owned_targets") == 2.0 && r.metric("dbintel_cluster_members") == 3.0)
    });
    let mut owners = std::collections::BTreeMap::<String, Vec<usize>>::new();
    for (i, r) in rs.iter().enumerate() {
        for line in series(r, "dbintel_cluster_target_owned{") {
            if line.ends_with(" 1") {
                owners.entry(line.split('"').nth(1).unwrap_or_default().to_string()).or_default().push(i);
            }
        }
    }
    assert_eq!(owners.len(), 6, "{owners:?}");
    assert!(owners.values().all(|o| o.len() == 1), "one owner per target: {owners:?}");
    // from now on each replica scrapes exactly the sources it owns (the
    // first replica up held all six for a moment, alone)
    let count = |r: &Run, s: usize| r.metric(&format!(r#"dbintel_node_emitted_records_total{{node="s{s}",kind="source"}}"#));
    let before: Vec<Vec<f64>> = rs.iter().map(|r| (0..6).map(|s| count(r, s)).collect()).collect();
    std::thread::sleep(Duration::from_millis(1500));
    for (i, r) in rs.iter().enumerate() {
        for (s, prev) in before[i].iter().enumerate() {
            let scraped = count(r, s) - prev;
            let mine = owners.get(&format!("s{s}")).is_some_and(|o| o == &[i]);
            assert_eq!(scraped > 0.0, mine, "replica {i}, source s{s}: {scraped} new points, owner: {mine}");
        }
    }
}

/// dbintel sessions running `pg_sleep` on the real server, by its own view.
fn sleeping_sessions(marker: &str) -> usize {
    common::psql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbintel' AND state = 'active' AND query LIKE '%{marker}%' AND pid <> pg_backend_pid()"
    ))
    .parse()
    .unwrap_or(usize::MAX)
}

#[test]
fn fake_api_a_lease_lost_mid_scrape_cancels_it_and_emits_nothing() {
    let dir = scratch("ha-fence");
    let api = FakeApi::start();
    let pipe = dir.join("fence.pipe");
    // one scrape takes 4 s; the leader can act at most 2 s past its last renewal
    std::fs::write(
        &pipe,
        "cluster {\n  mode = leader\n  lease = \"dbintel-fence\"\n  duration = 3s\n  renew = 2s\n  retry = 500ms\n}\nsource s0 = sql {\n  dsn = env(\"HA_PG_DSN\")\n  interval = 300ms\n  timeout = 20s\n  collect q { query = \"SELECT pg_sleep(4) AS fence_sleep_marker, 1 AS v\", metric = \"ha.slow\", value_column = \"v\" }\n}\nsink out = stdout {}\npipeline p0 = s0.q -> out\n",
    )
    .unwrap();
    let kubeconfig = api.kubeconfig(&dir, "dbintel-0");
    let run = Run::start(
        &[pipe.to_str().unwrap(), "--no-watch"],
        &[("HA_PG_DSN", PG_MONITOR), ("POD_NAME", "dbintel-0"), ("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    run.wait_for("the leader's first scrape to be in flight", Duration::from_secs(20), || {
        (sleeping_sessions("fence_sleep_marker") == 1).then_some(())
    });
    // cut the leader off the API while its query sleeps
    common::otlp::http(api.port, "POST", "/fake/partition?who=dbintel-0").expect("partition");
    run.wait_for("the lease to be lost", Duration::from_secs(10), || run.stderr().contains("lease lost").then_some(()));
    // the scrape was cancelled in flight: nothing from it is emitted, and
    // the server ends the query (client_connection_check_interval) long
    // before it would have finished
    run.wait_for("the server to end the abandoned query", Duration::from_secs(3), || {
        (sleeping_sessions("fence_sleep_marker") == 0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(emitted(&run), 0.0, "a scrape cut off by a lost lease emitted records:\n{}", run.stderr());
    assert_eq!(sleeping_sessions("fence_sleep_marker"), 0, "a follower sends nothing");
    assert_eq!(run.target("s0")["state"], "standby", "{:#}", run.target("s0"));
}

#[test]
fn fake_api_three_replicas_split_the_targets_of_a_file() {
    let dir = scratch("ha-targets");
    let api = FakeApi::start();
    let targets: String = (0..6)
        .map(|i| format!("- name: t{i}\n  host: 127.0.0.1\n  database: dbintel_test\n  user: dbintel_monitor\n  password_env: HA_PG_PW\n"))
        .collect();
    std::fs::write(dir.join("targets.yaml"), targets).unwrap();
    let file = dir.join("fleet.pipe");
    std::fs::write(
        &file,
        "cluster {\n  mode = sharded\n  lease = \"dbintel-fleet\"\n  duration = 3s\n  renew = 2s\n  retry = 500ms\n}\nsource fleet = sql {\n  targets = file(\"targets.yaml\")\n  interval = 300ms\n  jitter = 0%\n  pool = 1\n  collect q { query = \"SELECT 1 AS v\", metric = \"ha.one\", value_column = \"v\" }\n}\nsink out = stdout {}\npipeline p = fleet.q -> out\n",
    )
    .unwrap();
    let rs: Vec<Run> = (0..3)
        .map(|i| {
            let pod = format!("dbintel-{i}");
            let kubeconfig = api.kubeconfig(&dir, &pod);
            Run::start(
                &[file.to_str().unwrap(), "--no-watch"],
                &[("HA_PG_PW", "monitor-secret-pw"), ("POD_NAME", &pod), ("KUBECONFIG", kubeconfig.to_str().unwrap())],
            )
        })
        .collect();
    wait("two targets each", Duration::from_secs(30), || rs.iter().all(|r| r.metric("dbintel_cluster_owned_targets") == 2.0));
    // each target scrapes on its owner only: the lease is per target
    let scrapes = |r: &Run| -> std::collections::BTreeMap<String, (u64, bool)> {
        r.status()["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let n = t["collectors"]["q"]["scrapes"].as_u64().unwrap_or(0);
                (t["target"].as_str().unwrap_or_default().to_string(), (n, t["lease"] == true))
            })
            .collect()
    };
    let before: Vec<_> = rs.iter().map(scrapes).collect();
    std::thread::sleep(Duration::from_millis(1500));
    let mut owners = std::collections::BTreeMap::<String, usize>::new();
    for (i, r) in rs.iter().enumerate() {
        for (target, (n, held)) in scrapes(r) {
            let grew = n > before[i].get(&target).map_or(0, |b| b.0);
            assert_eq!(grew, held, "replica {i}, target {target}: scraping {grew} while holding its lease {held}");
            if held {
                *owners.entry(target).or_default() += 1;
            }
        }
    }
    assert_eq!(owners.len(), 6, "every target has an owner: {owners:?}");
    assert!(owners.values().all(|n| *n == 1), "one owner per target: {owners:?}");
}
