//! `dbintel doctor`: checks every target of the pipeline's files against
//! what its collectors need, and prints exactly how to fix what is not
//! right; `--print-setup-sql` prints the whole setup script instead.

use std::process::ExitCode;

use dbintel_doctor::{Options, Report};
use dbintel_dsl::EnvPolicy;

use super::{Paths, EXIT_INVALID, EXIT_USAGE};
use crate::report;

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum Format {
    /// One line per check; under each problem what it means and the fix
    #[default]
    Human,
    /// The whole report as one JSON document
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Check one target only: a source's name (all its targets), a
    /// target's name, or SOURCE/TARGET
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
    /// Print the setup SQL for the pipeline's servers (role, grants,
    /// settings, extensions, the EXPLAIN helper) instead of the checks
    #[arg(long)]
    print_setup_sql: bool,
    /// The role that is to own the EXPLAIN helper function (never a
    /// superuser: planning runs with its rights)
    #[arg(long, value_name = "ROLE", default_value = dbintel_doctor::plans_helper::DEFAULT_OWNER)]
    explain_owner: String,
    #[command(flatten)]
    paths: Paths,
}

pub fn run(args: Args) -> ExitCode {
    // env() left unset is a connection failure of that target, with its
    // name, not a reason to check nothing
    let compilation = match super::compile(&args.paths.paths, EnvPolicy::Warn) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(plan) = compilation.plan.as_ref() else {
        eprint!("{}", report::human(&compilation.sources, &compilation.diagnostics));
        eprintln!("invalid: {}", report::summary(&compilation.diagnostics));
        return ExitCode::from(EXIT_INVALID);
    };
    let mut targets = dbintel_doctor::target_plans(plan);
    if let Some(wanted) = &args.target {
        let known: Vec<String> = targets.iter().map(|t| dbintel_dsl::plan::target_key(&t.source, &t.target.name)).collect();
        targets.retain(|t| {
            &t.source == wanted || &t.target.name == wanted || &dbintel_dsl::plan::target_key(&t.source, &t.target.name) == wanted
        });
        if targets.is_empty() {
            eprintln!("error: --target {wanted}: no such source or target (the pipeline has: {})", known.join(", "));
            return ExitCode::from(EXIT_USAGE);
        }
    }
    if targets.is_empty() {
        eprintln!("note: the pipeline has no database source: nothing to check");
        return ExitCode::SUCCESS;
    }
    let options =
        Options { explain_owner: args.explain_owner.clone(), logged_sources: dbintel_doctor::logged_sources(plan), ..Options::default() };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let found: Report = runtime.block_on(dbintel_doctor::check_all(&targets, &options));
    if args.print_setup_sql {
        for t in found.targets.iter().filter(|t| t.summary.is_none()) {
            let why = t.findings.first().map(|f| f.observed.clone()).unwrap_or_default();
            eprintln!(
                "note: {} not reached ({why}): its part of the script is what its collectors need, not what its server lacks",
                t.name()
            );
        }
        print!("{}", dbintel_doctor::setup_sql::script(&targets, &found.targets, &options));
        return ExitCode::SUCCESS;
    }
    match args.format {
        Format::Human => print!("{}", found.human()),
        Format::Json => println!("{:#}", found.json()),
    }
    ExitCode::from(found.exit_code())
}
