//! SQL text: one lexer for PostgreSQL and MySQL/MariaDB, and what is built
//! on it. A real lexer, not a pile of regexes.
//!
//! # Layout
//! - `lexer`: the tokens of one *reading* of a text (PostgreSQL with or
//!   without standard_conforming_strings, MySQL with or without
//!   NO_BACKSLASH_ESCAPES / ANSI_QUOTES), and the ranges it hides.
//! - `reading`: which readings a text may have; whatever any of them
//!   calls a literal or a comment is redacted ("redact the union").
//! - `normalize`: NormalizeSQL — literals to `?`, comments out, lists
//!   collapsed.
//! - `explain`: may this captured text be handed to EXPLAIN? Decided
//!   from tokens, with a typed reason when not.
//! - `error_message`: a database error message made safe to log.
//! - `keywords`: the keyword list the last two share.
//! - [`apm_hash`]: `db.query.text.normalized.hash`, New Relic's own
//!   normalizer and MD5 (not a sanitizer: the key APM traces join on).
//! - [`comment_tags`]: the allowed `key=value` tags of a raw text's leading
//!   comments, each value checked, before the sanitizer removes comments.
//!
//! The dialect is a hint about the server: [`Dialect::Unknown`] (the
//! default) reads the text both ways and redacts the union, so `"…"` is a
//! string, `#` starts a comment and `$$…$$` is a literal.

pub mod apm_hash;
pub mod comment_tags;
mod error_message;
mod explain;
mod keywords;
mod lexer;
mod normalize;
mod reading;

pub use error_message::scrub_error_message;
pub use explain::{explainable, explainable_by_helper, Explainable, Refusal, MAX_EXPLAIN_BYTES, MAX_EXPLAIN_PARAMETERS};
pub use normalize::normalize;

/// Texts longer than this are refused rather than normalized.
pub const MAX_SQL_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    Postgres,
    MySql,
    /// Not known: the union of both readings (the strictest).
    #[default]
    Unknown,
}

impl Dialect {
    /// The dialect a name stands for: `db.system.name` values and the
    /// NormalizeSQL argument (`postgres`, `postgresql`, `mysql`, `mariadb`).
    pub fn parse(name: &str) -> Option<Dialect> {
        match name {
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "mysql" | "mariadb" => Some(Dialect::MySql),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("SQL text is {0} bytes, over the {MAX_SQL_BYTES}-byte limit")]
    TooLong(usize),
}

/// The byte ranges of the tokens NormalizeSQL may show as written (never
/// a literal's or a comment's): for tests and fuzzing, which hold them
/// against independent lexers — no constant or comment they find may
/// overlap one of these.
#[doc(hidden)]
pub fn shown_ranges(sql: &str, dialect: Dialect) -> Vec<std::ops::Range<usize>> {
    reading::redact(sql, dialect).lexed.tokens.iter().filter(|t| t.kind != lexer::Kind::Literal).map(|t| t.start..t.end).collect()
}
