//! Running the real `dbintel` binary from tests.
#![allow(dead_code)]

pub mod doctor;
pub mod log_servers;
pub mod otlp;
pub mod pg_servers;
pub mod private_mariadb;
pub mod private_pg;
pub mod proxy;
pub mod server_view;

/// The monitoring role tests/prepare-servers.sh creates (read-only).
pub const PG_MONITOR: &str = "postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5432/dbintel_test";
/// The superuser, for setting the scene with psql.
pub const PG_SUPERUSER: &str = "postgresql://postgres:super-secret-pw@127.0.0.1:5432/dbintel_test";

/// Runs SQL as the superuser with psql; its unaligned output.
pub fn psql(sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", PG_SUPERUSER, "-c", sql])
        .output()
        .expect("psql");
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs psql as the superuser of the private server on `port`, in
/// `database`, with `args` (`-c SQL` or `-f FILE`); stops on the first
/// error, asserts it succeeded (`what` says what failed) and returns its
/// unaligned output.
pub fn private_psql(port: u16, database: &str, args: &[&std::ffi::OsStr], what: &str) -> String {
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", database])
        .args(args)
        .output()
        .expect("psql");
    assert!(out.status.success(), "psql on :{port} in {database}: {what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    // this crate lives at engine/cli
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dbintel-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs dbintel with a clean, known environment. A run that does not end
/// within a minute is a hang and fails the test (this is a guard, not a
/// timing assertion).
pub fn dbintel(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dbintel"));
    command.args(args).current_dir(root()).env_remove("PG_DSN").env_remove("MYSQL_DSN").env_remove("NEW_RELIC_LICENSE_KEY");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn dbintel");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("dbintel {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output { status, stdout: out_reader.join().unwrap_or_default(), stderr: err_reader.join().unwrap_or_default() }
}

pub const ALL_ENV: &[(&str, &str)] = &[
    ("PG_DSN", "postgres://x"),
    ("MYSQL_DSN", "mysql://x"),
    ("NEW_RELIC_LICENSE_KEY", "k"),
    ("PG_LOG_DIR", "/var/log/postgresql"),
    ("MYSQL_SLOW_LOG", "/var/log/mysql/slow.log"),
    ("MYSQL_ERROR_LOG", "/var/log/mysql/error.log"),
];

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or_else(|| panic!("killed by a signal, not exited: {}", seen(out)))
}

/// What a run of the binary showed, for failure messages: its exit status,
/// stderr and (the start of) stdout.
pub fn seen(out: &Output) -> String {
    let stdout = text(&out.stdout);
    let shown: String = stdout.chars().take(4000).collect();
    let more = if shown.len() < stdout.len() { "\n[… stdout cut]" } else { "" };
    format!("{}\n--- stderr ---\n{}\n--- stdout ---\n{shown}{more}", out.status, text(&out.stderr))
}

/// The delta of `metric` for the statement whose text contains `marker`
/// (found through its `db.server.top_query` event).
pub fn calls_for(records: &[dbintel_core::record::Record], metric: &str, marker: &str) -> Option<i64> {
    use dbintel_core::record::{Number, Record};
    use dbintel_stdlib::Value;
    let id = records.iter().find_map(|r| match r {
        Record::Log(l) if l.attributes.get("db.query.text").and_then(Value::as_str).is_some_and(|t| t.contains(marker)) => {
            l.attributes.get("db.query.id").cloned()
        }
        _ => None,
    })?;
    records.iter().find_map(|r| match r {
        Record::Metric(m) if m.name == metric && m.attributes.get("db.query.id") == Some(&id) => match m.value {
            Number::Int(i) => Some(i),
            Number::Double(d) => Some(d as i64),
        },
        _ => None,
    })
}
/// The first few lines of `text` holding any of `needles`, for failure
/// messages about something that must not appear.
pub fn lines_with<'a>(text: &'a str, needles: &[&str]) -> Vec<&'a str> {
    text.lines().filter(|l| needles.iter().any(|n| l.contains(n))).take(5).collect()
}

/// New Relic's `service.instance.id` for `host:port`, computed by Python's
/// own uuid5 (a second implementation of New Relic's rule: UUIDv5 in the
/// OpenTelemetry namespace of the endpoint, a loopback host replaced by
/// the machine's name).
pub fn nr_service_instance_id(host: &str, port: u16) -> String {
    let script = r#"
import ipaddress, socket, sys, uuid
host, port = sys.argv[1], sys.argv[2]
try:
    loopback = host.lower() == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
except ValueError:
    loopback = False
if loopback:
    host = socket.gethostname()
print(uuid.uuid5(uuid.UUID("4d63009a-8d0f-11ee-aad7-4c796ed8e320"), f"{host}:{port}"))
"#;
    let out = Command::new("python3").args(["-c", script, host, &port.to_string()]).output().expect("python3");
    assert!(out.status.success(), "python3 uuid5: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}
