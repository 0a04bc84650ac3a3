//! `dbintel run`: the service (see [`crate::daemon`]).

use std::process::ExitCode;
use std::time::Duration;

use super::dry_run::{parse_duration, parse_inputs, Seconds};
use super::{Paths, EXIT_INVALID, EXIT_USAGE};
use crate::daemon::http::{Limits, ReloadToken};
use dbintel_core::secret::Secret;

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
    /// Address for /metrics, /healthz, /readyz, /status and POST /reload
    /// (without /status and POST /reload when --admin-listen is given)
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9464", env = "DBINTEL_LISTEN")]
    listen: std::net::SocketAddr,
    /// Serve /status and POST /reload on this address instead of --listen
    /// (e.g. 127.0.0.1:9465: a NetworkPolicy cannot tell paths apart)
    #[arg(long, value_name = "ADDR:PORT", env = "DBINTEL_ADMIN_LISTEN")]
    admin_listen: Option<std::net::SocketAddr>,
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
    /// Allow POST /reload for requests carrying this bearer token, read
    /// from the named environment variable at start (off without this or
    /// --reload-token-file)
    #[arg(long, value_name = "NAME", conflicts_with = "reload_token_file")]
    reload_token_env: Option<String>,
    /// Allow POST /reload for requests carrying the bearer token in this
    /// file (read on every request, so a mounted Secret can rotate)
    #[arg(long, value_name = "PATH")]
    reload_token_file: Option<std::path::PathBuf>,
    /// Most open connections on the HTTP port; at the cap the oldest idle
    /// one is closed to make room
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    http_max_connections: u64,
    /// Time a client has to send a request's headers; idle connections
    /// are closed after it too
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    http_header_timeout: Seconds,
    /// Largest request body the HTTP port reads, in bytes (larger: 413)
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    http_max_body: u64,
    #[command(flatten)]
    paths: Paths,
}

/// Where POST /reload's token comes from; an error names the flag (never
/// the token).
fn reload_token(args: &Args) -> Result<ReloadToken, String> {
    if let Some(name) = &args.reload_token_env {
        return match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Ok(ReloadToken::Fixed(Secret::plain(v.trim(), &format!("env({name:?})")))),
            _ => Err(format!("--reload-token-env {name}: the variable is not set or empty")),
        };
    }
    if let Some(path) = &args.reload_token_file {
        return match std::fs::read_to_string(path) {
            Ok(v) if !v.trim().is_empty() => Ok(ReloadToken::File(path.clone())),
            Ok(_) => Err(format!("--reload-token-file {}: the file is empty", path.display())),
            Err(e) => Err(format!("--reload-token-file {}: {e}", path.display())),
        };
    }
    Ok(ReloadToken::Off)
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
    let reload = match reload_token(&args) {
        Ok(r) => r,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let http = Limits {
        max_body: args.http_max_body,
        header_timeout: Duration::from(args.http_header_timeout),
        max_connections: args.http_max_connections as usize,
        reload,
    };
    let options = crate::daemon::Options {
        paths: args.paths.paths,
        listen: args.listen,
        admin_listen: args.admin_listen,
        shutdown_timeout: Duration::from(args.shutdown_timeout),
        watch: (!args.no_watch).then(|| Duration::from(args.watch_interval)),
        replays,
        http,
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
