//! Showing diagnostics: miette reports for people, JSON lines for machines.

use std::fmt;
use std::io::IsTerminal;

use dbintel_dsl::diagnostic::Diagnostic;
use dbintel_dsl::{Severity, SourceMap};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

/// One diagnostic in the shape miette renders.
struct Rendered<'a> {
    diagnostic: &'a Diagnostic,
    source: Option<NamedSource<String>>,
    location: String,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.source.is_none() {
            write!(f, "{} (at {})", self.diagnostic.message, self.location)
        } else {
            f.write_str(&self.diagnostic.message)
        }
    }
}

impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diagnostic.code.id))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source.as_ref()?;
        let primary = &self.diagnostic.primary;
        let mut labels = vec![LabeledSpan::new_primary_with_span(non_empty(&primary.message), span(primary.span))];
        for label in &self.diagnostic.secondary {
            if label.span.file == primary.span.file {
                labels.push(LabeledSpan::new_with_span(non_empty(&label.message), span(label.span)));
            }
        }
        Some(Box::new(labels.into_iter()))
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn span(s: dbintel_dsl::Span) -> SourceSpan {
    SourceSpan::from(s.start..s.end)
}

/// Renders every diagnostic for a terminal (colour only on a TTY).
pub fn human(sources: &SourceMap, diagnostics: &[Diagnostic]) -> String {
    render(sources, diagnostics, std::io::stderr().is_terminal())
}

/// Renders every diagnostic without colour (for an HTTP reply or a log).
pub fn plain(sources: &SourceMap, diagnostics: &[Diagnostic]) -> String {
    render(sources, diagnostics, false)
}

fn render(sources: &SourceMap, diagnostics: &[Diagnostic], colour: bool) -> String {
    let theme = if colour { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
    let mut out = String::new();
    for diagnostic in diagnostics {
        let file = sources.get(diagnostic.primary.span.file);
        let (line, column) = file.line_col(diagnostic.primary.span.start);
        let location = format!("{}:{line}:{column}", file.name);
        // Very long lines (minified or garbage input) would flood the
        // terminal; the position is enough there.
        let line_too_long = file.text.lines().nth(line.saturating_sub(1)).is_some_and(|l| l.len() > 500);
        let source =
            (!diagnostic.hide_source && !line_too_long && !file.text.is_empty()).then(|| NamedSource::new(&file.name, file.text.clone()));
        let rendered = Rendered { diagnostic, source, location };
        if handler.render_report(&mut out, &rendered).is_err() {
            out.push_str(&format!("{}: {}\n", rendered.location, diagnostic.message));
        }
    }
    out
}

/// One JSON object per diagnostic, as an array.
pub fn json(sources: &SourceMap, diagnostics: &[Diagnostic]) -> String {
    let records: Vec<_> = diagnostics.iter().map(|d| d.to_record(sources)).collect();
    serde_json::to_string_pretty(&records).unwrap_or_else(|_| "[]".into())
}

/// "2 errors, 1 warning"
pub fn summary(diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!("{}, {}", plural(errors, "error"), plural(warnings, "warning"))
}
