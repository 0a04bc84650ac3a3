//! `dbintel completions`

use std::process::ExitCode;

use clap::CommandFactory;

#[derive(clap::Args, Debug)]
pub struct Args {
    shell: clap_complete::Shell,
}

pub fn run(args: Args) -> ExitCode {
    let mut command = super::Cli::command();
    clap_complete::generate(args.shell, &mut command, "dbintel", &mut std::io::stdout());
    ExitCode::SUCCESS
}
