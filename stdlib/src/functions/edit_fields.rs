//! Editors that add, remove and reshape fields and maps.

use crate::signature::{FunctionKind::Editor, FunctionSig, Param, ParamType::*, ReturnType::Nothing};

pub const SIGNATURES: &[FunctionSig] = &[
    FunctionSig {
        name: "set",
        kind: Editor,
        params: &[Param::required("target", Target), Param::required("value", Any)],
        returns: Nothing,
        summary: "Sets target to value.",
    },
    FunctionSig {
        name: "delete_key",
        kind: Editor,
        params: &[Param::required("target", TargetMap), Param::required("key", String)],
        returns: Nothing,
        summary: "Removes one key from a map.",
    },
    FunctionSig {
        name: "delete_matching_keys",
        kind: Editor,
        params: &[Param::required("target", TargetMap), Param::required("pattern", Regex)],
        returns: Nothing,
        summary: "Removes every key of a map that matches the regex.",
    },
    FunctionSig {
        name: "keep_keys",
        kind: Editor,
        params: &[Param::required("target", TargetMap), Param::required("keys", List)],
        returns: Nothing,
        summary: "Keeps only the listed keys of a map.",
    },
    FunctionSig {
        name: "keep_matching_keys",
        kind: Editor,
        params: &[Param::required("target", TargetMap), Param::required("pattern", Regex)],
        returns: Nothing,
        summary: "Keeps only the keys of a map that match the regex.",
    },
    FunctionSig {
        name: "truncate_all",
        kind: Editor,
        params: &[Param::required("target", TargetMap), Param::required("limit", Int)],
        returns: Nothing,
        summary: "Truncates every string value of a map to limit characters.",
    },
    FunctionSig {
        name: "limit",
        kind: Editor,
        params: &[Param::required("target", TargetMap), Param::required("limit", Int), Param::required("priority_keys", List)],
        returns: Nothing,
        summary: "Keeps at most limit keys of a map, the priority keys first.",
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
        summary: "Merges source into target by strategy.",
    },
    FunctionSig {
        name: "append",
        kind: Editor,
        params: &[Param::required("target", Target), Param::optional("value", Any), Param::optional("values", List)],
        returns: Nothing,
        summary: "Appends value (or values) to the list at target.",
    },
];
