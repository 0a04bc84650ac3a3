//! Converters over strings.

use super::argument::{self, PatternArg};
use crate::signature::{Compiled, Example, FunctionKind::Converter, FunctionSig, Param, ParamType::*, ReturnType};
use crate::value::Value;

const TARGET: &[Param] = &[Param::required("target", String)];

/// A converter over one string argument; nil in gives nil out.
fn over_string(name: &'static str, f: fn(&str) -> Value) -> Result<Compiled, std::string::String> {
    Ok(Compiled::Converter(Box::new(move |args| match args[0] {
        Value::Nil => Ok(Value::Nil),
        _ => Ok(f(argument::string(args, 0, name, "target")?)),
    })))
}

pub const SIGNATURES: &[FunctionSig] = &[
    FunctionSig {
        name: "Concat",
        kind: Converter,
        params: &[Param::required("values", List), Param::required("delimiter", String)],
        returns: ReturnType::String,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], Concat([\"a\", 1, true], \"-\"))",
            output: "{\"out\": \"a-1-true\"}",
        }],
        summary: "Joins the values with delimiter.",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| {
                let delimiter = argument::string(args, 1, "Concat", "delimiter")?;
                let Value::List(items) = args[0] else {
                    return Err(argument::type_error("Concat", "values", "a list", args[0]));
                };
                let parts: Vec<std::string::String> = items.iter().map(|v| v.to_string()).collect();
                Ok(Value::Str(parts.join(delimiter)))
            })))
        },
    },
    FunctionSig {
        name: "Split",
        kind: Converter,
        params: &[Param::required("target", String), Param::required("delimiter", String)],
        returns: ReturnType::List,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], Split(\"a,b\", \",\"))",
            output: "{\"out\": [\"a\", \"b\"]}",
        }],
        summary: "Splits target at each delimiter.",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| {
                if args[0].is_nil() {
                    return Ok(Value::Nil);
                }
                let target = argument::string(args, 0, "Split", "target")?;
                let delimiter = argument::string(args, 1, "Split", "delimiter")?;
                Ok(Value::List(target.split(delimiter).map(Value::from).collect()))
            })))
        },
    },
    FunctionSig {
        name: "Substring",
        kind: Converter,
        params: &[Param::required("target", String), Param::required("start", Int), Param::required("length", Int)],
        returns: ReturnType::String,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], Substring(\"abcdef\", 1, 3))",
            output: "{\"out\": \"bcd\"}",
        }],
        summary: "length characters of target from start.",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| {
                let target = argument::string(args, 0, "Substring", "target")?;
                let start = usize::try_from(argument::int(args, 1, "Substring", "start")?).unwrap_or(0);
                let length = usize::try_from(argument::int(args, 2, "Substring", "length")?).unwrap_or(0);
                Ok(Value::Str(target.chars().skip(start).take(length).collect()))
            })))
        },
    },
    FunctionSig {
        name: "IsMatch",
        kind: Converter,
        params: &[Param::required("target", Any), Param::required("pattern", Regex)],
        returns: ReturnType::Bool,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], IsMatch(\"user=bob\", r\"user=\\w+\"))",
            output: "{\"out\": true}",
        }],
        summary: "True if the regex matches somewhere in target.",
        build: |literals| {
            let pattern = PatternArg::prepare(literals, 1, false)?;
            Ok(Compiled::Converter(Box::new(move |args| {
                let re = pattern.get(args, 1, "IsMatch", false)?;
                let matched = match args[0] {
                    Value::Nil => false,
                    Value::Str(s) => re.is_match(s).map_err(crate::signature::FnError::Pattern)?,
                    other => re.is_match(&other.to_string()).map_err(crate::signature::FnError::Pattern)?,
                };
                Ok(Value::Bool(matched))
            })))
        },
    },
    FunctionSig {
        name: "HasPrefix",
        kind: Converter,
        params: &[Param::required("target", String), Param::required("prefix", String)],
        returns: ReturnType::Bool,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], HasPrefix(\"postgresql.x\", \"postgresql.\"))",
            output: "{\"out\": true}",
        }],
        summary: "True if target starts with prefix.",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| {
                let prefix = argument::string(args, 1, "HasPrefix", "prefix")?;
                Ok(Value::Bool(args[0].as_str().is_some_and(|t| t.starts_with(prefix))))
            })))
        },
    },
    FunctionSig {
        name: "HasSuffix",
        kind: Converter,
        params: &[Param::required("target", String), Param::required("suffix", String)],
        returns: ReturnType::Bool,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], HasSuffix(\"a.log\", \".txt\"))",
            output: "{\"out\": false}",
        }],
        summary: "True if target ends with suffix.",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| {
                let suffix = argument::string(args, 1, "HasSuffix", "suffix")?;
                Ok(Value::Bool(args[0].as_str().is_some_and(|t| t.ends_with(suffix))))
            })))
        },
    },
    FunctionSig {
        name: "ToLowerCase",
        kind: Converter,
        params: TARGET,
        returns: ReturnType::String,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], ToLowerCase(\"SELECT\"))",
            output: "{\"out\": \"select\"}",
        }],
        summary: "Lowercases target.",
        build: |_| over_string("ToLowerCase", |s| Value::Str(s.to_lowercase())),
    },
    FunctionSig {
        name: "ToUpperCase",
        kind: Converter,
        params: TARGET,
        returns: ReturnType::String,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], ToUpperCase(\"select\"))",
            output: "{\"out\": \"SELECT\"}",
        }],
        summary: "Uppercases target.",
        build: |_| over_string("ToUpperCase", |s| Value::Str(s.to_uppercase())),
    },
    FunctionSig {
        name: "Trim",
        kind: Converter,
        params: &[Param::required("target", String), Param::optional("replacement", String)],
        returns: ReturnType::String,
        examples: &[
            Example { input: "{}", statement: "set(attributes[\"out\"], Trim(\"  a  \"))", output: "{\"out\": \"a\"}" },
            Example { input: "{}", statement: "set(attributes[\"out\"], Trim(\"--a--\", \"-\"))", output: "{\"out\": \"a\"}" },
        ],
        summary: "Removes leading and trailing whitespace (or the given characters).",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| {
                if args[0].is_nil() {
                    return Ok(Value::Nil);
                }
                let target = argument::string(args, 0, "Trim", "target")?;
                Ok(Value::Str(match argument::optional_string(args, 1, "Trim", "replacement")? {
                    Some(chars) => target.trim_matches(|c| chars.contains(c)).to_string(),
                    None => target.trim().to_string(),
                }))
            })))
        },
    },
];
