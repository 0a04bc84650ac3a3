//! Shaping records to what the backend keeps, before they are encoded.
//!
//! New Relic validates OTLP *after* it has answered 200: a value it
//! cannot store is pruned or cut, a record it cannot store is dropped,
//! and all anyone sees is an `NrIntegrationError` event. So every limit
//! it documents is applied here, where it can be counted, and what
//! dbintel counts as delivered is what New Relic keeps:
//!
//! - attribute values of at most 4,095 characters on a metric point; on a
//!   log record, what New Relic keeps of a long value (its first 4,094
//!   characters searchable, the next 128,000 bytes as a "blob": a plan, a
//!   long statement): a longer text is cut (on a character boundary) and
//!   the record marked `dbintel.truncated`; a JSON value (a plan) is never
//!   cut into invalid JSON: it is removed and the record marked;
//! - attribute names of at most 255 characters (cut);
//! - arrays of at most 64 entries (cut, marked); arrays that are not flat
//!   and of one type, and maps, become a JSON string (New Relic lists
//!   maps among what it prunes);
//! - NaN and ±Infinity: a point with such a value is dropped, an
//!   attribute with one removed, both counted;
//! - attribute counts: a metric is stored with its resource's and
//!   scope's attributes flattened onto it, at most 100 in all (a log
//!   record 255), so a record gets what the resource leaves; the resource
//!   itself is capped;
//! - timestamps: data older than New Relic's window (48 hours) is counted
//!   as expired and not sent;
//! - a log attribute whose value is a JSON object is sent wrapped in an
//!   array (`[{…}]`), as New Relic's own collector sends MySQL plans: log
//!   ingest flattens a JSON object string into one attribute per leaf,
//!   and keeps an array whole.
//!
//! A plain `otlp` sink keeps the length and count limits (sensible for
//! any backend) but not New Relic's rules about types, NaN, JSON and age.

use std::time::{Duration, SystemTime};

use dbintel_core::record::{LogRecord, MetricPoint, Number, Record};
use dbintel_stdlib::{Map, Value};

/// The attribute set on a record one of whose values was cut or removed.
pub const TRUNCATED: &str = "dbintel.truncated";

/// What the backend accepts, and what shaping does about the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Bytes of one request as sent (compressed).
    pub max_request_bytes: usize,
    pub max_value_chars: usize,
    /// On a log record, beyond `max_value_chars - 1` characters, this many
    /// more bytes are kept (New Relic's log "blob"; 0: none).
    pub log_blob_bytes: usize,
    pub max_name_chars: usize,
    /// Attributes stored with a metric point: resource + scope + point.
    pub max_metric_attributes: usize,
    /// Attributes stored with a log record: resource + scope + record.
    pub max_log_attributes: usize,
    pub max_resource_attributes: usize,
    /// Entries in an array value; `None`: no cap.
    pub max_array_len: Option<usize>,
    /// Maps and arrays that are not flat become JSON strings.
    pub flatten_maps: bool,
    /// NaN and ±Infinity are dropped (points) or removed (attributes).
    pub drop_non_finite: bool,
    /// Log attributes holding a JSON object are sent as `[{…}]`.
    pub wrap_json_objects: bool,
    /// Data older than this is expired, not sent.
    pub max_age: Option<Duration>,
}

/// Attributes the instrumentation scope adds to every stored record
/// (`otel.library.name`, `otel.library.version`).
pub const SCOPE_ATTRIBUTES: usize = 2;

impl Limits {
    /// New Relic's documented limits (docs.newrelic.com, OTLP endpoint
    /// "attribute limits" and "payload limits"; Metric API and Log API
    /// limits).
    pub fn newrelic() -> Limits {
        Limits {
            max_request_bytes: 1_000_000,
            max_value_chars: 4095,
            // docs.newrelic.com/docs/logs/ui-data/long-logs-blobs
            log_blob_bytes: 128_000,
            max_name_chars: 255,
            max_metric_attributes: 100,
            max_log_attributes: 255,
            max_resource_attributes: 64,
            max_array_len: Some(64),
            flatten_maps: true,
            drop_non_finite: true,
            wrap_json_objects: true,
            max_age: Some(Duration::from_secs(48 * 3600)),
        }
    }

    /// Any OTLP receiver: the same sizes, OTLP's own value types.
    pub fn otlp() -> Limits {
        Limits {
            max_array_len: None,
            flatten_maps: false,
            drop_non_finite: false,
            wrap_json_objects: false,
            max_age: None,
            ..Limits::newrelic()
        }
    }

    pub fn for_sink(kind: &str) -> Limits {
        if kind == "newrelic" {
            Limits::newrelic()
        } else {
            Limits::otlp()
        }
    }

    /// The oldest time (unix ns) still inside the window, if there is one.
    pub fn cutoff(&self, now: SystemTime) -> Option<u64> {
        let age = self.max_age?;
        let since = now.checked_sub(age)?.duration_since(SystemTime::UNIX_EPOCH).ok()?;
        Some(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// What shaping changed or dropped, for the sink's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shaped {
    pub values_truncated: u64,
    pub names_truncated: u64,
    pub attributes_dropped: u64,
    pub arrays_truncated: u64,
    /// Maps and nested arrays sent as JSON strings.
    pub values_serialized: u64,
    /// JSON values too long to send whole: removed, never cut.
    pub json_removed: u64,
    /// JSON objects sent wrapped in an array.
    pub json_wrapped: u64,
    /// NaN / ±Infinity attribute values removed.
    pub non_finite_attributes: u64,
    /// Points dropped for a NaN / ±Infinity value (items lost).
    pub non_finite_points: u64,
    /// Records older than the backend's window (items lost).
    pub expired: u64,
}

impl Shaped {
    pub fn add(&mut self, o: &Shaped) {
        self.values_truncated += o.values_truncated;
        self.names_truncated += o.names_truncated;
        self.attributes_dropped += o.attributes_dropped;
        self.arrays_truncated += o.arrays_truncated;
        self.values_serialized += o.values_serialized;
        self.json_removed += o.json_removed;
        self.json_wrapped += o.json_wrapped;
        self.non_finite_attributes += o.non_finite_attributes;
        self.non_finite_points += o.non_finite_points;
        self.expired += o.expired;
    }
}

/// Cuts `s` to at most `max` characters (on a character boundary).
/// Returns whether it cut.
pub fn cut(s: &mut String, max: usize) -> bool {
    match s.char_indices().nth(max) {
        Some((at, _)) => {
            s.truncate(at);
            true
        }
        None => false,
    }
}

/// Whether `s` is a JSON object or array (what must never be cut).
pub fn is_json(s: &str) -> bool {
    let t = s.trim();
    let framed = (t.starts_with('{') && t.ends_with('}')) || (t.starts_with('[') && t.ends_with(']'));
    framed && serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok()
}

fn is_json_object(s: &str) -> bool {
    let t = s.trim();
    t.starts_with('{') && t.ends_with('}') && serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok()
}

fn non_finite(v: &Value) -> bool {
    match v {
        Value::Double(d) => !d.is_finite(),
        Value::List(items) => items.iter().any(non_finite),
        Value::Map(m) => m.iter().any(|(_, v)| non_finite(v)),
        _ => false,
    }
}

/// An array New Relic stores as it is: scalars of one type.
fn flat(items: &[Value]) -> bool {
    let kind = |v: &Value| match v {
        Value::Bool(_) => 1,
        Value::Int(_) => 2,
        Value::Double(_) => 3,
        Value::Str(_) => 4,
        _ => 0,
    };
    items.first().is_none_or(|first| kind(first) != 0 && items.iter().all(|v| kind(v) == kind(first)))
}

/// What happened to one value.
enum Fate {
    Kept,
    /// Cut or shortened: the record is marked.
    Cut,
    /// Must go (a NaN, a JSON value too long to send whole).
    Remove {
        mark: bool,
    },
}

/// How many bytes of `s` the backend keeps, on a character boundary: at
/// most `max_value_chars` characters, or on a log record the first
/// `max_value_chars - 1` and `log_blob_bytes` more.
fn kept_bytes(s: &str, limits: &Limits, log: bool) -> usize {
    let chars = if log && limits.log_blob_bytes > 0 { limits.max_value_chars.saturating_sub(1) } else { limits.max_value_chars };
    let Some((head, _)) = s.char_indices().nth(chars) else { return s.len() };
    if !(log && limits.log_blob_bytes > 0) {
        return head;
    }
    let mut end = (head + limits.log_blob_bytes).min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

fn shape_value(v: &mut Value, limits: &Limits, log: bool, shaped: &mut Shaped) -> Fate {
    if limits.drop_non_finite && non_finite(v) {
        shaped.non_finite_attributes += 1;
        return Fate::Remove { mark: false };
    }
    if limits.flatten_maps {
        let nested = match v {
            Value::Map(_) => true,
            Value::List(items) => !flat(items),
            _ => false,
        };
        if nested {
            *v = Value::Str(dbintel_stdlib::functions::to_json(v).to_string());
            shaped.values_serialized += 1;
        }
    }
    match v {
        Value::Str(s) => {
            if limits.wrap_json_objects && log && is_json_object(s) {
                *s = format!("[{}]", s.trim());
                shaped.json_wrapped += 1;
            }
            let keep = kept_bytes(s, limits, log);
            if s.len() > keep {
                if is_json(s) {
                    shaped.json_removed += 1;
                    return Fate::Remove { mark: true };
                }
                s.truncate(keep);
                shaped.values_truncated += 1;
                return Fate::Cut;
            }
            Fate::Kept
        }
        Value::Bytes(b) if b.len() > limits.max_value_chars => {
            b.truncate(limits.max_value_chars);
            shaped.values_truncated += 1;
            Fate::Cut
        }
        Value::List(items) => {
            let mut fate = Fate::Kept;
            if let Some(max) = limits.max_array_len.filter(|max| items.len() > *max) {
                items.truncate(max);
                shaped.arrays_truncated += 1;
                fate = Fate::Cut;
            }
            for item in items.iter_mut() {
                if let Value::Str(s) = item {
                    if cut(s, limits.max_value_chars) {
                        shaped.values_truncated += 1;
                        fate = Fate::Cut;
                    }
                }
            }
            fate
        }
        Value::Map(m) => {
            // kept as a map (a plain otlp sink): its entries obey the limits
            if shape_map(m, limits.max_metric_attributes, limits, log, shaped) {
                Fate::Cut
            } else {
                Fate::Kept
            }
        }
        _ => Fate::Kept,
    }
}

/// Shapes attributes in place, keeping at most `max` of them; true when
/// the record must be marked.
fn shape_map(map: &mut Map, max: usize, limits: &Limits, log: bool, shaped: &mut Shaped) -> bool {
    let mut mark = false;
    for key in map.keys_mut() {
        if key.len() > limits.max_name_chars && cut(key, limits.max_name_chars) {
            shaped.names_truncated += 1;
        }
    }
    map.retain(|_, v| match shape_value(v, limits, log, shaped) {
        Fate::Kept => true,
        Fate::Cut => {
            mark = true;
            true
        }
        Fate::Remove { mark: m } => {
            mark |= m;
            false
        }
    });
    if map.len() > max {
        shaped.attributes_dropped += (map.len() - max) as u64;
        map.truncate(max);
        mark = true;
    }
    mark
}

/// Caps and shapes a resource's attributes (they are flattened onto every
/// record, so they obey the same value rules).
pub fn shape_resource(resource: &mut Map, limits: &Limits, shaped: &mut Shaped) {
    shape_map(resource, limits.max_resource_attributes, limits, false, shaped);
}

/// The time a record is stored at.
fn record_time(record: &Record) -> u64 {
    match record {
        Record::Metric(m) => m.time_unix_nano,
        Record::Log(l) if l.time_unix_nano != 0 => l.time_unix_nano,
        Record::Log(l) => l.observed_time_unix_nano,
    }
}

/// Applies the limits to one record, given how many attributes its
/// resource carries; false when the record must not be sent (a NaN point,
/// data past the window), counted in `shaped`.
pub fn shape(record: &mut Record, resource_attributes: usize, cutoff: Option<u64>, limits: &Limits, shaped: &mut Shaped) -> bool {
    let time = record_time(record);
    if cutoff.is_some_and(|c| time != 0 && time < c) {
        shaped.expired += 1;
        return false;
    }
    let mut mark = false;
    let log = record.is_log();
    match record {
        Record::Metric(MetricPoint { value: Number::Double(d), .. }) if limits.drop_non_finite && !d.is_finite() => {
            shaped.non_finite_points += 1;
            return false;
        }
        Record::Metric(m) => {
            if m.name.len() > limits.max_name_chars && cut(&mut m.name, limits.max_name_chars) {
                shaped.names_truncated += 1;
            }
        }
        Record::Log(LogRecord { body, .. }) => match shape_value(body, limits, false, shaped) {
            Fate::Kept => {}
            Fate::Cut => mark = true,
            Fate::Remove { mark: m } => {
                *body = Value::Nil;
                mark |= m;
            }
        },
    }
    let total = if log { limits.max_log_attributes } else { limits.max_metric_attributes };
    // at least the mark always fits
    let budget = total.saturating_sub(resource_attributes + SCOPE_ATTRIBUTES).max(1);
    let attributes = record.attributes_mut();
    mark |= shape_map(attributes, budget, limits, log, shaped);
    if mark {
        if attributes.len() >= budget && attributes.get(TRUNCATED).is_none() {
            // room for the mark
            attributes.truncate(budget - 1);
            shaped.attributes_dropped += 1;
        }
        attributes.insert(TRUNCATED, Value::Bool(true));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbintel_core::record::MetricKind;

    fn point(name: &str, value: Number, attrs: Map) -> Record {
        Record::Metric(MetricPoint::new(name, "1", MetricKind::Gauge, value, 1, attrs))
    }

    fn log(attrs: Map) -> Record {
        Record::Log(LogRecord { attributes: attrs, time_unix_nano: 1, ..Default::default() })
    }

    fn attrs(pairs: Vec<(&str, Value)>) -> Map {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    fn shaped(record: &mut Record, limits: Limits) -> (bool, Shaped) {
        let mut s = Shaped::default();
        let keep = shape(record, 0, None, &limits, &mut s);
        (keep, s)
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary_and_marked() {
        let mut record = point("m", Number::Int(1), attrs(vec![("db.query.text", Value::Str("é".repeat(5000)))]));
        let (_, s) = shaped(&mut record, Limits::newrelic());
        let text = record.attributes().get("db.query.text").and_then(Value::as_str).unwrap_or_default();
        assert_eq!(text.chars().count(), 4095);
        assert_eq!(record.attributes().get(TRUNCATED), Some(&Value::Bool(true)));
        assert_eq!(s.values_truncated, 1);
    }

    #[test]
    fn a_json_plan_too_long_is_removed_never_cut_into_invalid_json() {
        let plan = format!("[{{\"Plan\": {{\"Node Type\": \"Seq Scan\", \"Filter\": \"{}\"}}}}]", "x".repeat(140_000));
        let mut record = log(attrs(vec![("postgresql.query_plan", Value::Str(plan)), ("db.query.id", Value::Str("42".into()))]));
        let (keep, s) = shaped(&mut record, Limits::newrelic());
        assert!(keep);
        assert_eq!(record.attributes().get("postgresql.query_plan"), None, "removed, not cut");
        assert_eq!(record.attributes().get("db.query.id"), Some(&Value::Str("42".into())));
        assert_eq!(record.attributes().get(TRUNCATED), Some(&Value::Bool(true)));
        assert_eq!((s.json_removed, s.values_truncated), (1, 0));
    }

    #[test]
    fn a_long_plan_on_a_log_is_kept_whole_as_new_relic_keeps_it_as_a_blob() {
        // a real plan of a join or two runs past 4,095 characters
        let plan = format!("[{{\"Plan\": {{\"Node Type\": \"Seq Scan\", \"Filter\": \"{}\"}}}}]", "é".repeat(5000));
        let mut record = log(attrs(vec![("postgresql.query_plan", Value::Str(plan.clone()))]));
        let (keep, s) = shaped(&mut record, Limits::newrelic());
        assert!(keep);
        assert_eq!(record.attributes().get("postgresql.query_plan"), Some(&Value::Str(plan.clone())));
        assert_eq!(record.attributes().get(TRUNCATED), None);
        assert_eq!((s.json_removed, s.values_truncated), (0, 0));
        // a long text on a log keeps 4,094 characters and 128,000 bytes more, on a character boundary
        let text = "é".repeat(100_000);
        let mut record = log(attrs(vec![("text", Value::Str(text))]));
        shaped(&mut record, Limits::newrelic());
        let sent = record.attributes().get("text").and_then(Value::as_str).unwrap_or_default();
        assert_eq!(sent.len(), 4094 * 2 + 128_000);
        // on a metric point the same plan is cut to 4,095 characters: removed, being JSON
        let mut metric = point("m", Number::Int(1), attrs(vec![("p", Value::Str(plan)), ("t", Value::Str("é".repeat(5000)))]));
        let (_, s) = shaped(&mut metric, Limits::newrelic());
        assert_eq!(metric.attributes().get("p"), None);
        assert_eq!(metric.attributes().get("t").and_then(Value::as_str).map(|t| t.chars().count()), Some(4095));
        assert_eq!((s.json_removed, s.values_truncated), (1, 1));
    }

    #[test]
    fn a_json_object_on_a_log_is_wrapped_in_an_array_as_new_relics_collector_sends_plans() {
        let plan = r#"{"query_block": {"select_id": 1}}"#;
        let mut record = log(attrs(vec![("mysql.query_plan", Value::Str(plan.into())), ("text", Value::Str("{not json".into()))]));
        let (_, s) = shaped(&mut record, Limits::newrelic());
        let sent = record.attributes().get("mysql.query_plan").and_then(Value::as_str).unwrap_or_default();
        assert_eq!(sent, r#"[{"query_block": {"select_id": 1}}]"#);
        assert!(serde_json::from_str::<serde_json::Value>(sent).is_ok_and(|v| v.is_array()));
        assert_eq!(record.attributes().get("text"), Some(&Value::Str("{not json".into())), "only valid JSON objects");
        assert_eq!(s.json_wrapped, 1);
        assert_eq!(record.attributes().get(TRUNCATED), None, "wrapping loses nothing");
        // a PostgreSQL plan is already an array; a metric attribute is not log ingest
        let mut pg = log(attrs(vec![("postgresql.query_plan", Value::Str(r#"[{"Plan": {}}]"#.into()))]));
        assert_eq!(shaped(&mut pg, Limits::newrelic()).1.json_wrapped, 0);
        let mut metric = point("m", Number::Int(1), attrs(vec![("p", Value::Str(plan.into()))]));
        assert_eq!(shaped(&mut metric, Limits::newrelic()).1.json_wrapped, 0);
        let mut other = log(attrs(vec![("p", Value::Str(plan.into()))]));
        assert_eq!(shaped(&mut other, Limits::otlp()).1.json_wrapped, 0, "a plain otlp sink sends values as they are");
    }

    #[test]
    fn maps_become_json_strings_and_arrays_stop_at_64_for_new_relic() {
        let map = Value::Map(attrs(vec![("a", Value::Int(1)), ("b", Value::Str("x".into()))]));
        let long: Vec<Value> = (0..100).map(Value::Int).collect();
        let mixed = Value::List(vec![Value::Int(1), Value::Str("two".into())]);
        let mut record = point("m", Number::Int(1), attrs(vec![("map", map), ("long", Value::List(long)), ("mixed", mixed)]));
        let (_, s) = shaped(&mut record, Limits::newrelic());
        let a = record.attributes();
        assert_eq!(a.get("map"), Some(&Value::Str(r#"{"a":1,"b":"x"}"#.into())));
        assert_eq!(a.get("mixed"), Some(&Value::Str(r#"[1,"two"]"#.into())), "a heterogeneous array is not stored as one");
        assert!(matches!(a.get("long"), Some(Value::List(l)) if l.len() == 64));
        assert_eq!(a.get(TRUNCATED), Some(&Value::Bool(true)));
        assert_eq!((s.values_serialized, s.arrays_truncated), (2, 1));
    }

    #[test]
    fn nan_and_infinity_drop_the_point_or_remove_the_attribute_counted() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut p = point("m", Number::Double(bad), Map::new());
            let (keep, s) = shaped(&mut p, Limits::newrelic());
            assert!(!keep, "{bad}");
            assert_eq!(s.non_finite_points, 1);
            let mut a = point("m", Number::Double(1.5), attrs(vec![("ratio", Value::Double(bad)), ("k", Value::Int(1))]));
            let (keep, s) = shaped(&mut a, Limits::newrelic());
            assert!(keep);
            assert_eq!(a.attributes().get("ratio"), None);
            assert_eq!(s.non_finite_attributes, 1);
        }
        let mut p = point("m", Number::Double(f64::NAN), Map::new());
        assert!(shaped(&mut p, Limits::otlp()).0, "NaN is valid OTLP for a plain otlp sink");
    }

    #[test]
    fn a_record_gets_the_attributes_its_resource_leaves() {
        let many: Map = (0..150).map(|i| (format!("a{i}"), Value::Int(i))).collect();
        let mut p = point("m", Number::Int(1), many.clone());
        let mut s = Shaped::default();
        assert!(shape(&mut p, 30, None, &Limits::newrelic(), &mut s));
        assert_eq!(p.attributes().len(), 100 - 30 - SCOPE_ATTRIBUTES, "the mark counts too");
        assert_eq!(p.attributes().get(TRUNCATED), Some(&Value::Bool(true)));
        let mut l = log(many);
        let mut s = Shaped::default();
        assert!(shape(&mut l, 30, None, &Limits::newrelic(), &mut s));
        assert_eq!(l.attributes().len(), 150, "a log record may carry 255 in all");
        let mut resource: Map = (0..80).map(|i| (format!("r{i}"), Value::Int(i))).collect();
        shape_resource(&mut resource, &Limits::newrelic(), &mut s);
        assert_eq!(resource.len(), 64);
    }

    #[test]
    fn data_older_than_the_window_is_expired_not_sent() {
        let now = SystemTime::now();
        let cutoff = Limits::newrelic().cutoff(now);
        let ns = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let mut old = Record::Metric(MetricPoint::new(
            "m",
            "1",
            MetricKind::Gauge,
            Number::Int(1),
            ns(now - Duration::from_secs(49 * 3600)),
            Map::new(),
        ));
        let mut fresh =
            Record::Metric(MetricPoint::new("m", "1", MetricKind::Gauge, Number::Int(1), ns(now - Duration::from_secs(3600)), Map::new()));
        let mut s = Shaped::default();
        assert!(!shape(&mut old, 0, cutoff, &Limits::newrelic(), &mut s));
        assert!(shape(&mut fresh, 0, cutoff, &Limits::newrelic(), &mut s));
        assert_eq!(s.expired, 1);
        assert_eq!(Limits::otlp().cutoff(now), None, "no window for a plain otlp sink");
    }

    #[test]
    fn attribute_names_over_255_characters_are_cut_on_their_own() {
        let mut record =
            point("m", Number::Int(1), attrs(vec![(&"k".repeat(300), Value::Int(1)), (&"é".repeat(300), Value::Str("kept".into()))]));
        let (_, s) = shaped(&mut record, Limits::newrelic());
        assert_eq!(s.names_truncated, 2);
        assert_eq!(record.attributes().get(&"k".repeat(255)), Some(&Value::Int(1)));
        assert_eq!(record.attributes().get(&"é".repeat(255)), Some(&Value::Str("kept".into())));
        assert_eq!(record.attributes().get(TRUNCATED), None, "a cut name is not a cut value");
    }
}
