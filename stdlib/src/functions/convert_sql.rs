//! SQL text converters.

use crate::signature::{FunctionKind::Converter, FunctionSig, Param, ParamType::*, ReturnType};

pub const SIGNATURES: &[FunctionSig] = &[FunctionSig {
    name: "NormalizeSQL",
    kind: Converter,
    params: &[Param::required("text", String), Param::optional("dialect", OneOf(&["postgres", "mysql"]))],
    returns: ReturnType::String,
    summary: "Replaces every literal in SQL text with ?, removes comments, collapses IN/VALUES lists.",
}];
