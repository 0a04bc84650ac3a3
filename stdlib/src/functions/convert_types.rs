//! Converters that test and change the type of a value.

use crate::signature::{Compiled, Example, FunctionKind::Converter, FunctionSig, Param, ParamType::*, ReturnType};
use crate::value::{Map, Value};

const VALUE: &[Param] = &[Param::required("value", Any)];

fn converter(f: fn(&Value) -> Value) -> Result<Compiled, crate::signature::BuildError> {
    Ok(Compiled::Converter(Box::new(move |args| Ok(f(args[0])))))
}

pub const SIGNATURES: &[FunctionSig] = &[
    FunctionSig {
        name: "Int",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Int,
        examples: &[Example { input: "{}", statement: "set(attributes[\"out\"], Int(\"42\"))", output: "{\"out\": 42}" }],
        summary: "Converts a value to an integer, or nil.",
        build: |_| {
            converter(|v| match v {
                Value::Int(i) => Value::Int(*i),
                Value::Double(d) if d.is_finite() => Value::Int(d.trunc() as i64),
                Value::Bool(b) => Value::Int(i64::from(*b)),
                Value::Str(s) => s.trim().parse::<i64>().map(Value::Int).unwrap_or(Value::Nil),
                _ => Value::Nil,
            })
        },
    },
    FunctionSig {
        name: "Double",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Double,
        examples: &[Example { input: "{}", statement: "set(attributes[\"out\"], Double(3))", output: "{\"out\": 3.0}" }],
        summary: "Converts a value to a float, or nil.",
        build: |_| {
            converter(|v| match v {
                Value::Int(i) => Value::Double(*i as f64),
                Value::Double(d) => Value::Double(*d),
                Value::Bool(b) => Value::Double(if *b { 1.0 } else { 0.0 }),
                Value::Str(s) => s.trim().parse::<f64>().map(Value::Double).unwrap_or(Value::Nil),
                _ => Value::Nil,
            })
        },
    },
    FunctionSig {
        name: "String",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::String,
        examples: &[Example { input: "{}", statement: "set(attributes[\"out\"], String(12))", output: "{\"out\": \"12\"}" }],
        summary: "Converts a value to its string form (nil stays nil).",
        build: |_| converter(|v| if v.is_nil() { Value::Nil } else { Value::Str(v.to_string()) }),
    },
    FunctionSig {
        name: "Bool",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Bool,
        examples: &[
            Example { input: "{}", statement: "set(attributes[\"out\"], Bool(\"true\"))", output: "{\"out\": true}" },
            Example { input: "{}", statement: "set(attributes[\"out\"], Bool(\"F\"))", output: "{\"out\": false}" },
        ],
        summary: "Converts a value to a boolean, or nil.",
        build: |_| {
            converter(|v| match v {
                Value::Bool(b) => Value::Bool(*b),
                Value::Int(i) => Value::Bool(*i != 0),
                Value::Double(d) => Value::Bool(*d != 0.0),
                // Go's strconv.ParseBool, which OTTL uses.
                Value::Str(s) => match s.as_str() {
                    "1" | "t" | "T" | "true" | "TRUE" | "True" => Value::Bool(true),
                    "0" | "f" | "F" | "false" | "FALSE" | "False" => Value::Bool(false),
                    _ => Value::Nil,
                },
                _ => Value::Nil,
            })
        },
    },
    FunctionSig {
        name: "IsString",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Bool,
        examples: &[Example { input: "{}", statement: "set(attributes[\"out\"], IsString(\"a\"))", output: "{\"out\": true}" }],
        summary: "True if the value is a string.",
        build: |_| converter(|v| Value::Bool(matches!(v, Value::Str(_)))),
    },
    FunctionSig {
        name: "IsInt",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Bool,
        examples: &[Example { input: "{}", statement: "set(attributes[\"out\"], IsInt(1.5))", output: "{\"out\": false}" }],
        summary: "True if the value is an integer.",
        build: |_| converter(|v| Value::Bool(matches!(v, Value::Int(_)))),
    },
    FunctionSig {
        name: "IsDouble",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Bool,
        examples: &[Example { input: "{}", statement: "set(attributes[\"out\"], IsDouble(1.5))", output: "{\"out\": true}" }],
        summary: "True if the value is a float.",
        build: |_| converter(|v| Value::Bool(matches!(v, Value::Double(_)))),
    },
    FunctionSig {
        name: "IsMap",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Bool,
        examples: &[Example {
            input: "{\"m\": {\"k\": 1}}",
            statement: "set(attributes[\"out\"], IsMap(attributes[\"m\"]))",
            output: "{\"m\": {\"k\": 1}, \"out\": true}",
        }],
        summary: "True if the value is a map.",
        build: |_| converter(|v| Value::Bool(matches!(v, Value::Map(_)))),
    },
    FunctionSig {
        name: "IsBool",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Bool,
        examples: &[Example { input: "{}", statement: "set(attributes[\"out\"], IsBool(false))", output: "{\"out\": true}" }],
        summary: "True if the value is a boolean.",
        build: |_| converter(|v| Value::Bool(matches!(v, Value::Bool(_)))),
    },
    FunctionSig {
        name: "IsList",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Bool,
        examples: &[Example {
            input: "{\"tags\": [\"a\"]}",
            statement: "set(attributes[\"out\"], IsList(attributes[\"tags\"]))",
            output: "{\"tags\": [\"a\"], \"out\": true}",
        }],
        summary: "True if the value is a list.",
        build: |_| converter(|v| Value::Bool(matches!(v, Value::List(_)))),
    },
    FunctionSig {
        name: "IsEmpty",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Bool,
        examples: &[
            Example { input: "{}", statement: "set(attributes[\"out\"], IsEmpty(attributes[\"missing\"]))", output: "{\"out\": true}" },
            Example {
                input: "{}",
                statement: "set(attributes[\"out\"], [IsEmpty(\"\"), IsEmpty(0), IsEmpty(\"x\")])",
                output: "{\"out\": [true, true, false]}",
            },
        ],
        summary: "True for nil, an empty string, list or map, and a zero number or false.",
        build: |_| {
            converter(|v| {
                Value::Bool(match v {
                    Value::Nil => true,
                    Value::Bool(b) => !b,
                    Value::Int(i) => *i == 0,
                    Value::Double(d) => *d == 0.0,
                    Value::Str(s) => s.is_empty(),
                    Value::Bytes(b) => b.is_empty(),
                    Value::List(l) => l.is_empty(),
                    Value::Map(m) => m.is_empty(),
                })
            })
        },
    },
    FunctionSig {
        name: "Keys",
        kind: Converter,
        params: &[Param::required("target", crate::ParamType::Map)],
        returns: ReturnType::List,
        examples: &[Example {
            input: "{\"a\": 1, \"b\": 2}",
            statement: "set(attributes[\"out\"], Keys(attributes))",
            output: "{\"a\": 1, \"b\": 2, \"out\": [\"a\", \"b\"]}",
        }],
        summary: "The keys of a map, as a list.",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| match args[0] {
                Value::Map(m) => Ok(Value::List(m.iter().map(|(k, _)| Value::from(k)).collect())),
                other => Err(super::argument::type_error("Keys", "target", "a map", other)),
            })))
        },
    },
    FunctionSig {
        name: "Values",
        kind: Converter,
        params: &[Param::required("target", crate::ParamType::Map)],
        returns: ReturnType::List,
        examples: &[Example {
            input: "{\"a\": 1, \"b\": \"x\"}",
            statement: "set(attributes[\"out\"], Values(attributes))",
            output: "{\"a\": 1, \"b\": \"x\", \"out\": [1, \"x\"]}",
        }],
        summary: "The values of a map, as a list.",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| match args[0] {
                Value::Map(m) => Ok(Value::List(m.iter().map(|(_, v)| v.clone()).collect())),
                other => Err(super::argument::type_error("Values", "target", "a map", other)),
            })))
        },
    },
    FunctionSig {
        name: "Len",
        kind: Converter,
        params: VALUE,
        returns: ReturnType::Int,
        examples: &[Example { input: "{}", statement: "set(attributes[\"out\"], Len(\"héllo\"))", output: "{\"out\": 5}" }],
        summary: "Length of a string (characters), list or map.",
        build: |_| {
            converter(|v| match v {
                Value::Str(s) => Value::Int(s.chars().count() as i64),
                Value::List(l) => Value::Int(l.len() as i64),
                Value::Map(m) => Value::Int(m.len() as i64),
                Value::Bytes(b) => Value::Int(b.len() as i64),
                _ => Value::Nil,
            })
        },
    },
    FunctionSig {
        name: "Coalesce",
        kind: Converter,
        params: &[Param::required("values", List)],
        returns: ReturnType::Any,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], Coalesce([nil, \"b\", \"c\"]))",
            output: "{\"out\": \"b\"}",
        }],
        summary: "The first value of the list that is not nil.",
        build: |_| {
            converter(|v| match v {
                Value::List(items) => items.iter().find(|i| !i.is_nil()).cloned().unwrap_or(Value::Nil),
                other => other.clone(),
            })
        },
    },
    FunctionSig {
        name: "ParseJSON",
        kind: Converter,
        params: &[Param::required("target", String)],
        returns: ReturnType::Any,
        examples: &[Example {
            input: "{}",
            statement: "set(attributes[\"out\"], ParseJSON(\"{\\\"a\\\": [1, true]}\"))",
            output: "{\"out\": {\"a\": [1, true]}}",
        }],
        summary: "Parses a JSON string into a map, list or scalar.",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| {
                let text = super::argument::string(args, 0, "ParseJSON", "target")?;
                let json: serde_json::Value =
                    serde_json::from_str(text).map_err(|e| crate::signature::FnError::Other(format!("ParseJSON: {e}")))?;
                Ok(from_json(json))
            })))
        },
    },
];

pub fn from_json(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => n.as_i64().map(Value::Int).unwrap_or_else(|| Value::Double(n.as_f64().unwrap_or(f64::NAN))),
        serde_json::Value::String(s) => Value::Str(s),
        serde_json::Value::Array(items) => Value::List(items.into_iter().map(from_json).collect()),
        serde_json::Value::Object(entries) => Value::Map(entries.into_iter().map(|(k, v)| (k, from_json(v))).collect::<Map>()),
    }
}

pub fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Double(d) => serde_json::Number::from_f64(*d).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null),
        Value::Str(s) => serde_json::Value::String(s.clone()),
        Value::Bytes(b) => serde_json::Value::String(Value::Bytes(b.clone()).to_string()),
        Value::List(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()),
    }
}
