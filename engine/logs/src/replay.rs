//! A log file read once, whole, through the same parsers and mapping as
//! a live log source: `dry-run --input pg_logs.errors=postgresql.json`
//! shows what dbintel makes of a log (no database is connected: the
//! server's DSN only names the records' resource), and the benchmark
//! measures exactly what production runs. The collectors named for a
//! file are the ones that read it; metrics come out in one window ending
//! when the file does.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use dbintel_core::counters::NodeCounters;
use dbintel_core::routing::SourceOutput;
use dbintel_dsl::plan::SourceNode;
use dbintel_dsl::schema::LogSourceSettings;
use dbintel_sources::rows::now_nanos;
use dbintel_sources::target::Engine;

use crate::entry::Parsed;
use crate::records::{Enabled, Mapper, Out};
use crate::source::{LogSourceError, BATCH_RECORDS as BATCH};

/// Reads `path` for `collectors` of log source `name` and hands the
/// records on (blocking: run it off the async threads).
pub fn replay_file(
    name: &str,
    node: &SourceNode,
    collectors: &[String],
    path: &Path,
    output: &SourceOutput,
    counters: &NodeCounters,
) -> Result<(), LogSourceError> {
    let fail = |message: String| LogSourceError::Failed { source_name: name.to_string(), message };
    let engine = if node.kind == "mysql_logs" { Engine::MySql } else { Engine::Postgres };
    let target = node.targets.first().ok_or_else(|| fail("it is not linked to its server's source".into()))?;
    let (resource, _) = crate::resource::server_resource(name, target, engine).map_err(fail)?;
    // only the collectors this file was given to
    let mut only = node.clone();
    only.collectors.retain(|c, _| collectors.contains(c));
    let enabled = Enabled::of(&only);
    let common = LogSourceSettings::from_settings(&node.settings);
    let max_line = usize::try_from(common.max_line).unwrap_or(usize::MAX);
    // the stream a MySQL file belongs to is its collector's
    let stream = collectors.first().map(String::as_str).unwrap_or("directory");
    let mut parser = crate::source::parser_for(node, stream, max_line)();
    let mut mapper = Mapper::new(enabled, now_nanos(), Duration::from_secs(365 * 86_400));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let file = std::fs::File::open(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::with_capacity(4096);
    let mut parsed = Parsed::default();
    let mut out: Out = Vec::new();
    let mut at = 0u64;
    let mut lost = 0;
    let mut send = |out: &mut Out| {
        let records = std::mem::take(out);
        NodeCounters::add(&counters.emitted, records.len());
        for (collector, batch) in crate::source::batches(&resource, records) {
            lost += output.send_blocking(collector, batch);
        }
    };
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let cut = text.len() > max_line;
        parser.line(&text[..text.len().min(max_line)], at, cut, &mut parsed);
        at += n as u64;
        let now = now_nanos();
        for entry in parsed.entries.drain(..) {
            mapper.map(entry, &file_name, now, &mut out);
        }
        for problem in parsed.problems.drain(..) {
            NodeCounters::add(&counters.errors, 1);
            crate::stats::add(name, problem.as_str(), 1);
        }
        if out.len() >= BATCH {
            send(&mut out);
        }
    }
    parser.finish(&mut parsed);
    let now = now_nanos();
    for entry in parsed.entries.drain(..) {
        mapper.map(entry, &file_name, now, &mut out);
    }
    out.extend(mapper.close_window(now));
    send(&mut out);
    if lost > 0 {
        NodeCounters::add(&counters.dropped, lost);
    }
    Ok(())
}
