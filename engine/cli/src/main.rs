use std::process::ExitCode;

// Records are built on one thread and freed on another (sources, operators
// and sinks run as separate tasks); mimalloc handles that pattern far
// better than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // One TLS provider for every client (sqlx, tonic, reqwest), chosen
    // before any of them starts.
    let _ = rustls::crypto::ring::default_provider().install_default();
    dbintel::cli::main()
}
