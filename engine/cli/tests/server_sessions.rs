//! At most `server_sessions` sessions per server, whatever reaches it
//! (issue 21, finding 3): discovery with a per-database collector opened a
//! pool per database with no cap, so 150 databases exhausted
//! `max_connections = 100` and locked applications out. Against a private
//! PostgreSQL with `max_connections = 40` and 60 databases: every database
//! is scraped, dbintel never holds more than its cap, and an application
//! can always connect.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::otlp::Run;
use common::private_pg::PrivatePg;
use common::scratch;

/// The values of point attribute `key` in an OTLP/JSON file.
fn attribute_values(file: &Path, key: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("OTLP/JSON");
        for rm in v["resourceMetrics"].as_array().into_iter().flatten() {
            for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                for m in sm["metrics"].as_array().into_iter().flatten() {
                    for p in m["gauge"]["dataPoints"].as_array().into_iter().flatten() {
                        for kv in p["attributes"].as_array().into_iter().flatten() {
                            if kv["key"] == key {
                                found.insert(kv["value"]["stringValue"].as_str().unwrap_or_default().to_string());
                            }
                        }
                    }
                }
            }
        }
    }
    found
}

#[test]
fn regression_discovered_databases_share_a_capped_number_of_sessions_per_server() {
    let pg = PrivatePg::primary("sessions-cap");
    let names: Vec<String> = (0..60).map(|i| format!("app_{i:02}")).collect();
    for name in &names {
        pg.sql(&format!("CREATE DATABASE {name}"));
    }
    let dir = scratch("server-sessions");
    let out = dir.join("out.jsonl");
    std::fs::write(
        dir.join("p.pipe"),
        format!(
            r#"source srv = sql {{
  dsn = env("CAP_DSN")
  discover = databases
  discover_every = 2s
  interval = 1s
  pool = 2
  server_sessions = 6
  collect q {{ query = "SELECT current_database() AS db, 1 AS v", metric = "cap.one", value_column = "v", attribute_columns = ["db"] }}
}}
sink out = file {{ path = "{}" }}
pipeline p = srv.q -> out
"#,
            out.display()
        ),
    )
    .unwrap();

    // dbintel's sessions on the server, sampled all along
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (most, done, port) = (most.clone(), done.clone(), pg.port);
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let out = std::process::Command::new("psql")
                    .args(["-X", "-At", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", "postgres"])
                    .args(["-c", "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbintel'"])
                    .output()
                    .expect("psql");
                if let Ok(n) = String::from_utf8_lossy(&out.stdout).trim().parse::<usize>() {
                    most.fetch_max(n, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let run = Run::start(&[dir.join("p.pipe").to_str().unwrap(), "--no-watch"], &[("CAP_DSN", &pg.dsn("proofs_mon"))]);
    let mut expected: BTreeSet<String> = names.iter().cloned().collect();
    expected.insert("postgres".into());
    run.wait_for("every database scraped", Duration::from_secs(60), || {
        let found = attribute_values(&out, "db");
        expected.is_subset(&found).then_some(())
    });
    // and again, a few rounds later: the sessions keep changing hands
    let lines = std::fs::read_to_string(&out).unwrap_or_default().lines().count();
    run.wait_for("more rounds", Duration::from_secs(30), || {
        (std::fs::read_to_string(&out).unwrap_or_default().lines().count() > lines + 60).then_some(())
    });
    // /metrics shows the budget, and the shared sessions changing hands
    let server = format!("127.0.0.1:{}", pg.port);
    assert_eq!(run.metric(&format!(r#"dbintel_server_sessions{{server="{server}",state="cap"}}"#)), 6.0);
    let in_use = run.metric(&format!(r#"dbintel_server_sessions{{server="{server}",state="in_use"}}"#));
    assert!((1.0..=6.0).contains(&in_use), "{in_use} sessions in use of 6");
    let evictions = run.metric(&format!(r#"dbintel_server_session_evictions_total{{server="{server}"}}"#));
    assert!(evictions > 0.0, "61 databases through 6 sessions: idle ones were closed to make room ({evictions})");
    // an application can connect all along
    let app = pg.sql("SELECT 1");
    assert_eq!(app, "1");
    done.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 6, "dbintel held {most} sessions on a server it may hold 6 on");
    assert!(most >= 2, "the sampler saw dbintel's sessions ({most})");
    let log = run.stderr();
    assert!(!log.contains("53300") && !log.contains("too many"), "{log}");
}
