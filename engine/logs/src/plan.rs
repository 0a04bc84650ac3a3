//! auto_explain plans from the server's log as events.
//!
//! ONE function, [`plan_event`], builds them, so that the plan shape
//! issue 23 defines (plans on `db.server.top_query` or a
//! `db.server.query_plan` event, each saying where it came from) can take
//! it over at merge: today it is a `db.server.query_plan` event obfuscated
//! by the same stdlib code the `plans` collector uses
//! (`dbintel_stdlib::plan::obfuscate` and `::attributes`), marked
//! `db.plan.source = "server_log"`, with the statement's logged duration.
//! Plan-change detection works as in the `plans` collector: the last
//! structural hash per query id; a different one adds a
//! `db.server.plan_change` event.

use std::collections::HashMap;

use dbintel_core::record::{LogRecord, Record};
use dbintel_stdlib::sql::Dialect;
use dbintel_stdlib::{Map, Value};

/// Where a plan came from: the server's own log (actual rows and times,
/// never an EXPLAIN of ours).
pub const SOURCE_SERVER_LOG: &str = "server_log";

/// Query ids whose last plan hash is remembered (a guard: past it the
/// memory starts over, and the next plan of each query is a first one).
const MAX_REMEMBERED: usize = 50_000;

/// The last plan hash per query id.
#[derive(Default)]
pub struct PlanHistory {
    last: HashMap<String, String>,
}

/// Why a logged plan gave no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPlan {
    /// Not JSON: `auto_explain.log_format` is not `json`.
    NotJson,
}

/// The events of one auto_explain entry: `db.server.query_plan`, and
/// `db.server.plan_change` first when the query's plan hash changed.
/// `context` holds the entry's session attributes (query id, database,
/// user, …); the query text the plan carries becomes `db.query.text`
/// (raw: the pipeline's sanitize rules normalize it).
pub fn plan_event(
    plan: &str,
    duration_ms: f64,
    context: Map,
    time: u64,
    now: u64,
    history: &mut PlanHistory,
) -> Result<Vec<Record>, NoPlan> {
    // the statement's text, without building the plan's tree (the
    // obfuscation reads it again)
    #[derive(serde::Deserialize)]
    struct Text<'a> {
        #[serde(rename = "Query Text", borrow)]
        text: Option<std::borrow::Cow<'a, str>>,
    }
    let json: Text<'_> = serde_json::from_str(plan).map_err(|_| NoPlan::NotJson)?;
    let obfuscated = dbintel_stdlib::plan::obfuscate(plan, Dialect::Postgres).ok_or(NoPlan::NotJson)?;
    let attributes = dbintel_stdlib::plan::attributes(&obfuscated).ok_or(NoPlan::NotJson)?;
    let hash = attributes.get("db.plan.hash").and_then(Value::as_str).unwrap_or_default().to_string();
    let mut event = context;
    event.insert("db.plan.source", Value::Str(SOURCE_SERVER_LOG.into()));
    event.insert("db.query.duration_ms", Value::Double(duration_ms));
    if let Some(text) = json.text {
        event.insert("db.query.text", Value::Str(text.into_owned()));
    }
    for (k, v) in attributes.iter() {
        event.insert(k, v.clone());
    }
    let mut out = Vec::with_capacity(2);
    let id = event.get("db.query.id").and_then(Value::as_str).map(str::to_string);
    if let Some(id) = id {
        if let Some(previous) = history.last.get(&id).filter(|h| **h != hash) {
            let mut change = event.clone();
            change.insert("db.plan.previous_hash", Value::Str(previous.clone()));
            tracing::info!(query_id = %id, from = %previous, to = %hash, "logged plan changed");
            out.push(log("db.server.plan_change", 13, "WARN", change, time, now));
        }
        if history.last.len() >= MAX_REMEMBERED && !history.last.contains_key(&id) {
            history.last.clear();
        }
        history.last.insert(id, hash);
    }
    event.insert("db.query.plan", Value::Str(obfuscated));
    out.push(log("db.server.query_plan", 9, "INFO", event, time, now));
    Ok(out)
}

fn log(name: &str, severity: i32, text: &str, attributes: Map, time: u64, now: u64) -> Record {
    Record::Log(LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: now,
        severity_number: severity,
        severity_text: text.into(),
        event_name: name.into(),
        body: Value::Nil,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"{"Query Text": "SELECT * FROM orders WHERE email = 'ann@example.com'", "Plan": {"Node Type": "Seq Scan", "Relation Name": "orders", "Alias": "orders", "Startup Cost": 0.00, "Total Cost": 35.50, "Plan Rows": 1, "Plan Width": 40, "Actual Rows": 1, "Actual Loops": 1, "Output": ["id", "email"], "Filter": "((email)::text = 'ann@example.com'::text)", "Rows Removed by Filter": 999}}"#;

    fn context(id: &str) -> Map {
        let mut m = Map::new();
        m.insert("db.query.id", Value::Str(id.into()));
        m
    }

    #[test]
    fn a_logged_plan_is_obfuscated_marked_and_carries_its_text_raw_for_the_pipeline() {
        let mut history = PlanHistory::default();
        let out = plan_event(PLAN, 12.5, context("42"), 1, 2, &mut history).expect("a plan");
        assert_eq!(out.len(), 1);
        let Record::Log(l) = &out[0] else { panic!() };
        assert_eq!(l.event_name, "db.server.query_plan");
        assert_eq!(l.attributes.get("db.plan.source"), Some(&Value::Str("server_log".into())));
        assert_eq!(l.attributes.get("db.query.duration_ms"), Some(&Value::Double(12.5)));
        let plan = l.attributes.get("db.query.plan").and_then(Value::as_str).unwrap();
        assert!(!plan.contains("ann@example.com") && !plan.contains("Output") && !plan.contains("Query Text"), "{plan}");
        assert!(
            plan.contains("\"Actual Rows\":1") && plan.contains("\"Rows Removed by Filter\":999"),
            "what the execution measured stays: {plan}"
        );
        assert_eq!(l.attributes.get("db.plan.has_seq_scan"), Some(&Value::Bool(true)));
        assert!(
            l.attributes.get("db.query.text").and_then(Value::as_str).unwrap().contains("ann@example.com"),
            "the text is raw until sanitize_pii"
        );
    }

    #[test]
    fn a_new_plan_shape_for_a_query_is_a_plan_change() {
        let mut history = PlanHistory::default();
        plan_event(PLAN, 1.0, context("42"), 1, 2, &mut history).unwrap();
        assert_eq!(plan_event(PLAN, 2.0, context("42"), 1, 2, &mut history).unwrap().len(), 1, "same shape");
        let indexed = PLAN.replace("\"Seq Scan\"", "\"Index Scan\"").replace("\"Alias\"", "\"Index Name\": \"orders_email\", \"Alias\"");
        let out = plan_event(&indexed, 0.1, context("42"), 1, 2, &mut history).unwrap();
        let Record::Log(change) = &out[0] else { panic!() };
        assert_eq!(change.event_name, "db.server.plan_change");
        assert!(change.attributes.get("db.plan.previous_hash").is_some());
        assert_eq!(
            plan_event("Seq Scan on orders  (cost=0.00..35.50 rows=1 width=40)", 1.0, context("7"), 1, 2, &mut history),
            Err(NoPlan::NotJson)
        );
    }
}
