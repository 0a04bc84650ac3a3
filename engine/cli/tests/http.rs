//! The HTTP port defends itself: a huge body, a slow client and a pile of
//! idle connections do not stop `/healthz` from answering; `POST /reload`
//! is off unless a bearer token is configured, and then needs it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::otlp::{http, http_with, Run};
use common::scratch;

/// A pipeline with nothing to do (recorded rows, none of them).
fn idle_run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let dir = scratch(name);
    let pipe = dir.join("p.pipe");
    std::fs::write(
        &pipe,
        "source rows = sql {\n  dsn = env(\"ROWS_DSN\")\n  collect m { query = \"select 1\", metric = \"t.v\", value_column = \"v\" }\n}\nsink out = stdout {}\npipeline p = rows.m -> out\n",
    )
    .unwrap();
    let empty = dir.join("empty.ndjson");
    std::fs::write(&empty, "").unwrap();
    let input = format!("rows.m={}", empty.display());
    let mut all = vec![pipe.to_str().unwrap().to_string(), "--input".into(), input];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let mut env = env.to_vec();
    env.push(("ROWS_DSN", "unused"));
    Run::start(&all, &env)
}

fn healthz_within(run: &Run, limit: Duration) -> Duration {
    let started = Instant::now();
    let answer = http(run.port, "GET", "/healthz");
    let took = started.elapsed();
    assert_eq!(answer.map(|a| a.0), Some(200), "/healthz did not answer:\n{}", run.stderr());
    assert!(took < limit, "/healthz took {took:?}");
    took
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Reads until the server closes or `limit` passes; what arrived.
fn read_all(stream: &mut TcpStream, limit: Duration) -> String {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_100_megabyte_body_is_refused_unread_and_healthz_keeps_answering() {
    let run = idle_run("http-body", &["--reload-token-env", "HTTP_TEST_TOKEN"], &[("HTTP_TEST_TOKEN", "tok-123")]);
    let before = rss_kib(run.pid());
    let chunk = vec![b'x'; 1 << 20];
    // declared: refused from the headers alone
    let mut stream = TcpStream::connect(("127.0.0.1", run.port)).unwrap();
    write!(stream, "POST /reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-123\r\nContent-Length: {}\r\n\r\n", 100 << 20).unwrap();
    let sender = {
        let mut stream = stream.try_clone().unwrap();
        let chunk = chunk.clone();
        std::thread::spawn(move || (0..100).take_while(|_| stream.write_all(&chunk).is_ok()).count())
    };
    let answer = read_all(&mut stream, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    healthz_within(&run, Duration::from_secs(2));
    let sent = sender.join().unwrap();
    assert!(sent < 100, "the server read all 100 MB of a body it had refused ({sent} MB went through)");

    // chunked, with no length to refuse it by: cut off at the limit
    let mut stream = TcpStream::connect(("127.0.0.1", run.port)).unwrap();
    write!(stream, "POST /reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-123\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let sender = {
        let mut stream = stream.try_clone().unwrap();
        let chunk = chunk.clone();
        std::thread::spawn(move || {
            (0..100)
                .take_while(|_| {
                    write!(stream, "{:x}\r\n", chunk.len()).is_ok() && stream.write_all(&chunk).is_ok() && stream.write_all(b"\r\n").is_ok()
                })
                .count()
        })
    };
    let answer = read_all(&mut stream, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    let sent = sender.join().unwrap();
    assert!(sent < 100, "a chunked 100 MB body was read whole ({sent} MB)");
    healthz_within(&run, Duration::from_secs(2));
    let grew = rss_kib(run.pid()).saturating_sub(before);
    assert!(grew < 16 * 1024, "RSS grew by {grew} KiB: the body was buffered");
}

#[test]
fn a_client_sending_a_byte_a_second_is_cut_off_and_healthz_keeps_answering() {
    let run = idle_run("http-slow", &["--http-header-timeout", "3s"], &[]);
    let mut slow = TcpStream::connect(("127.0.0.1", run.port)).unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nUser-Agent: a-very-slow-client\r\n\r\n";
    let started = Instant::now();
    let mut cut_off = None;
    for (i, byte) in request.iter().enumerate() {
        if slow.write_all(&[*byte]).is_err() {
            cut_off = Some(i);
            break;
        }
        healthz_within(&run, Duration::from_secs(2));
        std::thread::sleep(Duration::from_secs(1));
        // the server may have closed (or answered and closed) without a
        // failed write telling us yet
        slow.set_nonblocking(true).unwrap();
        let mut probe = [0u8; 512];
        let closed = slow.read(&mut probe).is_ok();
        slow.set_nonblocking(false).unwrap();
        if closed {
            cut_off = Some(i + 1);
            break;
        }
    }
    let waited = started.elapsed();
    let at = cut_off.unwrap_or_else(|| panic!("the slow client sent its whole request over {waited:?} without being cut off"));
    assert!(at < request.len(), "cut off only after the whole request ({at} of {} bytes)", request.len());

    assert!(waited < Duration::from_secs(7), "cut off after {waited:?} with a 3 s header timeout");
    healthz_within(&run, Duration::from_secs(2));
}

#[test]
fn a_thousand_idle_connections_do_not_lock_out_healthz() {
    // a long header timeout: the cap, not the timeout, must keep the port open
    let run = idle_run("http-idle", &["--http-header-timeout", "5m", "--http-max-connections", "128"], &[]);
    let baseline = open_fds(run.pid());
    let mut idle = Vec::new();
    for i in 0..1000 {
        idle.push(TcpStream::connect(("127.0.0.1", run.port)).unwrap_or_else(|e| panic!("connection {i}: {e}")));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        slowest = slowest.max(healthz_within(&run, Duration::from_secs(2)));
    }
    let fds = open_fds(run.pid());
    assert!(fds <= baseline + 128 + 8, "{fds} descriptors open (baseline {baseline}): the cap of 128 connections did not hold");
    let (_, status) = run.get("/status");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let shed = status["http"]["connections_shed"].as_u64().unwrap_or_default();
    assert!(shed >= 1000 - 128, "idle connections were not shed to make room: {status}");
    drop(idle);
    println!("slowest /healthz with 1,000 idle connections: {slowest:?}; shed {shed}");
}

#[test]
fn post_reload_is_off_by_default_and_needs_the_bearer_token_when_on() {
    let mut off = idle_run("http-reload-off", &[], &[]);
    let (status, body) = off.post("/reload");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--reload-token-file"), "{body}");
    for path in ["/metrics", "/readyz", "/status"] {
        let (status, body) = off.get(path);
        assert_eq!(status, 200, "GET {path} with reload off: {body}\n{}", off.stderr());
    }

    let _ = off.signal("TERM", Duration::from_secs(20));

    let dir = scratch("http-reload-token");
    let token_file = dir.join("token");
    let token = "file-token-7c9a2e41";
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    for (args, env, token) in [
        (vec!["--reload-token-file", token_file.to_str().unwrap()], vec![], token),
        (vec!["--reload-token-env", "HTTP_RELOAD_TOKEN"], vec![("HTTP_RELOAD_TOKEN", "env-token-55d1")], "env-token-55d1"),
    ] {
        let mut run = idle_run("http-reload-on", &args, &env);
        assert_eq!(run.post("/reload").0, 401, "no token");
        let wrong = http_with(run.port, "POST", "/reload", &[("Authorization", "Bearer not-it")]).unwrap();
        assert_eq!(wrong.0, 401, "a wrong token");
        let basic = http_with(run.port, "POST", "/reload", &[("Authorization", &format!("Basic {token}"))]).unwrap();
        assert_eq!(basic.0, 401, "not a bearer token");
        let right = http_with(run.port, "POST", "/reload", &[("Authorization", &format!("Bearer {token}"))]).unwrap();
        assert_eq!(right, (200, "unchanged\n".to_string()), "the right token");
        let (status, log) = run.signal("TERM", Duration::from_secs(20));
        assert!(status.success(), "{log}");
        assert!(!log.contains(token), "the token was logged:\n{log}");
    }

    // a token that cannot be had is a usage error at start, naming the flag
    let bad = common::dbintel(&["run", "--reload-token-env", "HTTP_UNSET_TOKEN", "pipelines/postgres.pipe"], common::ALL_ENV);
    assert_eq!(common::code(&bad), 2, "{}", common::text(&bad.stderr));
    assert!(common::text(&bad.stderr).contains("--reload-token-env HTTP_UNSET_TOKEN"), "{}", common::text(&bad.stderr));
}

/// Issue 21, finding 7: `/status` and `POST /reload` shared the port of
/// `/metrics` and the probes, and a NetworkPolicy cannot tell paths apart.
/// With `--admin-listen` they answer only there; the first port keeps
/// `/metrics`, `/healthz` and `/readyz` (what scrapes and probes need).
#[test]
fn with_an_admin_listener_status_and_reload_leave_the_metrics_port() {
    let admin = common::otlp::free_port();
    let admin_addr = format!("127.0.0.1:{admin}");
    let run = idle_run(
        "http-admin-listener",
        &["--admin-listen", &admin_addr, "--reload-token-env", common::otlp::RELOAD_TOKEN_ENV],
        &[(common::otlp::RELOAD_TOKEN_ENV, common::otlp::RELOAD_TOKEN)],
    );
    let auth = format!("Bearer {}", common::otlp::RELOAD_TOKEN);
    // the port the NetworkPolicy opens
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(http(run.port, "GET", path).map(|a| a.0), Some(200), "GET {path} on the metrics port:\n{}", run.stderr());
    }
    let status = http(run.port, "GET", "/status").expect("an answer");
    assert_eq!(status.0, 404, "/status is not on the metrics port: {status:?}");
    assert!(status.1.contains("admin listener"), "{status:?}");
    let reload = http_with(run.port, "POST", "/reload", &[("Authorization", &auth)]).expect("an answer");
    assert_eq!(reload.0, 404, "POST /reload is not on the metrics port, token or not: {reload:?}");
    // the admin port
    let status = http(admin, "GET", "/status").expect("the admin port answers");
    assert_eq!(status.0, 200, "{status:?}");
    assert!(serde_json::from_str::<serde_json::Value>(&status.1).is_ok_and(|v| v["targets"].is_array()), "{status:?}");
    let reload = http_with(admin, "POST", "/reload", &[("Authorization", &auth)]).expect("an answer");
    assert_eq!(reload.0, 200, "{reload:?}");
    assert_eq!(http(admin, "POST", "/reload").map(|a| a.0), Some(401), "still behind the token");
    assert_eq!(
        run.metric(r#"dbintel_reloads_total{result="applied"}"#) + run.metric(r#"dbintel_reloads_total{result="refused"}"#),
        0.0,
        "the refused paths on the metrics port reloaded nothing (an unchanged plan counts neither)"
    );
    // `dbintel status` reads the admin port
    let out = common::dbintel(&["status", "--listen", &admin_addr], &[]);
    assert_eq!(common::code(&out), 0, "{}", common::seen(&out));
}

/// Issue 21, finding 8: `process_resident_memory_bytes` is the process's
/// RSS as the kernel reports it in /proc/<pid>/status (VmRSS), at the
/// system's page size.
#[test]
fn the_resident_memory_in_metrics_is_the_kernels_vm_rss() {
    let run = idle_run("http-rss", &[], &[]);
    let closest = (0..5)
        .map(|_| {
            let ours = run.metric("process_resident_memory_bytes") as u64;
            let kernel = rss_kib(run.pid()) * 1024;
            ours.abs_diff(kernel)
        })
        .min()
        .unwrap_or(u64::MAX);
    // a scrape allocates between the two reads: a few pages at most
    assert!(closest <= 256 * 1024, "process_resident_memory_bytes is {closest} bytes away from VmRSS");
}
