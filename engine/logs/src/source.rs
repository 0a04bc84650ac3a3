//! A log source running.
//!
//! It follows its location(s) — PostgreSQL's log directory, or MySQL's
//! slow and error log files, one per collector — every `poll`, maps what
//! it reads to records, hands them on, then checkpoints where it is (the
//! offsets and the metric window), so a restart neither loses nor repeats
//! a line (on a graceful stop; after a crash the last poll's records may
//! come twice — at least once, never lost). It reports like a database
//! target does in `/status`: `up` while its files can be read, `down`
//! with the precise reason (a missing or unreadable directory, an unset
//! variable, an unwritable state directory) and retried every `retry`;
//! lines it cannot read (too long, binary, another format) are counted by
//! cause (`/metrics`), logged once per cause and shown on its `files`
//! entry in `/status`. Downstream full: it waits — the data waits in the
//! file, nothing is skipped. Under a cluster lease it reads only while it
//! holds the lease.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbintel_core::counters::NodeCounters;
use dbintel_core::record::{Batch, Record, Resource};
use dbintel_core::routing::SharedOutput;
use dbintel_core::status::{Failure, TargetState};
use dbintel_dsl::plan::SourceNode;
use dbintel_dsl::schema::{LogFileSettings, LogSourceSettings, PgLogFormat, PgLogSettings, SlowQueriesSettings, StartAt};
use dbintel_sources::rows::now_nanos;
use dbintel_sources::supervisor::{stopped, LiveOptions};
use dbintel_sources::target::Engine;
use tokio::sync::watch;

use crate::checkpoint::{self, State};
use crate::entry::Problem;
use crate::follow::{FollowError, Follower, Location};
use crate::format::{csvlog::CsvLog, jsonlog::JsonLog, mysql_error::MySqlError, mysql_slow::MySqlSlow, stderr::Stderr, Parser};
use crate::records::{Enabled, Mapper, Notice, Out};

/// Bytes of log read per poll at most; more waits for the next round,
/// which comes at once (memory stays bounded whatever the backlog).
pub const POLL_BUDGET: u64 = 4 * 1024 * 1024;
/// Records per batch handed on: small enough that a batch is still in
/// the cache when the next node takes it (1,000 cost a quarter more CPU
/// per line in benches/logs_1g.sh).
pub(crate) const BATCH_RECORDS: usize = 128;
/// The status entry of the files themselves.
pub const FILES: &str = "files";

#[derive(Debug, thiserror::Error)]
pub enum LogSourceError {
    /// Only with `fail_fast` (dry-run): the first thing that failed.
    #[error("log source `{source_name}`: {message}")]
    Failed { source_name: String, message: String },
}

/// Reads a log source's locations and maps what they hold.
struct Reader {
    followers: Vec<(Vec<&'static str>, Follower)>,
    mapper: Mapper,
    state_path: PathBuf,
    /// What the state file holds now.
    saved: State,
}

/// What one round gave.
struct Step {
    out: Out,
    /// Per stream that failed: its collectors and why.
    failed: Vec<(Vec<&'static str>, FollowError)>,
    streams: usize,
    problems: Vec<(String, Problem)>,
    restarted: Vec<String>,
    lines: u64,
    entries: u64,
    more: bool,
}

pub(crate) fn parser_for(node: &SourceNode, stream: &str, max_line: usize) -> Box<dyn Fn() -> Box<dyn Parser> + Send> {
    if node.kind == "mysql_logs" {
        return match stream {
            "slow_queries" => Box::new(move || Box::new(MySqlSlow::new(max_line)) as Box<dyn Parser>),
            _ => Box::new(|| Box::new(MySqlError::new()) as Box<dyn Parser>),
        };
    }
    let s = PgLogSettings::from_settings(&node.settings);
    match s.format {
        PgLogFormat::Jsonlog => Box::new(|| Box::new(JsonLog) as Box<dyn Parser>),
        PgLogFormat::Csvlog => Box::new(move || Box::new(CsvLog::new(max_line)) as Box<dyn Parser>),
        PgLogFormat::Stderr => {
            let prefix = s.log_line_prefix.clone();
            Box::new(move || Box::new(Stderr::new(&prefix, max_line)) as Box<dyn Parser>)
        }
    }
}

/// One followed location: its name in the checkpoint, the collectors
/// that read it, and where it is.
type Stream = (String, Vec<&'static str>, Location);

/// The locations of a source.
fn locations(node: &SourceNode, enabled: &Enabled) -> Result<Vec<Stream>, String> {
    if node.kind == "mysql_logs" {
        let mut out = Vec::new();
        for (name, spec) in &node.collectors {
            let (file, collector) = match name.as_str() {
                "slow_queries" => (SlowQueriesSettings::from_settings(&spec.settings).file, "slow_queries"),
                "errors" => (LogFileSettings::from_settings(&spec.settings).file, "errors"),
                _ => continue,
            };
            let path = file.resolve().map_err(|e| format!("collector `{name}`: its file: {e}"))?;
            out.push((name.clone(), vec![collector], Location::File(PathBuf::from(path))));
        }
        return Ok(out);
    }
    let s = PgLogSettings::from_settings(&node.settings);
    let dir = s.directory.resolve().map_err(|e| format!("its directory: {e}"))?;
    let globs = if s.files.is_empty() {
        vec![match s.format {
            PgLogFormat::Jsonlog => "*.json".to_string(),
            PgLogFormat::Csvlog => "*.csv".to_string(),
            PgLogFormat::Stderr => "*.log".to_string(),
        }]
    } else {
        s.files.clone()
    };
    Ok(vec![("directory".into(), enabled.names(), Location::Directory { dir: PathBuf::from(dir), globs })])
}

impl Reader {
    fn open(name: &str, node: &SourceNode, interval: Duration, now: u64) -> Result<Reader, String> {
        let common = LogSourceSettings::from_settings(&node.settings);
        let enabled = Enabled::of(node);
        let state_path = checkpoint::path(std::path::Path::new(&common.state_directory), name);
        let state = checkpoint::load(&state_path)?;
        let mut mapper = Mapper::new(enabled.clone(), now, interval);
        if let Some(state) = &state {
            mapper.window.restore(&state.window, &mapper.collector_names());
        }
        let max_line = usize::try_from(common.max_line).unwrap_or(usize::MAX);
        let mut followers = Vec::new();
        for (stream, collectors, location) in locations(node, &enabled)? {
            // a location never looked at yet (no checkpoint, or it was
            // missing until now) is on its first look: `start_at` holds
            let restored = state
                .as_ref()
                .filter(|s| s.scanned.contains(&stream))
                .map(|s| s.files.iter().filter(|f| f.stream == stream).cloned().collect());
            let follower =
                Follower::new(&stream, location, max_line, parser_for(node, &stream, max_line), restored, common.start_at == StartAt::End);
            followers.push((collectors, follower));
        }
        // the state directory must take checkpoints before anything is read
        checkpoint::probe(&state_path)?;
        Ok(Reader { followers, mapper, state_path, saved: state.unwrap_or_default() })
    }

    fn step(&mut self, now: u64) -> Step {
        let mut step = Step {
            out: Vec::new(),
            failed: Vec::new(),
            streams: self.followers.len(),
            problems: Vec::new(),
            restarted: Vec::new(),
            lines: 0,
            entries: 0,
            more: false,
        };
        let budget = POLL_BUDGET / self.followers.len().max(1) as u64;
        for (collectors, follower) in &mut self.followers {
            match follower.poll(budget) {
                Ok(poll) => {
                    step.lines += poll.lines;
                    step.entries += poll.entries.len() as u64;
                    step.more |= poll.more;
                    step.problems.extend(poll.problems);
                    step.restarted.extend(poll.restarted);
                    for (file, entry) in poll.entries {
                        self.mapper.map(entry, &file, now, &mut step.out);
                    }
                }
                Err(e) => step.failed.push((collectors.clone(), e)),
            }
        }
        step
    }

    fn state(&self) -> State {
        State {
            version: checkpoint::VERSION,
            files: self.followers.iter().flat_map(|(_, f)| f.state()).collect(),
            window: self.mapper.window.to_json(),
            scanned: self.followers.iter().filter(|(_, f)| f.scanned()).map(|(_, f)| f.stream.clone()).collect(),
        }
    }
}

/// Records as batches by collector on the server's resource (each record
/// naming its database, as the database sources' do), each at most
/// [`BATCH_RECORDS`] long.
pub(crate) fn batches(resource: &Resource, records: Out) -> Vec<(&'static str, Batch)> {
    let mut by_collector: BTreeMap<&'static str, Vec<Record>> = BTreeMap::new();
    for (collector, record) in records {
        by_collector.entry(collector).or_default().push(record);
    }
    let mut out = Vec::new();
    for (collector, mut records) in by_collector {
        dbintel_sources::catalogue::name_databases(&mut records, None);
        while !records.is_empty() {
            let rest = records.split_off(records.len().min(BATCH_RECORDS));
            out.push((collector, Batch::new(resource.clone(), records)));
            records = rest;
        }
    }
    out
}

/// Hands records on.
async fn emit(output: &SharedOutput, counters: &NodeCounters, resource: &Resource, records: Out) {
    if records.is_empty() {
        return;
    }
    let n = records.len();
    let output = output.current();
    let mut lost = 0;
    for (collector, batch) in batches(resource, records) {
        lost += output.send(collector, batch).await;
    }
    NodeCounters::add(&counters.emitted, n);
    if lost > 0 {
        NodeCounters::add(&counters.dropped, lost);
        tracing::warn!(records = lost, "the plan ended before these log records could be handed on; dropped");
    }
}

fn log_transition(source: &str, change: Option<(TargetState, TargetState)>) {
    if let Some((from, to)) = change {
        tracing::info!(source, from = from.as_str(), to = to.as_str(), "target state");
    }
}

fn failure(class: &'static str, code: &str, message: String) -> Failure {
    Failure { class, code: code.to_string(), message, at: std::time::SystemTime::now() }
}

/// What a source remembers to say things once.
#[derive(Default)]
struct Said {
    /// Why the source could not start.
    down: Option<String>,
    /// Locations that cannot be read now (said again once they can).
    unreadable: HashSet<String>,
    /// Lines it could not read, checkpoints it could not write: once per
    /// cause for the source's life.
    causes: HashSet<String>,
    notices: HashSet<Notice>,
}

/// Runs a log source until told to stop (or, with `options.scrapes`, for
/// that many polls). `updates` brings its new definition on a reload: it
/// then flushes, checkpoints and goes on with the new one.
pub async fn run_log_source(
    name: String,
    node: SourceNode,
    output: SharedOutput,
    counters: Arc<NodeCounters>,
    options: LiveOptions,
    mut updates: Option<watch::Receiver<SourceNode>>,
) -> Result<(), LogSourceError> {
    let mut node = node;
    loop {
        match run_definition(&name, &node, &output, &counters, &options, &mut updates).await? {
            Some(new) => {
                tracing::info!(source = %name, "the log source's definition changed: going on with the new one");
                node = new;
            }
            None => return Ok(()),
        }
    }
}

/// Runs one definition; returns the next one when a reload brings it.
async fn run_definition(
    name: &str,
    node: &SourceNode,
    output: &SharedOutput,
    counters: &Arc<NodeCounters>,
    options: &LiveOptions,
    updates: &mut Option<watch::Receiver<SourceNode>>,
) -> Result<Option<SourceNode>, LogSourceError> {
    let common = LogSourceSettings::from_settings(&node.settings);
    let poll = options.interval.unwrap_or(common.poll);
    let interval = options.interval.unwrap_or(common.interval);
    let engine = if node.kind == "mysql_logs" { Engine::MySql } else { Engine::Postgres };
    let status = options.status.target(name, name);
    let enabled = Enabled::of(node);
    status.declare_collectors(enabled.names().into_iter().chain([FILES]));
    let fence = options.fences.as_ref().and_then(|f| f.fence(name));
    let mut stop = options.stop.clone();
    let fail = |message: String| LogSourceError::Failed { source_name: name.to_string(), message };
    let mut said = Said::default();

    let mut resource: Option<Resource> = None;
    let mut server: Option<String> = None;
    let mut reader: Option<Reader> = None;
    let mut rounds = 0u64;
    let mut next: Option<SourceNode> = None;
    loop {
        if stop.as_ref().is_some_and(|s| *s.borrow()) || options.scrapes.is_some_and(|n| rounds >= n) {
            break;
        }
        let mut wait = poll;
        'round: {
            if let Some(fence) = &fence {
                if !fence.holds() {
                    log_transition(name, status.lease(Some(false)));
                    wait = Duration::from_millis(100);
                    break 'round;
                }
                log_transition(name, status.lease(Some(true)));
            }
            if output.current().has_room().is_err() {
                // the lines wait in their files
                wait = Duration::from_millis(100);
                break 'round;
            }
            // what the records carry, and where the source is
            let setup = (|| -> Result<(), String> {
                if resource.is_none() {
                    let target = node
                        .targets
                        .first()
                        .ok_or("it is not linked to its server's source (a bug: the checker links every log source)")?;
                    let (r, key) = crate::resource::server_resource(name, target, engine)?;
                    resource = Some(r);
                    server = Some(key);
                }
                if reader.is_none() {
                    let mut opened = Reader::open(name, node, interval, now_nanos())?;
                    // plans are filed with the server's, where its
                    // statements find them
                    if let Some(key) = &server {
                        opened.mapper.plans = crate::plan::LogPlans::for_source(node, key);
                    }
                    reader = Some(opened);
                }
                Ok(())
            })();
            if let Err(message) = setup {
                if options.fail_fast {
                    return Err(fail(message));
                }
                NodeCounters::add(&counters.errors, 1);
                if said.down.as_deref() != Some(&message) {
                    tracing::warn!(source = %name, error = %message, retry_in = ?common.retry, "log source cannot start; retrying");
                    said.down = Some(message.clone());
                }
                log_transition(name, status.down(failure("configuration", "setup", message)));
                wait = common.retry;
                break 'round;
            }
            let Some(mut r) = reader.take() else { break 'round };
            let now = now_nanos();
            let started = Instant::now();
            let (r, mut step) = match tokio::task::spawn_blocking(move || {
                let step = r.step(now);
                (r, step)
            })
            .await
            {
                Ok(done) => done,
                Err(e) => {
                    // a panic in a parser: say so, start the reader over
                    // from its checkpoint
                    NodeCounters::add(&counters.errors, 1);
                    tracing::error!(source = %name, error = %e, "reading the log panicked; starting over from the checkpoint");
                    break 'round;
                }
            };
            reader = Some(r);
            NodeCounters::add(&counters.scrapes, 1);
            NodeCounters::add(&counters.scrape_micros, started.elapsed().as_micros() as usize);
            crate::stats::add(name, "read", step.lines);
            crate::stats::add(name, "entries", step.entries);
            crate::stats::add(name, "restarted", step.restarted.len() as u64);
            for file in &step.restarted {
                tracing::info!(source = %name, file = %file, "a log file was truncated or rewritten in place (copytruncate?): reading it again from its start");
            }

            // the locations
            if !step.failed.is_empty() {
                NodeCounters::add(&counters.errors, step.failed.len());
                for (collectors, e) in &step.failed {
                    let message = e.to_string();
                    if said.unreadable.insert(message.clone()) {
                        tracing::warn!(source = %name, error = %message, retry_in = ?common.retry, "cannot read the log; retrying");
                    }
                    for c in collectors {
                        log_transition(name, status.scrape_failed(c, failure("configuration", "io", message.clone())));
                    }
                }
                if step.failed.len() == step.streams {
                    let message = step.failed.iter().map(|(_, e)| e.to_string()).collect::<Vec<_>>().join("; ");
                    if options.fail_fast {
                        return Err(fail(message));
                    }
                    log_transition(name, status.down(failure("configuration", "io", message)));
                    wait = common.retry;
                }
            }
            if step.failed.len() < step.streams {
                if said.down.take().is_some() || !said.unreadable.is_empty() && step.failed.is_empty() {
                    tracing::info!(source = %name, "the log can be read again");
                    said.unreadable.clear();
                }
                log_transition(name, status.connected());
                let failing: HashSet<&str> = step.failed.iter().flat_map(|(c, _)| c.iter().copied()).collect();
                for c in enabled.names() {
                    if !failing.contains(c) {
                        log_transition(name, status.scrape_ok(c));
                    }
                }
            }

            // lines it could not read
            if step.problems.is_empty() {
                log_transition(name, status.scrape_ok(FILES));
            }
            let mut by_cause: BTreeMap<Problem, (u64, String)> = BTreeMap::new();
            for (file, p) in &step.problems {
                let e = by_cause.entry(*p).or_insert((0, file.clone()));
                e.0 += 1;
            }
            for (cause, (n, file)) in by_cause {
                NodeCounters::add(&counters.errors, n as usize);
                crate::stats::add(name, cause.as_str(), n);
                let message = format!("{}: {n} line(s) of {file}", cause.describe());
                if said.causes.insert(cause.as_str().to_string()) {
                    tracing::warn!(source = %name, cause = cause.as_str(), file = %file, lines = n, "{}; counted in dbintel_log_lines_total", cause.describe());
                }
                log_transition(name, status.scrape_failed(FILES, failure("other", cause.as_str(), message)));
            }
            if let Some(r) = reader.as_mut() {
                for notice in r.mapper.notices.drain() {
                    if said.notices.insert(notice) {
                        match notice {
                            Notice::PlanNotJson => {
                                tracing::warn!(source = %name, "an auto_explain plan is not JSON and was skipped: set auto_explain.log_format = json")
                            }
                            Notice::UnknownTimeZone => {
                                tracing::warn!(source = %name, "log timestamps carry a zone abbreviation dbintel does not read; using the time lines are read (set log_timezone = 'UTC')")
                            }
                        }
                    }
                }
                if r.mapper.window.overflow > 0 {
                    crate::stats::add(name, "dropped_series", r.mapper.window.overflow);
                    tracing::warn!(source = %name, series = r.mapper.window.overflow, "too many metric series in one window; the new ones were dropped");
                    r.mapper.window.overflow = 0;
                }
                if r.mapper.window.due(now) {
                    step.out.extend(r.mapper.close_window(now));
                }
            }
            if let Some(resource) = &resource {
                emit(output, counters, resource, std::mem::take(&mut step.out)).await;
            }
            // after the records were handed on: where we are (when that
            // changed: an idle source does not write every poll)
            if let Some(r) = reader.take().filter(|r| r.state() != r.saved) {
                let (r, saved) = save(r).await;
                reader = Some(r);
                if let Err(message) = saved {
                    NodeCounters::add(&counters.errors, 1);
                    if said.causes.insert(message.clone()) {
                        tracing::warn!(source = %name, error = %message, "cannot checkpoint the log offsets; a restart may read lines again");
                    }
                    log_transition(name, status.scrape_failed(FILES, failure("configuration", "state", message)));
                }
            }
            rounds += 1;
            if step.more {
                wait = Duration::ZERO;
            }
        }
        if wait.is_zero() {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped(&mut stop) => break,
            changed = async {
                match updates.as_mut() {
                    Some(rx) => rx.changed().await.map(|()| rx.borrow_and_update().clone()),
                    None => std::future::pending().await,
                }
            } => {
                match changed {
                    Ok(new) if new != *node => {
                        next = Some(new);
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => *updates = None,
                }
            }
        }
    }

    // what the window holds goes out, then the checkpoint says so
    if let (Some(mut r), Some(resource)) = (reader, resource) {
        if fence.as_ref().is_none_or(|f| f.holds()) {
            let now = now_nanos();
            let points = r.mapper.close_window(now);
            emit(output, counters, &resource, points).await;
            let (_, saved) = save(r).await;
            if let Err(message) = saved {
                tracing::warn!(source = %name, error = %message, "cannot checkpoint the log offsets at stop; the next start may read lines again");
            }
        }
    }
    Ok(next)
}

async fn save(mut r: Reader) -> (Reader, Result<(), String>) {
    let state = r.state();
    let path = r.state_path.clone();
    let written = state.clone();
    match tokio::task::spawn_blocking(move || checkpoint::save(&path, &state)).await {
        Ok(Ok(())) => {
            r.saved = written;
            (r, Ok(()))
        }
        Ok(Err(e)) => (r, Err(e)),
        Err(e) => (r, Err(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbintel_dsl::plan::{Collector, Settings, Signals, Value};
    use std::io::Write;

    fn node(dir: &std::path::Path) -> SourceNode {
        let mut settings = Settings::default();
        settings.0.insert("directory".into(), Value::String(dir.join("log").display().to_string()));
        settings.0.insert("state_directory".into(), Value::String(dir.join("state").display().to_string()));
        settings.0.insert("start_at".into(), Value::Word("end".into()));
        let mut collectors = indexmap::IndexMap::new();
        collectors.insert("errors".to_string(), Collector { settings: Settings::default(), signals: Signals::BOTH });
        SourceNode { kind: "postgres_logs".into(), settings, collectors, targets: Vec::new(), targets_file: None }
    }

    /// Regression: the state written while the directory was still
    /// missing made the next start read every file from its beginning
    /// (`start_at = end` ignored), as if the files were new.
    #[test]
    fn a_restart_before_the_first_look_still_starts_at_the_end() {
        let dir = std::env::temp_dir().join(format!("dbintel-source-first-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let node = node(&dir);
        let mut first = Reader::open("pg_logs", &node, Duration::from_secs(60), 0).expect("opens");
        let step = first.step(1);
        assert_eq!(step.failed.len(), 1, "the directory is not there yet");
        checkpoint::save(&first.state_path, &first.state()).expect("saved");
        // the server starts writing; dbintel restarts
        std::fs::create_dir_all(dir.join("log")).unwrap();
        let line = "{\"error_severity\":\"ERROR\",\"state_code\":\"XX000\",\"message\":\"old\"}\n";
        std::fs::write(dir.join("log/postgresql.json"), line.repeat(3)).unwrap();
        let mut second = Reader::open("pg_logs", &node, Duration::from_secs(60), 0).expect("opens");
        let step = second.step(1);
        assert!(step.failed.is_empty());
        assert_eq!(step.entries, 0, "what was there before the first look is not read");
        std::fs::OpenOptions::new().append(true).open(dir.join("log/postgresql.json")).unwrap().write_all(line.as_bytes()).unwrap();
        assert_eq!(second.step(2).entries, 1, "what comes after is");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
