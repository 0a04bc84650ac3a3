//! Batches to OTLP protobuf export requests, in the shape New Relic
//! accepts: attribute values of at most 4,095 characters (longer ones are
//! cut and the record marked), names of at most 255, at most 100
//! attributes per point, and requests of at most 1 MB (a batch that would
//! encode larger is split in halves until every part fits).
//!
//! Points of one metric (same name, unit and kind) in a batch share one
//! `Metric` message, so a scrape's thousand `postgresql.query.calls` points
//! carry the name once.

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

use dbintel_core::record::{Batch, LogRecord, MetricKind, MetricPoint, Number, Record, Temporality};

/// New Relic's limits (and sensible ones for any backend).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_request_bytes: usize,
    pub max_value_chars: usize,
    pub max_name_chars: usize,
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_request_bytes: 1_000_000, max_value_chars: 4095, max_name_chars: 255, max_attributes: 100 }
    }
}

/// The attribute set on a record one of whose values was cut.
pub const TRUNCATED: &str = "dbintel.truncated";

/// What shaping changed, for the sink's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shaped {
    pub values_truncated: u64,
    pub names_truncated: u64,
    pub attributes_dropped: u64,
}

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

/// One encoded export request, ready to send as it is.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub signal: Signal,
    /// Data points or log records inside.
    pub items: u32,
    pub payload: bytes::Bytes,
}

/// Cuts `s` to at most `max` characters (on a character boundary).
/// Returns whether it cut.
fn cut(s: &mut String, max: usize) -> bool {
    match s.char_indices().nth(max) {
        Some((at, _)) => {
            s.truncate(at);
            true
        }
        None => false,
    }
}

fn shape_value(v: &mut Value, limits: &Limits, shaped: &mut Shaped) -> bool {
    match v {
        Value::Str(s) if s.len() > limits.max_value_chars => cut(s, limits.max_value_chars),
        Value::Bytes(b) if b.len() > limits.max_value_chars => {
            b.truncate(limits.max_value_chars);
            true
        }
        Value::List(items) => items.iter_mut().fold(false, |any, v| shape_value(v, limits, shaped) | any),
        Value::Map(m) => shape_map(m, limits, shaped),
        _ => false,
    }
}

/// Shapes attributes in place; true when a value was cut.
fn shape_map(map: &mut Map, limits: &Limits, shaped: &mut Shaped) -> bool {
    let mut cut_any = false;
    if map.len() > limits.max_attributes {
        shaped.attributes_dropped += (map.len() - limits.max_attributes) as u64;
        map.truncate(limits.max_attributes);
    }
    for key in map.keys_mut() {
        if key.len() > limits.max_name_chars && cut(key, limits.max_name_chars) {
            shaped.names_truncated += 1;
        }
    }
    map.retain(|_, v| {
        if shape_value(v, limits, shaped) {
            shaped.values_truncated += 1;
            cut_any = true;
        }
        true
    });
    cut_any
}

/// Applies the limits to one record; marks it when a value was cut.
pub fn shape(record: &mut Record, limits: &Limits, shaped: &mut Shaped) {
    let mut cut_any = false;
    if let Record::Log(l) = record {
        if shape_value(&mut l.body, limits, shaped) {
            shaped.values_truncated += 1;
            cut_any = true;
        }
    }
    if let Record::Metric(m) = record {
        if m.name.len() > limits.max_name_chars && cut(&mut m.name, limits.max_name_chars) {
            shaped.names_truncated += 1;
        }
    }
    let attributes = record.attributes_mut();
    cut_any |= shape_map(attributes, limits, shaped);
    if cut_any {
        if attributes.len() >= limits.max_attributes {
            // room for the mark
            attributes.truncate(limits.max_attributes - 1);
            shaped.attributes_dropped += 1;
        }
        attributes.insert(TRUNCATED, Value::Bool(true));
    }
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

/// Encodes `items` as requests of at most `max` bytes, halving the slice
/// until each part fits. A single record larger than `max` (impossible
/// once values are cut to 4,095 characters and attributes to 100) is sent
/// alone rather than lost.
fn split<T>(items: &[T], max: usize, encode: &impl Fn(&[T]) -> Vec<u8>, signal: Signal, out: &mut Vec<Encoded>) {
    if items.is_empty() {
        return;
    }
    let bytes = encode(items);
    if bytes.len() <= max || items.len() == 1 {
        out.push(Encoded { signal, items: items.len() as u32, payload: bytes.into() });
        return;
    }
    let (left, right) = items.split_at(items.len() / 2);
    split(left, max, encode, signal, out);
    split(right, max, encode, signal, out);
}

/// The export requests for a batch (logs first, then metrics), under
/// `scope`. Records must already be shaped.
pub fn requests(batch: &Batch, resource_attributes: &Map, scope: &InstrumentationScope, limits: &Limits) -> Vec<Encoded> {
    let mut out = Vec::new();
    let logs: Vec<&LogRecord> = batch.records.iter().filter_map(|r| if let Record::Log(l) = r { Some(l) } else { None }).collect();
    let points: Vec<&MetricPoint> = batch.records.iter().filter_map(|r| if let Record::Metric(m) = r { Some(m) } else { None }).collect();
    let (max, resource) = (limits.max_request_bytes, resource_attributes);
    split(&logs, max, &|part| logs_request(resource, scope, part).encode_to_vec(), Signal::Logs, &mut out);
    split(&points, max, &|part| metrics_request(resource, scope, part).encode_to_vec(), Signal::Metrics, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbintel_core::record::Resource;

    fn point(name: &str, value: i64, attrs: Map) -> Record {
        Record::Metric(MetricPoint::new(name, "1", MetricKind::Gauge, Number::Int(value), 1, attrs))
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary_and_marked() {
        let mut attrs = Map::new();
        attrs.insert("db.query.text", Value::Str("é".repeat(5000)));
        let mut record = point("m", 1, attrs);
        let mut shaped = Shaped::default();
        shape(&mut record, &Limits::default(), &mut shaped);
        let text = record.attributes().get("db.query.text").and_then(Value::as_str).unwrap_or_default();
        assert_eq!(text.chars().count(), 4095);
        assert_eq!(record.attributes().get(TRUNCATED), Some(&Value::Bool(true)));
        assert_eq!(shaped.values_truncated, 1);
    }

    #[test]
    fn attributes_beyond_one_hundred_are_dropped_and_names_cut() {
        let mut attrs = Map::new();
        for i in 0..150 {
            attrs.insert(format!("a{i}"), Value::Int(i));
        }
        attrs.insert("n".repeat(300), Value::Int(1));
        let mut record = point(&"m".repeat(300), 1, attrs);
        let mut shaped = Shaped::default();
        shape(&mut record, &Limits::default(), &mut shaped);
        assert!(record.attributes().len() <= 100);
        assert_eq!(shaped.attributes_dropped, 51);
        if let Record::Metric(m) = &record {
            assert_eq!(m.name.len(), 255);
        }
    }

    #[test]
    fn attribute_names_over_255_characters_are_cut_on_their_own() {
        // few attributes, so nothing is dropped: only the names are at stake
        let mut attrs = Map::new();
        attrs.insert("k".repeat(300), Value::Int(1));
        attrs.insert("é".repeat(300), Value::Str("kept".into()));
        attrs.insert("short", Value::Int(3));
        let mut record = point("m", 1, attrs);
        let mut shaped = Shaped::default();
        shape(&mut record, &Limits::default(), &mut shaped);
        assert_eq!(shaped, Shaped { values_truncated: 0, names_truncated: 2, attributes_dropped: 0 });
        let attrs = record.attributes();
        assert_eq!(attrs.len(), 3, "no attribute dropped, no truncation mark for names");
        assert_eq!(attrs.get(&"k".repeat(255)), Some(&Value::Int(1)), "cut to 255 characters, value kept");
        assert_eq!(attrs.get(&"é".repeat(255)), Some(&Value::Str("kept".into())), "cut by characters, not bytes");
        assert_eq!(attrs.get("short"), Some(&Value::Int(3)));
        let mut exact = point("m", 1, Map::from_iter([("n".repeat(255), Value::Int(1))]));
        let mut shaped = Shaped::default();
        shape(&mut exact, &Limits::default(), &mut shaped);
        assert_eq!(shaped.names_truncated, 0, "255 characters is within the limit");
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
        let batch = Batch::new(Resource::default(), records);
        let requests = requests(&batch, &Map::new(), &scope("otlp", &Map::new()), &Limits::default());
        assert!(requests.len() > 1);
        assert!(requests.iter().all(|r| r.payload.len() <= 1_000_000));
        assert_eq!(requests.iter().map(|r| r.items).sum::<u32>(), 20_000);
        // points of one metric share a Metric message
        let first = ExportMetricsServiceRequest::decode(requests[0].payload.as_ref()).unwrap_or_default();
        assert_eq!(first.resource_metrics[0].scope_metrics[0].metrics.len(), 1);
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
