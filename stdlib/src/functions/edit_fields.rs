//! Editors that add, remove and reshape fields and maps.

use super::argument::{self, PatternArg};
use crate::signature::{Compiled, Example, FnError, FunctionKind::Editor, FunctionSig, Param, ParamType::*, ReturnType::Nothing};
use crate::value::Value;

pub const SIGNATURES: &[FunctionSig] = &[
    FunctionSig {
        name: "set",
        kind: Editor,
        params: &[Param::required("target", Target), Param::required("value", Any)],
        returns: Nothing,
        examples: &[
            Example { input: "{\"a\": 1}", statement: "set(attributes[\"b\"], \"x\")", output: "{\"a\": 1, \"b\": \"x\"}" },
            Example { input: "{\"a\": 1}", statement: "set(attributes[\"a\"], nil)", output: "{\"a\": 1}" },
        ],
        summary: "Sets target to value (nothing happens when value is nil).",
        build: |_| {
            Ok(Compiled::Editor(Box::new(|target, args| {
                if !args[1].is_nil() {
                    *target = args[1].clone();
                }
                Ok(())
            })))
        },
    },
    FunctionSig {
        name: "delete_key",
        kind: Editor,
        params: &[Param::required("target", TargetMap), Param::required("key", String)],
        returns: Nothing,
        examples: &[Example { input: "{\"a\": 1, \"b\": 2}", statement: "delete_key(attributes, \"a\")", output: "{\"b\": 2}" }],
        summary: "Removes one key from a map.",
        build: |_| {
            Ok(Compiled::Editor(Box::new(|target, args| {
                let key = argument::string(args, 1, "delete_key", "key")?;
                if let Value::Map(map) = target {
                    map.remove(key);
                }
                Ok(())
            })))
        },
    },
    FunctionSig {
        name: "delete_matching_keys",
        kind: Editor,
        params: &[Param::required("target", TargetMap), Param::required("pattern", Regex)],
        returns: Nothing,
        examples: &[Example {
            input: "{\"tmp.a\": 1, \"keep\": 2, \"tmp.b\": 3}",
            statement: "delete_matching_keys(attributes, \"^tmp\\\\.\")",
            output: "{\"keep\": 2}",
        }],
        summary: "Removes every key of a map that matches the regex.",
        build: |literals| {
            let pattern = PatternArg::prepare(literals, 1, false)?;
            Ok(Compiled::Editor(Box::new(move |target, args| {
                let re = pattern.get(args, 1, "delete_matching_keys", false)?;
                let map = argument::map_mut(target, "delete_matching_keys")?;
                let mut failure = None;
                map.retain(|k, _| match re.is_match(k) {
                    Ok(m) => !m,
                    Err(e) => {
                        failure = Some(e);
                        true
                    }
                });
                failure.map_or(Ok(()), |e| Err(FnError::Pattern(e)))
            })))
        },
    },
    FunctionSig {
        name: "keep_keys",
        kind: Editor,
        params: &[Param::required("target", TargetMap), Param::required("keys", List)],
        returns: Nothing,
        examples: &[Example {
            input: "{\"a\": 1, \"b\": 2, \"c\": 3}",
            statement: "keep_keys(attributes, [\"a\", \"c\"])",
            output: "{\"a\": 1, \"c\": 3}",
        }],
        summary: "Keeps only the listed keys of a map.",
        build: |_| {
            Ok(Compiled::Editor(Box::new(|target, args| {
                let Value::List(keys) = args[1] else {
                    return Err(argument::type_error("keep_keys", "keys", "a list", args[1]));
                };
                let map = argument::map_mut(target, "keep_keys")?;
                map.retain(|k, _| keys.iter().any(|key| key.as_str() == Some(k)));
                Ok(())
            })))
        },
    },
    FunctionSig {
        name: "keep_matching_keys",
        kind: Editor,
        params: &[Param::required("target", TargetMap), Param::required("pattern", Regex)],
        returns: Nothing,
        examples: &[Example {
            input: "{\"db.user\": \"u\", \"x\": 1}",
            statement: "keep_matching_keys(attributes, \"^db\\\\.\")",
            output: "{\"db.user\": \"u\"}",
        }],
        summary: "Keeps only the keys of a map that match the regex.",
        build: |literals| {
            let pattern = PatternArg::prepare(literals, 1, false)?;
            Ok(Compiled::Editor(Box::new(move |target, args| {
                let re = pattern.get(args, 1, "keep_matching_keys", false)?;
                let map = argument::map_mut(target, "keep_matching_keys")?;
                map.retain(|k, _| re.is_match(k).unwrap_or(false));
                Ok(())
            })))
        },
    },
    FunctionSig {
        name: "truncate_all",
        kind: Editor,
        params: &[Param::required("target", TargetMap), Param::required("limit", Int)],
        returns: Nothing,
        examples: &[Example {
            input: "{\"a\": \"abcdef\", \"n\": 5}",
            statement: "truncate_all(attributes, 3)",
            output: "{\"a\": \"abc\", \"n\": 5}",
        }],
        summary: "Truncates every string value of a map to limit characters.",
        build: |_| {
            Ok(Compiled::Editor(Box::new(|target, args| {
                let limit = argument::int(args, 1, "truncate_all", "limit")?;
                let limit = usize::try_from(limit).map_err(|_| FnError::Other("truncate_all: limit must not be negative".into()))?;
                let map = argument::map_mut(target, "truncate_all")?;
                for (_, value) in map.iter_mut() {
                    if let Value::Str(s) = value {
                        truncate_chars(s, limit);
                    }
                }
                Ok(())
            })))
        },
    },
    FunctionSig {
        name: "limit",
        kind: Editor,
        params: &[Param::required("target", TargetMap), Param::required("limit", Int), Param::required("priority_keys", List)],
        returns: Nothing,
        examples: &[Example {
            input: "{\"a\": 1, \"b\": 2, \"c\": 3}",
            statement: "limit(attributes, 2, [\"c\"])",
            output: "{\"a\": 1, \"c\": 3}",
        }],
        summary: "Keeps at most limit keys of a map, the priority keys first.",
        build: |_| {
            Ok(Compiled::Editor(Box::new(|target, args| {
                let limit = usize::try_from(argument::int(args, 1, "limit", "limit")?).unwrap_or(0);
                let priority: Vec<&str> = match args[2] {
                    Value::List(keys) => keys.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                let map = argument::map_mut(target, "limit")?;
                if map.len() <= limit {
                    return Ok(());
                }
                let mut kept_priority = 0;
                let keep_priority: Vec<std::string::String> = priority
                    .iter()
                    .filter(|k| map.get(k).is_some())
                    .take(limit)
                    .map(|k| k.to_string())
                    .inspect(|_| kept_priority += 1)
                    .collect();
                let mut others = limit - kept_priority;
                map.retain(|k, _| {
                    if keep_priority.iter().any(|p| p == k) {
                        true
                    } else if others > 0 {
                        others -= 1;
                        true
                    } else {
                        false
                    }
                });
                Ok(())
            })))
        },
    },
    FunctionSig {
        name: "merge_maps",
        kind: Editor,
        params: &[
            Param::required("target", TargetMap),
            Param::required("source", Map),
            Param::required("strategy", OneOf(&["insert", "update", "upsert"])),
        ],
        returns: Nothing,
        examples: &[Example {
            input: "{\"a\": 1}",
            statement: "merge_maps(attributes, {\"a\": 2, \"b\": 3}, \"insert\")",
            output: "{\"a\": 1, \"b\": 3}",
        }],
        summary: "Merges source into target by strategy.",
        build: |_| {
            Ok(Compiled::Editor(Box::new(|target, args| {
                let Value::Map(source) = args[1] else {
                    return Ok(());
                };
                let strategy = argument::string(args, 2, "merge_maps", "strategy")?;
                let map = argument::map_mut(target, "merge_maps")?;
                for (k, v) in source.iter() {
                    let exists = map.get(k).is_some();
                    let write = match strategy {
                        "insert" => !exists,
                        "update" => exists,
                        _ => true,
                    };
                    if write {
                        map.insert(k, v.clone());
                    }
                }
                Ok(())
            })))
        },
    },
    FunctionSig {
        name: "append",
        kind: Editor,
        params: &[Param::required("target", Target), Param::optional("value", Any), Param::optional("values", List)],
        returns: Nothing,
        examples: &[Example {
            input: "{\"tags\": [\"x\"]}",
            statement: "append(attributes[\"tags\"], \"y\")",
            output: "{\"tags\": [\"x\", \"y\"]}",
        }],
        summary: "Appends value (or values) to the list at target.",
        build: |_| {
            Ok(Compiled::Editor(Box::new(|target, args| {
                let mut list = match std::mem::take(target) {
                    Value::List(l) => l,
                    Value::Nil => Vec::new(),
                    other => vec![other],
                };
                if !args[1].is_nil() {
                    list.push(args[1].clone());
                }
                if let Value::List(values) = args[2] {
                    list.extend(values.iter().cloned());
                }
                *target = Value::List(list);
                Ok(())
            })))
        },
    },
];

/// Cuts `s` to at most `limit` characters, on a character boundary.
pub fn truncate_chars(s: &mut std::string::String, limit: usize) {
    if s.len() <= limit {
        return;
    }
    if let Some((cut, _)) = s.char_indices().nth(limit) {
        s.truncate(cut);
    }
}
