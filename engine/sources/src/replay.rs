//! Replays recorded rows (NDJSON, one object per row with the columns the
//! query returns) in place of a database. An integer `_scrape` column
//! groups rows into successive scrapes, so delta collectors replay as they
//! run live. Streams: only one scrape (or, without `_scrape`, one chunk of
//! rows) is held at a time.

use std::io::BufRead;
use std::path::PathBuf;

use dbintel_dsl::plan::{Collector as CollectorSpec, SourceNode};
use dbintel_dsl::schema::DbSettings;
use dbintel_stdlib::Value;

use super::collector::{self, Build, Collector};
use super::rows::{integer, now_nanos, JsonRow, Row};
use super::target::Engine;
use dbintel_core::counters::NodeCounters;
use dbintel_core::record::Resource;
use dbintel_core::routing::SourceOutput;

/// Rows per batch when the file has no `_scrape` column.
const CHUNK: usize = 256;

pub struct Replay {
    source: String,
    collector_name: String,
    path: PathBuf,
    collector: Box<dyn Collector>,
    engine: Engine,
    /// From the DSN when it can be read; else from a `_target` line; else
    /// the engine's defaults.
    resource: Resource,
    /// The database the DSN (or a `_target` line) names.
    database: Option<String>,
    identity: dbintel_dsl::schema::ServiceInstanceId,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error(transparent)]
    NoSuchCollector(#[from] collector::NoSuchCollector),
    #[error("source `{node}`: {error}")]
    Unreplayable { node: String, error: collector::Unreplayable },
}

impl Replay {
    pub fn new(
        source_name: &str,
        source: &SourceNode,
        collector: &str,
        spec: &CollectorSpec,
        path: PathBuf,
    ) -> Result<Replay, ReplayError> {
        let settings = DbSettings::from_settings(&source.settings);
        // the resource of the source's first target, as production builds it
        let first = source.targets.first();
        let connect = first.and_then(|t| crate::ConnectSpec::resolve(source_name, &source.kind, &t.dsn).ok());
        let engine = connect.as_ref().map_or(Engine::of(&source.kind, None), |s| s.engine());
        let build = Build {
            source,
            engine,
            name: collector,
            spec,
            source_interval: settings.interval,
            interval_override: None,
            fleet_databases: &[],
        };
        let built = collector::build(source_name, &build)?;
        Ok(Replay {
            source: source_name.to_string(),
            collector_name: collector.to_string(),
            path,
            collector: built,
            engine,
            resource: connect.as_ref().map_or_else(
                || super::target_resource(engine.system(), "localhost", engine.default_port(), settings.service_instance_id),
                |s| s.resource(settings.service_instance_id),
            ),
            database: connect.as_ref().and_then(|s| s.database().map(str::to_string)),
            identity: settings.service_instance_id,
        })
    }

    /// A `{"_target": {"host": …, "port": …, "database": …}}` line says
    /// which server the rows were recorded from.
    fn take_target(&mut self, row: &Row) -> bool {
        let Some(Value::Map(target)) = row.get("_target") else { return false };
        let host = target.get("host").map(ToString::to_string).unwrap_or_else(|| "localhost".into());
        let port = integer(target, "port").and_then(|p| u16::try_from(p).ok()).unwrap_or(self.engine.default_port());
        self.database = target.get("database").filter(|v| !v.is_nil()).map(ToString::to_string);
        self.resource = super::target_resource(self.engine.system(), &host, port, self.identity);
        true
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
                Ok(JsonRow(row)) if row.len() == 1 && self.take_target(&row) => continue,
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
                self.emit(std::mem::take(&mut scrape), scrape_id, output, counters)?;
            }
            scrape_id = id;
            scrape.push(row);
        }
        if !scrape.is_empty() {
            self.emit(scrape, scrape_id, output, counters)?;
        }
        // the end of the recording is the source stopping
        let held = self.collector.flush(now_nanos());
        self.send(held, output, counters);
        Ok(())
    }

    fn emit(&mut self, rows: Vec<Row>, scrape: Option<i64>, output: &SourceOutput, counters: &NodeCounters) -> Result<(), ReplayError> {
        // Replayed scrapes are spaced a nominal 30 s apart so deltas have
        // distinct start and end times.
        let now = match scrape {
            Some(n) => 1_700_000_000_000_000_000u64.saturating_add((n.max(0) as u64).saturating_mul(30_000_000_000)),
            None => now_nanos(),
        };
        let records = self.collector.replay(rows, now).map_err(|error| ReplayError::Unreplayable { node: self.source.clone(), error })?;
        for skipped in self.collector.take_soft_errors() {
            NodeCounters::add(&counters.errors, 1);
            tracing::warn!(source = %self.source, collector = %self.collector_name, error = %skipped, "recorded row skipped");
        }
        self.send(records, output, counters);
        Ok(())
    }

    fn send(&self, records: Vec<dbintel_core::record::Record>, output: &SourceOutput, counters: &NodeCounters) {
        if records.is_empty() {
            return;
        }
        NodeCounters::add(&counters.emitted, records.len());
        // as a live source sends them: on the server's resource, each
        // point saying which database it is about
        let mut records = records;
        let connected = (self.collector.scope() == crate::collector::Scope::Database).then_some(self.database.as_deref()).flatten();
        crate::catalogue::name_databases(&mut records, connected);
        let lost = output.send_blocking(&self.collector_name, dbintel_core::record::Batch::new(self.resource.clone(), records));
        NodeCounters::add(&counters.dropped, lost);
    }
}
