//! Functions the `.pipe` language calls, and the pure machinery behind them.
//!
//! # Layout
//! - [`signature`]: how a function is described to the checker (name, kind,
//!   parameters, return type). The checker only ever reads these, so adding
//!   a function never touches the checker.
//! - [`functions`]: the registry, one file per function family
//!   (`fields` editors, `replace` editors, type converters, string
//!   converters, hashes, SQL, PII, time).
//! - [`pattern`]: regex validation (and, later, compilation).
//!
//! Nothing in this crate does I/O.

pub mod functions;
pub mod pattern;
pub mod signature;

pub use functions::{all, lookup};
pub use signature::{FunctionKind, FunctionSig, Param, ParamType, ReturnType};
