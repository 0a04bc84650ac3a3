//! Query plans: attributes for comparing plans, obfuscation of plan text
//! (see [`crate::plan`]). Usable in any transform, e.g. on plans arriving
//! in auto_explain JSON log lines.

use crate::signature::{Compiled, Example, FunctionKind::Converter, FunctionSig, Param, ParamType::String, ReturnType};
use crate::sql::Dialect;
use crate::value::Value;

pub const SIGNATURES: &[FunctionSig] = &[
    FunctionSig {
        name: "PlanAttributes",
        kind: Converter,
        params: &[Param::required("plan", String)],
        returns: ReturnType::Map,
        examples: &[Example {
            input: "{\"plan\": \"[{\\\"Plan\\\": {\\\"Node Type\\\": \\\"Seq Scan\\\", \\\"Relation Name\\\": \\\"t\\\", \\\"Total Cost\\\": 2.5}}]\"}",
            statement: "merge_maps(attributes, PlanAttributes(attributes[\"plan\"]), \"upsert\")",
            output: "{\"plan\": \"[{\\\"Plan\\\": {\\\"Node Type\\\": \\\"Seq Scan\\\", \\\"Relation Name\\\": \\\"t\\\", \\\"Total Cost\\\": 2.5}}]\", \"db.plan.total_cost\": 2.5, \"db.plan.node_types\": [\"Seq Scan\"], \"db.plan.has_seq_scan\": true, \"db.plan.seq_scan_relations\": [\"t\"], \"db.plan.indexes\": [], \"db.plan.has_nested_loop\": false, \"db.plan.has_hash_join\": false, \"db.plan.has_sort\": false, \"db.plan.has_materialize\": false, \"db.plan.depth\": 1, \"db.plan.node_count\": 1, \"db.plan.hash\": \"e8a871702a604488\"}",
        }],
        summary: "Attributes of an EXPLAIN (FORMAT JSON) plan, PostgreSQL or MySQL: costs, rows, node types, full scans and their relations, joins, sorts, indexes, depth, node count, and a structural hash that ignores literals and estimates; nil when the text is not a plan.",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| match args[0] {
                Value::Str(s) => Ok(crate::plan::attributes(s).map(Value::Map).unwrap_or(Value::Nil)),
                _ => Ok(Value::Nil),
            })))
        },
    },
    FunctionSig {
        name: "ObfuscatePlan",
        kind: Converter,
        params: &[Param::required("plan", String), Param::optional("dialect", String)],
        returns: ReturnType::String,
        examples: &[Example {
            input: "{\"plan\": \"{\\\"Plan\\\": {\\\"Node Type\\\": \\\"Seq Scan\\\", \\\"Filter\\\": \\\"(email = 'a@b.co'::text)\\\", \\\"Output\\\": [\\\"x\\\"]}}\"}",
            statement: "set(attributes[\"plan\"], ObfuscatePlan(attributes[\"plan\"]))",
            output: "{\"plan\": \"{\\\"Plan\\\":{\\\"Filter\\\":\\\"(email = ?::text)\\\",\\\"Node Type\\\":\\\"Seq Scan\\\"}}\"}",
        }],
        summary: "A plan with only allow-listed keys kept and every expression normalized (literals removed); dialect \"postgresql\" (default) or \"mysql\"; nil when the text is not JSON.",
        build: |_| {
            Ok(Compiled::Converter(Box::new(|args| {
                let dialect = match args.get(1) {
                    Some(Value::Str(d)) => Dialect::parse(d).unwrap_or_default(),
                    _ => Dialect::Postgres,
                };
                match args[0] {
                    Value::Str(s) => Ok(crate::plan::obfuscate(s, dialect).map(Value::Str).unwrap_or(Value::Nil)),
                    _ => Ok(Value::Nil),
                }
            })))
        },
    },
];
