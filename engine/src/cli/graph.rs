//! `dbintel graph`

use std::process::ExitCode;

use dbintel_dsl::{render, EnvPolicy};

use super::{Paths, EXIT_INVALID};
use crate::report;

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum Format {
    #[default]
    Dot,
    Mermaid,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    #[command(flatten)]
    paths: Paths,
}

pub fn run(args: Args) -> ExitCode {
    let compilation = match super::compile(&args.paths.paths, EnvPolicy::Warn) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(plan) = &compilation.plan else {
        eprint!("{}", report::human(&compilation.sources, &compilation.diagnostics));
        eprintln!("invalid: {}", report::summary(&compilation.diagnostics));
        return ExitCode::from(EXIT_INVALID);
    };
    match args.format {
        Format::Dot => print!("{}", render::dot(plan)),
        Format::Mermaid => print!("{}", render::mermaid(plan)),
    }
    ExitCode::SUCCESS
}
