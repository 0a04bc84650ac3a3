//! The `dbintel` command line. One file per subcommand.

mod completions;
mod doctor;
mod dry_run;
mod fmt;
mod functions;
mod graph;
mod run;
mod status;
mod test;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes: 0 success, 1 the input is invalid (or would be reformatted),
/// 2 the command line itself is wrong.
pub const EXIT_INVALID: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "dbintel",
    version,
    about = "Collects query telemetry from PostgreSQL and MySQL, strips PII, ships OTLP.",
    after_help = "Examples:\n  dbintel validate pipelines/\n  dbintel validate --format json --deny-warnings pipelines/postgres.pipe\n  dbintel graph --format mermaid pipelines/postgres.pipe\n  dbintel fmt --check pipelines/"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check .pipe files (or directories of them) without running anything.
    #[command(
        after_help = "Exit status: 0 valid, 1 invalid, 2 usage error.\n\nExamples:\n  dbintel validate pipelines/\n  dbintel validate --format json pipelines/postgres.pipe"
    )]
    Validate(validate::Args),
    /// Print the compiled pipeline graph as DOT or Mermaid.
    #[command(after_help = "Example:\n  dbintel graph pipelines/postgres.pipe | dot -Tsvg > graph.svg")]
    Graph(graph::Args),
    /// Rewrite .pipe files in canonical form, keeping comments.
    #[command(after_help = "Exit status with --check: 0 formatted, 1 would reformat.\n\nExample:\n  dbintel fmt --check pipelines/")]
    Fmt(fmt::Args),
    /// Run the whole plan on recorded rows: no database, no network; what
    /// would be exported goes to stdout.
    #[command(
        name = "dry-run",
        after_help = "Example:\n  dbintel dry-run pipelines/postgres.pipe --input postgres.statements=pipelines/fixtures/pg_stat_statements.ndjson --output pretty"
    )]
    DryRun(dry_run::Args),
    /// Check each database target of the pipelines against everything the
    /// collectors need, and print exactly how to fix what is missing.
    /// Only reads: the SQL is printed for a DBA to run.
    #[command(
        after_help = "Exit status: 0 all ok, 1 the files are invalid, 2 usage error, 3 warnings only, 4 at least one failure.\n\nExamples:\n  dbintel doctor pipelines/postgres.pipe\n  dbintel doctor --format json --target orders /etc/dbintel/\n  dbintel doctor --print-setup-sql pipelines/postgres.pipe > dbintel-setup.sql"
    )]
    Doctor(doctor::Args),
    /// Run the pipelines as a service: query the databases, export OTLP,
    /// serve /metrics, /healthz, /readyz; reload on SIGHUP, POST /reload or
    /// a change to the files; flush and exit on SIGTERM.
    #[command(
        after_help = "Example:\n  PG_DSN=postgres://dbintel_monitor@db/postgres NEW_RELIC_LICENSE_KEY=... dbintel run --listen 0.0.0.0:9464 /etc/dbintel/"
    )]
    Run(run::Args),
    /// Ask a running `dbintel run` what each target, collector and sink is
    /// doing (its /status), as a table.
    #[command(after_help = "Exit status: 0 ready, 1 not ready, 2 cannot reach it.\n\nExample:\n  dbintel status --listen 127.0.0.1:9464")]
    Status(status::Args),
    /// Run the `test` blocks of .pipe files.
    #[command(
        after_help = "Exit status: 0 all passed, 1 a test failed or the files are invalid.\n\nExample:\n  dbintel test pipelines/ --junit report.xml"
    )]
    Test(test::Args),
    /// List the functions transform statements can call.
    Functions,
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  dbintel completions bash > /etc/bash_completion.d/dbintel")]
    Completions(completions::Args),
}

/// Files or directories of `.pipe` files.
#[derive(clap::Args, Debug)]
pub struct Paths {
    /// .pipe files, or directories whose *.pipe files form one pipeline set
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() { ExitCode::from(EXIT_USAGE) } else { ExitCode::SUCCESS };
        }
    };
    let log_format = match &cli.command {
        Command::Run(args) => args.log_format,
        _ => run::LogFormat::Pretty,
    };
    init_logging(matches!(cli.command, Command::Run(_)), log_format);
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Graph(args) => graph::run(args),
        Command::Fmt(args) => fmt::run(args),
        Command::DryRun(args) => dry_run::run(args),
        Command::Test(args) => test::run(args),
        Command::Status(args) => status::run(args),
        Command::Functions => functions::run(),
        Command::Completions(args) => completions::run(args),
    }
}

/// Logs go to stderr, so stdout stays clean for data (dry-run) and
/// reports (validate --format json). DBINTEL_LOG sets the filter; the
/// default is `info` for `run` (the service says what it does) and `warn`
/// for the one-shot commands, with the libraries we use at `warn` either way.
fn init_logging(service: bool, format: run::LogFormat) {
    let default = if service { "info,sqlx=warn,hyper=warn,h2=warn,tower=warn,kube=warn,rustls=warn" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DBINTEL_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    match format {
        run::LogFormat::Json => builder.json().flatten_event(true).init(),
        run::LogFormat::Pretty => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
}

/// Compiles the given paths for a command that only reads them. On a usage
/// problem (no such directory) prints it and returns the exit code.
fn compile(paths: &[PathBuf], env_policy: dbintel_dsl::EnvPolicy) -> Result<dbintel_dsl::Compilation, ExitCode> {
    let files = crate::fs_host::expand(paths).map_err(|err| {
        eprintln!("error: {err}");
        ExitCode::from(EXIT_USAGE)
    })?;
    Ok(dbintel_dsl::compile(&files, &crate::fs_host::FsHost, env_policy))
}

/// Compiles for a command that needs a plan: on errors, prints them and
/// gives the exit code.
fn compile_plan(paths: &[PathBuf]) -> Result<(dbintel_dsl::Compilation, dbintel_dsl::Plan), ExitCode> {
    let mut compilation = compile(paths, dbintel_dsl::EnvPolicy::Warn)?;
    match compilation.plan.take() {
        Some(plan) => Ok((compilation, plan)),
        None => {
            eprint!("{}", crate::report::human(&compilation.sources, &compilation.diagnostics));
            eprintln!("invalid: {}", crate::report::summary(&compilation.diagnostics));
            Err(ExitCode::from(EXIT_INVALID))
        }
    }
}
