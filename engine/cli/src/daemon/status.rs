//! `/status`: what every target, collector and sink is doing and why, as
//! JSON (read by `dbintel status`, by people with curl, by tools).
//!
//! Times are RFC 3339 with their age in seconds beside them, so a reader
//! needs no clock of its own. Messages are the sources' own: scrubbed of
//! secrets, with any SQL the database quoted reduced to `?`.

use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use dbintel_core::status::{CollectorStatus, Failure, TargetSnapshot};
use serde_json::{json, Map, Value};

use super::Shared;

fn time(t: Option<SystemTime>) -> (Value, Value) {
    match t {
        Some(t) => {
            let ago = SystemTime::now().duration_since(t).unwrap_or_default().as_secs_f64();
            (Value::String(dbintel_cluster::lease::rfc3339_micros(t)), json!((ago * 10.0).round() / 10.0))
        }
        None => (Value::Null, Value::Null),
    }
}

fn failure(f: &Option<Failure>) -> Value {
    match f {
        Some(f) => {
            let (at, ago) = time(Some(f.at));
            json!({ "class": f.class, "code": f.code, "message": f.message, "at": at, "seconds_ago": ago })
        }
        None => Value::Null,
    }
}

fn collector(c: &CollectorStatus) -> Value {
    let (last_success, ago) = time(c.last_success);
    json!({
        "state": c.state.as_str(),
        "read_by": c.read_by,
        "last_success": last_success,
        "last_success_seconds_ago": ago,
        "last_error": failure(&c.last_error),
        "scrapes": c.scrapes,
        "errors": c.errors,
    })
}

fn target(t: &TargetSnapshot) -> Value {
    let (since, since_ago) = time(Some(t.since));
    let (last_success, success_ago) = time(t.last_success);
    let collectors: Map<String, Value> = t.collectors.iter().map(|(name, c)| (name.clone(), collector(c))).collect();
    json!({
        "source": t.source,
        "target": t.target,
        "state": t.state.as_str(),
        "since": since,
        "since_seconds_ago": since_ago,
        "connected_once": t.connected_once,
        "last_success": last_success,
        "last_success_seconds_ago": success_ago,
        "last_error": failure(&t.last_error),
        "breaker": t.breaker,
        "lease": t.lease,
        "collectors": collectors,
    })
}

/// An endpoint URL with any `user:password@` taken out.
fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

pub fn render(shared: &Shared) -> String {
    let reasons = shared.not_ready();
    let targets: Vec<Value> = shared.status.snapshot().iter().map(target).collect();
    let exporters: Vec<_> = shared.exporters.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
    let sinks: Vec<Value> = exporters
        .iter()
        .map(|e| {
            let mut sink = e.status().to_json();
            sink["endpoint"] = json!(without_userinfo(&e.config.endpoint));
            sink
        })
        .collect();
    let port = super::http::stats();
    let http = json!({
        "connections_open": port.connections_open.load(Relaxed),
        "connections_shed": port.connections_shed.load(Relaxed),
        "connections_refused": port.connections_refused.load(Relaxed),
        "bodies_refused": port.bodies_refused.load(Relaxed),
        "reloads_unauthorized": port.reloads_unauthorized.load(Relaxed),
    });
    let cluster = shared.cluster.lock().unwrap_or_else(|p| p.into_inner()).clone().map(|(mode, identity, status)| {
        let owned = status.owned.lock().unwrap_or_else(|p| p.into_inner()).clone();
        json!({ "mode": mode.as_str(), "role": mode.role(!owned.is_empty()), "identity": identity, "owned": owned })
    });
    let checks: Vec<Value> = shared
        .checks
        .snapshot()
        .iter()
        .map(|report| {
            let mut entry = report.json();
            let (at, ago) = time(Some(report.checked_at));
            entry["at"] = at;
            entry["seconds_ago"] = ago;
            entry
        })
        .collect();
    let body = json!({
        "ready": reasons.is_empty(),
        "not_ready": reasons,
        "targets": targets,
        "sinks": sinks,
        "http": http,
        "cluster": cluster,
        "checks": checks,
    });
    format!("{body:#}\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoints_lose_their_credentials() {
        assert_eq!(super::without_userinfo("https://u:s3cret@otel:4318/v1"), "https://***@otel:4318/v1");
        assert_eq!(super::without_userinfo("https://otlp.nr-data.net:4317"), "https://otlp.nr-data.net:4317");
    }
}
