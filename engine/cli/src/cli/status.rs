//! `dbintel status`: a running service's `/status`, as a table.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where `dbintel run` serves /status (its --admin-listen if it has
    /// one, else its --listen)
    #[arg(long, default_value = "127.0.0.1:9464")]
    listen: SocketAddr,
    /// Print the JSON as served instead of a table
    #[arg(long)]
    json: bool,
}

/// GET /status over plain HTTP/1.1 (the port is local or in-cluster).
fn fetch(addr: SocketAddr) -> Result<String, String> {
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("cannot reach {addr}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    write!(stream, "GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").map_err(|e| format!("{addr}: {e}"))?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(|e| format!("{addr}: {e}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(|| format!("{addr}: not an HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{addr}: {}", head.lines().next().unwrap_or("no status line")));
    }
    Ok(body.to_string())
}

fn ago(v: &Value) -> String {
    match v.as_f64() {
        Some(s) if s < 120.0 => format!("{s:.0}s ago"),
        Some(s) if s < 7200.0 => format!("{:.0}m ago", s / 60.0),
        Some(s) => format!("{:.1}h ago", s / 3600.0),
        None => "-".into(),
    }
}

fn error_text(v: &Value) -> String {
    if v.is_null() {
        return String::new();
    }
    let text =
        format!("{} {}: {}", v["class"].as_str().unwrap_or(""), v["code"].as_str().unwrap_or(""), v["message"].as_str().unwrap_or(""));
    let text: String = text.chars().take(100).collect();
    format!("{text} ({})", ago(&v["seconds_ago"]))
}

/// The table people read.
pub fn table(status: &Value) -> String {
    let mut out = String::new();
    let ready = status["ready"].as_bool().unwrap_or(false);
    out.push_str(if ready { "ready\n" } else { "NOT READY\n" });
    for reason in status["not_ready"].as_array().into_iter().flatten() {
        out.push_str(&format!("  {}\n", reason.as_str().unwrap_or("")));
    }
    out.push_str(&format!(
        "\n{:<28} {:<13} {:<10} {:<13} {:<10} {:<6} {}\n",
        "TARGET / COLLECTOR", "STATE", "SINCE", "LAST SUCCESS", "BREAKER", "LEASE", "LAST ERROR"
    ));
    for t in status["targets"].as_array().into_iter().flatten() {
        let name = match (t["source"].as_str(), t["target"].as_str()) {
            (Some(s), Some(t)) if s == t => s.to_string(),
            (s, t) => format!("{}/{}", s.unwrap_or("?"), t.unwrap_or("?")),
        };
        let lease = match t["lease"].as_bool() {
            Some(true) => "held",
            Some(false) => "other",
            None => "-",
        };
        out.push_str(&format!(
            "{:<28} {:<13} {:<10} {:<13} {:<10} {:<6} {}\n",
            name,
            t["state"].as_str().unwrap_or("?"),
            ago(&t["since_seconds_ago"]).trim_end_matches(" ago"),
            ago(&t["last_success_seconds_ago"]),
            t["breaker"].as_str().unwrap_or("?"),
            lease,
            error_text(&t["last_error"])
        ));
        for (collector, c) in t["collectors"].as_object().into_iter().flatten() {
            out.push_str(&format!(
                "  {:<26} {:<13} {:<10} {:<13} {:<10} {:<6} {}\n",
                collector,
                c["state"].as_str().unwrap_or("?"),
                "",
                ago(&c["last_success_seconds_ago"]),
                "",
                "",
                match c["read_by"].as_str() {
                    Some(by) => format!("read by {by}"),
                    None => error_text(&c["last_error"]),
                }
            ));
        }
    }
    out.push_str(&checks_table(status));
    let sinks = status["sinks"].as_array().cloned().unwrap_or_default();
    if !sinks.is_empty() {
        out.push_str(&format!(
            "\n{:<28} {:>14} {:>12} {:<24} {:<24} {}\n",
            "SINK", "QUEUED BYTES", "QUEUED ITEMS", "LAST OUTCOME", "DROPPED", "STALLED"
        ));
        for s in &sinks {
            // items that will never arrive, by cause (`refused=10 expired=3`)
            let dropped: Vec<String> = s["dropped"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
                .map(|(cause, n)| format!("{cause}={n}"))
                .collect();
            out.push_str(&format!(
                "{:<28} {:>14} {:>12} {:<24} {:<24} {}\n",
                s["sink"].as_str().unwrap_or("?"),
                s["queued"]["bytes"],
                s["queued"]["items"],
                format!("{} ({})", s["last_outcome"].as_str().unwrap_or("-"), ago(&s["last_outcome_seconds_ago"])),
                if dropped.is_empty() { "-".to_string() } else { dropped.join(" ") },
                s["stalled"].as_str().unwrap_or("")
            ));
        }
    }
    if let Some(cluster) = status["cluster"].as_object() {
        out.push_str(&format!(
            "\ncluster: mode {}, role {}, identity {}\n",
            cluster.get("mode").and_then(Value::as_str).unwrap_or("?"),
            cluster.get("role").and_then(Value::as_str).unwrap_or("?"),
            cluster.get("identity").and_then(Value::as_str).unwrap_or("?")
        ));
    }
    out
}

/// The setup checks' problems (`dbintel doctor` has the fixes).
fn checks_table(status: &Value) -> String {
    let checks = status["checks"].as_array().cloned().unwrap_or_default();
    if checks.is_empty() {
        return String::new();
    }
    let mut out = format!("\n{:<28} {:<6} {:<34} {}\n", "SETUP CHECKS", "STATUS", "CHECK", "SEEN");
    for t in &checks {
        let name = match (t["source"].as_str(), t["target"].as_str()) {
            (Some(s), Some(t)) if s == t => s.to_string(),
            (s, t) => format!("{}/{}", s.unwrap_or("?"), t.unwrap_or("?")),
        };
        let problems: Vec<&Value> =
            t["checks"].as_array().into_iter().flatten().filter(|c| matches!(c["status"].as_str(), Some("warn" | "fail"))).collect();
        if problems.is_empty() {
            out.push_str(&format!("{:<28} {:<6} all {} passed ({})\n", name, "ok", t["summary"]["ok"], ago(&t["seconds_ago"])));
        }
        for c in problems {
            let seen: String = c["observed"].as_str().unwrap_or("").chars().take(80).collect();
            out.push_str(&format!(
                "{:<28} {:<6} {:<34} {}\n",
                name,
                c["status"].as_str().unwrap_or("?"),
                c["id"].as_str().unwrap_or("?"),
                seen
            ));
        }
    }
    out
}

pub fn run(args: Args) -> ExitCode {
    let body = match fetch(args.listen) {
        Ok(body) => body,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let status: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {}: /status is not JSON: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    if args.json {
        print!("{body}");
    } else {
        print!("{}", table(&status));
    }
    if status["ready"].as_bool().unwrap_or(false) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
