//! The sampler's shared state in a real Redis (a private redis-server on
//! a free port, started by the test): two dbintel processes respect one
//! budget and one dedup window.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::otlp::free_port;
use common::{dbintel, scratch, text};

struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    fn start() -> RedisServer {
        let port = free_port();
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return RedisServer { child, port };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two dry runs at once, each with `rows`; the metric lines they print.
fn two_replicas(dir: &std::path::Path, pipe: &str, rows: &str) -> usize {
    let file = dir.join(format!("p{}.pipe", rows.len()));
    std::fs::write(&file, pipe).unwrap();
    let input = dir.join(format!("rows{}.ndjson", rows.len()));
    std::fs::write(&input, rows).unwrap();
    let arg = format!("rows.m={}", input.display());
    let (f, a) = (file.to_str().unwrap().to_string(), arg.clone());
    let other = std::thread::spawn(move || dbintel(&["dry-run", &f, "--input", &a, "--output", "pretty"], &[("ROWS_DSN", "x")]));
    let one = dbintel(&["dry-run", file.to_str().unwrap(), "--input", &arg, "--output", "pretty"], &[("ROWS_DSN", "x")]);
    let two = other.join().expect("second replica");
    for out in [&one, &two] {
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(!text(&out.stderr).contains("Redis unavailable"), "{}", text(&out.stderr));
    }
    [one, two].iter().map(|o| text(&o.stdout).lines().filter(|l| l.contains(" metric t.v ")).count()).sum()
}

fn pipe(port: u16, name: &str, rule: &str) -> String {
    format!(
        "source rows = sql {{\n  dsn = env(\"ROWS_DSN\")\n  collect m {{ query = \"select 1\", metric = \"t.v\", value_column = \"v\", attribute_columns = [\"k\", \"text\"] }}\n}}\nsample {name} {{\n  state = redis(\"redis://127.0.0.1:{port}\")\n  {rule}\n}}\nsink out = stdout {{}}\npipeline p = rows.m -> {name} -> out\n"
    )
}

#[test]
fn two_replicas_sharing_redis_respect_one_budget_and_one_dedup_window() {
    let redis = RedisServer::start();
    let dir = scratch("sampler-redis");
    let rows: String = (0..50).map(|i| format!("{{\"v\": {i}, \"k\": \"same\", \"text\": \"t{}\"}}\n", i % 10)).collect();
    // an hour-long window: the two processes always share it
    let kept = two_replicas(&dir, &pipe(redis.port, "budget", r#"rate_limit 10 per 1h by attributes["k"]"#), &rows);
    assert_eq!(kept, 10, "one budget of 10 for both replicas (each alone would keep 10)");
    let rows2: String = (0..40).map(|i| format!("{{\"v\": {i}, \"k\": \"x\", \"text\": \"u{}\"}}\n", i % 8)).collect();
    let kept = two_replicas(&dir, &pipe(redis.port, "once", r#"dedup by attributes["text"] for 1h"#), &rows2);
    assert_eq!(kept, 8, "each of the 8 texts once, across both replicas");
}
