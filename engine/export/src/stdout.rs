//! Writes batches to standard output as OTLP/JSON lines, or as one
//! readable line per record (`pretty`).

use std::io::Write;
use std::sync::{Arc, Mutex};

use dbintel_core::record::{Batch, Record};
use dbintel_core::sink::{Sink, SinkError, SinkFailure};
use dbintel_core::BoxFuture;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OtlpJson,
    Pretty,
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

/// `metric name value {attrs}` / `log severity body {attrs}`.
pub fn pretty(batch: &Batch, out: &mut String) {
    use std::fmt::Write as _;
    for record in &batch.records {
        let attrs: Vec<String> = record.attributes().iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        match record {
            Record::Metric(m) => {
                let value = match m.value {
                    dbintel_core::record::Number::Int(i) => i.to_string(),
                    dbintel_core::record::Number::Double(d) => d.to_string(),
                };
                let _ = writeln!(out, "metric {} {} {} {{{}}}", m.name, value, m.unit, attrs.join(", "));
            }
            Record::Log(l) => {
                let _ = writeln!(out, "log {} {} {:?} {{{}}}", l.event_name, l.severity_text, l.body, attrs.join(", "));
            }
        }
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
