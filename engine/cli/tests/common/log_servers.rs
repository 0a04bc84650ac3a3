//! Servers of the log tests' own, with the logging settings nobody may
//! set on the shared servers: a PostgreSQL (the machine's 15, or an npm
//! major from tests/pg-versions.sh's cache) with its logging collector,
//! auto_explain and every `log_*` the log sources read, and a MariaDB with
//! its slow query log at `long_query_time = 0` and an error log file.
//! Stopped (immediate) on drop; their logs stay in the scratch directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The machine's PostgreSQL 15.
pub const PG15_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The bin directory of an npm major from tests/pg-versions.sh's cache
/// (installed by it when missing). Fails, never skips, when it cannot be.
pub fn npm_bin(major: u32) -> PathBuf {
    let script = super::root().join("tests/pg-versions.sh");
    let out = Command::new(&script).arg("servers-file").output().expect("tests/pg-versions.sh servers-file");
    let servers = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let install = servers.parent().expect("the servers file's directory").join("install");
    let find = || {
        std::fs::read_dir(&install).ok()?.flatten().map(|e| e.path()).find(|p| {
            p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{major}."))) && p.join("native/bin/postgres").exists()
        })
    };
    if find().is_none() {
        let status = Command::new(&script).args(["start", &major.to_string()]).status().expect("tests/pg-versions.sh start");
        assert!(status.success(), "tests/pg-versions.sh start {major} failed");
    }
    find()
        .unwrap_or_else(|| panic!("no PostgreSQL {major} in {}: run tests/pg-versions.sh start {major}", install.display()))
        .join("native/bin")
}

fn run_as_postgres(bin: &Path, program: &str, args: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(program))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("runuser {program}: {e}"))
}

fn chown(path: &Path, owner: &str) {
    let out = Command::new("chown").args(["-R", owner]).arg(path).output().expect("chown");
    assert!(out.status.success(), "chown {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
}

/// The settings every log test server runs with: the README's, with
/// thresholds at 0 so every statement, wait, file and run is logged.
pub fn logging_settings(destination: &str) -> Vec<(&'static str, String)> {
    vec![
        ("logging_collector", "on".into()),
        ("log_destination", format!("'{destination}'")),
        ("log_filename", "'postgresql-%Y%m%d_%H%M%S.log'".into()),
        ("log_file_mode", "0644".into()),
        ("log_rotation_age", "0".into()),
        ("log_rotation_size", "0".into()),
        ("lc_messages", "'C'".into()),
        ("log_timezone", "'UTC'".into()),
        ("shared_preload_libraries", "'pg_stat_statements,auto_explain'".into()),
        ("compute_query_id", "on".into()),
        ("auto_explain.log_min_duration", "0".into()),
        ("auto_explain.log_analyze", "on".into()),
        ("auto_explain.log_timing", "off".into()),
        ("auto_explain.log_format", "json".into()),
        ("log_lock_waits", "on".into()),
        ("deadlock_timeout", "200ms".into()),
        ("log_autovacuum_min_duration", "0".into()),
        ("autovacuum_naptime", "1s".into()),
        ("log_temp_files", "0".into()),
        ("log_checkpoints", "on".into()),
        ("log_min_error_statement", "error".into()),
        ("work_mem", "64kB".into()),
    ]
}

/// A PostgreSQL of the test's own writing its log where the test reads it.
pub struct LogPg {
    pub port: u16,
    pub dir: PathBuf,
    pub log_dir: PathBuf,
    data: PathBuf,
    bin: PathBuf,
}

impl LogPg {
    /// initdb + start with `settings` (each `-c name=value`); trust auth.
    pub fn start(name: &str, bin: &Path, settings: &[(&str, String)]) -> LogPg {
        let dir = super::scratch(&format!("logpg-{name}"));
        let data = dir.join("data");
        let log_dir = dir.join("log");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        chown(&dir, "postgres:postgres");
        let out = run_as_postgres(
            bin,
            "initdb",
            &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync", "--no-instructions"],
        );
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let mut conf = format!(
            "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\nmax_connections = 40\nlog_directory = '{}'\n",
            super::otlp::free_port(),
            dir.display(),
            log_dir.display()
        );
        for (k, v) in settings {
            conf.push_str(&format!("{k} = {v}\n"));
        }
        let port: u16 = conf.lines().next().and_then(|l| l.strip_prefix("port = ")).and_then(|p| p.parse().ok()).expect("port");
        let path = data.join("postgresql.conf");
        let mut all = std::fs::read_to_string(&path).expect("postgresql.conf");
        all.push_str(&conf);
        std::fs::write(&path, all).expect("postgresql.conf");
        let pg = LogPg { port, dir, log_dir, data, bin: bin.to_path_buf() };
        pg.pg_ctl_start();
        pg
    }

    fn pg_ctl_start(&self) {
        let startup = self.dir.join("startup.log");
        let out = run_as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", self.data.to_str().unwrap(), "-l", startup.to_str().unwrap(), "-w", "-t", "60", "start"],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&startup).unwrap_or_default()
        );
    }

    /// psql as the superuser on `db`; its unaligned output.
    pub fn sql_in(&self, db: &str, sql: &str) -> String {
        super::private_psql(self.port, db, &["-c".as_ref(), sql.as_ref()], sql)
    }

    pub fn sql(&self, sql: &str) -> String {
        self.sql_in("postgres", sql)
    }

    /// psql that is expected to fail (an error the test provokes); its stderr.
    pub fn failing(&self, db: &str, user: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-q", "-At", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", user, "-d", db, "-c", sql])
            .output()
            .expect("psql");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// A psql session running `sql` in the background.
    pub fn background(&self, sql: &str) -> Child {
        Command::new("psql")
            .args(["-X", "-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-c", sql])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql")
    }

    /// A DSN of the superuser (never used to connect by the log source:
    /// it only names the server).
    pub fn dsn(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Every line of every file in the log directory.
    pub fn log_text(&self) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.log_dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        files.sort();
        files.iter().map(|f| std::fs::read_to_string(f).unwrap_or_default()).collect()
    }

    pub fn log_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.log_dir)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for LogPg {
    fn drop(&mut self) {
        let _ = run_as_postgres(&self.bin, "pg_ctl", &["-D", self.data.to_str().unwrap_or_default(), "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// A MariaDB of the test's own: slow log at long_query_time = 0, an
/// error log file, log_warnings = 2; root over its socket, TCP on a free
/// port.
pub struct LogMaria {
    pub port: u16,
    pub dir: PathBuf,
    pub slow_log: PathBuf,
    pub error_log: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
}

impl LogMaria {
    pub fn start(name: &str) -> LogMaria {
        let dir = super::scratch(&format!("logmaria-{name}"));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        chown(&dir, "mysql:mysql");
        let out = Command::new("mariadb-install-db")
            .args(["--user=mysql", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = super::otlp::free_port();
        let (slow_log, error_log, socket) = (dir.join("slow.log"), dir.join("error.log"), dir.join("mysqld.sock"));
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg("--user=mysql")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg("--slow-query-log=1")
            .arg("--long-query-time=0")
            .arg(format!("--slow-query-log-file={}", slow_log.display()))
            .arg(format!("--log-error={}", error_log.display()))
            .arg("--log-warnings=2")
            .arg("--innodb-print-all-deadlocks=1")
            .arg("--innodb-buffer-pool-size=16M")
            .arg("--skip-performance-schema")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd");
        let maria = LogMaria { port, dir, slow_log, error_log, socket, child: Some(child) };
        let started = Instant::now();
        while Command::new("mariadb")
            .args(["-uroot", &format!("--socket={}", maria.socket.display()), "-e", "SELECT 1"])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the private MariaDB did not start:\n{}",
                std::fs::read_to_string(&maria.error_log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        maria
    }

    /// SQL as root over the socket; its tab-separated output.
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("mariadb")
            .args(["-uroot", &format!("--socket={}", self.socket.display()), "-N", "-B", "-e", sql])
            .output()
            .expect("mariadb");
        assert!(out.status.success(), "mariadb: {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A login over TCP that must fail; its stderr.
    pub fn failing_login(&self, user: &str, password: &str) -> String {
        let out = Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-P", &self.port.to_string(), "-u", user, &format!("-p{password}"), "-e", "SELECT 1"])
            .output()
            .expect("mariadb");
        assert!(!out.status.success(), "the login of {user} should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn dsn(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/mysql", self.port)
    }
}

impl Drop for LogMaria {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(self.dir.join("data"));
    }
}

/// Every log record and data point a `file` sink wrote (OTLP/JSON lines):
/// (kind, name, attributes, resource attributes, value).
#[derive(Debug, Clone)]
pub struct Out {
    pub log: bool,
    pub name: String,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub resource: serde_json::Map<String, serde_json::Value>,
    pub value: f64,
}

fn attrs(list: &serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for kv in list.as_array().into_iter().flatten() {
        let value = kv["value"].as_object().and_then(|v| v.values().next()).cloned().unwrap_or(serde_json::Value::Null);
        out.insert(kv["key"].as_str().unwrap_or_default().to_string(), value);
    }
    out
}

pub fn read_file_sink(path: &Path) -> Vec<Out> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        for rl in v["resourceLogs"].as_array().into_iter().flatten() {
            let resource = attrs(&rl["resource"]["attributes"]);
            for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
                for r in sl["logRecords"].as_array().into_iter().flatten() {
                    out.push(Out {
                        log: true,
                        name: r["eventName"].as_str().unwrap_or_default().to_string(),
                        attributes: attrs(&r["attributes"]),
                        resource: resource.clone(),
                        value: 0.0,
                    });
                }
            }
        }
        for rm in v["resourceMetrics"].as_array().into_iter().flatten() {
            let resource = attrs(&rm["resource"]["attributes"]);
            for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                for m in sm["metrics"].as_array().into_iter().flatten() {
                    let name = m["name"].as_str().unwrap_or_default().to_string();
                    let points = m["sum"]["dataPoints"].as_array().or(m["gauge"]["dataPoints"].as_array()).cloned().unwrap_or_default();
                    for p in points {
                        let value = p["asDouble"]
                            .as_f64()
                            .or_else(|| p["asInt"].as_str().and_then(|s| s.parse().ok()))
                            .or_else(|| p["asInt"].as_f64())
                            .unwrap_or(0.0);
                        out.push(Out {
                            log: false,
                            name: name.clone(),
                            attributes: attrs(&p["attributes"]),
                            resource: resource.clone(),
                            value,
                        });
                    }
                }
            }
        }
    }
    out
}

/// The sum of a metric's points whose attribute `key` is `value` (any,
/// with `None`).
pub fn metric_sum(out: &[Out], name: &str, filter: Option<(&str, &str)>) -> f64 {
    out.iter()
        .filter(|o| !o.log && o.name == name && filter.is_none_or(|(k, v)| o.attributes.get(k).and_then(|x| x.as_str()) == Some(v)))
        .map(|o| o.value)
        .sum()
}

pub fn events<'a>(out: &'a [Out], name: &str) -> Vec<&'a Out> {
    out.iter().filter(|o| o.log && o.name == name).collect()
}
