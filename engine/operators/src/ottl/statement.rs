//! A compiled `editor(args) where condition`.

use dbintel_stdlib::signature::EditorFn;
use dbintel_stdlib::value::NIL;
use dbintel_stdlib::{FnError, Value};

use super::expr::{truthy, CExpr, Ctx, MAX_ARGS};
use super::path::CPath;
use dbintel_core::record::{Record, Resource};

pub struct CStatement {
    /// The statement as written, for errors and test reports.
    pub text: String,
    /// The editor's name (`replace_pattern`).
    pub function: &'static str,
    /// The target as written, to recognise statements on the same field.
    pub target_text: String,
    pub editor: EditorFn,
    pub target: CPath,
    /// One per parameter; index 0 (the target) is a nil placeholder.
    pub args: Vec<CExpr>,
    pub condition: Option<CExpr>,
}

impl std::fmt::Debug for CStatement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// What running a statement did.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Skipped,
    Ran,
}

impl CStatement {
    pub fn run(&self, resource: &mut Resource, record: &mut Record) -> Result<Outcome, FnError> {
        if let Some(condition) = &self.condition {
            if !truthy(condition.eval(&Ctx { resource, record })?.as_ref()) {
                return Ok(Outcome::Skipped);
            }
        }
        if self.args.iter().skip(1).all(|a| matches!(a, CExpr::Literal(_))) {
            // nothing to copy out of the record first
            let refs: [&Value; MAX_ARGS] = std::array::from_fn(|i| match self.args.get(i) {
                Some(CExpr::Literal(v)) => v,
                _ => &NIL,
            });
            self.target.edit(resource, record, &mut |slot| (self.editor)(slot, &refs[..self.args.len()]))?;
            return Ok(Outcome::Ran);
        }
        let mut owned: [Value; MAX_ARGS] = Default::default();
        {
            let ctx = Ctx { resource, record };
            // Arguments that read the record are copied before the target
            // is borrowed for writing; literals are used in place.
            for (slot, arg) in owned.iter_mut().zip(&self.args).skip(1) {
                if !matches!(arg, CExpr::Literal(_)) {
                    *slot = arg.eval(&ctx)?.into_owned();
                }
            }
        }
        let refs: [&Value; MAX_ARGS] = std::array::from_fn(|i| match self.args.get(i) {
            Some(CExpr::Literal(v)) if i > 0 => v,
            Some(_) => &owned[i],
            None => &NIL,
        });
        let args = &refs[..self.args.len()];
        self.target.edit(resource, record, &mut |slot| (self.editor)(slot, args))?;
        Ok(Outcome::Ran)
    }
}
