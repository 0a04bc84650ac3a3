//! Editors that add, remove and reshape fields and maps.

use super::argument::{self, PatternArg};
use crate::signature::{
    BuildError, Compiled, Example, FnError, FunctionKind::Editor, FunctionSig, Param, ParamType::*, ReturnType::Nothing,
};
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
        params: &[
            Param::required("target", TargetMap),
            Param::required("limit", Int),
            Param::optional("utf8_safe", Bool),
            Param::optional("truncation_marker", String),
        ],
        returns: Nothing,
        examples: &[
            Example { input: "{\"a\": \"abcdef\", \"n\": 5}", statement: "truncate_all(attributes, 3)", output: "{\"a\": \"abc\", \"n\": 5}" },
            Example {
                input: "{\"a\": \"héllo\"}",
                statement: "truncate_all(attributes, 2, true)",
                output: "{\"a\": \"h\"}",
            },
            Example {
                input: "{\"a\": \"abcdefghij\", \"b\": \"short\"}",
                statement: "truncate_all(attributes, 8, truncation_marker = \"...\")",
                output: "{\"a\": \"abcde...\", \"b\": \"short\"}",
            },
            Example {
                input: "{\"plan\": \"[{\\\"Plan\\\": {}}]\", \"text\": \"[{not json\"}",
                statement: "truncate_all(attributes, 4)",
                output: "{\"plan\": \"[{\\\"Plan\\\": {}}]\", \"text\": \"[{no\"}",
            },
        ],
        summary: "Truncates every string value of a map to at most limit bytes, never inside a character; a truncation_marker is appended to cut values and counts against the limit. Unlike OTTL, a value that is a JSON object or array (a plan) is left whole: cut, it would be invalid JSON.",
        build: |literals| {
            if let Some(limit) = argument::literal_int(literals, 1) {
                check_truncation(limit, argument::literal_str(literals, 3)).map_err(|(param, m)| BuildError::at(param, m))?;
            }
            Ok(Compiled::Editor(Box::new(|target, args| {
                let limit = argument::int(args, 1, "truncate_all", "limit")?;
                // Our strings are always valid UTF-8, so the cut backs up to a
                // character boundary whatever utf8_safe says; it is accepted
                // (and type-checked) for OTTL's sake.
                argument::optional_bool(args, 2, "truncate_all", "utf8_safe", true)?;
                let marker = argument::optional_string(args, 3, "truncate_all", "truncation_marker")?.unwrap_or("");
                let limit = check_truncation(limit, Some(marker)).map_err(|(_, m)| FnError::Other(format!("truncate_all: {m}")))?;
                let map = argument::map_mut(target, "truncate_all")?;
                for (_, value) in map.iter_mut() {
                    if let Value::Str(s) = value {
                        if s.len() > limit && !is_json_document(s) {
                            truncate_bytes(s, limit - marker.len());
                            s.push_str(marker);
                        }
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
        examples: &[
            Example {
                input: "{\"a\": 1, \"b\": 2, \"c\": 3}",
                statement: "limit(attributes, 2, [\"c\"])",
                output: "{\"a\": 1, \"c\": 3}",
            },
            Example { input: "{\"a\": 1, \"b\": 2, \"c\": 3}", statement: "limit(attributes, 1, [])", output: "{\"a\": 1}" },
        ],
        summary: "Keeps at most limit keys of a map: the priority keys, then the first others.",
        build: |literals| {
            let priority_count = match literals.get(2) {
                Some(Some(Value::List(keys))) => Some(keys.len()),
                _ => None,
            };
            if let Some(limit) = argument::literal_int(literals, 1) {
                check_limit(limit, priority_count).map_err(|m| BuildError::at(1, m))?;
            }
            Ok(Compiled::Editor(Box::new(|target, args| {
                let limit = argument::int(args, 1, "limit", "limit")?;
                let Value::List(keys) = args[2] else {
                    return Err(argument::type_error("limit", "priority_keys", "a list", args[2]));
                };
                let limit = check_limit(limit, Some(keys.len())).map_err(|m| FnError::Other(format!("limit: {m}")))?;
                let priority: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
                let map = argument::map_mut(target, "limit")?;
                if map.len() <= limit {
                    return Ok(());
                }
                // As OTTL: priority keys present stay and count first; the
                // others fill what is left, in order.
                let mut kept = priority.iter().filter(|k| map.get(k).is_some()).count();
                map.retain(|k, _| {
                    if priority.contains(&k) {
                        true
                    } else if kept < limit {
                        kept += 1;
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
        examples: &[
            Example {
                input: "{\"a\": 1}",
                statement: "merge_maps(attributes, {\"a\": 2, \"b\": 3}, \"insert\")",
                output: "{\"a\": 1, \"b\": 3}",
            },
            Example {
                input: "{\"a\": 1}",
                statement: "merge_maps(attributes, {\"a\": 2, \"b\": 3}, \"update\")",
                output: "{\"a\": 2}",
            },
            Example {
                input: "{\"a\": 1}",
                statement: "merge_maps(attributes, {\"a\": 2, \"b\": 3}, \"upsert\")",
                output: "{\"a\": 2, \"b\": 3}",
            },
        ],
        summary: "Merges source into target: insert adds missing keys, update overwrites existing ones, upsert does both.",
        build: |_| {
            Ok(Compiled::Editor(Box::new(|target, args| {
                let Value::Map(source) = args[1] else {
                    return Err(argument::type_error("merge_maps", "source", "a map", args[1]));
                };
                let strategy = argument::string(args, 2, "merge_maps", "strategy")?;
                let (insert, update) = match strategy {
                    "insert" => (true, false),
                    "update" => (false, true),
                    "upsert" => (true, true),
                    other => {
                        return Err(FnError::Other(format!("merge_maps: strategy must be insert, update or upsert, not \"{other}\"")))
                    }
                };
                let map = argument::map_mut(target, "merge_maps")?;
                for (k, v) in source.iter() {
                    let write = if map.get(k).is_some() { update } else { insert };
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

/// OTTL's rules for `truncate_all`: the limit is not negative, and a
/// marker fits in it. The limit as a length, or the faulty parameter.
fn check_truncation(limit: i64, marker: Option<&str>) -> Result<usize, (usize, std::string::String)> {
    let limit = usize::try_from(limit).map_err(|_| (1, format!("limit {limit} cannot be negative")))?;
    match marker {
        Some(m) if m.len() > limit => Err((3, format!("truncation_marker is {} bytes, longer than the limit of {limit}", m.len()))),
        _ => Ok(limit),
    }
}

/// OTTL's rules for `limit`: not negative, and room for every priority key.
fn check_limit(limit: i64, priority_keys: Option<usize>) -> Result<usize, std::string::String> {
    let limit = usize::try_from(limit).map_err(|_| format!("limit {limit} cannot be negative"))?;
    match priority_keys {
        Some(n) if n > limit => Err(format!("limit {limit} is less than the {n} priority keys")),
        _ => Ok(limit),
    }
}

/// Cuts `s` to at most `limit` bytes, backing up to a character boundary.
pub fn truncate_bytes(s: &mut std::string::String, limit: usize) {
    if s.len() <= limit {
        return;
    }
    let mut cut = limit;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
}

/// Cuts `s` to at most `limit` characters, on a character boundary.
pub fn truncate_chars(s: &mut std::string::String, limit: usize) {
    if s.len() <= limit {
        return;
    }
    if let Some((cut, _)) = s.char_indices().nth(limit) {
        s.truncate(cut);
    }
}

/// A JSON object or array: `truncate_all` leaves it whole (a sink with a
/// limit removes it whole, counted, rather than send invalid JSON).
fn is_json_document(s: &str) -> bool {
    let t = s.trim();
    let framed = (t.starts_with('{') && t.ends_with('}')) || (t.starts_with('[') && t.ends_with(']'));
    framed && serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok()
}
