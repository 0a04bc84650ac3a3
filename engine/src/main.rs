use std::process::ExitCode;

fn main() -> ExitCode {
    dbintel::cli::main()
}
