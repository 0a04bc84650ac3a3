//! Editors that rewrite string contents by regex or glob.

use std::borrow::Cow;

use super::argument::{self, PatternArg, PostFn};
use crate::signature::{Compiled, Example, FnError, FunctionKind::Editor, FunctionSig, Param, ParamType::*, ReturnType::Nothing};
use crate::value::Value;

/// Rewrites one string in place; leaves other types alone, as OTTL does.
fn replace_in(value: &mut Value, re: &crate::pattern::Pattern, replacement: &str, post: Option<&PostFn>) -> Result<(), FnError> {
    if let Value::Str(s) = value {
        let post = post.map(|p| p.as_ref() as &dyn Fn(std::string::String) -> std::string::String);
        if let Cow::Owned(new) = re.replace_all(s, replacement, post).map_err(FnError::Pattern)? {
            *s = new;
        }
    }
    Ok(())
}

/// Replaces the whole string when the glob matches all of it.
fn replace_whole(value: &mut Value, re: &crate::pattern::Pattern, replacement: &str, post: Option<&PostFn>) -> Result<(), FnError> {
    if let Value::Str(s) = value {
        if re.is_match(s).map_err(FnError::Pattern)? {
            *s = match post {
                Some(post) => post(replacement.to_string()),
                None => replacement.to_string(),
            };
        }
    }
    Ok(())
}

pub const SIGNATURES: &[FunctionSig] = &[
    FunctionSig {
        name: "replace_pattern",
        kind: Editor,
        params: &[
            Param::required("target", Target),
            Param::required("regex", Regex),
            Param::required("replacement", String),
            Param::optional("function", Function),
            Param::optional("replacementFormat", String),
        ],
        returns: Nothing,
        examples: &[Example {
            input: "{\"q\": \"id=42 and id=7\"}",
            statement: "replace_pattern(attributes[\"q\"], r\"id=(\\d+)\", \"id=<$1>\")",
            output: "{\"q\": \"id=<42> and id=<7>\"}",
        }],
        summary: "Replaces every match of regex in target; $1 names a capture group.",
        build: |literals| {
            let pattern = PatternArg::prepare(literals, 1, false)?;
            let post = argument::prepare_post(literals, 3)?;
            Ok(Compiled::Editor(Box::new(move |target, args| {
                let re = pattern.get(args, 1, "replace_pattern", false)?;
                let replacement = argument::string(args, 2, "replace_pattern", "replacement")?;
                replace_in(target, &re, replacement, post.as_ref())
            })))
        },
    },
    FunctionSig {
        name: "replace_all_patterns",
        kind: Editor,
        params: &[
            Param::required("target", TargetMap),
            Param::required("mode", OneOf(&["key", "value"])),
            Param::required("regex", Regex),
            Param::required("replacement", String),
            Param::optional("function", Function),
            Param::optional("replacementFormat", String),
        ],
        returns: Nothing,
        examples: &[Example {
            input: "{\"a\": \"x1\", \"b\": \"y22\"}",
            statement: "replace_all_patterns(attributes, \"value\", r\"\\d+\", \"#\")",
            output: "{\"a\": \"x#\", \"b\": \"y#\"}",
        }],
        summary: "Replaces regex matches in every key or every string value of a map.",
        build: |literals| {
            let pattern = PatternArg::prepare(literals, 2, false)?;
            let post = argument::prepare_post(literals, 4)?;
            Ok(Compiled::Editor(Box::new(move |target, args| {
                let re = pattern.get(args, 2, "replace_all_patterns", false)?;
                let mode = argument::string(args, 1, "replace_all_patterns", "mode")?;
                let replacement = argument::string(args, 3, "replace_all_patterns", "replacement")?;
                let map = argument::map_mut(target, "replace_all_patterns")?;
                if mode == "key" {
                    let post = post.as_ref().map(|p| p.as_ref() as &dyn Fn(std::string::String) -> std::string::String);
                    for key in map.keys_mut() {
                        if let Cow::Owned(new) = re.replace_all(key, replacement, post).map_err(FnError::Pattern)? {
                            *key = new;
                        }
                    }
                } else {
                    for (_, value) in map.iter_mut() {
                        replace_in(value, &re, replacement, post.as_ref())?;
                    }
                }
                Ok(())
            })))
        },
    },
    FunctionSig {
        name: "replace_match",
        kind: Editor,
        params: &[
            Param::required("target", Target),
            Param::required("pattern", String),
            Param::required("replacement", String),
            Param::optional("function", Function),
            Param::optional("replacementFormat", String),
        ],
        returns: Nothing,
        examples: &[Example {
            input: "{\"q\": \"SELECT 1\"}",
            statement: "replace_match(attributes[\"q\"], \"SELECT *\", \"a select\")",
            output: "{\"q\": \"a select\"}",
        }],
        summary: "Replaces target with replacement when the whole value matches the glob.",
        build: |literals| {
            let pattern = PatternArg::prepare(literals, 1, true)?;
            let post = argument::prepare_post(literals, 3)?;
            Ok(Compiled::Editor(Box::new(move |target, args| {
                let re = pattern.get(args, 1, "replace_match", true)?;
                let replacement = argument::string(args, 2, "replace_match", "replacement")?;
                replace_whole(target, &re, replacement, post.as_ref())
            })))
        },
    },
    FunctionSig {
        name: "replace_all_matches",
        kind: Editor,
        params: &[
            Param::required("target", TargetMap),
            Param::required("pattern", String),
            Param::required("replacement", String),
            Param::optional("function", Function),
            Param::optional("replacementFormat", String),
        ],
        returns: Nothing,
        examples: &[Example {
            input: "{\"a\": \"secret-1\", \"b\": \"public\"}",
            statement: "replace_all_matches(attributes, \"secret-*\", \"***\")",
            output: "{\"a\": \"***\", \"b\": \"public\"}",
        }],
        summary: "Replaces each string value of a map that matches the glob.",
        build: |literals| {
            let pattern = PatternArg::prepare(literals, 1, true)?;
            let post = argument::prepare_post(literals, 3)?;
            Ok(Compiled::Editor(Box::new(move |target, args| {
                let re = pattern.get(args, 1, "replace_all_matches", true)?;
                let replacement = argument::string(args, 2, "replace_all_matches", "replacement")?;
                let map = argument::map_mut(target, "replace_all_matches")?;
                for (_, value) in map.iter_mut() {
                    replace_whole(value, &re, replacement, post.as_ref())?;
                }
                Ok(())
            })))
        },
    },
];
