//! The HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, `/status` and
//! `POST /reload` — on one port, or, with `--admin-listen`, `/status` and
//! `POST /reload` on a port of their own ([`Exposure`]): a NetworkPolicy
//! cannot tell paths apart, so what scrapes `/metrics` and the kubelet's
//! probes reach one port, and the admin endpoints another (loopback in
//! deploy/, reached with `kubectl port-forward`).
//!
//! The port faces whatever the NetworkPolicy lets in, so it defends
//! itself ([`Limits`]): request headers must arrive within a timeout (a
//! slow client, or an idle connection, is closed), bodies are bounded
//! (a larger one is refused with 413 before it is read), and connections
//! are capped — at the cap, the oldest connection not in the middle of a
//! request is closed to make room, so a probe always gets through.
//! `POST /reload` is off unless a bearer token is configured, and then
//! needs it; the read-only endpoints stay open.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};

use super::{ReloadReply, Shared};
use dbintel_core::secret::Secret;

/// Where the `POST /reload` bearer token comes from.
#[derive(Debug, Clone)]
pub enum ReloadToken {
    /// `POST /reload` answers 403.
    Off,
    /// Read once at start from an environment variable.
    Fixed(Secret),
    /// Read on every request (a mounted Secret can rotate).
    File(PathBuf),
}

/// What the port accepts.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body read (only `POST /reload` reads one).
    pub max_body: u64,
    /// Time for a client to send a request's headers (and, for a body, the
    /// body); an idle connection is closed after it too.
    pub header_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    pub reload: ReloadToken,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_body: 1 << 20, header_timeout: Duration::from_secs(10), max_connections: 256, reload: ReloadToken::Off }
    }
}

/// Which endpoints a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Every endpoint (one port, or the admin port).
    All,
    /// `/metrics`, `/healthz` and `/readyz` only: the admin endpoints are
    /// on their own listener.
    Public,
}

/// Counters of what the port refused (for `/metrics`).
#[derive(Debug, Default)]
pub struct HttpStats {
    pub connections_open: AtomicU64,
    /// Connections closed to make room at the cap.
    pub connections_shed: AtomicU64,
    /// Connections refused because every one was mid-request at the cap.
    pub connections_refused: AtomicU64,
    /// Bodies over the limit (413).
    pub bodies_refused: AtomicU64,
    /// `POST /reload` without the right token (401) or while off (403).
    pub reloads_unauthorized: AtomicU64,
}

static STATS: HttpStats = HttpStats {
    connections_open: AtomicU64::new(0),
    connections_shed: AtomicU64::new(0),
    connections_refused: AtomicU64::new(0),
    bodies_refused: AtomicU64::new(0),
    reloads_unauthorized: AtomicU64::new(0),
};

/// The port's counters.
pub fn stats() -> &'static HttpStats {
    &STATS
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

const TEXT: &str = "text/plain; charset=utf-8";

/// Equal without leaking where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `None` when the request may reload; otherwise the answer.
fn refuse_reload(limits: &Limits, request: &Request<hyper::body::Incoming>) -> Option<Response<Full<Bytes>>> {
    let expected = match &limits.reload {
        ReloadToken::Off => {
            STATS.reloads_unauthorized.fetch_add(1, Relaxed);
            return Some(reply(
                StatusCode::FORBIDDEN,
                TEXT,
                "POST /reload is off; start `dbintel run` with --reload-token-file or --reload-token-env to allow it (SIGHUP and file changes reload too)\n",
            ));
        }
        ReloadToken::Fixed(token) => token.expose().trim().to_string(),
        ReloadToken::File(path) => match std::fs::read_to_string(path) {
            Ok(text) if !text.trim().is_empty() => text.trim().to_string(),
            Ok(_) | Err(_) => {
                tracing::error!(path = %path.display(), "POST /reload: the token file cannot be read or is empty; refusing");
                return Some(reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, "the reload token cannot be read\n"));
            }
        },
    };
    let given = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    if given.is_some_and(|g| same(g.as_bytes(), expected.as_bytes())) {
        return None;
    }
    STATS.reloads_unauthorized.fetch_add(1, Relaxed);
    let mut response = reply(StatusCode::UNAUTHORIZED, TEXT, "POST /reload needs `Authorization: Bearer <token>`\n");
    response.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer"));
    Some(response)
}

fn declared_length(request: &Request<hyper::body::Incoming>) -> Option<u64> {
    request.headers().get(hyper::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

fn too_large(limits: &Limits) -> Response<Full<Bytes>> {
    STATS.bodies_refused.fetch_add(1, Relaxed);
    let mut response = reply(StatusCode::PAYLOAD_TOO_LARGE, TEXT, format!("request bodies are limited to {} bytes\n", limits.max_body));
    // the rest of the body is not read: the connection cannot be reused
    response.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
    response
}

/// Why `/readyz` says no, if it does.
async fn handle(
    shared: Arc<Shared>,
    limits: Arc<Limits>,
    exposure: Exposure,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if declared_length(&request).is_some_and(|n| n > limits.max_body) {
        return Ok(too_large(&limits));
    }
    if exposure == Exposure::Public && matches!(request.uri().path(), "/status" | "/reload") {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found here: /status and POST /reload are on the admin listener (--admin-listen)\n",
        ));
    }
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => reply(StatusCode::OK, super::metrics::CONTENT_TYPE, super::metrics::render(&shared)),
        (&Method::GET, "/healthz") => {
            if shared.healthy() {
                reply(StatusCode::OK, TEXT, "ok\n")
            } else {
                reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, "the control loop is not responding\n")
            }
        }
        (&Method::GET, "/readyz") => {
            let reasons = shared.not_ready();
            if reasons.is_empty() {
                reply(StatusCode::OK, TEXT, "ready\n")
            } else {
                reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("not ready:\n{}\n", reasons.join("\n")))
            }
        }
        (&Method::GET, "/status") => reply(StatusCode::OK, "application/json", super::status::render(&shared)),
        (&Method::POST, "/reload") => {
            if let Some(refusal) = refuse_reload(&limits, &request) {
                return Ok(refusal);
            }
            // the body is ignored; read it (bounded, in time too) so the
            // connection stays usable
            let body = Limited::new(request.into_body(), limits.max_body as usize);
            match tokio::time::timeout(limits.header_timeout, body.collect()).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Ok(too_large(&limits)),
                Err(_) => return Ok(reply(StatusCode::REQUEST_TIMEOUT, TEXT, "the request body did not arrive in time\n")),
            }
            match super::request_reload(&shared).await {
                ReloadReply::Applied(summary) => reply(StatusCode::OK, TEXT, format!("reloaded: {summary}\n")),
                ReloadReply::Unchanged => reply(StatusCode::OK, TEXT, "unchanged\n"),
                ReloadReply::Refused(diagnostics) => {
                    reply(StatusCode::UNPROCESSABLE_ENTITY, TEXT, format!("refused; the running plan is unchanged\n{diagnostics}"))
                }
                ReloadReply::ShuttingDown => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, "shutting down\n"),
            }
        }
        (_, "/metrics" | "/healthz" | "/readyz" | "/status" | "/reload") => {
            reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "method not allowed\n")
        }
        _ if exposure == Exposure::Public => reply(StatusCode::NOT_FOUND, TEXT, "not found: try /metrics, /healthz or /readyz\n"),
        _ => reply(StatusCode::NOT_FOUND, TEXT, "not found: try /metrics, /healthz, /readyz, /status or POST /reload\n"),
    };
    Ok(response)
}

/// One open connection, as the cap sees it.
struct Tracked {
    id: u64,
    /// Serving a request (not sheddable).
    busy: Arc<AtomicBool>,
    shed: Arc<tokio::sync::Notify>,
}

/// The open connections, oldest first (mini-redis bounds its connections
/// with a semaphore; shedding the oldest idle one instead keeps the port
/// answering when idle connections pile up).
#[derive(Default)]
struct Connections {
    open: Mutex<Vec<Tracked>>,
    next_id: AtomicU64,
}

impl Connections {
    /// Makes room for one more: false when every connection is busy.
    fn admit(&self, max: usize) -> Option<(u64, Arc<AtomicBool>, Arc<tokio::sync::Notify>)> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= max {
            match open.iter().position(|t| !t.busy.load(Relaxed)) {
                Some(i) => {
                    let oldest = open.remove(i);
                    oldest.shed.notify_one();
                    STATS.connections_shed.fetch_add(1, Relaxed);
                }
                None => return None,
            }
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        let (busy, shed) = (Arc::new(AtomicBool::new(false)), Arc::new(tokio::sync::Notify::new()));
        open.push(Tracked { id, busy: busy.clone(), shed: shed.clone() });
        STATS.connections_open.store(open.len() as u64, Relaxed);
        Some((id, busy, shed))
    }

    fn close(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|t| t.id != id);
        STATS.connections_open.store(open.len() as u64, Relaxed);
    }
}

/// Serves `exposure`'s endpoints until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, limits: Limits, exposure: Exposure) {
    let limits = Arc::new(limits);
    let connections = Arc::new(Connections::default());
    let mut refused_logged: Option<Instant> = None;
    loop {
        let (stream, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "http: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some((id, busy, shed)) = connections.admit(limits.max_connections) else {
            STATS.connections_refused.fetch_add(1, Relaxed);
            if refused_logged.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                tracing::warn!(max = limits.max_connections, "http: every connection is busy; refusing new ones");
                refused_logged = Some(Instant::now());
            }
            drop(stream);
            continue;
        };
        let (shared, limits, connections) = (shared.clone(), limits.clone(), connections.clone());
        tokio::spawn(async move {
            let service = {
                let (shared, limits, busy) = (shared.clone(), limits.clone(), busy.clone());
                hyper::service::service_fn(move |req| {
                    let (shared, limits, busy) = (shared.clone(), limits.clone(), busy.clone());
                    async move {
                        busy.store(true, Relaxed);
                        let response = handle(shared, limits, exposure, req).await;
                        busy.store(false, Relaxed);
                        response
                    }
                })
            };
            let io = hyper_util::rt::TokioIo::new(stream);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(64 << 10)
                .serve_connection(io, service);
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = shed.notified() => {
                    conn.as_mut().graceful_shutdown();
                    tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await.unwrap_or(Ok(()))
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
            connections.close(id);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3cre"));
        assert!(!same(b"s3cret", b"s3creT"));
        assert!(!same(b"", b"x"));
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room_and_busy_ones_are_kept() {
        let c = Connections::default();
        let (a, a_busy, _) = c.admit(2).unwrap();
        let (b, _, b_shed) = c.admit(2).unwrap();
        a_busy.store(true, Relaxed);
        let notified = b_shed.notified();
        tokio::pin!(notified);
        let (third, third_busy, _) = c.admit(2).expect("the idle one makes room");
        assert!(futures_ready(notified), "the idle connection is told to close");
        let ids: Vec<u64> = c.open.lock().unwrap().iter().map(|t| t.id).collect();
        assert_eq!(ids, [a, third]);
        third_busy.store(true, Relaxed);
        assert!(c.admit(2).is_none(), "every connection busy: refuse rather than cut a request short");
        let _ = b;
    }

    fn futures_ready(f: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>) -> bool {
        use std::future::Future;
        let waker = std::task::Waker::noop();
        f.poll(&mut std::task::Context::from_waker(waker)).is_ready()
    }
}
