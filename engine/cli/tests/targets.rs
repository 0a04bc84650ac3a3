//! Targets as data, against the real servers: a targets file checked with
//! diagnostics pointing into it, a hundred targets from one file (each
//! sending its own resource) edited under `dbintel run`, and databases
//! discovered as they come and go.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::otlp::Run;
use common::{code, dbintel, psql, scratch, text};

const SQL_SOURCE: &str = r#"source fleet = sql {
  targets = file("targets.yaml")
  interval = 1s
  jitter = 0%
  pool = 1
  collect q { query = "SELECT 1 AS v", metric = "fleet.one", value_column = "v" }
}
"#;

#[test]
fn a_targets_file_is_checked_with_diagnostics_pointing_into_it() {
    let dir = scratch("targets-check");
    std::fs::write(dir.join("p.pipe"), format!("{SQL_SOURCE}sink out = stdout {{}}\npipeline p = fleet.q -> out\n")).unwrap();
    let check = |yaml: Option<&str>| {
        match yaml {
            Some(y) => std::fs::write(dir.join("targets.yaml"), y).unwrap(),
            None => {
                let _ = std::fs::remove_file(dir.join("targets.yaml"));
            }
        }
        let out = dbintel(&["validate", "--format", "json", dir.join("p.pipe").to_str().unwrap()], &[("FLEET_PW", "x")]);
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains("hunter2"), "a password was echoed: {all}");
        assert_eq!(code(&out), 1, "invalid: {all}");
        let found: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON ({e}): {all}"));
        found
            .iter()
            .map(|d| {
                let file = d["file"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_string();
                format!("{} {}:{}:{}", d["code"].as_str().unwrap_or_default(), file, d["line"], d["column"])
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(check(None), ["E700 p.pipe:2:18"], "a missing file, at the setting that names it");
    assert_eq!(check(Some("")), ["E700 targets.yaml:1:1"], "an empty file");
    assert_eq!(check(Some("- name: a\n  host: [\n")), ["E700 targets.yaml:2:9"], "malformed YAML, at what it could not read");
    let bad = "- name: a\n  host: db1\n- name: a\n  host: db2\n- name: b\n  host: db3\n  colour: blue\n- name: c\n  dsn: postgres://mon:hunter2@db/x\n- name: d\n  host: db4\n  interval: soon\n";
    assert_eq!(
        check(Some(bad)),
        ["E701 targets.yaml:3:3", "E702 targets.yaml:7:3", "E307 targets.yaml:9:8", "E303 targets.yaml:12:13"],
        "duplicate name, unknown key, an inline password (not echoed), a bad override"
    );
    // a dsn next to targets, and neither
    std::fs::write(dir.join("targets.yaml"), "- name: a\n  host: db\n").unwrap();
    std::fs::write(
        dir.join("both.pipe"),
        SQL_SOURCE.replace("  pool = 1\n", "  pool = 1\n  dsn = env(\"FLEET_PW\")\n")
            + "sink out = stdout {}\npipeline p = fleet.q -> out\n",
    )
    .unwrap();
    let out = dbintel(&["validate", dir.join("both.pipe").to_str().unwrap()], &[("FLEET_PW", "x")]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(code(&out), 1, "{all}");
    assert!(all.contains("E703") && all.contains("both `dsn` and `targets`"), "{all}");
}

/// Issue 21, finding 5: a password in a target's DSN parameters
/// (`?password=`, `?sslpassword=`) or in its host (`user:pw@host`) was
/// accepted from a targets file — and only `user:pw@` in the DSN was
/// refused. Each is now E307, in `validate` (pretty and JSON) and `run`,
/// and no output ever shows the value.
#[test]
fn a_password_in_a_targets_file_dsn_parameter_or_host_is_refused_with_e307_and_never_echoed() {
    let dir = scratch("targets-secret-parameters");
    std::fs::write(dir.join("p.pipe"), format!("{SQL_SOURCE}sink out = stdout {{}}\npipeline p = fleet.q -> out\n")).unwrap();
    std::fs::write(
        dir.join("targets.yaml"),
        "- name: a\n  dsn: postgres://mon@db/a?sslmode=require&password=hunter2-query\n  password_env: FLEET_PW\n\
         - name: b\n  dsn: postgres://mon@db/b?SSLPassword=hunter2-sslkey\n  password_env: FLEET_PW\n\
         - name: c\n  host: mon:hunter2-host@db\n  database: c\n  password_env: FLEET_PW\n\
         - name: d\n  dsn: postgres://mon:hunter2-userinfo@db/d\n\
         - name: e\n  dsn: postgres://mon@db/e?sslmode=verify-full&sslrootcert=/etc/ca.pem\n  password_env: FLEET_PW\n",
    )
    .unwrap();
    let pipe = dir.join("p.pipe");
    let env = [("FLEET_PW", "x")];
    let json = dbintel(&["validate", "--format", "json", pipe.to_str().unwrap()], &env);
    let pretty = dbintel(&["validate", pipe.to_str().unwrap()], &env);
    let run = dbintel(&["run", "--no-watch", "--listen", "127.0.0.1:0", pipe.to_str().unwrap()], &env);
    for (what, out) in [("validate --format json", &json), ("validate", &pretty), ("run", &run)] {
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains("hunter2"), "{what} echoed a secret: {all}");
        assert_ne!(code(out), 0, "{what} refuses: {all}");
        assert!(all.contains("E307"), "{what}: {all}");
    }
    let found: Vec<serde_json::Value> =
        serde_json::from_slice(&json.stdout).unwrap_or_else(|e| panic!("JSON ({e}): {}", text(&json.stdout)));
    let at: Vec<String> = found.iter().map(|d| format!("{} {}", d["code"].as_str().unwrap_or_default(), d["line"])).collect();
    assert_eq!(
        at,
        ["E307 2", "E307 5", "E307 8", "E307 12"],
        "the parameter, the SSL key's password, the host, the userinfo; not the CA path"
    );
    let messages: Vec<&str> = found.iter().filter_map(|d| d["message"].as_str()).collect();
    assert!(messages[0].contains("`password` parameter") && messages[1].contains("`SSLPassword` parameter"), "{messages:?}");
    assert!(messages[2].contains("host") && messages[3].contains("userinfo"), "{messages:?}");
}

/// The resource attribute `fleet.index` of every request in a file sink's
/// OTLP/JSON lines, with how many points each sent.
fn points_by_target(file: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
        let request: serde_json::Value = serde_json::from_str(line).expect("OTLP/JSON line");
        for rm in request["resourceMetrics"].as_array().into_iter().flatten() {
            let attrs = rm["resource"]["attributes"].as_array().cloned().unwrap_or_default();
            let index =
                attrs.iter().find(|kv| kv["key"] == "fleet.index").and_then(|kv| kv["value"]["stringValue"].as_str()).unwrap_or("?");
            let port = attrs.iter().find(|kv| kv["key"] == "server.port").and_then(|kv| kv["value"]["intValue"].as_str()).unwrap_or("?");
            let n: usize = rm["scopeMetrics"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s["metrics"].as_array().into_iter().flatten())
                .map(|m| m["gauge"]["dataPoints"].as_array().map_or(0, Vec::len))
                .sum();
            *out.entry(format!("{index}@{port}")).or_default() += n;
        }
    }
    out
}

fn targets_yaml(indexes: impl Iterator<Item = usize>, ports: &[u16]) -> String {
    indexes
        .map(|i| {
            format!(
                "- name: t{i:03}\n  host: 127.0.0.1\n  port: {}\n  database: dbintel_test\n  user: dbintel_monitor\n  password_env: FLEET_PW\n  attributes:\n    fleet.index: \"{i}\"\n",
                ports[i % ports.len()]
            )
        })
        .collect()
}

/// Sessions dbintel holds on the server at `port`.
fn dbintel_sessions(port: u16) -> usize {
    let out = std::process::Command::new("psql")
        .args(["-X", "-At", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", "postgres", "-c"])
        .arg("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbintel'")
        .output()
        .expect("psql");
    text(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("psql on {port}: {}", text(&out.stderr)))
}

#[test]
fn a_hundred_targets_from_a_file_each_send_their_own_resource_and_edits_apply_live() {
    // several real servers: the shared 15 and PostgreSQL 12–18
    let servers = common::pg_servers::servers();
    let mut ports = vec![5432u16];
    for major in ["12", "13", "14", "16", "17", "18"] {
        ports.push(common::pg_servers::port_of(&servers, major));
    }
    let dir = scratch("targets-hundred");
    let out = dir.join("out.jsonl");
    std::fs::write(dir.join("targets.yaml"), targets_yaml(0..100, &ports)).unwrap();
    std::fs::write(
        dir.join("p.pipe"),
        format!("{SQL_SOURCE}sink out = file {{ path = \"{}\" }}\npipeline p = fleet.q -> out\n", out.display()),
    )
    .unwrap();
    let mut run = Run::start(&[dir.join("p.pipe").to_str().unwrap(), "--watch-interval", "500ms"], &[("FLEET_PW", "monitor-secret-pw")]);
    let seen = run.wait_for("data from all 100 targets", Duration::from_secs(60), || {
        let seen = points_by_target(&out);
        (seen.len() >= 100).then_some(seen)
    });
    for i in 0..100 {
        let port = ports[i % ports.len()];
        assert!(seen.contains_key(&format!("{i}@{port}")), "target {i} on {port} sent nothing under its own resource: {seen:?}");
    }
    let status = run.status();
    let targets: Vec<&serde_json::Value> = status["targets"].as_array().unwrap().iter().filter(|t| t["source"] == "fleet").collect();
    assert_eq!(targets.len(), 100);
    assert!(targets.iter().all(|t| t["state"] == "up"), "{status:#}");
    for (i, port) in ports.iter().enumerate() {
        let on_it = (0..100).filter(|t| t % ports.len() == i).count();
        let held = dbintel_sessions(*port);
        assert!(held <= 2 * on_it, "{held} sessions on {port} for {on_it} targets");
        assert!(held >= 1, "no session on {port}");
    }
    let since_of = |run: &Run, name: &str| {
        run.status()["targets"].as_array().unwrap().iter().find(|t| t["target"] == name).map(|t| t["since"].clone())
    };
    let t001 = since_of(&run, "t001").expect("t001");

    // edit the file: t000 leaves, t100 arrives; the others run on
    std::fs::write(dir.join("targets.yaml"), targets_yaml(1..101, &ports)).unwrap();
    run.wait_for("t100 up and t000 gone", Duration::from_secs(30), || {
        let status = run.status();
        let names: BTreeSet<String> = status["targets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["state"] == "up")
            .filter_map(|t| t["target"].as_str().map(str::to_string))
            .collect();
        (names.contains("t100") && !names.contains("t000") && names.len() == 100).then_some(())
    });
    assert_eq!(since_of(&run, "t001"), Some(t001), "an unchanged target was not restarted");
    run.wait_for("data from t100", Duration::from_secs(20), || {
        points_by_target(&out).contains_key(&format!("100@{}", ports[100 % ports.len()])).then_some(())
    });
    let (status, log) = run.signal("TERM", Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert!(!log.contains("monitor-secret-pw"), "{log}");
    assert_eq!(log.matches("target state source=\"fleet/t001\" from=\"connecting\"").count(), 1, "t001 connected once:\n{log}");
}

#[test]
fn databases_are_discovered_as_they_come_and_go() {
    let db = format!("dbintel_disc_{}", std::process::id());
    psql(&format!("DROP DATABASE IF EXISTS {db}"));
    let dir = scratch("targets-discover");
    let out = dir.join("out.jsonl");
    std::fs::write(
        dir.join("p.pipe"),
        format!(
            r#"source srv = sql {{
  dsn = env("DISC_DSN")
  discover = databases
  discover_every = 1s
  exclude_databases = ["template0", "template1"]
  interval = 500ms
  pool = 1
  collect q {{ query = "SELECT current_database() AS db, 1 AS v", metric = "disc.one", value_column = "v", attribute_columns = ["db"] }}
}}
sink out = file {{ path = "{}" }}
pipeline p = srv.q -> out
"#,
            out.display()
        ),
    )
    .unwrap();
    let databases = |file: &Path| -> BTreeSet<String> {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        text.lines()
            .flat_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("OTLP/JSON");
                let mut found = Vec::new();
                for rm in v["resourceMetrics"].as_array().into_iter().flatten() {
                    for m in rm["scopeMetrics"][0]["metrics"].as_array().into_iter().flatten() {
                        for p in m["gauge"]["dataPoints"].as_array().into_iter().flatten() {
                            for kv in p["attributes"].as_array().into_iter().flatten() {
                                if kv["key"] == "db" {
                                    found.push(kv["value"]["stringValue"].as_str().unwrap_or_default().to_string());
                                }
                            }
                        }
                    }
                }
                found
            })
            .collect()
    };
    let run = Run::start(
        &[dir.join("p.pipe").to_str().unwrap(), "--no-watch"],
        &[("DISC_DSN", "postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5432/postgres")],
    );
    run.wait_for("the existing databases", Duration::from_secs(20), || {
        let found = databases(&out);
        (found.contains("postgres") && found.contains("dbintel_test")).then_some(())
    });
    psql(&format!("CREATE DATABASE {db}"));
    run.wait_for("the new database to be scraped", Duration::from_secs(20), || databases(&out).contains(&db).then_some(()));
    assert!(run.target("srv")["state"] == "up");
    psql(&format!("DROP DATABASE {db} WITH (FORCE)"));
    let child = format!("srv/{db}");
    run.wait_for("its target to go", Duration::from_secs(20), || {
        let status = run.status();
        (!status["targets"].as_array().unwrap().iter().any(|t| t["target"] == child)).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let log = run.stderr();
    assert_eq!(log.matches("the database is gone").count(), 1, "{log}");
    assert!(log.matches(&format!("source={child}")).filter(|_| true).count() <= 6, "no error storm for a dropped database:\n{log}");
    assert_eq!(run.get("/readyz").0, 200, "a discovered database never holds readiness back");
}

/// Drops the test's databases however the test ends.
struct DropDatabases(Vec<String>);
impl Drop for DropDatabases {
    fn drop(&mut self) {
        for db in &self.0 {
            let _ = std::process::Command::new("psql")
                .args(["-X", "-q", common::PG_SUPERUSER, "-c", &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")])
                .output();
        }
    }
}

/// Runs `sql` as the superuser in database `db` of the shared server.
fn psql_in(db: &str, sql: &str) {
    let url = common::PG_SUPERUSER.replace("/dbintel_test", &format!("/{db}"));
    let out = std::process::Command::new("psql").args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &url, "-c", sql]).output().expect("psql");
    assert!(out.status.success(), "psql in {db}: {}", common::seen(&out));
}

#[test]
fn databases_of_one_server_as_targets_are_read_once_through_one_of_them() {
    // The server-wide collectors (instance, tables across databases) run
    // on one target of a server. The others: each connects once (so its
    // state says whether its DSN works), holds no session, and does not
    // hold readiness back; the tables read are the targets' databases.
    let pid = std::process::id();
    let names: Vec<String> = (0..4).map(|i| format!("fleet_one_{pid}_{i}")).collect();
    let _drop = DropDatabases(names.clone());
    for db in &names {
        psql(&format!("CREATE DATABASE {db}"));
        psql_in(db, "CREATE TABLE orders (id int); INSERT INTO orders SELECT generate_series(1, 10)");
    }
    // a database of the server that is not a target
    let other = format!("fleet_one_{pid}_other");
    let _drop_other = DropDatabases(vec![other.clone()]);
    psql(&format!("CREATE DATABASE {other}"));
    psql_in(&other, "CREATE TABLE orders (id int)");

    let dir = scratch("targets-one-server");
    let out = dir.join("out.jsonl");
    let yaml: String = names
        .iter()
        .enumerate()
        .map(|(i, db)| {
            format!("- name: t{i}\n  host: 127.0.0.1\n  port: 5432\n  database: {db}\n  user: dbintel_monitor\n  password_env: FLEET_PW\n")
        })
        .collect();
    std::fs::write(dir.join("targets.yaml"), yaml).unwrap();
    std::fs::write(
        dir.join("p.pipe"),
        format!(
            "source fleet = postgres {{\n  targets = file(\"targets.yaml\")\n  interval = 1s\n  jitter = 0%\n  collect instance\n  collect tables {{ interval = 1s }}\n}}\nsink out = file {{ path = \"{}\" }}\npipeline i = fleet.instance -> out\npipeline t = fleet.tables -> out\n",
            out.display()
        ),
    )
    .unwrap();
    // start waits for /readyz: every target must count as connected
    let run = Run::start(&[dir.join("p.pipe").to_str().unwrap(), "--no-watch"], &[("FLEET_PW", "monitor-secret-pw")]);
    let status = run.status();
    let targets: Vec<&serde_json::Value> = status["targets"].as_array().unwrap().iter().filter(|t| t["source"] == "fleet").collect();
    assert_eq!(targets.len(), 4, "{status:#}");
    assert!(targets.iter().all(|t| t["state"] == "up" && t["connected_once"] == true), "every target connected once: {status:#}");

    // the databases whose tables arrived
    let table_databases = || -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for line in std::fs::read_to_string(&out).unwrap_or_default().lines() {
            let request: serde_json::Value = serde_json::from_str(line).expect("OTLP/JSON line");
            // one resource per server: a table's names are on its points
            for rm in request["resourceMetrics"].as_array().into_iter().flatten() {
                for m in
                    rm["scopeMetrics"].as_array().into_iter().flatten().flat_map(|sm| sm["metrics"].as_array().cloned().unwrap_or_default())
                {
                    let data =
                        m["sum"]["dataPoints"].as_array().or_else(|| m["gauge"]["dataPoints"].as_array()).cloned().unwrap_or_default();
                    for p in data {
                        let attrs = p["attributes"].as_array().cloned().unwrap_or_default();
                        let get = |k: &str| attrs.iter().find(|kv| kv["key"] == k).and_then(|kv| kv["value"]["stringValue"].as_str());
                        if let (Some(db), Some("orders")) =
                            (get("postgresql.database.name"), get("postgresql.table.name").and_then(|t| t.strip_prefix("public.")))
                        {
                            found.insert(db.to_string());
                        }
                    }
                }
            }
        }
        found
    };
    let expected: BTreeSet<String> = names.iter().cloned().collect();
    let found = run.wait_for("the tables of every target's database", Duration::from_secs(20), || {
        let found = table_databases();
        expected.is_subset(&found).then_some(found)
    });
    assert_eq!(found, expected, "the targets' databases, not the server's others ({other})");

    // sessions: the reader's pool (2) and the tables' pool across the
    // databases (2); the other targets hold none of their own
    // (this test's databases only: other tests share the server)
    std::thread::sleep(Duration::from_secs(2));
    let out = std::process::Command::new("psql")
        .args(["-X", "-At", common::PG_SUPERUSER, "-c"])
        .arg(format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbintel' AND datname LIKE 'fleet\\_one\\_{pid}\\_%'"))
        .output()
        .expect("psql");
    let sessions: usize = text(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("psql: {}", text(&out.stderr)));
    assert!(sessions <= 4, "four targets of one server hold {sessions} sessions");
    let log = run.stderr();
    assert_eq!(log.matches("read through another target").count(), 3, "{log}");
    assert_eq!(run.get("/readyz").0, 200);
}
