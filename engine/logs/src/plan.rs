//! auto_explain plans from the server's log, through the one plan shape
//! every plan leaves in (`dbintel_sources::plan_book`): obfuscated by the
//! same stdlib code the `plans` collector uses, marked as coming from the
//! server's log (`dbintel.plan.source = log`: the plan the statement
//! actually ran, with real rows and times, never an EXPLAIN of ours), as a
//! `db.server.query_plan` event (`emit = event`, the default of a log
//! source) or on the statement's top-query events (`emit = top_query`,
//! when the linked database source collects statements), joined by query
//! id (`compute_query_id`). Plan changes compare logged plans with logged
//! plans only. A plan without a query id cannot ride on a top query: it
//! always leaves as an event.

use std::sync::Arc;
use std::time::Duration;

use dbintel_core::record::Record;
use dbintel_sources::plan_book::{publish, Placement, Plan, PlanBook, PlanSource};
use dbintel_sources::target::Engine;
use dbintel_stdlib::sql::Dialect;
use dbintel_stdlib::{Map, Value};

/// Where a log source's plans go, and the book they are filed in (the
/// server's, shared with its database source).
pub struct LogPlans {
    pub book: Arc<PlanBook>,
    pub placement: Placement,
    /// How long a filed plan rides on top queries.
    pub keep: Duration,
}

impl LogPlans {
    /// A live log source's: filed in its server's book (`server`, the
    /// configured `host:port` of the database source it names), placed as
    /// its `collect plans { emit = … }` says.
    pub fn for_source(node: &dbintel_dsl::plan::SourceNode, server: &str) -> LogPlans {
        let settings = node.collectors.get("plans").map(|c| dbintel_dsl::schema::LogPlansSettings::from_settings(&c.settings));
        let placement = match settings.map(|s| s.emit) {
            Some(dbintel_dsl::schema::PlanPlacement::TopQuery) => Placement::TopQuery,
            _ => Placement::Event,
        };
        LogPlans { book: PlanBook::of(server), placement, keep: Duration::from_secs(3600) }
    }
}

impl Default for LogPlans {
    /// A book of its own (replay, tests): plans as events.
    fn default() -> LogPlans {
        LogPlans { book: PlanBook::of("(log replay)"), placement: Placement::Event, keep: Duration::from_secs(3600) }
    }
}

/// Why a logged plan gave no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPlan {
    /// Not JSON: `auto_explain.log_format` is not `json`.
    NotJson,
}

/// The records of one auto_explain entry (see the module's doc): the
/// plan's event (or nothing now, when it rides on top queries) and a
/// `db.server.plan_change` when the statement's logged plan changed shape.
/// `context` holds the entry's session attributes (query id, database,
/// user, …); the query text the plan carries becomes `db.query.text`
/// (raw: the pipeline's sanitize rules normalize it).
pub fn plan_event(plan: &str, duration_ms: f64, context: Map, time: u64, now: u64, plans: &LogPlans) -> Result<Vec<Record>, NoPlan> {
    // the statement's text, without building the plan's tree (the
    // obfuscation reads it again)
    #[derive(serde::Deserialize)]
    struct Text<'a> {
        #[serde(rename = "Query Text", borrow)]
        text: Option<std::borrow::Cow<'a, str>>,
    }
    let json: Text<'_> = serde_json::from_str(plan).map_err(|_| NoPlan::NotJson)?;
    let obfuscated = dbintel_stdlib::plan::obfuscate(plan, Dialect::Postgres).ok_or(NoPlan::NotJson)?;
    let string = |k: &str| context.get(k).filter(|v| !v.is_nil()).map(ToString::to_string);
    let query_id = string("db.query.id");
    let placement = if query_id.is_some() { plans.placement } else { Placement::Event };
    let filed = Plan {
        engine: Engine::Postgres,
        database: string("db.namespace").unwrap_or_default(),
        query_id: query_id.unwrap_or_default(),
        user_id: None,
        role: string("db.user"),
        json: obfuscated,
        source: PlanSource::Log,
        explained_from: None,
    };
    let mut records = publish(&plans.book, filed, placement, plans.keep, now);
    // what the log says of the run, on each record
    for record in &mut records {
        let Record::Log(l) = record else { continue };
        l.time_unix_nano = time;
        for (k, v) in context.iter() {
            if l.attributes.get(k).is_none() {
                l.attributes.insert(k, v.clone());
            }
        }
        l.attributes.insert("db.query.duration_ms", Value::Double(duration_ms));
        if let Some(text) = &json.text {
            l.attributes.insert("db.query.text", Value::Str(text.to_string()));
        }
    }
    Ok(records)
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
        let history =
            LogPlans { book: PlanBook::of(&format!("test-{}", line!())), placement: Placement::Event, keep: Duration::from_secs(60) };
        let out = plan_event(PLAN, 12.5, context("42"), 1, 2, &history).expect("a plan");
        assert_eq!(out.len(), 1);
        let Record::Log(l) = &out[0] else { panic!() };
        assert_eq!(l.event_name, "db.server.query_plan");
        assert_eq!(l.attributes.get("dbintel.plan.source"), Some(&Value::Str("log".into())));
        assert_eq!(l.attributes.get("db.query.duration_ms"), Some(&Value::Double(12.5)));
        let plan = l.attributes.get("postgresql.query_plan").and_then(Value::as_str).unwrap();
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
        let history =
            LogPlans { book: PlanBook::of(&format!("test-{}", line!())), placement: Placement::Event, keep: Duration::from_secs(60) };
        plan_event(PLAN, 1.0, context("42"), 1, 2, &history).unwrap();
        assert_eq!(plan_event(PLAN, 2.0, context("42"), 1, 2, &history).unwrap().len(), 1, "same shape");
        let indexed = PLAN.replace("\"Seq Scan\"", "\"Index Scan\"").replace("\"Alias\"", "\"Index Name\": \"orders_email\", \"Alias\"");
        let out = plan_event(&indexed, 0.1, context("42"), 1, 2, &history).unwrap();
        let Record::Log(change) = &out[0] else { panic!() };
        assert_eq!(change.event_name, "db.server.plan_change");
        assert!(change.attributes.get("db.plan.previous_hash").is_some());
        assert_eq!(
            plan_event("Seq Scan on orders  (cost=0.00..35.50 rows=1 width=40)", 1.0, context("7"), 1, 2, &history),
            Err(NoPlan::NotJson)
        );
    }
}
