//! The data model: OTLP-shaped records grouped in batches that share a
//! resource. Converted to OTLP wire types only at sinks.

use dbintel_stdlib::{Map, Value};

use crate::budget::Charge;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    Delta,
    Cumulative,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricKind {
    Gauge,
    Sum { monotonic: bool, temporality: Temporality },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Double(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub name: String,
    pub unit: String,
    pub description: String,
    pub kind: MetricKind,
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    pub value: Number,
    pub attributes: Map,
}

impl MetricPoint {
    /// A point at `now` with no start time and no description.
    pub fn new(
        name: impl Into<String>,
        unit: impl Into<String>,
        kind: MetricKind,
        value: Number,
        now: u64,
        attributes: Map,
    ) -> MetricPoint {
        MetricPoint {
            name: name.into(),
            unit: unit.into(),
            description: String::new(),
            kind,
            start_time_unix_nano: 0,
            time_unix_nano: now,
            value,
            attributes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogRecord {
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub severity_number: i32,
    pub severity_text: String,
    pub event_name: String,
    pub body: Value,
    pub attributes: Map,
    /// The W3C trace the record belongs to (all zeros: none), e.g. from a
    /// session's `traceparent`.
    pub trace_id: [u8; 16],
    /// The span within it (all zeros: none).
    pub span_id: [u8; 8],
}

#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Log(LogRecord),
    Metric(MetricPoint),
}

impl Record {
    pub fn attributes(&self) -> &Map {
        match self {
            Record::Log(l) => &l.attributes,
            Record::Metric(m) => &m.attributes,
        }
    }
    pub fn attributes_mut(&mut self) -> &mut Map {
        match self {
            Record::Log(l) => &mut l.attributes,
            Record::Metric(m) => &mut m.attributes,
        }
    }
    pub fn is_log(&self) -> bool {
        matches!(self, Record::Log(_))
    }

    /// A rough size in bytes, for budgets and batch limits.
    pub fn approx_bytes(&self) -> usize {
        let base = 64 + map_bytes(self.attributes());
        match self {
            Record::Log(l) => base + l.severity_text.len() + l.event_name.len() + value_bytes(&l.body),
            Record::Metric(m) => base + m.name.len() + m.unit.len() + m.description.len(),
        }
    }
}

pub fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Str(s) => s.len() + 8,
        Value::Bytes(b) => b.len() + 8,
        Value::List(items) => items.iter().map(value_bytes).sum::<usize>() + 8,
        Value::Map(m) => map_bytes(m),
        _ => 8,
    }
}

fn map_bytes(m: &Map) -> usize {
    m.iter().map(|(k, v)| k.len() + value_bytes(v) + 8).sum()
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resource {
    pub attributes: Map,
}

/// Records that share a resource, plus the memory they are charged for.
#[derive(Debug, Default)]
pub struct Batch {
    pub resource: Resource,
    pub records: Vec<Record>,
    /// Released when the batch is dropped (delivered or discarded).
    pub charges: Vec<Charge>,
    /// Index of the pipeline (in plan order) the batch travels along.
    pub route: usize,
}

impl Clone for Batch {
    /// A copy for fan-out. The copy carries no charge: the budget counts
    /// what entered the pipeline, once.
    fn clone(&self) -> Batch {
        Batch { resource: self.resource.clone(), records: self.records.clone(), charges: Vec::new(), route: self.route }
    }
}

impl Batch {
    pub fn new(resource: Resource, records: Vec<Record>) -> Batch {
        Batch { resource, records, charges: Vec::new(), route: 0 }
    }
    pub fn len(&self) -> usize {
        self.records.len()
    }
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
    pub fn approx_bytes(&self) -> usize {
        self.records.iter().map(Record::approx_bytes).sum::<usize>() + map_bytes(&self.resource.attributes)
    }
}
