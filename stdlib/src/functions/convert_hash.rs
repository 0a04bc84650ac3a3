//! Hashing converters, for pseudonymising values and fingerprinting queries.

use crate::signature::{FunctionKind::Converter, FunctionSig, Param, ParamType::*, ReturnType};

const VALUE: &[Param] = &[Param::required("value", Any)];

pub const SIGNATURES: &[FunctionSig] = &[
    FunctionSig {
        name: "SHA256",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::String,
        summary: "Hex SHA-256 of the value's string form.",
    },
    FunctionSig {
        name: "SHA1",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::String,
        summary: "Hex SHA-1 of the value's string form.",
    },
    FunctionSig {
        name: "FNV",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Int,
        summary: "64-bit FNV-1a hash of the value's string form.",
    },
    FunctionSig {
        name: "Fingerprint",
        kind: Converter,
        params: &[Param::required("text", String)],
        returns: ReturnType::String,
        summary: "Stable hash of the normalized SQL text.",
    },
];
