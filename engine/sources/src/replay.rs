//! Replays recorded rows (NDJSON, one object per row with the columns the
//! query returns) in place of a database. An integer `_scrape` column
//! groups rows into successive scrapes, so delta collectors replay as they
//! run live. Streams: only one scrape (or, without `_scrape`, one chunk of
//! rows) is held at a time.

use std::io::BufRead;
use std::path::PathBuf;

use dbintel_dsl::plan::{Collector, SourceNode};
use dbintel_stdlib::Value;

use super::rows::{now_nanos, JsonRow, Row, SqlMapping};
use super::statement_deltas::{StatementDeltas, MYSQL, POSTGRES};
use dbintel_core::counters::NodeCounters;
use dbintel_core::record::{Batch, Record, Resource};
use dbintel_core::routing::SourceOutput;

/// Rows per batch when the file has no `_scrape` column.
const CHUNK: usize = 256;

enum Mapper {
    Sql(SqlMapping),
    Statements(Box<StatementDeltas>),
}

pub struct Replay {
    source: String,
    collector: String,
    path: PathBuf,
    mapper: Mapper,
    resource: Resource,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("collector {collector} of source {node} cannot be replayed from rows")]
    Unsupported { node: String, collector: String },
}

impl Replay {
    pub fn new(source_name: &str, source: &SourceNode, collector: &str, spec: &Collector, path: PathBuf) -> Result<Replay, ReplayError> {
        let top = spec.settings.int("top").unwrap_or(200).max(1) as usize;
        let mapper = match (source.kind.as_str(), collector) {
            ("postgres", "statements") => Mapper::Statements(Box::new(StatementDeltas::new(&POSTGRES, top))),
            ("mysql", "statements") => Mapper::Statements(Box::new(StatementDeltas::new(&MYSQL, top))),
            ("sql", _) => Mapper::Sql(SqlMapping::new(collector, &spec.settings)),
            _ => return Err(ReplayError::Unsupported { node: source_name.into(), collector: collector.into() }),
        };
        let system = match source.kind.as_str() {
            "postgres" => "postgresql",
            "mysql" => "mysql",
            _ => "other_sql",
        };
        let mut resource = Resource::default();
        resource.attributes.insert("db.system.name", Value::Str(system.into()));
        resource.attributes.insert("telemetry.sdk.name", Value::Str("dbintel".into()));
        resource.attributes.insert("dbintel.source", Value::Str(source_name.into()));
        Ok(Replay { source: source_name.to_string(), collector: collector.to_string(), path, mapper, resource })
    }

    /// Reads the file to the end, sending what each scrape produces.
    /// Blocking: run it on a blocking thread.
    pub fn run(mut self, output: &SourceOutput, counters: &NodeCounters) -> Result<(), ReplayError> {
        let read_error = |error| ReplayError::Read { path: self.path.display().to_string(), error };
        let file = std::fs::File::open(&self.path).map_err(read_error)?;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
        let mut line = Vec::new();
        let mut line_no = 0usize;
        let mut scrape: Vec<Row> = Vec::new();
        let mut scrape_id: Option<i64> = None;
        loop {
            line.clear();
            let n =
                reader.read_until(b'\n', &mut line).map_err(|e| ReplayError::Read { path: self.path.display().to_string(), error: e })?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let text = match std::str::from_utf8(&line) {
                Ok(t) => t.trim(),
                Err(e) => {
                    NodeCounters::add(&counters.errors, 1);
                    tracing::warn!(source = %self.source, line = line_no, error = %e, "row skipped: not valid UTF-8");
                    continue;
                }
            };
            if text.is_empty() {
                continue;
            }
            let mut row = match serde_json::from_str::<JsonRow>(text) {
                Ok(JsonRow(row)) => row,
                Err(e) => {
                    NodeCounters::add(&counters.errors, 1);
                    tracing::warn!(source = %self.source, line = line_no, error = %e, "row skipped: not a JSON object");
                    continue;
                }
            };
            let id = match row.remove("_scrape") {
                Some(Value::Int(i)) => Some(i),
                _ => None,
            };
            if !scrape.is_empty() && (id != scrape_id || (id.is_none() && scrape.len() >= CHUNK)) {
                self.emit(std::mem::take(&mut scrape), scrape_id, output, counters);
            }
            scrape_id = id;
            scrape.push(row);
        }
        if !scrape.is_empty() {
            self.emit(scrape, scrape_id, output, counters);
        }
        Ok(())
    }

    fn emit(&mut self, rows: Vec<Row>, scrape: Option<i64>, output: &SourceOutput, counters: &NodeCounters) {
        // Replayed scrapes are spaced a nominal 30 s apart so deltas have
        // distinct start and end times.
        let now = match scrape {
            Some(n) => 1_700_000_000_000_000_000u64.saturating_add((n.max(0) as u64).saturating_mul(30_000_000_000)),
            None => now_nanos(),
        };
        let records: Vec<Record> = match &mut self.mapper {
            Mapper::Sql(mapping) => mapping
                .new_rows(rows)
                .into_iter()
                .filter_map(|row| match mapping.record(row, now) {
                    Ok(r) => Some(r),
                    Err(reason) => {
                        NodeCounters::add(&counters.errors, 1);
                        tracing::warn!(source = %self.source, collector = %self.collector, %reason, "row skipped");
                        None
                    }
                })
                .collect(),
            Mapper::Statements(deltas) => {
                let server = format!("replay:{}", self.path.display());
                let reset = rows.iter().find_map(|r| r.get("_stats_reset").filter(|v| !v.is_nil()).map(|v| v.to_string()));
                let (records, summary) = deltas.observe(&server, reset, rows, now);
                NodeCounters::add(&counters.errors, summary.skipped_rows);
                records
            }
        };
        if records.is_empty() {
            return;
        }
        NodeCounters::add(&counters.emitted, records.len());
        output.send_blocking(&self.collector, Batch::new(self.resource.clone(), records));
    }
}
