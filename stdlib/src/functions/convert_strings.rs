//! Converters over strings.

use crate::signature::{FunctionKind::Converter, FunctionSig, Param, ParamType::*, ReturnType};

const TARGET: &[Param] = &[Param::required("target", String)];

pub const SIGNATURES: &[FunctionSig] = &[
    FunctionSig {
        name: "Concat",
        kind: Converter,
        params: &[Param::required("values", List), Param::required("delimiter", String)],
        returns: ReturnType::String,
        summary: "Joins the values with delimiter.",
    },
    FunctionSig {
        name: "Split",
        kind: Converter,
        params: &[Param::required("target", String), Param::required("delimiter", String)],
        returns: ReturnType::List,
        summary: "Splits target at each delimiter.",
    },
    FunctionSig {
        name: "Substring",
        kind: Converter,
        params: &[Param::required("target", String), Param::required("start", Int), Param::required("length", Int)],
        returns: ReturnType::String,
        summary: "length characters of target from start.",
    },
    FunctionSig {
        name: "IsMatch",
        kind: Converter,
        params: &[Param::required("target", Any), Param::required("pattern", Regex)],
        returns: ReturnType::Bool,
        summary: "True if the regex matches somewhere in target.",
    },
    FunctionSig {
        name: "HasPrefix",
        kind: Converter,
        params: &[Param::required("target", String), Param::required("prefix", String)],
        returns: ReturnType::Bool,
        summary: "True if target starts with prefix.",
    },
    FunctionSig {
        name: "HasSuffix",
        kind: Converter,
        params: &[Param::required("target", String), Param::required("suffix", String)],
        returns: ReturnType::Bool,
        summary: "True if target ends with suffix.",
    },
    FunctionSig { name: "ToLowerCase", kind: Converter, params: TARGET, returns: ReturnType::String, summary: "Lowercases target." },
    FunctionSig { name: "ToUpperCase", kind: Converter, params: TARGET, returns: ReturnType::String, summary: "Uppercases target." },
    FunctionSig {
        name: "Trim",
        kind: Converter,
        params: &[Param::required("target", String), Param::optional("replacement", String)],
        returns: ReturnType::String,
        summary: "Removes leading and trailing whitespace (or the given characters).",
    },
];
