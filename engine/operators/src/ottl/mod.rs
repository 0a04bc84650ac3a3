//! The executable form of the language: paths, expressions and statements
//! compiled once from the checked AST, then run per record.

mod compile;
mod expr;
mod path;
mod statement;

pub use compile::{compile_condition, compile_path, compile_statement, CompileError};
pub use expr::{truthy, CExpr, Ctx};
pub use path::CPath;
pub use statement::CStatement;
