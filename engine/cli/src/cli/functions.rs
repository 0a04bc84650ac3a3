//! `dbintel functions`

use std::process::ExitCode;

use dbintel_stdlib::FunctionKind;

pub fn run() -> ExitCode {
    for (title, kind) in
        [("Editors (statements that change a record)", FunctionKind::Editor), ("Converters (values)", FunctionKind::Converter)]
    {
        println!("{title}:");
        for sig in dbintel_stdlib::all().filter(|s| s.kind == kind) {
            println!("  {:<60} {}", sig.usage(), sig.summary);
        }
        println!();
    }
    ExitCode::SUCCESS
}
