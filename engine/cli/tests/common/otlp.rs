//! Real OTLP peers for the export tests: tests/otlp_receiver.py (the
//! official opentelemetry-proto classes + grpcio) and rotel-agent (from
//! the PyPI `rotel` wheel), plus `dbintel run` as a child process with its
//! HTTP endpoints.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Polls `f` until it gives `Some`, or fails the test after `limit`.
pub fn eventually<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub struct Receiver {
    child: Child,
    pub out: PathBuf,
    pub grpc: u16,
    pub http: u16,
}

impl Receiver {
    /// Starts the receiver on the given ports (0: any) with a script of
    /// answers (a JSON list; see the script's doc).
    pub fn start(dir: &Path, name: &str, grpc: u16, http: u16, script: &str) -> Receiver {
        Receiver::start_with(dir, name, grpc, http, script, &[])
    }

    pub fn start_with(dir: &Path, name: &str, grpc: u16, http: u16, script: &str, extra: &[&str]) -> Receiver {
        let out = dir.join(format!("{name}.jsonl"));
        let mut child = Command::new("python3")
            .arg(super::root().join("tests/otlp_receiver.py"))
            .args(["--grpc", &grpc.to_string(), "--http", &http.to_string(), "--out"])
            .arg(&out)
            .args(["--script", script])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 tests/otlp_receiver.py (run tests/run.sh, which installs its packages)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("receiver's ports");
        let ports: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("the receiver did not start: {line:?}"));
        let port = |k: &str| ports[k].as_u64().expect("port") as u16;
        Receiver { grpc: port("grpc"), http: port("http"), out, child }
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// What each gRPC call carried on the wire, in arrival order:
    /// "identity", "gzip", "zstd" (read from the bytes by the receiver's
    /// proxy; see tests/otlp_receiver.py), refused calls included.
    pub fn wire(&self) -> Vec<String> {
        let mut path = self.out.clone().into_os_string();
        path.push(".calls");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter_map(|v| v["wire"].as_str().map(str::to_string)).collect()
    }

    pub fn accepted(&self) -> Vec<Value> {
        self.requests().into_iter().filter(|r| r["answer"] == "ok").collect()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// rotel-agent receiving OTLP on gRPC and HTTP and forwarding everything
/// over gRPC to `forward_to`.
pub struct Rotel {
    child: Child,
    pub grpc: u16,
    pub http: u16,
}

pub fn rotel_agent() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))"])
        .output()
        .expect("python3");
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(path.is_file(), "rotel-agent not found (pip install rotel; tests/run.sh does): {}", String::from_utf8_lossy(&out.stderr));
    path
}

impl Rotel {
    pub fn start(dir: &Path, forward_to: u16) -> Rotel {
        let (grpc, http) = (free_port(), free_port());
        let child = Command::new(rotel_agent())
            .args(["start", "--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}"), "--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
            .args(["--exporter", "otlp", "--otlp-exporter-endpoint", &format!("http://127.0.0.1:{forward_to}")])
            .args(["--otlp-exporter-protocol", "grpc", "--otlp-exporter-compression", "none", "--batch-timeout", "100ms"])
            .arg("--pid-file")
            .arg(dir.join("rotel.pid"))
            .arg("--log-file")
            .arg(dir.join("rotel.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("rotel-agent");
        let started = Instant::now();
        while !(std::net::TcpStream::connect(("127.0.0.1", grpc)).is_ok() && std::net::TcpStream::connect(("127.0.0.1", http)).is_ok()) {
            if started.elapsed() > Duration::from_secs(20) {
                let log = std::fs::read_to_string(dir.join("rotel.log")).unwrap_or_default();
                panic!("rotel-agent did not listen on {grpc} and {http} within 20 s; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Rotel { child, grpc, http }
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Tests that reload over HTTP start dbintel with
/// `--reload-token-env` [`RELOAD_TOKEN_ENV`] set to this.
pub const RELOAD_TOKEN: &str = "test-reload-token-0b6f1d";
pub const RELOAD_TOKEN_ENV: &str = "DBINTEL_TEST_RELOAD_TOKEN";

/// `dbintel run` as a child process.
pub struct Run {
    child: Option<Child>,
    pub port: u16,
    stderr: Arc<Mutex<String>>,
}

/// A plain HTTP/1.1 request; (status, body).
pub fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    http_with(port, method, path, &[])
}

/// [`http`] with extra headers (`Authorization: Bearer …`).
pub fn http_with(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n{extra}Connection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

impl Run {
    /// Starts `dbintel run` and waits until it is ready.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut run = Run::spawn(args, env);
        run.until_up("/readyz", "ready");
        run
    }

    /// Starts `dbintel run` and waits only for its HTTP port (it may not be
    /// ready: a database down at start).
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Run {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_dbintel"));
        command
            .arg("run")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .current_dir(super::root())
            .env("DBINTEL_LOG", "info")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
            .env_remove("OTEL_RESOURCE_ATTRIBUTES");
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("dbintel run");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut run = Run { child: Some(child), port, stderr };
        run.until_up("/healthz", "serving HTTP");
        run
    }

    /// Waits (30 s at most) for `path` to answer 200; fails with the log
    /// (and the last answer) if it does not, or if the process exits.
    fn until_up(&mut self, path: &str, what: &str) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("dbintel run exited early ({status}):\n{}", self.stderr());
            }
            let answer = http(self.port, "GET", path);
            if answer.as_ref().map(|r| r.0) == Some(200) {
                return;
            }
            if started.elapsed() > Duration::from_secs(30) {
                panic!("dbintel run was not {what} within 30 s (GET {path}: {answer:?}); its log:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `/status` as JSON.
    pub fn status(&self) -> Value {
        let (code, body) = self.get("/status");
        assert_eq!(code, 200, "/status: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"))
    }

    /// The status entry of one source's target.
    pub fn target(&self, source: &str) -> Value {
        let status = self.status();
        status["targets"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["source"] == source))
            .cloned()
            .unwrap_or_else(|| panic!("no target {source} in /status: {status:#}"))
    }

    /// Waits until the target of `source` is in `state`; its status entry.
    pub fn wait_state(&self, source: &str, state: &str, limit: Duration) -> Value {
        self.wait_for(&format!("{source} to be {state}"), limit, || {
            let t = self.target(source);
            (t["state"] == state).then_some(t)
        })
    }

    /// [`eventually`], with dbintel's log in the failure message.
    pub fn wait_for<T>(&self, what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            if started.elapsed() >= limit {
                let status = http(self.port, "GET", "/status").map_or_else(|| "(no answer)".to_string(), |r| r.1);
                panic!("timed out after {limit:?} waiting for {what}; /status:\n{status}\ndbintel run's log:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http(self.port, "GET", path).unwrap_or_else(|| panic!("GET {path} failed:\n{}", self.stderr()))
    }

    pub fn post(&self, path: &str) -> (u16, String) {
        http(self.port, "POST", path).unwrap_or_else(|| panic!("POST {path} failed:\n{}", self.stderr()))
    }

    /// `POST /reload` with the bearer token of [`RELOAD_TOKEN_ENV`].
    pub fn reload(&self) -> (u16, String) {
        let auth = format!("Bearer {RELOAD_TOKEN}");
        http_with(self.port, "POST", "/reload", &[("Authorization", &auth)])
            .unwrap_or_else(|| panic!("POST /reload failed:\n{}", self.stderr()))
    }

    /// The value of a series, if `/metrics` has it yet.
    pub fn metric_opt(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics");
        body.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
    }

    /// The value of one `/metrics` series, e.g.
    /// `dbintel_export_items_total{sink="out",outcome="failed"}`.
    pub fn metric(&self, series: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no series {series} in /metrics:\n{body}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or_default()
    }

    /// Sends a signal and waits (up to `limit`) for the exit; the exit
    /// status and everything logged.
    pub fn signal(&mut self, sig: &str, limit: Duration) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").args([&format!("-{sig}"), &child.id().to_string()]).status();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                panic!("dbintel run did not exit within {limit:?} of SIG{sig}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(100));
        (status, self.stderr())
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every data point in accepted metric requests: (metric name, value,
/// point attributes, resource attributes), attributes as key → JSON value.
pub type Point = (String, f64, serde_json::Map<String, Value>, serde_json::Map<String, Value>);

fn attrs(list: &Value) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for kv in list.as_array().into_iter().flatten() {
        let value = kv["value"].as_object().and_then(|v| v.values().next()).cloned().unwrap_or(Value::Null);
        out.insert(kv["key"].as_str().unwrap_or_default().to_string(), value);
    }
    out
}

pub fn points(requests: &[Value]) -> Vec<Point> {
    let mut out = Vec::new();
    for r in requests.iter().filter(|r| r["answer"] == "ok" && r["signal"] == "metrics") {
        for rm in r["request"]["resourceMetrics"].as_array().into_iter().flatten() {
            let resource = attrs(&rm["resource"]["attributes"]);
            for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                for m in sm["metrics"].as_array().into_iter().flatten() {
                    let data = m.get("gauge").or_else(|| m.get("sum")).cloned().unwrap_or(Value::Null);
                    for p in data["dataPoints"].as_array().into_iter().flatten() {
                        let value = p
                            .get("asInt")
                            .and_then(|v| v.as_str().and_then(|s| s.parse().ok()))
                            .or_else(|| p.get("asDouble").and_then(Value::as_f64))
                            .unwrap_or(f64::NAN);
                        out.push((m["name"].as_str().unwrap_or_default().to_string(), value, attrs(&p["attributes"]), resource.clone()));
                    }
                }
            }
        }
    }
    out
}

/// NDJSON rows for a `sql` gauge collector: `{"v": i, "k": "key-i"}`.
pub fn rows(dir: &Path, name: &str, n: usize, text_len: usize) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("rows file"));
    let filler = "x".repeat(text_len);
    for i in 0..n {
        writeln!(f, "{{\"v\": {i}, \"k\": \"key-{i}\", \"text\": \"{filler}\"}}").expect("write");
    }
    f.flush().expect("flush");
    path
}

/// A pipeline of recorded gauge rows into one sink.
pub fn rows_pipe(sink: &str, batch: &str) -> String {
    format!(
        r#"source rows = sql {{
  dsn = env("ROWS_DSN")
  collect m {{ query = "select 1", kind = gauge, metric = "test.value", value_column = "v", attribute_columns = ["k", "text"] }}
}}
batch b {{ {batch} }}
sink out = {sink}
pipeline p = rows.m -> b -> out
"#
    )
}
