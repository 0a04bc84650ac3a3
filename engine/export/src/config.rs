//! An exporter's configuration: the sink's settings, then the standard
//! `OTEL_EXPORTER_OTLP_*` / `OTEL_RESOURCE_ATTRIBUTES` variables for what
//! the file leaves out, then defaults (the `newrelic` preset's endpoint
//! and `api-key` header). A setting in the file always wins, so the
//! shipped pipelines can be pointed anywhere by environment alone.

use std::path::PathBuf;
use std::time::Duration;

use dbintel_dsl::plan::{SinkNode, Value as SettingValue};
use dbintel_dsl::schema::{NewRelicSinkSettings, OnFullWord, OtlpProtocol, OtlpSinkSettings, Region, TemporalityWord};
use dbintel_dsl::typed::QueueSetting;
use dbintel_stdlib::{Map, Value};

use dbintel_core::secret::Secret;

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
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Secret(#[from] dbintel_core::secret::SecretError),
    #[error("`{name}` = `{value}` is not one of {expected}")]
    Env { name: &'static str, value: String, expected: &'static str },
    #[error("endpoint `{0}` is not an http:// or https:// URL")]
    Endpoint(String),
    #[error("endpoint `{0}` is plaintext to another host; use https://, or say `insecure = true` (or OTEL_EXPORTER_OTLP_INSECURE=true) if you mean it")]
    Plaintext(String),
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

fn percent_decode(s: &str) -> String {
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
                endpoint: None,
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
            };
            (otlp, Some(n))
        } else {
            (OtlpSinkSettings::from_settings(&sink.settings), None)
        };

        let protocol = match s.protocol {
            Some(OtlpProtocol::Http) => Protocol::Http,
            Some(OtlpProtocol::Grpc) => Protocol::Grpc,
            None => protocol_from_env(env)?.unwrap_or(Protocol::Grpc),
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
        let endpoint = s.endpoint.clone().or_else(|| env.var("OTEL_EXPORTER_OTLP_ENDPOINT")).unwrap_or(default_endpoint);
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(ConfigError::Endpoint(endpoint));
        }
        // plaintext only when asked, or to this machine (a local agent)
        let insecure = s.insecure || env.var("OTEL_EXPORTER_OTLP_INSECURE").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if endpoint.starts_with("http://") && !insecure && !is_loopback(&endpoint) {
            return Err(ConfigError::Plaintext(endpoint));
        }
        let (metrics_url, logs_url) = match protocol {
            Protocol::Grpc => (endpoint.clone(), endpoint.clone()),
            Protocol::Http => (
                env.var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").unwrap_or_else(|| join(&endpoint, "v1/metrics")),
                env.var("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT").unwrap_or_else(|| join(&endpoint, "v1/logs")),
            ),
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
        })
    }
}

/// `http://localhost:4317`, `http://127.0.0.1`, `http://[::1]:4318/…`.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
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
    fn a_bad_variable_is_named() {
        let env = MapEnv(HashMap::from([("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")]));
        let err = ExportConfig::resolve(&sink("otlp", &[]), &env).unwrap_err().to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && err.contains("carrier-pigeon"), "{err}");
    }
}
