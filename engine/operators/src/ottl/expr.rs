//! Compiled expressions and their evaluation.

use std::borrow::Cow;
use std::cmp::Ordering;

use dbintel_dsl::ast::BinaryOp;
use dbintel_stdlib::signature::ConverterFn;
use dbintel_stdlib::value::NIL;
use dbintel_stdlib::{FnError, Map, Value};

use super::path::CPath;
use dbintel_core::record::{Record, Resource};

/// Most parameters any function takes; arguments live in fixed arrays of
/// this size so a call allocates nothing.
pub const MAX_ARGS: usize = 8;

/// What an expression reads: one record and its batch's resource.
#[derive(Clone, Copy)]
pub struct Ctx<'r> {
    pub resource: &'r Resource,
    pub record: &'r Record,
}

pub enum CExpr {
    Literal(Value),
    Path(CPath),
    Call { name: &'static str, function: ConverterFn, args: Vec<CExpr> },
    List(Vec<CExpr>),
    Map(Vec<(String, CExpr)>),
    Not(Box<CExpr>),
    Neg(Box<CExpr>),
    Binary { op: BinaryOp, lhs: Box<CExpr>, rhs: Box<CExpr> },
}

impl std::fmt::Debug for CExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CExpr::Literal(v) => write!(f, "{v:?}"),
            CExpr::Path(p) => write!(f, "{p:?}"),
            CExpr::Call { name, args, .. } => write!(f, "{name}({args:?})"),
            CExpr::List(items) => write!(f, "{items:?}"),
            CExpr::Map(entries) => write!(f, "{entries:?}"),
            CExpr::Not(e) => write!(f, "not {e:?}"),
            CExpr::Neg(e) => write!(f, "-{e:?}"),
            CExpr::Binary { op, lhs, rhs } => write!(f, "({lhs:?} {} {rhs:?})", op.symbol()),
        }
    }
}

/// Only `true` is true; nil and everything else are false (OTTL).
pub fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

impl CExpr {
    pub fn eval<'r>(&'r self, ctx: &Ctx<'r>) -> Result<Cow<'r, Value>, FnError> {
        Ok(match self {
            CExpr::Literal(v) => Cow::Borrowed(v),
            CExpr::Path(p) => p.get(ctx)?,
            CExpr::Call { function, args, .. } => {
                let mut values: [Cow<'r, Value>; MAX_ARGS] = std::array::from_fn(|_| Cow::Borrowed(&NIL));
                for (slot, arg) in values.iter_mut().zip(args) {
                    *slot = arg.eval(ctx)?;
                }
                let refs: [&Value; MAX_ARGS] = std::array::from_fn(|i| values[i].as_ref());
                Cow::Owned(function(&refs[..args.len().max(1)])?)
            }
            CExpr::List(items) => {
                Cow::Owned(Value::List(items.iter().map(|i| i.eval(ctx).map(Cow::into_owned)).collect::<Result<_, _>>()?))
            }
            CExpr::Map(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (k, v) in entries {
                    map.insert(k.clone(), v.eval(ctx)?.into_owned());
                }
                Cow::Owned(Value::Map(map))
            }
            CExpr::Not(inner) => Cow::Owned(Value::Bool(!truthy(inner.eval(ctx)?.as_ref()))),
            CExpr::Neg(inner) => Cow::Owned(match inner.eval(ctx)?.as_ref() {
                Value::Int(i) => Value::Int(i.checked_neg().ok_or_else(|| FnError::Other("integer overflow".into()))?),
                Value::Double(d) => Value::Double(-d),
                Value::Nil => Value::Nil,
                other => return Err(FnError::Other(format!("cannot negate {}", other.type_name()))),
            }),
            CExpr::Binary { op: BinaryOp::And, lhs, rhs } => {
                Cow::Owned(Value::Bool(truthy(lhs.eval(ctx)?.as_ref()) && truthy(rhs.eval(ctx)?.as_ref())))
            }
            CExpr::Binary { op: BinaryOp::Or, lhs, rhs } => {
                Cow::Owned(Value::Bool(truthy(lhs.eval(ctx)?.as_ref()) || truthy(rhs.eval(ctx)?.as_ref())))
            }
            CExpr::Binary { op, lhs, rhs } => {
                let (l, r) = (lhs.eval(ctx)?, rhs.eval(ctx)?);
                Cow::Owned(binary(*op, &l, &r)?)
            }
        })
    }
}

fn binary(op: BinaryOp, l: &Value, r: &Value) -> Result<Value, FnError> {
    if op.is_comparison() {
        return Ok(Value::Bool(compare(op, l, r)));
    }
    if l.is_nil() || r.is_nil() {
        return Ok(Value::Nil);
    }
    let overflow = || FnError::Other("integer overflow".into());
    match (l, r) {
        (Value::Int(a), Value::Int(b)) => Ok(Value::Int(match op {
            BinaryOp::Add => a.checked_add(*b).ok_or_else(overflow)?,
            BinaryOp::Sub => a.checked_sub(*b).ok_or_else(overflow)?,
            BinaryOp::Mul => a.checked_mul(*b).ok_or_else(overflow)?,
            _ => a.checked_div(*b).ok_or_else(|| FnError::Other("division by zero".into()))?,
        })),
        _ => match (l.as_f64(), r.as_f64()) {
            (Some(a), Some(b)) => Ok(Value::Double(match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                _ => a / b,
            })),
            _ => Err(FnError::Other(format!("`{}` needs numbers, got {} and {}", op.symbol(), l.type_name(), r.type_name()))),
        },
    }
}

/// OTTL comparison: numbers compare across int and float, strings by bytes,
/// other mixes are unequal and unordered (every ordered comparison false).
fn compare(op: BinaryOp, l: &Value, r: &Value) -> bool {
    let ordering = match (l, r) {
        (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Nil, Value::Nil) => Some(Ordering::Equal),
        _ => match (l.as_f64(), r.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b),
            _ => None,
        },
    };
    match op {
        BinaryOp::Eq => ordering == Some(Ordering::Equal) || (ordering.is_none() && l == r),
        BinaryOp::Ne => !(ordering == Some(Ordering::Equal) || (ordering.is_none() && l == r)),
        BinaryOp::Lt => ordering == Some(Ordering::Less),
        BinaryOp::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
        BinaryOp::Gt => ordering == Some(Ordering::Greater),
        BinaryOp::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        _ => false,
    }
}
