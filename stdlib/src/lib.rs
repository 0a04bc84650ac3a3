//! Functions the `.pipe` language calls, and the pure machinery behind them.
//!
//! # Layout
//! - [`signature`]: how a function is described to the checker (name, kind,
//!   parameters, return type). The checker only ever reads these, so adding
//!   a function never touches the checker.
//! - [`functions`]: the registry, one file per function family
//!   (`fields` editors, `replace` editors, type converters, string
//!   converters, hashes, SQL, APM correlation, PII, time).
//! - [`pattern`]: regexes: cheap validation, and compiled patterns that use
//!   the linear-time engine unless look-around or backreferences need
//!   bounded backtracking.
//! - [`sql`]: the SQL lexer behind NormalizeSQL, the EXPLAIN safety
//!   decision and the error-message scrubber; New Relic's query hash
//!   (`sql::apm_hash`) and the tags of a leading comment
//!   (`sql::comment_tags`), for APM correlation.
//! - [`trace_context`]: a W3C `traceparent` (from `application_name`, a
//!   MySQL user variable or a comment tag) as trace and span ids.
//! - [`pii`]: the detectors behind RedactPII.
//! - [`value`]: the values functions take and return.
//!
//! Nothing in this crate does I/O.

pub mod functions;
pub mod pattern;
pub mod pii;
pub mod plan;
pub mod signature;
pub mod sql;
pub mod trace_context;
pub mod value;

pub use functions::{all, lookup};
pub use signature::{Args, BuildError, Compiled, Example, FnError, FunctionKind, FunctionSig, Param, ParamType, ReturnType};
pub use value::{Map, Value};
