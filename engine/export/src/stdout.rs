//! Writes batches to standard output as OTLP/JSON lines, or for a person:
//! `pretty` (one record per line under its resource) and `table` (aligned
//! columns: metrics as name, attributes, value, unit; events as name,
//! severity, attributes, body).
//!
//! The readable forms write values as a person would: strings quoted once,
//! numbers rounded to what can be read (`2101.169`, `7.26`, `0.000123`),
//! the unit after the value, nil as `-`. Within a batch, metrics come first
//! sorted by name and attributes, then events likewise, so a run over the
//! same rows prints the same text whatever order the source emitted them in.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex};

use dbintel_core::record::{Batch, LogRecord, MetricPoint, Number, Record};
use dbintel_core::sink::{Sink, SinkError, SinkFailure};
use dbintel_core::BoxFuture;
use dbintel_stdlib::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OtlpJson,
    Pretty,
    Table,
}

/// A writer several sinks share; each batch is written whole under the
/// lock, so lines never interleave.
pub type SharedWriter = Arc<Mutex<std::io::BufWriter<Box<dyn Write + Send>>>>;

pub fn shared_stdout() -> SharedWriter {
    Arc::new(Mutex::new(std::io::BufWriter::with_capacity(1 << 16, Box::new(std::io::stdout()))))
}

pub struct StdoutSink {
    format: Format,
    out: SharedWriter,
    buffer: String,
    /// Flush after every batch (a long-running `dbintel run`), not only at
    /// the end (a dry run).
    flush_each: bool,
    /// A `file` sink's file, to cut a failed write back off it.
    file: Option<std::fs::File>,
}

impl StdoutSink {
    pub fn new(format: Format, out: SharedWriter) -> StdoutSink {
        StdoutSink { format, out, buffer: String::new(), flush_each: false, file: None }
    }

    pub fn flushing(mut self) -> StdoutSink {
        self.flush_each = true;
        self
    }

    /// A `file` sink: OTLP/JSON lines appended to `path`.
    pub fn file(path: &std::path::Path) -> std::io::Result<StdoutSink> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let handle = file.try_clone()?;
        let out: SharedWriter = Arc::new(Mutex::new(std::io::BufWriter::with_capacity(1 << 16, Box::new(file))));
        let mut sink = StdoutSink::new(Format::OtlpJson, out).flushing();
        sink.file = Some(handle);
        Ok(sink)
    }

    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.buffer.clear();
        match self.format {
            Format::OtlpJson => super::otlp_json::encode(batch, &mut self.buffer),
            Format::Pretty => pretty(batch, &mut self.buffer),
            Format::Table => table(batch, &mut self.buffer),
        }
        let mut out = self.out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // a file sink flushes every batch, so its length is where this
        // batch starts
        let start = self.file.as_ref().map(|f| f.metadata().map(|m| m.len())).transpose()?;
        let written = out.write_all(self.buffer.as_bytes()).and_then(|()| if self.flush_each { out.flush() } else { Ok(()) });
        if let Err(error) = written {
            // forget what is still buffered and cut what reached the file:
            // the batch is offered again whole, never half a line twice
            let writer = std::mem::replace(&mut *out, std::io::BufWriter::new(Box::new(std::io::sink())));
            let (inner, _unwritten) = writer.into_parts();
            *out = std::io::BufWriter::with_capacity(1 << 16, inner);
            if let (Some(file), Some(start)) = (&self.file, start) {
                let _ = file.set_len(start);
            }
            return Err(error.into());
        }
        Ok(())
    }
}

/// One record per line under a `resource` line, with its time (UTC):
///
/// ```text
/// resource db.system.name="postgresql" dbintel.source="postgres"
///   2023-11-14T22:14:50Z metric postgresql.query.duration  2101.169 ms  db.query.id="855252"
///   2023-11-14T22:14:50Z log    db.server.top_query INFO  db.query.id="855252" db.query.text="SET application_name = ?"
/// ```
pub fn pretty(batch: &Batch, out: &mut String) {
    if batch.is_empty() {
        return;
    }
    resource_line(batch, out);
    let (metrics, logs) = sorted(batch);
    let name_width = metrics.iter().map(|m| m.name.chars().count()).max().unwrap_or(0);
    let value_width = metrics.iter().map(|m| number(m.value).len()).max().unwrap_or(0);
    let unit_width = metrics.iter().map(|m| unit(&m.unit).chars().count()).max().unwrap_or(0);
    for m in &metrics {
        let line = format!(
            "  {} metric {:<name_width$}  {:>value_width$} {:<unit_width$}  {}",
            timestamp(m.time_unix_nano),
            m.name,
            number(m.value),
            unit(&m.unit),
            attributes(&m.attributes)
        );
        push_line(out, &line);
    }
    for l in &logs {
        let mut line = format!("  {} log    {}", timestamp(l.time_unix_nano), event_name(l));
        if !l.severity_text.is_empty() {
            let _ = write!(line, " {}", l.severity_text);
        }
        if !l.attributes.is_empty() {
            let _ = write!(line, "  {}", attributes(&l.attributes));
        }
        if !l.body.is_nil() {
            let _ = write!(line, "  body={}", value(&l.body));
        }
        push_line(out, &line);
    }
    out.push('\n');
}

/// Appends `line` without trailing spaces, and a newline.
fn push_line(out: &mut String, line: &str) {
    out.push_str(line.trim_end());
    out.push('\n');
}

/// Aligned columns under a `resource` line: a metrics table (TIME,
/// METRIC, ATTRIBUTES, VALUE, UNIT), then an events table (TIME, EVENT,
/// SEVERITY, ATTRIBUTES, and BODY when an event has one).
pub fn table(batch: &Batch, out: &mut String) {
    if batch.is_empty() {
        return;
    }
    resource_line(batch, out);
    let (metrics, logs) = sorted(batch);
    if !metrics.is_empty() {
        let rows: Vec<Vec<String>> = metrics
            .iter()
            .map(|m| {
                vec![timestamp(m.time_unix_nano), m.name.clone(), attributes(&m.attributes), number(m.value), unit(&m.unit).to_string()]
            })
            .collect();
        columns(&["TIME", "METRIC", "ATTRIBUTES", "VALUE", "UNIT"], &rows, Some(3), out);
    }
    if !logs.is_empty() {
        if !metrics.is_empty() {
            out.push('\n');
        }
        // events that only carry attributes (dbintel's own) need no BODY
        let bodies = logs.iter().any(|l| !l.body.is_nil());
        let rows: Vec<Vec<String>> = logs
            .iter()
            .map(|l| {
                let mut row = vec![
                    timestamp(l.time_unix_nano),
                    event_name(l).to_string(),
                    dash_if_empty(&l.severity_text),
                    attributes(&l.attributes),
                ];
                if bodies {
                    row.push(value(&l.body));
                }
                row
            })
            .collect();
        let header: &[&str] =
            if bodies { &["TIME", "EVENT", "SEVERITY", "ATTRIBUTES", "BODY"] } else { &["TIME", "EVENT", "SEVERITY", "ATTRIBUTES"] };
        columns(header, &rows, None, out);
    }
    out.push('\n');
}

/// Writes a header and rows, each column as wide as its widest cell; the
/// column `right` (numbers) is right-aligned.
fn columns(header: &[&str], rows: &[Vec<String>], right: Option<usize>, out: &mut String) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right == Some(i) {
                text.extend(std::iter::repeat_n(' ', pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        push_line(out, &text);
    };
    line(header);
    for row in rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

fn resource_line(batch: &Batch, out: &mut String) {
    let attrs = attributes(&batch.resource.attributes);
    if attrs.is_empty() {
        out.push_str("resource (no attributes)\n");
    } else {
        let _ = writeln!(out, "resource {attrs}");
    }
}

/// Metrics as series (by name, attributes, then time); events in time
/// order (then by name and attributes).
fn sorted(batch: &Batch) -> (Vec<&MetricPoint>, Vec<&LogRecord>) {
    let mut metrics: Vec<(&MetricPoint, String)> = Vec::new();
    let mut logs: Vec<(&LogRecord, String)> = Vec::new();
    for record in &batch.records {
        match record {
            Record::Metric(m) => metrics.push((m, attributes(&m.attributes))),
            Record::Log(l) => logs.push((l, attributes(&l.attributes))),
        }
    }
    metrics.sort_by(|(a, ka), (b, kb)| a.name.cmp(&b.name).then_with(|| ka.cmp(kb)).then(a.time_unix_nano.cmp(&b.time_unix_nano)));
    logs.sort_by(|(a, ka), (b, kb)| {
        a.time_unix_nano.cmp(&b.time_unix_nano).then_with(|| a.event_name.cmp(&b.event_name)).then_with(|| ka.cmp(kb))
    });
    (metrics.into_iter().map(|(m, _)| m).collect(), logs.into_iter().map(|(l, _)| l).collect())
}

fn event_name(l: &LogRecord) -> &str {
    if l.event_name.is_empty() {
        "-"
    } else {
        &l.event_name
    }
}

fn dash_if_empty(s: &str) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s.to_string()
    }
}

/// The unit as a person writes it: `By` is `B`, the dimensionless `1` is
/// nothing; annotations such as `{call}` stay as OpenTelemetry writes them.
fn unit(unit: &str) -> &str {
    match unit {
        "1" => "",
        "By" => "B",
        other => other,
    }
}

/// `k="v" n=3`, in the record's order; a key that could be misread is
/// quoted.
fn attributes(map: &Map) -> String {
    let mut out = String::new();
    for (k, v) in map.iter() {
        if !out.is_empty() {
            out.push(' ');
        }
        if k.is_empty() || k.chars().any(|c| c.is_whitespace() || matches!(c, '=' | '"' | '{' | '}' | '[' | ']' | ',')) {
            let _ = write!(out, "{k:?}");
        } else {
            out.push_str(k);
        }
        out.push('=');
        out.push_str(&value(v));
    }
    out
}

/// `2023-11-14T22:13:20Z` (UTC; milliseconds when there are any); `-`
/// for no time.
pub fn timestamp(unix_nanos: u64) -> String {
    if unix_nanos == 0 {
        return "-".to_string();
    }
    let seconds = unix_nanos / 1_000_000_000;
    let millis = (unix_nanos % 1_000_000_000) / 1_000_000;
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    if millis == 0 {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days ≥ 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn number(n: Number) -> String {
    match n {
        Number::Int(i) => i.to_string(),
        Number::Double(d) => double(d),
    }
}

/// A value as a person writes it: strings quoted once, nil as `-`.
pub fn value(v: &Value) -> String {
    match v {
        Value::Nil => "-".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => double(*d),
        Value::Str(s) => format!("{s:?}"),
        Value::Bytes(b) => {
            let mut out = String::from("0x");
            for byte in b {
                let _ = write!(out, "{byte:02x}");
            }
            out
        }
        Value::List(items) => format!("[{}]", items.iter().map(value).collect::<Vec<_>>().join(", ")),
        Value::Map(m) => format!("{{{}}}", attributes(m)),
    }
}

/// A float rounded to what can be read: three decimals from 1 up
/// (`2101.169`, `7.26`), three significant digits below (`0.0123`), whole
/// numbers without a fraction, scientific notation for the very small.
pub fn double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".to_string();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if d == 0.0 {
        return "0".to_string();
    }
    if d == d.trunc() {
        return format!("{d:.0}");
    }
    let magnitude = d.abs();
    if magnitude < 1e-9 {
        return format!("{d:.2e}");
    }
    let decimals = if magnitude >= 1.0 { 3 } else { (-magnitude.log10()).floor() as usize + 3 };
    let text = format!("{d:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    match text {
        "-0" | "" => "0".to_string(),
        t => t.to_string(),
    }
}

impl Sink for StdoutSink {
    /// A failed write hands the batch back for the runtime to retry (a
    /// line cut short by the failure may be left behind).
    fn consume(&mut self, batch: Batch) -> BoxFuture<'_, Result<(), SinkFailure>> {
        let result = self.write(&batch).map_err(|error| SinkFailure::retry(error, batch));
        Box::pin(async move { result })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        let result = self.out.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).flush().map_err(SinkError::from);
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_rounded_to_what_a_person_reads() {
        let cases = [
            (2101.1690000000003, "2101.169"),
            (7.260285714285715, "7.26"),
            (52.52922500000001, "52.529"),
            (0.5, "0.5"),
            (0.012345, "0.0123"),
            (0.000123456, "0.000123"),
            (3.0, "3"),
            (-2.5, "-2.5"),
            (1e20, "100000000000000000000"),
            (1e-12, "1.00e-12"),
            (-0.0, "0"),
            (0.0004, "0.0004"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (input, expected) in cases {
            assert_eq!(double(input), expected, "{input}");
        }
    }

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(timestamp(1_700_000_060_000_000_000), "2023-11-14T22:14:20Z");
        assert_eq!(timestamp(951_782_400_250_000_000), "2000-02-29T00:00:00.250Z");
        assert_eq!(timestamp(86_400_000_000_000), "1970-01-02T00:00:00Z");
        assert_eq!(timestamp(0), "-");
    }

    #[test]
    fn values_are_written_as_a_person_writes_them() {
        assert_eq!(value(&Value::Str("823576".into())), "\"823576\"");
        assert_eq!(value(&Value::Str("say \"hi\"\n".into())), r#""say \"hi\"\n""#);
        assert_eq!(value(&Value::Nil), "-");
        assert_eq!(value(&Value::Bytes(vec![0xde, 0xad])), "0xdead");
        let mut m = Map::new();
        m.insert("a b", Value::Int(1));
        m.insert("c", Value::List(vec![Value::Bool(true), Value::Nil]));
        assert_eq!(value(&Value::Map(m)), r#"{"a b"=1 c=[true, -]}"#);
    }
}
