//! PII detectors.

use crate::pii;
use crate::signature::{Compiled, Example, FnError, FunctionKind::Converter, FunctionSig, Param, ParamType::*, ReturnType};
use crate::value::Value;

pub const SIGNATURES: &[FunctionSig] = &[
    FunctionSig {
        name: "RedactPII",
        kind: Converter,
        params: &[Param::required("text", String)],
        returns: ReturnType::String,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], RedactPII(\"mail bob@example.com, ssn 123-45-6789\"))",
            output: "{\"out\": \"mail [EMAIL], ssn [SSN]\"}",
        }],
        summary: "Masks emails, SSNs, Luhn-valid cards, phones, IPs, JWTs and API keys.",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| match args[0] {
                Value::Nil => Ok(Value::Nil),
                Value::Str(text) => Ok(Value::Str(pii::redact(text).into_owned())),
                Value::Int(_) | Value::Double(_) | Value::Bool(_) => Ok(args[0].clone()),
                other => Err(FnError::Unsanitizable(format!("RedactPII got a {}, not text", other.type_name()))),
            })))
        },
    },
    FunctionSig {
        name: "IsValidLuhn",
        kind: Converter,
        params: &[Param::required("value", Any)],
        returns: ReturnType::Bool,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], IsValidLuhn(\"4111-1111-1111-1111\"))",
            output: "{\"out\": true}",
        }],
        summary: "True if the digits of value pass the Luhn check.",
        build: |_| Ok(Compiled::Converter(Box::new(|args| Ok(Value::Bool(!args[0].is_nil() && pii::is_valid_luhn(&args[0].to_string())))))),
    },
];
