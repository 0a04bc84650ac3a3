//! PII detectors.

use crate::signature::{FunctionKind::Converter, FunctionSig, Param, ParamType::*, ReturnType};

pub const SIGNATURES: &[FunctionSig] = &[
    FunctionSig {
        name: "RedactPII",
        kind: Converter,
        params: &[Param::required("text", String)],
        returns: ReturnType::String,
        summary: "Masks emails, SSNs, Luhn-valid cards, phones, IPs, JWTs and API keys.",
    },
    FunctionSig {
        name: "IsValidLuhn",
        kind: Converter,
        params: &[Param::required("value", Any)],
        returns: ReturnType::Bool,
        summary: "True if the digits of value pass the Luhn check.",
    },
];
