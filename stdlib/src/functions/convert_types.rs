//! Converters that test and change the type of a value.

use crate::signature::{FunctionKind::Converter, FunctionSig, Param, ParamType::*, ReturnType};

const VALUE: &[Param] = &[Param::required("value", Any)];

pub const SIGNATURES: &[FunctionSig] = &[
    FunctionSig {
        name: "Int",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Int,
        summary: "Converts a value to an integer, or nil.",
    },
    FunctionSig {
        name: "Double",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Double,
        summary: "Converts a value to a float, or nil.",
    },
    FunctionSig {
        name: "String",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::String,
        summary: "Converts a value to its string form.",
    },
    FunctionSig {
        name: "Bool",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Bool,
        summary: "Converts a value to a boolean, or nil.",
    },
    FunctionSig { name: "IsString", kind: Converter, params: VALUE, returns: ReturnType::Bool, summary: "True if the value is a string." },
    FunctionSig { name: "IsInt", kind: Converter, params: VALUE, returns: ReturnType::Bool, summary: "True if the value is an integer." },
    FunctionSig { name: "IsDouble", kind: Converter, params: VALUE, returns: ReturnType::Bool, summary: "True if the value is a float." },
    FunctionSig { name: "IsMap", kind: Converter, params: VALUE, returns: ReturnType::Bool, summary: "True if the value is a map." },
    FunctionSig {
        name: "Len",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Int,
        summary: "Length of a string (characters), list or map.",
    },
    FunctionSig {
        name: "Coalesce",
        kind: Converter,
        params: &[Param::required("values", List)],
        returns: ReturnType::Any,
        summary: "The first value of the list that is not nil.",
    },
    FunctionSig {
        name: "ParseJSON",
        kind: Converter,
        params: &[Param::required("target", String)],
        returns: ReturnType::Any,
        summary: "Parses a JSON string into a map, list or scalar.",
    },
];
