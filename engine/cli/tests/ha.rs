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
use common::server_view::{self, ServerView};
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
    pipe_querying(mode, sources, "SELECT 1 AS v")
}

fn pipe_querying(mode: &str, sources: usize, query: &str) -> String {
    let mut text = format!("cluster {{\n  mode = {mode}\n  lease = \"dbintel-ha\"\n  duration = 3s\n  renew = 2s\n  retry = 500ms\n}}\n");
    for i in 0..sources {
        text.push_str(&format!(
            "source s{i} = sql {{\n  dsn = env(\"HA_PG_DSN\")\n  interval = 300ms\n  jitter = 0%\n  collect q {{ query = \"{query}\", metric = \"ha.one\", value_column = \"v\" }}\n}}\npipeline p{i} = s{i}.q -> out\n"
        ));
    }
    text.push_str("sink out = stdout {}\n");
    text
}

fn replicas(api: &FakeApi, dir: &Path, mode: &str, sources: usize, n: usize) -> Vec<Run> {
    let file = dir.join(format!("{mode}.pipe"));
    std::fs::write(&file, pipe(mode, sources)).unwrap();
    start_replicas(api, dir, &file, &vec![PG_MONITOR.to_string(); n])
}

/// One replica per DSN, `dbintel-0`, `dbintel-1`…, in that order.
fn start_replicas(api: &FakeApi, dir: &Path, file: &Path, dsns: &[String]) -> Vec<Run> {
    dsns.iter()
        .enumerate()
        .map(|(i, dsn)| {
            let pod = format!("dbintel-{i}");
            let kubeconfig = api.kubeconfig(dir, &pod);
            Run::start(
                &[file.to_str().unwrap(), "--no-watch"],
                &[("HA_PG_DSN", dsn.as_str()), ("POD_NAME", &pod), ("KUBECONFIG", kubeconfig.to_str().unwrap())],
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

/// Every replica's log, for failure messages.
fn logs(rs: &[Run]) -> String {
    rs.iter().enumerate().map(|(i, r)| format!("--- replica {i} ---\n{}", r.stderr())).collect::<Vec<_>>().join("\n")
}

/// Polls `f`; on a timeout, fails with every replica's log.
fn wait(rs: &[Run], what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}; the replicas' logs:\n{}", logs(rs));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The fake API's record of accepted Lease writes (see
/// tests/fake_kube_api.py): server time `t`, writer `who`, `holder`…
fn history(api: &FakeApi) -> Vec<serde_json::Value> {
    let (code, body) = common::otlp::http(api.port, "GET", "/fake/history").expect("the fake API answers");
    assert_eq!(code, 200, "/fake/history: {body}");
    serde_json::from_str::<Vec<serde_json::Value>>(&body).unwrap_or_else(|e| panic!("/fake/history is not a JSON list ({e}): {body}"))
}

fn at(write: &serde_json::Value) -> f64 {
    write["t"].as_f64().unwrap_or_else(|| panic!("a write without a time: {write}"))
}

fn history_lines(api: &FakeApi) -> String {
    history(api)
        .iter()
        .map(|w| {
            format!("  {:.3} {} {} {} holder={} duration={}", at(w), w["who"], w["method"], w["lease"], w["holder"], w["durationSeconds"])
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn fake_api_followers_never_query_the_server_and_a_clean_shutdown_stops_before_it_releases() {
    let roles = ["proofs_ha_a0", "proofs_ha_a1", "proofs_ha_a2"];
    server_view::monitoring_roles(&roles);
    let calls_before: Vec<i64> = roles.iter().map(|r| server_view::calls_by_role(r)).collect();
    let view = ServerView::watch("proofs_ha_a");
    let dir = scratch("ha-leader");
    let api = FakeApi::start();
    let file = dir.join("leader.pipe");
    // each query lasts 200 ms of the 300 ms interval: a shutdown almost
    // always finds one running on the server
    std::fs::write(&file, pipe_querying("leader", 1, "SELECT 1 AS v FROM pg_sleep(0.2)")).unwrap();
    let mut rs = start_replicas(&api, &dir, &file, &roles.map(server_view::dsn_as));
    wait(&rs, "one leader", Duration::from_secs(20), || rs.iter().filter(|r| is_leader(r)).count() == 1);
    std::thread::sleep(Duration::from_secs(2));
    let leader = rs.iter().position(is_leader).unwrap_or_else(|| panic!("no leader any more:\n{}", logs(&rs)));
    for (i, r) in rs.iter().enumerate() {
        let calls = server_view::calls_by_role(roles[i]) - calls_before[i];
        if i == leader {
            assert!(calls >= 3, "the leader's role ran {calls} statements by pg_stat_statements:\n{}", view.describe(roles[i]));
            assert!(!view.sessions(roles[i]).is_empty(), "the watcher saw none of the leader's sessions:\n{}", logs(&rs));
        } else {
            // by the server: no session of the follower's own role, ever,
            // and not one statement in pg_stat_statements
            assert!(
                view.sessions(roles[i]).is_empty(),
                "follower {i} has sessions on the server:\n{}\n{}",
                view.describe(roles[i]),
                logs(&rs)
            );
            assert_eq!(calls, 0, "follower {i}'s role ran statements (pg_stat_statements):\n{}", logs(&rs));
            assert!(
                series(r, "dbintel_cluster_role").iter().any(|l| l.contains("role=\"follower\"")),
                "replica {i} does not say it follows: {:?}",
                series(r, "dbintel_cluster_role")
            );
            assert_eq!(r.get("/readyz").0, 200, "a follower is ready: it knows its role; {}", r.get("/readyz").1);
        }
    }
    // SIGTERM: stop querying, then release; the next leader needs no expiry
    let old_role = roles[leader];
    let leader_pod = format!("dbintel-{leader}");
    let mut old = rs.remove(leader);
    let (status, log) = old.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert!(log.contains("lease released"), "{log}");
    wait(&rs, "a new leader", Duration::from_secs(10), || rs.iter().any(is_leader));
    let next = rs.iter().position(is_leader).unwrap_or_else(|| panic!("no leader:\n{}", logs(&rs)));
    let next_role = roles[if next >= leader { next + 1 } else { next }];
    wait(&rs, "the new leader to query the server", Duration::from_secs(10), || view.last_acting(next_role).is_some());
    let writes = history(&api);
    let released = writes
        .iter()
        .find(|w| w["who"] == leader_pod.as_str() && w["holder"].is_null())
        .map(at)
        .unwrap_or_else(|| panic!("the fake API recorded no release by {leader_pod}:\n{}", history_lines(&api)));
    let taken = writes
        .iter()
        .find(|w| at(w) > released && w["holder"].as_str().is_some_and(|h| h != leader_pod))
        .map(at)
        .unwrap_or_else(|| panic!("nobody took the lease after its release:\n{}", history_lines(&api)));
    assert!(taken - released < 2.5, "taken {:.3} s after the release; the lease lasts 3 s:\n{}", taken - released, history_lines(&api));
    // the order, on the server's and the API's clocks (one machine): the
    // old leader's last query ended before the release, the new one's
    // first session began after it
    let stopped = view.last_acting(old_role).unwrap_or_else(|| panic!("the old leader was never seen on the server:\n{log}"));
    assert!(
        stopped < released,
        "the old leader acted {:.3} s after releasing its lease (last seen acting {stopped:.3}, released {released:.3}):\n{}\nlease writes:\n{}\n{log}",
        stopped - released,
        view.describe(old_role),
        history_lines(&api)
    );
    let began = view.first_session(next_role).unwrap_or_default();
    assert!(began > released, "the new leader connected {:.3} s before the release:\n{}", released - began, view.describe(next_role));
    wait(&rs, "the new leader to scrape", Duration::from_secs(10), || rs.iter().any(|r| emitted(r) > 0.0));
    let scraping: Vec<usize> = (0..rs.len()).filter(|&i| emitted(&rs[i]) > 0.0).collect();
    assert_eq!(scraping.len(), 1, "replicas emitting after the hand-over: {scraping:?}\n{}", logs(&rs));
}

#[test]
fn fake_api_a_replica_cut_off_from_the_api_stops_querying_before_another_can_take_over() {
    let roles = ["proofs_ha_b0", "proofs_ha_b1"];
    server_view::monitoring_roles(&roles);
    let view = ServerView::watch("proofs_ha_b");
    let dir = scratch("ha-partition");
    let api = FakeApi::start();
    let file = dir.join("leader.pipe");
    std::fs::write(&file, pipe_querying("leader", 1, "SELECT 1 AS v FROM pg_sleep(0.2)")).unwrap();
    let rs = start_replicas(&api, &dir, &file, &roles.map(server_view::dsn_as));
    wait(&rs, "one leader", Duration::from_secs(20), || rs.iter().filter(|r| is_leader(r)).count() == 1);
    let leader = rs.iter().position(is_leader).unwrap_or_else(|| panic!("no leader any more:\n{}", logs(&rs)));
    let other = 1 - leader;
    let (leader_pod, other_pod) = (format!("dbintel-{leader}"), format!("dbintel-{other}"));
    wait(&rs, "the leader to query", Duration::from_secs(10), || view.last_acting(roles[leader]).is_some());
    // the leader can no longer reach the API: its renewals fail from now on
    let cut = server_view::server_now();
    common::otlp::http(api.port, "POST", &format!("/fake/partition?who={leader_pod}")).expect("partition");
    wait(&rs, "the other replica to take over", Duration::from_secs(20), || is_leader(&rs[other]));
    wait(&rs, "the new leader to query the server", Duration::from_secs(10), || view.last_acting(roles[other]).is_some());
    std::thread::sleep(Duration::from_secs(1));
    let writes = history(&api);
    let last_renewal = writes
        .iter()
        .rfind(|w| w["who"] == leader_pod.as_str() && w["holder"] == leader_pod.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("no write by the leader:\n{}", history_lines(&api)));
    let expiry = at(&last_renewal) + last_renewal["durationSeconds"].as_f64().unwrap_or(0.0);
    let taken = writes
        .iter()
        .find(|w| w["who"] == other_pod.as_str() && w["holder"] == other_pod.as_str())
        .map(at)
        .unwrap_or_else(|| panic!("{other_pod} never wrote the lease:\n{}", history_lines(&api)));
    let stopped = view.last_acting(roles[leader]).unwrap_or_default();
    let began = view.first_session(roles[other]).unwrap_or_default();
    let picture = format!(
        "cut off at {cut:.3}; its last renewal {:.3}, expiry {expiry:.3}; taken over at {taken:.3}\nthe server saw:\n{}\n{}\nlease writes:\n{}\n{}",
        at(&last_renewal),
        view.describe(roles[leader]),
        view.describe(roles[other]),
        history_lines(&api),
        logs(&rs)
    );
    // it kept its lease (and worked) past the cut, up to its renew deadline …
    assert!(stopped > cut, "the cut-off leader stopped before it was cut off (last acting {stopped:.3}):\n{picture}");
    // … and stopped before the lease could expire, so before the takeover
    assert!(stopped < expiry, "the cut-off leader still acted {:.3} s past its lease's expiry:\n{picture}", stopped - expiry);
    assert!(stopped < taken && stopped < began, "two replicas acted at once:\n{picture}");
    let target = rs[leader].target("s0");
    assert_eq!(target["state"], "standby", "the cut-off replica: {target:#}");
    assert_eq!(rs[leader].get("/healthz").0, 200, "the cut-off replica is alive:\n{}", rs[leader].stderr());
}

#[test]
fn fake_api_three_replicas_shard_six_sources_two_each() {
    let dir = scratch("ha-sharded");
    let api = FakeApi::start();
    let rs = replicas(&api, &dir, "sharded", 6, 3);
    wait(&rs, "two targets each", Duration::from_secs(30), || {
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
    assert_eq!(owners.len(), 6, "targets owned: {owners:?}\n{}", logs(&rs));
    assert!(owners.values().all(|o| o.len() == 1), "one owner per target: {owners:?}\n{}", logs(&rs));
    // from now on each replica scrapes exactly the sources it owns (the
    // first replica up held all six for a moment, alone)
    let count = |r: &Run, s: usize| r.metric(&format!(r#"dbintel_node_emitted_records_total{{node="s{s}",kind="source"}}"#));
    let before: Vec<Vec<f64>> = rs.iter().map(|r| (0..6).map(|s| count(r, s)).collect()).collect();
    std::thread::sleep(Duration::from_millis(1500));
    for (i, r) in rs.iter().enumerate() {
        for (s, prev) in before[i].iter().enumerate() {
            let scraped = count(r, s) - prev;
            let mine = owners.get(&format!("s{s}")).is_some_and(|o| o == &[i]);
            assert_eq!(scraped > 0.0, mine, "replica {i}, source s{s}: {scraped} new points, owner: {mine}\n{}", logs(&rs));
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
    wait(&rs, "two targets each", Duration::from_secs(30), || rs.iter().all(|r| r.metric("dbintel_cluster_owned_targets") == 2.0));
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
