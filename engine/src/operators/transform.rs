//! `transform`: OTTL statements run in order on each record.

use dbintel_dsl::plan::{Context, ErrorMode, TransformNode};
use dbintel_stdlib::{FnError, Value};

use super::Operator;
use crate::counters::NodeCounters;
use crate::ottl::{compile_statement, CStatement, CompileError};
use crate::record::{Batch, Record, Resource};

/// Attribute set on a record whose text could not be sanitized (the text
/// itself was removed).
pub const REDACTED_MARK: &str = "dbintel.redacted";

pub struct Transform {
    name: String,
    context: Context,
    error_mode: ErrorMode,
    statements: Vec<CStatement>,
    /// Errors already logged, to keep a bad statement from flooding logs.
    logged: u64,
}

/// What running a transform did to one record.
#[derive(Debug, PartialEq)]
pub enum RecordOutcome {
    Kept { errors: usize },
    Dropped(FnError),
}

impl Transform {
    pub fn new(name: &str, node: &TransformNode) -> Result<Transform, CompileError> {
        let statements = node.statements.iter().map(compile_statement).collect::<Result<_, _>>()?;
        Ok(Transform { name: name.to_string(), context: node.context, error_mode: node.error_mode, statements, logged: 0 })
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
        for statement in &self.statements {
            match statement.run(resource, record) {
                Ok(_) => {}
                Err(FnError::Unsanitizable(reason)) => {
                    // Never keep text that could not be cleaned, whatever
                    // the error mode: remove it and say so on the record.
                    let _ = statement.target.edit(resource, record, &mut |slot| {
                        *slot = Value::Nil;
                        Ok(())
                    });
                    record.attributes_mut().insert(REDACTED_MARK, Value::Str(reason.clone()));
                    errors += 1;
                    log(&self.name, &mut self.logged, statement, &FnError::Unsanitizable(reason));
                }
                Err(err) => {
                    errors += 1;
                    match self.error_mode {
                        ErrorMode::Propagate => {
                            log(&self.name, &mut self.logged, statement, &err);
                            return RecordOutcome::Dropped(err);
                        }
                        ErrorMode::Ignore => log(&self.name, &mut self.logged, statement, &err),
                        ErrorMode::Silent => {}
                    }
                }
            }
            observe(statement, record);
        }
        RecordOutcome::Kept { errors }
    }
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
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>, counters: &NodeCounters) {
        NodeCounters::add(&counters.received, batch.len());
        let resource = &mut batch.resource;
        let mut kept = Vec::with_capacity(batch.records.len());
        for mut record in batch.records.drain(..) {
            match self.apply(resource, &mut record, &mut |_, _| {}) {
                RecordOutcome::Kept { errors } => {
                    NodeCounters::add(&counters.errors, errors);
                    kept.push(record);
                }
                RecordOutcome::Dropped(_) => {
                    NodeCounters::add(&counters.errors, 1);
                    NodeCounters::add(&counters.dropped, 1);
                }
            }
        }
        batch.records = kept;
        NodeCounters::add(&counters.emitted, batch.len());
        if !batch.is_empty() {
            out.push(batch);
        }
    }
}
