//! Editors that rewrite string contents by regex or glob.
//!
//! All four take OTTL's optional `function` (a converter such as `SHA256`
//! applied to each replacement) and `replacementFormat` (a string with one
//! `%s`, where the converter's result goes; used only with a function).

use std::borrow::Cow;
use std::cell::RefCell;

use super::argument::{self, PatternArg, ReplaceFunction};
use crate::signature::{Args, Compiled, Example, FnError, FunctionKind::Editor, FunctionSig, Param, ParamType::*, ReturnType::Nothing};
use crate::value::Value;

const FUNCTION: Param = Param::optional("function", Function);
const FORMAT: Param = Param::optional("replacementFormat", String);

/// `text` with every match of `re` replaced (`$1` expanded, then through
/// the function and format if given); borrowed when nothing matched.
fn replace_matches<'t>(
    text: &'t str,
    re: &crate::pattern::Pattern,
    replacement: &str,
    function: Option<&ReplaceFunction>,
    args: &Args<'_>,
) -> Result<Cow<'t, str>, FnError> {
    let Some(function) = function else {
        return re.replace_all(text, replacement, None).map_err(FnError::Pattern);
    };
    // The pattern's callback cannot fail; the first failure is kept here and
    // returned once the pass is done.
    let failure = RefCell::new(None);
    let post = |expanded: std::string::String| match function.apply(expanded, args) {
        Ok(out) => out,
        Err(e) => {
            failure.borrow_mut().get_or_insert(e);
            std::string::String::new()
        }
    };
    let replaced = re.replace_all(text, replacement, Some(&post)).map_err(FnError::Pattern)?;
    match failure.into_inner() {
        Some(e) => Err(e),
        None => Ok(replaced),
    }
}

/// Rewrites one string in place; leaves other types alone, as OTTL does.
fn replace_in(
    value: &mut Value,
    re: &crate::pattern::Pattern,
    replacement: &str,
    function: Option<&ReplaceFunction>,
    args: &Args<'_>,
) -> Result<(), FnError> {
    if let Value::Str(s) = value {
        if let Cow::Owned(new) = replace_matches(s, re, replacement, function, args)? {
            *s = new;
        }
    }
    Ok(())
}

/// Replaces the whole string when the glob matches all of it.
fn replace_whole(
    value: &mut Value,
    re: &crate::pattern::Pattern,
    replacement: &str,
    function: Option<&ReplaceFunction>,
    args: &Args<'_>,
) -> Result<(), FnError> {
    if let Value::Str(s) = value {
        if re.is_match(s).map_err(FnError::Pattern)? {
            *s = match function {
                Some(function) => function.apply(replacement.to_string(), args)?,
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
        params: &[Param::required("target", Target), Param::required("regex", Regex), Param::required("replacement", String), FUNCTION, FORMAT],
        returns: Nothing,
        examples: &[
            Example {
                input: "{\"q\": \"id=42 and id=7\"}",
                statement: "replace_pattern(attributes[\"q\"], r\"id=(\\d+)\", \"id=<$1>\")",
                output: "{\"q\": \"id=<42> and id=<7>\"}",
            },
            Example {
                input: "{\"q\": \"user=bob\"}",
                statement: "replace_pattern(attributes[\"q\"], r\"user=(\\w+)\", \"$1\", SHA1, \"user=%s\")",
                output: "{\"q\": \"user=48181acd22b3edaebc8a447868a7df7ce629920a\"}",
            },
            Example {
                input: "{\"q\": \"user=bob\"}",
                statement: "replace_pattern(attributes[\"q\"], r\"user=(\\w+)\", \"$1\", function = ToUpperCase, replacement_format = \"user:%s\")",
                output: "{\"q\": \"user:BOB\"}",
            },
        ],
        summary: "Replaces every match of regex in target; $1 names a capture group. With a function, each replacement goes through it, then into replacementFormat's %s.",
        build: |literals| {
            let pattern = PatternArg::prepare(literals, 1, false)?;
            let function = ReplaceFunction::prepare("replace_pattern", literals, 3)?;
            Ok(Compiled::Editor(Box::new(move |target, args| {
                let re = pattern.get(args, 1, "replace_pattern", false)?;
                let replacement = argument::string(args, 2, "replace_pattern", "replacement")?;
                replace_in(target, &re, replacement, function.as_ref(), args)
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
            FUNCTION,
            FORMAT,
        ],
        returns: Nothing,
        examples: &[
            Example {
                input: "{\"a\": \"x1\", \"b\": \"y22\"}",
                statement: "replace_all_patterns(attributes, \"value\", r\"\\d+\", \"#\")",
                output: "{\"a\": \"x#\", \"b\": \"y#\"}",
            },
            Example {
                input: "{\"kube_pod\": \"p\", \"x\": 1}",
                statement: "replace_all_patterns(attributes, \"key\", r\"^kube_\", \"k8s.\")",
                output: "{\"k8s.pod\": \"p\", \"x\": 1}",
            },
            Example {
                input: "{\"kube_pod\": \"p\"}",
                statement: "replace_all_patterns(attributes, \"key\", r\"^kube_(\\w+)\", \"$1\", ToUpperCase, \"k8s.%s\")",
                output: "{\"k8s.POD\": \"p\"}",
            },
        ],
        summary: "Replaces regex matches in every key or every string value of a map (function and replacementFormat as in replace_pattern).",
        build: |literals| {
            let pattern = PatternArg::prepare(literals, 2, false)?;
            let function = ReplaceFunction::prepare("replace_all_patterns", literals, 4)?;
            Ok(Compiled::Editor(Box::new(move |target, args| {
                let re = pattern.get(args, 2, "replace_all_patterns", false)?;
                let mode = argument::string(args, 1, "replace_all_patterns", "mode")?;
                let replacement = argument::string(args, 3, "replace_all_patterns", "replacement")?;
                let map = argument::map_mut(target, "replace_all_patterns")?;
                match mode {
                    "key" => {
                        for key in map.keys_mut() {
                            if let Cow::Owned(new) = replace_matches(key, &re, replacement, function.as_ref(), args)? {
                                *key = new;
                            }
                        }
                    }
                    "value" => {
                        for (_, value) in map.iter_mut() {
                            replace_in(value, &re, replacement, function.as_ref(), args)?;
                        }
                    }
                    other => return Err(FnError::Other(format!("replace_all_patterns: mode must be \"key\" or \"value\", not \"{other}\""))),
                }
                Ok(())
            })))
        },
    },
    FunctionSig {
        name: "replace_match",
        kind: Editor,
        params: &[Param::required("target", Target), Param::required("pattern", String), Param::required("replacement", String), FUNCTION, FORMAT],
        returns: Nothing,
        examples: &[
            Example {
                input: "{\"q\": \"SELECT 1\"}",
                statement: "replace_match(attributes[\"q\"], \"SELECT *\", \"a select\")",
                output: "{\"q\": \"a select\"}",
            },
            Example {
                input: "{\"path\": \"/user/42/list/7\"}",
                statement: "replace_match(attributes[\"path\"], \"/user/*/list/*\", \"{userId}\", SHA1, \"/user/%s\")",
                output: "{\"path\": \"/user/de669e2d1dcec3199a9d54589253e09b3e33f48c\"}",
            },
        ],
        summary: "Replaces target with replacement when the whole value matches the glob (function and replacementFormat as in replace_pattern).",
        build: |literals| {
            let pattern = PatternArg::prepare(literals, 1, true)?;
            let function = ReplaceFunction::prepare("replace_match", literals, 3)?;
            Ok(Compiled::Editor(Box::new(move |target, args| {
                let re = pattern.get(args, 1, "replace_match", true)?;
                let replacement = argument::string(args, 2, "replace_match", "replacement")?;
                replace_whole(target, &re, replacement, function.as_ref(), args)
            })))
        },
    },
    FunctionSig {
        name: "replace_all_matches",
        kind: Editor,
        params: &[Param::required("target", TargetMap), Param::required("pattern", String), Param::required("replacement", String), FUNCTION, FORMAT],
        returns: Nothing,
        examples: &[
            Example {
                input: "{\"a\": \"secret-1\", \"b\": \"public\"}",
                statement: "replace_all_matches(attributes, \"secret-*\", \"***\")",
                output: "{\"a\": \"***\", \"b\": \"public\"}",
            },
            Example {
                input: "{\"a\": \"secret-1\", \"b\": \"public\"}",
                statement: "replace_all_matches(attributes, \"secret-*\", \"s\", function = ToUpperCase, replacement_format = \"[%s]\")",
                output: "{\"a\": \"[S]\", \"b\": \"public\"}",
            },
        ],
        summary: "Replaces each string value of a map that matches the glob (function and replacementFormat as in replace_pattern).",
        build: |literals| {
            let pattern = PatternArg::prepare(literals, 1, true)?;
            let function = ReplaceFunction::prepare("replace_all_matches", literals, 3)?;
            Ok(Compiled::Editor(Box::new(move |target, args| {
                let re = pattern.get(args, 1, "replace_all_matches", true)?;
                let replacement = argument::string(args, 2, "replace_all_matches", "replacement")?;
                let map = argument::map_mut(target, "replace_all_matches")?;
                for (_, value) in map.iter_mut() {
                    replace_whole(value, &re, replacement, function.as_ref(), args)?;
                }
                Ok(())
            })))
        },
    },
];
