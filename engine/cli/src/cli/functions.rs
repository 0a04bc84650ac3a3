//! `dbintel functions`

use std::io::Write;
use std::process::ExitCode;

use dbintel_stdlib::FunctionKind;

pub fn run() -> ExitCode {
    let mut out = std::io::stdout().lock();
    // a closed pipe (`dbintel functions | head`) ends the listing, quietly
    let _ = list(&mut out);
    ExitCode::SUCCESS
}

fn list(out: &mut impl Write) -> std::io::Result<()> {
    for (title, kind) in
        [("Editors (statements that change a record)", FunctionKind::Editor), ("Converters (values)", FunctionKind::Converter)]
    {
        writeln!(out, "{title}:")?;
        for sig in dbintel_stdlib::all().filter(|s| s.kind == kind) {
            writeln!(out, "  {:<60} {}", sig.usage(), sig.summary)?;
        }
        writeln!(out)?;
    }
    out.flush()
}
