//! `dbintel fmt`

use std::process::ExitCode;

use dbintel_dsl::source::{SourceFile, SourceMap};
use dbintel_dsl::{format, parse};

use super::{Paths, EXIT_INVALID, EXIT_USAGE};
use crate::report;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Change nothing; exit 1 if any file is not formatted
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    paths: Paths,
}

pub fn run(args: Args) -> ExitCode {
    let files = match crate::fs_host::expand(&args.paths.paths) {
        Ok(files) => files,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut failed = false;
    for path in files {
        let name = path.display().to_string();
        let text = match std::fs::read(&path).map(String::from_utf8) {
            Ok(Ok(text)) => text,
            Ok(Err(_)) => {
                eprintln!("error: {name} is not valid UTF-8");
                failed = true;
                continue;
            }
            Err(err) => {
                eprintln!("error: cannot read {name}: {err}");
                failed = true;
                continue;
            }
        };
        let mut sources = SourceMap::default();
        let id = sources.add(SourceFile::new(name.clone(), path.clone(), text));
        let parsed = parse::parse(id, &sources.get(id).text);
        if !parsed.diagnostics.is_empty() {
            eprint!("{}", report::human(&sources, &parsed.diagnostics));
            eprintln!("{name}: not formatted: it does not parse");
            failed = true;
            continue;
        }
        let formatted = format::format(&sources.get(id).text, &parsed);
        if formatted == sources.get(id).text {
            continue;
        }
        if args.check {
            eprintln!("would reformat {name}");
            failed = true;
        } else if let Err(err) = std::fs::write(&path, formatted) {
            eprintln!("error: cannot write {name}: {err}");
            failed = true;
        } else {
            eprintln!("formatted {name}");
        }
    }
    if failed {
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::SUCCESS
    }
}
