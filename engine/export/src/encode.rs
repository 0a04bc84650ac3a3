//! Batches to OTLP protobuf: one *part* per resource and scope (itself a
//! complete export request), which the packer ([`crate::pack`]) joins
//! into requests of up to the size limit. Protobuf's repeated fields
//! concatenate, so parts are joined by putting their bytes end to end.
//!
//! Points of one metric (same name, unit and kind) in a batch share one
//! `Metric` message, so a scrape's thousand `postgresql.query.calls`
//! points carry the name once. A part larger than the packer can send is
//! split in halves of its records; a single record too large on its own
//! is shrunk ([`crate::reshape::shrink`]) and marked, or, when nothing
//! is left to cut, dropped and counted.

use std::collections::HashMap;

use dbintel_stdlib::{Map, Value};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as PbLog, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource as PbResource;
use prost::Message;

use crate::config::Compression;
use dbintel_core::record::{LogRecord, MetricKind, MetricPoint, Number, Record, Temporality};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Metrics,
    Logs,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }
    pub fn from_u8(b: u8) -> Option<Signal> {
        match b {
            0 => Some(Signal::Metrics),
            1 => Some(Signal::Logs),
            _ => None,
        }
    }
    pub fn as_u8(self) -> u8 {
        match self {
            Signal::Metrics => 0,
            Signal::Logs => 1,
        }
    }
}

/// One export request, ready to send as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub signal: Signal,
    /// Data points or log records inside.
    pub items: u32,
    /// How `payload` is compressed.
    pub encoding: Compression,
    /// The oldest data time inside (unix ns; 0: unknown).
    pub oldest: u64,
    pub payload: bytes::Bytes,
}

impl Encoded {
    /// The request's protobuf bytes.
    pub fn raw(&self) -> std::io::Result<Vec<u8>> {
        crate::compression::decompress(self.encoding, &self.payload)
    }
}

/// One resource's (and scope's) records as a complete export request,
/// uncompressed: what the packer joins.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub signal: Signal,
    pub items: u32,
    /// The oldest data time inside (unix ns).
    pub oldest: u64,
    pub raw: Vec<u8>,
}

/// What encoding a batch had to give up or change.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fitted {
    /// Single records shrunk to fit (texts cut, JSON removed).
    pub shrunk: u64,
    /// JSON values removed while shrinking.
    pub json_removed: u64,
    /// Records that could not fit however shrunk: dropped.
    pub too_large: u64,
}

pub fn any_value(v: &Value) -> Option<AnyValue> {
    let value = match v {
        Value::Nil => return None,
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Int(i) => any_value::Value::IntValue(*i),
        Value::Double(d) => any_value::Value::DoubleValue(*d),
        Value::Str(s) => any_value::Value::StringValue(s.clone()),
        Value::Bytes(b) => any_value::Value::BytesValue(b.clone()),
        Value::List(items) => {
            any_value::Value::ArrayValue(ArrayValue { values: items.iter().map(|v| any_value(v).unwrap_or_default()).collect() })
        }
        Value::Map(m) => any_value::Value::KvlistValue(KeyValueList { values: key_values(m) }),
    };
    Some(AnyValue { value: Some(value) })
}

pub fn key_values(map: &Map) -> Vec<KeyValue> {
    map.iter().map(|(k, v)| KeyValue { key: k.to_string(), value: any_value(v), ..Default::default() }).collect()
}

/// The contrib receivers' scope names, by the resource's `db.system.name`.
pub const CONTRIB_SCOPES: &[(&str, &str)] = &[
    ("postgresql", "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/postgresqlreceiver"),
    ("mysql", "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/mysqlreceiver"),
];

/// The instrumentation scope of a batch. The `newrelic` preset names
/// database data as the contrib receivers do (New Relic shows it as the
/// entity's `instrumentation.name`, and queries written for the receivers
/// may filter on it), with dbintel's version marked `dbintel-…`; every
/// other sink, and anything not from a database, is scope `dbintel`.
pub fn scope(sink_kind: &str, resource: &Map) -> InstrumentationScope {
    let version = env!("CARGO_PKG_VERSION");
    let system = resource.get("db.system.name").and_then(Value::as_str);
    match CONTRIB_SCOPES.iter().find(|(s, _)| Some(*s) == system).filter(|_| sink_kind == "newrelic") {
        Some((_, name)) => InstrumentationScope { name: (*name).into(), version: format!("dbintel-{version}"), ..Default::default() },
        None => InstrumentationScope { name: "dbintel".into(), version: version.into(), ..Default::default() },
    }
}

fn resource(attributes: &Map) -> Option<PbResource> {
    Some(PbResource { attributes: key_values(attributes), ..Default::default() })
}

fn point(m: &MetricPoint) -> NumberDataPoint {
    NumberDataPoint {
        attributes: key_values(&m.attributes),
        start_time_unix_nano: m.start_time_unix_nano,
        time_unix_nano: m.time_unix_nano,
        value: Some(match m.value {
            Number::Int(i) => number_data_point::Value::AsInt(i),
            Number::Double(d) => number_data_point::Value::AsDouble(d),
        }),
        ..Default::default()
    }
}

fn temporality(t: Temporality) -> i32 {
    match t {
        Temporality::Delta => 1,
        Temporality::Cumulative => 2,
    }
}

pub fn metrics_request(resource_attributes: &Map, scope: &InstrumentationScope, points: &[&MetricPoint]) -> ExportMetricsServiceRequest {
    let mut metrics: Vec<Metric> = Vec::new();
    let mut index: HashMap<(&str, &str, u8), usize> = HashMap::new();
    for m in points {
        let kind_key = match m.kind {
            MetricKind::Gauge => 0,
            MetricKind::Sum { monotonic, temporality: t } => 1 + u8::from(monotonic) * 2 + u8::from(t == Temporality::Cumulative),
        };
        let at = *index.entry((m.name.as_str(), m.unit.as_str(), kind_key)).or_insert_with(|| {
            let data = match m.kind {
                MetricKind::Gauge => metric::Data::Gauge(Gauge { data_points: Vec::new() }),
                MetricKind::Sum { monotonic, temporality: t } => {
                    metric::Data::Sum(Sum { data_points: Vec::new(), aggregation_temporality: temporality(t), is_monotonic: monotonic })
                }
            };
            metrics.push(Metric {
                name: m.name.clone(),
                unit: m.unit.clone(),
                description: m.description.clone(),
                data: Some(data),
                ..Default::default()
            });
            metrics.len() - 1
        });
        match metrics[at].data.as_mut() {
            Some(metric::Data::Gauge(g)) => g.data_points.push(point(m)),
            Some(metric::Data::Sum(s)) => s.data_points.push(point(m)),
            _ => {}
        }
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(resource_attributes),
            scope_metrics: vec![ScopeMetrics { scope: Some(scope.clone()), metrics, ..Default::default() }],
            ..Default::default()
        }],
    }
}

fn log(l: &LogRecord) -> PbLog {
    PbLog {
        time_unix_nano: l.time_unix_nano,
        observed_time_unix_nano: l.observed_time_unix_nano,
        severity_number: l.severity_number,
        severity_text: l.severity_text.clone(),
        event_name: l.event_name.clone(),
        body: any_value(&l.body),
        attributes: key_values(&l.attributes),
        // OTLP: empty (not zeros) when there is none
        trace_id: if l.trace_id == [0; 16] { Vec::new() } else { l.trace_id.to_vec() },
        span_id: if l.span_id == [0; 8] { Vec::new() } else { l.span_id.to_vec() },
        ..Default::default()
    }
}

pub fn logs_request(resource_attributes: &Map, scope: &InstrumentationScope, logs: &[&LogRecord]) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(resource_attributes),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope.clone()),
                log_records: logs.iter().map(|l| log(l)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn oldest_metric(points: &[&MetricPoint]) -> u64 {
    points.iter().map(|m| m.time_unix_nano).filter(|t| *t != 0).min().unwrap_or(0)
}

fn oldest_log(logs: &[&LogRecord]) -> u64 {
    logs.iter()
        .map(|l| if l.time_unix_nano != 0 { l.time_unix_nano } else { l.observed_time_unix_nano })
        .filter(|t| *t != 0)
        .min()
        .unwrap_or(0)
}

/// Encodes `items` as parts of at most `max` bytes, halving the slice
/// until each part fits; a single record larger than `max` is shrunk, or
/// dropped when it cannot be.
fn split<T>(
    items: &[T],
    max: usize,
    encode: &impl Fn(&[T]) -> Vec<u8>,
    oldest: &impl Fn(&[T]) -> u64,
    signal: Signal,
    out: &mut Vec<Part>,
    fitted: &mut Fitted,
) {
    if items.is_empty() {
        return;
    }
    let raw = encode(items);
    if raw.len() <= max {
        out.push(Part { signal, items: items.len() as u32, oldest: oldest(items), raw });
        return;
    }
    if items.len() == 1 {
        match crate::reshape::shrink(signal, &raw, &mut |b| b.len() <= max) {
            Some((raw, how)) => {
                fitted.shrunk += 1;
                fitted.json_removed += u64::from(how.json_removed);
                out.push(Part { signal, items: 1, oldest: oldest(items), raw });
            }
            None => fitted.too_large += 1,
        }
        return;
    }
    let (left, right) = items.split_at(items.len() / 2);
    split(left, max, encode, oldest, signal, out, fitted);
    split(right, max, encode, oldest, signal, out, fitted);
}

/// The parts of a batch's records (logs first, then metrics), each at
/// most `max` bytes, under `resource_attributes` and `scope`. Records must
/// already be shaped.
pub fn parts(records: &[Record], resource_attributes: &Map, scope: &InstrumentationScope, max: usize) -> (Vec<Part>, Fitted) {
    let mut out = Vec::new();
    let mut fitted = Fitted::default();
    let logs: Vec<&LogRecord> = records.iter().filter_map(|r| if let Record::Log(l) = r { Some(l) } else { None }).collect();
    let points: Vec<&MetricPoint> = records.iter().filter_map(|r| if let Record::Metric(m) = r { Some(m) } else { None }).collect();
    let resource = resource_attributes;
    split(
        &logs,
        max,
        &|part| logs_request(resource, scope, part).encode_to_vec(),
        &|part| oldest_log(part),
        Signal::Logs,
        &mut out,
        &mut fitted,
    );
    split(
        &points,
        max,
        &|part| metrics_request(resource, scope, part).encode_to_vec(),
        &|part| oldest_metric(part),
        Signal::Metrics,
        &mut out,
        &mut fitted,
    );
    (out, fitted)
}

#[cfg(test)]
mod tests {
    use super::*;
    fn point(name: &str, value: i64, attrs: Map) -> Record {
        Record::Metric(MetricPoint::new(name, "1", MetricKind::Gauge, Number::Int(value), 1, attrs))
    }

    #[test]
    fn large_batches_split_under_the_limit_and_keep_every_point() {
        let records: Vec<Record> = (0..20_000)
            .map(|i| {
                let mut attrs = Map::new();
                attrs.insert("db.query.text", Value::Str(format!("SELECT {i} FROM some_table_with_a_long_name WHERE x = $1")));
                point("postgresql.query.calls", i, attrs)
            })
            .collect();
        let (parts, fitted) = parts(&records, &Map::new(), &scope("otlp", &Map::new()), 1_000_000);
        assert_eq!(fitted, Fitted::default());
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|r| r.raw.len() <= 1_000_000));
        assert_eq!(parts.iter().map(|r| r.items).sum::<u32>(), 20_000);
        // points of one metric share a Metric message
        let first = ExportMetricsServiceRequest::decode(parts[0].raw.as_slice()).unwrap_or_default();
        assert_eq!(first.resource_metrics[0].scope_metrics[0].metrics.len(), 1);
    }

    #[test]
    fn a_record_too_large_alone_is_shrunk_and_one_that_cannot_be_is_counted() {
        let mut attrs = Map::new();
        attrs.insert("a", Value::Str("x".repeat(3000)));
        attrs.insert("b", Value::Str("y".repeat(3000)));
        let (shrunk, fitted) = parts(&[point("m", 1, attrs)], &Map::new(), &scope("otlp", &Map::new()), 4000);
        assert_eq!((shrunk.len(), fitted.shrunk, fitted.too_large), (1, 1, 0));
        assert!(shrunk[0].raw.len() <= 4000);
        let (none, fitted) = parts(&[point("m", 1, Map::new())], &Map::new(), &scope("otlp", &Map::new()), 10);
        assert_eq!((none.len(), fitted.too_large), (0, 1), "nothing to cut: dropped, counted");
    }

    #[test]
    fn parts_joined_end_to_end_are_one_request_with_every_resource() {
        let mk = |host: &str| {
            let mut r = Map::new();
            r.insert("host.name", Value::Str(host.into()));
            r
        };
        let mut joined = Vec::new();
        for host in ["a", "b", "c"] {
            let (p, _) = parts(&[point("m", 1, Map::new()), point("n", 2, Map::new())], &mk(host), &scope("otlp", &Map::new()), 1_000_000);
            joined.extend_from_slice(&p[0].raw);
        }
        let r = ExportMetricsServiceRequest::decode(joined.as_slice()).expect("one valid request");
        assert_eq!(r.resource_metrics.len(), 3);
        assert_eq!(crate::reshape::items(Signal::Metrics, &joined), Some(6));
    }

    #[test]
    fn the_newrelic_preset_names_database_data_as_the_contrib_receivers_do() {
        let mut mysql = Map::new();
        mysql.insert("db.system.name", Value::Str("mysql".into()));
        let nr = scope("newrelic", &mysql);
        assert_eq!(nr.name, "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/mysqlreceiver");
        assert!(nr.version.starts_with("dbintel-"), "{}", nr.version);
        assert_eq!(scope("otlp", &mysql).name, "dbintel", "other sinks: dbintel's own");
        assert_eq!(scope("newrelic", &Map::new()).name, "dbintel", "not from a database");
    }
}
