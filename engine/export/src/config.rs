//! An exporter's configuration: the sink's settings, then the standard
//! `OTEL_EXPORTER_OTLP_*` / `OTEL_RESOURCE_ATTRIBUTES` variables for what
//! the file leaves out, then defaults (the `newrelic` preset's endpoint,
//! protocol and `api-key` header). A setting in the file always wins, so
//! the shipped pipelines can be pointed anywhere by environment alone.
//!
//! The `newrelic` preset speaks OTLP/HTTP unless told otherwise, as New
//! Relic recommends; an endpoint on port 4317 given without a protocol
//! keeps gRPC (that port speaks nothing else), and the start log says so.
//!
//! Endpoints are checked before anything is sent: an `http://` URL (the
//! base endpoint and the signal-specific ones) goes only to this machine
//! unless `insecure` says otherwise — decided on the parsed host, so
//! `http://localhost:1@elsewhere/` is `elsewhere` — and a URL carrying
//! `user:password@` is refused without being repeated anywhere.

use std::path::PathBuf;
use std::time::Duration;

use dbintel_dsl::plan::{SinkNode, Value as SettingValue};
use dbintel_dsl::schema::{NewRelicSinkSettings, OnFullWord, OtlpProtocol, OtlpSinkSettings, Region, TemporalityWord};
use dbintel_dsl::typed::QueueSetting;
use dbintel_stdlib::{Map, Value};

use dbintel_core::secret::Secret;

use crate::shape::Limits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    Block,
    DropOldest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueKind {
    Memory,
    Disk(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub initial: Duration,
    pub max: Duration,
    pub elapsed: Duration,
}

/// A header value; secrets print as their origin.
#[derive(Clone)]
pub struct Header {
    pub name: String,
    pub value: Secret,
    pub sensitive: bool,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sensitive {
            write!(f, "{}: ***", self.name)
        } else {
            write!(f, "{}: {}", self.name, self.value.expose())
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// The `newrelic` preset: New Relic's limits and status readings.
    pub newrelic: bool,
    pub protocol: Protocol,
    /// gRPC: the server's base URL; HTTP: the base URL, `/v1/metrics` and
    /// `/v1/logs` are appended unless a signal-specific variable says
    /// otherwise.
    pub endpoint: String,
    pub metrics_url: String,
    pub logs_url: String,
    pub headers: Vec<Header>,
    pub compression: Compression,
    pub timeout: Duration,
    pub insecure: bool,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<Secret>,
    pub cumulative: bool,
    pub queue: QueueKind,
    pub queue_bytes: u64,
    pub on_full: OnFull,
    pub retry: Retry,
    /// Added to every batch's resource; a target's own attributes win.
    pub resource: Map,
    /// What shaping and packing hold requests to.
    pub limits: Limits,
    /// How long a request waits for more parts before it leaves.
    pub linger: Duration,
    /// Choices made for the user, logged when the exporter starts.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Secret(#[from] dbintel_core::secret::SecretError),
    #[error("`{name}` = `{value}` is not one of {expected}")]
    Env { name: &'static str, value: String, expected: &'static str },
    #[error("{from}: `{url}` is not an http:// or https:// URL")]
    Endpoint { from: &'static str, url: String },
    #[error("{from}: `{url}` is plaintext to another host; use https://, or say `insecure = true` (or OTEL_EXPORTER_OTLP_INSECURE=true) if you mean it")]
    Plaintext { from: &'static str, url: String },
    #[error("{from}: the URL carries a user name or password; credentials go in headers (`api-key`, `authorization`), never in the URL (the URL is not repeated here)")]
    Credentials { from: &'static str },
}

/// A URL as it may be shown: scheme, host and port (no user, path or
/// query, which may carry secrets).
fn shown(url: &reqwest::Url) -> String {
    match url.port() {
        Some(port) => format!("{}://{}:{port}", url.scheme(), url.host_str().unwrap_or_default()),
        None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
    }
}

/// Parses and checks one endpoint URL (`from` names where it came from).
fn checked(from: &'static str, text: &str, insecure: bool) -> Result<reqwest::Url, ConfigError> {
    let url = match reqwest::Url::parse(text.trim()) {
        Ok(url) if url.scheme() == "http" || url.scheme() == "https" => url,
        // never repeat what may hold credentials
        _ if text.contains('@') => return Err(ConfigError::Credentials { from }),
        _ => return Err(ConfigError::Endpoint { from, url: text.split(['?', '#']).next().unwrap_or_default().to_string() }),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::Credentials { from });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::Endpoint { from, url: shown(&url) });
    }
    // plaintext only when asked, or to this machine (a local agent)
    if url.scheme() == "http" && !insecure && !is_loopback(&url) {
        return Err(ConfigError::Plaintext { from, url: shown(&url) });
    }
    Ok(url)
}

/// Where environment variables come from (the process, or a map in tests).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

/// `k=v,k2=v2` with percent-encoded values (the OTEL_*_HEADERS and
/// OTEL_RESOURCE_ATTRIBUTES format).
pub fn parse_pairs(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k.trim()), percent_decode(v.trim())))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Header names whose values are credentials (never printed).
fn sensitive(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["key", "auth", "token", "secret", "password", "cookie"].iter().any(|w| n.contains(w))
}

fn env_word(env: &dyn Env, name: &'static str) -> Option<(&'static str, String)> {
    env.var(name).map(|v| (name, v.trim().to_ascii_lowercase()))
}

fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

impl ExportConfig {
    pub fn resolve(sink: &SinkNode, env: &dyn Env) -> Result<ExportConfig, ConfigError> {
        let newrelic = sink.kind == "newrelic";
        let (s, nr) = if newrelic {
            let n = NewRelicSinkSettings::from_settings(&sink.settings);
            // the preset is an OTLP sink with New Relic's endpoint and key
            let otlp = OtlpSinkSettings {
                endpoint: n.endpoint.clone(),
                protocol: n.protocol,
                headers: Default::default(),
                compression: n.compression,
                timeout: n.timeout,
                insecure: false,
                ca_file: None,
                client_cert: None,
                client_key: None,
                temporality: n.temporality,
                queue: n.queue.clone(),
                queue_size: n.queue_size,
                on_full: n.on_full,
                retry_initial: n.retry_initial,
                retry_max: n.retry_max,
                retry_elapsed: n.retry_elapsed,
                resource: n.resource.clone(),
                linger: n.linger,
            };
            (otlp, Some(n))
        } else {
            (OtlpSinkSettings::from_settings(&sink.settings), None)
        };

        let mut notes = Vec::new();
        let file_endpoint = s.endpoint.clone();
        let env_endpoint = env.var("OTEL_EXPORTER_OTLP_ENDPOINT");
        let protocol = match s.protocol {
            Some(OtlpProtocol::Http) => Protocol::Http,
            Some(OtlpProtocol::Grpc) => Protocol::Grpc,
            None => match protocol_from_env(env)? {
                Some(p) => p,
                // New Relic recommends OTLP/HTTP; an endpoint given on the
                // gRPC port keeps gRPC
                None if newrelic => {
                    let given = file_endpoint.as_deref().or(env_endpoint.as_deref());
                    if given.and_then(|e| reqwest::Url::parse(e.trim()).ok()).and_then(|u| u.port()) == Some(4317) {
                        notes.push("the endpoint is on port 4317 and no protocol is set: speaking gRPC (New Relic recommends OTLP/HTTP on 4318 or 443: set `protocol = http` and the endpoint to match)".to_string());
                        Protocol::Grpc
                    } else {
                        Protocol::Http
                    }
                }
                None => Protocol::Grpc,
            },
        };

        let region_host = match nr.as_ref().map(|n| n.region) {
            Some(Region::Eu) => "otlp.eu01.nr-data.net",
            _ => "otlp.nr-data.net",
        };
        let default_endpoint = match (newrelic, protocol) {
            (true, Protocol::Grpc) => format!("https://{region_host}:4317"),
            (true, Protocol::Http) => format!("https://{region_host}:4318"),
            (false, Protocol::Grpc) => "http://localhost:4317".to_string(),
            (false, Protocol::Http) => "http://localhost:4318".to_string(),
        };
        let (endpoint, from) = match (file_endpoint, env_endpoint) {
            (Some(e), _) => (e, "endpoint"),
            (None, Some(e)) => (e, "OTEL_EXPORTER_OTLP_ENDPOINT"),
            (None, None) => (default_endpoint, "the default endpoint"),
        };
        let endpoint = endpoint.trim().to_string();
        let insecure = s.insecure || env.var("OTEL_EXPORTER_OTLP_INSECURE").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        checked(from, &endpoint, insecure)?;
        let (metrics_url, logs_url) = match protocol {
            Protocol::Grpc => (endpoint.clone(), endpoint.clone()),
            Protocol::Http => {
                let signal = |name: &'static str, path: &str| -> Result<String, ConfigError> {
                    match env.var(name) {
                        Some(url) => checked(name, &url, insecure).map(|_| url.trim().to_string()),
                        None => Ok(join(&endpoint, path)),
                    }
                };
                (signal("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "v1/metrics")?, signal("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "v1/logs")?)
            }
        };

        let mut headers = Vec::new();
        if !s.headers.is_empty() {
            for (name, value) in &s.headers {
                let value = match value {
                    SettingValue::Secret(r) => Secret::resolve(r)?,
                    SettingValue::String(v) => Secret::plain(v, "headers"),
                    _ => continue,
                };
                headers.push(Header { sensitive: sensitive(name), name: name.to_ascii_lowercase(), value });
            }
        } else if let Some(text) = env.var("OTEL_EXPORTER_OTLP_HEADERS") {
            for (name, value) in parse_pairs(&text) {
                headers.push(Header {
                    sensitive: sensitive(&name),
                    name: name.to_ascii_lowercase(),
                    value: Secret::plain(&value, "OTEL_EXPORTER_OTLP_HEADERS"),
                });
            }
        }
        if let Some(nr) = &nr {
            if let Some(key) = &nr.license_key {
                headers.retain(|h| h.name != "api-key");
                headers.push(Header { name: "api-key".into(), value: Secret::resolve(key)?, sensitive: true });
            }
        }

        let compression = match s.compression {
            Some(w) => compression(w.as_str()),
            None => match env_word(env, "OTEL_EXPORTER_OTLP_COMPRESSION") {
                Some((name, value)) => match value.as_str() {
                    "gzip" | "zstd" | "none" => compression(&value),
                    _ => return Err(ConfigError::Env { name, value, expected: "gzip, zstd, none" }),
                },
                // New Relic recommends zstd; gzip is what every receiver takes
                None if newrelic => Compression::Zstd,
                None => Compression::Gzip,
            },
        };

        let mut resource = Map::new();
        if let Some(text) = env.var("OTEL_RESOURCE_ATTRIBUTES") {
            for (k, v) in parse_pairs(&text) {
                resource.insert(k, Value::Str(v));
            }
        }
        for (k, v) in &s.resource {
            if let SettingValue::String(v) = v {
                resource.insert(k.clone(), Value::Str(v.clone()));
            }
        }

        Ok(ExportConfig {
            newrelic,
            protocol,
            endpoint,
            metrics_url,
            logs_url,
            headers,
            compression,
            timeout: s.timeout,
            insecure,
            ca_file: s.ca_file.as_ref().map(PathBuf::from),
            client_cert: s.client_cert.as_ref().map(PathBuf::from),
            client_key: s.client_key.as_ref().map(Secret::resolve).transpose()?,
            cumulative: s.temporality == TemporalityWord::Cumulative,
            queue: match &s.queue {
                QueueSetting::Disk(path) => QueueKind::Disk(PathBuf::from(path)),
                QueueSetting::Memory => QueueKind::Memory,
            },
            queue_bytes: s.queue_size,
            on_full: match s.on_full {
                OnFullWord::DropOldest => OnFull::DropOldest,
                OnFullWord::Block => OnFull::Block,
            },
            retry: Retry { initial: s.retry_initial, max: s.retry_max, elapsed: s.retry_elapsed },
            resource,
            limits: Limits::for_sink(&sink.kind),
            linger: s.linger,
            notes,
        })
    }
}

/// `http://localhost:4317`, `http://127.0.0.1`, `http://[::1]:4318/…`,
/// read from the parsed host (never from the text).
fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn protocol_from_env(env: &dyn Env) -> Result<Option<Protocol>, ConfigError> {
    match env_word(env, "OTEL_EXPORTER_OTLP_PROTOCOL") {
        None => Ok(None),
        Some((_, v)) if v == "grpc" => Ok(Some(Protocol::Grpc)),
        Some((_, v)) if v == "http/protobuf" || v == "http" => Ok(Some(Protocol::Http)),
        Some((name, value)) => Err(ConfigError::Env { name, value, expected: "grpc, http/protobuf" }),
    }
}

fn compression(word: &str) -> Compression {
    match word {
        "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        _ => Compression::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, &'static str>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    fn sink(kind: &str, settings: &[(&str, SettingValue)]) -> SinkNode {
        let mut s = dbintel_dsl::plan::Settings::default();
        for (k, v) in settings {
            s.0.insert(k.to_string(), v.clone());
        }
        SinkNode { kind: kind.into(), settings: s }
    }

    #[test]
    fn environment_fills_what_the_file_leaves_out() {
        let env = MapEnv(HashMap::from([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=a%20b,api-key=s3cret"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,team=db"),
        ]));
        let c = ExportConfig::resolve(&sink("otlp", &[]), &env).unwrap();
        assert_eq!(c.protocol, Protocol::Http);
        assert_eq!(c.metrics_url, "http://collector:4318/v1/metrics");
        assert_eq!(c.logs_url, "http://collector:4318/v1/logs");
        assert_eq!(c.compression, Compression::Zstd);
        assert_eq!(c.headers[0].value.expose(), "a b");
        assert_eq!(format!("{:?}", c.headers), "[x-tenant: a b, api-key: ***]");
        assert_eq!(c.resource.get("team"), Some(&Value::Str("db".into())));

        let file_wins = sink("otlp", &[("endpoint", SettingValue::String("https://elsewhere:4317".into()))]);
        let c = ExportConfig::resolve(&file_wins, &MapEnv(HashMap::from([("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:1")]))).unwrap();
        assert_eq!(c.endpoint, "https://elsewhere:4317");
    }

    #[test]
    fn newrelic_preset_fills_endpoint_and_key_header() {
        std::env::set_var("DBINTEL_TEST_NR_KEY", "nr-license-123");
        let s = sink(
            "newrelic",
            &[
                ("license_key", SettingValue::Secret(dbintel_dsl::plan::SecretRef::Env("DBINTEL_TEST_NR_KEY".into()))),
                ("region", SettingValue::Word("eu".into())),
                ("protocol", SettingValue::Word("http".into())),
            ],
        );
        let c = ExportConfig::resolve(&s, &MapEnv(HashMap::new())).unwrap();
        assert_eq!(c.metrics_url, "https://otlp.eu01.nr-data.net:4318/v1/metrics");
        assert_eq!(format!("{:?}", c.headers), "[api-key: ***]");
        assert_eq!(c.headers[0].value.expose(), "nr-license-123");
    }

    #[test]
    fn plaintext_goes_only_to_this_machine_unless_asked() {
        let at = |url: &'static str| sink("otlp", &[("endpoint", SettingValue::String(url.into()))]);
        let none = MapEnv(HashMap::new());
        assert!(ExportConfig::resolve(&at("http://localhost:4317"), &none).is_ok());
        assert!(ExportConfig::resolve(&at("http://127.0.0.1:4318/"), &none).is_ok());
        assert!(ExportConfig::resolve(&at("http://[::1]:4317"), &none).is_ok());
        let err = ExportConfig::resolve(&at("http://collector.prod:4317"), &none).unwrap_err().to_string();
        assert!(err.contains("plaintext") && err.contains("insecure = true"), "{err}");
        assert!(ExportConfig::resolve(
            &at("http://collector.prod:4317"),
            &MapEnv(HashMap::from([("OTEL_EXPORTER_OTLP_INSECURE", "true")]))
        )
        .is_ok());
        let asked =
            sink("otlp", &[("endpoint", SettingValue::String("http://collector:4317".into())), ("insecure", SettingValue::Bool(true))]);
        assert!(ExportConfig::resolve(&asked, &none).is_ok());
    }

    #[test]
    fn the_newrelic_preset_speaks_otlp_http_unless_given_the_grpc_port() {
        std::env::set_var("DBINTEL_TEST_NR_KEY2", "k");
        let key = ("license_key", SettingValue::Secret(dbintel_dsl::plan::SecretRef::Env("DBINTEL_TEST_NR_KEY2".into())));
        let none = MapEnv(HashMap::new());
        let c = ExportConfig::resolve(&sink("newrelic", std::slice::from_ref(&key)), &none).unwrap();
        assert_eq!((c.protocol, c.endpoint.as_str()), (Protocol::Http, "https://otlp.nr-data.net:4318"));
        assert_eq!(c.metrics_url, "https://otlp.nr-data.net:4318/v1/metrics");
        assert!(c.notes.is_empty());
        assert_eq!(c.limits, Limits::newrelic());
        // an endpoint on 4317 without a protocol keeps gRPC, and says so
        let grpc_port = sink("newrelic", &[key.clone(), ("endpoint", SettingValue::String("https://otlp.nr-data.net:4317".into()))]);
        let c = ExportConfig::resolve(&grpc_port, &none).unwrap();
        assert_eq!(c.protocol, Protocol::Grpc);
        assert!(c.notes.iter().any(|n| n.contains("4317") && n.contains("gRPC")), "{:?}", c.notes);
        let env_grpc_port = MapEnv(HashMap::from([("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otlp.eu01.nr-data.net:4317")]));
        assert_eq!(ExportConfig::resolve(&sink("newrelic", std::slice::from_ref(&key)), &env_grpc_port).unwrap().protocol, Protocol::Grpc);
        // an explicit protocol wins, in the file or the environment
        let asked = sink("newrelic", &[key.clone(), ("protocol", SettingValue::Word("grpc".into()))]);
        let c = ExportConfig::resolve(&asked, &none).unwrap();
        assert_eq!((c.protocol, c.endpoint.as_str()), (Protocol::Grpc, "https://otlp.nr-data.net:4317"));
        let env = MapEnv(HashMap::from([("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]));
        assert_eq!(ExportConfig::resolve(&sink("newrelic", std::slice::from_ref(&key)), &env).unwrap().protocol, Protocol::Grpc);
        let on_443 = sink("newrelic", &[key, ("endpoint", SettingValue::String("https://otlp.nr-data.net:443".into()))]);
        assert_eq!(ExportConfig::resolve(&on_443, &none).unwrap().protocol, Protocol::Http);
        // a plain otlp sink keeps its default
        assert_eq!(ExportConfig::resolve(&sink("otlp", &[]), &none).unwrap().protocol, Protocol::Grpc);
    }

    #[test]
    fn the_plaintext_check_covers_signal_endpoints_and_reads_the_parsed_host() {
        let none = MapEnv(HashMap::new());
        let http = |url: &'static str| {
            sink("otlp", &[("endpoint", SettingValue::String(url.into())), ("protocol", SettingValue::Word("http".into()))])
        };
        for (name, url) in [
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://collector.prod:4318/v1/metrics"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://collector.prod:4318/v1/logs"),
        ] {
            let env = MapEnv(HashMap::from([(name, url)]));
            let err = ExportConfig::resolve(&http("http://localhost:4318"), &env).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains("plaintext"), "{err}");
        }
        for fooled in ["http://localhost.evil.example:4318", "http://127.0.0.1.nip.io:4318", "http://[::2]:4318"] {
            let err = ExportConfig::resolve(&http(fooled), &none).unwrap_err().to_string();
            assert!(err.contains("plaintext"), "{fooled}: {err}");
        }
        let err = ExportConfig::resolve(&http("http://localhost:1@elsewhere/"), &none).unwrap_err().to_string();
        assert!(err.contains("user name or password") && !err.contains("elsewhere") && !err.contains("localhost:1"), "{err}");
        assert!(ExportConfig::resolve(&http("http://127.0.0.1:4318"), &none).is_ok());
    }

    #[test]
    fn an_endpoint_with_credentials_is_refused_and_never_repeated() {
        let none = MapEnv(HashMap::new());
        for url in ["https://user:hunter2@otlp.example.com:4318", "https://hunter2@otlp.example.com", "https://:hunter2@otlp.example.com"] {
            let s = sink("otlp", &[("endpoint", SettingValue::String(url.into()))]);
            let err = ExportConfig::resolve(&s, &none).unwrap_err().to_string();
            assert!(err.contains("user name or password") && !err.contains("hunter2") && !err.contains("otlp.example.com"), "{err}");
        }
        let env = MapEnv(HashMap::from([("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "https://u:hunter2@x.example.com/v1/logs")]));
        let s = sink(
            "otlp",
            &[("endpoint", SettingValue::String("https://ok.example.com".into())), ("protocol", SettingValue::Word("http".into()))],
        );
        let err = ExportConfig::resolve(&s, &env).unwrap_err().to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT") && !err.contains("hunter2"), "{err}");
        let garbage = sink("otlp", &[("endpoint", SettingValue::String("not a url @ hunter2".into()))]);
        let err = ExportConfig::resolve(&garbage, &none).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_bad_variable_is_named() {
        let env = MapEnv(HashMap::from([("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")]));
        let err = ExportConfig::resolve(&sink("otlp", &[]), &env).unwrap_err().to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && err.contains("carrier-pigeon"), "{err}");
    }
}
