//! Editors that rewrite string contents by regex or glob.

use crate::signature::{FunctionKind::Editor, FunctionSig, Param, ParamType::*, ReturnType::Nothing};

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
        summary: "Replaces every match of regex in target; $1 names a capture group.",
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
        summary: "Replaces regex matches in every key or every string value of a map.",
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
        summary: "Replaces target with replacement when the whole value matches the glob.",
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
        summary: "Replaces each string value of a map that matches the glob.",
    },
];
