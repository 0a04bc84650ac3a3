//! `transform`: OTTL statements run in order on each record.

use dbintel_dsl::plan::{Context, ErrorMode, TransformNode};
use dbintel_stdlib::{FnError, Value};

use super::Operator;
use crate::ottl::{compile_statement, CExpr, CStatement, CompileError, Ctx};
use dbintel_core::counters::NodeCounters;
use dbintel_core::record::{Batch, Record, Resource};
use dbintel_core::BoxFuture;

/// Attribute set on a record whose text could not be sanitized (the text
/// itself was removed).
pub const REDACTED_MARK: &str = "dbintel.redacted";

pub struct Transform {
    name: String,
    context: Context,
    error_mode: ErrorMode,
    statements: Vec<CStatement>,
    steps: Vec<Step>,
    /// Errors already logged, to keep a bad statement from flooding logs.
    logged: u64,
}

/// How statements are scheduled.
enum Step {
    One(usize),
    /// Consecutive unconditional `replace_pattern`s on one field: a single
    /// pass of a `RegexSet` finds which of them can match, and only those
    /// run. After one rewrites the text the set is asked again, so a
    /// replacement that creates a match for a later rule is still seen.
    /// The result is the same as running each statement in turn.
    PatternRun {
        first: usize,
        set: regex::RegexSet,
    },
}

/// The literal regex of an unconditional `replace_pattern` with no
/// function argument, if the statement is one.
fn plain_pattern(statement: &CStatement) -> Option<&str> {
    if statement.function != "replace_pattern" || statement.condition.is_some() {
        return None;
    }
    let function_arg = statement.args.get(3);
    if function_arg.is_some_and(|a| !matches!(a, CExpr::Literal(Value::Nil))) {
        return None;
    }
    match statement.args.get(1) {
        Some(CExpr::Literal(Value::Str(pattern))) if regex::Regex::new(pattern).is_ok() => Some(pattern),
        _ => None,
    }
}

fn plan_steps(statements: &[CStatement]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut i = 0;
    while i < statements.len() {
        let mut end = i;
        while end < statements.len()
            && plain_pattern(&statements[end]).is_some()
            && statements[end].target_text == statements[i].target_text
        {
            end += 1;
        }
        let set = (end - i >= 2).then(|| regex::RegexSet::new(statements[i..end].iter().filter_map(plain_pattern)).ok()).flatten();
        match set {
            Some(set) => {
                steps.push(Step::PatternRun { first: i, set });
                i = end;
            }
            None => {
                steps.push(Step::One(i));
                i += 1;
            }
        }
    }
    steps
}

/// What running a transform did to one record.
#[derive(Debug, PartialEq)]
pub enum RecordOutcome {
    Kept { errors: usize },
    Dropped(FnError),
}

impl Transform {
    pub fn new(name: &str, node: &TransformNode) -> Result<Transform, CompileError> {
        let statements: Vec<CStatement> = node.statements.iter().map(compile_statement).collect::<Result<_, _>>()?;
        let steps = plan_steps(&statements);
        Ok(Transform { name: name.to_string(), context: node.context, error_mode: node.error_mode, statements, steps, logged: 0 })
    }

    pub fn statements(&self) -> &[CStatement] {
        &self.statements
    }

    fn applies(&self, record: &Record) -> bool {
        match self.context {
            Context::Any => true,
            Context::Log => record.is_log(),
            Context::Datapoint => !record.is_log(),
        }
    }

    /// Runs every statement on one record, following the error mode.
    /// `observe` sees each statement after it ran (for `dbintel test`).
    pub fn apply(&mut self, resource: &mut Resource, record: &mut Record, observe: &mut dyn FnMut(&CStatement, &Record)) -> RecordOutcome {
        if !self.applies(record) {
            return RecordOutcome::Kept { errors: 0 };
        }
        let mut errors = 0;
        for step in &self.steps {
            let outcome = match step {
                Step::One(i) => execute(&self.statements[*i], self.error_mode, &self.name, &mut self.logged, resource, record, observe),
                Step::PatternRun { first, set } => {
                    let run = &self.statements[*first..*first + set.len()];
                    let text = |resource: &Resource, record: &Record| match run[0].target.get(&Ctx { resource, record }) {
                        Ok(v) => v.as_str().map(|s| set.matches(s)),
                        Err(_) => None,
                    };
                    let mut matches = text(resource, record);
                    let mut outcome = Ok(0);
                    for (k, statement) in run.iter().enumerate() {
                        let may_match = matches.as_ref().is_none_or(|m| m.matched(k));
                        if !may_match {
                            continue;
                        }
                        outcome = execute(statement, self.error_mode, &self.name, &mut self.logged, resource, record, observe)
                            .map(|e| e + outcome.unwrap_or(0));
                        if outcome.is_err() {
                            break;
                        }
                        if k + 1 < run.len() {
                            matches = text(resource, record);
                        }
                    }
                    outcome
                }
            };
            match outcome {
                Ok(e) => errors += e,
                Err(err) => return RecordOutcome::Dropped(err),
            }
        }
        RecordOutcome::Kept { errors }
    }
}

/// Runs one statement under the error mode: `Ok(errors)` to go on, `Err`
/// when the record must be dropped.
fn execute(
    statement: &CStatement,
    mode: ErrorMode,
    name: &str,
    logged: &mut u64,
    resource: &mut Resource,
    record: &mut Record,
    observe: &mut dyn FnMut(&CStatement, &Record),
) -> Result<usize, FnError> {
    let errors = match statement.run(resource, record) {
        Ok(_) => 0,
        Err(FnError::Unsanitizable(reason)) => {
            // Never keep text that could not be cleaned, whatever the error
            // mode: remove it and say so on the record.
            let _ = statement.target.edit(resource, record, &mut |slot| {
                *slot = Value::Nil;
                Ok(())
            });
            record.attributes_mut().insert(REDACTED_MARK, Value::Str(reason.clone()));
            log(name, logged, statement, &FnError::Unsanitizable(reason));
            1
        }
        Err(err) => match mode {
            ErrorMode::Propagate => {
                log(name, logged, statement, &err);
                return Err(err);
            }
            ErrorMode::Ignore => {
                log(name, logged, statement, &err);
                1
            }
            ErrorMode::Silent => 1,
        },
    };
    observe(statement, record);
    Ok(errors)
}

/// Logs a failed statement: the first ten times, then at powers of two, so
/// a bad rule cannot flood the log.
fn log(transform: &str, logged: &mut u64, statement: &CStatement, err: &FnError) {
    *logged += 1;
    if *logged <= 10 || logged.is_power_of_two() {
        tracing::warn!(transform, statement = %statement.text, error = %err, occurrences = *logged, "statement failed");
    }
}

impl Operator for Transform {
    fn process<'a>(&'a mut self, mut batch: Batch, out: &'a mut Vec<Batch>, counters: &'a NodeCounters) -> BoxFuture<'a, ()> {
        NodeCounters::add(&counters.received, batch.len());
        let resource = &mut batch.resource;
        let (mut errors, mut dropped) = (0, 0);
        batch.records.retain_mut(|record| match self.apply(resource, record, &mut |_, _| {}) {
            RecordOutcome::Kept { errors: e } => {
                errors += e;
                true
            }
            RecordOutcome::Dropped(_) => {
                errors += 1;
                dropped += 1;
                false
            }
        });
        NodeCounters::add(&counters.errors, errors);
        NodeCounters::add(&counters.dropped, dropped);
        NodeCounters::add(&counters.emitted, batch.len());
        if !batch.is_empty() {
            out.push(batch);
        }
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbintel_core::record::LogRecord;
    use dbintel_dsl::plan::NodeKind;

    fn transform(statements: &str) -> Transform {
        let plan = crate::plan_of(&format!("transform t {{\n{statements}\n}}\n"));
        let NodeKind::Transform(node) = &plan.nodes["t"].kind else { panic!("not a transform") };
        Transform::new("t", node).expect("compiles")
    }

    fn run(t: &mut Transform, text: &str) -> Value {
        let mut resource = Resource::default();
        let mut log = LogRecord::default();
        log.attributes.insert("q", Value::Str(text.into()));
        let mut record = Record::Log(log);
        t.apply(&mut resource, &mut record, &mut |_, _| {});
        record.attributes().get("q").cloned().unwrap_or_default()
    }

    #[test]
    fn a_pattern_run_gives_what_statements_in_turn_give() {
        let rules = r#"
  replace_pattern(attributes["q"], "a+", "b")
  replace_pattern(attributes["q"], "bb", "c")
  replace_pattern(attributes["q"], "c", "[C]")
  replace_pattern(attributes["q"], "x", "y")"#;
        let mut batched = transform(rules);
        assert!(matches!(batched.steps.as_slice(), [Step::PatternRun { .. }]), "the four statements form one run");
        // the same rules, each behind a trivially true condition: no run
        let one_by_one = rules.replace(")\n", ") where true\n") + " where true";
        let mut sequential = transform(&one_by_one);
        assert!(sequential.steps.iter().all(|s| matches!(s, Step::One(_))));
        for text in ["aa b", "a", "bb", "xax", "nothing", "aaa aaa c"] {
            // "a" -> "b" creates no "bb"; "aa b" -> "b b"; "bb" -> "c" -> "[C]"
            assert_eq!(run(&mut batched, text), run(&mut sequential, text), "{text}");
        }
        assert_eq!(run(&mut batched, "bb"), Value::Str("[C]".into()));
    }
}
