//! What New Relic builds its database entities from: one resource per
//! server, in the OpenTelemetry semantic-conventions model its
//! instructions require of the contrib receivers (`useOTelSemconv`, on by
//! default in New Relic's own collector since v0.162).
//!
//! - `service.instance.id` is computed as New Relic's collector computes
//!   it: a UUIDv5 in the OpenTelemetry namespace of the endpoint as
//!   configured (`host:port`), a loopback host replaced by this machine's
//!   name first — so switching collectors keeps the entity. `service_instance_id
//!   = endpoint` keeps dbintel's earlier identity, the plain `host:port`,
//!   for users whose entities were made by it.
//! - `server.address` and `server.port` are the server as the application
//!   sees it (the DSN's host as written, loopback as the machine's name,
//!   as New Relic's APM agents report a local datastore): New Relic links
//!   an APM service to the database entity by them.
//! - MySQL entities are keyed on `mysql.instance.endpoint`, the endpoint
//!   verbatim.
//! - The database is not on the resource: each point says which database
//!   it is about (`db.namespace`, and the receivers' legacy names that the
//!   entity dashboards facet on — New Relic flattens resource and point
//!   attributes into one row, so both kinds of view answer).
//!
//! No `telemetry.sdk.name`: that names an OpenTelemetry SDK (New Relic
//! turns it into the entity's `instrumentation.provider`); dbintel is named
//! by its scope.

use dbintel_core::record::Resource;
use dbintel_dsl::schema::ServiceInstanceId;
use dbintel_stdlib::Value;
use sha1::{Digest, Sha1};

/// The OpenTelemetry namespace New Relic's collector derives
/// `service.instance.id` in.
const OTEL_NAMESPACE: [u8; 16] = [0x4d, 0x63, 0x00, 0x9a, 0x8d, 0x0f, 0x11, 0xee, 0xaa, 0xd7, 0x4c, 0x79, 0x6e, 0xd8, 0xe3, 0x20];

/// An RFC 4122 version 5 UUID (SHA-1 of namespace and name), as text.
pub fn uuid_v5(namespace: &[u8; 16], name: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(namespace);
    hasher.update(name);
    let digest = hasher.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// This machine's name (a pod's name under Kubernetes).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".into())
}

/// Whether `host` names this machine's loopback.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `host` as the application sees the server: a loopback host is this
/// machine.
pub fn server_address(host: &str) -> String {
    if is_loopback(host) {
        hostname()
    } else {
        host.to_string()
    }
}

/// New Relic's `service.instance.id` for an endpoint: UUIDv5 of
/// `host:port` with a loopback host replaced by the machine's name; a
/// PostgreSQL Unix socket by `unix`, the machine's name and the socket's
/// path.
pub fn service_instance_id(system: &str, host: &str, port: u16) -> String {
    let seed = if host.starts_with('/') && system == "postgresql" {
        format!("unix\0{}\0{}/.s.PGSQL.{port}", hostname(), host.trim_end_matches('/'))
    } else if is_loopback(host) {
        join_host_port(&hostname(), port)
    } else {
        join_host_port(host, port)
    };
    uuid_v5(&OTEL_NAMESPACE, seed.as_bytes())
}

/// `host:port`, an IPv6 address in brackets (Go's `net.JoinHostPort`).
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The resource every record of a server carries.
pub fn server_resource(system: &str, host: &str, port: u16, identity: ServiceInstanceId) -> Resource {
    let mut resource = Resource::default();
    let attrs = &mut resource.attributes;
    let endpoint = join_host_port(host, port);
    attrs.insert("db.system.name", Value::Str(system.into()));
    attrs.insert("server.address", Value::Str(server_address(host)));
    attrs.insert("server.port", Value::Int(i64::from(port)));
    let id = match identity {
        ServiceInstanceId::Semconv => service_instance_id(system, host, port),
        ServiceInstanceId::Endpoint => endpoint.clone(),
    };
    attrs.insert("service.instance.id", Value::Str(id));
    if system == "mysql" {
        attrs.insert("mysql.instance.endpoint", Value::Str(endpoint));
    }
    resource
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_instance_id_is_new_relics_uuid_v5_of_the_endpoint() {
        // Python's uuid.uuid5(UUID("4d63009a-8d0f-11ee-aad7-4c796ed8e320"), name)
        assert_eq!(service_instance_id("postgresql", "db.internal", 5432), "528bede4-c76d-5593-b60f-466864c435e7");
        assert_eq!(service_instance_id("mysql", "orders-db.internal", 3306), "a26b63cf-b64c-55cb-8253-e8a05fffafc4");
        // a loopback host is this machine, whatever its spelling
        let here = service_instance_id("postgresql", &hostname(), 5432);
        for local in ["localhost", "127.0.0.1", "::1", "LOCALHOST"] {
            assert_eq!(service_instance_id("postgresql", local, 5432), here, "{local}");
        }
        assert_eq!(uuid_v5(&OTEL_NAMESPACE, b"[::1]:5432"), "58844b56-7a0f-5e74-ada8-9c2eaf98414e");
    }

    #[test]
    fn one_resource_per_server_keyed_as_new_relic_keys_it() {
        let r = server_resource("mysql", "orders-db.internal", 3306, ServiceInstanceId::Semconv);
        let get = |k: &str| r.attributes.get(k).cloned();
        assert_eq!(get("service.instance.id"), Some(Value::Str("a26b63cf-b64c-55cb-8253-e8a05fffafc4".into())));
        assert_eq!(get("mysql.instance.endpoint"), Some(Value::Str("orders-db.internal:3306".into())));
        assert_eq!(get("server.address"), Some(Value::Str("orders-db.internal".into())));
        assert_eq!(get("db.namespace"), None, "the database is on the points");
        let legacy = server_resource("postgresql", "127.0.0.1", 5432, ServiceInstanceId::Endpoint);
        assert_eq!(legacy.attributes.get("service.instance.id"), Some(&Value::Str("127.0.0.1:5432".into())));
        assert_eq!(legacy.attributes.get("server.address"), Some(&Value::Str(hostname())));
    }
}
