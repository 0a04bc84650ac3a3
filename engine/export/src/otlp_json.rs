//! OTLP/JSON encoding: the protobuf JSON mapping of
//! `ExportLogsServiceRequest` / `ExportMetricsServiceRequest`, one request
//! per line, as the OpenTelemetry Collector's file exporter writes it.
//! 64-bit integers are strings and enums are numbers, as OTLP/JSON requires.

use std::fmt::Write;

use dbintel_stdlib::{Map, Value};

use dbintel_core::record::{Batch, LogRecord, MetricKind, MetricPoint, Number, Record, Temporality};

const SCOPE: &str = r#"{"name":"dbintel","version":"0.1.0"}"#;

/// Whether any of the 8 bytes in `w` must be escaped in JSON: a control
/// byte (< 0x20), `"` or `\\`. Bit tricks on a whole word at a time.
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let has_quote = quote.wrapping_sub(ONES) & !quote & HIGH;
    let has_backslash = backslash.wrapping_sub(ONES) & !backslash & HIGH;
    (below_space | has_quote | has_backslash) != 0
}

/// Index of the first byte that needs escaping, if any.
fn first_escape(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let word = u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
        if word_needs_escape(word) {
            break;
        }
        i += 8;
    }
    bytes[i..].iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\').map(|p| i + p)
}

/// Appends `s` as a JSON string. Runs of characters that need no escape
/// are copied whole.
fn string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut rest = s;
    while let Some(i) = first_escape(rest.as_bytes()) {
        out.push_str(&rest[..i]);
        match rest.as_bytes()[i] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

fn any_value(out: &mut String, v: &Value) {
    match v {
        Value::Nil => out.push_str("{}"),
        Value::Bool(b) => {
            let _ = write!(out, r#"{{"boolValue":{b}}}"#);
        }
        Value::Int(i) => {
            out.push_str(r#"{"intValue":""#);
            out.push_str(itoa::Buffer::new().format(*i));
            out.push_str("\"}");
        }
        Value::Double(d) => double_value(out, *d),
        Value::Str(s) => {
            out.push_str(r#"{"stringValue":"#);
            string(out, s);
            out.push('}');
        }
        Value::Bytes(b) => {
            out.push_str(r#"{"bytesValue":""#);
            base64(out, b);
            out.push_str("\"}");
        }
        Value::List(items) => {
            out.push_str(r#"{"arrayValue":{"values":["#);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                any_value(out, item);
            }
            out.push_str("]}}");
        }
        Value::Map(m) => {
            out.push_str(r#"{"kvlistValue":{"values":"#);
            attributes(out, m);
            out.push_str("}}");
        }
    }
}

fn double_value(out: &mut String, d: f64) {
    if d.is_finite() {
        let _ = write!(out, r#"{{"doubleValue":{d:?}}}"#);
    } else {
        let name = if d.is_nan() {
            "NaN"
        } else if d > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        let _ = write!(out, r#"{{"doubleValue":"{name}"}}"#);
    }
}

fn base64(out: &mut String, bytes: &[u8]) {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

fn attributes(out: &mut String, map: &Map) {
    out.push('[');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"key":"#);
        string(out, k);
        out.push_str(r#","value":"#);
        any_value(out, v);
        out.push('}');
    }
    out.push(']');
}

fn resource(out: &mut String, batch: &Batch) {
    out.push_str(r#"{"resource":{"attributes":"#);
    attributes(out, &batch.resource.attributes);
    out.push('}');
}

/// `"name":"123"`: OTLP/JSON writes 64-bit integers as strings.
fn u64_field(out: &mut String, name: &str, value: u64) {
    out.push('"');
    out.push_str(name);
    out.push_str("\":\"");
    out.push_str(itoa::Buffer::new().format(value));
    out.push('"');
}

fn log_record(out: &mut String, l: &LogRecord) {
    out.push('{');
    u64_field(out, "timeUnixNano", l.time_unix_nano);
    out.push(',');
    u64_field(out, "observedTimeUnixNano", l.observed_time_unix_nano);
    if l.severity_number != 0 {
        let _ = write!(out, r#","severityNumber":{}"#, l.severity_number);
    }
    if !l.severity_text.is_empty() {
        out.push_str(r#","severityText":"#);
        string(out, &l.severity_text);
    }
    if !l.event_name.is_empty() {
        out.push_str(r#","eventName":"#);
        string(out, &l.event_name);
    }
    if !l.body.is_nil() {
        out.push_str(r#","body":"#);
        any_value(out, &l.body);
    }
    // OTLP/JSON writes trace and span ids as hex, not base64
    if l.trace_id != [0; 16] {
        let _ = write!(out, r#","traceId":"{}""#, l.trace_id.iter().map(|b| format!("{b:02x}")).collect::<String>());
    }
    if l.span_id != [0; 8] {
        let _ = write!(out, r#","spanId":"{}""#, l.span_id.iter().map(|b| format!("{b:02x}")).collect::<String>());
    }
    out.push_str(r#","attributes":"#);
    attributes(out, &l.attributes);
    out.push('}');
}

fn metric(out: &mut String, m: &MetricPoint) {
    out.push_str(r#"{"name":"#);
    string(out, &m.name);
    if !m.unit.is_empty() {
        out.push_str(r#","unit":"#);
        string(out, &m.unit);
    }
    if !m.description.is_empty() {
        out.push_str(r#","description":"#);
        string(out, &m.description);
    }
    let mut point = String::new();
    point.push_str(r#"{"attributes":"#);
    attributes(&mut point, &m.attributes);
    if m.start_time_unix_nano != 0 {
        let _ = write!(point, r#","startTimeUnixNano":"{}""#, m.start_time_unix_nano);
    }
    let _ = write!(point, r#","timeUnixNano":"{}""#, m.time_unix_nano);
    match m.value {
        Number::Int(i) => {
            let _ = write!(point, r#","asInt":"{i}"}}"#);
        }
        Number::Double(d) if d.is_finite() => {
            let _ = write!(point, r#","asDouble":{d:?}}}"#);
        }
        Number::Double(_) => point.push_str(r#","asDouble":"NaN"}"#),
    }
    match m.kind {
        MetricKind::Gauge => {
            let _ = write!(out, r#","gauge":{{"dataPoints":[{point}]}}}}"#);
        }
        MetricKind::Sum { monotonic, temporality } => {
            let t = match temporality {
                Temporality::Delta => 1,
                Temporality::Cumulative => 2,
            };
            let _ = write!(out, r#","sum":{{"dataPoints":[{point}],"aggregationTemporality":{t},"isMonotonic":{monotonic}}}}}"#);
        }
    }
}

/// Encodes a batch as at most two lines (logs, then metrics), each a
/// complete export request, appended to `out` with trailing newlines.
pub fn encode(batch: &Batch, out: &mut String) {
    let logs = batch.records.iter().filter(|r| r.is_log()).count();
    if logs > 0 {
        out.push_str(r#"{"resourceLogs":["#);
        resource(out, batch);
        let _ = write!(out, r#","scopeLogs":[{{"scope":{SCOPE},"logRecords":["#);
        let mut first = true;
        for record in &batch.records {
            if let Record::Log(l) = record {
                if !first {
                    out.push(',');
                }
                first = false;
                log_record(out, l);
            }
        }
        out.push_str("]}]}]}\n");
    }
    if logs < batch.records.len() {
        out.push_str(r#"{"resourceMetrics":["#);
        resource(out, batch);
        let _ = write!(out, r#","scopeMetrics":[{{"scope":{SCOPE},"metrics":["#);
        let mut first = true;
        for record in &batch.records {
            if let Record::Metric(m) = record {
                if !first {
                    out.push(',');
                }
                first = false;
                metric(out, m);
            }
        }
        out.push_str("]}]}]}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbintel_core::record::Resource;

    #[test]
    fn strings_escape_like_serde_json() {
        let cases = [
            "",
            "plain text of some length here",
            "q\"uote",
            "back\\slash",
            "ctl\u{1}\u{1f}x",
            "new\nline\ttab\r",
            "ünïcode ✓ 😀",
            "0123456\"",
            "01234567\"9",
        ];
        for case in cases {
            let mut ours = String::new();
            string(&mut ours, case);
            let back: String = serde_json::from_str(&ours).expect("valid JSON string");
            assert_eq!(back, case);
            assert_eq!(ours, serde_json::to_string(case).unwrap());
        }
    }

    #[test]
    fn encodes_logs_and_metrics_as_otlp_json() {
        let mut attrs = Map::new();
        attrs.insert("k", Value::Str("quote \" and \n".into()));
        attrs.insert("n", Value::Int(7));
        let mut resource = Resource::default();
        resource.attributes.insert("db.system.name", Value::Str("postgresql".into()));
        let batch = Batch::new(
            resource,
            vec![
                Record::Log(LogRecord {
                    time_unix_nano: 5,
                    body: Value::Bytes(vec![1, 2, 3, 4]),
                    attributes: attrs.clone(),
                    ..LogRecord::default()
                }),
                Record::Metric(MetricPoint {
                    name: "postgresql.query.calls".into(),
                    unit: "{call}".into(),
                    description: String::new(),
                    kind: MetricKind::Sum { monotonic: true, temporality: Temporality::Delta },
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    value: Number::Int(3),
                    attributes: attrs,
                }),
            ],
        );
        let mut out = String::new();
        encode(&batch, &mut out);
        let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("valid JSON")).collect();
        assert_eq!(lines.len(), 2);
        let log = &lines[0]["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
        assert_eq!(log["timeUnixNano"], "5");
        assert_eq!(log["body"]["bytesValue"], "AQIDBA==");
        assert_eq!(log["attributes"][0]["value"]["stringValue"], "quote \" and \n");
        assert_eq!(log["attributes"][1]["value"]["intValue"], "7");
        let metric = &lines[1]["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0];
        assert_eq!(metric["sum"]["aggregationTemporality"], 1);
        assert_eq!(metric["sum"]["dataPoints"][0]["asInt"], "3");
        assert_eq!(lines[1]["resourceMetrics"][0]["resource"]["attributes"][0]["key"], "db.system.name");
    }
}
