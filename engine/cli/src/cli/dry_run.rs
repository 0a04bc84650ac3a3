//! `dbintel dry-run`: the whole plan on recorded rows, output on stdout.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use dbintel_dsl::plan::NodeKind;
use dbintel_dsl::EnvPolicy;

use super::{Paths, EXIT_INVALID, EXIT_USAGE};
use crate::report;
use dbintel_core::sink::Sink;
use dbintel_export::stdout::{shared_stdout, Format, StdoutSink};
use dbintel_runtime::Setup;
use dbintel_sources::supervisor::LiveOptions;

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum Output {
    /// One OTLP export request per line (the collector file exporter's format)
    #[default]
    OtlpJson,
    /// For a person: one line per record under its resource, values as
    /// written (strings quoted, numbers rounded, units, nil as -)
    Pretty,
    /// For a person: aligned tables, metrics as name, attributes, value,
    /// unit; events as name, severity, attributes, body
    Table,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Replace a source (or one of its collectors) with recorded rows:
    /// NDJSON, one object per row; an integer `_scrape` column groups rows
    /// into successive scrapes
    #[arg(long, value_name = "SOURCE[.COLLECTOR]=FILE")]
    input: Vec<String>,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
    /// Print this node's output instead of what reaches the sinks
    #[arg(long, value_name = "NODE")]
    tap: Option<String>,
    /// Query the real databases of sources without --input this many times
    /// (deltas appear from the second scrape)
    #[arg(long, value_name = "N")]
    scrapes: Option<u64>,
    /// Time between live scrapes (default: each source's interval), e.g. 2s
    #[arg(long, value_name = "DURATION", requires = "scrapes", value_parser = parse_duration)]
    interval: Option<Seconds>,
    #[command(flatten)]
    paths: Paths,
}

/// A duration from the command line: `500ms`, `2s`, `1m`.
#[derive(Debug, Clone, Copy)]
pub struct Seconds(f64);

impl From<Seconds> for Duration {
    fn from(s: Seconds) -> Duration {
        Duration::from_secs_f64(s.0)
    }
}

pub fn parse_duration(text: &str) -> Result<Seconds, String> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration like 2s"))?;
    let factor = match unit {
        "ms" => 0.001,
        "s" | "" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("`{unit}` is not a unit of time (ms, s, m, h)")),
    };
    Ok(Seconds(n * factor))
}

/// `--input SOURCE[.COLLECTOR]=FILE` arguments, checked against the plan.
pub fn parse_inputs(plan: &dbintel_dsl::Plan, inputs: &[String]) -> Result<HashMap<String, Vec<(String, PathBuf)>>, String> {
    let mut replays: HashMap<String, Vec<(String, PathBuf)>> = HashMap::new();
    for input in inputs {
        let Some((target, file)) = input.split_once('=') else {
            return Err(format!("--input {input}: expected SOURCE[.COLLECTOR]=FILE"));
        };
        let (source, collector) = match target.split_once('.') {
            Some((s, c)) => (s, Some(c)),
            None => (target, None),
        };
        let Some(NodeKind::Source(node)) = plan.node(source).map(|n| &n.kind) else {
            return Err(format!("--input {input}: no source named `{source}`"));
        };
        let collector = match collector {
            Some(c) if node.collectors.contains_key(c) => c.to_string(),
            Some(c) => return Err(format!("--input {input}: source `{source}` has no collector `{c}`")),
            None if node.collectors.len() == 1 => node.collectors.keys().next().cloned().unwrap_or_default(),
            None => {
                let names: Vec<&str> = node.collectors.keys().map(String::as_str).collect();
                return Err(format!("--input {input}: say which collector, one of: {}", names.join(", ")));
            }
        };
        if !std::path::Path::new(file).is_file() {
            return Err(format!("--input {input}: cannot read `{file}`"));
        }
        replays.entry(source.to_string()).or_default().push((collector, PathBuf::from(file)));
    }
    Ok(replays)
}

fn usage(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_USAGE)
}

pub fn run(args: Args) -> ExitCode {
    let compilation = match super::compile(&args.paths.paths, EnvPolicy::Warn) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let errors_or_warnings: Vec<_> = compilation.diagnostics.iter().filter(|d| d.is_error() || d.code.id != "W312").cloned().collect();
    if !errors_or_warnings.is_empty() {
        eprint!("{}", report::human(&compilation.sources, &errors_or_warnings));
    }
    let Some(plan) = compilation.plan else {
        eprintln!("invalid: {}", report::summary(&compilation.diagnostics));
        return ExitCode::from(EXIT_INVALID);
    };

    let replays = match parse_inputs(&plan, &args.input) {
        Ok(r) => r,
        Err(message) => return usage(message),
    };
    for (name, node) in &plan.nodes {
        if let NodeKind::Source(source) = &node.kind {
            for collector in source.collectors.keys() {
                let given = replays.get(name).is_some_and(|r| r.iter().any(|(c, _)| c == collector));
                if !given && args.scrapes.is_none() {
                    eprintln!(
                        "note: {name}.{collector} has no --input; it produces nothing in a dry run (use --scrapes N to query the database)"
                    );
                }
            }
        }
    }

    let format = match args.output {
        Output::OtlpJson => Format::OtlpJson,
        Output::Pretty => Format::Pretty,
        Output::Table => Format::Table,
    };
    let stdout = shared_stdout();
    let mut sinks: HashMap<String, Box<dyn Sink>> = HashMap::new();
    for (name, node) in &plan.nodes {
        if let NodeKind::Sink(_) = node.kind {
            sinks.insert(name.clone(), Box::new(StdoutSink::new(format, stdout.clone())));
        }
    }
    let tap = args.tap.map(|node| (node, Box::new(StdoutSink::new(format, stdout.clone())) as Box<dyn Sink>));
    // a dry run reports a database it cannot reach instead of retrying
    let live = args.scrapes.map(|n| LiveOptions {
        scrapes: Some(n),
        interval: args.interval.map(Duration::from),
        fail_fast: true,
        ..LiveOptions::default()
    });
    let setup = Setup { replays, sinks, tap, live, registry: None, status: None };

    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    match runtime.block_on(dbintel_runtime::run(&plan, setup)) {
        Ok(finished) => {
            eprint!("{}", finished.counters.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}
