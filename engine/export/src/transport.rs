//! Sending one encoded request: gRPC (tonic, the request's bytes passed
//! through a codec that does not re-encode them) or HTTP/protobuf
//! (reqwest, the body sent as it was compressed when packed). Each answer
//! is classified by its status code: accepted (maybe partly), throttled,
//! retryable, transient (bounded retries), too large (split), or
//! permanent.
//!
//! New Relic's edge, as its documents say: it throttles HTTP with 429 and
//! `Retry-After`, and gRPC with `RESOURCE_EXHAUSTED` *without* RetryInfo
//! (which the OTLP spec would call permanent: for the `newrelic` preset it
//! is throttling); it refuses a request over 1 MB with 413; its
//! networking vendor turns transient faults into HTTP 500/530, which a
//! gRPC client sees as `UNKNOWN`, and into `INTERNAL` — retried a bounded
//! number of times; a success has an empty body.
//!
//! The license key goes only where it was sent: redirects are not
//! followed (reqwest would follow ten, custom headers and all, to any
//! host), and a response body is read up to [`MAX_RESPONSE_BYTES`] at
//! most.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::compression::{compress, Negotiated, Refusal};
use super::config::{Compression, ExportConfig, Protocol};
use super::encode::{Encoded, Signal};

/// The most of a response body read (an OTLP response is a few bytes;
/// New Relic's is empty).
pub const MAX_RESPONSE_BYTES: usize = 16 << 10;

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Taken; `rejected` items refused inside an otherwise good request
    /// (OTLP partial success).
    Accepted { rejected: i64, message: String },
    /// The receiver is throttling: wait (as long as it asks, if it says)
    /// and send again.
    Throttled { after: Option<Duration>, cause: String },
    /// Worth sending again until the give-up time: the network, a
    /// gateway, an unavailable server.
    Retry { after: Option<Duration>, cause: String },
    /// A fault the receiver's edge reports for a passing problem (HTTP
    /// 500/530, gRPC UNKNOWN/INTERNAL from New Relic): sent again a bounded
    /// number of times.
    Transient { cause: String },
    /// The request is larger than the receiver takes: split it and send
    /// the halves.
    TooLarge { cause: String },
    /// Refused for good; `auth` when the credentials were refused.
    Permanent { cause: String, auth: bool },
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot read `{path}`: {error}")]
    File { path: String, error: std::io::Error },
    #[error("invalid endpoint `{endpoint}`: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("header `{0}` is not a valid HTTP header")]
    Header(String),
}

pub enum Transport {
    Grpc {
        /// Read New Relic's statuses as New Relic means them.
        newrelic: bool,
        endpoint: Box<Endpoint>,
        /// Replaced after a refused encoding: a receiver that could not
        /// parse a header (grpcio and `grpc-encoding: zstd`) may not read
        /// the connection's later headers right either.
        channel: std::sync::Mutex<Channel>,
        headers: tonic::metadata::MetadataMap,
        compression: std::sync::Arc<Negotiated>,
        timeout: Duration,
    },
    Http {
        newrelic: bool,
        client: reqwest::Client,
        metrics_url: String,
        logs_url: String,
        compression: std::sync::Arc<Negotiated>,
    },
}

/// One attempt's answer, with what it says about compression.
struct Attempt {
    outcome: Outcome,
    /// The receiver's `grpc-accept-encoding` (or `Accept-Encoding`).
    accepts: Option<String>,
    refusal: Option<RefusalOwned>,
}

#[derive(Debug)]
enum RefusalOwned {
    Grpc { code: tonic::Code, message: String },
    Http { status: u16 },
}

impl RefusalOwned {
    fn as_ref(&self) -> Refusal<'_> {
        match self {
            RefusalOwned::Grpc { code, message } => Refusal::Grpc { code: *code, message },
            RefusalOwned::Http { status } => Refusal::Http { status: *status },
        }
    }
}

impl Attempt {
    fn plain(outcome: Outcome) -> Attempt {
        Attempt { outcome, accepts: None, refusal: None }
    }
}

/// An error with its causes (tonic's own message is only "transport
/// error").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, TransportError> {
    std::fs::read(path).map_err(|error| TransportError::File { path: path.display().to_string(), error })
}

impl Transport {
    pub fn new(config: &ExportConfig) -> Result<Transport, TransportError> {
        Transport::with(config, std::sync::Arc::new(Negotiated::new(config.compression)))
    }

    /// A transport sharing `compression` with the sink's packer (what it
    /// steps down to, the packer compresses with).
    pub fn with(config: &ExportConfig, compression: std::sync::Arc<Negotiated>) -> Result<Transport, TransportError> {
        let ca = config.ca_file.as_deref().map(read).transpose()?;
        let identity = match (&config.client_cert, &config.client_key) {
            (Some(cert), Some(key)) => Some((read(cert)?, key.expose().as_bytes().to_vec())),
            _ => None,
        };
        match config.protocol {
            Protocol::Grpc => {
                let bad = |reason: String| TransportError::Endpoint { endpoint: config.endpoint.clone(), reason };
                let mut endpoint = Endpoint::from_shared(config.endpoint.clone())
                    .map_err(|e| bad(e.to_string()))?
                    .timeout(config.timeout)
                    .connect_timeout(config.timeout.min(Duration::from_secs(10)))
                    .tcp_nodelay(true);
                if config.endpoint.starts_with("https://") {
                    let mut tls = ClientTlsConfig::new().with_native_roots();
                    if let Some(ca) = ca {
                        tls = tls.ca_certificate(Certificate::from_pem(ca));
                    }
                    if let Some((cert, key)) = identity {
                        tls = tls.identity(Identity::from_pem(cert, key));
                    }
                    endpoint = endpoint.tls_config(tls).map_err(|e| TransportError::Tls(chain(&e)))?;
                }
                let mut headers = tonic::metadata::MetadataMap::new();
                for h in &config.headers {
                    let key =
                        tonic::metadata::MetadataKey::from_bytes(h.name.as_bytes()).map_err(|_| TransportError::Header(h.name.clone()))?;
                    let value = h.value.expose().parse().map_err(|_| TransportError::Header(h.name.clone()))?;
                    headers.insert(key, value);
                }
                // lazy: an endpoint that is down at start is retried like
                // one that goes down later
                Ok(Transport::Grpc {
                    newrelic: config.newrelic,
                    channel: std::sync::Mutex::new(endpoint.connect_lazy()),
                    endpoint: Box::new(endpoint),
                    headers,
                    compression,
                    timeout: config.timeout,
                })
            }
            Protocol::Http => {
                let mut headers = reqwest::header::HeaderMap::new();
                for h in &config.headers {
                    let name =
                        reqwest::header::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| TransportError::Header(h.name.clone()))?;
                    let mut value =
                        reqwest::header::HeaderValue::from_str(h.value.expose()).map_err(|_| TransportError::Header(h.name.clone()))?;
                    value.set_sensitive(h.sensitive);
                    headers.insert(name, value);
                }
                let mut builder = reqwest::Client::builder()
                    .default_headers(headers)
                    .timeout(config.timeout)
                    .connect_timeout(config.timeout.min(Duration::from_secs(10)))
                    .user_agent(concat!("dbintel/", env!("CARGO_PKG_VERSION")))
                    // a redirect would carry the api-key header elsewhere
                    .redirect(reqwest::redirect::Policy::none())
                    .tls_built_in_native_certs(true);
                if let Some(ca) = ca {
                    let cert = reqwest::Certificate::from_pem(&ca).map_err(|e| TransportError::Tls(e.to_string()))?;
                    builder = builder.add_root_certificate(cert);
                }
                if let Some((mut cert, key)) = identity {
                    cert.push(b'\n');
                    cert.extend_from_slice(&key);
                    builder = builder.identity(reqwest::Identity::from_pem(&cert).map_err(|e| TransportError::Tls(e.to_string()))?);
                }
                let client = builder.build().map_err(|e| TransportError::Tls(e.to_string()))?;
                Ok(Transport::Http {
                    newrelic: config.newrelic,
                    client,
                    metrics_url: config.metrics_url.clone(),
                    logs_url: config.logs_url.clone(),
                    compression,
                })
            }
        }
    }

    async fn send_with(&self, item: &Encoded, compression: Compression) -> Attempt {
        match self {
            Transport::Grpc { channel, headers, timeout, newrelic, .. } => {
                let channel = channel.lock().unwrap_or_else(|p| p.into_inner()).clone();
                grpc(channel, headers, compression, *timeout, item, *newrelic).await
            }
            Transport::Http { client, metrics_url, logs_url, newrelic, .. } => {
                let url = match item.signal {
                    Signal::Metrics => metrics_url,
                    Signal::Logs => logs_url,
                };
                // packed with this compression: sent as it is
                let body = if item.encoding == compression {
                    item.payload.clone()
                } else {
                    match item.raw().and_then(|raw| compress(compression, &raw)) {
                        Ok(b) => b.into(),
                        Err(e) => {
                            return Attempt::plain(Outcome::Permanent { cause: format!("recompressing the request: {e}"), auth: false })
                        }
                    }
                };
                http(client, url, compression, body, *newrelic).await
            }
        }
    }

    /// What compression the receiver takes, as negotiated so far.
    pub fn negotiated(&self) -> &Negotiated {
        let (Transport::Grpc { compression, .. } | Transport::Http { compression, .. }) = self;
        compression
    }

    /// The compression requests go out with now.
    pub fn compression(&self) -> Compression {
        self.negotiated().current()
    }

    /// Sends one request. A refusal of our compression steps down and
    /// sends again at once (see [`crate::compression`]); `steps` counts
    /// those.
    pub async fn send(&self, item: &Encoded, steps: &std::sync::atomic::AtomicU64) -> Outcome {
        let negotiated = self.negotiated();
        loop {
            let compression = negotiated.current();
            let attempt = self.send_with(item, compression).await;
            if let Some(accepts) = &attempt.accepts {
                negotiated.advertised(accepts);
            }
            if let Outcome::Accepted { .. } = attempt.outcome {
                negotiated.accepted(compression);
            }
            // a refusal of our encoding may come as a permanent error or,
            // from New Relic, as INTERNAL (read as transient)
            if let Outcome::Permanent { cause, .. } | Outcome::Transient { cause } = &attempt.outcome {
                let about_encoding = attempt.refusal.as_ref().is_some_and(|r| negotiated.is_about_encoding(compression, r.as_ref()))
                    // the receiver named what it takes, and it is not what
                    // we sent
                    || (attempt.accepts.is_some() && negotiated.current() != compression);
                if about_encoding && compression != Compression::None {
                    negotiated.refused(compression, cause);
                    if let Transport::Grpc { endpoint, channel, .. } = self {
                        *channel.lock().unwrap_or_else(|p| p.into_inner()) = endpoint.connect_lazy();
                    }
                    steps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
            }
            return attempt.outcome;
        }
    }
}

fn partial(response: &ExportMetricsServiceResponse) -> Outcome {
    match &response.partial_success {
        Some(p) => Outcome::Accepted { rejected: p.rejected_data_points, message: p.error_message.clone() },
        None => Outcome::Accepted { rejected: 0, message: String::new() },
    }
}

// google.rpc.Status and RetryInfo, only the fields read here.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// The delay a gRPC status asks for in a `google.rpc.RetryInfo` detail.
pub fn retry_info(status: &tonic::Status) -> Option<Duration> {
    let details = RpcStatus::decode(status.details()).ok()?;
    details.details.iter().filter(|a| a.type_url.ends_with("google.rpc.RetryInfo")).find_map(|a| {
        let delay = RetryInfo::decode(a.value.as_slice()).ok()?.retry_delay?;
        Some(Duration::from_secs(delay.seconds.max(0) as u64) + Duration::from_nanos(delay.nanos.max(0) as u64))
    })
}

/// What a gRPC status means, for New Relic (`newrelic`) or the OTLP spec.
fn grpc_outcome(status: &tonic::Status, newrelic: bool) -> Outcome {
    use tonic::Code;
    let cause = format!("gRPC {:?}: {}", status.code(), status.message());
    let after = retry_info(status);
    match status.code() {
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded | Code::Aborted | Code::OutOfRange | Code::DataLoss => {
            Outcome::Retry { after, cause }
        }
        // a server's own message size limit: RESOURCE_EXHAUSTED is the only
        // code gRPC has for it, so its text is the one thing that tells it
        // from throttling
        Code::ResourceExhausted if too_large(status.message()) => Outcome::TooLarge { cause },
        Code::ResourceExhausted if after.is_some() => Outcome::Throttled { after, cause },
        // New Relic throttles without RetryInfo (the spec would drop it)
        Code::ResourceExhausted if newrelic => Outcome::Throttled { after: None, cause },
        // New Relic's edge: HTTP 500/530 from its networking vendor
        // (UNKNOWN) and INTERNAL are passing faults
        Code::Unknown | Code::Internal if newrelic => Outcome::Transient { cause },
        Code::Unknown if status.message().contains("transport") || status.message().contains("connection") => {
            Outcome::Retry { after, cause }
        }
        Code::Unauthenticated | Code::PermissionDenied => Outcome::Permanent { cause, auth: true },
        _ => Outcome::Permanent { cause, auth: false },
    }
}

/// A gRPC server's "message larger than max" (grpc-go, grpc C core and
/// tonic word it alike).
fn too_large(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("larger than max") || m.contains("message too large") || m.contains("message length too large")
}

/// The gRPC status of a response: its `grpc-status` (in the trailers, or
/// the headers of a trailers-only response), else what the HTTP status
/// says (the gRPC HTTP/2 mapping, as tonic reads it). Read here rather
/// than by tonic's client, which panics on a `grpc-status-details-bin`
/// that is not base64: a peer's garbage is an error, never a panic.
fn grpc_status(trailers: Option<&HeaderMap>, headers: &HeaderMap, http: tonic::codegen::http::StatusCode) -> Result<(), tonic::Status> {
    use base64::Engine;
    use tonic::Code;
    let carrying = trailers.filter(|t| t.contains_key("grpc-status")).or(Some(headers).filter(|h| h.contains_key("grpc-status")));
    let Some(h) = carrying else {
        let code = match http.as_u16() {
            200 => return Err(tonic::Status::unknown("the response carries no grpc-status")),
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        };
        return Err(tonic::Status::new(code, format!("unexpected HTTP status code received from server: {http}")));
    };
    let code = h.get("grpc-status").map_or(Code::Unknown, |v| Code::from_bytes(v.as_bytes()));
    if code == Code::Ok {
        return Ok(());
    }
    let message = h.get("grpc-message").map(|v| crate::config::percent_decode(&String::from_utf8_lossy(v.as_bytes()))).unwrap_or_default();
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let details = h.get("grpc-status-details-bin").and_then(|v| lenient.decode(v.as_bytes()).ok()).unwrap_or_default();
    Err(tonic::Status::with_details(code, message, details.into()))
}

type HeaderMap = tonic::codegen::http::HeaderMap;

/// One unary OTLP export over gRPC, the message sent as it was packed and
/// compressed (tonic's client would decompress nothing but compress
/// everything again): the 5-byte gRPC frame, `grpc-encoding`, our
/// headers; the answer read with its size capped.
async fn grpc(
    mut channel: Channel,
    headers: &tonic::metadata::MetadataMap,
    compression: Compression,
    timeout: Duration,
    item: &Encoded,
    newrelic: bool,
) -> Attempt {
    use bytes::BufMut;
    use http_body_util::BodyExt;
    use tonic::codegen::{http, Service};
    let message = if item.encoding == compression {
        item.payload.clone()
    } else {
        match item.raw().and_then(|raw| compress(compression, &raw)) {
            Ok(b) => b.into(),
            Err(e) => return Attempt::plain(Outcome::Permanent { cause: format!("recompressing the request: {e}"), auth: false }),
        }
    };
    let mut framed = bytes::BytesMut::with_capacity(5 + message.len());
    framed.put_u8(u8::from(compression != Compression::None));
    framed.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    framed.extend_from_slice(&message);
    let path = match item.signal {
        Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    };
    let mut builder = http::Request::builder()
        .method(http::Method::POST)
        .uri(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", concat!("dbintel/", env!("CARGO_PKG_VERSION")))
        .header("grpc-timeout", format!("{}m", timeout.as_millis().clamp(1, 99_999_999)));
    if compression != Compression::None {
        builder = builder.header("grpc-encoding", super::compression::name(compression));
    }
    let mut request = match builder.body(tonic::body::Body::new(http_body_util::Full::new(framed.freeze()))) {
        Ok(r) => r,
        Err(e) => return Attempt::plain(Outcome::Permanent { cause: format!("building the request: {e}"), auth: false }),
    };
    request.headers_mut().extend(headers.clone().into_headers());
    if let Err(e) = std::future::poll_fn(|cx| channel.poll_ready(cx)).await {
        return Attempt::plain(Outcome::Retry { after: None, cause: format!("connect: {}", chain(&e)) });
    }
    let answer = tokio::time::timeout(timeout, async {
        let response = channel.call(request).await.map_err(|e| chain(&e))?;
        let (parts, body) = response.into_parts();
        let collected =
            http_body_util::Limited::new(body, MAX_RESPONSE_BYTES).collect().await.map_err(|e| format!("reading the response: {e}"))?;
        Ok::<_, String>((parts, collected.trailers().cloned(), collected.to_bytes()))
    })
    .await;
    let (parts, trailers, data) = match answer {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return Attempt::plain(Outcome::Retry { after: None, cause: format!("gRPC: {e}") }),
        Err(_) => return Attempt::plain(Outcome::Retry { after: None, cause: format!("gRPC: no answer within {timeout:?}") }),
    };
    let accepts = parts.headers.get("grpc-accept-encoding").and_then(|v| v.to_str().ok()).map(str::to_string);
    match grpc_status(trailers.as_ref(), &parts.headers, parts.status) {
        Ok(()) => {
            // an uncompressed response message after its 5-byte frame (we
            // ask for no response compression); New Relic's is empty
            let outcome = match data.get(5..).filter(|_| data.first() == Some(&0)) {
                Some(msg) => ExportMetricsServiceResponse::decode(msg)
                    .map(|r| partial(&r))
                    .unwrap_or(Outcome::Accepted { rejected: 0, message: String::new() }),
                None => Outcome::Accepted { rejected: 0, message: String::new() },
            };
            Attempt { accepts, outcome, refusal: None }
        }
        Err(status) => {
            let outcome = grpc_outcome(&status, newrelic);
            let refusal = RefusalOwned::Grpc { code: status.code(), message: status.message().to_string() };
            Attempt { accepts, outcome, refusal: Some(refusal) }
        }
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// What an HTTP status means. `newrelic` changes nothing today (New
/// Relic's HTTP statuses say what they mean), but keeps the two readings
/// side by side.
fn http_outcome(status: u16, after: Option<Duration>, cause: String, _newrelic: bool) -> Outcome {
    match status {
        429 => Outcome::Throttled { after, cause },
        413 => Outcome::TooLarge { cause },
        408 | 502 | 503 | 504 => Outcome::Retry { after, cause },
        // New Relic's networking vendor answers passing faults with these
        500 | 530 => Outcome::Transient { cause },
        401 | 403 => Outcome::Permanent { cause, auth: true },
        300..=399 => Outcome::Permanent {
            cause: format!("{cause} (a redirect is not followed: the credentials go only to the configured endpoint)"),
            auth: false,
        },
        _ => Outcome::Permanent { cause, auth: false },
    }
}

/// The first [`MAX_RESPONSE_BYTES`] of a response body; the rest is never
/// read.
async fn capped_body(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE_BYTES - body.len())]),
            _ => break,
        }
    }
    body
}

async fn http(client: &reqwest::Client, url: &str, compression: Compression, body: bytes::Bytes, newrelic: bool) -> Attempt {
    let mut request = client.post(url).header(reqwest::header::CONTENT_TYPE, "application/x-protobuf").body(body);
    match compression {
        Compression::Gzip => request = request.header(reqwest::header::CONTENT_ENCODING, "gzip"),
        Compression::Zstd => request = request.header(reqwest::header::CONTENT_ENCODING, "zstd"),
        Compression::None => {}
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Attempt::plain(Outcome::Retry { after: None, cause: format!("HTTP: {}", without_url(&e)) }),
    };
    let status = response.status();
    let after = retry_after(response.headers());
    // RFC 7694: a 415 may say which content codings the server takes
    let accepts = (status.as_u16() == 415)
        .then(|| response.headers().get(reqwest::header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).map(str::to_string))
        .flatten();
    let body = capped_body(response).await;
    if status.is_success() {
        let outcome = match ExportMetricsServiceResponse::decode(body.as_ref()) {
            Ok(r) => partial(&r),
            // a 2xx whose body is not a response still means accepted
            Err(_) => {
                tracing::debug!(%status, "the receiver's 2xx body is not an OTLP export response");
                Outcome::Accepted { rejected: 0, message: String::new() }
            }
        };
        return Attempt::plain(outcome);
    }
    let detail = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string();
    let cause = if detail.is_empty() || detail.contains('\0') { format!("HTTP {status}") } else { format!("HTTP {status}: {detail}") };
    let outcome = http_outcome(status.as_u16(), after, cause, newrelic);
    Attempt { outcome, accepts, refusal: Some(RefusalOwned::Http { status: status.as_u16() }) }
}

/// reqwest's errors name the URL; ours may carry a key in its query.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = String::from(if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "reading the response"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        h.insert(reqwest::header::RETRY_AFTER, soon.parse().unwrap());
        let wait = retry_after(&h).expect("an HTTP date");
        assert!(wait > Duration::from_secs(115) && wait <= Duration::from_secs(120), "{wait:?}");
        h.insert(reqwest::header::RETRY_AFTER, "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past: now");
        h.insert(reqwest::header::RETRY_AFTER, "yesterday".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn new_relics_grpc_throttling_and_edge_faults_are_retried_the_spec_drops_them() {
        let exhausted = tonic::Status::resource_exhausted("Too many requests");
        assert!(matches!(grpc_outcome(&exhausted, true), Outcome::Throttled { after: None, .. }));
        assert!(matches!(grpc_outcome(&exhausted, false), Outcome::Permanent { .. }), "the OTLP spec: no RetryInfo, no retry");
        let unknown = tonic::Status::unknown("unexpected HTTP status code received from server: 530 ()");
        assert!(matches!(grpc_outcome(&unknown, true), Outcome::Transient { .. }));
        assert!(matches!(grpc_outcome(&tonic::Status::internal(""), true), Outcome::Transient { .. }));
        assert!(matches!(grpc_outcome(&tonic::Status::internal(""), false), Outcome::Permanent { .. }));
        let big = tonic::Status::resource_exhausted("Received message larger than max (1048576 vs. 1000000)");
        assert!(matches!(grpc_outcome(&big, true), Outcome::TooLarge { .. }), "not throttling: split, or it is refused forever");
        assert!(matches!(grpc_outcome(&tonic::Status::unauthenticated(""), true), Outcome::Permanent { auth: true, .. }));
    }

    #[test]
    fn http_statuses_are_read_as_new_relic_documents_them() {
        let o = |s| http_outcome(s, None, String::new(), true);
        assert!(matches!(o(429), Outcome::Throttled { .. }));
        assert!(matches!(o(413), Outcome::TooLarge { .. }));
        assert!(matches!(o(500), Outcome::Transient { .. }) && matches!(o(530), Outcome::Transient { .. }));
        assert!(matches!(o(503), Outcome::Retry { .. }));
        assert!(matches!(o(403), Outcome::Permanent { auth: true, .. }));
        assert!(matches!(o(307), Outcome::Permanent { auth: false, cause } if cause.contains("redirect is not followed")));
        assert!(matches!(o(400), Outcome::Permanent { auth: false, .. }));
    }

    #[test]
    fn a_grpc_status_is_read_from_trailers_headers_or_the_http_status_and_garbage_is_no_panic() {
        use tonic::codegen::http::StatusCode;
        let map = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        let none = HeaderMap::new();
        assert!(grpc_status(Some(&map(&[("grpc-status", "0")])), &none, StatusCode::OK).is_ok());
        let e = grpc_status(None, &map(&[("grpc-status", "8"), ("grpc-message", "Too%20many%20requests")]), StatusCode::OK).unwrap_err();
        assert_eq!((e.code(), e.message()), (tonic::Code::ResourceExhausted, "Too many requests"), "a trailers-only answer");
        let e = grpc_status(Some(&map(&[("grpc-status", "14"), ("grpc-status-details-bin", "!!not base64!!")])), &none, StatusCode::OK)
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable, "garbage details are ignored, not a panic");
        let e = grpc_status(None, &none, StatusCode::from_u16(530).unwrap()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unknown, "New Relic's 530 reaches us as UNKNOWN");
        assert!(e.message().contains("530"), "{}", e.message());
        assert_eq!(grpc_status(None, &none, StatusCode::TOO_MANY_REQUESTS).unwrap_err().code(), tonic::Code::Unavailable);
        assert_eq!(grpc_status(None, &none, StatusCode::OK).unwrap_err().code(), tonic::Code::Unknown, "no grpc-status at all");
    }

    #[test]
    fn retry_info_is_read_from_status_details() {
        let info = RetryInfo { retry_delay: Some(ProtoDuration { seconds: 3, nanos: 500_000_000 }) };
        let status = RpcStatus {
            details: vec![ProtoAny { type_url: "type.googleapis.com/google.rpc.RetryInfo".into(), value: info.encode_to_vec() }],
        };
        let s = tonic::Status::with_details(tonic::Code::Unavailable, "busy", status.encode_to_vec().into());
        assert_eq!(retry_info(&s), Some(Duration::from_millis(3500)));
        assert_eq!(retry_info(&tonic::Status::unavailable("busy")), None);
    }
}
