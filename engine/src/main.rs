use std::process::ExitCode;

// Records are built on one thread and freed on another (sources, operators
// and sinks run as separate tasks); mimalloc handles that pattern far
// better than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Logs go to stderr, so stdout stays clean for data (dry-run) and
    // reports (validate --format json). DBINTEL_LOG sets the level.
    let filter = tracing_subscriber::EnvFilter::try_from_env("DBINTEL_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour).with_target(false).init();
    dbintel::cli::main()
}
