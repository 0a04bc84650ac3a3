//! Encoded requests taken apart again: split in halves (a request the
//! receiver finds too large, or one that does not fit once compressed), a
//! single record shrunk until it fits, data past the backend's window
//! removed. These work on the protobuf itself, so they serve requests
//! that waited in a queue (maybe on disk, from an earlier run) as well as
//! fresh ones.
//!
//! Halves are taken at the widest level that has more than one element:
//! resources, then scopes, then metrics (or log records), then a metric's
//! data points. Nothing is lost or repeated: the halves hold exactly the
//! items of the whole.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, Metric};
use prost::Message;

use crate::encode::Signal;
use crate::shape::{is_json, TRUNCATED};

/// Data points in a metric.
fn points(m: &Metric) -> usize {
    match &m.data {
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

fn metric_items(r: &ExportMetricsServiceRequest) -> usize {
    r.resource_metrics.iter().flat_map(|rm| &rm.scope_metrics).flat_map(|sm| &sm.metrics).map(points).sum()
}

fn log_items(r: &ExportLogsServiceRequest) -> usize {
    r.resource_logs.iter().flat_map(|rl| &rl.scope_logs).map(|sl| sl.log_records.len()).sum()
}

/// Data points or log records in an encoded request; `None` when the bytes
/// are not one.
pub fn items(signal: Signal, raw: &[u8]) -> Option<usize> {
    match signal {
        Signal::Metrics => ExportMetricsServiceRequest::decode(raw).ok().map(|r| metric_items(&r)),
        Signal::Logs => ExportLogsServiceRequest::decode(raw).ok().map(|r| log_items(&r)),
    }
}

/// Splits `v` in two non-empty halves, or gives it back.
fn halve<T>(v: &mut Vec<T>) -> Option<Vec<T>> {
    (v.len() > 1).then(|| v.split_off(v.len() / 2))
}

fn split_metric_points(m: &mut Metric) -> Option<Metric> {
    let mut right = Metric { data: None, ..m.clone() };
    right.data = match m.data.as_mut()? {
        metric::Data::Gauge(g) => {
            let points = halve(&mut g.data_points)?;
            Some(metric::Data::Gauge(opentelemetry_proto::tonic::metrics::v1::Gauge { data_points: points }))
        }
        metric::Data::Sum(s) => {
            let points = halve(&mut s.data_points)?;
            Some(metric::Data::Sum(opentelemetry_proto::tonic::metrics::v1::Sum { data_points: points, ..s.clone() }))
        }
        // dbintel sends no other kind
        _ => return None,
    };
    Some(right)
}

fn split_metrics(mut left: ExportMetricsServiceRequest) -> Option<(ExportMetricsServiceRequest, ExportMetricsServiceRequest)> {
    if let Some(rest) = halve(&mut left.resource_metrics) {
        return Some((left, ExportMetricsServiceRequest { resource_metrics: rest }));
    }
    let rm = left.resource_metrics.first_mut()?;
    let mut right = rm.clone();
    if let Some(rest) = halve(&mut rm.scope_metrics) {
        right.scope_metrics = rest;
    } else {
        let sm = rm.scope_metrics.first_mut()?;
        let mut right_scope = sm.clone();
        if let Some(rest) = halve(&mut sm.metrics) {
            right_scope.metrics = rest;
        } else {
            right_scope.metrics = vec![split_metric_points(sm.metrics.first_mut()?)?];
        }
        right.scope_metrics = vec![right_scope];
    }
    Some((left, ExportMetricsServiceRequest { resource_metrics: vec![right] }))
}

fn split_logs(mut left: ExportLogsServiceRequest) -> Option<(ExportLogsServiceRequest, ExportLogsServiceRequest)> {
    if let Some(rest) = halve(&mut left.resource_logs) {
        return Some((left, ExportLogsServiceRequest { resource_logs: rest }));
    }
    let rl = left.resource_logs.first_mut()?;
    let mut right = rl.clone();
    if let Some(rest) = halve(&mut rl.scope_logs) {
        right.scope_logs = rest;
    } else {
        let sl = rl.scope_logs.first_mut()?;
        let mut right_scope = sl.clone();
        right_scope.log_records = halve(&mut sl.log_records)?;
        right.scope_logs = vec![right_scope];
    }
    Some((left, ExportLogsServiceRequest { resource_logs: vec![right] }))
}

/// One half of a split request: its bytes and how many items it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Half {
    pub raw: Vec<u8>,
    pub items: u32,
}

/// The request in two halves; `None` for a single record (or bytes that
/// are not a request).
pub fn split(signal: Signal, raw: &[u8]) -> Option<(Half, Half)> {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    match signal {
        Signal::Metrics => {
            let (a, b) = split_metrics(ExportMetricsServiceRequest::decode(raw).ok()?)?;
            Some((
                Half { items: count(metric_items(&a)), raw: a.encode_to_vec() },
                Half { items: count(metric_items(&b)), raw: b.encode_to_vec() },
            ))
        }
        Signal::Logs => {
            let (a, b) = split_logs(ExportLogsServiceRequest::decode(raw).ok()?)?;
            Some((
                Half { items: count(log_items(&a)), raw: a.encode_to_vec() },
                Half { items: count(log_items(&b)), raw: b.encode_to_vec() },
            ))
        }
    }
}

/// How a single record was made to fit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Shrunk {
    /// Texts cut (each cut halves the longest text).
    pub cuts: u32,
    /// JSON values removed.
    pub json_removed: u32,
}

fn text(v: Option<&AnyValue>) -> Option<&String> {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

fn text_mut(v: Option<&mut AnyValue>) -> Option<&mut String> {
    match v.and_then(|v| v.value.as_mut()) {
        Some(any_value::Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// Cuts the longest text among `resource` and `record` attributes (and a
/// log's body) in half, or removes it whole when it is JSON (never cut
/// into invalid JSON), and marks the record. False when no text is left.
fn shrink_once(resource: &mut Vec<KeyValue>, record: &mut Vec<KeyValue>, mut body: Option<&mut AnyValue>, shrunk: &mut Shrunk) -> bool {
    #[derive(Clone, Copy)]
    enum Spot {
        Resource(usize),
        Record(usize),
        Body,
    }
    let mut best: Option<(usize, Spot)> = None;
    let mut consider = |len: usize, spot: Spot| {
        if best.is_none_or(|(l, _)| len > l) {
            best = Some((len, spot));
        }
    };
    for (i, kv) in resource.iter().enumerate() {
        if let Some(s) = text(kv.value.as_ref()) {
            consider(s.len(), Spot::Resource(i));
        }
    }
    for (i, kv) in record.iter().enumerate() {
        if let Some(s) = text(kv.value.as_ref()) {
            consider(s.len(), Spot::Record(i));
        }
    }
    if let Some(s) = text(body.as_deref()) {
        consider(s.len(), Spot::Body);
    }
    let Some((_, spot)) = best else { return false };
    let (list, at) = match spot {
        Spot::Resource(i) => (Some(&mut *resource), i),
        Spot::Record(i) => (Some(&mut *record), i),
        Spot::Body => (None, 0),
    };
    let target = match list {
        Some(list) => text_mut(list[at].value.as_mut()),
        None => text_mut(body.as_deref_mut()),
    };
    let Some(s) = target else { return false };
    if is_json(s) {
        match spot {
            Spot::Resource(i) => drop(resource.remove(i)),
            Spot::Record(i) => drop(record.remove(i)),
            Spot::Body => {
                if let Some(b) = body {
                    b.value = None;
                }
            }
        }
        shrunk.json_removed += 1;
    } else {
        let keep = s.chars().count() / 2;
        crate::shape::cut(s, keep);
        shrunk.cuts += 1;
    }
    if !record.iter().any(|kv| kv.key == TRUNCATED) {
        record.push(KeyValue {
            key: TRUNCATED.into(),
            value: Some(AnyValue { value: Some(any_value::Value::BoolValue(true)) }),
            ..Default::default()
        });
    }
    true
}

/// Shrinks a request holding a single record until `fits` says yes: the
/// longest text (a record or resource attribute, a log body) is cut in
/// half, again and again; a JSON value is removed whole. The record is
/// marked `dbintel.truncated`. `None` when nothing is left to cut (or the
/// request already fits: nothing to do).
pub fn shrink(signal: Signal, raw: &[u8], fits: &mut dyn FnMut(&[u8]) -> bool) -> Option<(Vec<u8>, Shrunk)> {
    let mut shrunk = Shrunk::default();
    let mut empty = Vec::new();
    match signal {
        Signal::Metrics => {
            let mut r = ExportMetricsServiceRequest::decode(raw).ok()?;
            loop {
                let bytes = r.encode_to_vec();
                if fits(&bytes) {
                    return (shrunk != Shrunk::default()).then_some((bytes, shrunk));
                }
                let rm = r.resource_metrics.first_mut()?;
                let resource = rm.resource.as_mut().map_or(&mut empty, |res| &mut res.attributes);
                let m = rm.scope_metrics.first_mut()?.metrics.first_mut()?;
                let point = match m.data.as_mut()? {
                    metric::Data::Gauge(g) => g.data_points.first_mut()?,
                    metric::Data::Sum(s) => s.data_points.first_mut()?,
                    _ => return None,
                };
                if !shrink_once(resource, &mut point.attributes, None, &mut shrunk) {
                    return None;
                }
            }
        }
        Signal::Logs => {
            let mut r = ExportLogsServiceRequest::decode(raw).ok()?;
            loop {
                let bytes = r.encode_to_vec();
                if fits(&bytes) {
                    return (shrunk != Shrunk::default()).then_some((bytes, shrunk));
                }
                let rl = r.resource_logs.first_mut()?;
                let resource = rl.resource.as_mut().map_or(&mut empty, |res| &mut res.attributes);
                let log = rl.scope_logs.first_mut()?.log_records.first_mut()?;
                if !shrink_once(resource, &mut log.attributes, log.body.as_mut(), &mut shrunk) {
                    return None;
                }
            }
        }
    }
}

/// Removes the data older than `cutoff` (unix ns); the remaining request
/// (`None` when nothing is left) and how many items went.
pub fn drop_older_than(signal: Signal, raw: &[u8], cutoff: u64) -> Option<(Option<Vec<u8>>, u32)> {
    let old = |t: u64| t != 0 && t < cutoff;
    let mut gone = 0u32;
    let left = match signal {
        Signal::Metrics => {
            let mut r = ExportMetricsServiceRequest::decode(raw).ok()?;
            for rm in &mut r.resource_metrics {
                for sm in &mut rm.scope_metrics {
                    for m in &mut sm.metrics {
                        let before = points(m);
                        match m.data.as_mut() {
                            Some(metric::Data::Gauge(g)) => g.data_points.retain(|p| !old(p.time_unix_nano)),
                            Some(metric::Data::Sum(s)) => s.data_points.retain(|p| !old(p.time_unix_nano)),
                            _ => {}
                        }
                        gone += (before - points(m)) as u32;
                    }
                    sm.metrics.retain(|m| points(m) > 0);
                }
                rm.scope_metrics.retain(|sm| !sm.metrics.is_empty());
            }
            r.resource_metrics.retain(|rm| !rm.scope_metrics.is_empty());
            (!r.resource_metrics.is_empty()).then(|| r.encode_to_vec())
        }
        Signal::Logs => {
            let mut r = ExportLogsServiceRequest::decode(raw).ok()?;
            for rl in &mut r.resource_logs {
                for sl in &mut rl.scope_logs {
                    let before = sl.log_records.len();
                    sl.log_records.retain(|l| !old(if l.time_unix_nano != 0 { l.time_unix_nano } else { l.observed_time_unix_nano }));
                    gone += (before - sl.log_records.len()) as u32;
                }
                rl.scope_logs.retain(|sl| !sl.log_records.is_empty());
            }
            r.resource_logs.retain(|rl| !rl.scope_logs.is_empty());
            (!r.resource_logs.is_empty()).then(|| r.encode_to_vec())
        }
    };
    Some((left, gone))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{logs_request, metrics_request, scope};
    use dbintel_core::record::{LogRecord, MetricKind, MetricPoint, Number};
    use dbintel_stdlib::{Map, Value};

    fn metric_points(n: usize, names: usize) -> Vec<MetricPoint> {
        (0..n)
            .map(|i| MetricPoint::new(format!("m{}", i % names), "1", MetricKind::Gauge, Number::Int(i as i64), 100 + i as u64, Map::new()))
            .collect()
    }

    #[test]
    fn halves_hold_every_item_exactly_once_at_each_level() {
        // one resource, one metric of 9 points: split by points
        let pts = metric_points(9, 1);
        let refs: Vec<&MetricPoint> = pts.iter().collect();
        let raw = metrics_request(&Map::new(), &scope("otlp", &Map::new()), &refs).encode_to_vec();
        let (a, b) = split(Signal::Metrics, &raw).expect("splits");
        assert_eq!((a.items, b.items), (4, 5));
        assert_eq!(items(Signal::Metrics, &a.raw), Some(4));
        // several resources concatenated: split by resource first
        let mut packed = raw.clone();
        packed.extend_from_slice(&raw);
        packed.extend_from_slice(&raw);
        let (a, b) = split(Signal::Metrics, &packed).expect("splits");
        assert_eq!((a.items, b.items), (9, 18));
        // a single point cannot be split
        let one = metrics_request(&Map::new(), &scope("otlp", &Map::new()), &refs[..1]).encode_to_vec();
        assert_eq!(split(Signal::Metrics, &one), None);
        // logs
        let logs: Vec<LogRecord> = (0..5).map(|_| LogRecord::default()).collect();
        let refs: Vec<&LogRecord> = logs.iter().collect();
        let raw = logs_request(&Map::new(), &scope("otlp", &Map::new()), &refs).encode_to_vec();
        let (a, b) = split(Signal::Logs, &raw).expect("splits");
        assert_eq!((a.items, b.items), (2, 3));
    }

    #[test]
    fn a_single_record_is_shrunk_by_its_longest_text_and_a_json_value_is_removed_whole() {
        let mut attrs = Map::new();
        attrs.insert("db.query.plan", Value::Str(format!("[{{\"Plan\":\"{}\"}}]", "p".repeat(3000))));
        attrs.insert("db.query.text", Value::Str("q".repeat(2000)));
        attrs.insert("db.query.id", Value::Str("7".into()));
        let log = LogRecord { attributes: attrs, body: Value::Str("b".repeat(100)), ..Default::default() };
        let raw = logs_request(&Map::new(), &scope("otlp", &Map::new()), &[&log]).encode_to_vec();
        let (shrunk, how) = shrink(Signal::Logs, &raw, &mut |b| b.len() < 2500).expect("shrinks");
        assert!(shrunk.len() < 2500);
        assert_eq!(how.json_removed, 1, "the plan went first (longest), whole");
        let r = ExportLogsServiceRequest::decode(shrunk.as_slice()).unwrap();
        let attrs = &r.resource_logs[0].scope_logs[0].log_records[0].attributes;
        let get = |k: &str| attrs.iter().find(|kv| kv.key == k).and_then(|kv| kv.value.clone()).and_then(|v| v.value);
        assert_eq!(get("db.query.plan"), None, "removed, not cut");
        assert_eq!(get("db.query.id"), Some(any_value::Value::StringValue("7".into())));
        assert_eq!(get(TRUNCATED), Some(any_value::Value::BoolValue(true)));
        assert!(matches!(get("db.query.text"), Some(any_value::Value::StringValue(s)) if s.len() == 2000), "already fits");
        // nothing left to cut: None
        let bare = logs_request(&Map::new(), &scope("otlp", &Map::new()), &[&LogRecord::default()]).encode_to_vec();
        assert_eq!(shrink(Signal::Logs, &bare, &mut |_| false), None);
    }

    #[test]
    fn expired_data_is_removed_and_counted() {
        let pts = metric_points(10, 2);
        let refs: Vec<&MetricPoint> = pts.iter().collect();
        let raw = metrics_request(&Map::new(), &scope("otlp", &Map::new()), &refs).encode_to_vec();
        let (left, gone) = drop_older_than(Signal::Metrics, &raw, 105).unwrap();
        assert_eq!(gone, 5);
        assert_eq!(items(Signal::Metrics, &left.unwrap()), Some(5));
        let (left, gone) = drop_older_than(Signal::Metrics, &raw, 1000).unwrap();
        assert_eq!((left, gone), (None, 10));
    }
}
