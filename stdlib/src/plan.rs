//! Query plans (EXPLAIN FORMAT JSON): obfuscation before a plan leaves the
//! process, and the attributes that make plans comparable — costs, node
//! types, full scans, joins, indexes, and a structural hash that changes
//! when the plan's shape changes and never with literals or estimates.
//!
//! PostgreSQL plans (`[{"Plan": …}]`, or an auto_explain JSON line with a
//! `"Plan"` key) and MySQL plans (`{"query_block": …}`) are understood.

use serde_json::Value as Json;

use crate::sql::{normalize, Dialect};
use crate::value::{Map, Value};

/// Keys kept in an obfuscated PostgreSQL plan; everything else (output
/// lists, sample values, anything unknown) is dropped.
const PG_KEYS: &[&str] = &[
    "Plan",
    "Plans",
    "Node Type",
    "Parent Relationship",
    "Parallel Aware",
    "Async Capable",
    "Join Type",
    "Strategy",
    "Partial Mode",
    "Relation Name",
    "Schema",
    "Alias",
    "Index Name",
    "Scan Direction",
    "Startup Cost",
    "Total Cost",
    "Plan Rows",
    "Plan Width",
    "Filter",
    "Index Cond",
    "Recheck Cond",
    "Hash Cond",
    "Merge Cond",
    "Join Filter",
    "Sort Key",
    "Group Key",
    "One-Time Filter",
    "TID Cond",
    "Subplan Name",
    "Command",
    "Inner Unique",
    "CTE Name",
    "Function Name",
    "Workers Planned",
    "Single Copy",
    "Presorted Key",
    "Operation",
    // what an executed plan (auto_explain with log_analyze) measured:
    // numbers and method names, never values
    "Actual Startup Time",
    "Actual Total Time",
    "Actual Rows",
    "Actual Loops",
    "Rows Removed by Filter",
    "Rows Removed by Join Filter",
    "Rows Removed by Index Recheck",
    "Heap Fetches",
    "Workers Launched",
    "Sort Method",
    "Sort Space Used",
    "Sort Space Type",
    "Peak Memory Usage",
    "Hash Buckets",
    "Hash Batches",
    "Shared Hit Blocks",
    "Shared Read Blocks",
    "Shared Dirtied Blocks",
    "Shared Written Blocks",
    "Temp Read Blocks",
    "Temp Written Blocks",
];

/// Keys whose values are SQL expressions: normalized (literals out).
const PG_EXPRESSIONS: &[&str] = &[
    "Filter",
    "Index Cond",
    "Recheck Cond",
    "Hash Cond",
    "Merge Cond",
    "Join Filter",
    "Sort Key",
    "Group Key",
    "One-Time Filter",
    "TID Cond",
    "Presorted Key",
];

const MY_KEYS: &[&str] = &[
    "query_block",
    "select_id",
    "cost_info",
    "query_cost",
    "read_cost",
    "eval_cost",
    "prefix_cost",
    "data_read_per_join",
    "table",
    "table_name",
    "access_type",
    "possible_keys",
    "key",
    "used_key_parts",
    "key_length",
    "rows_examined_per_scan",
    "rows_produced_per_join",
    "filtered",
    "using_index",
    "nested_loop",
    "ordering_operation",
    "grouping_operation",
    "using_filesort",
    "using_temporary_table",
    "attached_condition",
    "duplicates_removal",
    "materialized_from_subquery",
    "message",
    "rows",
    "r_rows",
    "filesort",
    "temporary_table",
    "sort_key",
];

const MY_EXPRESSIONS: &[&str] = &["attached_condition", "sort_key"];

fn expression(text: &str, dialect: Dialect) -> Json {
    // an expression is not a statement, but the lexer does not care: it
    // replaces literals and keeps identifiers and operators
    match normalize(text, dialect) {
        Ok(n) => Json::String(n),
        Err(_) => Json::String("?".into()),
    }
}

fn scrub(v: &Json, keys: &[&str], expressions: &[&str], dialect: Dialect) -> Json {
    match v {
        Json::Object(m) => Json::Object(
            m.iter()
                .filter(|(k, _)| keys.contains(&k.as_str()))
                .map(|(k, v)| {
                    let v = match v {
                        Json::String(s) if expressions.contains(&k.as_str()) => expression(s, dialect),
                        Json::Array(items) if expressions.contains(&k.as_str()) => {
                            Json::Array(items.iter().map(|i| i.as_str().map_or(Json::Null, |s| expression(s, dialect))).collect())
                        }
                        other => scrub(other, keys, expressions, dialect),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Json::Array(items) => Json::Array(items.iter().map(|i| scrub(i, keys, expressions, dialect)).collect()),
        other => other.clone(),
    }
}

/// The plan with only allow-listed keys and every expression normalized;
/// `None` when it is not JSON.
pub fn obfuscate(plan: &str, dialect: Dialect) -> Option<String> {
    let json: Json = serde_json::from_str(plan).ok()?;
    let scrubbed = match dialect {
        Dialect::MySql => scrub(&json, MY_KEYS, MY_EXPRESSIONS, dialect),
        _ => scrub(&json, PG_KEYS, PG_EXPRESSIONS, dialect),
    };
    serde_json::to_string(&scrubbed).ok()
}

#[derive(Default)]
struct Walk {
    node_types: Vec<String>,
    seq_scans: Vec<String>,
    indexes: Vec<String>,
    nested_loop: bool,
    hash_join: bool,
    sort: bool,
    materialize: bool,
    depth: usize,
    nodes: usize,
    shape: String,
}

fn push_unique(list: &mut Vec<String>, s: &str) {
    if !list.iter().any(|x| x == s) {
        list.push(s.to_string());
    }
}

fn walk_pg(node: &Json, depth: usize, w: &mut Walk) {
    let s = |k: &str| node.get(k).and_then(Json::as_str).unwrap_or("");
    let node_type = s("Node Type");
    w.nodes += 1;
    w.depth = w.depth.max(depth);
    push_unique(&mut w.node_types, node_type);
    match node_type {
        "Seq Scan" | "Parallel Seq Scan" => push_unique(&mut w.seq_scans, s("Relation Name")),
        "Nested Loop" => w.nested_loop = true,
        "Hash Join" => w.hash_join = true,
        "Sort" | "Incremental Sort" => w.sort = true,
        "Materialize" => w.materialize = true,
        _ => {}
    }
    if !s("Index Name").is_empty() {
        push_unique(&mut w.indexes, s("Index Name"));
    }
    // the shape: what was done to which relation through which index, in
    // tree order — no costs, rows or expressions
    w.shape.push_str(&format!("({node_type}|{}|{}|{}|{}", s("Join Type"), s("Relation Name"), s("Index Name"), s("Parent Relationship")));
    for child in node.get("Plans").and_then(Json::as_array).into_iter().flatten() {
        walk_pg(child, depth + 1, w);
    }
    w.shape.push(')');
}

fn walk_my(v: &Json, depth: usize, w: &mut Walk) {
    match v {
        Json::Object(m) => {
            if let Some(table) = m.get("table") {
                let name = table.get("table_name").and_then(Json::as_str).unwrap_or("");
                let access = table.get("access_type").and_then(Json::as_str).unwrap_or("");
                w.nodes += 1;
                w.depth = w.depth.max(depth);
                push_unique(&mut w.node_types, access);
                if access == "ALL" {
                    push_unique(&mut w.seq_scans, name);
                }
                if let Some(key) = table.get("key").and_then(Json::as_str) {
                    push_unique(&mut w.indexes, key);
                }
                w.shape.push_str(&format!("({access}|{name}|{})", table.get("key").and_then(Json::as_str).unwrap_or("")));
            }
            if m.contains_key("nested_loop") {
                w.nested_loop = true;
            }
            if m.get("using_filesort") == Some(&Json::Bool(true)) {
                w.sort = true;
            }
            if m.contains_key("materialized_from_subquery") {
                w.materialize = true;
            }
            for (k, child) in m {
                if k != "table" {
                    walk_my(child, depth + 1, w);
                }
            }
            if let Some(table) = m.get("table") {
                walk_my(table, depth + 1, w);
            }
        }
        Json::Array(items) => items.iter().for_each(|i| walk_my(i, depth, w)),
        _ => {}
    }
}

fn number(v: Option<&Json>) -> Option<f64> {
    v.and_then(|v| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
}

/// `db.plan.*` attributes of a plan; `None` when it is not a plan.
pub fn attributes(plan: &str) -> Option<Map> {
    let json: Json = serde_json::from_str(plan).ok()?;
    let root = match &json {
        Json::Array(items) => items.first()?.clone(),
        other => other.clone(),
    };
    let mut w = Walk::default();
    let mut out = Map::new();
    if let Some(top) = root.get("Plan") {
        walk_pg(top, 1, &mut w);
        for (key, attr) in [("Total Cost", "total_cost"), ("Startup Cost", "startup_cost"), ("Plan Rows", "rows"), ("Plan Width", "width")]
        {
            if let Some(n) = number(top.get(key)) {
                out.insert(format!("db.plan.{attr}"), Value::Double(n));
            }
        }
    } else if let Some(block) = root.get("query_block") {
        walk_my(block, 1, &mut w);
        if let Some(n) = number(block.get("cost_info").and_then(|c| c.get("query_cost"))) {
            out.insert("db.plan.total_cost", Value::Double(n));
        }
    } else {
        return None;
    }
    let list = |items: &[String]| Value::List(items.iter().map(|s| Value::Str(s.clone())).collect());
    out.insert("db.plan.node_types", list(&w.node_types));
    out.insert("db.plan.has_seq_scan", Value::Bool(!w.seq_scans.is_empty()));
    out.insert("db.plan.seq_scan_relations", list(&w.seq_scans));
    out.insert("db.plan.indexes", list(&w.indexes));
    out.insert("db.plan.has_nested_loop", Value::Bool(w.nested_loop));
    out.insert("db.plan.has_hash_join", Value::Bool(w.hash_join));
    out.insert("db.plan.has_sort", Value::Bool(w.sort));
    out.insert("db.plan.has_materialize", Value::Bool(w.materialize));
    out.insert("db.plan.depth", Value::Int(w.depth as i64));
    out.insert("db.plan.node_count", Value::Int(w.nodes as i64));
    out.insert("db.plan.hash", Value::Str(format!("{:016x}", crate::functions::fnv1a(w.shape.as_bytes()))));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEQ: &str = r#"[{"Plan": {"Node Type": "Seq Scan", "Parallel Aware": false, "Relation Name": "orders", "Alias": "o",
        "Startup Cost": 0.00, "Total Cost": 35.50, "Plan Rows": 10, "Plan Width": 40,
        "Output": ["secret_col"], "Filter": "((email)::text = 'alice@example.com'::text)"}}]"#;

    const JOIN: &str = r#"[{"Plan": {"Node Type": "Nested Loop", "Join Type": "Inner", "Total Cost": 99.1, "Startup Cost": 0.3, "Plan Rows": 5, "Plan Width": 8,
        "Plans": [
          {"Node Type": "Index Scan", "Parent Relationship": "Outer", "Relation Name": "orders", "Index Name": "orders_pkey", "Index Cond": "(id = 42)", "Total Cost": 8.3},
          {"Node Type": "Sort", "Parent Relationship": "Inner", "Sort Key": ["o.created_at"], "Total Cost": 20,
           "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "items", "Total Cost": 10}]}
        ]}}]"#;

    #[test]
    fn attributes_of_a_seq_scan_and_a_join() {
        let a = attributes(SEQ).unwrap();
        assert_eq!(a.get("db.plan.has_seq_scan"), Some(&Value::Bool(true)));
        assert_eq!(a.get("db.plan.seq_scan_relations"), Some(&Value::List(vec![Value::Str("orders".into())])));
        assert_eq!(a.get("db.plan.total_cost"), Some(&Value::Double(35.5)));
        let j = attributes(JOIN).unwrap();
        assert_eq!(j.get("db.plan.node_count"), Some(&Value::Int(4)));
        assert_eq!(j.get("db.plan.depth"), Some(&Value::Int(3)));
        assert_eq!(j.get("db.plan.has_nested_loop"), Some(&Value::Bool(true)));
        assert_eq!(j.get("db.plan.has_sort"), Some(&Value::Bool(true)));
        assert_eq!(j.get("db.plan.indexes"), Some(&Value::List(vec![Value::Str("orders_pkey".into())])));
        assert_eq!(j.get("db.plan.seq_scan_relations"), Some(&Value::List(vec![Value::Str("items".into())])));
    }

    #[test]
    fn an_auto_explain_json_line_is_a_plan_too() {
        let line = r#"{"Query Text": "select * from orders where email = 'x@y.z'", "Plan": {"Node Type": "Seq Scan", "Relation Name": "orders", "Total Cost": 3.5}}"#;
        let a = attributes(line).unwrap();
        assert_eq!(a.get("db.plan.seq_scan_relations"), Some(&Value::List(vec![Value::Str("orders".into())])));
        let o = obfuscate(line, Dialect::Postgres).unwrap();
        assert!(!o.contains("x@y.z") && !o.contains("Query Text"), "{o}");
    }

    #[test]
    fn the_hash_follows_the_shape_not_costs_or_literals() {
        let h = |p: &str| attributes(p).unwrap().get("db.plan.hash").cloned();
        let cheaper = SEQ.replace("35.50", "1.25").replace("alice@example.com", "bob@example.org");
        assert_eq!(h(SEQ), h(&cheaper));
        let indexed = SEQ.replace("\"Seq Scan\"", "\"Index Scan\"").replace("\"Alias\"", "\"Index Name\": \"orders_email\", \"Alias\"");
        assert_ne!(h(SEQ), h(&indexed));
    }

    #[test]
    fn obfuscation_keeps_the_allow_list_and_normalizes_expressions() {
        let o = obfuscate(SEQ, Dialect::Postgres).unwrap();
        assert!(!o.contains("alice@example.com"), "{o}");
        assert!(!o.contains("secret_col"), "output lists are dropped: {o}");
        assert!(o.contains("Seq Scan") && o.contains("orders") && o.contains("email"), "{o}");
        let j = obfuscate(JOIN, Dialect::Postgres).unwrap();
        assert!(!j.contains("42"), "{j}");
        let my = r#"{"query_block": {"select_id": 1, "cost_info": {"query_cost": "1.2"}, "table": {"table_name": "users", "access_type": "ALL",
            "attached_condition": "(`db`.`users`.`ssn` = '123-45-6789')", "secret": "x"}}}"#;
        let m = obfuscate(my, Dialect::MySql).unwrap();
        assert!(!m.contains("123-45-6789") && !m.contains("secret"), "{m}");
        let a = attributes(my).unwrap();
        assert_eq!(a.get("db.plan.seq_scan_relations"), Some(&Value::List(vec![Value::Str("users".into())])));
    }
}
