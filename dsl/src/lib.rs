//! The `.pipe` language: from text to a checked [`Plan`].
//!
//! # Layout
//! - `grammar.pest`, [`parse`]: text to [`ast`], with error recovery.
//! - [`load`]: reads a set of files and follows `use` (through a [`Host`], so
//!   this crate itself does no I/O).
//! - [`check`]: names, settings, functions, paths, the graph; collects every
//!   [`Diagnostic`] instead of stopping at the first.
//! - [`schema`]: what each node kind accepts, declared once as typed
//!   settings ([`typed`]) the engine reads back.
//! - [`plan`]: the compiled DAG, the engine's only input.
//! - [`render`]: the plan as DOT or Mermaid.
//! - [`format`]: canonical formatting that keeps comments.
//! - [`targets`]: the databases a source scrapes, inline or from a
//!   targets file (YAML, read through the [`Host`]).
//! - [`codes`]: the registry of diagnostic codes.

pub mod ast;
pub mod check;
pub mod codes;
pub mod diagnostic;
pub mod format;
pub mod load;
pub mod parse;
pub mod plan;
pub mod render;
pub mod schema;
pub mod source;
pub mod targets;
pub mod typed;

pub use check::EnvPolicy;
pub use diagnostic::{Diagnostic, Severity};
pub use load::Host;
pub use plan::Plan;
pub use source::{SourceMap, Span};

/// The result of compiling a set of files.
#[derive(Debug)]
pub struct Compilation {
    pub sources: SourceMap,
    pub diagnostics: Vec<Diagnostic>,
    /// Present when there are no errors (warnings allowed).
    pub plan: Option<Plan>,
}

impl Compilation {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
    pub fn has_warnings(&self) -> bool {
        self.diagnostics.iter().any(|d| !d.is_error())
    }
}

/// Loads `paths` (and every file they `use`) as one pipeline set and checks
/// it. Diagnostics are sorted by file and position.
pub fn compile(paths: &[std::path::PathBuf], host: &dyn Host, env_policy: EnvPolicy) -> Compilation {
    let loaded = load::load(paths, host);
    let mut diagnostics = loaded.diagnostics;
    let modules: Vec<ast::Module> = loaded.files.into_iter().map(|f| f.parsed.module).collect();
    let env_is_set = |name: &str| host.env_is_set(name);
    let (mut plan, mut found) = check::check(check::CheckInput { modules: &modules, env_is_set: &env_is_set, env_policy });
    diagnostics.append(&mut found);
    let mut sources = loaded.sources;
    diagnostics.extend(targets::resolve_files(&mut plan, &mut sources, host, &env_is_set, env_policy));
    // log sources take their server's target once every target is known
    // (after errors the plan is not used, and the checker has said why)
    if !diagnostics.iter().any(Diagnostic::is_error) {
        diagnostics.extend(check::log_sources::link(&mut plan));
    }
    diagnostics.sort_by_key(|d| (d.primary.span.file, d.primary.span.start, d.code.id));
    diagnostics.dedup();
    let failed = diagnostics.iter().any(Diagnostic::is_error);
    Compilation { sources, diagnostics, plan: (!failed).then_some(plan) }
}
