//! Running the `test` blocks of a plan: build the record the test
//! describes, run the node on it, check the expectations. A failure names
//! the expectation, the actual values and the statement that last changed
//! each of them.

use std::time::Instant;

use dbintel_dsl::ast::{Expr, ExprKind, Path, TestExpect};
use dbintel_dsl::format;
use dbintel_dsl::plan::{Context, NodeKind, Plan, TestCase};
use dbintel_stdlib::Value;

use crate::ottl::{compile_condition, compile_path, truthy, Ctx};
use crate::sample::{Decision, Sample};
use crate::transform::{RecordOutcome, Transform};
use dbintel_core::record::{LogRecord, MetricKind, MetricPoint, Number, Record, Resource};

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Passed,
    Failed(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct TestResult {
    pub name: String,
    pub node: String,
    pub span: dbintel_dsl::Span,
    pub verdict: Verdict,
}

fn empty_record(signal: Context) -> Record {
    match signal {
        Context::Datapoint => Record::Metric(MetricPoint {
            name: String::new(),
            unit: String::new(),
            description: String::new(),
            kind: MetricKind::Gauge,
            start_time_unix_nano: 0,
            time_unix_nano: 0,
            value: Number::Int(0),
            attributes: Default::default(),
        }),
        _ => Record::Log(LogRecord::default()),
    }
}

/// Every path an expression reads, for explaining a failure.
fn paths_in<'a>(expr: &'a Expr, out: &mut Vec<&'a Path>) {
    match &expr.kind {
        ExprKind::Path(p) => out.push(p),
        ExprKind::Call(c) => c.args.iter().for_each(|a| paths_in(&a.value, out)),
        ExprKind::List(items) => items.iter().for_each(|i| paths_in(i, out)),
        ExprKind::Map(entries) => entries.iter().for_each(|e| paths_in(&e.value, out)),
        ExprKind::Not(e) | ExprKind::Neg(e) | ExprKind::Paren(e) => paths_in(e, out),
        ExprKind::Binary { lhs, rhs, .. } => {
            paths_in(lhs, out);
            paths_in(rhs, out);
        }
        _ => {}
    }
}

fn read(path: &Path, resource: &Resource, record: &Record) -> Value {
    match compile_path(path) {
        Ok(p) => p.get(&Ctx { resource, record }).map(|v| v.into_owned()).unwrap_or(Value::Nil),
        Err(_) => Value::Nil,
    }
}

fn run_one(plan: &Plan, test: &TestCase) -> Result<Verdict, String> {
    let mut resource = Resource::default();
    let mut record = empty_record(test.signal);
    for assignment in &test.input {
        let value = compile_condition(&assignment.value).map_err(|e| e.to_string())?;
        let value = value.eval(&Ctx { resource: &resource, record: &record }).map_err(|e| e.to_string())?.into_owned();
        let path = compile_path(&assignment.path)?;
        path.edit(&mut resource, &mut record, &mut |slot| {
            *slot = value.clone();
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    }
    let node = plan.node(&test.node).ok_or_else(|| format!("no node {}", test.node))?;
    let conditions: &[Expr] = match &test.expect {
        TestExpect::Conditions(c, _) => c,
        TestExpect::Dropped(_) => &[],
    };
    let mut watched: Vec<&Path> = Vec::new();
    conditions.iter().for_each(|c| paths_in(c, &mut watched));
    // last statement that changed each watched path
    let mut changed_by: Vec<Option<String>> = vec![None; watched.len()];

    let dropped = match &node.kind {
        NodeKind::Transform(t) => {
            let mut transform = Transform::new(&test.node, t).map_err(|e| e.to_string())?;
            let mut before: Vec<Value> = watched.iter().map(|p| read(p, &resource, &record)).collect();
            let resource_snapshot = resource.clone();
            let outcome = transform.apply(&mut resource, &mut record, &mut |statement, rec| {
                for (i, path) in watched.iter().enumerate() {
                    let now = read(path, &resource_snapshot, rec);
                    if now != before[i] {
                        changed_by[i] = Some(statement.text.clone());
                        before[i] = now;
                    }
                }
            });
            matches!(outcome, RecordOutcome::Dropped(_))
        }
        NodeKind::Sample(s) => {
            let mut sample = Sample::new(s).map_err(|e| e.to_string())?;
            sample.decide(&resource, &record, Instant::now()) == Decision::Drop
        }
        other => return Err(format!("cannot test a {}", other.label())),
    };

    let mut failures = Vec::new();
    match &test.expect {
        TestExpect::Dropped(_) if !dropped => failures.push("expected the record to be dropped, but it was kept".to_string()),
        TestExpect::Dropped(_) => {}
        TestExpect::Conditions(..) if dropped => failures.push("the record was dropped".to_string()),
        TestExpect::Conditions(conditions, _) => {
            for condition in conditions {
                let compiled = compile_condition(condition).map_err(|e| e.to_string())?;
                let holds = compiled.eval(&Ctx { resource: &resource, record: &record }).map(|v| truthy(&v)).unwrap_or(false);
                if holds {
                    continue;
                }
                let mut message = format!("expected: {}", format::expr(condition));
                let mut paths = Vec::new();
                paths_in(condition, &mut paths);
                for path in paths {
                    let shown = format::expr(&Expr { kind: ExprKind::Path(path.clone()), span: path.span });
                    message.push_str(&format!("\n    actual: {shown} = {}", show(&read(path, &resource, &record))));
                    let index = watched.iter().position(|w| std::ptr::eq(*w, path));
                    match index.and_then(|i| changed_by[i].as_ref()) {
                        Some(statement) => message.push_str(&format!("\n    last changed by: {statement}")),
                        None => message.push_str("\n    (no statement changed it)"),
                    }
                }
                failures.push(message);
            }
        }
    }
    Ok(if failures.is_empty() { Verdict::Passed } else { Verdict::Failed(failures) })
}

fn show(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("{s:?}"),
        Value::Nil => "nil".into(),
        other => format!("{other}"),
    }
}

pub fn run_tests(plan: &Plan) -> Vec<TestResult> {
    plan.tests
        .iter()
        .map(|test| TestResult {
            name: test.name.clone(),
            node: test.node.clone(),
            span: test.span,
            verdict: run_one(plan, test).unwrap_or_else(|e| Verdict::Failed(vec![format!("could not run: {e}")])),
        })
        .collect()
}
