//! `dbintel graph`

use std::process::ExitCode;

use dbintel_dsl::render;

use super::Paths;

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
    let plan = match super::compile_plan(&args.paths.paths) {
        Ok((_, plan)) => plan,
        Err(code) => return code,
    };
    match args.format {
        Format::Dot => print!("{}", render::dot(&plan)),
        Format::Mermaid => print!("{}", render::mermaid(&plan)),
    }
    ExitCode::SUCCESS
}
