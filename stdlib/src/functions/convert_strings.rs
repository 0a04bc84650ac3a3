//! Converters over strings.

use super::argument::{self, PatternArg};
use crate::signature::{BuildError, Compiled, Example, FnError, FunctionKind::Converter, FunctionSig, Param, ParamType::*, ReturnType};
use crate::value::Value;

const TARGET: &[Param] = &[Param::required("target", String)];

/// A converter over one string argument; nil in gives nil out.
fn over_string(name: &'static str, f: fn(&str) -> Value) -> Result<Compiled, BuildError> {
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
        params: &[
            Param::required("target", String),
            Param::required("start", Int),
            Param::required("length", Int),
            Param::optional("utf8_safe", Bool),
        ],
        returns: ReturnType::String,
        examples: &[
            Example { input: "{}", statement: "set(attributes[\"out\"], Substring(\"abcdef\", 1, 3))", output: "{\"out\": \"bcd\"}" },
            Example {
                input: "{}",
                statement: "set(attributes[\"out\"], Substring(\"一二三\", 0, 4, true))",
                output: "{\"out\": \"一\"}",
            },
            Example {
                input: "{}",
                statement: "set(attributes[\"out\"], Substring(\"一二三\", 1, 6, utf8_safe = true))",
                output: "{\"out\": \"二\"}",
            },
        ],
        summary: "length bytes of target from byte start; with utf8_safe, a start inside a character moves to the next one and an end inside one backs up.",
        build: |literals| {
            if let Some(start) = argument::literal_int(literals, 1) {
                check_start(start).map_err(|m| BuildError::at(1, m))?;
            }
            if let Some(length) = argument::literal_int(literals, 2) {
                check_length(length).map_err(|m| BuildError::at(2, m))?;
            }
            Ok(Compiled::Converter(Box::new(|args| {
                let target = argument::string(args, 0, "Substring", "target")?;
                let start = check_start(argument::int(args, 1, "Substring", "start")?).map_err(|m| FnError::Other(format!("Substring: {m}")))?;
                let length =
                    check_length(argument::int(args, 2, "Substring", "length")?).map_err(|m| FnError::Other(format!("Substring: {m}")))?;
                let utf8_safe = argument::optional_bool(args, 3, "Substring", "utf8_safe", false)?;
                substring(target, start, length, utf8_safe).map(Value::from).map_err(|m| FnError::Other(format!("Substring: {m}")))
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
        name: "TrimPrefix",
        kind: Converter,
        params: &[Param::required("value", String), Param::required("prefix", String)],
        returns: ReturnType::String,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], TrimPrefix(\"ingest_service\", \"ingest_\"))",
            output: "{\"out\": \"service\"}",
        }],
        summary: "value without a leading prefix (unchanged when it does not start with it).",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| {
                let value = argument::string(args, 0, "TrimPrefix", "value")?;
                let prefix = argument::string(args, 1, "TrimPrefix", "prefix")?;
                Ok(Value::from(value.strip_prefix(prefix).unwrap_or(value)))
            })))
        },
    },
    FunctionSig {
        name: "TrimSuffix",
        kind: Converter,
        params: &[Param::required("value", String), Param::required("suffix", String)],
        returns: ReturnType::String,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], TrimSuffix(\"ingest_service\", \"_service\"))",
            output: "{\"out\": \"ingest\"}",
        }],
        summary: "value without a trailing suffix (unchanged when it does not end with it).",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| {
                let value = argument::string(args, 0, "TrimSuffix", "value")?;
                let suffix = argument::string(args, 1, "TrimSuffix", "suffix")?;
                Ok(Value::from(value.strip_suffix(suffix).unwrap_or(value)))
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
            Example { input: "{}", statement: "set(attributes[\"out\"], Trim(\"!?a!?\", replacement = \"?!\"))", output: "{\"out\": \"a\"}" },
        ],
        summary: "Removes leading and trailing spaces (or the characters of replacement).",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| {
                if args[0].is_nil() {
                    return Ok(Value::Nil);
                }
                let target = argument::string(args, 0, "Trim", "target")?;
                // OTTL trims the characters of `replacement`, a space when
                // it is not given (not every kind of whitespace).
                let chars = argument::optional_string(args, 1, "Trim", "replacement")?.unwrap_or(" ");
                Ok(Value::Str(target.trim_matches(|c| chars.contains(c)).to_string()))
            })))
        },
    },
];

fn check_start(start: i64) -> Result<usize, std::string::String> {
    usize::try_from(start).map_err(|_| format!("start {start} cannot be negative"))
}

fn check_length(length: i64) -> Result<usize, std::string::String> {
    match usize::try_from(length) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("length {length} must be greater than zero")),
    }
}

/// OTTL's Substring: `length` bytes from byte `start`, an error past the
/// end. Without `utf8_safe` a range that splits a character is an error
/// (OTTL would return broken UTF-8; our strings are always whole).
fn substring(target: &str, start: usize, length: usize, utf8_safe: bool) -> Result<&str, std::string::String> {
    let end = start
        .checked_add(length)
        .filter(|end| *end <= target.len())
        .ok_or_else(|| format!("start ({start}) + length ({length}) is past the end of the text ({} bytes)", target.len()))?;
    if !utf8_safe {
        return target
            .get(start..end)
            .ok_or_else(|| format!("bytes {start}..{end} split a character; pass utf8_safe = true to keep whole characters"));
    }
    let mut from = start;
    while !target.is_char_boundary(from) {
        from += 1;
    }
    let mut to = end;
    while !target.is_char_boundary(to) {
        to -= 1;
    }
    Ok(if from < to { &target[from..to] } else { "" })
}

#[cfg(test)]
mod tests {
    use super::substring;

    #[test]
    fn substring_counts_bytes_as_ottl_does() {
        assert_eq!(substring("abcdef", 1, 3, false), Ok("bcd"));
        assert_eq!(substring("abcdef", 0, 6, false), Ok("abcdef"));
        assert!(substring("abcdef", 4, 3, false).unwrap_err().contains("past the end"));
        assert!(substring("abc", usize::MAX, 2, false).unwrap_err().contains("past the end"));
        assert!(substring("一二", 1, 3, false).unwrap_err().contains("utf8_safe"));
        assert_eq!(substring("一二", 0, 3, false), Ok("一"));
    }

    #[test]
    fn utf8_safe_substring_moves_into_whole_characters() {
        assert_eq!(substring("一二三", 0, 4, true), Ok("一"));
        assert_eq!(substring("一二三", 1, 6, true), Ok("二"));
        assert_eq!(substring("一二三", 1, 1, true), Ok(""));
        assert!(substring("一二三", 8, 2, true).is_err());
    }
}
