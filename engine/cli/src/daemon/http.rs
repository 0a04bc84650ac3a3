//! The one HTTP port: `/metrics`, `/healthz`, `/readyz`, `/status`,
//! `POST /reload`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};

use super::{ReloadReply, Shared};

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

async fn handle(shared: Arc<Shared>, request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => reply(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", super::metrics::render(&shared)),
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
            // the body is ignored; read it so the connection stays usable
            let _ = request.into_body().collect().await;
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
        _ => reply(StatusCode::NOT_FOUND, TEXT, "not found: try /metrics, /healthz, /readyz, /status or POST /reload\n"),
    };
    Ok(response)
}

/// Serves until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "http: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
        });
    }
}
