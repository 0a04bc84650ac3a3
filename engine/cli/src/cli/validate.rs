//! `dbintel validate`

use std::process::ExitCode;

use dbintel_dsl::EnvPolicy;

use super::{Paths, EXIT_INVALID};
use crate::report;

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum Format {
    #[default]
    Human,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// human: annotated source on stderr; json: an array of diagnostics on stdout
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Treat warnings (unused nodes, unset env vars) as errors
    #[arg(long)]
    deny_warnings: bool,
    #[command(flatten)]
    paths: Paths,
}

pub fn run(args: Args) -> ExitCode {
    let compilation = match super::compile(&args.paths.paths, EnvPolicy::Warn) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let failed = compilation.has_errors() || (args.deny_warnings && compilation.has_warnings());
    match args.format {
        Format::Json => println!("{}", report::json(&compilation.sources, &compilation.diagnostics)),
        Format::Human => {
            eprint!("{}", report::human(&compilation.sources, &compilation.diagnostics));
            let files = compilation.sources.files().count();
            let verdict = if failed { "invalid" } else { "valid" };
            eprintln!("{verdict}: {files} file(s), {}", report::summary(&compilation.diagnostics));
        }
    }
    if failed {
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::SUCCESS
    }
}
