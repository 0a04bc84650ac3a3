//! `dbintel run`: the service (see [`crate::daemon`]).

use std::process::ExitCode;
use std::time::Duration;

use super::dry_run::{parse_duration, parse_inputs, Seconds};
use super::{Paths, EXIT_INVALID, EXIT_USAGE};

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines
    #[default]
    Pretty,
    /// One JSON object per line
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address for /metrics, /healthz, /readyz and POST /reload
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9464", env = "DBINTEL_LISTEN")]
    listen: std::net::SocketAddr,
    /// How long SIGTERM waits for data in flight and queued to be delivered
    #[arg(long, value_name = "DURATION", default_value = "25s", value_parser = parse_duration)]
    shutdown_timeout: Seconds,
    /// How often the files are checked for changes (a ConfigMap update)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    watch_interval: Seconds,
    /// Do not watch the files; reload only on SIGHUP or POST /reload
    #[arg(long)]
    no_watch: bool,
    /// Log format (levels from DBINTEL_LOG, e.g. `info` or `dbintel=debug`)
    #[arg(long, value_enum, default_value_t, env = "DBINTEL_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Replace a source (or one of its collectors) with recorded rows, as in
    /// dry-run (for trying a pipeline against a receiver)
    #[arg(long, value_name = "SOURCE[.COLLECTOR]=FILE")]
    input: Vec<String>,
    #[command(flatten)]
    paths: Paths,
}

pub fn run(args: Args) -> ExitCode {
    // Which sources --input names is checked against the plan the daemon
    // compiles; compile once here for that (and to fail fast).
    let replays = match super::compile_plan(&args.paths.paths) {
        Ok((_, plan)) => match parse_inputs(&plan, &args.input) {
            Ok(r) => r,
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
        Err(code) => return code,
    };
    let options = crate::daemon::Options {
        paths: args.paths.paths,
        listen: args.listen,
        shutdown_timeout: Duration::from(args.shutdown_timeout),
        watch: (!args.no_watch).then(|| Duration::from(args.watch_interval)),
        replays,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    match runtime.block_on(crate::daemon::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}
