//! Diagnostics: what the checker found, where, and how to fix it.
//!
//! A [`Diagnostic`] is plain data. The CLI renders it with miette for people
//! and as JSON for machines; both come from the same fields.

use crate::codes::Code;
use crate::source::{SourceMap, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub code: Code,
    /// Usually `code.severity`; `env var not set` is a warning in `validate`
    /// and an error in `run`, so the checker may override it.
    pub severity: Severity,
    pub message: String,
    pub primary: Label,
    pub secondary: Vec<Label>,
    pub help: Option<String>,
    /// Set when the source line itself may hold a secret (an inline DSN):
    /// renderers show the position but not the text.
    pub hide_source: bool,
}

impl Diagnostic {
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: code.severity,
            message: message.into(),
            primary: Label { span, message: String::new() },
            secondary: Vec::new(),
            help: None,
            hide_source: false,
        }
    }
    pub fn label(mut self, message: impl Into<String>) -> Diagnostic {
        self.primary.message = message.into();
        self
    }
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label { span, message: message.into() });
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }
    pub fn hide_source(mut self) -> Diagnostic {
        self.hide_source = true;
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The machine-readable form used by `validate --format json`.
    pub fn to_record(&self, sources: &SourceMap) -> DiagnosticRecord {
        let file = sources.get(self.primary.span.file);
        let (line, column) = file.line_col(self.primary.span.start);
        let (end_line, end_column) = file.line_col(self.primary.span.end);
        DiagnosticRecord {
            code: self.code.id,
            severity: self.severity,
            message: self.message.clone(),
            file: file.name.clone(),
            line,
            column,
            end_line,
            end_column,
            label: (!self.primary.message.is_empty()).then(|| self.primary.message.clone()),
            help: self.help.clone(),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DiagnosticRecord {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// "did you mean `x`?" for a misspelt name, when one candidate is close.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = ["replace_pattern", "replace_all_patterns", "set"];
        assert_eq!(did_you_mean("replace_patern", names), Some("replace_pattern"));
        assert_eq!(did_you_mean("Set", names), Some("set"));
        assert_eq!(did_you_mean("frobnicate", names), None);
    }
}
