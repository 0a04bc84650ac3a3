//! Database names are names, never connection parameters (issue 21,
//! finding 1). Discovery used to paste a database's name into the DSN
//! string: any role allowed to CREATE DATABASE could name one
//! `x?host=<its host>&port=<its port>&sslmode=disable`, the driver honoured
//! the parameters, and the monitoring password went to that host. Against
//! the real servers: databases with hostile names (URL syntax, `#`, `%`,
//! `/`, quotes, non-ASCII) are each scraped on the configured server, with
//! their exact names, and an impostor listening where the names point
//! receives nothing.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::otlp::Run;
use common::{psql, scratch};

/// A listener on another loopback address that counts who connects and
/// what they send (a password would arrive in cleartext: it answers
/// nothing, and the count alone fails the test).
struct Impostor {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Impostor {
    fn start() -> Impostor {
        let listener = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2 (loopback)");
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                seen.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Impostor { port, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// The values of point attribute `key` in an OTLP/JSON file.
fn attribute_values(file: &Path, key: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut found = BTreeSet::new();
    for line in text.lines() {
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

/// SQL's quoted identifier.
fn ident(name: &str, quote: char) -> String {
    format!("{quote}{}{quote}", name.replace(quote, &format!("{quote}{quote}")))
}

/// Drops the test's PostgreSQL databases however the test ends.
struct DropPg(Vec<String>);
impl Drop for DropPg {
    fn drop(&mut self) {
        for db in &self.0 {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(db, '"'));
            let _ = std::process::Command::new("psql").args(["-X", "-q", common::PG_SUPERUSER, "-c", &sql]).output();
        }
    }
}

fn hostile_names(tag: &str, impostor: u16, slash: bool) -> Vec<String> {
    let mut names = vec![
        format!("{tag}?host=127.0.0.2&port={impostor}&sslmode=disable"),
        format!("{tag}#fragment"),
        format!("{tag} 100% sure"),
        format!("{tag} it's \"quoted\""),
        format!("{tag} été ünï"),
        format!("{tag}@127.0.0.2:{impostor}"),
    ];
    if slash {
        names.push(format!("{tag}/../postgres?hostaddr=127.0.0.2"));
    }
    names
}

#[test]
fn regression_discovered_database_names_cannot_redirect_the_connection_or_its_password() {
    let impostor = Impostor::start();
    let tag = format!("dbi{}", std::process::id());
    let names = hostile_names(&tag, impostor.port, true);
    let _drop = DropPg(names.clone());
    for name in &names {
        psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(name, '"')));
        psql(&format!("CREATE DATABASE {}", ident(name, '"')));
    }
    let dir = scratch("hostile-db-names-pg");
    let out = dir.join("out.jsonl");
    std::fs::write(
        dir.join("p.pipe"),
        format!(
            r#"source srv = sql {{
  dsn = env("NAMES_DSN")
  discover = databases
  discover_every = 1s
  interval = 500ms
  pool = 1
  collect q {{ query = "SELECT current_database() AS db, 1 AS v", metric = "names.one", value_column = "v", attribute_columns = ["db"] }}
}}
sink out = file {{ path = "{}" }}
pipeline p = srv.q -> out
"#,
            out.display()
        ),
    )
    .unwrap();
    let run = Run::start(
        &[dir.join("p.pipe").to_str().unwrap(), "--no-watch"],
        &[("NAMES_DSN", "postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5432/postgres?sslmode=prefer")],
    );
    let expected: BTreeSet<String> = names.iter().cloned().collect();
    let found = run.wait_for("every hostile database scraped on the configured server", Duration::from_secs(30), || {
        assert_eq!(impostor.connections(), 0, "the impostor on 127.0.0.2:{} was contacted", impostor.port);
        let found = attribute_values(&out, "db");
        expected.is_subset(&found).then_some(found)
    });
    // each under its exact name, as the server itself reports it
    assert!(expected.is_subset(&found), "{found:?}");
    // a few more discovery rounds: nothing ever goes to the impostor
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(impostor.connections(), 0, "the impostor on 127.0.0.2:{} was contacted", impostor.port);
    let status = run.status();
    for name in &names {
        let target = format!("srv/{name}");
        let entry = status["targets"].as_array().unwrap().iter().find(|t| t["target"] == target.as_str());
        assert_eq!(entry.map(|t| t["state"].clone()), Some(serde_json::json!("up")), "{target}: {status:#}");
    }
    assert!(!run.stderr().contains("monitor-secret-pw"));
}

/// MySQL / MariaDB: a target's database given as a part of a targets file
/// (and its password from a variable) is set as the database, whatever its
/// name holds; schemas with hostile names are each read on the configured
/// server, and the impostor receives nothing.
#[test]
fn mysql_target_database_names_are_names_on_the_configured_server() {
    let impostor = Impostor::start();
    let tag = format!("dbi{}", std::process::id());
    // MySQL names cannot hold `/`
    let names = hostile_names(&tag, impostor.port, false);
    let user = format!("names_{}", std::process::id());
    let mariadb = |sql: &str| {
        let out = std::process::Command::new("mariadb").args(["-uroot", "-h127.0.0.1", "-e", sql]).output().expect("mariadb client");
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    };
    struct DropMy(Vec<String>, String);
    impl Drop for DropMy {
        fn drop(&mut self) {
            for db in &self.0 {
                let sql = format!("DROP DATABASE IF EXISTS {}", ident(db, '`'));
                let _ = std::process::Command::new("mariadb").args(["-uroot", "-h127.0.0.1", "-e", &sql]).output();
            }
            let sql = format!("DROP USER IF EXISTS '{}'@'%'", self.1);
            let _ = std::process::Command::new("mariadb").args(["-uroot", "-h127.0.0.1", "-e", &sql]).output();
        }
    }
    let _drop = DropMy(names.clone(), user.clone());
    mariadb(&format!("CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'names-secret-pw'"));
    let mut yaml = String::new();
    for (i, name) in names.iter().enumerate() {
        mariadb(&format!("CREATE DATABASE IF NOT EXISTS {}", ident(name, '`')));
        // the least a session needs to open a database
        mariadb(&format!("GRANT SHOW VIEW ON {}.* TO '{user}'@'%'", ident(name, '`')));
        let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
        yaml.push_str(&format!(
            "- name: t{i}\n  host: 127.0.0.1\n  port: 3306\n  database: \"{quoted}\"\n  user: {user}\n  password_env: NAMES_PW\n"
        ));
    }
    // a `mysql` source's targets by parts (database as a field), and a
    // `sql` source's by URL (the database percent-encoded in the path; a
    // `sql` source speaks MySQL when its DSN's scheme says so)
    let dir = scratch("hostile-db-names-my");
    std::fs::write(dir.join("parts.yaml"), yaml).unwrap();
    let urls: String = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let encoded: String =
                name.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
            format!("- name: t{i}\n  dsn: mysql://{user}@127.0.0.1:3306/{encoded}\n  password_env: NAMES_PW\n")
        })
        .collect();
    std::fs::write(dir.join("urls.yaml"), urls).unwrap();
    let out = dir.join("out.jsonl");
    std::fs::write(
        dir.join("p.pipe"),
        format!(
            r#"source srv = mysql {{
  targets = file("parts.yaml")
  interval = 500ms
  pool = 1
  collect instance
}}
source q = sql {{
  targets = file("urls.yaml")
  interval = 500ms
  pool = 1
  collect q {{ query = "SELECT DATABASE() AS db, 1 AS v", metric = "names.one", value_column = "v", attribute_columns = ["db"] }}
}}
sink out = file {{ path = "{}" }}
pipeline i = srv.instance -> out
pipeline p = q.q -> out
"#,
            out.display()
        ),
    )
    .unwrap();
    let run = Run::start(&[dir.join("p.pipe").to_str().unwrap(), "--no-watch"], &[("NAMES_PW", "names-secret-pw")]);
    let expected: BTreeSet<String> = names.iter().cloned().collect();
    run.wait_for("every hostile schema read on the configured server", Duration::from_secs(30), || {
        let found = attribute_values(&out, "db");
        expected.is_subset(&found).then_some(found)
    });
    // every target by parts connected to its own schema (an unknown one
    // is refused at connect), on the configured server
    let status = run.status();
    for i in 0..names.len() {
        let target = format!("t{i}");
        let entry = status["targets"].as_array().unwrap().iter().find(|t| t["source"] == "srv" && t["target"] == target.as_str());
        assert_eq!(entry.map(|t| t["connected_once"].clone()), Some(serde_json::json!(true)), "{target}: {status:#}");
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(impostor.connections(), 0, "the impostor on 127.0.0.2:{} was contacted", impostor.port);
    assert!(!run.stderr().contains("names-secret-pw"));
}
