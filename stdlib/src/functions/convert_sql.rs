//! SQL text converters.

use crate::signature::{Compiled, Example, FnError, FunctionKind::Converter, FunctionSig, Param, ParamType::*, ReturnType};
use crate::sql::{self, Dialect};
use crate::value::Value;

pub const SIGNATURES: &[FunctionSig] = &[
    FunctionSig {
    name: "NormalizeSQL",
    kind: Converter,
    params: &[Param::required("text", String), Param::optional("dialect", OneOf(&["postgres", "mysql"]))],
    returns: ReturnType::String,
    examples: &[
        Example {
            input: "{}",
            statement: "set(attributes[\"out\"], NormalizeSQL(\"select * from u where e = 'a@b.co' and id in (1, 2)\"))",
            output: "{\"out\": \"select * from u where e = ? and id in (?)\"}",
        },
        Example {
            input: "{}",
            statement: "set(attributes[\"out\"], NormalizeSQL(\"select \\\"x\\\" # c\", \"mysql\"))",
            output: "{\"out\": \"select ?\"}",
        },
    ],
    summary: "Replaces every literal in SQL text with ?, removes comments, collapses IN/VALUES lists.",
    build: |literals| {
        let fixed = match literals.get(1) {
            Some(Some(Value::Str(d))) => Some(Dialect::parse(d).ok_or_else(|| format!("unknown SQL dialect {d}"))?),
            _ => None,
        };
        Ok(Compiled::Converter(Box::new(move |args| {
            let dialect = match (fixed, args.get(1).copied()) {
                (Some(d), _) => d,
                (None, Some(Value::Str(d))) => Dialect::parse(d).unwrap_or_default(),
                _ => Dialect::default(),
            };
            match args[0] {
                Value::Nil => Ok(Value::Nil),
                Value::Str(text) => sql::normalize(text, dialect).map(Value::Str).map_err(|e| FnError::Unsanitizable(e.to_string())),
                // A number or bool is itself a literal.
                Value::Int(_) | Value::Double(_) | Value::Bool(_) => Ok(Value::Str("?".into())),
                other => Err(FnError::Unsanitizable(format!("NormalizeSQL got a {}, not text", other.type_name()))),
            }
        })))
    },
},
    FunctionSig {
        name: "RedactLogMessage",
        kind: Converter,
        params: &[Param::required("text", String), Param::optional("dialect", OneOf(&["postgres", "mysql"]))],
        returns: ReturnType::String,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], RedactLogMessage(\"Key (email)=(ann@example.com) already exists.\"))",
            output: "{\"out\": \"Key (email)=(?) already exists.\"}",
        }],
        summary: "Redacts what a database server quotes in a log or error message: quoted fragments normalized, value lists (Key (…)=(…), Failing row contains (…)) replaced by ?, then RedactPII.",
        build: |literals| {
            let fixed = match literals.get(1) {
                Some(Some(Value::Str(d))) => Some(Dialect::parse(d).ok_or_else(|| format!("unknown SQL dialect {d}"))?),
                _ => None,
            };
            Ok(Compiled::Converter(Box::new(move |args| {
                let dialect = match (fixed, args.get(1).copied()) {
                    (Some(d), _) => d,
                    (None, Some(Value::Str(d))) => Dialect::parse(d).unwrap_or_default(),
                    _ => Dialect::default(),
                };
                match args[0] {
                    Value::Nil => Ok(Value::Nil),
                    Value::Str(text) => Ok(Value::Str(sql::scrub_error_message(text, dialect))),
                    Value::Int(_) | Value::Double(_) | Value::Bool(_) => Ok(args[0].clone()),
                    other => Err(FnError::Unsanitizable(format!("RedactLogMessage got a {}, not text", other.type_name()))),
                }
            })))
        },
    },
];
