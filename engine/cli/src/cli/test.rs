//! `dbintel test`

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{Paths, EXIT_INVALID};
use dbintel_operators::pipe_tests::{run_tests, Verdict};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also write the results as JUnit XML
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    #[command(flatten)]
    paths: Paths,
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn run(args: Args) -> ExitCode {
    let (compilation, plan) = match super::compile_plan(&args.paths.paths) {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    let results = run_tests(&plan);
    let mut failed = 0;
    let mut junit = String::new();
    for result in &results {
        let file = compilation.sources.get(result.span.file);
        let (line, _) = file.line_col(result.span.start);
        let _ = write!(junit, r#"  <testcase classname="{}" name="{}""#, xml_escape(&file.name), xml_escape(&result.name));
        match &result.verdict {
            Verdict::Passed => {
                println!("ok   {} ({}:{line})", result.name, file.name);
                junit.push_str("/>\n");
            }
            Verdict::Failed(reasons) => {
                failed += 1;
                println!("FAIL {} ({}:{line})", result.name, file.name);
                for reason in reasons {
                    println!("  {reason}");
                }
                let _ = writeln!(junit, ">\n    <failure message=\"{}\"/>\n  </testcase>", xml_escape(&reasons.join("\n")));
            }
        }
    }
    println!("{} passed, {} failed", results.len() - failed, failed);
    if let Some(path) = args.junit {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"dbintel\" tests=\"{}\" failures=\"{failed}\">\n{junit}</testsuite>\n",
            results.len()
        );
        if let Err(e) = std::fs::write(&path, xml) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(EXIT_INVALID);
        }
    }
    if failed > 0 {
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::SUCCESS
    }
}
